"""Per-draw argmax of the additive + pairwise model over the allowed layouts of a space.

For a draw of the parameters the best layout maximises::

    eta(x) = b0 + sum_k m_k[x_k] + sum_{k<l} p_kl[x_k, x_l]

over the allowed layouts ``x`` (the links are monotone, so the layout with the highest eta
also has the highest click-through). Three methods:

* ``"enumerate"``: exact, streams the space through the jitted leaf-block kernel (the terms
  of :func:`layoutopt.model.logits`, summed as dense broadcasts per block of layouts that
  share their leading components), keeping a running per-draw argmax.
  Cost grows with the size of the space; the method of choice up to ~10^7 layouts.
* ``"exact"``: exact branch and bound over components with an admissible bound built from
  the pairwise tables, started from a hill-climbing incumbent. Returns a certificate
  (upper bound and gap); handles 10^10-10^12 layouts in milliseconds to seconds per draw for
  realistic effect scales. The search runs for all draws at once (:mod:`layoutopt.score.bnb`).
* ``"hill"``: hill climbing with random restarts (Hill et al. 2017): from random allowed
  layouts, repeatedly move one component to its best variant given the others until no
  single-component move improves. Fast, a local optimum, no optimality guarantee.

Ties between layouts of exactly equal eta are broken towards the lowest index by
``"enumerate"``; the other methods return one of the tied layouts.

References:
    Hill, D. N., Nassif, H., Liu, Y., Iyer, A., & Vishwanathan, S. V. N. (2017). An efficient
    bandit algorithm for realtime multivariate optimization. KDD 2017.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from layoutopt.model.core import Params, logits, pair_list
from layoutopt.model.space import LayoutSpace
from layoutopt.score import bnb
from layoutopt.score.grid import (
    DEFAULT_GRID,
    DEFAULT_MEMORY_BUDGET,
    GridOptions,
    allowed,
    as_params,
    check_params,
    per_draw_max,
    resolve_argmax,
    scan_grid,
)
from layoutopt.util.arrays import pow2_at_least
from layoutopt.util.limits import MAX_NODES_PER_DRAW, big_number, check_grid_work

__all__ = ["Certificate", "argmax_codes", "argmax_layout", "certified_argmax", "hill_climb"]

METHODS = ("auto", "enumerate", "exact", "hill")
#: Spaces up to this many layouts are enumerated by ``method="auto"``.
AUTO_ENUMERATE_LIMIT = 2**20


class Certificate(NamedTuple):
    """Proof of (near-)optimality of an argmax.

    Attributes:
        upper_bound: an upper bound on eta over all allowed layouts (float).
        gap: ``upper_bound - eta(returned layout)`` (0 when proven optimal, up to rounding).
        nodes: branch-and-bound nodes expanded (0 for enumeration).
        optimal: True when the returned layout is proven to be a global maximiser.
    """

    upper_bound: float
    gap: float
    nodes: int
    optimal: bool


# ------------------------------------------------------------------------ hill climbing
def _random_allowed(space: LayoutSpace, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` allowed layouts drawn uniformly (rejection sampling), ``(n, K)`` int32."""
    card = np.asarray(space.cardinalities)
    out = (rng.random((n, len(card))) * card).astype(np.int32)
    for _ in range(100):
        bad = ~space.allowed_mask(out)
        if not bad.any():
            return out
        out[bad] = (rng.random((int(bad.sum()), len(card))) * card).astype(np.int32)
    # very constrained spaces: start the rest from a known allowed layout
    fallback = next(c for _, c in space.iter_chunks(4096) if len(c))[0]
    out[~space.allowed_mask(out)] = fallback
    return out


def _dense_tables(params: Params, cardinalities: tuple[int, ...]):
    """Tables padded to ``n = max n_k`` (host numpy): main ``(S, K, n)``, pair ``(S, K, K, n, n)``.

    ``pair[s, k, l, v, w]`` is the interaction of ``x_k = v`` with ``x_l = w`` in both orders
    (zero on the diagonal), and padded variants get a main effect of -inf, so the score of
    every variant of component k given the rest is one gather and one sum.
    """
    K, n = len(cardinalities), max(cardinalities)
    S = int(np.shape(params.intercept)[0])
    main = np.full((S, K, n), -np.inf, np.float32)
    for k, m in enumerate(params.main):
        main[:, k, : cardinalities[k]] = np.asarray(m)
    pair = np.zeros((S, K, K, n, n), np.float32)
    if params.pair:
        for (k, j), p in zip(pair_list(K), params.pair, strict=True):
            p = np.asarray(p)
            pair[:, k, j, : cardinalities[k], : cardinalities[j]] = p
            pair[:, j, k, : cardinalities[j], : cardinalities[k]] = np.swapaxes(p, -1, -2)
    return main, pair


