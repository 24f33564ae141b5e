"""Sticky, reproducible assignment of units (visitors, sessions) to layouts, with propensities.

A round's allocation (layouts and weights, one list per segment) becomes traffic through a
hash that any language can compute (``docs/assignment.md`` is the specification, with test
vectors):

* ``h(salt, r, unit)``: the first 7 bytes of ``SHA-256(utf8(salt + "\\x1f" + str(r) + "\\x1f"
  + unit))`` as a big-endian integer, shifted right by 3 bits: a uniform integer in
  ``[0, 2^53)``, exact in a double everywhere (JavaScript included).
* A round's weights become integer **thresholds** ``t_i = round(2^53 * (w_1 + ... + w_i))``
  (the last one exactly ``2^53``); ``h`` picks the first layout with ``h < t_i``. Layout
  ``i`` is then chosen with probability exactly ``(t_i - t_{i-1}) / 2^53``: no float is
  compared anywhere, so every implementation agrees bit for bit.
* **Sticky across rounds**: a unit first seen in round ``f`` keeps its layout from round to
  round while that layout is in the round's allocation; when it leaves, the unit is re-drawn
  with that round's hash. The layout in round ``r`` is therefore a function of (salt, unit,
  ``f``, the allocations of rounds ``f..r``) alone, evaluated as if the unit came every round,
  so whether it visited in between changes nothing. Its **propensity** is the exact marginal
  probability of that layout for a unit first seen in ``f``::

      p_f = w_f,    p_t(x) = p_{t-1}(x) [x in A_t] + (1 - sum_{y in A_t} p_{t-1}(y)) w_t(x)

* A **holdout** of share ``q`` is drawn once per unit, ``h(salt, "holdout", unit) < round(2^53
  q)``, and serves the control layout in every round. The logged propensity of a served
  layout ``x`` is then ``q [x = control] + (1 - q) p_t(x)``.

Everything here is pure (numbers in, numbers out); :class:`~layoutopt.Campaign` keeps the
rounds' allocations and each unit's first round in its store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

__all__ = [
    "HASH_NAME",
    "HASH_VERSION",
    "SCALE",
    "RoundAllocation",
    "Assignment",
    "unit_hash",
    "thresholds",
    "threshold_probabilities",
    "cohort_propensities",
    "assign_units",
]

#: Name and version of the hash specification (``docs/assignment.md``), written into every
#: exported allocation so that an SDK can refuse a version it does not implement.
HASH_NAME = "layoutopt-sha256-53"
HASH_VERSION = 1
#: The hash range: uniform integers in ``[0, SCALE)``.
SCALE = 2**53
_SEP = "\x1f"  # ASCII unit separator: cannot be confused with digits or common ids


def unit_hash(salt: str, round: int | str, unit: str) -> int:
    """The 53-bit hash of ``(salt, round, unit)``: a uniform integer in ``[0, 2^53)``.

    Args:
        salt: the campaign's salt.
        round: the round number, or ``"holdout"`` for the holdout draw.
        unit: the unit id (any string).

    Returns:
        ``int.from_bytes(sha256(...)[:7], "big") >> 3``.

    Examples:
        >>> unit_hash("s", 1, "u")
        1250207621092461
    """
    message = f"{salt}{_SEP}{round}{_SEP}{unit}".encode()
    return int.from_bytes(hashlib.sha256(message).digest()[:7], "big") >> 3


def thresholds(weights: Sequence[float] | np.ndarray) -> np.ndarray:
    """Cumulative integer thresholds of one allocation: ``t_i = round(2^53 sum_{j<=i} w_j)``.

    Args:
        weights: non-negative weights (normalised here), in the allocation's order.

    Returns:
        ``(n,)`` int64, non-decreasing, the last exactly ``2^53``.

    Raises:
        ValueError: for an empty list, a negative or non-finite weight, or a zero sum.
    """
    w = np.asarray(weights, np.float64).reshape(-1)
    if w.size == 0 or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(
            f"an allocation needs non-negative finite weights with a positive sum, got {w!r}"
        )
    cum = np.cumsum(w / w.sum())
    t = np.rint(cum * float(SCALE)).astype(np.int64)
    t[-1] = SCALE
    return np.maximum.accumulate(np.minimum(t, SCALE))


def threshold_probabilities(t: np.ndarray) -> np.ndarray:
    """The exact probability of each layout under thresholds ``t``: ``(t_i - t_{i-1}) / 2^53``."""
    t = np.asarray(t, np.int64)
    return np.diff(np.concatenate([[0], t])).astype(np.float64) / float(SCALE)


class RoundAllocation(NamedTuple):
    """One round's allocation for one segment.

    Attributes:
        round: the round number (1 for the first proposal).
        index: ``(n,)`` int64 layout indices, in the order the thresholds follow.
        thresholds: ``(n,)`` int64 cumulative thresholds (:func:`thresholds`).
    """

    round: int
    index: np.ndarray
    thresholds: np.ndarray


class Assignment(NamedTuple):
    """Assignments of a batch of units for one round.

    Attributes:
        index: ``(N,)`` int64 layout index of each unit.
        propensity: ``(N,)`` float64 probability with which that layout was chosen for it.
        redrawn: ``(N,)`` bool: the unit's layout of the previous round left the allocation,
            so it was drawn again this round.
        holdout: ``(N,)`` bool: the unit is in the holdout (served the control layout).
    """

    index: np.ndarray
    propensity: np.ndarray
    redrawn: np.ndarray
    holdout: np.ndarray


def _pick(h: int, alloc: RoundAllocation) -> int:
    return int(alloc.index[int(np.searchsorted(alloc.thresholds, h, side="right"))])


def cohort_propensities(history: Sequence[RoundAllocation]) -> dict[int, float]:
    """The marginal probability of each layout for a unit first seen in ``history[0]``.

    ``p_f = w_f`` and ``p_t(x) = p_{t-1}(x) [x in A_t] + (1 - sum_{y in A_t} p_{t-1}(y))
    w_t(x)`` over the rounds of ``history`` in order (module docstring).

    Args:
        history: the allocations of rounds ``f..r`` of one segment.

    Returns:
        ``{layout index: probability}`` over the layouts of the last round (sums to 1).
    """
    p: dict[int, float] = {}
    for alloc in history:
        w = threshold_probabilities(alloc.thresholds)
        kept = {int(i): p.get(int(i), 0.0) for i in alloc.index}
        free = 1.0 - sum(kept.values())
        p = {i: kept[i] + free * float(wi) for i, wi in zip(kept, w, strict=True)}
    return p


def assign_units(
    salt: str,
    units: Sequence[str],
    histories: Sequence[Sequence[RoundAllocation]],
    holdout: float = 0.0,
    control: int | None = None,
) -> Assignment:
    """Assign each unit its layout for the last round of its history.

    Args:
        salt: the campaign's salt.
        units: unit ids.
        histories: per unit, the allocations of its segment from its first round to the
            current one (units of the same first round and segment share one list).
        holdout: share of units reserved for ``control`` in ``[0, 1)``.
        control: layout index of the control (required when ``holdout > 0``).

    Returns:
        The :class:`Assignment`.

    Raises:
        ValueError: for a holdout outside ``[0, 1)`` or one without a control, or a unit
            with an empty history.
    """
    if not 0.0 <= float(holdout) < 1.0:
        raise ValueError(f"holdout must be a share in [0, 1), got {holdout!r}")
    if holdout > 0 and control is None:
        raise ValueError("a holdout needs a control layout (Campaign.create(control=...))")
    n = len(units)
    index = np.zeros(n, np.int64)
    propensity = np.zeros(n, np.float64)
    redrawn = np.zeros(n, bool)
    held = np.zeros(n, bool)
    cut = int(round(float(holdout) * SCALE))
    cache: dict[int, dict[int, float]] = {}
    for i, (unit, history) in enumerate(zip(units, histories, strict=True)):
        if not history:
            raise ValueError(f"unit {unit!r} has no allocation to be assigned from")
        unit = str(unit)
        layout = _pick(unit_hash(salt, history[0].round, unit), history[0])
        for alloc in history[1:]:
            stays = bool(np.any(alloc.index == layout))
            redrawn[i] = not stays
            if not stays:
                layout = _pick(unit_hash(salt, alloc.round, unit), alloc)
        key = id(history)
        if key not in cache:
            cache[key] = cohort_propensities(history)
        if cut and unit_hash(salt, "holdout", unit) < cut:
            held[i], layout = True, int(control)
        p = (1.0 - float(holdout)) * cache[key].get(layout, 0.0)
        if holdout > 0 and layout == control:
            p += float(holdout)
        index[i], propensity[i] = layout, p
    return Assignment(index, propensity, redrawn, held)
