"""A stopping rule's verdict as a plain record (no numerics: a store reads it back without
JAX). :mod:`layoutopt.decide.stopping` computes it and re-exports it."""

from __future__ import annotations

from typing import NamedTuple

from layoutopt.score.types import BestLayout

__all__ = ["Decision"]


class Decision(NamedTuple):
    """The leader, what shipping it could cost, and the verdict of a :class:`StopRule`.

    Attributes:
        leader: the layout with the highest posterior mean (a
            :class:`~layoutopt.score.scoring.BestLayout`).
        p_best: the share of draws in which the leader is the best layout.
        expected_loss: ``E[v(best) - v(leader)]``, CTR units.
        relative_expected_loss: ``expected_loss`` over the leader's mean value.
        value_remaining: the rule's quantile of ``(v(best) - v(leader)) / v(leader)``.
        stop: the rule's verdict: True to stop and ship the leader; never while the
            posterior shows no evidence (``leader.no_evidence``: the leader's P(best)
            within twice chance, or every learned scale at its floor), however small the
            loss figures of a posterior that sees no differences.
        reason: the verdict in words (which threshold is met or missed).
        expected_loss_se: the Monte Carlo standard error of ``expected_loss``.
        excluded: with an objective's guardrails, which layouts they exclude and why (how
            many; the best layout without them and the guardrail it fails); ``""`` without.

    With an :class:`~layoutopt.score.objective.ObjectivePosterior` the figures are in units
    of its value per impression and the leader is the best layout that passes every
    guardrail.
    """

    leader: BestLayout
    p_best: float
    expected_loss: float
    relative_expected_loss: float
    value_remaining: float
    stop: bool
    reason: str
    expected_loss_se: float = float("nan")
    excluded: str = ""

    def line(self) -> str:
        """One line for a status output, with "expected loss", "value remaining", the verdict."""
        verb = "stop and ship" if self.stop else "continue"
        return (
            f"{verb}: leader {self.leader.index} P(best) {self.p_best:.3f}, expected loss "
            f"{self.expected_loss:.3g} ({self.relative_expected_loss:.2%}), value remaining "
            f"{self.value_remaining:.2%} ({self.reason})"
            + (f"; {self.excluded}" if self.excluded else "")
        )