def _hill_one(main, pair, x0, rules, max_sweeps):
    """Coordinate-wise best moves from ``x0`` until no single-component move improves.

    A move never leaves the allowed layouts: variants that would complete a forbidden rule
    or repeat the code of another slot of the component's distinct group are skipped.
    """
    wanted, active, pairs = rules
    K, n = main.shape
    rng_k = jnp.arange(K)
    cand_v = jnp.arange(n, dtype=jnp.int32)

    def move(k, x):
        # score of every variant v of component k, the others fixed at x
        s = main[k] + jnp.sum(pair[k, rng_k, :, x], axis=0)
        if wanted.shape[0]:
            others = jnp.all((~active | (x == wanted)) | (rng_k == k), axis=1)  # (R,)
            hits = others[:, None] & (~active[:, k, None] | (wanted[:, k, None] == cand_v))
            s = jnp.where(jnp.any(hits, axis=0), -jnp.inf, s)
        if pairs.shape[0]:
            partner = jnp.where(pairs[:, 0] == k, pairs[:, 1], pairs[:, 0])  # (Q,)
            mine = (pairs[:, 0] == k) | (pairs[:, 1] == k)
            taken = mine[:, None] & (x[partner][:, None] == cand_v)  # (Q, n)
            s = jnp.where(jnp.any(taken, axis=0), -jnp.inf, s)
        v = jnp.argmax(s).astype(jnp.int32)
        return x.at[k].set(jnp.where(s[v] > s[x[k]], v, x[k]))

    def sweep(x):
        return jax.lax.fori_loop(0, K, move, x)

    def cond(carry):
        x, prev, it = carry
        return jnp.any(x != prev) & (it < max_sweeps)

    def body(carry):
        x, _, it = carry
        return sweep(x), x, it + 1

    x, _, _ = jax.lax.while_loop(cond, body, (sweep(x0), x0, jnp.int32(1)))
    return x


@functools.partial(jax.jit, static_argnames=("max_sweeps",))
def _hill_batch(main, pair, starts, rules, *, max_sweeps):
    """Local optima from every start: main (S, K, n), pair (S, K, K, n, n), starts (S, R, K)."""

    def per_draw(m, p, xs):
        x = jax.vmap(_hill_one, in_axes=(None, None, 0, None, None))(m, p, xs, rules, max_sweeps)
        K = m.shape[0]
        rk = jnp.arange(K)
        val = m[rk, x].sum(-1) + 0.5 * p[
            rk[:, None], rk[None, :], x[:, :, None], x[:, None, :]
        ].sum((-1, -2))
        val = jnp.where(allowed(x, rules), val, -jnp.inf)
        j = jnp.argmax(val)
        return x[j], val[j]

    return jax.vmap(per_draw)(main, pair, starts)


