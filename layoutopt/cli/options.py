"""Options and arguments shared by the ``layoutopt`` commands, and how they are parsed.

The choices are the library's own lists (``METHODS``, ``DESIGN_KINDS``, ``STRATEGIES``),
written out here so that building the typer application imports no numerical module
(``--help`` without JAX); ``tests/cli/test_startup.py`` holds them equal to the library's.
Seeds are checked by the library's own rule, so the command line cannot drift from the API.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from layoutopt.cli import library
from layoutopt.util.io import check_output_path, one_line
from layoutopt.util.limits import SEED_MAX, check_seed

__all__ = [
    "AdditiveOpt",
    "DbOpt",
    "NameOpt",
    "ColumnOpt",
    "DESIGN_KINDS",
    "METHODS",
    "STRATEGIES",
    "DesignKind",
    "Method",
    "PosteriorOpt",
    "SeedOpt",
    "SegmentOpt",
    "SpaceOpt",
    "Strategy",
    "check_table_output",
    "column_arg",
    "half_life_arg",
    "load_posterior",
    "seed_option",
    "segment_arg",
]

#: ``--db`` and ``--name`` of every campaign command.
DbOpt = Annotated[
    str, typer.Option("--db", help="Campaign store: a SQLite file or a postgresql:// URL.")
]
NameOpt = Annotated[
    str | None,
    typer.Option("--name", help="Campaign name (needed only when the store holds several)."),
]


#: ``--additive`` of ``fit`` and ``campaign fit``: ``PriorConfig(pairwise=False)``.
AdditiveOpt = Annotated[
    bool,
    typer.Option(
        "--additive",
        help="Fit the additive model (no pairwise terms; the prior otherwise the default).",
    ),
]


#: ``layoutopt.infer.fitting.METHODS``, ``layoutopt.decide.design.DESIGN_KINDS`` and
#: ``layoutopt.decide.proposals.STRATEGIES`` (a test keeps them equal).
METHODS = ("laplace", "nuts", "svi")
DESIGN_KINDS = ("pairwise", "random", "full")
STRATEGIES = ("thompson", "top_two", "ids", "greedy", "ucb")

Method = StrEnum("Method", {m: m for m in METHODS})


DesignKind = StrEnum("DesignKind", {k: k for k in DESIGN_KINDS})


Strategy = StrEnum("Strategy", {s: s for s in STRATEGIES})


SpaceOpt = Annotated[
    Path,
    typer.Option(
        "--space",
        "-s",
        help="Layout space TOML file (components, forbidden rules), e.g. "
        "layoutopt/examples/demo_space.toml.",
    ),
]


PosteriorOpt = Annotated[
    Path, typer.Option("--posterior", "-p", help="Posterior NetCDF file written by `fit`.")
]


def seed_option(value: int) -> int:
    # The library's rule and message, so the CLI and the API cannot drift apart.
    try:
        return check_seed(value, "--seed")
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None


SeedOpt = Annotated[
    int,
    typer.Option(
        "--seed",
        callback=seed_option,
        help=f"Random seed in [0, {SEED_MAX}] (same seed, same result).",
    ),
]


SegmentOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--segment",
        help="One segment, as VARIABLE=VALUE (repeat for several context variables); "
        "default: the traffic mix observed.",
    ),
]


def segment_arg(values: Sequence[str] | None) -> dict | None:
    """``["member=prime", ...]`` as ``{"member": "prime", ...}`` (None when not given)."""
    if not values:
        return None
    out = {}
    for v in values:
        name, sep, value = v.partition("=")
        if not sep or not name:
            raise ValueError(f"--segment {v!r}: expected VARIABLE=VALUE, e.g. member=prime")
        out[name] = value
    return out


ColumnOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--column",
        help="A column named otherwise in the data, as LAYOUTOPT_NAME=YOUR_NAME, e.g. "
        "clicks=click or served_at=timestamp (repeat for several; wins over the space "
        "file's [columns] table).",
    ),
]


def column_arg(values: Sequence[str] | None) -> dict[str, str] | None:
    """``["clicks=click", ...]`` as ``{"clicks": "click", ...}`` (None when not given).

    Raises:
        ValueError: for an entry without ``=`` or with an empty side, or a name given twice.
    """
    if not values:
        return None
    out: dict[str, str] = {}
    for v in values:
        name, sep, column = v.partition("=")
        if not sep or not name or not column:
            raise ValueError(
                f"--column {v!r}: expected LAYOUTOPT_NAME=YOUR_NAME, e.g. clicks=click"
            )
        if name in out:
            raise ValueError(f"--column: {name!r} is given twice ({out[name]!r} and {column!r})")
        out[name] = column
    return out


def load_posterior(path: Path):

    try:
        return library.posterior.Posterior.load(path)
    except ValueError:  # already names the file
        raise
    except Exception as err:  # h5netcdf / xarray raise many types for a foreign file
        raise ValueError(
            f"{path}: not a readable posterior file ({type(err).__name__}: {one_line(err)})"
        ) from None


def check_table_output(path: Path | None) -> Path | None:

    return None if path is None else check_output_path(path, (".csv", ".parquet", ".pq"))


def half_life_arg(value: str | None) -> float | str | None:
    """``--half-life`` as ``fit`` takes it: None, ``"auto"`` or a positive number.

    Raises:
        ValueError: for anything else, naming the value and what is valid.
    """
    if value is None or value.strip().lower() == "auto":
        return None if value is None else "auto"
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not (number > 0 and number != float("inf")):
        raise ValueError(
            f"--half-life {value!r}: expected 'auto' or a positive number of rounds, e.g. 4"
        )
    return number
