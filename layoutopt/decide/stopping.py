"""Can I stop and ship? The leader, what shipping it could cost, and a stopping rule.

A :class:`StopRule` says when the evidence suffices: stop once the leader's *value
remaining* (a high quantile of how much better the true best could be, relative to the
leader; Scott 2015's rule for Google Analytics' bandit experiments) or its *expected loss*
(``E[v(best) - v(leader)]``, GrowthBook's and Eppo's "risk") falls under a threshold, after a
minimum number of rounds and impressions. :func:`decision` applies it to a posterior and
returns a :class:`Decision` with the figures and the verdict; the driver stops a simulated
campaign by it (``run_campaign(..., stop=rule)``) and a stored campaign records it per round.

The figures come from :mod:`layoutopt.score.loss`: exact per-draw bests (one streamed pass
of the grid engine when the space is enumerated, the exact argmax above), Monte Carlo over
the posterior draws.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from layoutopt.decide.verdict import Decision
from layoutopt.infer.posterior import Posterior
from layoutopt.model.space import LayoutSpace
from layoutopt.score.grid_scores import score_grid
from layoutopt.score.guardrails import exclusion_note
from layoutopt.score.loss import expected_loss, per_draw_best
from layoutopt.score.optimize import AUTO_ENUMERATE_LIMIT
from layoutopt.score.scoring import best_layout, best_of_grid

__all__ = ["Decision", "StopRule", "decision"]


@dataclass(frozen=True)
class StopRule:
    """When a campaign may stop and ship its leader.

    Stop when the minimums are met and either threshold is: the leader's relative value
    remaining at ``quantile`` is at most ``max_value_remaining``, or its expected loss is at
    most ``max_expected_loss`` (CTR units: ``0.0001`` is 0.01 percentage points). A threshold
    of ``None`` is not used; at least one must be given.

    Attributes:
        max_value_remaining: relative value remaining to stop at (0.01: the best could beat
            the leader by at most 1% with probability ``quantile``).
        max_expected_loss: expected loss (CTR units) to stop at.
        quantile: the quantile of the relative loss that is the value remaining.
        min_rounds: rounds of data before any stop.
        min_impressions: impressions before any stop.
    """

    max_value_remaining: float | None = 0.01
    max_expected_loss: float | None = None
    quantile: float = 0.95
    min_rounds: int = 0
    min_impressions: int = 0

    def __post_init__(self):
        if self.max_value_remaining is None and self.max_expected_loss is None:
            raise ValueError("a StopRule needs max_value_remaining or max_expected_loss (or both)")
        for name in ("max_value_remaining", "max_expected_loss"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and v >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
        if not 0.0 < float(self.quantile) < 1.0:
            raise ValueError(f"quantile must lie in (0, 1), got {self.quantile!r}")
        for name in ("min_rounds", "min_impressions"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be a whole number >= 0, got {v!r}")

    def to_json(self) -> str:
        """The rule as a JSON object (how a campaign stores it)."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | Mapping) -> StopRule:
        """A rule from :meth:`to_json`'s text (or its dict); unknown keys are refused."""
        data = json.loads(text) if isinstance(text, str) else dict(text)
        known = set(cls.__dataclass_fields__)
        extra = sorted(set(data) - known)
        if extra:
            raise ValueError(f"unknown stop-rule fields {extra}; valid: {sorted(known)}")
        return cls(**data)

    def verdict(
        self, value_remaining: float, expected_loss: float, rounds: int, impressions: int
    ) -> tuple[bool, str]:
        """``(stop, reason)`` for these figures after ``rounds`` rounds and ``impressions``."""
        if rounds < self.min_rounds:
            return False, f"{rounds} of at least {self.min_rounds} rounds"
        if impressions < self.min_impressions:
            return False, f"{impressions:,} of at least {self.min_impressions:,} impressions"
        vr, el = self.max_value_remaining, self.max_expected_loss
        if vr is not None and value_remaining <= vr:
            return True, f"value remaining {value_remaining:.2%} <= {vr:.2%}"
        if el is not None and expected_loss <= el:
            return True, f"expected loss {expected_loss:.3g} <= {el:.3g}"
        parts = []
        if vr is not None:
            parts.append(f"value remaining {value_remaining:.2%} > {vr:.2%}")
        if el is not None:
            parts.append(f"expected loss {expected_loss:.3g} > {el:.3g}")
        return False, " and ".join(parts)


def decision(
    posterior: Posterior,
    rule: StopRule | None = None,
    space: LayoutSpace | None = None,
    *,
    rounds: int | None = None,
    impressions: int | None = None,
    segment: Mapping[str, str] | None = None,
    enumerate_limit: int = AUTO_ENUMERATE_LIMIT,
    seed: int | None = None,
    devices=None,
) -> Decision:
    """The leader of ``posterior`` and whether ``rule`` says to stop and ship it.

    Args:
        posterior: the fitted posterior, or an
            :class:`~layoutopt.score.objective.ObjectivePosterior` (the value of its
            objective, over the layouts its guardrails admit).
        rule: the stopping rule (default :class:`StopRule`: 1% value remaining at 0.95).
        space: defaults to (and must equal) ``posterior.space``.
        rounds: rounds of data so far (needed when ``rule.min_rounds`` is set).
        impressions: impressions so far (needed when ``rule.min_impressions`` is set).
        segment: one segment of a space with segments; ``None`` for the traffic mix.
        enumerate_limit: the largest space enumerated (above: the exact argmax, ``seed``).
        seed: seed of the exact argmax's restarts above ``enumerate_limit``.
        devices: devices to shard over.

    Returns:
        :class:`Decision`.
    """
    rule = StopRule() if rule is None else rule
    space = posterior.space if space is None else space
    for name, value, minimum in (
        ("rounds", rounds, rule.min_rounds),
        ("impressions", impressions, rule.min_impressions),
    ):
        if value is None and minimum:
            raise ValueError(f"the rule asks for min_{name}={minimum}: pass {name}=")
    if segment is None and space.num_segments or space.num_allowed <= enumerate_limit:
        # one streamed pass gives the leader (top row), P(best) and the per-draw bests
        grid = score_grid(posterior, space, top=1, segment=segment, devices=devices)
        leader = best_of_grid(grid, posterior.diagnostics)
        best = np.asarray(grid.best_codes, np.int32)
    else:
        leader = best_layout(posterior, space, segment=segment, seed=seed, devices=devices)
        best = per_draw_best(
            posterior, space, segment=segment, enumerate_limit=enumerate_limit, seed=seed
        )
    loss = expected_loss(
        posterior,
        [leader.layout],
        space,
        segment=segment,
        quantile=rule.quantile,
        best_codes=best,
    )
    el, vr = float(loss.expected_loss[0]), float(loss.value_remaining[0])
    stop, reason = rule.verdict(vr, el, int(rounds or 0), int(impressions or 0))
    if leader.no_evidence:
        # a flat posterior has a tiny expected loss because it sees no differences, not
        # because it has found the best: never a reason to ship
        stop, reason = False, f"no evidence yet, whatever the thresholds say: {reason}"
    return Decision(
        leader=leader,
        p_best=float(loss.p_best[0]),
        expected_loss=el,
        relative_expected_loss=float(loss.relative_expected_loss[0]),
        value_remaining=vr,
        stop=stop,
        reason=reason,
        expected_loss_se=float(loss.expected_loss_se[0]),
        excluded=exclusion_note(posterior, leader, segment=segment, seed=seed),
    )
