"""A world of several metrics: clicks, sign-ups, dismissals, each its own true model.

:class:`MetricWorld` holds one :class:`~layoutopt.sim.simulate.SyntheticWorld` per metric
on one space and answers the driver (:class:`~layoutopt.decide.driver.World`) with every
metric's counts: clicks as the response's clicks, the further metrics in
``Response.counts``, each drawn ``Binomial(impressions, rate_m(x))`` independently, so
the observations a policy sees count every metric (``obs.counts``). Its truth is the value
per impression of the campaign's objective, ``sum_m w_m rate_m(x)``, and its best layout
the best by value among those that truly pass the guardrails (a guarded metric's rate at
most ``1 + max_relative_increase`` times the control's), so
:func:`~layoutopt.sim.simulate.run_campaign` reports regret in value and a policy on the
objective (:func:`~layoutopt.decide.objective_policy.on_objective` with
:func:`~layoutopt.decide.objective_policy.fit_objective`) can be sized with ``stop=``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from layoutopt.decide.driver import Response
from layoutopt.model.space import LayoutSpace
from layoutopt.score.objective import Guardrail, Objective
from layoutopt.sim.simulate import SyntheticWorld, WorldBest

__all__ = ["MetricWorld"]

#: Largest space whose value table is enumerated (the value of a weighted objective is not
#: additive on any link scale, so its best is found by enumeration).
MAX_LAYOUTS = 1 << 22


@dataclass(frozen=True, eq=False)
class MetricWorld:
    """Several metrics' true models on one space, scored by an objective and guardrails.

    Args:
        worlds: ``{metric: SyntheticWorld}``, ``"clicks"`` among them, all on one space.
        objective: a metric name or ``{metric: weight}`` (the value per impression).
        guardrails: ``{metric: {"max_relative_increase": ..., "probability": ...}}``; the
            world's truth applies the limit exactly (the probability is the policy's).
        control: the control layout (``{component: label}`` or its index), needed with
            guardrails.

    Raises:
        ValueError: without a clicks world, for worlds on different spaces, a metric the
            objective or a guardrail names that has no world, guardrails without a
            control, or a space too large to enumerate (over 2^22 layouts).

    Examples:
        >>> space = LayoutSpace({"h": ["a", "b"], "i": ["x", "y"]})
        >>> world = MetricWorld({"clicks": SyntheticWorld.random(space, 0),
        ...                      "signups": SyntheticWorld.random(space, 1, 0.01)},
        ...                     objective={"clicks": 1, "signups": 30})
        >>> world.best().layout  # doctest: +SKIP
    """

    worlds: Mapping[str, SyntheticWorld]
    objective: Any = "clicks"
    guardrails: Any = None
    control: Mapping[str, str] | int | None = None
    _guards: tuple[Guardrail, ...] = field(init=False, repr=False)

    def __post_init__(self):
        worlds = dict(self.worlds)
        if "clicks" not in worlds:
            raise ValueError(f"worlds need a 'clicks' world; got {list(worlds)}")
        space = worlds["clicks"].space
        if any(w.space != space for w in worlds.values()):
            raise ValueError("every metric's world must be on the same space")
        objective = Objective.of(self.objective)
        guards = Guardrail.of_dict(self.guardrails)
        named = objective.metrics + tuple(g.metric for g in guards)
        missing = sorted(set(named) - set(worlds))
        if missing:
            raise ValueError(f"no world for metric(s) {missing}; the worlds are {list(worlds)}")
        if guards and self.control is None:
            raise ValueError("guardrails are relative to a control layout; give control=")
        if space.size > MAX_LAYOUTS:
            raise ValueError(
                f"a MetricWorld enumerates its {space.size:,} layouts to find the best by "
                f"value; at most {MAX_LAYOUTS:,} (use a smaller space)"
            )
        object.__setattr__(self, "worlds", worlds)
        object.__setattr__(self, "objective", objective)
        object.__setattr__(self, "_guards", guards)

    # ------------------------------------------------------------------ the truth
    @property
    def space(self) -> LayoutSpace:
        """The layout space every metric's world is on."""
        return self.worlds["clicks"].space

    def rate(self, metric: str, indices) -> np.ndarray:
        """True rate per impression of one metric for layouts by index."""
        return self.worlds[metric].ctr_of_index(np.asarray(indices, np.int64))

    def value(self, indices) -> np.ndarray:
        """True value per impression of layouts by index: ``sum_m w_m rate_m(x)``."""
        idx = np.asarray(indices, np.int64)
        return sum(w * self.rate(m, idx) for m, w in self.objective.weights)

    def admissible(self, indices) -> np.ndarray:
        """Whether layouts (by index) truly pass every guardrail (no guardrails: all)."""
        idx = np.asarray(indices, np.int64)
        ok = np.ones(idx.shape, bool)
        if self._guards:
            control = self._control_index
            for g in self._guards:
                limit = (1.0 + g.max_relative_increase) * self.rate(g.metric, [control])[0]
                ok &= self.rate(g.metric, idx) <= limit
        return ok

    @functools.cached_property
    def _control_index(self) -> int:
        c = self.control
        return int(c) if isinstance(c, int | np.integer) else self.space.index(c)

    def best(self) -> WorldBest:
        """The true best allowed layout by value among those passing the guardrails; its
        ``ctr`` field is its value per impression."""
        return self._best

    @functools.cached_property
    def _best(self) -> WorldBest:
        idx = np.arange(self.space.size, dtype=np.int64)
        value = np.where(self.admissible(idx), self.value(idx), np.nan)
        value[~self.space.allowed_mask(self.space.codes(idx))] = np.nan
        i = int(np.nanargmax(value))
        codes = np.asarray(self.space.codes_of(i), np.int32)
        return WorldBest(codes, i, float(value[i]), self.space.decode(codes))

    # ---------------------------------------------------- the driver's World protocol
    @property
    def shares(self) -> None:
        """No segments."""
        return None

    @property
    def hours_per_round(self) -> None:
        """No time: every metric is seen at once."""
        return None

    def respond(self, codes, impressions, *, segment, round, rng) -> Response:
        """Serve one round's rows: clicks, and each further metric's counts (independent
        Binomials of the same impressions)."""
        clicks = self.worlds["clicks"].serve(codes, impressions, rng=rng)
        counts = {
            m: w.serve(codes, impressions, rng=rng) for m, w in self.worlds.items() if m != "clicks"
        }
        return Response(clicks, None, counts)

    def truth(self, index, segments, round: int) -> np.ndarray:
        """True value per impression of layouts by index (what regret is measured in)."""
        return self.value(index)

    def best_at(self, segment, round: int) -> WorldBest:
        """The true best by value (the same for every round)."""
        return self.best()
