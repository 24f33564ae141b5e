"""Sample-ratio checks of a campaign's rounds: what arrived per layout against the plan.

For round ``r`` (and segment, when proposed per segment) the impressions of ingested rows
whose ``round`` column names ``r`` are counted per layout and compared with the planned
shares by :func:`layoutopt.campaign.checks.sample_ratio_check`. The planned share of a layout
is what the assignment hash serves in that round: the mixture over first-round cohorts of
their exact marginals (:func:`layoutopt.campaign.assign.cohort_propensities`), weighted by
the cohorts' sizes in the assignment log (the round's own weights when nothing was assigned
through :meth:`~layoutopt.Campaign.assign`), and with a holdout ``q`` on control ``c``,
``q [x = c] + (1 - q) p(x)``. A layout served but not planned gets planned share 0 and
fails the check.
"""

from __future__ import annotations

import json
from typing import NamedTuple

import numpy as np

from layoutopt.campaign.assign import cohort_propensities
from layoutopt.campaign.checks import SRM_ALPHA, SampleRatio, sample_ratio_check
from layoutopt.model.space import LayoutSpace

__all__ = ["RoundCheck", "planned_shares", "round_checks"]


class RoundCheck(NamedTuple):
    """The sample-ratio check of one round (and segment).

    Attributes:
        round: the round.
        segment: its segment's values, or None.
        index: ``(n,)`` the layouts checked (planned, then any served but not planned).
        check: the :class:`~layoutopt.campaign.checks.SampleRatio` (``worst`` indexes
            ``index``).
    """

    round: int
    segment: dict[str, str] | None
    index: np.ndarray
    check: SampleRatio


def planned_shares(plans: dict, key, r: int, cohorts: dict[int, int], holdout, control):
    """``{layout index: planned share}`` of round ``r`` for the plans' segment ``key``."""
    first = min(plans)
    sizes = {f: n for f, n in cohorts.items() if first <= f <= r and n > 0}
    if not sizes:
        sizes = {r: 1}
    mix: dict[int, float] = {}
    total = sum(sizes.values())
    for f, n in sizes.items():
        history = [(plans[t].get(key) or plans[t][None]).allocation() for t in range(f, r + 1)]
        for i, p in cohort_propensities(history).items():
            mix[i] = mix.get(i, 0.0) + n / total * p
    if holdout > 0 and control is not None:
        mix = {i: (1.0 - holdout) * p for i, p in mix.items()}
        mix[control] = mix.get(control, 0.0) + holdout
    return mix


def round_checks(
    space: LayoutSpace,
    plans: dict,
    rows: list[tuple],
    cohorts: dict[int, int],
    holdout: float = 0.0,
    control: int | None = None,
    alpha: float = SRM_ALPHA,
    served_with: dict[int, tuple[float, int | None]] | None = None,
) -> list[RoundCheck]:
    """One :class:`RoundCheck` per round and segment that ingested rows name.

    Args:
        space: the current space.
        plans: :func:`layoutopt.campaign.serving.round_plans`.
        rows: ``Store.observation_rows`` (rows without their own ``round`` are skipped).
        cohorts: ``{first round: units}`` of the assignment log.
        holdout: the holdout share.
        control: the control's layout index.
        alpha: the level that flags a mismatch.
        served_with: ``{round: (holdout share, control index)}`` recorded with a round's
            proposal; a round it does not name uses ``holdout`` and ``control`` (the
            campaign's current settings).
    """
    counts: dict[tuple, dict[int, int]] = {}
    named = [r for r in rows if r[3] is not None and int(r[3]) in plans]
    if named:
        codes = np.array([[int(c) for c in r[0].split(",")] for r in named], np.int64)
        for row, i in zip(named, space.indices(codes).tolist(), strict=True):
            r = int(row[3])
            seg = None if None in plans[r] or row[1] is None else json.loads(row[1])
            key = (r, None if seg is None else tuple(sorted(seg.items())))
            cell = counts.setdefault(key, {})
            cell[i] = cell.get(i, 0) + int(row[4])
    out = []
    for (r, key), served in sorted(counts.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        q, c = (served_with or {}).get(r, (holdout, control))
        shares = planned_shares(plans, key, r, cohorts, q, c)
        index = list(shares) + [i for i in served if i not in shares]
        observed = [served.get(i, 0) for i in index]
        weights = [shares.get(i, 0.0) for i in index]
        check = sample_ratio_check(observed, weights, alpha=alpha)
        segment = None if key is None else dict(key)
        out.append(RoundCheck(r, segment, np.array(index, np.int64), check))
    return out
