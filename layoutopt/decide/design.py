"""Initial designs: which layouts to test first.

Three kinds of design, all returned as a DataFrame of allowed, distinct layouts (``index`` plus
one label column per component, as :meth:`LayoutSpace.frame` writes it):

* ``"pairwise"`` -- a strength-2 covering array: every pair of variants of every two components
  appears together in at least one layout, so every main effect and every pairwise interaction
  of the model is touched by the data. Built on pairs, never on the space, so it is fast for
  spaces of any size.
* ``"random"`` -- distinct allowed layouts drawn uniformly at random.
* ``"full"`` -- the full factorial of allowed layouts (small spaces only).

The covering array is built with an IPOG-F style greedy (Lei et al. 2007; Forbes et al. 2008):
components are taken in decreasing cardinality, the first two as their full product; each
further component is added by *horizontal growth* (repeatedly give the (row, value) that covers
the most uncovered pairs its value; rows that would cover nothing are left as don't-care) and
*vertical growth* (the pairs still uncovered are placed in don't-care cells of existing rows, or
in new rows). Don't-cares are then filled so that every variant is used about equally often, and
rows whose pairs are all covered elsewhere are dropped. Forbidden combinations and distinct
groups (slots that may not repeat an item) are respected throughout: a partial row is only
ever extended if it can still be completed to an allowed layout. The pair of one item in two
slots of a distinct group is impossible by design and is never asked for. The greedy is
restarted with a few seeded tie-breakings and the smallest array is kept.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from layoutopt.model.space import LayoutSpace
from layoutopt.util.limits import check_design_pairs, check_seed

__all__ = ["initial_design", "UncoverablePairsWarning", "DESIGN_KINDS"]

DESIGN_KINDS = ("pairwise", "random", "full")

# Work (row x pair updates) the restarts of the greedy may spend in total; the number of
# restarts is derived from it so results depend only on the seed, never on the clock.
_RESTART_WORK = 5_000_000
_MAX_RESTARTS = 32


class UncoverablePairsWarning(UserWarning):
    """Forbidden rules together make some variant pairs impossible, so no design covers them.

    Pairs that a single rule forbids by itself (a rule on one of the two variants, or on
    exactly the two) are intended and do not warn; they are listed all the same.

    The design is still returned (it covers every pair that can be covered); the offending
    pairs are listed in ``design.attrs["uncoverable_pairs"]``.
    """


def initial_design(
    space: LayoutSpace,
    seed: int = 0,
    size: int | None = None,
    kind: str = "pairwise",
    max_full: int = 100_000,
    cover: pd.DataFrame | np.ndarray | None = None,
) -> pd.DataFrame:
    """A set of distinct allowed layouts to test first.

    Args:
        space: the layout space.
        seed: seed for tie-breaking (pairwise) and sampling (random, top-up); the same seed
            gives the same design.
        size: number of layouts. Required for ``kind="random"``. For ``kind="pairwise"``,
            ``None`` gives the covering array alone; a larger ``size`` tops it up with random
            distinct allowed layouts (more data); a smaller one is an error that names the
            smallest covering size found. Not accepted for ``kind="full"``.
        kind: ``"pairwise"`` (strength-2 covering array), ``"random"`` (uniform distinct
            allowed layouts) or ``"full"`` (every allowed layout).
        max_full: largest number of allowed layouts ``kind="full"`` will enumerate, and
            the largest ``size``.
        cover: layouts already tested (a DataFrame with one label column per component,
            e.g. an earlier design, or an ``(N, K)`` code array of ``space``). Then the
            design is a *top-up*: only new allowed layouts, just enough (greedily) that the
            existing ones plus these cover every coverable variant pair -- after
            :meth:`LayoutSpace.with_variants`, every pair involving the new variants. Only
            with ``kind="pairwise"`` and no ``size``. Existing layouts may hold retired
            variants; their pairs still count as covered.

    Returns:
        DataFrame with ``index`` (mixed-radix layout index) and one categorical label column
        per component, one row per layout, sorted by ``index``. ``attrs`` holds ``"kind"``,
        ``"covering_size"`` (pairwise: rows of the covering array before any top-up),
        ``"lower_bound"`` (pairwise: the most coverable variant pairs of any one component pair,
        ``max n_k * n_l`` without forbidden rules; each layout covers one pair per component
        pair, so no covering array is smaller) and ``"uncoverable_pairs"`` (pairwise: list of
        ``{component: label}`` dicts of the variant pairs no allowed layout contains; empty
        when there are none).

    Raises:
        ValueError: for an unknown ``kind``, a missing or non-positive ``size``, a ``size``
            above the number of allowed layouts or below the covering size, or a full
            factorial or a ``size`` larger than ``max_full``, or a seed outside
            ``[0, 2**32 - 1]``.

    Warns:
        UncoverablePairsWarning: when forbidden rules together make variant pairs impossible
            that no single rule names (pairs a rule names directly are listed silently); the
            design covers all the others.

    Examples:
        >>> space = LayoutSpace({"a": ["0", "1"], "b": ["0", "1"], "c": ["0", "1"]})
        >>> len(initial_design(space))
        4

    References:
        Lei, Kacker, Kuhn, Okun, Lawrence, *IPOG: A general strategy for t-way software
        testing* (ECBS 2007); Forbes, Lawrence, Lei, Kacker, Kuhn, *Refining the
        in-parameter-order strategy for constructing covering arrays* (J. Res. NIST 2008);
        Hill et al., *An Efficient Bandit Algorithm for Realtime Multivariate Optimization*
        (KDD 2017) for the use of a small initial design before bandit allocation.
    """
    if not isinstance(space, LayoutSpace):
        raise ValueError(f"space must be a LayoutSpace, got {type(space).__name__}")
    if kind not in DESIGN_KINDS:
        raise ValueError(f"unknown design kind {kind!r}; valid kinds: {list(DESIGN_KINDS)}")
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
            raise ValueError(f"size must be a positive integer or None, got {size!r}")
        size = int(size)
        if size > space.num_allowed:
            raise ValueError(
                f"size={size} exceeds the {space.num_allowed} allowed layouts of the space"
            )
        if size > max_full:
            raise ValueError(
                f"size={size} is above max_full={max_full} layouts (a test of more layouts "
                "than that cannot be served); ask for fewer"
            )
    rng = np.random.default_rng(check_seed(seed))
    if cover is not None:
        if kind != "pairwise" or size is not None:
            raise ValueError('cover= tops up a pairwise design: use kind="pairwise", no size')
        return _frame(space, _top_up(space, _cover_codes(space, cover), rng), kind="top-up")

    if kind == "full":
        if size is not None:
            raise ValueError('kind="full" takes no size; it returns every allowed layout')
        if space.num_allowed > max_full:
            raise ValueError(
                f"the full factorial has {space.num_allowed} allowed layouts (space size "
                f'{space.size}), above max_full={max_full}; use kind="pairwise" for a small '
                "design covering every variant pair, or raise max_full"
            )
        codes = np.concatenate([c for _, c in space.iter_chunks()], axis=0)
        return _frame(space, codes, kind="full")

    if kind == "random":
        if size is None:
            raise ValueError('kind="random" needs size=<number of layouts>')
        codes = _random_distinct(space, size, rng, taken=np.zeros((0, space.num_components)))
        return _frame(space, codes, kind="random")

    check_design_pairs(space.cardinalities)
    codes, uncoverable, bound = _covering_array(space, rng)
    covering_size = codes.shape[0]
    if size is not None:
        if size < covering_size:
            raise ValueError(
                f"size={size} is below the smallest pairwise design found for this space "
                f"({covering_size} layouts; lower bound {bound}); pass "
                f'size >= {covering_size}, or use kind="random" for fewer layouts without '
                "full pair coverage"
            )
        extra = _random_distinct(space, size - covering_size, rng, taken=codes)
        codes = np.concatenate([codes, extra], axis=0)
    labels = [
        {space.components[j]: space.variants[j][a], space.components[c]: space.variants[c][v]}
        for j, a, c, v in uncoverable
    ]
    # A pair that one rule forbids by itself (a rule on that variant, or on exactly those two
    # variants, or one item in two slots of a distinct group) is what the user asked for;
    # only pairs that a combination of rules makes impossible are news worth a warning. All
    # of them are listed in attrs.
    surprising = [
        lab
        for lab, (j, a, c, v) in zip(labels, uncoverable, strict=True)
        if not any(set(rule) <= {(j, a), (c, v)} for rule in space.forbidden)
        and not (a == v and any(j in g and c in g for g in space.distinct))
    ]
    if surprising:
        shown = "; ".join(str(p) for p in surprising[:5])
        shown += " ..." if len(surprising) > 5 else ""
        warnings.warn(
            f"{len(surprising)} variant pair(s) appear in no allowed layout, though no single "
            f"forbidden rule names them, and cannot be covered "
            f"(see design.attrs['uncoverable_pairs']): {shown}",
            UncoverablePairsWarning,
            stacklevel=2,
        )
    df = _frame(space, codes, kind="pairwise")
    df.attrs["covering_size"] = covering_size
    df.attrs["lower_bound"] = bound
    df.attrs["uncoverable_pairs"] = labels
    return df


# --------------------------------------------------------------------------------- helpers
def _frame(space: LayoutSpace, codes: np.ndarray, kind: str) -> pd.DataFrame:
    codes = np.asarray(codes, dtype=np.int32).reshape(-1, space.num_components)
    df = space.frame(codes)
    df = df.sort_values("index", kind="stable").reset_index(drop=True)
    df.attrs["kind"] = kind
    return df


def _keys(codes: np.ndarray) -> list[tuple[int, ...]]:
    return [tuple(int(x) for x in row) for row in np.asarray(codes)]


def _random_distinct(
    space: LayoutSpace, n: int, rng: np.random.Generator, taken: np.ndarray
) -> np.ndarray:
    """``n`` distinct allowed layouts uniformly at random, none of them in ``taken``."""
    K = space.num_components
    if n <= 0:
        return np.zeros((0, K), dtype=np.int32)
    seen = set(_keys(taken))
    available = space.num_allowed - len(seen)
    if n > available:
        raise ValueError(
            f"asked for {n} more distinct layouts but only {available} allowed layouts remain"
        )
    # Rejection sampling slows down once most of the space is taken; small spaces are then
    # enumerated and sampled without replacement instead.
    if 2 * (n + len(seen)) > space.num_allowed and space.num_allowed <= 2_000_000:
        pool = np.concatenate([c for _, c in space.iter_chunks()], axis=0)
        if seen:
            keep = np.array([k not in seen for k in _keys(pool)], dtype=bool)
            pool = pool[keep]
        pick = rng.choice(pool.shape[0], size=n, replace=False)
        return pool[np.sort(pick)]
    out: list[tuple[int, ...]] = []
    card = np.asarray(space.cardinalities)
    while len(out) < n:
        batch = (rng.random((2 * (n - len(out)) + 16, K)) * card).astype(np.int32)
        batch = batch[space.allowed_mask(batch)]
        for key in _keys(batch):
            if key not in seen:
                seen.add(key)
                out.append(key)
                if len(out) == n:
                    break
    return np.asarray(out, dtype=np.int32)


class _Completer:
    """Decides whether a partial layout (``-1`` = unset) extends to an allowed layout.

    Every forbidden rule must be broken by some component; the search branches, for the first
    rule not yet broken, over which of its unset components will differ from the rule's value.
    Once every rule is broken, each distinct group needs distinct values for its unset
    components, none taken by its set ones nor excluded by the branch: a matching
    (:func:`_matchable`). Complete, and cheap for the handful of rules real spaces have.
    """

    def __init__(
        self,
        card: Sequence[int],
        rules: Sequence[tuple[tuple[int, int], ...]],
        groups: Sequence[tuple[int, ...]] = (),
    ):
        self.card = tuple(card)
        self.rules = tuple(rules)
        self.groups = tuple(groups)
        # (component, value) pairs named by some rule: only these can make a cell infeasible.
        self.named = {kv for rule in self.rules for kv in rule}
        # with groups alone, a value is infeasible only where a slot of its group holds it
        self.active = bool(self.rules or self.groups)
        self.group_of = {k: g for g in self.groups for k in g}

    def ok(self, row: Sequence[int]) -> bool:
        if not self.active:
            return True
        for g in self.groups:
            values = [row[k] for k in g if row[k] >= 0]
            if len(set(values)) < len(values):
                return False
        return self._search(row, 0, {})

    def _distinct_ok(self, row, excl: dict[int, frozenset]) -> bool:
        for g in self.groups:
            free = [k for k in g if row[k] < 0]
            taken = {row[k] for k in g if row[k] >= 0}
            if not any(k in excl for k in free):
                if len(free) > self.card[g[0]] - len(taken):
                    return False
                continue
            options = [set(range(self.card[k])) - taken - excl.get(k, set()) for k in free]
            if not _matchable(options):
                return False
        return True

    def _search(self, row, start: int, excl: dict[int, frozenset]) -> bool:
        for r in range(start, len(self.rules)):
            free = []
            broken = False
            for k, v in self.rules[r]:
                x = row[k]
                if x >= 0:
                    if x != v:
                        broken = True
                        break
                elif v in excl.get(k, ()):
                    broken = True
                    break
                else:
                    free.append((k, v))
            if broken:
                continue
            for k, v in free:
                e = excl.get(k, frozenset())
                if len(e) + 1 >= self.card[k]:
                    continue  # no value of k would be left
                if self._search(row, r + 1, {**excl, k: e | {v}}):
                    return True
            return False
        return self._distinct_ok(row, excl) if self.groups else True


def _matchable(options: list[set]) -> bool:
    """Whether every slot can take its own value from its ``options`` (augmenting paths)."""
    owner: dict[int, int] = {}

    def place(i: int, seen: set) -> bool:
        for v in options[i]:
            if v not in seen:
                seen.add(v)
                if v not in owner or place(owner[v], seen):
                    owner[v] = i
                    return True
        return False

    return all(place(i, set()) for i in range(len(options)))


def _covering_array(space: LayoutSpace, rng: np.random.Generator):
    """Smallest strength-2 covering array over a few seeded restarts of the greedy.

    Returns:
        ``(codes, uncoverable, lower_bound)``: ``(N, K)`` int32 codes in the space's component
        order; a list of ``(j, a, l, b)`` (components ``j < l``) for pairs no allowed layout
        holds; and the most coverable pairs of any one component pair.
    """
    card = space.cardinalities
    K = len(card)
    # Decreasing cardinality (stable), the usual IPOG order: the first two components' product
    # is then the lower bound and later, smaller components fit into its rows.
    perm = sorted(range(K), key=lambda k: -card[k])
    pos = {k: i for i, k in enumerate(perm)}
    pcard = tuple(card[k] for k in perm)
    prules = [tuple(sorted((pos[k], v) for k, v in rule)) for rule in space.forbidden]
    comp = _Completer(pcard, prules, [tuple(sorted(pos[k] for k in g)) for g in space.distinct])

    if K == 1:
        codes = np.array([[v] for v in range(card[0]) if comp.ok((v,))], dtype=np.int32)
        return codes, [], codes.shape[0]

    uncov: dict[tuple[int, int], np.ndarray] = {}
    bad = []
    for c in range(1, K):
        for j in range(c):
            m = np.ones((pcard[j], pcard[c]), dtype=bool)
            if j in comp.group_of.get(c, ()):
                # one item in two slots of a group: impossible by design
                for a in range(pcard[j]):
                    m[a, a] = False
                    bad.append((perm[j], a, perm[c], a))
            if comp.rules:
                row = [-1] * K
                for a in range(pcard[j]):
                    for v in range(pcard[c]):
                        # a rule and a group together may rule out any pair (a rule on
                        # one slot takes a value from the group's pool for the others)
                        named = (j, a) in comp.named or (c, v) in comp.named
                        if m[a, v] and (named or comp.groups):
                            row[j], row[c] = a, v
                            if not comp.ok(row):
                                m[a, v] = False
                                bad.append((perm[j], a, perm[c], v))
                            row[j] = row[c] = -1
            uncov[(j, c)] = m

    num_pairs = sum(int(m.sum()) for m in uncov.values())
    est_rows = pcard[0] * pcard[1] * 1.5
    restarts = int(np.clip(_RESTART_WORK // max(1.0, num_pairs * est_rows), 1, _MAX_RESTARTS))
    bound = max(int(m.sum()) for m in uncov.values())
    best = None
    for _ in range(restarts):
        rows = _ipog(pcard, comp, {key: m.copy() for key, m in uncov.items()}, rng)
        if best is None or rows.shape[0] < best.shape[0]:
            best = rows
        if best.shape[0] == bound:
            break  # optimal: no covering array is smaller
    codes = best[:, [pos[k] for k in range(K)]].astype(np.int32)
    out = []
    for j, a, c, v in bad:
        j2, c2 = min(j, c), max(j, c)
        out.append((j2, a if j2 == j else v, c2, v if j2 == j else a))
    return codes, sorted(out), bound


def _ipog(pcard, comp: _Completer, uncov, rng: np.random.Generator) -> np.ndarray:
    """One IPOG-F run on components in ``pcard`` order; returns a filled, pruned array."""
    K = len(pcard)
    n0, n1 = pcard[0], pcard[1]
    rows_l = []
    for a in range(n0):
        for b in range(n1):
            if uncov[(0, 1)][a, b]:
                rows_l.append([a, b] + [-1] * (K - 2))
    uncov[(0, 1)][:] = False
    rows = np.asarray(rows_l, dtype=np.int64).reshape(-1, K)

    for c in range(2, K):
        n_c = pcard[c]
        U = [uncov[(j, c)] for j in range(c)]
        R = rows.shape[0]
        # --- horizontal growth: best (row, value) first, gains updated incrementally
        gain = np.zeros((R, n_c))
        for j in range(c):
            a = rows[:, j]
            m = a >= 0
            gain[m] += U[j][a[m]]
        for j in comp.group_of.get(c, ()):
            if j < c:  # the values a slot of c's group already holds
                set_rows = np.flatnonzero(rows[:, j] >= 0)
                gain[set_rows, rows[set_rows, j]] = -np.inf
        if comp.rules:
            named_vals = [v for v in range(n_c) if (c, v) in comp.named]
            if comp.groups:  # a rule and a group together may rule out any value
                named_vals = list(range(n_c))
            for r in range(R):
                row = rows[r].tolist()
                for v in named_vals:
                    row[c] = v
                    if not comp.ok(row):
                        gain[r, v] = -np.inf
        # Seeded jitter breaks ties between equal gains without changing any order of gains.
        gain += rng.random((R, n_c)) * 0.5
        while R:
            r, v = np.unravel_index(int(np.argmax(gain)), gain.shape)
            if gain[r, v] < 1.0:
                break
            rows[r, c] = v
            for j in range(c):
                a = rows[r, j]
                if a >= 0 and U[j][a, v]:
                    U[j][a, v] = False
                    gain[rows[:, j] == a, v] -= 1.0
            gain[r, :] = -np.inf
        # --- vertical growth: remaining pairs go into don't-care cells or new rows
        new_rows: list[np.ndarray] = []
        for j in range(c):
            for a, v in np.argwhere(U[j]):
                if not U[j][a, v]:
                    continue  # covered meanwhile by an earlier placement
                placed = False
                pool = [rows] + ([np.asarray(new_rows)] if new_rows else [])
                for block_id, block in enumerate(pool):
                    cand = np.flatnonzero(
                        ((block[:, j] == a) | (block[:, j] < 0))
                        & ((block[:, c] == v) | (block[:, c] < 0))
                    )
                    for r in cand:
                        row = (rows[r] if block_id == 0 else new_rows[r]).copy()
                        row[j], row[c] = a, v
                        if comp.ok(row.tolist()):
                            if block_id == 0:
                                rows[r] = row
                            else:
                                new_rows[r] = row
                            _mark(row, c, U)
                            placed = True
                            break
                    if placed:
                        break
                if not placed:
                    row = np.full(K, -1, dtype=np.int64)
                    row[j], row[c] = a, v
                    new_rows.append(row)
                    _mark(row, c, U)
        if new_rows:
            rows = np.concatenate([rows, np.asarray(new_rows)], axis=0)

    rows = _fill(rows, pcard, comp)
    return _prune(rows, rng)


def _mark(row: np.ndarray, c: int, U) -> None:
    v = row[c]
    if v < 0:
        return
    for j in range(c):
        if row[j] >= 0:
            U[j][row[j], v] = False


def _fill(rows: np.ndarray, pcard, comp: _Completer) -> np.ndarray:
    """Fill don't-cares with each component's least-used feasible variant (balance)."""
    K = len(pcard)
    counts = [np.bincount(rows[:, k][rows[:, k] >= 0], minlength=pcard[k]) for k in range(K)]
    for r in range(rows.shape[0]):
        for k in np.flatnonzero(rows[r] < 0):
            row = rows[r].tolist()
            for v in np.argsort(counts[k], kind="stable"):
                row[k] = int(v)
                if comp.ok(row):
                    break
            else:  # every row is completable by construction: a bug if not
                raise RuntimeError(f"design row {rows[r].tolist()} cannot be completed")
            rows[r, k] = row[k]
            counts[k][row[k]] += 1
    return rows


def _prune(rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Drop rows whose every pair is covered by another row (duplicates included)."""
    R, K = rows.shape
    if K < 2:
        return np.unique(rows, axis=0)
    pairs = [(j, c) for c in range(K) for j in range(c)]
    width = [int(rows[:, c].max()) + 1 for c in range(K)]
    # Pair ids per row: one integer per (component pair, value pair).
    ids = np.zeros((R, len(pairs)), dtype=np.int64)
    off = 0
    for p, (j, c) in enumerate(pairs):
        ids[:, p] = off + rows[:, j] * width[c] + rows[:, c]
        off += (int(rows[:, j].max()) + 1) * width[c]
    count = np.bincount(ids.ravel(), minlength=off)
    keep = np.ones(R, dtype=bool)
    # Rows holding the fewest singly-covered pairs go first; seeded order among equals.
    unique = (count[ids] == 1).sum(axis=1)
    order = np.lexsort((rng.random(R), unique))
    for r in order:
        if np.all(count[ids[r]] >= 2):
            keep[r] = False
            count[ids[r]] -= 1
    return rows[keep]


