"""A policy that proposes on an objective: its model's fit, scored by a value and guardrails.

:func:`on_objective` wraps any model policy (``thompson``, ``top_two``, ``greedy``, ``ucb``)
the way :func:`~layoutopt.decide.floor.with_floor` does: the wrapped step fits as before,
then ``value_of`` turns its posterior into what the proposals and the pick score (an
:class:`~layoutopt.score.objective.ObjectivePosterior`: further metrics fitted beside it, a
weighted value, guardrails), and the step's allocation and pick are those of
:func:`~layoutopt.decide.proposals.propose` and
:func:`~layoutopt.score.scoring.best_layout` on it. A layout that fails a guardrail is
never proposed. The one driver runs it like any policy; a stored campaign with an objective
proposes with it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from layoutopt.decide.interface import Allocation, Policy, PolicyInfo
from layoutopt.decide.proposals import STRATEGIES, propose
from layoutopt.infer.posterior import Posterior
from layoutopt.score.scoring import best_layout
from layoutopt.util.seeds import seed_of

__all__ = ["on_objective"]


def on_objective(
    policy: Policy,
    value_of: Callable[[Posterior, jax.Array], Any],
    *,
    k: int,
    strategy: str = "thompson",
) -> Policy:
    """``policy`` whose proposals and pick are made on ``value_of(posterior, key)``.

    Args:
        policy: a model policy (its step's ``info.posterior`` is its fit).
        value_of: ``(posterior, key) -> ObjectivePosterior`` (or a posterior), called once
            per step that fitted, with a key of its own (split from the step's).
        k: most layouts per proposal.
        strategy: one of :data:`~layoutopt.decide.proposals.STRATEGIES`.

    Returns:
        The wrapped :class:`Policy`. Round 0 (the initial design) is the policy's own. On a
        space with segments it proposes one batch for the traffic mix.

    Raises:
        ValueError: for an unknown strategy.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; use one of {list(STRATEGIES)}")

    def step(state, obs, key) -> tuple[Any, Allocation, PolicyInfo]:
        k_inner, k_value, k_propose = jax.random.split(key, 3)
        state, alloc, info = policy.step(state, obs, k_inner)
        if info.posterior is None:  # round 0: the design
            return state, alloc, info
        scored = value_of(info.posterior, k_value)
        space = info.posterior.space
        batch = propose(scored, k=k, strategy=strategy, seed=seed_of(k_propose))
        alloc = Allocation(
            space.codes(np.asarray(batch["index"], np.int64)),
            np.asarray(batch["weight"], np.float64),
            alloc.split,
        )
        pick = best_layout(scored)
        info = info._replace(
            pick=int(pick.index),
            mean=pick.mean,
            lower=pick.lower,
            upper=pick.upper,
            p_best=pick.p_best,
            segment_picks=None,
        )
        return state, alloc, info

    return Policy(policy.init, step, f"{policy.name} (objective)", policy.resume)
