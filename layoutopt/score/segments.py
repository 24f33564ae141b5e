"""The best layout of every audience, beside the one pick for the traffic mix."""

from __future__ import annotations

import pandas as pd

from layoutopt.infer.posterior import Posterior
from layoutopt.model.core import has_segments
from layoutopt.score.scoring import best_layout
from layoutopt.score.target import segment_shares

__all__ = ["best_by_segment"]


def best_by_segment(
    posterior: Posterior, level: float = 0.9, seed: int | None = None
) -> pd.DataFrame:
    """The best layout of every segment, and the one best layout for the traffic mix.

    For each segment ``g`` the layout of highest posterior mean CTR in ``g`` (exactly as
    :func:`layoutopt.scoring.best_layout` with ``segment=g``), and a last row for the
    traffic mix (``segment=None``: the layout best for everyone).

    Args:
        posterior: a posterior fitted on a space with segments.
        level: credible level of the intervals.
        seed: seed of the candidate search of :func:`~layoutopt.scoring.best_layout`,
            needed only for spaces too large to enumerate.

    Returns:
        DataFrame, one row per segment then one for the mix: ``segment`` (e.g.
        ``"member=prime"``, or ``"all (traffic mix)"``), one column per context variable
        (empty on the mix row), ``share`` (observed share of impressions), ``index``, one
        label column per component, ``mean``, ``lower``, ``upper`` and ``p_best`` (within
        that segment, or under the mix).

    Raises:
        ValueError: for a posterior without segment terms.
    """
    space = posterior.space
    if not has_segments(posterior.params):
        raise ValueError("best_by_segment needs a posterior fitted on a space with segments")
    shares = segment_shares(posterior)
    rows = []
    for g in range(space.num_segments):
        segment = space.segment_of(g)
        pick = best_layout(posterior, level=level, segment=segment, seed=seed)
        rows.append(_row(space.segment_label(g), segment, shares[g], pick))
    pick = best_layout(posterior, level=level, segment=None)
    empty = dict.fromkeys(space.segment_names, "")
    rows.append(_row("all (traffic mix)", empty, 1.0, pick))
    return pd.DataFrame(rows)


def _row(label: str, segment: dict, share: float, pick) -> dict:
    row = {"segment": label, **segment, "share": float(share), "index": int(pick.index)}
    row.update(pick.layout)
    row.update(
        mean=float(pick.mean), lower=float(pick.lower), upper=float(pick.upper), p_best=pick.p_best
    )
    return row