def hill_climb(
    params: Params, space: LayoutSpace, seed: int, num_restarts: int = 16, max_sweeps: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """Hill climbing with random restarts, per draw (Hill et al. 2017).

    From ``num_restarts`` uniformly drawn allowed layouts, each component in turn is moved to
    its best allowed variant given the others; sweeps repeat until a whole sweep changes
    nothing (a local optimum under single-component moves) or ``max_sweeps`` is reached.
    The best local optimum over the restarts is returned.

    Args:
        params: :class:`Params` with a leading draw axis S.
        space: the layout space (forbidden layouts are never returned).
        seed: seed of the random restarts.
        num_restarts: random starting layouts per draw.
        max_sweeps: cap on full sweeps per restart.

    Returns:
        ``(codes, eta)``: ``(S, K)`` int32 codes and ``(S,)`` float32 eta of the layouts found.

    References:
        Hill et al. (2017), An efficient bandit algorithm for realtime multivariate
        optimization, KDD (Algorithm 2, hill climbing with random restarts).
    """
    params = as_params(params)
    check_params(params, space)
    S = int(params.intercept.shape[0])
    rng = np.random.default_rng(seed)
    starts = _random_allowed(space, S * num_restarts, rng).reshape(S, num_restarts, -1)
    rules = space.forbidden_arrays()
    main, pair = _dense_tables(params, space.cardinalities)
    # pad the draw axis to a power of two so that varying S reuses a few compilations
    S_pad = pow2_at_least(S)
    pad = [0] * (S_pad - S)
    x, val = _hill_batch(
        np.concatenate([main, main[pad]]),
        np.concatenate([pair, pair[pad]]),
        np.concatenate([starts, starts[pad]]),
        rules,
        max_sweeps=int(max_sweeps),
    )
    x = np.asarray(x, dtype=np.int32)[:S]
    return x, np.asarray(val)[:S] + np.asarray(params.intercept)


# --------------------------------------------------------------------- branch and bound
class _Tables(NamedTuple):
    order: np.ndarray  # component order used by the search (position -> component)
    b0: float
    main: list  # main[d]: (n_d,) in search order
    pair_cat: list  # pair_cat[d]: (n_d, sum_{e>d} n_e): p_{de}[v, w], partners concatenated
    seg: list  # seg[d]: reduceat offsets of the partners e>d in pair_cat[d]
    rowmax: list  # rowmax[d]: (n_d,) sum_{e>d} max_w p_de[v, w]
    rules_at: list  # rules_at[d]: rules whose last component (in search order) is d
    same_at: list  # same_at[d]: earlier positions in d's distinct group


def _prepare_tables(params_one, space: LayoutSpace) -> _Tables:
    card = space.cardinalities
    K = len(card)
    main = [np.asarray(m, dtype=np.float64) for m in params_one.main]
    pairs = {}
    if params_one.pair:
        for (k, j), p in zip(pair_list(K), params_one.pair, strict=True):
            p = np.asarray(p, dtype=np.float64)
            pairs[(k, j)] = p
            pairs[(j, k)] = p.T
    # Decide big effects first: a tight bound early prunes most of the tree.
    spread = np.array(
        [
            np.ptp(main[k]) + sum(np.ptp(pairs[(k, j)]) for j in range(K) if (k, j) in pairs)
            for k in range(K)
        ]
    )
    order = np.argsort(-spread, kind="stable")
    m_o = [main[k] for k in order]
    pair_cat, seg, rowmax = [], [], []
    for d in range(K):
        k = order[d]
        blocks = [
            pairs.get((k, order[e]), np.zeros((card[k], card[order[e]]))) for e in range(d + 1, K)
        ]
        if blocks:
            pair_cat.append(np.concatenate(blocks, axis=1))
            sizes = [b.shape[1] for b in blocks]
            seg.append(np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp))
            rowmax.append(sum(b.max(axis=1) for b in blocks))
        else:
            pair_cat.append(np.zeros((card[k], 0)))
            seg.append(np.zeros(0, np.intp))
            rowmax.append(np.zeros(card[k]))
    pos = np.empty(K, np.intp)
    pos[order] = np.arange(K)
    rules_at = [[] for _ in range(K)]
    for rule in space.forbidden:
        entries = sorted((int(pos[k]), v) for k, v in rule)
        rules_at[entries[-1][0]].append((entries[:-1], entries[-1][1]))
    same_at = bnb.same_positions(space.distinct, pos)
    b0 = float(np.asarray(params_one.intercept))
    return _Tables(order, b0, m_o, pair_cat, seg, rowmax, rules_at, same_at)


