"""The policy interface: what a policy is, and what its step returns.

A policy is ``Policy(init, step)``, a pair of pure functions (the shape of optax's
``GradientTransformation`` and blackjax's kernels)::

    state = policy.init(space, key)
    state, allocation, info = policy.step(state, observations, key)

The factories are in :mod:`layoutopt.decide.policies`; the one loop that plays them round
after round is :mod:`layoutopt.decide.driver`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np

from layoutopt.data.observations import Observations
from layoutopt.infer.posterior import Posterior
from layoutopt.model.space import LayoutSpace

__all__ = ["SPLITS", "Allocation", "Policy", "PolicyInfo", "allowed_codes", "no_info"]

#: How an allocation's weights become impression counts (see :class:`Allocation`).
SPLITS = ("multinomial", "round")


class Allocation(NamedTuple):
    """What to serve in the next batch.

    Attributes:
        codes: ``(n, K)`` int32 variant codes of distinct allowed layouts.
        weights: ``(n,)`` non-negative traffic shares (normalised by the driver).
        split: how a batch is divided by the weights: ``"multinomial"`` (each impression
            drawn independently, as per-impression Thompson sampling would) or ``"round"``
            (largest-remainder rounding of ``batch * weight``, ties in a random order).
        segments: ``(n,)`` segment code each row is meant for, or None: every segment is
            served all rows. With segment codes, a segment's traffic is split by the weights
            of its own rows only.
    """

    codes: np.ndarray
    weights: np.ndarray
    split: str
    segments: np.ndarray | None = None


class PolicyInfo(NamedTuple):
    """What a policy would ship now, given the observations of its step.

    Attributes:
        pick: mixed-radix index of the layout it would ship (-1 before any observation).
        mean: its estimated CTR (posterior mean, or observed CTR for the baselines).
        lower: lower end of its 90% credible interval (NaN for the baselines).
        upper: upper end (NaN for the baselines).
        p_best: its posterior probability of being the best layout (NaN for baselines).
        posterior: the fitted :class:`~layoutopt.infer.posterior.Posterior` (None for baselines).
        converged: whether the step's fit reported convergence (True without a fit).
        segment_picks: ``(G,)`` the layout it would ship to each segment code when it picks
            per segment (None: ``pick`` for every segment).
        scored: what the pick was scored on when that is not ``posterior`` (the
            :class:`~layoutopt.score.objective.ObjectivePosterior` of a policy on an
            objective, :func:`~layoutopt.decide.objective_policy.on_objective`); the
            driver's stopping rule decides on it. None: the posterior.
    """

    pick: int
    mean: float
    lower: float
    upper: float
    p_best: float
    posterior: Posterior | None
    converged: bool
    segment_picks: np.ndarray | None = None
    scored: Any = None


class Policy(NamedTuple):
    """A policy: a pair of pure functions, ``init`` and ``step``.

    Attributes:
        init: builds the policy's state for a space from a JAX PRNG key.
        step: given everything observed so far (or None), returns the new state, the
            :class:`Allocation` of the next batch and a :class:`PolicyInfo`.
        name: a short label for tables (``"thompson"``, ``"uniform"``, ...).
        resume: ``resume(state, first, rounds, fitted)``: the state ``init`` gave, turned
            into the state after ``rounds`` rounds whose first fit saw the observations
            ``first``; ``fitted`` is None or ``(observations, posterior)`` of the latest fit,
            reused by a step on those same observations. A store picks a campaign up at
            any round this way without replaying every step (None: the state does not
            depend on the rounds played).
    """

    init: Callable[[LayoutSpace, jax.Array], Any]
    step: Callable[[Any, Observations | None, jax.Array], tuple[Any, Allocation, PolicyInfo]]
    name: str

    resume: Callable[..., Any] | None = None


def no_info(pick: int = -1, mean: float = math.nan) -> PolicyInfo:
    """A :class:`PolicyInfo` without a fit: ``pick`` and ``mean``, NaN interval and P(best)."""
    return PolicyInfo(pick, mean, math.nan, math.nan, math.nan, None, True)


def allowed_codes(space: LayoutSpace, limit: int) -> np.ndarray:
    """All allowed layouts of ``space`` as ``(n, K)`` codes, in index order.

    Raises:
        ValueError: if the space has more than ``limit`` allowed layouts.
    """
    if space.num_allowed > limit:
        raise ValueError(
            f"this policy needs every allowed layout enumerated, but the space has "
            f"{space.num_allowed} (limit {limit})"
        )
    return np.concatenate([c for _, c in space.iter_chunks(65536, allowed_only=True)])
