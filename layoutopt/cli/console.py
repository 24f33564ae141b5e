"""Where the command line's output goes: rich consoles, a status line, tables to files.

Data go to stdout only when no ``-o`` file is given (then as plain CSV); tables for people go
to stdout and progress and status lines to stderr. Files are written atomically
(:func:`layoutopt.util.io.atomic_path`), so a failure never leaves a partial output.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from rich.console import Console

from layoutopt.util.io import atomic_path

__all__ = ["status", "stderr", "stdout", "write_table"]


def stdout() -> Console:
    # Created per call so that a redirected sys.stdout (tests, pipes) is honoured; wide when
    # not a terminal so tables are not wrapped in logs or READMEs.
    console = Console(highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(highlight=False, width=150)
    return console


def stderr() -> Console:
    return Console(stderr=True, highlight=False)


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
    """Write a DataFrame as CSV/Parquet by suffix (atomically), or CSV to stdout."""

    if path is None:
        frame.to_csv(sys.stdout, index=False)
        return
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
