"""The plain records of scoring: the best layout, an objective and its guardrails.

They hold numbers and text only, no arrays of the model, so what reads them back from a
store (``campaign status``, ``campaign best``) needs no JAX. :mod:`layoutopt.score.scoring`
and :mod:`layoutopt.score.objective` re-export them, where callers have always found them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

__all__ = ["BestLayout", "Guardrail", "Objective"]


class BestLayout(NamedTuple):
    """The chosen layout and its posterior summary.

    Attributes:
        layout: ``{component: variant label}``.
        index: its mixed-radix index (Python int).
        mean: posterior mean CTR.
        lower: lower end of the ``level`` credible interval of CTR.
        upper: upper end.
        p_best: share of draws in which it is the best allowed layout of the whole space.
        exact: True when the layout provably has the highest posterior mean CTR (the space
            was enumerated); False for the candidate search used on huge spaces.
        no_evidence: one line saying the data cannot yet tell layouts apart (P(best) not
            above twice what chance gives, or every learned scale at its floor; see
            :func:`layoutopt.score.evidence.no_evidence`), else None. When set, the layout
            is the highest posterior mean only by noise: not a finding to ship.
    """

    layout: dict
    index: int
    mean: float
    lower: float
    upper: float
    p_best: float
    exact: bool
    no_evidence: str | None = None


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