# ------------------------------------------------------------------------- covering top-up
def _cover_codes(space: LayoutSpace, cover) -> np.ndarray:
    """Codes of the already-tested layouts (labels matched by name; retired allowed)."""
    if isinstance(cover, pd.DataFrame):
        missing = [c for c in space.components if c not in cover.columns]
        if missing:
            raise ValueError(
                f"cover: missing label column(s) {missing}; needs one per component "
                f"{list(space.components)}"
            )
        rows = cover[list(space.components)].astype(str).to_dict("records")
        codes = np.array([space.encode(r) for r in rows], dtype=np.int32)
        return codes.reshape(-1, space.num_components)
    codes = np.asarray(cover)
    if codes.ndim != 2 or codes.shape[1] != space.num_components:
        raise ValueError(
            f"cover: codes must have shape (N, {space.num_components}), got {codes.shape}"
        )
    if codes.size and (np.any(codes < 0) or np.any(codes >= np.asarray(space.cardinalities))):
        raise ValueError(f"cover: codes out of range for cardinalities {space.cardinalities}")
    return codes.astype(np.int32)


def _top_up(space: LayoutSpace, existing: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Greedy rows that, with ``existing``, cover every coverable variant pair.

    Each new row starts from one uncovered pair (taken in a seeded random order) and fills
    the other components one at a time with the allowed value that covers the most
    still-uncovered pairs with the components already set.
    """
    card = space.cardinalities
    K = len(card)
    comp = _Completer(card, space.forbidden, space.distinct)
    pairs = [(j, c) for j in range(K) for c in range(j + 1, K)]
    need = {}
    for j, c in pairs:
        m = np.ones((card[j], card[c]), dtype=bool)
        row = [-1] * K
        for a in range(card[j]):
            for v in range(card[c]):
                if comp.active and (
                    (j, a) in comp.named or (c, v) in comp.named or a == v and comp.groups
                ):
                    row[j], row[c] = a, v
                    m[a, v] = comp.ok(row)
                    row[j] = row[c] = -1
        if len(existing):
            m[existing[:, j], existing[:, c]] = False
        need[(j, c)] = m
    seen = set(_keys(existing))
    out: list[list[int]] = []
    while True:
        todo = [
            (j, c, a, v) for (j, c), m in need.items() for a, v in zip(*np.nonzero(m), strict=True)
        ]
        if not todo:
            break
        j, c, a, v = todo[int(rng.integers(len(todo)))]
        row = [-1] * K
        row[j], row[c] = int(a), int(v)
        for k in rng.permutation([k for k in range(K) if row[k] < 0]):
            gains = []
            for x in range(card[k]):
                row[k] = x
                if not comp.ok(row):
                    gains.append(-1)
                    continue
                gains.append(sum(_need(need, k, x, i, row[i]) for i in range(K) if row[i] >= 0))
            best = np.flatnonzero(np.asarray(gains) == max(gains))
            row[k] = int(rng.choice(best))
        if tuple(row) in seen:
            # Cannot happen for a row holding an uncovered pair; guard against a loop.
            break
        seen.add(tuple(row))
        out.append(row)
        for i in range(K):
            for l in range(i + 1, K):
                need[(i, l)][row[i], row[l]] = False
    return np.asarray(out, dtype=np.int32).reshape(-1, K)


def _need(need, k: int, x: int, i: int, y: int) -> int:
    if i == k:
        return 0
    return int(need[(k, i)][x, y]) if k < i else int(need[(i, k)][y, x])
