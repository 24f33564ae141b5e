"""Checks and exact sums behind :meth:`Observations.from_codes`: segment codes, per-row
times, delay histograms, and per-group sums of int64 counts that stay exact past 2^53."""

from __future__ import annotations

import numpy as np

from layoutopt.model.delay_bins import DELAY_EDGES
from layoutopt.model.space import LayoutSpace
from layoutopt.util.limits import MAX_COUNT

__all__ = [
    "check_delay_counts",
    "check_metric_delays",
    "check_segment_codes",
    "check_time_array",
    "check_totals",
    "exact_sums",
    "time_rows",
]


def exact_sums(inverse: np.ndarray, counts: np.ndarray, n: int) -> np.ndarray:
    """Per-layout sums of int64 counts, exact (float64 sums round beyond 2^53), with the
    sums that would overflow int64 saturated so that :func:`_check_totals` refuses them."""
    out = np.zeros(n, np.int64)
    np.add.at(out, inverse, counts)
    approx = np.bincount(inverse, weights=counts.astype(np.float64), minlength=n)
    out[approx > 2.0**62] = np.iinfo(np.int64).max
    return out


def check_totals(space: LayoutSpace, codes: np.ndarray, impressions: np.ndarray, source: str):
    bad = np.flatnonzero(impressions > MAX_COUNT)
    if bad.size:
        r = int(bad[0])
        raise ValueError(
            f"{source}: the rows of layout {space.decode(codes[r])} add up to more than "
            f"2**53 = {MAX_COUNT} impressions, beyond the supported range of counts "
            "(exact in float64); scale the counts down"
        )


def check_segment_codes(space: LayoutSpace, segments, shape, source: str):
    if not space.segments:
        if segments is not None:
            raise ValueError(f"{source}: segment codes given but the space declares no segments")
        return None
    if segments is None:
        raise ValueError(
            f"{source}: the space has segments {list(space.segment_names)}; every row needs "
            "a segment code (segments=...)"
        )
    seg = np.asarray(segments)
    if seg.shape != tuple(shape) or not np.issubdtype(seg.dtype, np.integer):
        raise ValueError(f"{source}: segments must be {tuple(shape)} integer codes")
    bad = np.flatnonzero((seg < 0) | (seg >= space.num_segments))
    if bad.size:
        raise ValueError(
            f"{source}: row {bad[0]}: segment code {seg[bad[0]]} out of range "
            f"[0, {space.num_segments})"
        )
    return seg.astype(np.int32)


def check_time_array(values, name: str, n: int, source: str) -> np.ndarray:
    values = np.asarray(values)
    if values.shape != (n,) or not np.issubdtype(values.dtype, np.number):
        raise ValueError(f"{source}: {name} must be {n} numbers, got shape {values.shape}")
    values = values.astype(np.float64)
    bad = ~np.isfinite(values) | (values < 0)
    if name == "round":
        bad |= values != np.round(values)
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        valid = "whole numbers >= 0" if name == "round" else "finite hours >= 0"
        raise ValueError(f"{source}: row {r}: {name} = {values[r]!r}; need {valid}")
    return values


def time_rows(
    cls, space, codes, impressions, clicks, seg, source, *, age, round, delay_counts, counts=None
):
    """Observations summed per distinct (layout[, segment], age, round); see ``from_codes``."""

    n = len(codes)
    columns = [codes.astype(np.float64)]
    if seg is not None:
        columns.append(seg.astype(np.float64)[:, None])
    for name, values in (("age", age), ("round", round)):
        if values is not None:
            columns.append(check_time_array(values, name, n, source)[:, None])
    uniq, inverse = np.unique(np.concatenate(columns, axis=1), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    K = space.num_components
    imp = exact_sums(inverse, impressions, len(uniq))
    clk = exact_sums(inverse, clicks, len(uniq))
    summed = {m: exact_sums(inverse, c, len(uniq)) for m, c in (counts or {}).items()}
    check_totals(space, uniq[:, :K].astype(np.int32), imp, source)
    S = 0 if seg is None else 1
    out_seg = None if seg is None else uniq[:, K].astype(np.int32)
    out_age = uniq[:, K + S].copy() if age is not None else None
    out_round = uniq[:, -1].astype(np.int64) if round is not None else None
    if delay_counts is not None:
        delay_counts = check_delay_counts(delay_counts, source)
    codes = uniq[:, :K].astype(np.int32)
    return cls(
        space,
        codes,
        imp,
        clk,
        out_seg,
        age=out_age,
        round=out_round,
        delay_counts=delay_counts,
        counts=summed,
    )


def check_delay_counts(delay_counts, source: str) -> np.ndarray:
    """A histogram over ``DELAY_EDGES`` as int64, refusing any other shape or value."""
    delay_counts = np.asarray(delay_counts)
    bins = len(DELAY_EDGES) - 1
    if (
        delay_counts.shape != (bins,)
        or not np.issubdtype(delay_counts.dtype, np.number)
        or np.any(~np.isfinite(delay_counts) | (delay_counts < 0))
        or np.any(delay_counts != np.round(delay_counts))
    ):
        raise ValueError(
            f"{source}: delay_counts must be {bins} whole numbers >= 0 (a histogram over "
            "layoutopt.model.delay.DELAY_EDGES)"
        )
    return delay_counts.astype(np.int64)


def check_metric_delays(metric_delays, counts, source: str) -> dict[str, np.ndarray]:
    """Checked ``{metric: delay histogram}``, each metric one of ``counts``."""
    out = {}
    for name, hist in (metric_delays or {}).items():
        if name not in counts:
            raise ValueError(
                f"{source}: metric_delays names {name!r}, which these data do not count; "
                f"they count {['clicks', *counts]} (the clicks' delays are delay_counts)"
            )
        out[name] = check_delay_counts(hist, f"{source}: {name}")
    return out
