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
  realistic effect scales. The search runs for all draws at once (:mod:`layoutopt._bnb`).
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

from layoutopt.model import Params, inv_link, logits, pair_list
from layoutopt.space import LayoutSpace

__all__ = ["Certificate", "argmax_codes", "argmax_layout", "hill_climb"]

METHODS = ("auto", "enumerate", "exact", "hill")
#: Spaces up to this many layouts are enumerated by ``method="auto"``.
AUTO_ENUMERATE_LIMIT = 2**20
#: Default device-memory budget of one enumeration chunk (bytes).
DEFAULT_MEMORY_BUDGET = 256 * 2**20


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


# ------------------------------------------------------------------ shared chunk helpers
def _chunk_codes(start_digits: jax.Array, cardinalities: tuple[int, ...], chunk: int):
    """Codes of the ``chunk`` consecutive layouts from the one with digits ``start_digits``.

    Mixed-radix addition of a local int32 offset to exact start digits: no global index is
    ever formed on the device, so spaces beyond 2^31 (or 2^63) layouts are fine. Positions
    past the end of the space wrap around; callers mask them with a valid count.
    """
    carry = jnp.arange(chunk, dtype=jnp.int32)
    cols = [None] * len(cardinalities)
    for k in range(len(cardinalities) - 1, -1, -1):
        total = carry + start_digits[k]
        n = cardinalities[k]
        cols[k] = total % n
        carry = total // n
    return jnp.stack(cols, axis=-1)


def _allowed(codes: jax.Array, wanted: jax.Array, active: jax.Array) -> jax.Array:
    """True where a ``(..., K)`` code array matches no forbidden rule (traced)."""
    if wanted.shape[0] == 0:
        return jnp.ones(codes.shape[:-1], dtype=bool)
    match = (codes[..., None, :] == wanted) | ~active  # (..., R, K)
    return ~jnp.any(jnp.all(match, axis=-1), axis=-1)


def _as_params(params: Params, batched: bool = True) -> Params:
    p = jax.tree.map(lambda a: jnp.asarray(a, dtype=jnp.float32), params)
    if batched and jnp.ndim(p.intercept) != 1:
        raise ValueError(
            "params must carry one leading draw axis (intercept of shape (S,)), "
            f"got intercept shape {jnp.shape(p.intercept)}"
        )
    return p


def _check_params(params: Params, space: LayoutSpace) -> None:
    card = space.cardinalities
    if len(params.main) != len(card):
        raise ValueError(
            f"params have {len(params.main)} main-effect tables but the space has "
            f"{len(card)} components"
        )
    for k, (m, n) in enumerate(zip(params.main, card, strict=True)):
        if jnp.shape(m)[-1] != n:
            raise ValueError(
                f"main-effect table of component {space.components[k]!r} has "
                f"{jnp.shape(m)[-1]} entries, the space has {n} variants"
            )
    if params.pair and len(params.pair) != len(pair_list(len(card))):
        raise ValueError(
            f"params have {len(params.pair)} pair tables, expected {len(pair_list(len(card)))}"
        )


def _mesh_sharding(devices):
    """A 1-D NamedSharding over ``devices`` for the layout axis (None for one device)."""
    devices = list(jax.devices() if devices is None else devices)
    if len(devices) <= 1:
        return None, 1
    mesh = jax.sharding.Mesh(np.asarray(devices), ("layouts",))
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("layouts")), len(devices)


# -------------------------------------------------------------------------- enumeration
# The block kernel. In mixed-radix order (last component fastest) the space is a sequence
# of *leaf blocks*: the leading P components (the prefix) are fixed and the trailing L
# components (the leaf) run over their full product of Lf layouts. For a fixed prefix x_pre
# and draw s,
#
#   eta_s(x_pre, y) = c_s(x_pre) + T_s[y] + sum_{j in leaf} U_s,j(x_pre)[y_j]
#
# with c = logits of the prefix model (intercept, prefix mains, prefix pairs), T = logits of
# the leaf model (leaf mains and leaf pairs, zero intercept: one (S, Lf) table for the whole
# space) and U_j = sum_{k in prefix} p_kj[x_k, :] (the cross pairs). The leaf level is then a
# broadcast add of dense arrays: table look-ups are needed once per prefix, not per layout.
# Every term is a term of model.logits; only the order of the float32 additions differs.

