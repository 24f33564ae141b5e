"""Where the command line's output goes: rich consoles, a status line, tables to files.

Data go to stdout only when no ``-o`` file is given (then as plain CSV); tables for people go
to stdout and progress and status lines to stderr. Files are written atomically
(:func:`layoutopt.util.io.atomic_path`), so a failure never leaves a partial output.

The consoles interpret no Rich markup: campaign names, variant labels and file names are
the user's text, and ``[/]`` or ``[bold red]boss[/bold red]`` must print as typed (markup
would crash on the first and swallow the second). A store target is printed through
:func:`shown_target`, which masks the password of a database URL.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console

from layoutopt.util.io import atomic_path, csv_safe, mask_url, write_csv

__all__ = ["shown_target", "status", "stderr", "stdout", "write_table"]

# scheme://user:PASSWORD@host, and a password=... query parameter (libpq's spelling).
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^/:@\s]*:)[^/\s]*(?=@)")
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&]password=)[^&\s]*", re.IGNORECASE)


def shown_target(target: object) -> str:
    """A store target (or any text naming one) with the password of a URL masked.

    ``postgresql://user:secret@host/db?password=x`` is shown as
    ``postgresql://user:***@host/db?password=***``; a SQLite path is shown as it is.

    Args:
        target: a ``--db`` value, a path, or a message that may contain a URL.

    Returns:
        The text with every URL password replaced by ``***``.
    """
    text = str(target)
    if "://" in text and not any(c.isspace() for c in text):
        return mask_url(text)  # one store target: the store's own rule (passwords with @ or /)
    text = _URL_PASSWORD.sub(r"\g<head>***", text)
    return _QUERY_PASSWORD.sub(r"\g<head>***", text)


def stdout() -> Console:
    # Created per call so that a redirected sys.stdout (tests, pipes) is honoured; wide when
    # not a terminal so tables are not wrapped in logs or READMEs.
    console = Console(highlight=False, markup=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(highlight=False, markup=False, width=150)
    return console


def stderr() -> Console:
    return Console(stderr=True, highlight=False, markup=False)


@contextlib.contextmanager
def status(message: str, enabled: bool = True) -> Iterator[None]:
    """A spinner on stderr while a long step runs (only on a terminal), then a done line."""
    err = stderr()
    t0 = time.perf_counter()
    if enabled and err.is_terminal:
        with err.status(message):
            yield
    else:
        yield
    err.print(f"{message} done in {time.perf_counter() - t0:.1f}s")


def write_table(frame, path: Path | None) -> None:
    """Write a DataFrame as CSV/Parquet by suffix (atomically), or CSV to stdout.

    CSV is neutralised for spreadsheets (:func:`layoutopt.util.io.csv_safe`: a label such
    as ``=1+2`` is written ``'=1+2``, and layoutopt's readers undo exactly that).
    """

    if path is None:
        csv_safe(frame).to_csv(sys.stdout, index=False)
        return
    if path.suffix.lower() == ".csv":
        write_csv(frame, path)
        return
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
