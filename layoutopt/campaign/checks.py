"""Checks that the traffic which arrived is the traffic that was planned (sample ratio).

A sample-ratio mismatch (SRM) means the served impressions per layout do not follow the
round's planned weights: a bug in serving, a layout that crashes for some browsers, bots.
The check is Pearson's chi-square of the observed impressions against ``N w`` (``w`` the
planned shares, renormalised over the layouts that were planned), with ``n - 1`` degrees of
freedom; a p-value below ``SRM_ALPHA`` flags the round, naming the layout whose observed
share is furthest from its plan in standard errors.

References:
    Fabijan, Gupchup, Gupta, Omhover, Qin, Vermeer & Dmitriev, *Diagnosing sample ratio
    mismatch in online controlled experiments* (KDD 2019).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.special import chdtrc

__all__ = ["SRM_ALPHA", "SampleRatio", "sample_ratio_check"]

#: p-values below this flag a mismatch (the usual threshold for SRM alarms, which are run on
#: every round of every experiment and so must rarely fire by chance).
SRM_ALPHA = 1e-3


class SampleRatio(NamedTuple):
    """The outcome of one sample-ratio check.

    Attributes:
        statistic: Pearson's chi-square.
        dof: degrees of freedom (planned layouts - 1).
        p_value: the upper tail probability of the statistic.
        mismatch: ``p_value < alpha``.
        worst: position (in the plan) of the layout furthest from its planned share, in
            standard errors (-1 when nothing was served).
        observed, expected: ``(n,)`` impressions served and planned (``N w``).
    """

    statistic: float
    dof: int
    p_value: float
    mismatch: bool
    worst: int
    observed: np.ndarray
    expected: np.ndarray


def sample_ratio_check(observed, weights, alpha: float = SRM_ALPHA) -> SampleRatio:
    """Pearson's chi-square of served impressions against the planned weights.

    Args:
        observed: ``(n,)`` impressions served per planned layout.
        weights: ``(n,)`` planned weights (renormalised; layouts of weight 0 must get none).
        alpha: the level below which the p-value flags a mismatch.

    Returns:
        A :class:`SampleRatio`. A layout of planned weight 0 that was served gives p = 0.

    Raises:
        ValueError: for mismatched lengths, negative counts or weights, or no positive
            weight.
    """
    obs = np.asarray(observed, np.float64).reshape(-1)
    w = np.asarray(weights, np.float64).reshape(-1)
    if obs.shape != w.shape or np.any(obs < 0) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(
            "a sample-ratio check needs one non-negative count and weight per planned layout"
        )
    total = obs.sum()
    w = w / w.sum()
    expected = total * w
    if total == 0:
        return SampleRatio(0.0, len(w) - 1, 1.0, False, -1, obs, expected)
    planned = w > 0
    if np.any(obs[~planned] > 0):
        worst = int(np.flatnonzero(~planned & (obs > 0))[0])
        return SampleRatio(np.inf, len(w) - 1, 0.0, True, worst, obs, expected)
    stat = float(np.sum((obs[planned] - expected[planned]) ** 2 / expected[planned]))
    dof = int(planned.sum()) - 1
    # chdtrc is chi2.sf's own kernel, without importing scipy.stats (0.3 s at status's start)
    p = float(chdtrc(dof, stat)) if dof > 0 else 1.0
    z = np.where(planned, (obs - expected) / np.sqrt(np.maximum(expected * (1 - w), 1e-300)), 0)
    return SampleRatio(stat, dof, p, p < alpha, int(np.argmax(np.abs(z))), obs, expected)
