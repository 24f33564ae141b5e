"""What "best" means with several metrics: an objective (a value per impression) and guardrails.

Results may count several outcomes per impression (``clicks``, ``signups``, ``dismissals``),
each with its own additive + pairwise model fitted on the same space (one
:class:`~layoutopt.infer.posterior.Posterior` per metric, :func:`layoutopt.fit_metrics`). A
campaign's **objective** is one metric, or a value per impression that weighs the metrics'
rates::

    value_s(x) = sum_m w_m * inv_link(eta_m,s(x))        per posterior draw s

(``{"clicks": 1, "signups": 30, "dismissals": -5}``). A **guardrail** bounds one metric
relative to a control layout: layout x passes when::

    P( rate_g(x) <= (1 + max_relative_increase) * rate_g(control) ) >= probability

the probability being the share of posterior draws in which the inequality holds (the
control's rate taken in the same draw). A layout that fails any guardrail is *excluded*:
never the argmax of a draw, never in a top-k, never proposed, never picked.

An :class:`ObjectivePosterior` bundles the metrics' posteriors with the objective, the
guardrails and the control. Every scoring entry point (``score_grid``, ``best_layout``,
``expected_loss``, ``decision``, ``propose``) accepts it where it accepts a posterior: it
becomes one :class:`~layoutopt.score.target.Target` of the grid engine whose rows are the
metrics' draws stacked along the draw axis, and whose block transforms compute the value
(:func:`objective_values`) and the guardrails' verdict (:func:`guardrail_admits`) of every
layout of a block, from all its draws at once. So the value is scored, streamed and sharded
as the traffic mix is, with memory O(metrics x draws x chunk) whatever the size of the space.

Why one model per metric, fitted one after another: with independent priors and each
metric's counts a Binomial out of the same impressions, the joint posterior of the metrics'
parameters factorises into one posterior per metric, so fitting them jointly would give the
same answer with a larger model (a parameter count per metric, against the fitters' size
limits) and no shared information. Draw s of one metric paired with draw s of another is a
draw of the joint posterior, since the two are independent.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from layoutopt.infer.posterior import Posterior
from layoutopt.model.core import inv_link
from layoutopt.model.space import LayoutSpace
from layoutopt.score.types import Guardrail, Objective

__all__ = [
    "Guardrail",
    "Objective",
    "ObjectiveAux",
    "ObjectivePosterior",
    "draws_needed",
    "guardrail_admits",
    "guardrail_counts",
    "guardrail_rates",
    "objective_values",
]


class ObjectiveAux(NamedTuple):
    """The traced operands of the objective's block transforms (a Target's ``aux``).

    The stacked rows are NG groups of S draws each (a group: one metric, or one metric in
    one segment of the traffic mix), group-major.

    Attributes:
        value_w: ``(NG,)`` float32 weight of each group's rate in the value (the metric's
            weight times the segment's share).
        guard_w: ``(Ng, NG)`` float32: guardrail i's rate is ``guard_w[i] @ rates``.
        guard_limit: ``(Ng, S)`` float32: ``(1 + max_relative_increase)`` times the control's
            rate in each draw.
        guard_need: ``(Ng,)`` int32 draws each guardrail needs within the limit (its
            probability times S, rounded up: a count, so the verdict is exact).
    """

    value_w: jax.Array
    guard_w: jax.Array
    guard_limit: jax.Array
    guard_need: jax.Array


def _group_rates(eta: jax.Array, aux: ObjectiveAux, link: str) -> jax.Array:
    NG = aux.value_w.shape[0]
    return inv_link(eta.reshape((NG, eta.shape[0] // NG) + eta.shape[1:]), link)


@functools.cache
def objective_values(link: str) -> Callable[[jax.Array, ObjectiveAux], jax.Array]:
    """The block transform of an objective: ``(NG * S, C)`` eta -> ``(S, C)`` value.

    ``value_s = sum_g value_w[g] * inv_link(eta[g * S + s])`` in float32 (cached: one
    function, one compilation, per link).
    """

    def values(eta, aux):
        return jnp.tensordot(aux.value_w, _group_rates(eta, aux, link), axes=1)

    return values


def guardrail_rates(eta: jax.Array, aux: ObjectiveAux, link: str) -> jax.Array:
    """``(Ng, S, C)`` the guarded metrics' rates of a block's (or layouts') eta."""
    return jnp.tensordot(aux.guard_w, _group_rates(eta, aux, link), axes=1)


def guardrail_counts(eta: jax.Array, aux: ObjectiveAux, link: str) -> jax.Array:
    """``(Ng, C)`` int32: per guardrail, the draws in which a layout is within the limit."""
    ok = guardrail_rates(eta, aux, link) <= aux.guard_limit[:, :, None]
    return jnp.sum(ok.astype(jnp.int32), axis=1)


def draws_needed(probability: float, num_draws: int) -> int:
    """The fewest of ``num_draws`` draws whose share is at least ``probability``."""
    return int(math.ceil(round(probability * num_draws, 9)))


@functools.cache
def guardrail_admits(link: str) -> Callable[[jax.Array, ObjectiveAux], jax.Array]:
    """The block transform of the guardrails: ``(NG * S, C)`` eta -> ``(C,)`` passes.

    A layout passes when, for every guardrail, the number of draws with ``rate_s <=
    guard_limit_s`` is at least ``guard_need`` (true for every layout without guardrails).
    """

    def admits(eta, aux):
        return jnp.all(guardrail_counts(eta, aux, link) >= aux.guard_need[:, None], axis=0)

    return admits


@dataclass(frozen=True, eq=False)
class ObjectivePosterior:
    """The posteriors of several metrics, scored by one objective under guardrails.

    Accepted wherever a posterior is scored (``score_grid``, ``best_layout``,
    ``expected_loss``, ``decision``, ``propose``): mean, interval, P(best), expected loss
    and proposals are then those of the value per impression (:class:`Objective`), over
    the layouts that pass every :class:`Guardrail`.

    Attributes:
        posteriors: ``((metric, Posterior), ...)``: one fit per metric on one space, each
            with the same number of draws and the same link.
        objective: the :class:`Objective`.
        guardrails: the :class:`Guardrail` s (may be empty).
        control: ``(K,)`` int32 codes of the control layout (needed with guardrails), or
            None.
    """

    posteriors: tuple[tuple[str, Posterior], ...]
    objective: Objective
    guardrails: tuple[Guardrail, ...] = ()
    control: np.ndarray | None = None

    @classmethod
    def create(
        cls,
        posteriors: Mapping[str, Posterior],
        objective: str | Mapping[str, float] | Objective = "clicks",
        guardrails=None,
        control: Mapping[str, str] | int | None = None,
    ) -> ObjectivePosterior:
        """Bundle fitted metrics with an objective, guardrails and a control layout.

        Args:
            posteriors: ``{metric: Posterior}`` (e.g. from :func:`layoutopt.fit_metrics`).
            objective: a metric name or ``{metric: weight}``.
            guardrails: ``{metric: {"max_relative_increase": 0.1, "probability": 0.9}}``.
            control: the control layout (``{component: label}`` or its index); required
                with guardrails.

        Raises:
            ValueError: for a metric the objective or a guardrail names that has no
                posterior, posteriors on different spaces or with different draw counts or
                links, guardrails without a control, or a control not in the space.
        """
        if not isinstance(posteriors, Mapping) or not posteriors:
            raise ValueError("posteriors must be a non-empty {metric: Posterior} dict")
        items = tuple((str(m), p) for m, p in posteriors.items())
        for m, p in items:
            if not isinstance(p, Posterior):
                raise ValueError(f"metric {m!r}: expected a Posterior, got {type(p).__name__}")
        objective = Objective.of(objective)
        guardrails = Guardrail.of_dict(guardrails)
        have = [m for m, _ in items]
        for m in objective.metrics + tuple(g.metric for g in guardrails):
            if m not in have:
                raise ValueError(f"metric {m!r} has no fitted posterior; fitted: {have}")
        first = items[0][1]
        for m, p in items[1:]:
            if p.space != first.space:
                raise ValueError(f"metric {m!r} was fitted on another space than {items[0][0]!r}")
            if p.num_draws != first.num_draws:
                raise ValueError(
                    f"metric {m!r} has {p.num_draws} draws, {items[0][0]!r} has "
                    f"{first.num_draws}; fit every metric with the same num_samples"
                )
            if p.prior.link != first.prior.link:
                raise ValueError(
                    f"metric {m!r} uses link {p.prior.link!r}, {items[0][0]!r} "
                    f"{first.prior.link!r}; fit every metric with the same link"
                )
        codes = None if control is None else control_codes(first.space, control)
        if guardrails and codes is None:
            raise ValueError(
                "guardrails are relative to a control layout: pass control={component: label}"
            )
        return cls(items, objective, guardrails, codes)

    @property
    def space(self) -> LayoutSpace:
        """The space every metric was fitted on."""
        return self.posteriors[0][1].space

    @property
    def num_draws(self) -> int:
        """S, the draws of every metric."""
        return self.posteriors[0][1].num_draws

    @property
    def diagnostics(self) -> dict:
        """The fit diagnostics of the first metric (whose learned scales decide, with
        P(best), whether there is evidence yet: :func:`layoutopt.score.evidence.no_evidence`)."""
        return self.posteriors[0][1].diagnostics

    @property
    def link(self) -> str:
        """The link every metric uses."""
        return self.posteriors[0][1].prior.link

    @property
    def metric_names(self) -> tuple[str, ...]:
        """The metrics the objective and the guardrails read, objective first, once each."""
        names = list(self.objective.metrics)
        names += [g.metric for g in self.guardrails if g.metric not in names]
        return tuple(names)

    def posterior(self, metric: str) -> Posterior:
        """One metric's posterior."""
        for m, p in self.posteriors:
            if m == metric:
                return p
        raise ValueError(
            f"no posterior for metric {metric!r}; have {[m for m, _ in self.posteriors]}"
        )

    def check_finite(self) -> None:
        """Refuse non-finite draws in any metric read (see ``Posterior.check_finite``)."""
        for m in self.metric_names:
            try:
                self.posterior(m).check_finite()
            except ValueError as err:
                raise ValueError(f"metric {m!r}: {err}") from None

    def map(self, fn: Callable[[Posterior], Posterior]) -> ObjectivePosterior:
        """The same bundle with ``fn`` applied to every metric's posterior."""
        items = tuple((m, fn(p)) for m, p in self.posteriors)
        return ObjectivePosterior(items, self.objective, self.guardrails, self.control)

    def subsample(self, idx) -> ObjectivePosterior:
        """Only the draws ``idx`` of every metric (the same positions in each)."""
        return self.map(lambda p: p.subsample(idx))

    def with_settings(self, objective=None, guardrails: Any = (), control: Any = ()):
        """Another objective, guardrails or control for the same fits (``()``: keep)."""
        return ObjectivePosterior.create(
            dict(self.posteriors),
            self.objective if objective is None else objective,
            self.guardrails if guardrails == () else guardrails,
            _control_arg(self) if control == () else control,
        )


def _control_arg(vp: ObjectivePosterior):
    return None if vp.control is None else vp.space.decode(vp.control)


def control_codes(space: LayoutSpace, control) -> np.ndarray:
    """``(K,)`` codes of a control given as ``{component: label}`` or an index; allowed.

    Raises:
        ValueError: for an unknown component or label, an index outside the space, or a
            forbidden layout.
    """
    if isinstance(control, Mapping):
        codes = np.asarray(space.encode(dict(control)), np.int32)
    elif isinstance(control, int | np.integer) and not isinstance(control, bool):
        codes = np.asarray(space.codes_of(int(control)), np.int32)
    else:
        raise ValueError(
            f"control must be a {{component: label}} dict or a layout index, got {control!r}"
        )
    if not bool(space.allowed_mask(codes[None])[0]):
        raise ValueError(f"control {space.decode(codes)} is forbidden by the space's rules")
    return codes
