"""The recorded rounds as allocations: one :class:`RoundPlan` per round and segment.

Read from the store's proposals with the space only (no numerics), for serving
(:mod:`layoutopt.campaign.serving`) and the sample-ratio checks of ``campaign status``
(:mod:`layoutopt.campaign.view`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from layoutopt.campaign.assign import RoundAllocation, thresholds
from layoutopt.model.space import LayoutSpace

__all__ = ["RoundPlan", "plan_key", "round_plans"]


class RoundPlan(NamedTuple):
    """One round's allocation for one segment (or for all traffic).

    Attributes:
        round: the round (the proposal's number).
        segment: the segment's values, or None when the allocation serves every segment.
        index: ``(n,)`` layout indices on the current space, in the proposal's order.
        weights: ``(n,)`` weights (summing to 1).
        thresholds: ``(n,)`` the hash thresholds (:func:`layoutopt.campaign.assign.thresholds`).
    """

    round: int
    segment: dict[str, str] | None
    index: np.ndarray
    weights: np.ndarray
    thresholds: np.ndarray

    def allocation(self) -> RoundAllocation:
        """As :class:`~layoutopt.campaign.assign.RoundAllocation`."""
        return RoundAllocation(self.round, self.index, self.thresholds)


def plan_key(segment: Mapping[str, Any] | None) -> tuple | None:
    """The key of a segment's plan in :func:`round_plans` (None: every segment)."""
    return None if segment is None else tuple(sorted((k, str(v)) for k, v in segment.items()))


def round_plans(space: LayoutSpace, proposals: Sequence[dict]) -> dict[int, dict]:
    """``{round: {segment key: RoundPlan}}`` of recorded proposals (``Store.proposals``);
    the key is None for a proposal without segment columns (it serves every segment)."""
    names = list(space.segment_names)
    out: dict[int, dict] = {}
    for prop in proposals:
        frame = pd.DataFrame(prop["rows"])
        per_segment = bool(names) and all(n in frame.columns for n in names)
        groups = frame.groupby(names, sort=False) if per_segment else [(None, frame)]
        plans = {}
        for _, rows in groups:
            labels = rows[list(space.components)].astype(str).to_dict("records")
            index = np.array([space.index(lab) for lab in labels], np.int64)
            w = rows["weight"].to_numpy(np.float64)
            w = w / w.sum()
            seg = {n: str(rows[n].iloc[0]) for n in names} if per_segment else None
            plans[plan_key(seg)] = RoundPlan(int(prop["round"]), seg, index, w, thresholds(w))
        out[int(prop["round"])] = plans
    return out
