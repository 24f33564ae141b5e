"""Does the posterior say anything yet about which layout is best? The one "no evidence" check.

With thin data (a log of a few thousand impressions and a handful of clicks, or variants
that truly do not differ) the posterior cannot tell layouts apart: some layout still has the
highest posterior mean, but its probability of being the best is what chance gives. Naming
it "the best" would be a claim the data do not make. :func:`no_evidence` is the one test of
that, read by :func:`~layoutopt.score.scoring.best_layout` (``BestLayout.no_evidence``),
:func:`~layoutopt.decide.proposals.propose` (which then explores), the campaign's status and
report and the command line, so they all say the same thing in the same words.

The leader carries no evidence when either

- its P(best) is at most :data:`NO_EVIDENCE_FACTOR` times the **chance level**: the largest
  P(best) that S posterior draws spread evenly over the N allowed layouts reach by chance,
  ``max(1/N + sqrt(2 ln N / (S N)), 1/S)`` (the expected maximum of N Poisson(S/N) counts,
  divided by S; at least one draw). For a small space that is twice ``1/N`` plus the Monte
  Carlo spread of the draws' argmaxes, so a posterior that knows nothing is not mistaken
  for one that does (capped half-way from chance to certainty, ``(1 + chance) / 2``, where
  twice chance would leave no room: two or three layouts); or
- the fit's learned effect scales all ended at their floor (Laplace's empirical Bayes,
  diagnostic ``scales_at_floor``): the data show no difference between variants that could
  be sized.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = ["NO_EVIDENCE_FACTOR", "chance_p_best", "evidence_level", "no_evidence"]

#: A leader's P(best) must exceed this multiple of the chance level to count as evidence.
NO_EVIDENCE_FACTOR = 2.0


def chance_p_best(num_layouts: int, num_draws: int) -> float:
    """The largest P(best) S draws spread evenly over N layouts give by chance.

    ``max(1/N + sqrt(2 ln N / (S N)), 1/S)``: the share of the draws that the most frequent
    of N equally likely argmaxes collects (Gaussian approximation of the maximum of N
    Poisson(S/N) counts), and never less than one draw.

    Args:
        num_layouts: allowed layouts N (>= 1).
        num_draws: posterior draws S (>= 1).

    Returns:
        The chance level, in (0, 1].
    """
    n, s = max(int(num_layouts), 1), max(int(num_draws), 1)
    if n == 1:
        return 1.0
    return min(1.0, max(1.0 / n + math.sqrt(2.0 * math.log(n) / (s * n)), 1.0 / s))


def evidence_level(num_layouts: int, num_draws: int) -> float:
    """The P(best) a leader must exceed to count as evidence:
    ``min(NO_EVIDENCE_FACTOR * chance, (1 + chance) / 2)`` with ``chance`` of
    :func:`chance_p_best`."""
    chance = chance_p_best(num_layouts, num_draws)
    return min(NO_EVIDENCE_FACTOR * chance, 0.5 * (1.0 + chance))


def no_evidence(
    p_best: float,
    num_layouts: int,
    num_draws: int,
    diagnostics: Mapping | None = None,
) -> str | None:
    """One line saying that the data cannot yet tell layouts apart, or None when they can.

    Args:
        p_best: the leader's probability of being the best layout.
        num_layouts: allowed layouts considered (N).
        num_draws: posterior draws the P(best) was counted over (S).
        diagnostics: the fit's diagnostics (``scales_at_floor`` is read when present).

    Returns:
        ``"no evidence yet: ..."`` naming why, or None.

    Examples:
        >>> no_evidence(0.004, 5_000, 1_000)[:60]
        "no evidence yet: the leader's P(best) 0.004 is not above 0.0"
        >>> no_evidence(0.6, 18, 1_000) is None
        True
    """
    if diagnostics is not None and diagnostics.get("scales_at_floor"):
        return (
            "no evidence yet: every learned effect scale sits at its floor (the data show no "
            "difference between variants), so any pick is a guess"
        )
    if num_layouts <= 1:
        return None
    chance = chance_p_best(num_layouts, num_draws)
    level = evidence_level(num_layouts, num_draws)
    if float(p_best) > level:
        return None
    return (
        f"no evidence yet: the leader's P(best) {float(p_best):.3f} is not above "
        f"{level:.3f} ({NO_EVIDENCE_FACTOR:g}x chance, {chance:.3f} for {int(num_draws):,} "
        f"draws over {int(num_layouts):,} layouts); the data do not tell the layouts apart, "
        "so any pick is a guess"
    )