def _branch_and_bound(t: _Tables, incumbent: float, max_nodes: int):
    """Depth-first branch and bound; returns (codes in search order or None, value, ub, nodes).

    Node at depth d (components 0..d-1 of the search order fixed) keeps
    ``A_e[w] = m_e[w] + sum_{j<d} p_je[x_j, w]`` for every free e, and the fixed value F.
    Admissible bound of fixing x_d = v::

        F + A_d[v] + sum_{e>d} max_w (A_e[w] + p_de[v, w] + R_e[w]),
        R_e[w] = sum_{f>e} max_u p_ef[w, u]

    (each free pair's term is bounded by its row maximum, charged to the earlier component).
    At depth K-2 the bound is exact, so the last component is resolved without branching.
    """
    K = len(t.main)
    best_val, best_x = incumbent, None
    nodes = 0
    open_bound = -np.inf  # largest bound among nodes cut off by max_nodes
    # stack entries: (depth, x_prefix list, F, A concatenated over components >= depth)
    A0 = np.concatenate(t.main)
    stack = [(0, [], t.b0, A0)]
    offs = np.concatenate([[0], np.cumsum([len(m) for m in t.main])]).astype(np.intp)
    while stack:
        d, x, F, A = stack.pop()
        nodes += 1
        if nodes > max_nodes:
            # the remaining stack holds the unexplored subtrees; bound them crudely
            open_bound = max(open_bound, _node_bound(t, d, F, A, offs))
            for d2, _x2, F2, A2 in stack:
                open_bound = max(open_bound, _node_bound(t, d2, F2, A2, offs))
            break
        n_d = offs[d + 1] - offs[d]
        Ad = A[:n_d]
        Arest = A[n_d:]
        forb = np.zeros(n_d, dtype=bool)
        for prefix, v in t.rules_at[d]:
            if all(x[j] == w for j, w in prefix):
                forb[v] = True
        for j in t.same_at[d]:
            forb[x[j]] = True
        if d == K - 1:
            vals = F + Ad
            vals[forb] = -np.inf
            v = int(np.argmax(vals))
            if vals[v] > best_val:
                best_val, best_x = float(vals[v]), x + [v]
            continue
        # child bounds, vectorised over v and the free partners e > d
        cand = Arest + _rowmax_rest(t, d, offs)  # A_e[w] + R_e[w] for e > d
        M = t.pair_cat[d] + cand[None, :]
        seg_max = np.maximum.reduceat(M, t.seg[d], axis=1)  # (n_d, K-d-1)
        bounds = F + Ad + seg_max.sum(axis=1)
        bounds[forb] = -np.inf
        if d == K - 2:
            # exact: the bound is the value of the best completion; check its rules
            last_rules = t.rules_at[K - 1]
            order_v = np.argsort(-bounds, kind="stable")
            for v in order_v:
                if bounds[v] <= best_val:
                    break
                vals = F + Ad[v] + Arest + t.pair_cat[d][v]
                xv = x + [int(v)]
                for prefix, w in last_rules:
                    if all(xv[j] == u for j, u in prefix):
                        vals[w] = -np.inf
                for j in t.same_at[K - 1]:
                    vals[xv[j]] = -np.inf
                w = int(np.argmax(vals))
                if vals[w] > best_val:
                    best_val, best_x = float(vals[w]), xv + [w]
            continue
        order_v = np.argsort(bounds, kind="stable")  # ascending: best popped first
        for v in order_v:
            if bounds[v] <= best_val:
                continue
            stack.append((d + 1, x + [int(v)], F + Ad[v], Arest + t.pair_cat[d][v]))
    ub = max(best_val, open_bound)
    return best_x, best_val, ub, nodes


def _rowmax_rest(t: _Tables, d: int, offs) -> np.ndarray:
    return np.concatenate(t.rowmax[d + 1 :])


def _node_bound(t: _Tables, d: int, F: float, A: np.ndarray, offs) -> float:
    cand = A + np.concatenate(t.rowmax[d:])
    return float(
        F
        + sum(cand[offs[e] - offs[d] : offs[e + 1] - offs[d]].max() for e in range(d, len(t.main)))
    )


def _exact_one(params_one, space: LayoutSpace, x_init: np.ndarray, max_nodes: int):
    t = _prepare_tables(params_one, space)
    x_init = np.asarray(x_init)
    # the incumbent's value in float64 so the search only accepts strict improvements
    inc64 = _eta64(t, x_init)
    bx, bv, ub, nodes = _branch_and_bound(t, inc64, max_nodes)
    if bx is None:
        codes, val = x_init.astype(np.int32), inc64
    else:
        codes = np.empty(len(bx), np.int32)
        codes[t.order] = bx
        val = bv
    gap = max(0.0, ub - val)
    return codes, Certificate(
        float(ub), float(gap), int(nodes), bool(gap <= 1e-9 * max(1, abs(ub)))
    )


