"""Impression-level event logs, aggregated to age cohorts without loading the log whole.

An event log has one row per impression: one label column per component (and per segment
variable), ``served_at`` (timestamp) and ``clicked_at`` (timestamp, empty/null while there
has been no click), optionally ``round``. :func:`aggregate_events` streams it in record
batches (a Parquet or CSV file or directory through ``pyarrow.dataset``, or an in-memory
frame) and keeps only per-group running sums, so memory grows with the number of distinct
(layout, segment, age cohort, round) groups, never with the length of the log.

Per group it keeps impressions, clicks and the summed age (the cohort's age is the mean
age of its impressions); over the whole log a histogram of the observed click delays over
:data:`layoutopt.model.delay.DELAY_EDGES`, the sufficient statistic of the delay model (see
:mod:`layoutopt.model.delay`). Further metrics (a sign-up, an add-to-cart) are read the same
way, each from its own time column ``<metric>_at`` (or a 0/1 column ``<metric>``): their
counts per group and their own delay histograms, since a sign-up may arrive later than a
click.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from layoutopt.data.columns import IGNORED_COLUMNS, resolve_columns, warn_extra
from layoutopt.data.readers import table_format
from layoutopt.model.delay_bins import DELAY_EDGES

__all__ = ["AGE_EDGES", "EventTotals", "aggregate_events", "parse_now"]

# Age cohorts (hours): the delay grid, so a cohort spans ~25% of its own age, which keeps
# F(mean age) within a few per cent of the cohort's mean F for any smooth delay.
AGE_EDGES = DELAY_EDGES

_US_PER_HOUR = 3_600_000_000
TIME_COLUMNS = ("served_at", "clicked_at")
# Every column of a log besides labels and segments: times, or a 0/1 clicked flag instead of
# click times, and the round.
KNOWN_COLUMNS = ("served_at", "clicked_at", "clicked", "round")
_TRUE, _FALSE = ("1", "true", "t", "yes"), ("0", "false", "f", "no")


class EventTotals(NamedTuple):
    """Aggregated event log.

    Attributes:
        codes: ``(G, len(keys))`` int32 label codes per group (components, then segments).
        age: ``(G,)`` float64 mean hours since serving of the group's impressions.
        round: ``(G,)`` int64 round per group, or None when the log has no ``round``.
        impressions: ``(G,)`` int64.
        clicks: ``(G,)`` int64 clicks observed by ``now``.
        delay_counts: histogram of observed click delays over ``DELAY_EDGES``; None for a
            log with a 0/1 ``clicked`` column instead of click times.
        num_events: rows read.
        counts: ``{metric: (G,) int64}`` of the further metrics read (``metrics=``).
        metric_delays: ``{metric: histogram}`` of the further metrics read from a time
            column ``<metric>_at`` (a metric read from a 0/1 column has none).
    """

    codes: np.ndarray
    age: np.ndarray
    round: np.ndarray | None
    impressions: np.ndarray
    clicks: np.ndarray
    delay_counts: np.ndarray | None
    num_events: int
    counts: dict[str, np.ndarray] = {}
    metric_delays: dict[str, np.ndarray] = {}


def parse_now(now: Any) -> int:
    """``now`` (datetime, ``numpy.datetime64``, pandas Timestamp or ISO text) as UTC µs.

    A naive time is read as UTC, like naive ``served_at`` / ``clicked_at`` columns.

    Raises:
        ValueError: for anything else.
    """

    if now is None or isinstance(now, bool | int | float):
        raise ValueError(
            f"now must be a timestamp (datetime or ISO text such as '2026-01-31T12:00'), "
            f"got {now!r}"
        )
    try:
        ts = pd.Timestamp(now)
    except (ValueError, TypeError):
        raise ValueError(f"now: {now!r} is not a timestamp") from None
    if ts is pd.NaT:
        raise ValueError(f"now: {now!r} is not a timestamp")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return int(ts.value // 1000)


def aggregate_events(
    source: Any,
    keys: Sequence[tuple[str, Sequence[str]]],
    now: Any,
    *,
    batch_size: int = 1 << 20,
    age_edges: np.ndarray = AGE_EDGES,
    columns: Mapping[str, str] | None = None,
    absent: Mapping[str, int] | None = None,
    metrics: Sequence[str] = (),
) -> EventTotals:
    """Stream an impression log into per-(keys, age cohort, round) totals.

    Args:
        source: a Parquet/CSV file or a directory of Parquet files (read by record batches),
            or a pandas DataFrame / pyarrow Table.
        keys: ``(column, valid labels)`` of every group-by label column, in order
            (components, then segment variables).
        now: the time at which the log was extracted; ages and censoring are measured
            from it.
        batch_size: rows per record batch; peak memory is a few hundred bytes per row of
            one batch.
        age_edges: cohort edges in hours, increasing from 0 (the last may be inf).
        columns: layoutopt's column names -> the log's (``{"served_at": "timestamp"}``).
        absent: ``{key column: code}`` of the keys whose missing (null) cells mean a code
            (an optional component's absent state); elsewhere a missing label is an error.
        metrics: further metrics to count, each from the time column ``<metric>_at``
            (null while it has not happened; its delays are histogrammed like the clicks')
            or, failing that, a 0/1 column ``<metric>`` (mappable through ``columns``).

    Returns:
        :class:`EventTotals`.

    Columns that are not read are named in one
    :class:`~layoutopt.data.columns.ExtraColumnsWarning` once the log was read.

    Raises:
        ValueError: naming the source, the 1-based row, the column and the value, for a
            missing column, a bad mapping, a ``clicked`` cell that is not 0/1, a missing
            or unknown label, a missing ``served_at``, a time
            after ``now``, a click before its impression, or a bad ``round``; for a metric
            named twice, named ``clicks``, or with neither column.
    """
    now_us = parse_now(now)
    name = source if isinstance(source, str | Path) else type(source).__name__
    metrics = _check_metrics(metrics)
    batches, names = _open_batches(source, batch_size)
    key_names = [k for k, _ in keys]
    extra_known = [c for m in metrics for c in (f"{m}_at", m)]
    found = resolve_columns(
        names, columns, key_names + list(KNOWN_COLUMNS) + extra_known, str(name)
    )
    # (layoutopt's name, its time column, its flag column) per outcome; times say more than a
    # flag, so a flag beside them is extra
    outcomes = [("clicks", "clicked_at", "clicked")] + [(m, f"{m}_at", m) for m in metrics]
    for _, at, flag in outcomes:
        if at in found:
            found.pop(flag, None)
    missing = [c for c in key_names + ["served_at"] if c not in found]
    missing += [at for _, at, flag in outcomes if at not in found and flag not in found]
    if missing:
        further = (
            ", and <metric>_at (times) or <metric> (0/1) per further metric" if metrics else ""
        )
        raise ValueError(
            f"{name}: missing column(s) {missing}; an event log needs one column per "
            f"component/segment plus served_at and clicked_at (click times) or clicked "
            f"(0/1){further}, found {names}"
        )
    # the columns layoutopt writes next to labels (index, weight) are not extra
    extras = [c for c in names if c not in found.values() and c not in IGNORED_COLUMNS]
    has_round = "round" in found
    lookups = [{str(v): i for i, v in enumerate(labels)} for _, labels in keys]
    radices = [len(labels) for _, labels in keys] + [len(age_edges) - 1]
    acc = _Accumulator(radices, has_round, len(outcomes))
    timed = [at in found for _, at, _ in outcomes]
    delays = [np.zeros(len(DELAY_EDGES) - 1, np.int64) for _ in outcomes]
    offset = 0
    zones: dict[str, Any] = {}
    for batch in batches(list(found.values())):
        n = batch.num_rows
        if n == 0:
            continue
        where = (name, offset)
        codes = [
            _label_codes(
                batch.column(found[col]), lookup, found[col], labels, where, (absent or {}).get(col)
            )
            for (col, labels), lookup in zip(keys, lookups, strict=True)
        ]
        col = found["served_at"]
        served = _micros(batch.column(col), col, where, zones, allow_null=False)
        _check_times(served, np.full(n, -1, np.int64), now_us, where)
        events = []
        for (_, at, flag), hist in zip(outcomes, delays, strict=True):
            column = found.get(at, found.get(flag))
            events.append(
                _outcome(
                    batch.column(column), column, at in found, (served, now_us), hist, where, zones
                )
            )
        age = (now_us - served) / _US_PER_HOUR
        cohort = np.clip(np.searchsorted(age_edges, age, side="right") - 1, 0, radices[-1] - 1)
        rounds = _rounds(batch.column(found["round"]), where, found["round"]) if has_round else None
        acc.add(codes + [cohort], rounds, age, events)
        offset += n
    if offset == 0:
        raise ValueError(f"{name}: no events; at least one impression is needed")
    warn_extra(extras, str(name))
    out = acc.result()
    counts = dict(zip(metrics, out["outcomes"][1:], strict=True))
    return EventTotals(
        out["codes"][:, :-1].astype(np.int32),
        out["age_sum"] / out["impressions"],
        out["round"],
        out["impressions"],
        out["outcomes"][0],
        delays[0] if timed[0] else None,
        offset,
        counts,
        {m: h for m, h, t in zip(metrics, delays[1:], timed[1:], strict=True) if t},
    )


def _check_metrics(metrics) -> tuple[str, ...]:
    names = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    bad = [m for m in names if not isinstance(m, str) or not m or m == "clicks"]
    if bad or len(set(names)) != len(names):
        raise ValueError(
            f"metrics must be distinct names other than 'clicks' (the primary outcome, read "
            f"from clicked_at or clicked); got {list(names)}"
        )
    return names


def _outcome(array, column: str, timed: bool, times, hist, where, zones) -> np.ndarray:
    """One outcome of a batch as a bool array: a time column (null: not yet; its delays are
    added to ``hist``) or a 0/1 flag column."""
    if not timed:
        return _flags(array, column, where)
    served, now_us = times
    at = _micros(array, column, where, zones, allow_null=True)
    _check_times(served, at, now_us, where, column)
    happened = at >= 0
    delay = (at[happened] - served[happened]) / _US_PER_HOUR
    bins = np.clip(np.searchsorted(DELAY_EDGES, delay, side="right") - 1, 0, None)
    hist += np.bincount(bins, minlength=len(hist))
    return happened


# ---------------------------------------------------------------------------- helpers
def _open_batches(source, batch_size):
    """``(batches(columns) -> iterator of RecordBatch, column names)`` for any source."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if isinstance(source, str | Path):
        path = Path(source)
        if not path.exists():
            raise ValueError(f"{path}: no such file or directory")
        files = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
        if not files:
            raise ValueError(f"{path}: no .parquet files in this directory")
        is_csv = path.is_file() and table_format(path) == "csv"  # .csv or gzip'd .csv.gz
        fmt = "csv" if is_csv else "parquet"
        try:
            names = _csv_names(path) if is_csv else _parquet_names(pq.ParquetFile(files[0]))
        except (pa.ArrowInvalid, OSError) as err:
            raise ValueError(f"{path}: not a readable {fmt} event log ({err})") from None

        def batches(columns):
            # One row group / CSV block at a time: pyarrow.dataset's scanner reads a whole
            # file ahead of a slower consumer, which made peak memory grow with the log.
            try:
                if is_csv:
                    yield from _csv_reader(path, columns, batch_size)
                    return
                for file in files:
                    # pre_buffer (pyarrow's default) keeps coalesced column chunks of row
                    # groups already read alive, so the pool's peak grew with the log
                    # (123 MiB at 5M rows, 264 MiB at 20M); without it the peak is flat.
                    reader = pq.ParquetFile(file, pre_buffer=False)
                    yield from reader.iter_batches(batch_size=batch_size, columns=columns)
            except (pa.ArrowInvalid, OSError) as err:
                raise ValueError(f"{path}: unreadable {fmt} data ({err})") from None

        return batches, names
    if isinstance(source, pa.Table):
        table = source
    else:
        if not isinstance(source, pd.DataFrame):
            raise ValueError(
                f"events must be a file path, a pandas DataFrame or a pyarrow Table, got "
                f"{type(source).__name__}"
            )
        table = pa.Table.from_pandas(source, preserve_index=False)

    def from_table(columns):
        return table.select(columns).to_batches(max_chunksize=batch_size)

    return from_table, [str(c) for c in table.column_names]


def _parquet_names(pf) -> list[str]:
    """The data columns of a Parquet file: a pandas index stored as columns is not one."""
    meta = pf.schema_arrow.pandas_metadata or {}
    index = {c for c in meta.get("index_columns", []) if isinstance(c, str)}
    return [c for c in pf.schema_arrow.names if c not in index]


def _csv_names(path: Path) -> list[str]:
    import pyarrow.csv as pcsv

    with pcsv.open_csv(path) as reader:
        return list(reader.schema.names)


def _csv_reader(path: Path, columns, batch_size: int):
    import pyarrow as pa
    import pyarrow.csv as pcsv

    # ~100 bytes a row: blocks of about batch_size rows, capped at 16 MiB. One thread: the
    # threaded reader parses blocks ahead of the consumer and held several 100 MiB blocks
    # at once (peak RSS grew with the log: 721 MiB at 2M rows, 1,159 MiB at 8M).
    block = max(1 << 16, min(batch_size * 100, 1 << 22))
    read = pcsv.ReadOptions(block_size=block, use_threads=False)
    # Labels and times as text in every block: types inferred from the first block (an
    # all-empty clicked_at is "null") would not fit a later block.
    text = {c: pa.string() for c in columns if c != "round"}
    convert = pcsv.ConvertOptions(
        include_columns=columns, column_types=text, strings_can_be_null=False
    )
    with pcsv.open_csv(path, read_options=read, convert_options=convert) as reader:
        yield from reader


def _fail(where, r: int, column: str, what: str) -> None:
    name, offset = where
    raise ValueError(f"{name}: row {offset + r + 1}, column {column!r}: {what}")


def _label_codes(array, lookup: dict, column: str, labels, where, absent=None) -> np.ndarray:
    """Codes of a label column: dictionary-encode the batch, map the (few) distinct values.

    A null cell is code ``absent`` when it is given, else a missing label (an error)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not pa.types.is_dictionary(array.type):
        if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
            array = pc.cast(array, pa.string())
        array = pc.dictionary_encode(array)
    values = array.dictionary.to_pylist()
    null = -2 if absent is None else absent
    table = np.array([lookup.get(str(v), -1) for v in values] + [null], dtype=np.int64)
    idx = array.indices.fill_null(len(values)).to_numpy(zero_copy_only=False)
    codes = table[idx]
    bad = np.flatnonzero(codes < 0)
    if bad.size:
        r = int(bad[0])
        what = "missing label" if codes[r] == -2 else f"unknown variant {values[idx[r]]!r}"
        _fail(where, r, column, f"{what}; valid: {list(labels)}")
    return codes


# A time of day followed by a zone: Z, +hh, +hhmm or +hh:mm (a date's "-01" is no zone).
_ZONE = r"[T ]\d\d:\d\d(?::\d\d(?:[.,]\d*)?)?\s*(?:[Zz]|[+-]\d\d(?::?\d\d)?)$"
# A date, optionally with a time of day, and no zone.
_NAIVE = r"^\s*\d{4}-\d\d-\d\d(?:[T ]\d\d:\d\d(?::\d\d(?:[.,]\d*)?)?)?\s*$"


def _micros(array, column: str, where, zones: dict, allow_null: bool) -> np.ndarray:
    """A timestamp column as int64 UTC microseconds; null -> -1 where allowed.

    Text times are all naive (read as UTC) or all with a zone offset, across both time
    columns and every batch (``zones`` remembers the first of each kind seen).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    t = array.type
    try:
        if pa.types.is_null(t):
            us = pa.nulls(len(array), pa.int64())  # nothing clicked yet
        else:
            if pa.types.is_timestamp(t):
                target = pa.timestamp("us", tz=t.tz)
            elif pa.types.is_string(t) or pa.types.is_large_string(t):
                # Empty text is "no click yet".
                array = pc.if_else(pc.equal(pc.utf8_trim_whitespace(array), ""), None, array)
                # text is parsed to nanoseconds (what CSV inference read), then truncated
                array = pc.cast(array, _text_zone(array, column, where, zones), safe=False)
                target = pa.timestamp("us", tz=array.type.tz)
            else:
                raise pa.ArrowInvalid(f"type {t}")
            us = pc.cast(array, target, safe=False).cast(pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        bad = _first_bad_time(array)
        _fail(where, bad, column, f"{array[bad].as_py()!r} is not a timestamp")
    null = us.is_null().to_numpy(zero_copy_only=False)
    values = us.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    if null.any() and not allow_null:
        _fail(
            where, int(np.flatnonzero(null)[0]), column, "missing time; needed for every impression"
        )
    return np.where(null, -1, values)


def _text_zone(array, column: str, where, zones: dict):
    """The Arrow type to parse a text time column as (UTC when the times carry offsets);
    refuses naive and offset times mixed in the log."""
    import pyarrow as pa
    import pyarrow.compute as pc

    flags = pc.match_substring_regex(array, _ZONE).fill_null(False)
    naive = pc.match_substring_regex(array, _NAIVE).fill_null(False)
    for kind, mask in (("offset", flags), ("naive", naive)):
        mask = mask.to_numpy(zero_copy_only=False)
        rows = np.flatnonzero(mask)
        if rows.size and kind not in zones:
            r = int(rows[0])
            zones[kind] = (where[1] + r + 1, column, array[r].as_py())
    if len(zones) == 2:
        row, col, value = zones["offset"]
        nrow, ncol, nvalue = zones["naive"]
        _fail(
            (where[0], 0),
            max(row, nrow) - 1,
            col if row >= nrow else ncol,
            f"mixed naive and offset timestamps: row {row}, column {col!r} has a zone offset "
            f"({value!r}) but row {nrow}, column {ncol!r} has none ({nvalue!r}); give every "
            "time with an offset (e.g. +00:00) or none (naive times are read as UTC)",
        )
    return pa.timestamp("ns", tz="UTC") if "offset" in zones else pa.timestamp("ns")


def _first_bad_time(array) -> int:
    import pyarrow as pa
    import pyarrow.compute as pc

    for r in range(len(array)):
        for target in (pa.timestamp("ns"), pa.timestamp("ns", tz="UTC")):
            try:
                pc.cast(array.slice(r, 1), target)
                break
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                continue
        else:
            return r
    return 0


def _check_times(served, clicked, now_us, where, column: str = "clicked_at") -> None:
    later = np.flatnonzero(served > now_us)
    if later.size:
        _fail(where, int(later[0]), "served_at", "served after now; check the now= argument")
    has = clicked >= 0
    what = "click" if column == "clicked_at" else "event"
    early = np.flatnonzero(has & (clicked < served))
    if early.size:
        _fail(where, int(early[0]), column, f"{what} before its impression's served_at")
    late = np.flatnonzero(has & (clicked > now_us))
    if late.size:
        _fail(where, int(late[0]), column, f"{what} after now; check the now= argument")


def _flags(array, column: str, where) -> np.ndarray:
    """A 0/1 ``clicked`` column (numbers, booleans or true/false text) as a bool array."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = array.type
    if pa.types.is_boolean(t):
        values = array.cast(pa.int8())
    elif pa.types.is_integer(t) or pa.types.is_floating(t):
        values = array
    elif pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t):
        text = pc.utf8_lower(pc.utf8_trim_whitespace(array.cast(pa.string())))
        values = pc.if_else(
            pc.is_in(text, pa.array(_TRUE)),
            1,
            pc.if_else(pc.is_in(text, pa.array(_FALSE)), 0, pa.scalar(None, pa.int64())),
        )
    else:
        _fail(where, 0, column, f"type {t} is not a 0/1 outcome; need 0 or 1 per impression")
    numbers = values.to_numpy(zero_copy_only=False).astype(np.float64)
    bad = np.flatnonzero(~((numbers == 0) | (numbers == 1)))
    if bad.size:
        r = int(bad[0])
        value = array[r].as_py()
        what = "missing value" if value is None else f"{value!r} is not 0 or 1"
        _fail(where, r, column, f"{what}; each row is one impression, clicked (1) or not (0)")
    return numbers == 1


def _rounds(array, where, column: str = "round") -> np.ndarray:
    import pyarrow as pa

    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        # a mapped round column of a CSV log is read as text, like the labels
        values = pd.to_numeric(array.to_pandas(), errors="coerce").to_numpy(dtype=np.float64)
    elif not (pa.types.is_integer(array.type) or pa.types.is_floating(array.type)):
        _fail(where, 0, column, f"type {array.type} is not a number; need whole numbers >= 0")
    else:
        values = array.to_numpy(zero_copy_only=False).astype(np.float64)
    with np.errstate(invalid="ignore"):
        bad = np.flatnonzero(~np.isfinite(values) | (values < 0) | (values != np.round(values)))
    if bad.size:
        r = int(bad[0])
        _fail(where, r, column, f"{array[r].as_py()!r} is not valid; need whole numbers >= 0")
    return values.astype(np.int64)


class _Accumulator:
    """Running per-group sums keyed by one int64 (mixed radix), merged batch by batch."""

    def __init__(self, radices: list[int], has_round: bool, num_outcomes: int = 1):
        self.radices = radices
        self.has_round = has_round
        self.keys = np.zeros((0,), np.int64)
        self.sums = np.zeros((2 + num_outcomes, 0))  # impressions, summed age, outcomes
        self.rounds = np.zeros((0,), np.int64)
        span = 1
        for r in radices:
            span *= r
        # Keys are one int64 while the radix product fits; rounds ride as a second key.
        if span >= 2**62:
            raise ValueError(
                f"too many distinct groups possible ({span:.3g}) for one int64 key; "
                "use fewer age cohorts"
            )

    def add(self, columns: list[np.ndarray], rounds, age, outcomes: list[np.ndarray]) -> None:
        key = np.zeros(len(age), np.int64)
        for col, radix in zip(columns, self.radices, strict=True):
            key = key * radix + col
        if self.has_round:
            rk = np.stack([rounds, key], axis=1)
            uk, inv = np.unique(rk, axis=0, return_inverse=True)
            new_rounds, new_keys = uk[:, 0], uk[:, 1]
        else:
            new_keys, inv = np.unique(key, return_inverse=True)
            new_rounds = np.zeros(len(new_keys), np.int64)
        inv = inv.reshape(-1)
        m = len(new_keys)
        sums = np.stack(
            [
                np.bincount(inv, minlength=m).astype(np.float64),
                np.bincount(inv, weights=age, minlength=m),
            ]
            + [np.bincount(inv, weights=o, minlength=m) for o in outcomes]
        )
        self._merge(new_keys, new_rounds, sums)

    def _merge(self, keys, rounds, sums) -> None:
        both = np.stack(
            [np.concatenate([self.rounds, rounds]), np.concatenate([self.keys, keys])], axis=1
        )
        uk, inv = np.unique(both, axis=0, return_inverse=True)
        inv = inv.reshape(-1)
        total = np.concatenate([self.sums, sums], axis=1)
        self.sums = np.stack([np.bincount(inv, weights=t, minlength=len(uk)) for t in total])
        self.rounds, self.keys = uk[:, 0], uk[:, 1]

    def result(self) -> dict[str, Any]:
        codes = np.zeros((len(self.keys), len(self.radices)), np.int64)
        key = self.keys.copy()
        for j in range(len(self.radices) - 1, -1, -1):
            codes[:, j] = key % self.radices[j]
            key //= self.radices[j]
        return {
            "codes": codes,
            "round": self.rounds if self.has_round else None,
            "impressions": np.rint(self.sums[0]).astype(np.int64),
            "age_sum": self.sums[1],
            "outcomes": [np.rint(o).astype(np.int64) for o in self.sums[2:]],
        }
