"""A policy that proposes on an objective: its model's fit, scored by a value and guardrails.

:func:`on_objective` wraps any model policy (``thompson``, ``top_two``, ``greedy``, ``ucb``)
the way :func:`~layoutopt.decide.floor.with_floor` does: the wrapped step fits as before,
then ``value_of`` turns its posterior into what the proposals and the pick score (an
:class:`~layoutopt.score.objective.ObjectivePosterior`: further metrics fitted beside it, a
weighted value, guardrails), and the step's allocation and pick are those of
:func:`~layoutopt.decide.proposals.propose` and
:func:`~layoutopt.score.scoring.best_layout` on it. A layout that fails a guardrail is
never proposed. The one driver runs it like any policy; a stored campaign with an objective
proposes with it. :func:`fit_objective` is the ``value_of`` of data that count every metric
(a world of several metrics, :class:`layoutopt.sim.MetricWorld`): it fits each further
metric on the step's observations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np

from layoutopt.data.observations import Observations
from layoutopt.decide.interface import Allocation, Policy, PolicyInfo
from layoutopt.decide.proposals import STRATEGIES, propose
from layoutopt.infer.metrics import fit_metrics
from layoutopt.infer.posterior import Posterior
from layoutopt.score.objective import Guardrail, Objective, ObjectivePosterior
from layoutopt.score.scoring import best_layout
from layoutopt.util.seeds import seed_of

__all__ = ["fit_objective", "on_objective"]

#: ``value_of(posterior, key, observations)``: what the proposals and the pick score.
ValueOf = Callable[[Posterior, jax.Array, Observations], Any]


def on_objective(
    policy: Policy,
    value_of: ValueOf,
    *,
    k: int,
    strategy: str = "thompson",
) -> Policy:
    """``policy`` whose proposals and pick are made on ``value_of(posterior, key)``.

    Args:
        policy: a model policy (its step's ``info.posterior`` is its fit).
        value_of: ``(posterior, key, observations) -> ObjectivePosterior`` (or a
            posterior), called once per step that fitted, with a key of its own (split from
            the step's) and the step's observations (e.g. :func:`fit_objective`).
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
        scored = value_of(info.posterior, k_value, obs)
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
            scored=scored,
        )
        return state, alloc, info

    return Policy(policy.init, step, f"{policy.name} (objective)", policy.resume)


def fit_objective(
    objective: str | Mapping[str, float] = "clicks",
    guardrails: Mapping[str, Mapping[str, float]] | None = None,
    control: Mapping[str, str] | int | None = None,
    **fit_options: Any,
) -> ValueOf:
    """``value_of`` for :func:`on_objective` on data that count every metric.

    Each step fits every further metric the objective and guardrails name on the step's
    observations (``observations.counts``) with :func:`~layoutopt.infer.metrics.fit_metrics`,
    the same method and number of draws as the policy's clicks fit, and bundles them with
    that fit into an :class:`~layoutopt.score.objective.ObjectivePosterior`.

    Args:
        objective: a metric name or ``{metric: weight}`` (the value per impression).
        guardrails: ``{metric: {"max_relative_increase": ..., "probability": ...}}``.
        control: the control layout the guardrails compare with.
        **fit_options: further keywords of the metric fits (``prior``, ``options``, or per
            metric mappings, as :func:`~layoutopt.infer.metrics.fit_metrics`).

    Returns:
        ``value_of(posterior, key, observations)``.

    Raises:
        ValueError: at the first step, for a metric the observations do not count.

    Examples:
        >>> from layoutopt.decide import policies
        >>> policy = on_objective(policies.thompson(k=8), fit_objective(
        ...     {"clicks": 1, "signups": 30}), k=8)  # doctest: +SKIP
    """
    guards = Guardrail.of_dict(guardrails)  # checked up front, as the objective
    names = set(Objective.of(objective).metrics + tuple(g.metric for g in guards)) - {"clicks"}

    def value_of(post: Posterior, key, observations: Observations):
        posts = {"clicks": post}
        if names:
            metrics = [m for m in observations.metric_names if m in names]
            missing = sorted(names - set(metrics))
            if missing:
                raise ValueError(
                    f"the objective needs metric(s) {missing}; the observations count "
                    f"{list(observations.metric_names)}"
                )
            n = post.num_draws
            posts |= fit_metrics(
                post.space,
                observations,
                metrics,
                post.method,
                seed=seed_of(key),
                num_samples=n,
                **fit_options,
            )
        return ObjectivePosterior.create(posts, objective, guardrails, control)

    return value_of
