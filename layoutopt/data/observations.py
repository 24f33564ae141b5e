"""Observations: aggregated impressions and clicks per distinct tested layout.

Observations come in as a table (a pandas DataFrame, a CSV or a Parquet file) with one column
per component holding variant labels, plus ``impressions`` and ``clicks``. Every problem is
reported as a ``ValueError`` that names the source (file), the column, the row and the value,
and says what would be valid.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from layoutopt.data.columns import TIME_COLUMNS, check_allowed, layout_codes, plain, warn_extra
from layoutopt.data.events import aggregate_events
from layoutopt.data.readers import (
    CHUNK_ROWS,
    iter_table,
    read_csv,
    read_layout_codes,
    read_parquet,
    read_table,
    table_format,
)
from layoutopt.data.sums import (
    check_metric_delays,
    check_segment_codes,
    check_totals,
    exact_sums,
    time_rows,
)
from layoutopt.data.tables import check_metrics, frame_arrays, shift_rows, table_layout
from layoutopt.model.space import LayoutSpace
from layoutopt.util.limits import MAX_COUNT

# read_table, read_layout_codes and layout_codes live in readers/columns; they stay
# importable from here, where callers have always found them.
__all__ = ["Observations", "aggregate_file", "layout_codes", "read_layout_codes", "read_table"]


@dataclass(frozen=True, eq=False)
class Observations:
    """Click data aggregated to one row per distinct allowed layout.

    Attributes:
        space: the :class:`LayoutSpace` the layouts belong to.
        codes: ``(N, K)`` int32 variant codes of the distinct layouts, sorted by index.
        impressions: ``(N,)`` int64 impressions per layout.
        clicks: ``(N,)`` int64 clicks per layout (``0 <= clicks <= impressions``).
        segments: ``(N,)`` int32 segment codes (see :meth:`LayoutSpace.segment_code`) when the
            space has segments: then a row is one distinct (layout, segment), sorted by
            layout index, then segment. ``None`` for a space without segments.
        age: ``(N,)`` float64 hours since the row's impressions were served (their mean for
            a cohort), or None. With ``age`` the rows are (layout, age cohort) cells and a
            layout may appear on several rows; ``fit(delay=...)`` uses it.
        round: ``(N,)`` int64 campaign round the row's impressions were served in, or None;
            ``fit(half_life=...)`` uses it.
        delay_counts: histogram of the observed click delays (hours) over
            :data:`layoutopt.model.delay.DELAY_EDGES`, or None; ``fit(delay="auto")`` learns the
            delay distribution from it.
        counts: ``{metric: (N,) int64}``: the counts of further metrics (``signups``,
            ``dismissals``, ...), each out of the same ``impressions`` as ``clicks`` and
            summed with them row for row; empty for click data only. ``clicks`` is the
            primary metric; :meth:`metric` gives any metric's data as ordinary click data.
        metric_delays: ``{metric: delay histogram}`` of further metrics (event logs).
    """

    space: LayoutSpace
    codes: np.ndarray
    impressions: np.ndarray
    clicks: np.ndarray
    segments: np.ndarray | None = None
    # Time: optional per-row arrays (None when absent, so the plain paths are untouched).
    age: np.ndarray | None = None
    round: np.ndarray | None = None
    delay_counts: np.ndarray | None = None
    counts: dict[str, np.ndarray] = field(default_factory=dict)
    metric_delays: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def from_codes(
        cls,
        space: LayoutSpace,
        codes,
        impressions,
        clicks,
        source: str = "observations",
        segments=None,
        *,
        age=None,
        round=None,
        delay_counts=None,
        counts: Mapping[str, Any] | None = None,
        metric_delays: Mapping[str, Any] | None = None,
    ) -> Observations:
        """Build from integer codes; repeated rows are summed.

        Rows are summed per distinct layout (and segment), or per distinct (layout[,
        segment], age, round) when ``age`` or ``round`` is given.

        Args:
            space: the layout space.
            codes: ``(N, K)`` variant codes.
            impressions: ``(N,)`` counts.
            clicks: ``(N,)`` counts.
            source: name used at the start of error messages.
            segments: ``(N,)`` segment codes; required exactly when the space has segments.
            age: optional ``(N,)`` hours since serving (finite, >= 0).
            round: optional ``(N,)`` round numbers (whole numbers >= 0).
            delay_counts: optional histogram of observed click delays over
                :data:`layoutopt.model.delay.DELAY_EDGES`.
            counts: optional ``{metric: (N,) counts}`` of further metrics, each at most the
                row's impressions (see :attr:`counts`).
            metric_delays: optional ``{metric: histogram}`` (:attr:`metric_delays`).

        Raises:
            ValueError: for out-of-range codes, forbidden layouts, bad counts, ages, rounds
                or delay counts, missing, unexpected or out-of-range segment codes, or no
                rows.
        """
        seg = check_segment_codes(space, segments, np.shape(codes)[:1], source)
        codes = np.asarray(codes)
        impressions = np.asarray(impressions)
        clicks = np.asarray(clicks)
        if codes.ndim != 2 or codes.shape[1] != space.num_components:
            raise ValueError(
                f"{source}: codes must have shape (N, {space.num_components}), got {codes.shape}"
            )
        n = codes.shape[0]
        if n == 0:
            raise ValueError(f"{source}: no rows; at least one observed layout is needed")
        counts = {str(m): np.asarray(c) for m, c in (counts or {}).items()}
        outcomes = {"clicks": clicks, **counts}
        if impressions.shape != (n,) or any(c.shape != (n,) for c in outcomes.values()):
            raise ValueError(f"{source}: impressions and {list(outcomes)} need shape ({n},)")
        for k, card in enumerate(space.cardinalities):
            bad = np.flatnonzero((codes[:, k] < 0) | (codes[:, k] >= card))
            if bad.size:
                raise ValueError(
                    f"{source}: row {bad[0]}: code {codes[bad[0], k]} out of range "
                    f"[0, {card}) for component {space.components[k]!r}"
                )
        codes = codes.astype(np.int32)
        for name, arr in (("impressions", impressions), *outcomes.items()):
            if not np.issubdtype(arr.dtype, np.number) or np.any(~np.isfinite(arr)):
                raise ValueError(f"{source}: column {name!r} must hold finite numbers")
            bad = np.flatnonzero((arr < 0) | (arr != np.round(arr)) | (arr > MAX_COUNT))
            if bad.size:
                raise ValueError(
                    f"{source}: row {bad[0]}: {name} = {plain(arr[bad[0]])!r}; counts must "
                    f"be whole numbers in [0, 2**53 = {MAX_COUNT}]"
                )
        impressions = impressions.astype(np.int64)
        outcomes = {name: arr.astype(np.int64) for name, arr in outcomes.items()}
        for name, arr in outcomes.items():
            bad = np.flatnonzero(arr > impressions)
            if bad.size:
                raise ValueError(
                    f"{source}: row {bad[0]}: {name} ({arr[bad[0]]}) exceed impressions "
                    f"({impressions[bad[0]]})"
                )
        clicks = outcomes.pop("clicks")
        # Arrays number rows from 0, like the other messages here; tables from 1.
        check_allowed(codes, space, source, first_row=0)
        delays = check_metric_delays(metric_delays, outcomes, source)
        if age is not None or round is not None or delay_counts is not None:
            timed = time_rows(
                cls,
                space,
                codes,
                impressions,
                clicks,
                seg,
                source,
                age=age,
                round=round,
                delay_counts=delay_counts,
                counts=outcomes,
            )
            return dataclasses.replace(timed, metric_delays=delays)
        keys = codes if seg is None else np.concatenate([codes, seg[:, None]], axis=1)
        uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        imp = exact_sums(inverse, impressions, len(uniq))
        clk = exact_sums(inverse, clicks, len(uniq))
        summed = {m: exact_sums(inverse, c, len(uniq)) for m, c in outcomes.items()}
        K = space.num_components
        check_totals(space, uniq[:, :K], imp, source)
        uniq_seg = None if seg is None else uniq[:, K].astype(np.int32)
        codes = uniq[:, :K].astype(np.int32)
        return cls(space, codes, imp, clk, uniq_seg, counts=summed, metric_delays=delays)

    # ------------------------------------------------------------------ tables in and out
    @classmethod
    def from_frame(
        cls,
        df,
        space: LayoutSpace,
        source: str = "frame",
        *,
        columns: Mapping[str, str] | None = None,
        chunk_rows: int = CHUNK_ROWS,
        metrics=(),
    ) -> Observations:
        """Build from a table with one label column per component plus counts.

        The table needs one column per component of ``space`` holding variant labels, one
        column per context variable when the space has segments (values as declared in
        the space), and ``clicks``. With an ``impressions`` column each row holds counts;
        without one, each row is one impression (an impression-level log) and ``clicks``
        is its 0/1 outcome (0/1 numbers, booleans or ``true``/``false`` text; a value above
        1 is refused). Rows for the same layout (and segment) are summed, ``chunk_rows``
        at a time, so the summing adds no memory that grows with the rows. Labels are
        compared as strings, so a variant ``"1"`` matches ``1`` in an integer column.
        Optional columns ``age`` (hours since the row's impressions were served, for
        ``fit(delay=...)``) and ``round`` (for ``fit(half_life=...)``) make rows per
        (layout, age, round). Columns named ``index`` and ``weight`` (written by
        ``design``/``propose``) are ignored silently, so a proposal file with counts filled
        in can be read back; any other column is ignored with one
        :class:`~layoutopt.data.columns.ExtraColumnsWarning` naming them (issued once the
        table has been read without error). The input table is never modified.

        Rows are numbered from 1 in table order, not counting the header (so row N of a CSV
        file is on line N + 1), whatever the frame's index.

        Args:
            df: a :class:`pandas.DataFrame`.
            space: the :class:`LayoutSpace` the layouts belong to.
            source: name used at the start of error messages (a file path when read from
                disk).
            columns: layoutopt's column names -> the table's, for the columns named
                otherwise, e.g. ``{"clicks": "click", "headline": "title"}``; messages
                then name the table's column.
            chunk_rows: rows validated and summed at a time.
            metrics: names of further count columns (``("signups", "dismissals")``), each
                an outcome out of the row's impressions read exactly as ``clicks`` (0/1 on
                impression-level rows); they land in :attr:`counts`.

        Returns:
            Observations aggregated to one row per distinct layout, sorted by index.

        Raises:
            ValueError: naming ``source``, the column, the row and the value, for a missing
                or duplicate column, a bad mapping, an unknown variant label, a forbidden
                layout, a missing, non-numeric, non-integer or negative count, clicks above
                impressions (or above 1 without ``impressions``), or a table without rows.

        Examples:
            >>> import pandas as pd
            >>> space = LayoutSpace({"headline": ["h1", "h2"], "image": ["a", "b"]})
            >>> df = pd.DataFrame({"headline": ["h1", "h1"], "image": ["a", "a"],
            ...                    "impressions": [100, 50], "clicks": [5, 2]})
            >>> obs = Observations.from_frame(df, space)
            >>> obs.num_layouts, int(obs.impressions[0]), int(obs.clicks[0])
            (1, 150, 7)
            >>> log = pd.DataFrame({"headline": ["h1", "h2", "h1"], "image": ["a", "b", "a"],
            ...                     "click": [1, 0, 0]})
            >>> obs = Observations.from_frame(log, space, columns={"clicks": "click"})
            >>> obs.impressions.tolist(), obs.clicks.tolist()
            ([2, 1], [1, 0])
        """
        metrics = check_metrics(metrics)
        table_layout(df, space, source, columns, metrics)  # column errors before any row
        step = max(1, int(chunk_rows))
        chunks = (df.iloc[i : i + step] for i in range(0, max(len(df), 1), step))
        return aggregate_chunks(chunks, space, source, columns, metrics)[0]

    @classmethod
    def from_events(
        cls,
        events,
        space: LayoutSpace,
        now,
        *,
        batch_size: int = 1 << 20,
        columns: Mapping[str, str] | None = None,
        metrics: Sequence[str] = (),
    ) -> Observations:
        """Aggregate an impression-level event log into age cohorts, streaming.

        The log has one row per impression: one label column per component, one column per
        context variable when the space has segments, ``served_at`` (timestamp) and either
        ``clicked_at`` (timestamp; empty/null while there has been no click) or ``clicked``
        (the 0/1 outcome: numbers, booleans or ``true``/``false`` text), optionally
        ``round``. Any other column is ignored with one
        :class:`~layoutopt.data.columns.ExtraColumnsWarning` naming them. It is read in
        record batches of ``batch_size`` rows and summed per distinct (layout, segment,
        age cohort[, round]), so memory does not grow with the length of the log. Cohorts
        follow the geometric grid :data:`layoutopt.data.events.AGE_EDGES`; a cohort's
        ``age`` is the mean age of its impressions at ``now``. The observed click delays are
        kept as a histogram (``delay_counts``) for ``fit(delay="auto")``.

        A log with ``clicked`` instead of ``clicked_at`` has no delay information: the
        result has ``age`` but ``delay_counts`` is None (:attr:`has_delays` is False), so
        ``fit(delay="auto")`` warns that the delay cannot be measured and fits without one;
        give the delay (``delay=Exponential(rate=...)``) to discount young impressions.

        Args:
            events: a Parquet file, a directory of Parquet files, a CSV file, a pandas
                DataFrame or a pyarrow Table.
            space: the layout space.
            now: when the log was extracted (datetime, pandas Timestamp or ISO text; naive
                times are UTC). Clicks after ``now`` are errors, not future clicks.
            batch_size: rows per record batch.
            columns: layoutopt's column names -> the log's, e.g.
                ``{"served_at": "timestamp", "clicked": "click"}``.
            metrics: further metrics (:attr:`counts`), each from a time column
                ``<metric>_at`` (null: not yet; its delays are the metric's own
                :attr:`metric_delays`) or a 0/1 column ``<metric>``; mappable by ``columns``.

        Returns:
            Observations with ``age``, ``delay_counts`` (None for a ``clicked`` log), the
            ``round`` if the log has it, and the metrics' ``counts`` and ``metric_delays``.

        Raises:
            ValueError: naming the file, the 1-based row, the column and the value.

        Examples:
            >>> obs = Observations.from_events("events.parquet", space,
            ...                                now="2026-03-01T00:00")  # doctest: +SKIP
        """

        # segment variables are extra group-by keys after the components
        keys = [(c, space.variants[k]) for k, c in enumerate(space.components)]
        keys += [(name, values) for name, values in space.segments]
        absent = {space.components[k]: 0 for k in space.optional}  # null: not shown
        totals = aggregate_events(
            events,
            keys,
            now,
            batch_size=batch_size,
            columns=columns,
            absent=absent,
            metrics=metrics,
        )
        source = str(events) if isinstance(events, str | Path) else "events"
        K = space.num_components
        segments = None
        if space.segments:
            segments = np.zeros(len(totals.codes), np.int64)
            for j, (_, values) in enumerate(space.segments):
                segments = segments * len(values) + totals.codes[:, K + j]
        return cls.from_codes(
            space,
            totals.codes[:, :K],
            totals.impressions,
            totals.clicks,
            source=source,
            segments=segments,
            age=totals.age,
            round=totals.round,
            delay_counts=totals.delay_counts,
            counts=totals.counts,
            metric_delays=totals.metric_delays,
        )

    @classmethod
    def from_csv(
        cls,
        path: str | Path,
        space: LayoutSpace,
        *,
        columns: Mapping[str, str] | None = None,
        chunk_rows: int = CHUNK_ROWS,
        metrics=(),
    ) -> Observations:
        """Read observations from a CSV file (see :meth:`from_frame` for the columns).

        Every cell is read as text, so labels such as ``"1"`` or ``"None"`` stay labels. The
        file is read ``chunk_rows`` rows at a time: memory does not grow with its length.

        Raises:
            ValueError: naming the file, if it is missing or unreadable, or for any of the
                problems listed in :meth:`from_frame`.
        """
        if table_format(path) != "csv":
            # a file of another name is still read as CSV, whole
            frame = read_csv(path, space)
            return cls.from_frame(frame, space, str(path), columns=columns, metrics=metrics)
        return aggregate_file(path, space, columns=columns, chunk_rows=chunk_rows, metrics=metrics)[
            0
        ]

    @classmethod
    def from_parquet(
        cls,
        path: str | Path,
        space: LayoutSpace,
        *,
        columns: Mapping[str, str] | None = None,
        chunk_rows: int = CHUNK_ROWS,
        metrics=(),
    ) -> Observations:
        """Read observations from a Parquet file (see :meth:`from_frame` for the columns),
        ``chunk_rows`` rows at a time.

        Raises:
            ValueError: naming the file, if it is missing or not Parquet, or for any of the
                problems listed in :meth:`from_frame`.
        """
        if table_format(path) != "parquet":
            frame = read_parquet(path)
            return cls.from_frame(frame, space, str(path), columns=columns, metrics=metrics)
        kw = {"columns": columns, "chunk_rows": chunk_rows, "metrics": metrics}
        return aggregate_file(path, space, **kw)[0]

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        space: LayoutSpace,
        *,
        columns: Mapping[str, str] | None = None,
        chunk_rows: int = CHUNK_ROWS,
        metrics=(),
    ) -> Observations:
        """Read a ``.csv`` (or gzip'd ``.csv.gz``) or ``.parquet``/``.pq`` file, chosen by
        its suffix, streaming.

        Raises:
            ValueError: for another suffix, or as :meth:`from_csv` / :meth:`from_parquet`.
        """
        return aggregate_file(path, space, columns=columns, chunk_rows=chunk_rows, metrics=metrics)[
            0
        ]

    def to_frame(self):
        """The data as a pandas DataFrame: one label column per component, then
        ``impressions`` and ``clicks``; one row per distinct layout, in index order.

        :meth:`from_frame` reads it back to equal observations.
        """

        data: dict[str, Any] = {
            comp: pd.Categorical.from_codes(self.codes[:, k], categories=list(labels))
            for k, (comp, labels) in enumerate(
                zip(self.space.components, self.space.variants, strict=True)
            )
        }
        for name, values in self.space.segments:
            data[name] = pd.Categorical.from_codes(
                self.segment_values(name), categories=list(values)
            )
        data["impressions"] = self.impressions
        data["clicks"] = self.clicks
        data.update(self.counts)
        for name in TIME_COLUMNS:
            if getattr(self, name) is not None:
                data[name] = getattr(self, name)
        return pd.DataFrame(data)

    def segment_values(self, name: str) -> np.ndarray:
        """Per-row value codes (index into the declared values) of one context variable."""
        names = self.space.segment_names
        if self.segments is None or name not in names:
            raise ValueError(f"no context variable {name!r}; the space has {list(names)}")
        rest = np.asarray(self.segments, np.int64)
        for other, values in reversed(self.space.segments):
            rest, code = np.divmod(rest, len(values))
            if other == name:
                return code.astype(np.int32)
        raise AssertionError("unreachable")

    def segment_shares(self) -> np.ndarray | None:
        """Share of impressions in each segment, ``(G,)`` summing to 1 (``None`` without
        segments; uniform when there are no impressions). This is the "traffic mix observed"
        that scoring with ``segment=None`` averages over."""
        if self.segments is None:
            return None
        G = self.space.num_segments
        imp = np.bincount(self.segments, weights=self.impressions, minlength=G)
        total = imp.sum()
        return imp / total if total > 0 else np.full(G, 1.0 / G)

    # ----------------------------------------------------------------------- summaries
    def to_space(self, space: LayoutSpace) -> Observations:
        """The same data on another space, matched by component name and variant label.

        Segments, ``age``, ``round`` and ``delay_counts`` are carried over unchanged.

        Use it after :meth:`LayoutSpace.with_variants` / ``without_variants``: existing
        variants keep their labels, so old data line up with the new space (the codes
        change only if components were reordered; indices change when a component grew).

        Raises:
            ValueError: when a component or an observed variant is not in ``space``.
        """
        codes = space.codes_from(self.space, self.codes)
        segments = self.segments
        if segments is not None and list(space.segments) != list(self.space.segments):
            raise ValueError("to_space keeps the segments: the new space must declare the same")
        return Observations.from_codes(
            space,
            codes,
            self.impressions,
            self.clicks,
            source="observations",
            segments=segments,
            age=self.age,
            round=self.round,
            delay_counts=self.delay_counts,
            counts=self.counts,
            metric_delays=self.metric_delays,
        )

    @property
    def metric_names(self) -> tuple[str, ...]:
        """The metrics these data count: ``"clicks"``, then the keys of :attr:`counts`."""
        return ("clicks", *self.counts)

    def metric(self, name: str) -> Observations:
        """One metric's data as ordinary click data: its counts in ``clicks``, no ``counts``.

        Every fitter reads ``clicks``, so each metric gets its own additive + pairwise model
        by the existing ``fit`` on this view (same layouts, segments, ages and rounds).

        Raises:
            ValueError: for a metric these data do not count (the message lists those).
        """
        if name == "clicks":
            return dataclasses.replace(self, counts={}, metric_delays={})
        if name not in self.counts:
            raise ValueError(
                f"no metric {name!r} in these observations; they count {list(self.metric_names)}"
                " (read further count columns with metrics=(...))"
            )
        # the metric's own delays, or none: the clicks' delays are not a sign-up's
        delays = self.metric_delays.get(name)
        return dataclasses.replace(
            self, clicks=self.counts[name], counts={}, delay_counts=delays, metric_delays={}
        )

    @property
    def num_layouts(self) -> int:
        """Number of distinct observed layouts (distinct (layout, segment) pairs when the
        space has segments)."""
        if self.age is None and self.round is None:
            return int(self.codes.shape[0])
        keys = self.codes
        if self.segments is not None:
            keys = np.concatenate([keys, self.segments[:, None]], axis=1)
        return int(len(np.unique(keys, axis=0)))

    @property
    def num_rows(self) -> int:
        """Number of rows: distinct layouts, or (layout, age, round) cells with time columns."""
        return int(self.codes.shape[0])

    @property
    def has_delays(self) -> bool:
        """Whether the data carry observed click delays, which ``fit(delay="auto")`` needs.

        True only for an event log read with click times (``clicked_at``) in which at least
        one click was observed; False for tables of counts and for logs with a 0/1
        ``clicked`` column (the clicks are known, their delays are not).
        """
        return self.delay_counts is not None and int(self.delay_counts.sum()) > 0

    def __len__(self) -> int:
        return self.num_layouts

    def __repr__(self) -> str:
        imp, clk = int(self.impressions.sum()), int(self.clicks.sum())
        ctr = f"{clk / imp:.2%}" if imp else "n/a"
        return (
            f"Observations({self.num_layouts} layouts, {imp:,} impressions, {clk:,} clicks, "
            f"CTR {ctr}; {self.space!r})"
        )


def aggregate_file(
    path: str | Path,
    space: LayoutSpace,
    *,
    columns: Mapping[str, str] | None = None,
    chunk_rows: int = CHUNK_ROWS,
    metrics=(),
) -> tuple[Observations, int]:
    """Read, validate and sum a ``.csv``/``.parquet`` table ``chunk_rows`` rows at a time.

    Memory holds one chunk and the running sums (one row per distinct layout, segment,
    age and round), never the whole file. Columns (and ``metrics``) as
    :meth:`Observations.from_frame`.

    Returns:
        ``(observations, rows read)``.

    Raises:
        ValueError: naming the file, the row (counted from the file's first data row), the
            column and the value.
    """
    chunks = iter_table(path, space, chunk_rows)
    return aggregate_chunks(chunks, space, str(path), columns, check_metrics(metrics))


def aggregate_chunks(
    chunks: Iterable[pd.DataFrame],
    space: LayoutSpace,
    source: str,
    columns: Mapping[str, str] | None = None,
    metrics: tuple[str, ...] = (),
) -> tuple[Observations, int]:
    """Sum the chunks of one table as they come; the one extra-columns warning at the end.

    Returns:
        ``(observations, rows read)``.
    """
    total, rows, extras, hint = None, 0, [], ""
    for i, chunk in enumerate(chunks):
        if i == 0:
            _, extras, hint = table_layout(chunk, space, source, columns, metrics)
        if len(chunk) == 0:
            continue
        try:
            part = frame_arrays(chunk, space, source, columns, metrics)
        except ValueError as err:
            raise shift_rows(err, rows) from None
        arrays = [part.codes, part.impressions, part.clicks, part.segments]
        time = [part.time.get(name) for name in TIME_COLUMNS]
        counts = part.counts
        if total is not None:  # merge with the running sums: memory stays flat in rows
            old = [total.codes, total.impressions, total.clicks, total.segments]
            old_time = [getattr(total, name) for name in TIME_COLUMNS]
            arrays = [_join(a, b) for a, b in zip(old, arrays, strict=True)]
            time = [_join(a, b) for a, b in zip(old_time, time, strict=True)]
            counts = {m: _join(total.counts[m], c) for m, c in counts.items()}
        total = Observations.from_codes(
            space,
            *arrays[:3],
            source=source,
            segments=arrays[3],
            age=time[0],
            round=time[1],
            counts=counts,
        )
        rows += len(chunk)
    if total is None:
        raise ValueError(f"{source}: no data rows; at least one observed layout is needed")
    warn_extra(extras, source, hint)
    return total, rows


def _join(a, b):
    return None if a is None else np.concatenate([a, b])
