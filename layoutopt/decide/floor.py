"""A traffic floor and a burn-in for any policy: no layout of a proposal starves, no new
variant is dropped before it has been seen.

``with_floor(policy, min_share=, burn_in=)`` is a policy like any other (run by the one
driver, resumed by a stored campaign): each step runs the wrapped policy's step and then
changes its allocation, nothing else:

- **burn-in**: every variant with fewer than ``burn_in`` impressions so far (summed over the
  layouts that contain it) that no proposed layout contains is brought in: the proposal's
  leader (the policy's pick, else its heaviest layout) with that one component switched to
  the variant, or, when that layout is forbidden, the first proposed layout for which the
  switch is allowed, else one of them with one more component switched as well; a variant
  that no such layout reaches is left out (the space's rules forbid it near every
  proposed layout);
- **floor**: within each segment's rows (the whole allocation without segments), the
  weights become ``min_share + (1 - n * min_share) * w / sum(w)``: every one of the ``n``
  layouts gets at least ``min_share`` of its batch, the ranking of the others is kept, and
  the weights still sum to one. ``n * min_share`` must not exceed 1.

Burn-in layouts enter with weight 0 before the floor, so they get exactly the floor. Both
options are recorded with a stored campaign's proposal.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from layoutopt.data.observations import Observations
from layoutopt.decide.interface import Allocation, Policy, PolicyInfo
from layoutopt.model.space import LayoutSpace

__all__ = ["floor_allocation", "floor_weights", "variant_impressions", "with_floor"]


def floor_weights(weights: np.ndarray, min_share: float) -> np.ndarray:
    """``min_share + (1 - n * min_share) * w / sum(w)`` (uniform when every weight is 0).

    Raises:
        ValueError: if ``n * min_share > 1`` or ``min_share`` is not in [0, 1).
    """
    w = np.asarray(weights, np.float64)
    n = len(w)
    if not (0.0 <= min_share < 1.0) or not math.isfinite(min_share):
        raise ValueError(f"min_share must lie in [0, 1), got {min_share!r}")
    if n * min_share > 1.0 + 1e-12:
        raise ValueError(
            f"min_share={min_share:g} for {n} layouts is {n * min_share:.0%} of the batch; "
            f"at most {1.0 / n:.4g} fits {n} layouts"
        )
    total = w.sum()
    share = w / total if total > 0 else np.full(n, 1.0 / n)
    return min_share + (1.0 - n * min_share) * share


def variant_impressions(space: LayoutSpace, obs: Observations | None) -> list[np.ndarray]:
    """Impressions so far of every variant: one ``(n_k,)`` int64 array per component."""
    out = [np.zeros(n, np.int64) for n in space.cardinalities]
    if obs is None or not len(obs.impressions):
        return out
    codes = np.asarray(obs.codes)
    n = np.asarray(obs.impressions, np.int64)
    for k, counts in enumerate(out):
        np.add.at(counts, codes[:, k], n)
    return out


def _burn_in_rows(space, codes, lead, seen, burn_in) -> list[np.ndarray]:
    """Layouts that bring in every under-seen variant missing from ``codes``."""
    rows: list[np.ndarray] = []
    current = [tuple(c) for c in codes]
    for k, counts in enumerate(seen):
        for v in np.flatnonzero(counts < burn_in):
            if (codes[:, k] == v).any() or any(r[k] == v for r in rows):
                continue
            cand = _switched(space, [lead, *codes], k, v, set(current))
            if cand is not None:
                rows.append(cand)
                current.append(tuple(cand))
    return rows


def _switched(space, bases, k: int, v: int, taken: set) -> np.ndarray | None:
    """The first allowed, new layout with component ``k`` at ``v``: one of ``bases`` with
    that switch, else with one more component switched too (rules may forbid the first)."""
    singles = []
    for base in bases:
        cand = np.array(base, np.int32)
        cand[k] = v
        singles.append(cand)
        if tuple(cand) not in taken and space.allowed_mask(cand[None])[0]:
            return cand
    for cand in singles:
        for j, n in enumerate(space.cardinalities):
            if j == k:
                continue
            tries = np.repeat(cand[None], n, axis=0)
            tries[:, j] = np.arange(n)
            for row, ok in zip(tries, space.allowed_mask(tries), strict=True):
                if ok and tuple(row) not in taken:
                    return row
    return None


def floor_allocation(
    alloc: Allocation,
    space: LayoutSpace | None,
    obs: Observations | None,
    *,
    min_share: float = 0.0,
    burn_in: int = 0,
    pick: int = -1,
) -> Allocation:
    """``alloc`` with the burn-in layouts added and the floor applied, segment by segment.

    Args:
        alloc: the wrapped policy's allocation.
        space: the layout space (None only with ``obs`` None).
        obs: everything observed so far (None before the first round: no burn-in).
        min_share: the floor, a share of each segment's batch.
        burn_in: impressions a variant needs before it may be left out of a proposal.
        pick: the policy's pick (mixed-radix index), the base of a burn-in layout; -1: the
            heaviest layout of the allocation.

    Returns:
        The new :class:`Allocation` (same ``split``).
    """
    codes = np.asarray(alloc.codes, np.int32)
    weights = np.asarray(alloc.weights, np.float64)
    segs = None if alloc.segments is None else np.asarray(alloc.segments)
    seen = variant_impressions(space, obs) if burn_in > 0 and obs is not None else None
    groups = [None] if segs is None else list(dict.fromkeys(segs.tolist()))
    out_codes, out_w, out_s = [], [], []
    for g in groups:
        rows = np.ones(len(codes), bool) if g is None else segs == g
        c, w = codes[rows], weights[rows]
        if seen is not None and len(c):
            lead = np.asarray(space.codes_of(pick), np.int32) if pick >= 0 else c[int(np.argmax(w))]
            extra = _burn_in_rows(space, c, lead, seen, burn_in)
            if extra:
                c = np.concatenate([c, np.stack(extra)])
                w = np.concatenate([w, np.zeros(len(extra))])
        w = floor_weights(w, min_share) if min_share > 0 or seen is not None else w
        out_codes.append(c)
        out_w.append(w)
        if g is not None:
            out_s.append(np.full(len(c), g, dtype=segs.dtype))
    return Allocation(
        codes=np.concatenate(out_codes).astype(np.int32),
        weights=np.concatenate(out_w),
        split=alloc.split,
        segments=None if segs is None else np.concatenate(out_s),
    )


def with_floor(policy: Policy, *, min_share: float = 0.0, burn_in: int = 0) -> Policy:
    """``policy`` whose every allocation honours a traffic floor and a burn-in.

    Args:
        policy: any :class:`~layoutopt.decide.interface.Policy`.
        min_share: every proposed layout gets at least this share of its batch (per segment).
        burn_in: a variant seen fewer than this many impressions is kept in every proposal.

    Returns:
        The wrapped :class:`Policy` (its name says the floor; ``resume`` passes through).

    Raises:
        ValueError: for a ``min_share`` outside [0, 1) or a negative ``burn_in``.
    """
    if not (0.0 <= float(min_share) < 1.0):
        raise ValueError(f"min_share must lie in [0, 1), got {min_share!r}")
    if isinstance(burn_in, bool) or int(burn_in) != burn_in or burn_in < 0:
        raise ValueError(f"burn_in must be a whole number of impressions >= 0, got {burn_in!r}")
    if min_share == 0 and burn_in == 0:
        return policy

    def step(state, obs, key) -> tuple[Any, Allocation, PolicyInfo]:
        state, alloc, info = policy.step(state, obs, key)
        alloc = floor_allocation(
            alloc,
            None if obs is None else obs.space,
            obs,
            min_share=float(min_share),
            burn_in=int(burn_in),
            pick=info.pick,
        )
        return state, alloc, info

    name = f"{policy.name} (floor {min_share:g}, burn-in {int(burn_in)})"
    return Policy(policy.init, step, name, policy.resume)