#: Largest leaf block (product of the trailing components' cardinalities).
_MAX_LEAF = 1024
#: eta floats (S x prefixes x leaf) per scan step on CPU: in practice one leaf block per step
#: (fastest measured on the 2-core machine, benchmarks/README.md).
_STEP_ELEMS = 2**16


class _Plan(NamedTuple):
    """Static split of the components into prefix and leaf (hashable: a jit static arg)."""

    prefix: tuple[int, ...]  # cardinalities of the leading components
    leaf: tuple[int, ...]  # cardinalities of the trailing components (at least one)

    @property
    def leaf_size(self) -> int:
        return math.prod(self.leaf)

    @property
    def num_prefixes(self) -> int:
        return math.prod(self.prefix)


def _plan(cardinalities: tuple[int, ...], max_leaf: int | None = None) -> _Plan:
    max_leaf = _MAX_LEAF if max_leaf is None else max_leaf
    K = len(cardinalities)
    L = 1
    while L < K and math.prod(cardinalities[K - L - 1 :]) <= max_leaf:
        L += 1
    return _Plan(tuple(cardinalities[: K - L]), tuple(cardinalities[K - L :]))


def _split_params(params: Params, P: int):
    """(prefix Params, leaf Params with zero intercept, cross pairs [(k, j, table)])."""
    K = len(params.main)
    pre_pairs, leaf_pairs, cross = [], [], []
    pairs = pair_list(K) if params.pair else []
    for (k, j), t in zip(pairs, params.pair, strict=True):
        if j < P:
            pre_pairs.append(t)
        elif k >= P:
            leaf_pairs.append(t)
        else:
            cross.append((k, j, t))
    pre = Params(params.intercept, tuple(params.main[:P]), tuple(pre_pairs))
    leaf = Params(jnp.zeros_like(params.intercept), tuple(params.main[P:]), tuple(leaf_pairs))
    return pre, leaf, cross


def _leaf_codes(plan: _Plan) -> np.ndarray:
    """All ``Lf`` leaf code tuples in mixed-radix order, ``(Lf, L)`` int32."""
    return np.indices(plan.leaf, dtype=np.int32).reshape(len(plan.leaf), -1).T.copy()


def _block_eta(params: Params, pre_codes, leaf_table, plan: _Plan):
    """eta ``(S, Pc * Lf)`` of ``Pc`` whole leaf blocks with prefixes ``pre_codes`` (Pc, P)."""
    P, L = len(plan.prefix), len(plan.leaf)
    S, Pc = params.intercept.shape[0], pre_codes.shape[0]
    pre, _, cross = _split_params(params, P)
    c = jax.vmap(logits, in_axes=(0, None))(pre, pre_codes)  # (S, Pc)
    eta = c.reshape((S, Pc) + (1,) * L) + leaf_table.reshape((S, 1) + plan.leaf)
    for j in range(P, P + L):
        u = None
        for k, jj, t in cross:
            if jj == j:
                g = t[:, pre_codes[:, k], :]  # (S, Pc, n_j)
                u = g if u is None else u + g
        if u is not None:
            shape = [S, Pc] + [1] * L
            shape[2 + j - P] = plan.leaf[j - P]
            eta = eta + u.reshape(shape)
    return eta.reshape(S, Pc * plan.leaf_size)


def _codes_eta(params: Params, codes, leaf_table, plan: _Plan):
    """eta ``(S, n)`` of explicit layouts ``codes`` (n, K), summed as :func:`_block_eta` does.

    The same float32 additions in the same order as the block kernel, so a layout's eta (and
    its interval) is bit-identical whether it is scored in a grid or on its own.
    """
    P, L = len(plan.prefix), len(plan.leaf)
    pre, _, cross = _split_params(params, P)
    c = jax.vmap(logits, in_axes=(0, None))(pre, codes[:, :P])  # (S, n)
    leaf_idx = jnp.zeros(codes.shape[0], jnp.int32)
    for j in range(P, P + L):
        leaf_idx = leaf_idx * plan.leaf[j - P] + codes[:, j]
    eta = c + leaf_table[:, leaf_idx]
    for j in range(P, P + L):
        u = None
        for k, jj, t in cross:
            if jj == j:
                g = t[:, codes[:, k], codes[:, j]]  # (S, n)
                u = g if u is None else u + g
        if u is not None:
            eta = eta + u
    return eta


