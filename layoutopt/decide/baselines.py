"""The baselines of Hill et al. (2017), policies that fit no model.

:func:`uniform` is a classic A/B/n test and :func:`independent` Beta-Bernoulli Thompson
sampling with one arm per layout (their "N^D-MAB"). Both pool every segment and cohort of a
layout.

References:
    Hill, Nassif, Liu, Iyer and Vishwanathan, "An Efficient Bandit Algorithm for Realtime
    Multivariate Optimization", KDD 2017.
"""

from __future__ import annotations

import numpy as np

from layoutopt.data.observations import Observations
from layoutopt.decide.interface import Allocation, Policy, allowed_codes, no_info
from layoutopt.util.seeds import seed_of

__all__ = ["BASELINE_LIMIT", "independent", "uniform"]

#: Baselines keep one arm per allowed layout: they enumerate the space.
BASELINE_LIMIT = 1 << 22


def _layout_totals(obs: Observations) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(index, codes, impressions, clicks)`` per distinct layout, summed over segments and
    cohorts, sorted by index (the rows of ``obs`` themselves when it has one per layout)."""
    index = obs.space.indices(obs.codes)
    uniq, first, inv = np.unique(index, return_index=True, return_inverse=True)
    if len(uniq) == len(index):
        return index, obs.codes, obs.impressions, obs.clicks
    imp = np.bincount(inv, obs.impressions, len(uniq)).astype(np.int64)
    clk = np.bincount(inv, obs.clicks, len(uniq)).astype(np.int64)
    return uniq, obs.codes[first], imp, clk


# ------------------------------------------------------------------------------ baselines
def uniform() -> Policy:
    """A classic A/B/n test: every round spreads the batch evenly over all allowed layouts.

    The batch is split by largest-remainder rounding with the remainder going to layouts in
    a random order. The pick is the served layout with the highest observed CTR (summed
    over segments and rounds; late clicks count once they are seen).

    Returns:
        The :class:`Policy`.
    """

    def init(space, key):
        return allowed_codes(space, BASELINE_LIMIT)

    def step(allowed, obs, key):
        order = np.random.default_rng(seed_of(key)).permutation(len(allowed))
        alloc = Allocation(allowed[order], np.ones(len(allowed)), "round")
        if obs is None:
            return allowed, alloc, no_info()
        index, _, imp, clk = _layout_totals(obs)
        rate = clk / np.maximum(imp, 1)
        j = int(np.argmax(np.where(imp > 0, rate, -1.0)))
        return allowed, alloc, no_info(int(index[j]), rate[j])

    return Policy(init, step, "uniform")


def independent(draws_per_round: int = 1000) -> Policy:
    """Thompson sampling with an independent Beta(1, 1)-Bernoulli arm per layout ("N^D-MAB").

    Within a round the posterior is frozen (the paper also updates per batch of 1,000); each
    of ``draws_per_round`` impressions gets its own Beta draw and goes to that draw's argmax,
    so with ``draws_per_round`` equal to the batch size this is exact per-impression
    Thompson sampling with delayed updates. The pick is the most-served arm.

    Args:
        draws_per_round: Beta draws per round (set it to the batch size).

    Returns:
        The :class:`Policy`.
    """
    if draws_per_round < 1:
        raise ValueError(f"draws_per_round must be positive, got {draws_per_round}")

    def init(space, key):
        codes = allowed_codes(space, BASELINE_LIMIT)
        return codes, space.indices(codes)

    def step(state, obs, key):
        allowed, allowed_index = state
        a = np.ones(len(allowed))
        b = np.ones(len(allowed))
        info = no_info()
        if obs is not None:
            index, _, imp, clk = _layout_totals(obs)
            pos = np.searchsorted(allowed_index, index)
            a[pos] += clk
            b[pos] += imp - clk
            j = int(np.argmax(imp))
            info = no_info(int(allowed_index[pos[j]]), clk[j] / imp[j])
        rng = np.random.default_rng(seed_of(key))
        draws = rng.beta(a, b, size=(draws_per_round, len(allowed)))
        n = np.bincount(draws.argmax(axis=1), minlength=len(allowed))
        keep = n > 0
        return state, Allocation(allowed[keep], n[keep] / draws_per_round, "round"), info

    return Policy(init, step, "independent")
