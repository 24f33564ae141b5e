"""The traffic mix for the proposals: P(best) of the mixture CTR over a (restricted) space.

The mix itself is a :class:`~layoutopt.score.target.Target` of the grid engine (segment-folded
rows stacked along the draw axis, a block transform to the mixture CTR; see
:mod:`layoutopt.score.target`), so scoring, Parquet output and shards stream it like any other
pass. This module keeps the two names the proposals use.
"""

from __future__ import annotations

import numpy as np

from layoutopt.infer.posterior import Posterior
from layoutopt.model.space import LayoutSpace
from layoutopt.score.target import segment_shares, segment_view, value_target

__all__ = ["mix_draw_bests", "mix_p_best", "segment_shares", "segment_view"]


def mix_p_best(posterior: Posterior, space: LayoutSpace) -> tuple[np.ndarray, np.ndarray]:
    """Distinct per-draw argmax layouts of the mixture CTR and the share of draws of each.

    Args:
        posterior: a posterior with segment terms (its draws possibly subsampled), or an
            :class:`~layoutopt.score.objective.ObjectivePosterior` (the value's P(best)
            over the layouts that pass its guardrails).
        space: the space to maximise over: the posterior's, or one with extra forbidden
            rules (excluded layouts).

    Returns:
        ``(codes (n, K) int32, shares (n,))``, codes in index order; ties in a draw go to
        the lowest index. One engine pass, at any space size (within ``MAX_GRID_WORK``).
    """
    best = mix_draw_bests(posterior, space)
    codes, counts = np.unique(best, axis=0, return_counts=True)
    return codes.astype(np.int32), counts / posterior.num_draws


def mix_draw_bests(posterior: Posterior, space: LayoutSpace) -> np.ndarray:
    """``(S, K)`` codes of every draw's best layout of the mixture CTR (or objective value)
    over ``space``; ties go to the lowest index. One engine pass (:func:`mix_p_best` counts
    them)."""
    best = value_target(posterior, space).best(
        space, method="enumerate", seed=None, what="P(best) of the traffic mix"
    )
    return np.asarray(best, np.int32)