def _prefix_codes(start_digits, plan: _Plan, n: int):
    if not plan.prefix:
        return jnp.zeros((n, 0), jnp.int32)
    return _chunk_codes(start_digits, plan.prefix, n)


def _block_allowed(pre_codes, leaf_codes, wanted, active, plan: _Plan):
    """``(Pc * Lf,)`` True where the layout (prefix, leaf) matches no forbidden rule."""
    Pc, Lf = pre_codes.shape[0], leaf_codes.shape[0]
    if wanted.shape[0] == 0:
        return jnp.ones((Pc * Lf,), bool)
    P = len(plan.prefix)
    pre_hit = jnp.all((pre_codes[:, None, :] == wanted[:, :P]) | ~active[:, :P], axis=-1)
    leaf_hit = jnp.all((leaf_codes[:, None, :] == wanted[:, P:]) | ~active[:, P:], axis=-1)
    hit = jnp.any(pre_hit[:, None, :] & leaf_hit[None, :, :], axis=-1)  # (Pc, Lf)
    return ~hit.reshape(-1)


class _BlockCarry(NamedTuple):
    best_eta: jax.Array  # (S,) running max eta per draw
    best_codes: jax.Array  # (S, K) its layout
    top_mean: jax.Array  # (k,) running top-k by posterior mean CTR (k = 0: none)
    top_codes: jax.Array  # (k, K)


def _block_init(S: int, K: int, k: int) -> _BlockCarry:
    return _BlockCarry(
        jnp.full((S,), -jnp.inf, jnp.float32),
        jnp.zeros((S, K), jnp.int32),
        jnp.full((k,), -jnp.inf, jnp.float32),
        jnp.zeros((k, K), jnp.int32),
    )


