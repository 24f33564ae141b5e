"""Reading observation tables from disk: CSV and Parquet files into DataFrames.

CSV cells are read as text, so labels such as ``"1"``, ``"NA"`` or ``"None"`` stay labels;
:mod:`layoutopt.data.columns` parses the counts. Every problem with the file itself (missing,
a directory, empty, malformed, another format) is a ``ValueError`` naming the file.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from layoutopt.data.columns import COUNT_COLUMNS, layout_codes
from layoutopt.model.space import LayoutSpace
from layoutopt.util.io import one_line

__all__ = ["read_csv", "read_layout_codes", "read_parquet", "read_table"]


def read_table(path: str | Path, space: LayoutSpace):
    """Read a ``.csv`` or ``.parquet``/``.pq`` table into a DataFrame, by suffix.

    CSV cells are read as text (no missing-value guessing), so labels such as ``"1"``,
    ``"NA"`` or ``"None"`` stay labels; :meth:`Observations.from_frame` parses the counts.

    Args:
        path: the file.
        space: the space (only used to say which columns are expected).

    Returns:
        The file's table as a :class:`pandas.DataFrame`.

    Raises:
        ValueError: naming the file, if it is missing, empty, malformed or of another format.
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return read_csv(path, space)
    if suffix in (".parquet", ".pq"):
        return read_parquet(path)
    raise ValueError(
        f"{path}: unknown table format {suffix or '(no suffix)'!r}; use a .csv or .parquet file"
    )


def read_layout_codes(path: str | Path, space: LayoutSpace) -> np.ndarray:
    """Variant codes of the layouts listed in a CSV/Parquet file.

    The file needs one label column per component; other columns (``index``, ``weight``,
    counts) are ignored, so observation, design and proposal files all work. Rows are
    validated as in :meth:`Observations.from_frame` (unknown or missing labels, forbidden
    layouts), and repeats are kept.

    Args:
        path: the file.
        space: the layout space.

    Returns:
        ``(N, K)`` int32 codes, in file order.

    Raises:
        ValueError: naming the file, the column, the row and the value.
    """
    return layout_codes(read_table(path, space), space, source=str(path))


def read_csv(path: str | Path, space: LayoutSpace):
    """Read a CSV file with every cell as text (no missing-value guessing).

    Args:
        path: the file.
        space: the space (only used to say which columns an empty file should have).

    Returns:
        The table as a :class:`pandas.DataFrame` of strings.

    Raises:
        ValueError: naming the file, if it is missing, a directory, empty, has a row longer
            than the header, repeats a header name or cannot be parsed.
    """
    path = Path(path)
    _check_input_file(path)
    try:
        with warnings.catch_warnings():
            # A row with more fields than the header would silently lose data.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(
                path, dtype=str, keep_default_na=False, na_filter=False, index_col=False
            )
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except pd.errors.EmptyDataError:
        raise ValueError(
            f"{path}: empty file; expected a CSV header with columns "
            f"{list(space.components) + list(COUNT_COLUMNS)}"
        ) from None
    except pd.errors.ParserWarning:
        raise ValueError(
            f"{path}: not a readable CSV file (a row has more fields than the header)"
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as err:
        raise ValueError(f"{path}: not a readable CSV file ({one_line(err)})") from None
    _check_csv_header(path)
    return frame


def _check_input_file(path: Path) -> None:
    """Name the real problem when ``path`` is a directory or missing."""
    if path.is_dir():
        raise ValueError(f"{path}: is a directory; give a .csv or .parquet file")
    if not path.exists():
        raise ValueError(f"{path}: no such file")


def _check_csv_header(path: Path) -> None:
    """Refuse repeated header names (pandas would rename the second ``clicks`` to
    ``clicks.1`` and report an unknown column)."""
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        header = next(csv.reader(fh), [])
    names = list(header)
    dupes = sorted({h for h in names if names.count(h) > 1})
    if dupes:
        raise ValueError(
            f"{path}: header names column(s) {dupes} more than once; each column must appear once"
        )


def read_parquet(path: str | Path):
    """Read a Parquet file into a :class:`pandas.DataFrame`.

    Raises:
        ValueError: naming the file, if it is missing, a directory or not readable Parquet.
    """
    path = Path(path)
    _check_input_file(path)
    try:
        return pd.read_parquet(path)
    except Exception as err:  # pyarrow raises a zoo of types for a malformed file
        raise ValueError(f"{path}: not a readable Parquet file ({one_line(err)})") from None
