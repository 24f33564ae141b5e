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

__all__ = [
    "CHUNK_ROWS",
    "iter_table",
    "read_csv",
    "read_layout_codes",
    "read_parquet",
    "read_table",
    "table_format",
    "CSV_SUFFIXES",
    "PARQUET_SUFFIXES",
]

# Rows of a table parsed at a time: ~100 MiB of text cells at a few columns.
CHUNK_ROWS = 1 << 18


#: File names read as CSV (a gzip'd CSV is decompressed while it is read) and as Parquet.
CSV_SUFFIXES = (".csv", ".csv.gz")
PARQUET_SUFFIXES = (".parquet", ".pq")


def table_format(path: str | Path) -> str | None:
    """``"csv"`` or ``"parquet"`` by the file's name (:data:`CSV_SUFFIXES`,
    :data:`PARQUET_SUFFIXES`, any case), else None."""
    name = Path(path).name.lower()
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    return None


def read_table(path: str | Path, space: LayoutSpace):
    """Read a ``.csv`` (or ``.csv.gz``) or ``.parquet``/``.pq`` table into a DataFrame, by
    suffix.

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
    kind = table_format(path)
    if kind == "csv":
        return read_csv(path, space)
    if kind == "parquet":
        return read_parquet(path)
    suffix = "".join(Path(path).suffixes[-2:]) or "(no suffix)"
    raise ValueError(
        f"{path}: unknown table format {suffix!r}; use a .csv, .csv.gz or .parquet file"
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
    names = _header(path)
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


def iter_table(path: str | Path, space: LayoutSpace, chunk_rows: int = CHUNK_ROWS):
    """Yield a ``.csv`` or ``.parquet``/``.pq`` file as DataFrames of at most ``chunk_rows``
    rows, so memory does not grow with the file; at least one (maybe empty) frame.

    CSV cells are read as text, as :func:`read_csv` does; Parquet keeps its types.

    Raises:
        ValueError: naming the file, as :func:`read_csv` / :func:`read_parquet` do.
    """
    path = Path(path)
    kind = table_format(path)
    if kind is None:
        read_table(path, space)  # raises the message for an unknown format
    _check_input_file(path)
    if kind == "csv":
        yield from _csv_chunks(path, space, chunk_rows)
        return
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path, pre_buffer=False)
    except Exception as err:  # pyarrow raises a zoo of types for a malformed file
        raise ValueError(f"{path}: not a readable Parquet file ({one_line(err)})") from None
    # a frame's index that pandas stored as columns is not data (pd.read_parquet restores
    # it as the index): only the other columns are read
    meta = pf.schema_arrow.pandas_metadata or {}
    index = {c for c in meta.get("index_columns", []) if isinstance(c, str)}
    columns = [c for c in pf.schema_arrow.names if c not in index]
    yield pf.schema_arrow.empty_table().select(columns).to_pandas()
    for batch in pf.iter_batches(batch_size=chunk_rows, columns=columns):
        yield batch.to_pandas()


def _csv_chunks(path: Path, space: LayoutSpace, chunk_rows: int):
    _check_csv_header(path)  # before the reader opens the file: no handle left open
    try:
        reader = pd.read_csv(
            path,
            dtype=str,
            keep_default_na=False,
            na_filter=False,
            index_col=False,
            chunksize=chunk_rows,
        )
    except pd.errors.EmptyDataError:
        raise ValueError(
            f"{path}: empty file; expected a CSV header with columns "
            f"{list(space.components) + list(COUNT_COLUMNS)}"
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as err:
        raise ValueError(f"{path}: not a readable CSV file ({one_line(err)})") from None
    with reader:
        first = True
        while True:
            try:
                with warnings.catch_warnings():
                    # A row with more fields than the header would silently lose data.
                    warnings.simplefilter("error", pd.errors.ParserWarning)
                    chunk = reader.get_chunk()
            except StopIteration:
                if first:  # a header without rows: its (empty) columns
                    yield pd.DataFrame({name: [] for name in _header(path)}, dtype=str)
                return
            except pd.errors.ParserWarning:
                raise ValueError(
                    f"{path}: not a readable CSV file (a row has more fields than the header)"
                ) from None
            except (pd.errors.ParserError, UnicodeDecodeError, OSError) as err:
                raise ValueError(f"{path}: not a readable CSV file ({one_line(err)})") from None
            first = False
            yield chunk


def _header(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        return list(next(csv.reader(fh), []))