@functools.partial(
    jax.jit,
    static_argnames=("plan", "steps", "per_step", "link", "outputs", "sharding", "materialize"),
)
def _block_chunk(
    carry,
    params,
    leaf_table,
    leaf_codes,
    start_digits,
    n_valid,
    wanted,
    active,
    *,
    plan,
    steps,
    per_step,
    link,
    outputs,
    sharding,
    materialize=False,
):
    """``steps`` scan steps of ``per_step`` prefixes each, from prefix digits ``start_digits``.

    Keeps the per-draw running argmax (strict ``>`` across steps, lowest index within a
    step: the lowest index wins exact ties) and, with ``link``, the per-layout posterior
    mean CTR and the running top-k by it (``k = len(carry.top_mean)``; earlier layouts win
    ties). ``outputs``: ``"none"``, ``"eta"`` (per step: mean ``(C,)`` and eta transposed,
    ``(C, S)``) or ``("order", ranks)`` (per step: mean and the order statistics ``ranks`` of
    eta along the draw axis, ``(len(ranks), C)``).
    """
    Lf = plan.leaf_size
    C = per_step * Lf
    all_pre = _prefix_codes(start_digits, plan, steps * per_step)
    starts = all_pre[::per_step]
    offsets = jnp.arange(steps, dtype=jnp.int32) * per_step
    k = carry.top_mean.shape[0]
    leaf_codes = jnp.asarray(leaf_codes)

    # No lax.cond and no top_k inside the scan: on XLA:CPU every conditional is a host
    # synchronisation point, which under load cost more than the arithmetic (measured).
    def step(carry, xs):
        sub_start, offset = xs
        pre_codes = _prefix_codes(sub_start, plan, per_step)
        if sharding is not None:
            pre_codes = jax.lax.with_sharding_constraint(pre_codes, sharding)
        valid = jnp.repeat(offset + jnp.arange(per_step) < n_valid, Lf)
        ok = valid & _block_allowed(pre_codes, leaf_codes, wanted, active, plan)
        eta = _block_eta(params, pre_codes, leaf_table, plan)
        if materialize:
            # XLA:CPU: reductions over a materialised eta run ~2x faster than over the
            # fused broadcast expression (measured, benchmarks/README.md)
            eta = jax.lax.optimization_barrier(eta)
        v = jnp.max(jnp.where(ok, eta, -jnp.inf), axis=1)
        # the lowest index attaining the max; strict > across steps: lowest index wins ties
        first = jnp.min(jnp.where(ok & (eta == v[:, None]), jnp.arange(C), C), axis=1)
        first = jnp.minimum(first, C - 1)
        at = jnp.concatenate([pre_codes[first // Lf], leaf_codes[first % Lf]], axis=-1)
        better = v > carry.best_eta
        carry = carry._replace(
            best_eta=jnp.where(better, v, carry.best_eta),
            best_codes=jnp.where(better[:, None], at, carry.best_codes),
        )
        if link is None:
            return carry, None
        mean = jnp.where(ok, jnp.mean(inv_link(eta, link), axis=0), -jnp.inf)
        if outputs == "eta":  # layout-major, for row-wise sorts on the host
            return carry, (mean, eta.T)
        if outputs != "none":  # ("order", ranks): sorted on the device
            return carry, (mean, jnp.sort(eta, axis=0)[jnp.asarray(outputs[1])])
        return carry, (mean,)

    carry, out = jax.lax.scan(step, carry, (starts, offsets))
    if k:
        # running top-k by mean over the whole call; the running rows come first, so
        # earlier layouts win ties
        mean = out[0].reshape(-1)
        _, idx = jax.lax.top_k(mean, min(k, mean.shape[0]))
        cm = jnp.concatenate([carry.top_mean, mean[idx]])
        _, sel = jax.lax.top_k(cm, k)
        codes = jnp.concatenate([all_pre[idx // Lf], leaf_codes[idx % Lf]], axis=-1)
        cc = jnp.concatenate([carry.top_codes, codes])
        carry = carry._replace(top_mean=cm[sel], top_codes=cc[sel])
    return carry, (None if outputs == "none" else out)


def _block_layout(S, plan: _Plan, chunk_size, memory_budget, num_devices, factor, platform):
    """(prefixes per step, steps per call) of the block scan."""
    Lf, Np = plan.leaf_size, plan.num_prefixes
    if chunk_size is None:
        chunk_size = max(Lf, memory_budget // (max(1, S) * 4 * factor))
    chunk_size = int(chunk_size)
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    target = chunk_size if platform != "cpu" else min(chunk_size, max(1, _STEP_ELEMS // S))
    per_step = max(1, min(target // Lf, Np))
    per_step = -(-per_step // num_devices) * num_devices
    steps = max(1, min(chunk_size // (per_step * Lf), -(-Np // per_step)))
    return per_step, steps


def _leaf_table(params: Params, plan: _Plan, leaf_codes: np.ndarray):
    _, leaf, _ = _split_params(params, len(plan.prefix))
    return jax.vmap(logits, in_axes=(0, None))(leaf, jnp.asarray(leaf_codes))


def _block_scan(
    params,
    space,
    *,
    link,
    top,
    outputs,
    chunk_size,
    memory_budget,
    devices,
    factor,
    on_chunk,
    prefixes=None,
):
    """Stream the whole space through :func:`_block_chunk`; returns the final carry.

    ``on_chunk(first_layout, n_layouts, out)`` receives each call's stacked outputs
    (``out`` is None for ``outputs="none"``), covering ``n_layouts`` consecutive layouts.
    ``prefixes=(lo, hi)`` streams only the leaf blocks ``lo .. hi-1`` (a contiguous slice of
    the index range: layouts ``lo * Lf`` to ``hi * Lf``, see :func:`_plan`).
    """
    sharding, ndev = _mesh_sharding(devices)
    platform = (jax.devices() if devices is None else list(devices))[0].platform
    S = int(params.intercept.shape[0])
    K = space.num_components
    plan = _plan(space.cardinalities)
    Lf, Np = plan.leaf_size, plan.num_prefixes
    per_step, steps = _block_layout(S, plan, chunk_size, memory_budget, ndev, factor, platform)
    leaf_codes = _leaf_codes(plan)
    leaf_table = _leaf_table(params, plan, leaf_codes)
    wanted, active = space.forbidden_arrays()
    carry = _block_init(S, K, 0 if top is None else int(top))
    per_call = per_step * steps
    lo, hi = (0, Np) if prefixes is None else prefixes
    for p0 in range(lo, hi, per_call):
        digits = np.asarray(space.codes_of(p0 * Lf)[: len(plan.prefix)], dtype=np.int32)
        n_valid = min(per_call, hi - p0)
        carry, out = _block_chunk(
            carry,
            params,
            leaf_table,
            leaf_codes,
            digits,
            np.int32(n_valid),
            wanted,
            active,
            plan=plan,
            steps=steps,
            per_step=per_step,
            link=link,
            outputs=outputs,
            sharding=sharding,
            materialize=platform == "cpu",
        )
        if on_chunk is not None:
            on_chunk(p0 * Lf, n_valid * Lf, out)
    return carry


def _argmax_enumerate(params, space, chunk_size, memory_budget, devices):
    carry = _block_scan(
        params,
        space,
        link=None,
        top=None,
        outputs="none",
        chunk_size=chunk_size,
        memory_budget=memory_budget,
        devices=devices,
        factor=3,
        on_chunk=None,
    )
    return np.asarray(carry.best_codes), np.asarray(carry.best_eta)


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


def _hill_one(main, pair, x0, wanted, active, max_sweeps):
    """Coordinate-wise best moves from ``x0`` until no single-component move improves."""
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
def _hill_batch(main, pair, starts, wanted, active, *, max_sweeps):
    """Local optima from every start: main (S, K, n), pair (S, K, K, n, n), starts (S, R, K)."""

    def per_draw(m, p, xs):
        x = jax.vmap(_hill_one, in_axes=(None, None, 0, None, None, None))(
            m, p, xs, wanted, active, max_sweeps
        )
        K = m.shape[0]
        rk = jnp.arange(K)
        val = m[rk, x].sum(-1) + 0.5 * p[
            rk[:, None], rk[None, :], x[:, :, None], x[:, None, :]
        ].sum((-1, -2))
        val = jnp.where(_allowed(x, wanted, active), val, -jnp.inf)
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
    params = _as_params(params)
    _check_params(params, space)
    S = int(params.intercept.shape[0])
    rng = np.random.default_rng(seed)
    starts = _random_allowed(space, S * num_restarts, rng).reshape(S, num_restarts, -1)
    wanted, active = space.forbidden_arrays()
    main, pair = _dense_tables(params, space.cardinalities)
    # pad the draw axis to a power of two so that varying S reuses a few compilations
    S_pad = 1 << (S - 1).bit_length()
    pad = [0] * (S_pad - S)
    x, val = _hill_batch(
        np.concatenate([main, main[pad]]),
        np.concatenate([pair, pair[pad]]),
        np.concatenate([starts, starts[pad]]),
        wanted,
        active,
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
    return _Tables(
        order, float(np.asarray(params_one.intercept)), m_o, pair_cat, seg, rowmax, rules_at
    )


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
    x0, _ = hill_climb(params, space, seed=0 if seed is None else seed, num_restarts=num_restarts)
    host = jax.tree.map(np.asarray, params)
    out = np.empty((S, space.num_components), np.int32)
    certs = []
    for s in range(S):
        one = jax.tree.map(lambda a, s=s: a[s], host)
        out[s], cert = _exact_one(one, space, x0[s], max_nodes)
        certs.append(cert)
    return out, certs


def _argmax_exact(params, space, seed, num_restarts, max_nodes):
    """Branch and bound of every draw at once (:mod:`layoutopt._bnb`), hill-climbing incumbents."""
    from layoutopt import _bnb

    x0, _ = hill_climb(params, space, seed=0 if seed is None else seed, num_restarts=num_restarts)
    t = _bnb.prepare(jax.tree.map(np.asarray, params), space.cardinalities, space.forbidden)
    inc = _bnb.eta64(t, x0)
    x, val, ub, nodes = _bnb.branch_and_bound(t, inc, max_nodes)
    found = x[:, 0] >= 0
    codes = np.where(found[:, None], x, x0).astype(np.int32)
    gap = np.maximum(0.0, ub - val)
    certs = [
        Certificate(float(u), float(g), int(n), bool(g <= 1e-9 * max(1, abs(u))))
        for u, g, n in zip(ub, gap, nodes, strict=True)
    ]
    return codes, certs


# ---------------------------------------------------------------------------- public API
def argmax_codes(
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
    return_certificates: bool = False,
):
    """Per-draw best allowed layout: ``argmax_x eta_s(x)`` for every draw s.

    Args:
        params: :class:`~layoutopt.model.Params` with a leading draw axis S.
        space: the layout space; forbidden layouts are never returned.
        method: ``"enumerate"`` (exact, chunked enumeration), ``"exact"`` (exact branch and
            bound with a certificate), ``"hill"`` (hill climbing with random restarts; a local
            optimum) or ``"auto"`` (``"enumerate"`` up to ``AUTO_ENUMERATE_LIMIT`` layouts,
            ``"exact"`` beyond).
        seed: seed of the random restarts; required by ``"hill"`` (``"exact"`` uses it for
            its incumbent and falls back to 0).
        chunk_size: layouts per enumeration chunk; by default sized to ``memory_budget``.
        memory_budget: bytes one enumeration chunk may use (about ``S * chunk * 12``).
        num_restarts: restarts per draw for ``"hill"`` (and the incumbent of ``"exact"``).
        max_nodes: node limit per draw of ``"exact"``; when reached, the best layout found is
            returned and its certificate reports the remaining gap.
        devices: devices to shard enumeration chunks over (default: all visible devices).
        return_certificates: also return one :class:`Certificate` per draw.

    Returns:
        ``(S, K)`` int32 variant codes (and a list of S certificates when asked).

    Raises:
        ValueError: for an unknown method, a missing seed for ``"hill"``, or params that do
            not fit the space.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    params = _as_params(params)
    _check_params(params, space)
    if method == "auto":
        method = "enumerate" if space.size <= AUTO_ENUMERATE_LIMIT else "exact"
    if method == "enumerate":
        codes, eta = _argmax_enumerate(params, space, chunk_size, memory_budget, devices)
        certs = [Certificate(float(e), 0.0, 0, True) for e in eta]
    elif method == "hill":
        if seed is None:
            raise ValueError("method='hill' is random: pass an explicit seed")
        codes, eta = hill_climb(params, space, seed, num_restarts=num_restarts)
        certs = [Certificate(math.inf, math.inf, 0, False) for _ in eta]
    else:
        codes, certs = _argmax_exact(params, space, seed, num_restarts, max_nodes)
    return (codes, certs) if return_certificates else codes


def argmax_layout(
    params: Params, space: LayoutSpace, method: str = "exact", seed: int | None = None, **kwargs
) -> tuple[np.ndarray, float, Certificate]:
    """Best allowed layout of one (unbatched) parameter set.

    Args:
        params: unbatched :class:`~layoutopt.model.Params` (e.g. the posterior mean).
        space: the layout space.
        method: as in :func:`argmax_codes` (default ``"exact"``).
        seed: as in :func:`argmax_codes`.
        **kwargs: passed on to :func:`argmax_codes`.

    Returns:
        ``(codes, eta, certificate)``: ``(K,)`` int32 codes, their eta (float, from
        :func:`~layoutopt.model.logits`) and a :class:`Certificate`.
    """
    batched = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32)[None], params)
    codes, certs = argmax_codes(
        batched, space, method=method, seed=seed, return_certificates=True, **kwargs
    )
    one = jax.tree.map(lambda a: a[0], batched)
    eta = float(logits(one, jnp.asarray(codes[0])))
    return codes[0], eta, certs[0]
