"""The ``layoutopt`` command line: parse arguments, call the library, print.

Subcommands mirror the API (DESIGN.md)::

    layoutopt demo                                         built-in end-to-end example
    layoutopt design   --space S [--size N] [--kind K] [-o design.csv]
    layoutopt fit      --space S --data D [--method M] -o posterior.nc
    layoutopt score    --posterior P [-o grid.parquet|grid.csv] [--top K]
    layoutopt best     --posterior P [--json]
    layoutopt propose  --posterior P [--k 8] [--strategy S] [--exclude F] [-o next.csv]
    layoutopt simulate [--preset hill2017] [--strategy S ...] [--budget N]

Conventions: data goes to stdout only when no ``-o`` file is given (then it is plain CSV or
JSON); tables for people, progress and status lines go to stdout/stderr via rich. Every
failure is one line ``error: <message>`` on stderr with a non-zero exit status (2 for bad
usage or input), never a traceback, and never a partial output file: files are written to a
temporary name and renamed (:mod:`layoutopt.util.io`).

:func:`main` takes ``argv`` and returns the exit status, so tests call it in-process.

The commands live by job: :mod:`~layoutopt.cli.commands` (design, fit, score, best,
propose), :mod:`~layoutopt.cli.simulation` (simulate, demo), :mod:`~layoutopt.cli.campaign`
(the stored campaign, report); shared options in :mod:`~layoutopt.cli.options`, output in
:mod:`~layoutopt.cli.console` and :mod:`~layoutopt.cli.tables`. This module is the typer
application and the entry points.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence

import typer

from layoutopt.cli import campaign as cli_campaign
from layoutopt.cli.commands import best, design, fit, propose, score
from layoutopt.cli.simulation import demo, simulate
from layoutopt.util.io import one_line

__all__ = ["app", "main", "app_main"]

# Exit statuses.
EXIT_OK = 0
EXIT_FAILURE = 1  # an unexpected internal error or an OS failure
EXIT_USAGE = 2  # bad arguments or bad input files

app = typer.Typer(
    name="layoutopt",
    help="Find the best callout layout in a combinatorial space: design a test, fit the "
    "Bayesian additive + pairwise click-through model, score every layout, propose what to "
    "test next.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

for _command in (demo, design, fit, score, best, propose, simulate):
    app.command()(_command)
app.command()(cli_campaign.report)
app.add_typer(cli_campaign.app, name="campaign")


# --------------------------------------------------------------------------- entry points
# Typer vendors click in recent versions (typer._click) and depends on it in older ones;
# reach click's exception base class through a public typer name either way.
_CLICK_EXCEPTION = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    sys.stderr.write(f"warning: {one_line(message)}\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit status.

    Errors never raise: bad usage and bad input print one ``error: ...`` line on stderr and
    return 2; OS failures return 1; an unexpected exception prints one line and returns 1
    (set ``LAYOUTOPT_DEBUG=1`` to get the traceback instead).

    Args:
        argv: arguments without the program name.

    Returns:
        The process exit status.
    """
    command = typer.main.get_command(app)
    args = list(sys.argv[1:] if argv is None else argv)
    with warnings.catch_warnings():
        # Library warnings (FitWarning, UncoverablePairsWarning) become one stderr line.
        warnings.simplefilter("always", UserWarning)
        warnings.showwarning = _show_warning
        try:
            rv = command.main(args=args, prog_name="layoutopt", standalone_mode=False)
        except _CLICK_EXCEPTION as err:
            message = one_line(err.format_message())
            if message:  # empty when the help was shown for a bare `layoutopt`
                ctx = getattr(err, "ctx", None)
                hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
                sys.stderr.write(f"error: {message}{hint}\n")
            return int(getattr(err, "exit_code", EXIT_USAGE)) or EXIT_USAGE
        except (ValueError, FileNotFoundError) as err:
            sys.stderr.write(f"error: {one_line(err)}\n")
            return EXIT_USAGE
        except OSError as err:
            sys.stderr.write(f"error: {one_line(err)}\n")
            return EXIT_FAILURE
        except KeyboardInterrupt:
            sys.stderr.write("error: interrupted\n")
            return 130
        except Exception as err:
            if os.environ.get("LAYOUTOPT_DEBUG"):
                raise
            sys.stderr.write(
                f"error: internal error ({type(err).__name__}: {one_line(err)}); "
                "rerun with LAYOUTOPT_DEBUG=1 for the traceback\n"
            )
            return EXIT_FAILURE
    if type(rv) is int:  # click returns an exit status here for --help and similar
        return rv
    return EXIT_OK


def app_main() -> None:
    """Console-script entry point: ``sys.exit(main())``."""
    sys.exit(main())


if __name__ == "__main__":
    app_main()
