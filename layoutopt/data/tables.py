"""One table of observations, chunk by chunk: columns found (mapped), cells parsed to arrays.

A table holds one label column per component, one column per context variable of the space,
``clicks`` and optionally ``impressions`` (without it every row is one impression and
``clicks`` is 0/1), ``age``, ``round`` and the count columns of further metrics named by
``metrics=`` (``signups``, ``dismissals``: each out of the same impressions, read exactly as
``clicks`` is). :func:`frame_arrays` turns one chunk of such a
table into the arrays of :meth:`Observations.from_codes`; :mod:`layoutopt.data.observations`
streams a file or a frame through it chunk by chunk, so memory stays flat in the rows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import pandas as pd

from layoutopt.data.columns import (
    COUNT_COLUMNS,
    IGNORED_COLUMNS,
    TIME_COLUMNS,
    absent_code,
    check_allowed,
    column_codes,
    parse_counts,
    parse_time,
    plain,
    resolve_columns,
)
from layoutopt.model.space import LayoutSpace

__all__ = ["TableArrays", "check_metrics", "frame_arrays", "shift_rows", "table_layout"]

_TRUE, _FALSE = ("true", "t", "yes"), ("false", "f", "no")


class TableArrays(NamedTuple):
    """One chunk of a table as arrays.

    Attributes:
        codes: ``(N, K)`` int32 variant codes.
        impressions: ``(N,)`` int64 (ones for impression-level rows).
        clicks: ``(N,)`` int64.
        segments: ``(N,)`` int32 segment codes, or None without segments.
        time: ``{"age": ..., "round": ...}`` for the time columns present.
        extras: the table's columns that are not read (for the one warning).
        counts: ``{metric: (N,) int64}`` for the further metrics named by ``metrics=``.
    """

    codes: np.ndarray
    impressions: np.ndarray
    clicks: np.ndarray
    segments: np.ndarray | None
    time: dict[str, np.ndarray]
    extras: list[str]
    counts: dict[str, np.ndarray]


def check_metrics(metrics) -> tuple[str, ...]:
    """The names of further metrics' count columns as a tuple, or a ValueError.

    A name may not repeat, nor be one of layoutopt's other columns (``clicks`` is the primary
    metric's column already).
    """
    if isinstance(metrics, str):
        metrics = (metrics,)
    names = tuple(str(m) for m in metrics)
    reserved = COUNT_COLUMNS + TIME_COLUMNS + IGNORED_COLUMNS
    for m in names:
        if m in reserved or not m or names.count(m) > 1:
            raise ValueError(
                f"metrics: {m!r} is not a valid metric column (names must be distinct, "
                f"non-empty and none of {list(reserved)}); got {list(names)}"
            )
    return names


def table_layout(
    df,
    space: LayoutSpace,
    source: str,
    columns: Mapping[str, str] | None,
    metrics: tuple[str, ...] = (),
):
    """``(by_name, extras, hint)``: where each of layoutopt's columns is in ``df``.

    ``by_name`` maps layoutopt's name to the frame's column key; ``extras`` lists the columns
    that are not read (``index``/``weight`` are expected extras and never listed).

    Raises:
        ValueError: for a frame that is not a DataFrame, a repeated column, a bad mapping
            (:func:`~layoutopt.data.columns.resolve_columns`) or a missing column.
    """
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"{source}: expected a pandas DataFrame, got {type(df).__name__}")
    names = [str(c) for c in df.columns]
    dupes = sorted({c for c in names if names.count(c) > 1})
    if dupes:
        raise ValueError(f"{source}: column(s) {dupes} appear more than once")
    required = list(space.components) + list(space.segment_names) + ["clicks", *metrics]
    known = required + ["impressions"] + list(TIME_COLUMNS)
    found = resolve_columns(names, columns, known, source)
    missing = [c for c in required if c not in found]
    if missing:
        expected = required[: -1 - len(metrics)] + list(COUNT_COLUMNS) + list(metrics)
        raise ValueError(
            f"{source}: missing column(s) {missing}; expected columns: {expected} "
            "(without 'impressions' every row is one impression and 'clicks' is 0 or 1)"
        )
    keys = dict(zip(names, df.columns, strict=True))
    by_name = {name: keys[col] for name, col in found.items()}
    used = set(found.values()) | set(IGNORED_COLUMNS)
    extras = [c for c in names if c not in used]
    hint = "" if space.segments else " (the space declares no [segments])"
    return by_name, extras, hint


def frame_arrays(
    df,
    space: LayoutSpace,
    source: str,
    columns: Mapping[str, str] | None = None,
    metrics: tuple[str, ...] = (),
) -> TableArrays:
    """Validate one chunk of a table and return its arrays (not yet summed).

    ``clicks`` and every column of ``metrics`` are outcomes out of the row's impressions,
    read by one rule (counts at most the impressions; 0/1 without an impressions column).

    Rows are numbered from 1 in messages; :func:`shift_rows` renumbers them for a chunk
    that does not start the table. Messages name the user's column (the mapped name).

    Raises:
        ValueError: naming ``source``, the 1-based row, the column and the value.
    """
    by_name, extras, _ = table_layout(df, space, source, columns, metrics)
    if len(df) == 0:
        raise ValueError(f"{source}: no data rows; at least one observed layout is needed")
    label = {name: str(key) for name, key in by_name.items()}
    codes = np.empty((len(df), space.num_components), dtype=np.int32)
    for k, comp in enumerate(space.components):
        codes[:, k] = column_codes(
            df[by_name[comp]],
            space.label_codes[k],
            source,
            label[comp],
            ("label", "variant"),
            absent=absent_code(space, k),
        )
    if "impressions" in by_name:
        impressions = parse_counts(df[by_name["impressions"]], label["impressions"], source)
    else:
        impressions = np.ones(len(df), np.int64)
    counted = "impressions" in by_name
    outcomes = {
        name: _outcome(df[by_name[name]], name, label[name], impressions, source, counted)
        for name in ("clicks", *metrics)
    }
    clicks = outcomes.pop("clicks")
    check_allowed(codes, space, source)
    time = {
        name: parse_time(df[by_name[name]], label[name], source)
        for name in TIME_COLUMNS
        if name in by_name
    }
    segments = None
    if space.segments:
        segments = np.zeros(len(df), dtype=np.int64)
        for name, values in space.segments:
            lookup = {v: i for i, v in enumerate(values)}
            seg = column_codes(
                df[by_name[name]], lookup, source, label[name], ("value", "segment value")
            )
            segments = segments * len(values) + seg
        segments = segments.astype(np.int32)
    return TableArrays(codes, impressions, clicks, segments, time, extras, outcomes)


def _outcome(column, name: str, label: str, impressions, source: str, counted: bool):
    """One outcome column (clicks or a further metric; ``label``: the table's name for it)
    as int64 counts out of the row's impressions."""
    if not counted:
        return impression_clicks(column, label, source)
    out = parse_counts(column, label, source)
    bad = np.flatnonzero(out > impressions)
    if bad.size:
        r = int(bad[0])
        raise ValueError(
            f"{source}: row {r + 1}, column {label!r}: {out[r]} {name} exceed "
            f"{impressions[r]} impressions; need 0 <= {name} <= impressions"
        )
    return out


def impression_clicks(column, name: str, source: str) -> np.ndarray:
    """The 0/1 outcome of impression-level rows (one impression a row) as int64.

    Accepts 0/1 numbers (or counts that are 0 or 1), booleans and the text ``true``/``false``
    (also ``t``/``f``, ``yes``/``no``, any case).

    Raises:
        ValueError: naming the row and column of a cell that is not a count, or of a count
            above 1.
    """
    if pd.api.types.is_bool_dtype(column.dtype):
        return column.to_numpy(dtype=np.int64)
    if column.dtype == object or str(column.dtype).startswith(("string", "str")):
        text = column.astype(str).str.strip().str.lower()
        truth = text.isin(_TRUE).to_numpy()
        false = text.isin(_FALSE).to_numpy()
        if truth.any() or false.any():
            column = column.where(~(truth | false), np.where(truth, "1", "0"))
    clicks = parse_counts(column, name, source)
    bad = np.flatnonzero(clicks > 1)
    if bad.size:
        r = int(bad[0])
        raise ValueError(
            f"{source}: row {r + 1}, column {name!r}: {plain(column.iloc[r])!r} clicks on one "
            "row; without an 'impressions' column each row is one impression, so clicks "
            "must be 0 or 1 (or add an 'impressions' column)"
        )
    return clicks


_ROW = re.compile(r": row (\d+)([,:])")


def shift_rows(err: ValueError, offset: int) -> ValueError:
    """The same message with its first table row number counted ``offset`` rows later."""
    text = _ROW.sub(lambda m: f": row {int(m[1]) + offset}{m[2]}", str(err), count=1)
    return ValueError(text)
