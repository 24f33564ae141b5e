"""Exact per-draw argmax by branch and bound, vectorised over draws (host numpy).

The same search as ``optimize._branch_and_bound`` (the admissible bound over the pairwise
tables, exact completion of the last two components, a node limit per draw), but every
draw's open nodes at one depth are expanded together: a batch of nodes is a set of arrays
``(draw, prefix codes, fixed value F, free-table offsets A, bound)``, one row per node, and
one numpy expression per depth replaces one Python iteration per node and draw. Batches
are kept on a stack (depth first over batches) and split to at most ``batch_elems`` floats of
work each, so memory stays bounded whatever the number of draws.

All draws share one sequence of component sizes (big effects first, by the spread of the
tables averaged over the draws); without forbidden rules each draw orders the components
of equal size by its own spreads. The bound is admissible in any order, so the
certificates are the same in kind: ``upper_bound`` bounds eta over all allowed layouts,
``gap`` is its distance to the returned layout's eta, and a draw is proven optimal when its
gap vanishes.

The node bounds' maxima over the pairwise tables (the memory-bound bulk of the work) run
in float32 with a per-draw rounding margin added to every bound, so the bounds stay
admissible (see :func:`_bound_margin`); they only prune. Values of layouts (the fixed part
F, the free-table offsets A, the exact completions at the last two levels and the
incumbents) stay float64, so the returned values and codes are those of the float64 search.
Before the full bounds of a node's children, one screen per node (the same bound with the
table's maximum over the node's codes, so above every child's) drops the children it
already prunes: ~60% of them on random 10^10 tables, at 1/n_d of the work.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from layoutopt.model.core import pair_list

#: Elements per expanded batch (nodes x variants x free-table width), of which the screen in
#: :func:`_expand` passes ~40% on to the full bound. float64 tables, no screen: 2^18 was
#: fastest (2^16..2^20 within 20%, 2^22 ~3x slower: cache); float32 bound tables and the
#: screen: 2^20 ~5% faster than 2^19 and 2^21 ~3% faster again, both expanding ~0.4% more
#: nodes (incumbents improve later); benchmarks/README.md.
BATCH_ELEMS = 2**20

#: Unit roundoff of float32 (round to nearest).
_U32 = 2.0**-24
#: Largest per-draw magnitude bound for which the bound tables use float32 (far from float32
#: overflow, 2^128); beyond it they stay float64 with no margin.
_F32_MAX_MAGNITUDE = 2.0**100


class BatchTables(NamedTuple):
    """Per-draw tables in a common search order (float64, leading draw axis S).

    Attributes:
        order: ``(S, K)`` search position -> component, per draw (the same for all draws
            when the space has forbidden rules; otherwise only the sizes are common).
        sizes: cardinality of each search position.
        offs: ``(K + 1,)`` offsets of the positions in a concatenated table.
        b0: ``(S,)`` intercepts.
        main: ``(S, sum n)`` main effects, positions concatenated.
        pair_cat: ``pair_cat[d]``: ``(S, n_d, sum_{e>d} n_e)``, ``p_de[v, w]`` for e > d.
        seg: ``seg[d]``: offsets of the partners e > d inside ``pair_cat[d]``'s last axis.
        rowmax: ``rowmax[d]``: ``(S, sum_{e>=d} n_e)``, ``R_e[w] = sum_{f>e} max_u p_ef[w, u]``
            for the positions e >= d, concatenated.
        pair_rowmax: ``pair_rowmax[d]``: ``pair_cat[d] + R_e[w]`` of the partners e > d, in
            the bound dtype (float32 unless the tables are huge, see :func:`_bound_margin`).
        pair_vmax: ``pair_vmax[d]``: ``(S, R)`` maximum of ``pair_rowmax[d]`` over v, the
            screen of :func:`_expand` (bound dtype).
        margin: ``margin[d]``: ``(S,)`` float64 rounding margin added to the bounds at depth d.
        pairs: ``{(k, j): (S, n_k, n_j)}`` for both orders, by component.
        rules_at: ``rules_at[d]``: forbidden rules ``(prefix [(position, code)], code)`` whose
            last position is d.
        same_at: ``same_at[d]``: the positions j < d in the distinct group of position d
            (code ``x_j`` is then excluded at d: one rule per group, not per item).
    """

    order: np.ndarray
    sizes: tuple
    offs: np.ndarray
    b0: np.ndarray
    main: np.ndarray
    pair_cat: list
    seg: list
    rowmax: list
    pair_rowmax: list
    pair_vmax: list
    margin: list
    pairs: dict
    rules_at: list
    same_at: list


class _Batch(NamedTuple):
    depth: int
    draw: np.ndarray  # (B,) draw of each node
    x: np.ndarray  # (B, depth) codes fixed so far (search order)
    F: np.ndarray  # (B,) value of the fixed part
    A: np.ndarray  # (B, sum_{e>=depth} n_e) A_e[w] = m_e[w] + sum_{j<depth} p_je[x_j, w]
    bound: np.ndarray  # (B,) admissible bound of the node (+inf at the root)

    def take(self, sel) -> _Batch:
        """The nodes ``sel`` (a mask, indices or a slice) of the batch."""
        return _Batch(self.depth, *(a[sel] for a in self[1:]))


def prepare(params_host, cardinalities, forbidden, distinct=()) -> BatchTables:
    """:class:`BatchTables` of host params (leading draw axis) for a space.

    Args:
        params_host: :class:`~layoutopt.model.Params` of numpy arrays with a draw axis S.
        cardinalities: the space's cardinalities.
        forbidden: the space's forbidden rules (tuples of ``(component, code)``).
        distinct: the space's distinct groups (tuples of components).
    """
    card = tuple(int(n) for n in cardinalities)
    K = len(card)
    S = int(np.shape(params_host.intercept)[0])
    main = [np.asarray(m, np.float64) for m in params_host.main]
    pairs = {}
    if params_host.pair:
        for (k, j), p in zip(pair_list(K), params_host.pair, strict=True):
            pairs[(k, j)] = np.asarray(p, np.float64)
            pairs[(j, k)] = np.swapaxes(pairs[(k, j)], 1, 2)
    spread = np.zeros((S, K))
    for k in range(K):
        spread[:, k] = np.ptp(main[k], axis=1)
        for j in range(K):
            if (k, j) in pairs:
                spread[:, k] += np.ptp(pairs[(k, j)], axis=(1, 2))
    common = np.argsort(-spread.mean(axis=0), kind="stable")
    sizes = tuple(card[k] for k in common)
    order = np.broadcast_to(common, (S, K)).copy()
    if not forbidden and not distinct:
        # each draw decides its own big effects first among the positions of equal size
        # (with rules, one order keeps the rule positions common to all draws)
        for n in set(sizes):
            slots = [d for d in range(K) if sizes[d] == n]
            comps = common[slots]
            order[:, slots] = comps[np.argsort(-spread[:, comps], axis=1, kind="stable")]
    offs = np.concatenate([[0], np.cumsum(sizes)]).astype(np.intp)

    def gather(table_of, d, e=None):
        """Per-draw table of positions (d, e) (or d alone) from the component tables."""
        shape = (S, sizes[d]) if e is None else (S, sizes[d], sizes[e])
        out = np.zeros(shape)
        for k in np.unique(order[:, d]):
            at_k = order[:, d] == k
            if e is None:
                out[at_k] = main[k][at_k]
                continue
            for j in np.unique(order[at_k, e]):
                sel = at_k & (order[:, e] == j)
                if (k, j) in table_of:
                    out[sel] = table_of[(k, j)][sel]
        return out

    main_o = np.concatenate([gather(None, d) for d in range(K)], axis=1)
    pair_cat, seg, rowmax_one = [], [], []
    for d in range(K):
        blocks = [gather(pairs, d, e) for e in range(d + 1, K)]
        if blocks:
            pair_cat.append(np.concatenate(blocks, axis=2))
            seg.append(np.concatenate([[0], np.cumsum([b.shape[2] for b in blocks])[:-1]]))
            rowmax_one.append(sum(b.max(axis=2) for b in blocks))
        else:
            pair_cat.append(np.zeros((S, sizes[d], 0)))
            seg.append(np.zeros(0, np.intp))
            rowmax_one.append(np.zeros((S, sizes[d])))
    seg = [np.asarray(s, np.intp) for s in seg]
    rowmax = [np.concatenate(rowmax_one[d:], axis=1) for d in range(K)]
    pos = np.empty(K, np.intp)
    pos[common] = np.arange(K)
    pair_rowmax = [pc + rowmax[d + 1][:, None, :] for d, pc in enumerate(pair_cat[:-1])]
    margin, dtype = _bound_margin(main_o, pair_cat, offs, pair_rowmax)
    rules_at = [[] for _ in range(K)]
    for rule in forbidden:
        entries = sorted((int(pos[k]), int(v)) for k, v in rule)
        rules_at[entries[-1][0]].append((entries[:-1], entries[-1][1]))
    same_at = same_positions(distinct, pos)
    return BatchTables(
        order,
        sizes,
        offs,
        np.asarray(params_host.intercept, np.float64).reshape(S),
        main_o,
        pair_cat,
        seg,
        rowmax,
        [m.astype(dtype) for m in pair_rowmax] + [None],
        [m.max(axis=1).astype(dtype) for m in pair_rowmax] + [None],
        margin,
        pairs,
        rules_at,
        same_at,
    )


def same_positions(distinct, pos) -> list:
    """Per search position d, the earlier positions in d's distinct group (``pos``: component
    -> position)."""
    out = [[] for _ in range(len(pos))]
    for g in distinct:
        at = sorted(int(pos[k]) for k in g)
        for i, d in enumerate(at):
            out[d] = at[:i]
    return out


def _bound_margin(main_o, pair_cat, offs, pair_rowmax):
    """Per-draw margins ``[(S,)] * K`` that keep float32 bounds admissible, and the dtype.

    At depth d the bound adds, for each of the E = K - 1 - d partners e, the maximum over w
    of ``c = fl32(fl32(x) + fl32(y))`` with ``x = p_de[v, w] + R_e[w]`` (a ``pair_rowmax``
    entry, ``|x| <= X``) and ``y = A_e[w]`` (``|y| <= Y``). Each of the three roundings errs
    by at most u = 2^-24 relatively (plus 2^-150 absolutely if it underflows), so
    ``|c - (x + y)| <= (2u + u^2)(X + Y) + 3 * 2^-150``; a maximum moves by at most the
    largest error of its terms. The E maxima are summed in float64 (error at most
    ``(E - 1) 2^-53`` of their total, ``<= E (X + Y)(1 + 3u)``), which 3u in place of
    ``2u + u^2`` covers for E < 2^27. Hence the margin ``E (3u (X + Y) + 2^-147)``.
    Per draw, X is the largest ``|pair_rowmax|`` entry at any depth and
    ``Y = max_e (max |m_e| + sum_{j != e} max |p_je|)`` bounds ``|A_e[w]|`` for every prefix.
    Where X + Y exceeds ``_F32_MAX_MAGNITUDE`` for some draw the tables stay float64 and
    the margins are zero (as in the per-draw loop, whose float64 bounds carry none).
    """
    K = len(offs) - 1
    S = main_o.shape[0]
    X = np.zeros(S)
    for m in pair_rowmax:
        if m.size:
            X = np.maximum(X, np.abs(m).max(axis=(1, 2)))
    # sum_{j != e} max|p_je|: every pair table enters the sums of both its positions
    pair_abs = np.zeros((S, K))
    for d, pc in enumerate(pair_cat):
        for e in range(d + 1, K):
            blk = pc[:, :, offs[e] - offs[d + 1] : offs[e + 1] - offs[d + 1]]
            if blk.size:
                a = np.abs(blk).max(axis=(1, 2))
                pair_abs[:, d] += a
                pair_abs[:, e] += a
    main_abs = np.stack(
        [np.abs(main_o[:, offs[e] : offs[e + 1]]).max(axis=1) for e in range(K)], axis=1
    )
    Y = (main_abs + pair_abs).max(axis=1)
    if not np.all(X + Y <= _F32_MAX_MAGNITUDE):  # also catches non-finite tables
        return [np.zeros(S) for _ in range(K)], np.float64
    return [(K - 1 - d) * (3 * _U32 * (X + Y) + 2.0**-147) for d in range(K)], np.float32


def eta64(t: BatchTables, codes: np.ndarray) -> np.ndarray:
    """float64 eta ``(S,)`` of one layout per draw, ``codes`` ``(S, K)`` by component."""
    S = len(codes)
    rows = np.arange(S)
    val = t.b0.copy()
    for d in range(len(t.sizes)):
        val += t.main[rows, t.offs[d] + codes[rows, t.order[:, d]]]
    for (k, j), p in t.pairs.items():
        if k < j:
            val += p[rows, codes[:, k], codes[:, j]]
    return val


def _forbidden_mask(rules, same, x: np.ndarray, n: int, extra=None) -> np.ndarray:
    """``(B, n)`` True where code v at this position completes a rule given prefixes ``x``,
    or repeats the code of an earlier position ``same`` of its distinct group.

    ``extra`` = ``(position, codes (B, m))``: one more fixed position whose code varies along
    a second axis; the mask is then ``(B, m, n)``.
    """
    B = len(x)
    shape = (B, n) if extra is None else (B, extra[1].shape[1], n)
    out = np.zeros(shape, bool)
    for prefix, v in rules:
        hit = np.ones(shape[:-1], bool)
        for j, w in prefix:
            if extra is not None and j == extra[0]:
                hit = hit & (extra[1] == w)
            else:
                col = x[:, j] == w
                hit = hit & (col if extra is None else col[:, None])
        out[..., v] |= hit
    values = np.arange(n)
    for j in same:
        if extra is not None and j == extra[0]:
            out |= extra[1][:, :, None] == values
        else:
            hit = x[:, j, None] == values
            out |= hit if extra is None else hit[:, None, :]
    return out


def _node_bound(t: BatchTables, b: _Batch) -> np.ndarray:
    """Crude admissible bound of whole nodes: F + sum_e max_w (A_e[w] + R_e[w])."""
    d = b.depth
    cand = b.A + t.rowmax[d][b.draw]
    seg = (t.offs[d:-1] - t.offs[d]).astype(np.intp)
    return b.F + np.maximum.reduceat(cand, seg, axis=1).sum(axis=1)


def _per_draw_best(draw, val, S):
    """Index of the best row of each draw present: ``(draws, rows)`` (highest val first)."""
    o = np.lexsort((-val, draw))
    d = draw[o]
    first = np.ones(len(o), bool)
    first[1:] = d[1:] != d[:-1]
    return d[first], o[first]


class _State(NamedTuple):
    best: np.ndarray  # (S,) incumbent value
    best_x: np.ndarray  # (S, K) its codes in search order (-1: the initial incumbent)
    nodes: np.ndarray  # (S,) nodes expanded
    open_bound: np.ndarray  # (S,) largest bound among nodes cut by the node limit


def _improve(st: _State, t: BatchTables, b: _Batch, vals: np.ndarray, tail: int) -> None:
    """Accept the best completion of each draw where it beats the incumbent strictly.

    ``vals``: ``(B, m)`` values of completions whose last ``tail`` codes are the mixed-radix
    digits of the column index (of the last ``tail`` positions' sizes).
    """
    S = len(st.best)
    col = np.argmax(vals, axis=1)
    v = vals[np.arange(len(vals)), col]
    draws, rows = _per_draw_best(b.draw, v, S)
    better = v[rows] > st.best[draws]
    draws, rows = draws[better], rows[better]
    st.best[draws] = v[rows]
    codes = np.empty((len(rows), tail), np.int64)
    c = col[rows]
    for i in range(tail - 1, -1, -1):
        n = t.sizes[b.depth + i]
        codes[:, i] = c % n
        c = c // n
    st.best_x[draws] = np.concatenate([b.x[rows], codes], axis=1)


def _seg_max_sum(t: BatchTables, d: int, M: np.ndarray) -> np.ndarray:
    """``(C,)`` float64: the sum over partners e > d of ``max_w M[:, e, w]``, M ``(C, R)``."""
    sizes = t.sizes[d + 1 :]
    if min(sizes) == max(sizes):
        # equal partners: a running maximum over strided views beats reduceat and a max
        # over a short last axis (~2x and ~5x, measured)
        n = sizes[0]
        seg_max = np.maximum(M[:, 0::n], M[:, 1::n]) if n > 1 else M[:, 0::n].copy()
        for w in range(2, n):
            np.maximum(seg_max, M[:, w::n], out=seg_max)
    else:
        seg_max = np.maximum.reduceat(M, t.seg[d], axis=1)
    # a product with ones sums the short last axis ~6x faster than .sum (measured), in
    # float64 (the margin assumes it)
    return seg_max @ np.ones(seg_max.shape[1])


def _expand(t: BatchTables, st: _State, b: _Batch) -> _Batch | None:
    """Expand a batch of nodes; returns the surviving children (None at the last levels)."""
    K, d = len(t.sizes), b.depth
    n_d = t.sizes[d]
    Ad, Arest = b.A[:, :n_d], b.A[:, n_d:]
    forb = _forbidden_mask(t.rules_at[d], t.same_at[d], b.x, n_d)
    if d == K - 1:  # one component only
        _improve(st, t, b, np.where(forb, -np.inf, b.F[:, None] + Ad), 1)
        return None
    if d == K - 2:  # exact: the value of every completion (v, w)
        vals = b.F[:, None, None] + Ad[:, :, None] + Arest[:, None, :] + t.pair_cat[d][b.draw]
        vals[forb] = -np.inf
        v_codes = np.broadcast_to(np.arange(n_d), (len(b.x), n_d))
        last = _forbidden_mask(
            t.rules_at[K - 1], t.same_at[K - 1], b.x, t.sizes[K - 1], (d, v_codes)
        )
        vals[last] = -np.inf
        _improve(st, t, b, vals.reshape(len(vals), -1), 2)
        return None
    # screen: with max_v of the table, one bound per node above all its children's bounds
    # (the same margin holds: the entries are table entries); full bounds where it passes
    tab, A32 = t.pair_rowmax[d], Arest.astype(t.pair_rowmax[d].dtype)
    base = b.F + t.margin[d][b.draw]
    screen = t.pair_vmax[d][b.draw]  # (B, R)
    screen += A32
    best = st.best[b.draw]
    ok = (base + _seg_max_sum(t, d, screen))[:, None] + Ad > best[:, None]
    if t.rules_at[d] or t.same_at[d]:
        ok &= ~forb
    rows, v = np.nonzero(ok)
    M = np.take(tab.reshape(-1, tab.shape[2]), b.draw[rows] * n_d + v, axis=0)  # (C, R)
    M += A32[rows]
    bound = base[rows] + Ad[rows, v] + _seg_max_sum(t, d, M)
    keep = bound > best[rows]
    rows, v, bound = rows[keep], v[keep], bound[keep]
    if not len(rows):
        return None
    pc = t.pair_cat[d]
    child_A = np.take(pc.reshape(-1, pc.shape[2]), b.draw[rows] * n_d + v, axis=0)
    child_A += Arest[rows]
    return _Batch(
        d + 1,
        b.draw[rows],
        np.concatenate([b.x[rows], v[:, None]], axis=1),
        b.F[rows] + Ad[rows, v],
        child_A,
        bound,
    )


def _limit(st: _State, t: BatchTables, b: _Batch, max_nodes: int) -> _Batch:
    """Count the batch's nodes per draw; nodes past a draw's limit only bound the gap."""
    if st.nodes.max(initial=0) + len(b.draw) <= max_nodes:  # no draw can reach its limit
        st.nodes[:] += np.bincount(b.draw, minlength=len(st.nodes))
        return b
    o = np.argsort(b.draw, kind="stable")
    b = b.take(o)
    starts = np.searchsorted(b.draw, b.draw, side="left")
    rank = np.arange(len(b.draw)) - starts  # position of the node among its draw's
    ok = st.nodes[b.draw] + rank < max_nodes
    np.add.at(st.nodes, b.draw[ok], 1)
    if not ok.all():
        cut = b.take(~ok)
        np.maximum.at(st.open_bound, cut.draw, np.minimum(cut.bound, _node_bound(t, cut)))
        b = b.take(ok)
    return b


def branch_and_bound(
    t: BatchTables, incumbent: np.ndarray, max_nodes: int, batch_elems: int | None = None
):
    """Exact argmax of every draw at once.

    Args:
        t: :func:`prepare`'s tables.
        incumbent: ``(S,)`` float64 eta of a known allowed layout per draw; only strictly
            better layouts are accepted.
        max_nodes: node limit per draw (the remaining nodes then bound the gap).
        batch_elems: floats of work per expanded batch (default :data:`BATCH_ELEMS`).

    Returns:
        ``(x, value, upper_bound, nodes)``: ``(S, K)`` codes by component of the best layout
        found (-1 rows where nothing beat the incumbent), its float64 eta, an upper bound on
        eta over all allowed layouts and the nodes expanded, each ``(S,)``.
    """
    S, K = len(t.b0), len(t.sizes)
    batch_elems = BATCH_ELEMS if batch_elems is None else int(batch_elems)
    st = _State(
        np.asarray(incumbent, np.float64).copy(),
        np.full((S, K), -1, np.int64),
        np.zeros(S, np.int64),
        np.full(S, -np.inf),
    )
    stack = [
        _Batch(
            0,
            np.arange(S),
            np.zeros((S, 0), np.int64),
            t.b0.copy(),
            t.main.copy(),
            np.full(S, np.inf),
        )
    ]
    while stack:
        b = stack.pop()
        live = b.bound > st.best[b.draw]  # incumbents may have improved since the push
        if not live.all():
            b = b.take(live)
        width = t.sizes[b.depth] * max(1, b.A.shape[1])
        per = max(1, batch_elems // width)
        if len(b.draw) > per:  # too much work at once: split, first piece on top
            stack.extend(b.take(slice(i, i + per)) for i in reversed(range(0, len(b.draw), per)))
            continue
        b = _limit(st, t, b, max_nodes)
        if len(b.draw):
            child = _expand(t, st, b)
            if child is not None:
                stack.append(child)
    x = np.full((S, K), -1, np.int64)
    found = st.best_x[:, 0] >= 0
    np.put_along_axis(x, t.order, st.best_x, axis=1)
    x[~found] = -1
    ub = np.maximum(st.best, st.open_bound)
    return x, st.best, ub, st.nodes
