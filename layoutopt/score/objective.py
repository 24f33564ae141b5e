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


@dataclass(frozen=True)
class Objective:
    """A value per impression: a weighted sum of metrics' rates.

    Attributes:
        weights: ``((metric, weight), ...)`` in the order given; ``value = sum w_m rate_m``.
            One metric with weight 1 is that metric's rate (CTR for ``"clicks"``).
    """

    weights: tuple[tuple[str, float], ...]

    def __post_init__(self):
        if not self.weights:
            raise ValueError("an objective needs at least one metric")
        names = [m for m, _ in self.weights]
        if len(set(names)) != len(names):
            raise ValueError(f"objective: a metric appears twice in {names}")
        for m, w in self.weights:
            if not isinstance(m, str) or not m:
                raise ValueError(f"objective: metric names must be non-empty text, got {m!r}")
            if isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w):
                raise ValueError(
                    f"objective: the weight of {m!r} must be a finite number, got {w!r}"
                )
        if all(w == 0 for _, w in self.weights):
            raise ValueError("objective: every weight is 0; at least one must not be")

    @classmethod
    def of(cls, objective: str | Mapping[str, float] | Objective) -> Objective:
        """An objective from a metric name, a ``{metric: weight}`` dict or an Objective.

        Raises:
            ValueError: for an empty dict, a repeated metric, a non-finite or boolean
                weight, or weights all 0.
        """
        if isinstance(objective, Objective):
            return objective
        if isinstance(objective, str):
            return cls(((objective, 1.0),))
        if isinstance(objective, Mapping):
            return cls(tuple((str(m), _number(w)) for m, w in objective.items()))
        raise ValueError(
            'objective must be a metric name ("clicks") or a {metric: weight} dict, got '
            f"{type(objective).__name__}"
        )

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metrics the value weighs, in order."""
        return tuple(m for m, _ in self.weights)

    def to_dict(self) -> dict[str, float]:
        """``{metric: weight}`` (how a campaign stores it)."""
        return dict(self.weights)

    def describe(self) -> str:
        """The value in words, e.g. ``"clicks + 30 signups - 5 dismissals"``."""
        parts = []
        for i, (m, w) in enumerate(self.weights):
            sign = "-" if w < 0 else "+"
            a = abs(w)
            term = m if a == 1 else f"{a:g} {m}"
            parts.append((("-" if w < 0 else "") if i == 0 else f"{sign} ") + term)
        return " ".join(parts)


def _number(w):
    if isinstance(w, bool) or not isinstance(w, int | float | np.integer | np.floating):
        raise ValueError(f"objective: weights must be numbers, got {w!r}")
    return float(w)


@dataclass(frozen=True)
class Guardrail:
    """A metric that a shipped layout must not raise by much, relative to the control.

    A layout x passes when ``P(rate(x) <= (1 + max_relative_increase) * rate(control)) >=
    probability`` over the posterior draws (the control's rate in the same draw).

    Attributes:
        metric: the guarded metric (e.g. ``"dismissals"``).
        max_relative_increase: the tolerated rise (0.10: at most 10% above the control).
        probability: how sure the posterior must be that the rise is tolerable, in (0, 1).
    """

    metric: str
    max_relative_increase: float = 0.0
    probability: float = 0.9

    def __post_init__(self):
        if not isinstance(self.metric, str) or not self.metric:
            raise ValueError(f"guardrail: metric must be non-empty text, got {self.metric!r}")
        d = self.max_relative_increase
        if (
            isinstance(d, bool)
            or not isinstance(d, int | float)
            or not (math.isfinite(d) and d > -1)
        ):
            raise ValueError(
                f"guardrail {self.metric!r}: max_relative_increase must be a finite number "
                f"above -1, got {d!r}"
            )
        p = self.probability
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 < p < 1.0:
            raise ValueError(
                f"guardrail {self.metric!r}: probability must lie in (0, 1), got {p!r}"
            )

    @classmethod
    def of_dict(cls, guardrails) -> tuple[Guardrail, ...]:
        """Guardrails from ``{metric: {"max_relative_increase": .., "probability": ..}}``
        (or a sequence of :class:`Guardrail`; ``None`` is none).

        Raises:
            ValueError: naming the metric and the unknown key or bad value.
        """
        if guardrails is None:
            return ()
        if isinstance(guardrails, Guardrail):
            return (guardrails,)
        if not isinstance(guardrails, Mapping):
            out = tuple(guardrails)
            if not all(isinstance(g, Guardrail) for g in out):
                raise ValueError(
                    "guardrails must be {metric: {max_relative_increase, probability}} or a "
                    "list of Guardrail"
                )
            return out
        out = []
        for metric, spec in guardrails.items():
            if isinstance(spec, Guardrail):
                out.append(spec)
                continue
            if not isinstance(spec, Mapping):
                raise ValueError(f"guardrail {metric!r}: expected a dict of limits, got {spec!r}")
            known = {"max_relative_increase", "probability"}
            extra = sorted(set(spec) - known)
            if extra:
                raise ValueError(
                    f"guardrail {metric!r}: unknown keys {extra}; valid: {sorted(known)}"
                )
            out.append(cls(str(metric), **{k: float(v) for k, v in spec.items()}))
        names = [g.metric for g in out]
        if len(set(names)) != len(names):
            raise ValueError(f"guardrails: a metric is guarded twice in {names}")
        return tuple(out)

    def fails(self, probability: float) -> str:
        """Why a layout with this probability fails the rule, in words."""
        return (
            f"P({self.metric} <= {1 + self.max_relative_increase:g} x control) = "
            f"{probability:.3f} < {self.probability:g}"
        )

    def describe(self) -> str:
        """The rule in words."""
        return (
            f"P({self.metric} <= {1 + self.max_relative_increase:g} x control) >= "
            f"{self.probability:g}"
        )


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
