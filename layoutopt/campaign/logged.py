"""Served rows that carry their assignment: propensities and the holdout flag, in and out.

A results table may carry, beside the columns of
:meth:`~layoutopt.data.observations.Observations.from_frame`, the columns that
:meth:`~layoutopt.Campaign.assign` writes: ``propensity`` (the probability with which the
row's layout was chosen), ``holdout`` (the unit is in the holdout), and ``unit`` and
``redrawn`` (kept by the site, ignored here). :func:`split_serving_columns` takes them off
before the rows are validated as observations and aggregates them per (layout, segment,
round, propensity, holdout): what the holdout lift (:func:`holdout_lift`), the sample-ratio
checks and off-policy evaluation read back (:func:`logged_frame`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from layoutopt.campaign.ingest import read_chunks
from layoutopt.data.tables import frame_arrays
from layoutopt.model.space import LayoutSpace

__all__ = [
    "SERVING_COLUMNS",
    "Lift",
    "holdout_lift",
    "logged_frame",
    "served_frame",
    "split_serving_columns",
]

#: Columns of an assignments file that a results table may keep.
SERVING_COLUMNS = ("unit", "propensity", "holdout", "redrawn")

_TRUE, _FALSE = {"true", "1", "yes", "t"}, {"false", "0", "no", "f", ""}


def _flags(column: pd.Series, source: str) -> np.ndarray:
    text = column.astype(str).str.strip().str.lower()
    bad = ~text.isin(_TRUE | _FALSE)
    if bad.any():
        r = int(np.flatnonzero(bad.to_numpy())[0])
        raise ValueError(
            f"{source}: row {r + 1}, column 'holdout': {str(column.iloc[r])!r} is not a flag; "
            "use true/false or 1/0"
        )
    return text.isin(_TRUE).to_numpy()


def _propensities(column: pd.Series, source: str) -> np.ndarray:
    values = pd.to_numeric(column, errors="coerce").to_numpy(np.float64)
    bad = ~((values > 0) & (values <= 1))
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{source}: row {r + 1}, column 'propensity': {str(column.iloc[r])!r}; a propensity "
            "is the probability with which the row's layout was chosen, in (0, 1]"
        )
    return values


def served_frame(path, chunk_rows: int) -> pd.DataFrame | None:
    """The whole results file when it carries serving columns (``propensity``, ``holdout``,
    ...), else None (then it is read chunk by chunk)."""
    chunks = read_chunks(path, chunk_rows)
    head = next(chunks)
    if not any(str(c) in SERVING_COLUMNS for c in head.columns):
        chunks.close()
        return None
    return pd.concat([head, *chunks], ignore_index=True)


def split_serving_columns(
    df: pd.DataFrame, space: LayoutSpace, source: str, columns: Mapping[str, str] | None = None
) -> tuple[pd.DataFrame, list[dict[str, Any]] | None]:
    """The table without its serving columns, and its logged rows (None without
    ``propensity`` and ``holdout`` columns).

    The rest of the table is read as :meth:`Observations.from_frame` reads it (``columns``
    maps layoutopt's names to the table's; without an ``impressions`` column every row is
    one impression, e.g. the rows :meth:`Campaign.assign` wrote, with a 0/1 ``clicks``).

    Raises:
        ValueError: naming the row and column of a bad propensity, flag, label or count.
    """
    present = [c for c in SERVING_COLUMNS if c in df.columns]
    if not present:
        return df, None
    rest = df.drop(columns=present)
    if "propensity" not in present and "holdout" not in present:
        return rest, None
    arrays = frame_arrays(rest, space, source, columns)
    keys = pd.DataFrame({"codes": [",".join(map(str, c)) for c in arrays.codes.tolist()]})
    if arrays.segments is not None:
        keys["segment"] = [json.dumps(space.segment_of(int(g))) for g in arrays.segments]
    else:
        keys["segment"] = None
    rounds = arrays.time.get("round")
    keys["round"] = -1 if rounds is None else rounds
    keys["propensity"] = (
        _propensities(df["propensity"], source) if "propensity" in present else np.nan
    )
    keys["holdout"] = _flags(df["holdout"], source) if "holdout" in present else False
    keys["impressions"] = arrays.impressions
    keys["clicks"] = arrays.clicks
    group = ["codes", "segment", "round", "propensity", "holdout"]
    agg = keys.fillna({"segment": "", "propensity": -1.0}).groupby(group, sort=False).sum()
    rows = []
    for (c, g, r, p, h), counts in agg.iterrows():
        rows.append(
            {
                "codes": c,
                "segment": g or None,
                "round": None if r < 0 else int(r),
                "propensity": None if p < 0 else float(p),
                "holdout": bool(h),
                "impressions": int(counts["impressions"]),
                "clicks": int(counts["clicks"]),
            }
        )
    return rest, rows


def logged_frame(space: LayoutSpace, rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Stored logged rows as a frame: ``index`` (current space), ``segment`` (dict or None),
    ``round``, ``propensity``, ``holdout``, ``impressions``, ``clicks``."""
    cols = ["index", "segment", "round", "propensity", "holdout", "impressions", "clicks"]
    if not rows:
        return pd.DataFrame(columns=cols)
    codes = np.array([[int(c) for c in r["codes"].split(",")] for r in rows], np.int64)
    frame = pd.DataFrame(rows)
    frame["index"] = space.indices(codes)
    frame["segment"] = [None if s is None else json.loads(s) for s in frame["segment"]]
    return frame[cols]