def _eta64(t: _Tables, x: np.ndarray) -> float:
    xs = [int(x[k]) for k in t.order]
    K = len(xs)
    val = t.b0 + sum(t.main[d][xs[d]] for d in range(K))
    for d in range(K - 1):
        row = t.pair_cat[d][xs[d]]
        val += sum(row[t.seg[d][i] + xs[d + 1 + i]] for i in range(K - d - 1))
    return float(val)


def _argmax_exact_loop(params, space, seed, num_restarts, max_nodes):
    """The per-draw branch and bound, one draw at a time (the baseline of the batched one)."""
    S = int(params.intercept.shape[0])
    x0, _ = hill_climb(params, space, seed=seed, num_restarts=num_restarts)
    host = jax.tree.map(np.asarray, params)
    out = np.empty((S, space.num_components), np.int32)
    certs = []
    for s in range(S):
        one = jax.tree.map(lambda a, s=s: a[s], host)
        out[s], cert = _exact_one(one, space, x0[s], max_nodes)
        certs.append(cert)
    return out, certs


def _argmax_exact(params, space, seed, num_restarts, max_nodes):
    """Branch and bound of every draw at once (:mod:`layoutopt.score.bnb`), hill-climbing
    incumbents."""
    x0, _ = hill_climb(params, space, seed=seed, num_restarts=num_restarts)
    t = bnb.prepare(
        jax.tree.map(np.asarray, params), space.cardinalities, space.forbidden, space.distinct
    )
    inc = bnb.eta64(t, x0)
    x, val, ub, nodes = bnb.branch_and_bound(t, inc, max_nodes)
    found = x[:, 0] >= 0
    codes = np.where(found[:, None], x, x0).astype(np.int32)
    gap = np.maximum(0.0, ub - val)
    certs = [
        Certificate(float(u), float(g), int(n), bool(g <= 1e-9 * max(1, abs(u))))
        for u, g, n in zip(ub, gap, nodes, strict=True)
    ]
    return codes, certs


