"""One driver for every campaign: play a policy round after round.

Each round the driver asks the policy for an :class:`~layoutopt.policies.Allocation`, splits
the batch's impressions by it, serves them (``serve(codes, impressions, key) -> clicks``: a
synthetic world in :func:`layoutopt.simulate.run_campaign`, real traffic elsewhere), adds the
clicks to the running per-layout totals and hands a :class:`RoundInfo` to the callback. The
policy's next step sees everything observed so far; its pick after the last round comes from
one more step whose allocation is not served.

Keys: round r's JAX PRNG key is ``fold_in(key(seed), r)``, split once into the batch split's,
the serving's and the policy step's key; a longer budget therefore replays the same first
rounds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np

from layoutopt.data import Observations
from layoutopt.limits import check_seed
from layoutopt.policies import Allocation, Policy, PolicyInfo
from layoutopt.seeds import seed_of
from layoutopt.space import LayoutSpace

__all__ = ["RoundInfo", "run", "split_batch"]

# Round r's key is fold_in(key(seed), r); the policy's init and first step fold in this.
_SETUP = 2**31 - 1


class RoundInfo(NamedTuple):
    """What happened in one round.

    Attributes:
        round: 0-based round number.
        allocation: the policy's :class:`~layoutopt.policies.Allocation` for the round.
        codes: ``(n, K)`` layouts served (those that got impressions).
        impressions: ``(n,)`` impressions served to each.
        clicks: ``(n,)`` clicks observed on each.
        observations: everything observed up to and including this round.
        pick: index of the layout the policy would ship after this round.
        mean: the pick's estimated CTR.
        lower: lower end of its 90% credible interval (NaN for baselines).
        upper: upper end (NaN for baselines).
        p_best: its probability of being the best layout (NaN for baselines).
        posterior: the policy's fit after this round (None for baselines).
        converged: whether that fit converged.
        seconds: wall time of the round (split, serve, and the policy's next step).
    """

    round: int
    allocation: Allocation
    codes: np.ndarray
    impressions: np.ndarray
    clicks: np.ndarray
    observations: Observations
    pick: int
    mean: float
    lower: float
    upper: float
    p_best: float
    posterior: Any
    converged: bool
    seconds: float


def split_batch(allocation: Allocation, total: int, rng: np.random.Generator) -> np.ndarray:
    """Impressions per row of ``allocation`` summing to ``total`` (see ``Allocation.split``)."""
    w = np.clip(np.asarray(allocation.weights, dtype=np.float64), 0.0, None)
    if not len(w) or w.sum() <= 0:
        raise ValueError("an allocation needs at least one layout with a positive weight")
    w = w / w.sum()
    if allocation.split == "multinomial":
        return rng.multinomial(total, w).astype(np.int64)
    if allocation.split != "round":
        raise ValueError(
            f"allocation split must be 'multinomial' or 'round', got {allocation.split!r}"
        )
    raw = w * total
    n = np.floor(raw).astype(np.int64)
    short = total - int(n.sum())
    if short:
        n[np.argsort(-(raw - n), kind="stable")[:short]] += 1
    return n


class _Totals:
    """Running impressions and clicks per distinct served layout (host-side, by index)."""

    def __init__(self, space: LayoutSpace):
        self.space = space
        self.index = np.zeros(0, np.int64)
        self.codes = np.zeros((0, space.num_components), np.int32)
        self.imp = np.zeros(0, np.int64)
        self.clk = np.zeros(0, np.int64)

    def add(self, codes, impressions, clicks) -> Observations:
        idx = self.space.indices(codes)
        index = np.concatenate([self.index, idx])
        uniq, first, inv = np.unique(index, return_index=True, return_inverse=True)
        all_codes = np.concatenate([self.codes, codes])
        self.imp = np.bincount(inv, np.concatenate([self.imp, impressions]), len(uniq))
        self.clk = np.bincount(inv, np.concatenate([self.clk, clicks]), len(uniq))
        self.imp, self.clk = self.imp.astype(np.int64), self.clk.astype(np.int64)
        self.index, self.codes = uniq, all_codes[first]
        return Observations.from_codes(self.space, self.codes, self.imp, self.clk, "campaign")


def run(
    policy: Policy,
    space: LayoutSpace,
    serve: Callable[[np.ndarray, np.ndarray, jax.Array], np.ndarray],
    *,
    budget: int,
    batch_size: int,
    seed: int,
    callback: Callable[[RoundInfo], None] | None = None,
):
    """Play ``policy`` for ``budget`` impressions in rounds of ``batch_size``.

    A campaign has ``ceil(budget / batch_size)`` rounds; the last may be smaller.

    Args:
        policy: a :class:`~layoutopt.policies.Policy`.
        space: the layout space.
        serve: ``serve(codes, impressions, key) -> clicks`` for ``(n, K)`` codes and ``(n,)``
            impressions.
        budget: total impressions.
        batch_size: impressions per round.
        seed: integer seed of the whole campaign (same seed, same campaign).
        callback: called with every round's :class:`RoundInfo` (printing, progress bars,
            recording).

    Returns:
        ``(state, observations)``: the policy's final state and everything observed.
    """
    if budget <= 0 or batch_size <= 0:
        raise ValueError(f"budget and batch_size must be positive, got {budget}, {batch_size}")
    num_rounds = math.ceil(budget / batch_size)
    base = jax.random.key(check_seed(seed))
    # round r's key depends on r alone, so a longer budget replays the same first rounds
    k_init, k_first = jax.random.split(jax.random.fold_in(base, _SETUP))
    state = policy.init(space, k_init)
    state, alloc, _ = policy.step(state, None, k_first)
    totals = _Totals(space)
    obs = None
    for r in range(num_rounds):
        t0 = time.perf_counter()
        k_split, k_serve, k_step = jax.random.split(jax.random.fold_in(base, r), 3)
        n = split_batch(
            alloc,
            min(batch_size, budget - r * batch_size),
            np.random.default_rng(seed_of(k_split)),
        )
        keep = n > 0
        codes, n = np.asarray(alloc.codes, np.int32)[keep], n[keep]
        clicks = np.asarray(serve(codes, n, k_serve), np.int64)
        obs = totals.add(codes, n, clicks)
        served = alloc
        state, alloc, info = policy.step(state, obs, k_step)
        if callback is not None:
            callback(_round_info(r, served, codes, n, clicks, obs, info, time.perf_counter() - t0))
    return state, obs


def _round_info(r, alloc, codes, n, clicks, obs, info: PolicyInfo, seconds) -> RoundInfo:
    return RoundInfo(
        round=r,
        allocation=alloc,
        codes=codes,
        impressions=n,
        clicks=clicks,
        observations=obs,
        pick=info.pick,
        mean=float(info.mean),
        lower=float(info.lower),
        upper=float(info.upper),
        p_best=float(info.p_best),
        posterior=info.posterior,
        converged=info.converged,
        seconds=seconds,
    )