class Lift(NamedTuple):
    """The campaign's traffic against the holdout's.

    Attributes:
        campaign_ctr, holdout_ctr: pooled click-through of each (clicks / impressions).
        lift: posterior mean of the relative lift ``ctr_campaign / ctr_holdout - 1``.
        lower, upper: its credible interval at ``level``.
        level: the interval's level.
        p_better: posterior probability that the campaign's CTR is the higher.
        campaign_impressions, holdout_impressions: the impressions behind each.
    """

    campaign_ctr: float
    holdout_ctr: float
    lift: float
    lower: float
    upper: float
    level: float
    p_better: float
    campaign_impressions: int
    holdout_impressions: int


def holdout_lift(
    frame: pd.DataFrame, *, level: float = 0.9, num_draws: int = 20_000, seed: int
) -> Lift:
    """Lift of the campaign's traffic over the holdout: Beta(1 + c, 1 + n - c) posteriors
    of the two pooled CTRs, the relative lift by Monte Carlo.

    Args:
        frame: :func:`logged_frame` rows (their ``holdout`` flag splits them).
        level: level of the interval.
        num_draws: Monte Carlo draws (the interval's ends move by about
            ``1 / sqrt(num_draws)`` of the posterior sd between seeds).
        seed: seed of the draws.

    Raises:
        ValueError: when either side has no impressions.
    """
    held = frame["holdout"].astype(bool).to_numpy()
    n = frame["impressions"].to_numpy(np.int64)
    c = frame["clicks"].to_numpy(np.int64)
    nc, cc, nh, ch = n[~held].sum(), c[~held].sum(), n[held].sum(), c[held].sum()
    if nc == 0 or nh == 0:
        raise ValueError(
            "holdout lift needs impressions from both the holdout and the campaign; ingest "
            "results with a 'holdout' column (as `campaign assign` writes it)"
        )
    rng = np.random.default_rng(seed)
    pc = rng.beta(1 + cc, 1 + nc - cc, num_draws)
    ph = rng.beta(1 + ch, 1 + nh - ch, num_draws)
    lift = pc / ph - 1.0
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(lift, [alpha, 1.0 - alpha])
    return Lift(
        float(cc / nc), float(ch / nh), float(lift.mean()), float(lo), float(hi),
        float(level), float((pc > ph).mean()), int(nc), int(nh),
    )  # fmt: skip