# ---------------------------------------------------------------------------- public API
def certified_argmax(
    params: Params,
    space: LayoutSpace,
    method: str = "auto",
    seed: int | None = None,
    *,
    chunk_size: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    num_restarts: int = 16,
    max_nodes: int = 1_000_000,
    devices=None,
    grid_options: GridOptions = DEFAULT_GRID,
) -> tuple[np.ndarray, list[Certificate]]:
    """Per-draw best allowed layout with a certificate each: ``argmax_x eta_s(x)`` per draw s.

    Args:
        params: :class:`~layoutopt.model.Params` with a leading draw axis S.
        space: the layout space; forbidden layouts are never returned.
        method: ``"enumerate"`` (exact, chunked enumeration), ``"exact"`` (exact branch and
            bound with a certificate), ``"hill"`` (hill climbing with random restarts; a local
            optimum) or ``"auto"`` (``"enumerate"`` up to ``AUTO_ENUMERATE_LIMIT`` layouts,
            ``"exact"`` beyond).
        seed: seed of the random restarts; required by ``"hill"`` and ``"exact"`` (the
            restarts of its hill-climbing incumbent; the optimum it certifies does not depend
            on it), unused by ``"enumerate"``.
        chunk_size: layouts per enumeration chunk; by default sized to ``memory_budget``.
        memory_budget: bytes one enumeration chunk may use (about ``S * chunk * 12``).
        num_restarts: restarts per draw for ``"hill"`` (and the incumbent of ``"exact"``).
        max_nodes: node limit per draw of ``"exact"``; when reached, the best layout found is
            returned and its certificate reports the remaining gap.
        devices: devices to shard enumeration chunks over (default: all visible devices).
        grid_options: tunables of the enumeration (:class:`layoutopt.score.grid.GridOptions`).

    Returns:
        ``(codes, certificates)``: ``(S, K)`` int32 variant codes and one
        :class:`Certificate` per draw.

    Raises:
        ValueError: for an unknown method, a missing seed for ``"hill"`` / ``"exact"``, or
            params that do
            not fit the space.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    params = as_params(params)
    check_params(params, space)
    if method == "auto":
        method = "enumerate" if space.size <= AUTO_ENUMERATE_LIMIT else "exact"
    if method == "enumerate":
        # max-only pass, then the argmax inside one leaf block per draw: the same codes and
        # ties as per_draw_argmax with one read of eta per step instead of two
        state = scan_grid(
            params,
            space,
            per_draw_max(),
            chunk_size=chunk_size,
            memory_budget=memory_budget,
            devices=devices,
            options=grid_options,
        )
        state = resolve_argmax(params, space, state, grid_options)
        codes, eta = np.asarray(state.best_codes), np.asarray(state.best_eta)
        certs = [Certificate(float(e), 0.0, 0, True) for e in eta]
    elif seed is None:
        raise ValueError(
            f"method={method!r} starts from random hill-climbing restarts: pass an explicit seed"
        )
    elif method == "hill":
        codes, eta = hill_climb(params, space, seed, num_restarts=num_restarts)
        certs = [Certificate(math.inf, math.inf, 0, False) for _ in eta]
    else:
        codes, certs = _argmax_exact(params, space, seed, num_restarts, max_nodes)
    return codes, certs


def argmax_codes(params: Params, space: LayoutSpace, method: str = "auto", seed=None, **kwargs):
    """Per-draw best allowed layout, ``(S, K)`` int32 codes: :func:`certified_argmax` without
    the certificates (same arguments)."""
    return certified_argmax(params, space, method, seed, **kwargs)[0]


def argmax_layout(
    params: Params, space: LayoutSpace, method: str = "exact", seed: int | None = None, **kwargs
) -> tuple[np.ndarray, float, Certificate]:
    """Best allowed layout of one (unbatched) parameter set.

    Args:
        params: unbatched :class:`~layoutopt.model.Params` (e.g. the posterior mean).
        space: the layout space.
        method: as in :func:`argmax_codes` (default ``"exact"``).
        seed: as in :func:`argmax_codes`.
        **kwargs: passed on to :func:`certified_argmax`.

    Returns:
        ``(codes, eta, certificate)``: ``(K,)`` int32 codes, their eta (float, from
        :func:`~layoutopt.model.logits`) and a :class:`Certificate`.
    """
    batched = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32)[None], params)
    codes, certs = certified_argmax(batched, space, method=method, seed=seed, **kwargs)
    one = jax.tree.map(lambda a: a[0], batched)
    eta = float(logits(one, jnp.asarray(codes[0])))
    return codes[0], eta, certs[0]


def check_argmax_work(
    params,
    space,
    method: str,
    seed: int | None,
    what: str,
    instead: str = "use method='hill' (approximate)",
) -> None:
    """Refuse a per-draw argmax that would take hours, before it starts.

    Enumeration (``method="enumerate"``, or ``"auto"`` on a small space) is limited by
    :func:`check_grid_work`. The exact branch and bound is tried on the first draw with
    ``MAX_NODES_PER_DRAW`` nodes; if that does not prove the optimum, the model is too hard
    for exact per-draw argmaxes (every draw would need as much) and the call is refused.

    Args:
        params: :class:`~layoutopt.model.Params` with a leading draw axis.
        space: the layout space.
        method: the argmax method that will be used (as in
            :func:`layoutopt.score.optimize.argmax_codes`).
        seed: the seed the argmax will use (the restarts of the probe's incumbent); the
            probe is skipped when it is None (the argmax itself then refuses).
        what: what is being done, for the message.
        instead: what would work, for the message.

    Raises:
        ValueError: naming the space size, the draws and what would work instead.
    """
    num_draws = int(np.shape(params.intercept)[0])
    if method == "hill":
        return
    if method == "enumerate" or (method == "auto" and space.size <= AUTO_ENUMERATE_LIMIT):
        check_grid_work(
            space.num_allowed, num_draws, what, "use the exact optimiser (method='exact')"
        )
        return
    if seed is None:
        return
    first = jax.tree.map(lambda a: np.asarray(a)[:1], params)
    _, certs = certified_argmax(
        first, space, method="exact", seed=seed, max_nodes=MAX_NODES_PER_DRAW
    )
    if not certs[0].optimal:
        raise ValueError(
            f"{what} needs the exact best layout of each of {num_draws:,} draws over "
            f"{big_number(space.num_allowed)} layouts, and one draw was not solved within "
            f"{MAX_NODES_PER_DRAW:,} branch-and-bound nodes (the model is too large for "
            f"exact search); {instead}, or fit fewer components or variants, or the "
            "additive model"
        )
