"""The grid engine: stream every layout of a space through jitted kernels, composing reductions.

Layouts are addressed by their mixed-radix index (last component fastest), so the space is
enumerated in chunks without ever being materialised. In that order the space is a run of
*leaf blocks*: the leading P components (the prefix) are fixed and the trailing L components
(the leaf) run over their full product of Lf layouts. For a fixed prefix ``x_pre`` and draw s::

    eta_s(x_pre, y) = c_s(x_pre) + T_s[y] + sum_{j in leaf} U_s,j(x_pre)[y_j]

with c = logits of the prefix model (intercept, prefix mains, prefix pairs), T = logits of the
leaf model (leaf mains and leaf pairs, zero intercept: one ``(S, Lf)`` table for the whole
space) and ``U_j = sum_{k in prefix} p_kj[x_k, :]`` (the cross pairs). A block's eta is then
a broadcast sum of dense arrays, with table look-ups once per prefix, never a one-hot design
matrix. Every term is a term of :func:`layoutopt.model.logits`; only the order of the float32
additions differs.

A pass (:func:`scan_grid`) streams the blocks through one :class:`Reduction`: a pair of pure
functions ``init(num_draws, num_components) -> state`` and ``update(state, block) -> (state,
output)`` (the shape of optax's ``GradientTransformation``). The reductions here are the
posterior mean CTR (:func:`mean_ctr`), the interval's order statistics
(:func:`order_statistics`, or :func:`eta_rows` for a sort on the host), the per-draw max and
argmax (:func:`per_draw_argmax`, or :func:`per_draw_max` + :func:`resolve_argmax`) and the
running top-k by mean CTR (:func:`top_k`); :func:`compose` runs several in one pass. For a
Gaussian (Laplace) posterior the "draws" may be the 2 + r rows of its closed form
(:func:`gaussian_stats`, in float64).
Memory is O(S x chunk) whatever the size of the space; with several devices the prefix axis
of each step is sharded over a 1-D mesh of them.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from layoutopt.model.core import Params, inv_link, logits, pair_list
from layoutopt.model.space import LayoutSpace

__all__ = [
    "DEFAULT_GRID",
    "Block",
    "GridOptions",
    "Reduction",
    "compose",
    "eta_rows",
    "gaussian_mean_ctr",
    "gaussian_stats",
    "mean_ctr",
    "order_statistics",
    "per_draw_argmax",
    "per_draw_max",
    "resolve_argmax",
    "scan_grid",
    "top_k",
]

#: Default device-memory budget of one enumeration chunk (bytes).
DEFAULT_MEMORY_BUDGET = 256 * 2**20


class GridOptions(NamedTuple):
    """Tunables of a pass (hashable; results never depend on them, only speed does).

    Attributes:
        max_leaf: largest leaf block (product of the trailing components' cardinalities).
        step_elems: eta floats (S x layouts) per scan step on CPU: in practice one leaf block
            per step (fastest measured on the 2-core machine, benchmarks/README.md).
        host_sort_platforms: platforms whose per-layout order statistics are sorted on the
            host (numpy), not on the device.
    """

    max_leaf: int = 1024
    step_elems: int = 2**16
    host_sort_platforms: tuple[str, ...] = ("cpu",)


#: The default tunables.
DEFAULT_GRID = GridOptions()


# ------------------------------------------------------------------------------ helpers
def chunk_codes(start_digits: jax.Array, cardinalities: tuple[int, ...], chunk: int):
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


def allowed(codes: jax.Array, wanted: jax.Array, active: jax.Array) -> jax.Array:
    """True where a ``(..., K)`` code array matches no forbidden rule (traced)."""
    if wanted.shape[0] == 0:
        return jnp.ones(codes.shape[:-1], dtype=bool)
    match = (codes[..., None, :] == wanted) | ~active  # (..., R, K)
    return ~jnp.any(jnp.all(match, axis=-1), axis=-1)


def as_params(params: Params, batched: bool = True) -> Params:
    """``params`` as float32 arrays; with ``batched``, checks the leading draw axis."""
    p = jax.tree.map(lambda a: jnp.asarray(a, dtype=jnp.float32), params)
    if batched and jnp.ndim(p.intercept) != 1:
        raise ValueError(
            "params must carry one leading draw axis (intercept of shape (S,)), "
            f"got intercept shape {jnp.shape(p.intercept)}"
        )
    return p


def check_params(params: Params, space: LayoutSpace) -> None:
    """Raise a ValueError when the tables of ``params`` do not fit ``space``."""
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


def mesh_sharding(devices):
    """A 1-D NamedSharding over ``devices`` for the layout axis (None for one device)."""
    devices = list(jax.devices() if devices is None else devices)
    if len(devices) <= 1:
        return None, 1
    mesh = jax.sharding.Mesh(np.asarray(devices), ("layouts",))
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("layouts")), len(devices)


def platform_of(devices) -> str:
    """Platform (``"cpu"``, ``"gpu"``, ...) of the first of ``devices`` (default: visible)."""
    return (jax.devices() if devices is None else list(devices))[0].platform


# --------------------------------------------------------------------------- leaf blocks
class Plan(NamedTuple):
    """Static split of the components into prefix and leaf (hashable: a jit static arg).

    Attributes:
        prefix: cardinalities of the leading components.
        leaf: cardinalities of the trailing components (at least one).
    """

    prefix: tuple[int, ...]
    leaf: tuple[int, ...]

    @property
    def leaf_size(self) -> int:
        """Layouts per leaf block."""
        return math.prod(self.leaf)

    @property
    def num_prefixes(self) -> int:
        """Leaf blocks in the space."""
        return math.prod(self.prefix)


def plan(cardinalities: tuple[int, ...], max_leaf: int = DEFAULT_GRID.max_leaf) -> Plan:
    """The longest run of trailing components whose product is at most ``max_leaf``."""
    K = len(cardinalities)
    L = 1
    while L < K and math.prod(cardinalities[K - L - 1 :]) <= max_leaf:
        L += 1
    return Plan(tuple(cardinalities[: K - L]), tuple(cardinalities[K - L :]))


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


def leaf_codes(plan: Plan) -> np.ndarray:
    """All ``Lf`` leaf code tuples in mixed-radix order, ``(Lf, L)`` int32."""
    return np.indices(plan.leaf, dtype=np.int32).reshape(len(plan.leaf), -1).T.copy()


@functools.partial(jax.jit, static_argnames=("plan",))
def leaf_table(params: Params, plan: Plan, codes: np.ndarray):
    """eta ``(S, Lf)`` of the leaf model (leaf mains and pairs, zero intercept)."""
    _, leaf, _ = _split_params(params, len(plan.prefix))
    return jax.vmap(logits, in_axes=(0, None))(leaf, jnp.asarray(codes))


def block_eta(params: Params, pre_codes, table, plan: Plan):
    """eta ``(S, Pc * Lf)`` of ``Pc`` whole leaf blocks with prefixes ``pre_codes`` (Pc, P)."""
    P, L = len(plan.prefix), len(plan.leaf)
    S, Pc = params.intercept.shape[0], pre_codes.shape[0]
    pre, _, cross = _split_params(params, P)
    c = jax.vmap(logits, in_axes=(0, None))(pre, pre_codes)  # (S, Pc)
    eta = c.reshape((S, Pc) + (1,) * L) + table.reshape((S, 1) + plan.leaf)
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


def codes_eta(params: Params, codes, table, plan: Plan):
    """eta ``(S, n)`` of explicit layouts ``codes`` (n, K), summed as :func:`block_eta` does.

    The same float32 additions in the same order as the block kernel, so a layout's eta (and
    its interval) is bit-identical whether it is scored in a grid or on its own.
    """
    P, L = len(plan.prefix), len(plan.leaf)
    pre, _, cross = _split_params(params, P)
    c = jax.vmap(logits, in_axes=(0, None))(pre, codes[:, :P])  # (S, n)
    leaf_idx = jnp.zeros(codes.shape[0], jnp.int32)
    for j in range(P, P + L):
        leaf_idx = leaf_idx * plan.leaf[j - P] + codes[:, j]
    eta = c + table[:, leaf_idx]
    for j in range(P, P + L):
        u = None
        for k, jj, t in cross:
            if jj == j:
                g = t[:, codes[:, k], codes[:, j]]  # (S, n)
                u = g if u is None else u + g
        if u is not None:
            eta = eta + u
    return eta


def prefix_codes(start_digits, plan: Plan, n: int):
    """Codes ``(n, P)`` of ``n`` consecutive prefixes from ``start_digits``."""
    if not plan.prefix:
        return jnp.zeros((n, 0), jnp.int32)
    return chunk_codes(start_digits, plan.prefix, n)


def _block_allowed(pre_codes, leaf, wanted, active, plan: Plan):
    """``(Pc * Lf,)`` True where the layout (prefix, leaf) matches no forbidden rule."""
    Pc, Lf = pre_codes.shape[0], leaf.shape[0]
    if wanted.shape[0] == 0:
        return jnp.ones((Pc * Lf,), bool)
    P = len(plan.prefix)
    pre_hit = jnp.all((pre_codes[:, None, :] == wanted[:, :P]) | ~active[:, :P], axis=-1)
    leaf_hit = jnp.all((leaf[:, None, :] == wanted[:, P:]) | ~active[:, P:], axis=-1)
    hit = jnp.any(pre_hit[:, None, :] & leaf_hit[None, :, :], axis=-1)  # (Pc, Lf)
    return ~hit.reshape(-1)


# ----------------------------------------------------------------------------- reductions
class Block(NamedTuple):
    """One scan step's layouts, as a reduction's ``update`` sees them.

    Attributes:
        eta: ``(S, C)`` float32 linear predictor of the step's C layouts (consecutive indices).
        ok: ``(C,)`` True where the layout is allowed and inside the space.
        pre_codes: ``(Pc, P)`` codes of the step's prefixes.
        leaf_codes: ``(Lf, L)`` codes of the leaf block (C = Pc * Lf).
    """

    eta: jax.Array
    ok: jax.Array
    pre_codes: jax.Array
    leaf_codes: jax.Array

    def codes_at(self, i: jax.Array) -> jax.Array:
        """``(..., K)`` codes of the step's layouts at positions ``i``."""
        Lf = self.leaf_codes.shape[0]
        return jnp.concatenate([self.pre_codes[i // Lf], self.leaf_codes[i % Lf]], axis=-1)


class Reduction(NamedTuple):
    """A reduction over the grid: a pair of pure functions (optax-style).

    Attributes:
        init: ``init(num_draws, num_components) -> state`` (a pytree of arrays, or None).
        update: ``update(state, block) -> (state, output)``: folds one :class:`Block` into the
            state; ``output`` (a pytree or None) is stacked over the steps of a call and
            handed to :func:`scan_grid`'s ``on_chunk``.
    """

    init: Callable[[int, int], Any]
    update: Callable[[Any, Block], tuple[Any, Any]]


class ArgmaxState(NamedTuple):
    """State of :func:`per_draw_argmax`.

    Attributes:
        best_eta: ``(S,)`` running max eta per draw (-inf before any allowed layout).
        best_codes: ``(S, K)`` its layout.
    """

    best_eta: jax.Array
    best_codes: jax.Array


class TopKState(NamedTuple):
    """State of :func:`top_k`.

    Attributes:
        top_mean: ``(k,)`` the k highest posterior mean CTRs so far, highest first.
        top_codes: ``(k, K)`` their layouts.
    """

    top_mean: jax.Array
    top_codes: jax.Array


def _masked_mean(block: Block, link: str) -> jax.Array:
    return jnp.where(block.ok, jnp.mean(inv_link(block.eta, link), axis=0), -jnp.inf)


@functools.cache
def per_draw_argmax() -> Reduction:
    """Per-draw max and argmax of eta over the allowed layouts (for P(best), Thompson).

    Exact ties go to the lowest index (lowest position within a step, strict ``>`` across
    steps).
    """

    def init(S, K):
        return ArgmaxState(jnp.full((S,), -jnp.inf, jnp.float32), jnp.zeros((S, K), jnp.int32))

    def update(state, block):
        C = block.eta.shape[1]
        v = jnp.max(jnp.where(block.ok, block.eta, -jnp.inf), axis=1)
        first = jnp.min(jnp.where(block.ok & (block.eta == v[:, None]), jnp.arange(C), C), axis=1)
        at = block.codes_at(jnp.minimum(first, C - 1))
        better = v > state.best_eta
        return ArgmaxState(
            jnp.where(better, v, state.best_eta),
            jnp.where(better[:, None], at, state.best_codes),
        ), None

    return Reduction(init, update)


@functools.cache
def per_draw_max() -> Reduction:
    """Per-draw max of eta and the leaf block holding it: :func:`per_draw_argmax` in two steps.

    The pass keeps only the max and its leaf block (a max over the block's layouts, then a
    first-max over the step's few blocks); :func:`resolve_argmax` then finds the layout
    inside that one block per draw. One read of eta per step instead of two (the position
    search), for the same result (same float32 eta, same ties: lowest index). The state is an
    :class:`ArgmaxState` whose ``best_codes`` hold the block's prefix and leaf code 0.
    """

    def init(S, K):
        return ArgmaxState(jnp.full((S,), -jnp.inf, jnp.float32), jnp.zeros((S, K), jnp.int32))

    def update(state, block):
        Lf = block.leaf_codes.shape[0]
        S, C = block.eta.shape
        e = jnp.where(block.ok, block.eta, -jnp.inf).reshape(S, C // Lf, Lf)
        per_block = jnp.max(e, axis=2)  # (S, Pc)
        first = jnp.argmax(per_block, axis=1)  # first block with the max
        v = jnp.max(per_block, axis=1)
        better = v > state.best_eta
        at = block.codes_at(first * Lf)
        return ArgmaxState(
            jnp.where(better, v, state.best_eta),
            jnp.where(better[:, None], at, state.best_codes),
        ), None

    return Reduction(init, update)


@functools.partial(jax.jit, static_argnames=("plan",))
def _resolve_blocks(params, leaf, state, wanted, active, *, plan):
    table = leaf_table(params, plan, leaf)
    best_pre = state.best_codes[:, : len(plan.prefix)]

    def one(p, t, pre, v):
        p1 = jax.tree.map(lambda a: a[None], p)
        eta = block_eta(p1, pre[None], t[None], plan)[0]  # (Lf,)
        ok = _block_allowed(pre[None], leaf, wanted, active, plan)
        hit = ok & (eta == v)
        # the same kernel gives the same float32 eta, so the max is found exactly; the
        # argmax is only a guard should a compiler ever sum in another order
        pos = jnp.where(jnp.any(hit), jnp.argmax(hit), jnp.argmax(jnp.where(ok, eta, -jnp.inf)))
        return jnp.concatenate([pre, leaf[pos]])

    codes = jax.vmap(one)(params, table, best_pre, state.best_eta)
    found = jnp.isfinite(state.best_eta)[:, None]
    return ArgmaxState(state.best_eta, jnp.where(found, codes, 0).astype(jnp.int32))


def resolve_argmax(
    params: Params, space: LayoutSpace, state: ArgmaxState, options: GridOptions = DEFAULT_GRID
) -> ArgmaxState:
    """The per-draw argmax from a :func:`per_draw_max` state (same ``params``, ``options``).

    Evaluates one leaf block per draw (S x Lf layouts): negligible next to the pass.
    Draws with no allowed layout (max -inf) keep codes 0, as :func:`per_draw_argmax` does.
    """
    pl = plan(space.cardinalities, options.max_leaf)
    wanted, active = space.forbidden_arrays()
    return _resolve_blocks(params, leaf_codes(pl), state, wanted, active, plan=pl)


@functools.cache
def mean_ctr(link: str) -> Reduction:
    """Stateless: outputs each layout's posterior mean CTR ``(C,)`` (-inf where not allowed)."""

    def update(state, block):
        return state, _masked_mean(block, link)

    return Reduction(lambda S, K: None, update)


@functools.cache
def order_statistics(ranks: tuple[int, ...]) -> Reduction:
    """Stateless: outputs the order statistics ``ranks`` of eta over the draws, ``(R, C)``.

    Sorted on the device (the path for accelerators).
    """
    idx = np.asarray(ranks)

    def update(state, block):
        return state, jnp.sort(block.eta, axis=0)[idx]

    return Reduction(lambda S, K: None, update)


@functools.cache
def eta_rows() -> Reduction:
    """Stateless: outputs eta layout-major, ``(C, S)``, for row-wise sorts on the host."""

    def update(state, block):
        return state, block.eta.T

    return Reduction(lambda S, K: None, update)


@functools.cache
def top_k(k: int, link: str) -> Reduction:
    """Running top-k of the allowed layouts by posterior mean CTR (earlier layouts win ties)."""

    def init(S, K):
        return TopKState(jnp.full((k,), -jnp.inf, jnp.float32), jnp.zeros((k, K), jnp.int32))

    def update(state, block):
        mean = _masked_mean(block, link)
        # the running rows come first, so earlier layouts win ties
        cm = jnp.concatenate([state.top_mean, mean])
        _, sel = jax.lax.top_k(cm, k)
        step = block.codes_at(jnp.maximum(sel - k, 0))
        codes = jnp.where((sel < k)[:, None], state.top_codes[jnp.minimum(sel, k - 1)], step)
        return TopKState(cm[sel], codes), None

    return Reduction(init, update)


def gaussian_mean_ctr(m: jax.Array, sd: jax.Array, link: str, nodes: int) -> jax.Array:
    """``E[inv_link(eta)]`` for ``eta ~ N(m, sd^2)`` (elementwise, in the dtype of ``m``).

    Probit: exactly ``Phi(m / sqrt(1 + sd^2))``. Logit: ``nodes``-point Gauss-Hermite
    quadrature, ``pi^-1/2 sum_i w_i sigmoid(m + sqrt(2) sd t_i)`` (accuracy: see
    ``layoutopt.score.scoring.GAUSS_HERMITE_NODES``).
    """
    if link == "probit":
        return jax.scipy.special.ndtr(m / jnp.sqrt(1.0 + sd**2))
    t, w = np.polynomial.hermite.hermgauss(nodes)
    t = jnp.asarray(np.sqrt(2.0) * t, m.dtype)
    w = jnp.asarray(w / np.sqrt(np.pi), m.dtype)
    return jnp.sum(w * inv_link(m[..., None] + sd[..., None] * t, link), axis=-1)


def gaussian_moments(eta: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(m, sd)`` of eta from the rows of a stacked Gaussian batch.

    Rows 0 (eta under the mode), 1 (``x' D x``: tables holding prior variances) and 2...
    (the factor columns ``U_j``) give ``v = x' D x - sum_j (x . U_j)^2``, clamped at 0
    against rounding. Run it in float64: the difference cancels for well-observed layouts.
    """
    u = eta[2:]
    v = eta[1] - jnp.sum(u * u, axis=0)
    return eta[0], jnp.sqrt(jnp.maximum(v, 0.0))


@functools.cache
def gaussian_stats(link: str, nodes: int) -> Reduction:
    """Stateless, over a stacked Gaussian batch (:func:`gaussian_moments`): outputs
    ``(3, C)``: mean CTR (-inf where not allowed), m and sd of eta."""

    def update(state, block):
        m, sd = gaussian_moments(block.eta)
        mean = jnp.where(block.ok, gaussian_mean_ctr(m, sd, link, nodes), -jnp.inf)
        return state, jnp.stack([mean, m, sd])

    return Reduction(lambda S, K: None, update)


@functools.cache
def compose(*reductions: Reduction) -> Reduction:
    """Run several reductions in one pass: the state and output are tuples, one per part."""

    def init(S, K):
        return tuple(r.init(S, K) for r in reductions)

    def update(state, block):
        pairs = [r.update(s, block) for r, s in zip(reductions, state, strict=True)]
        return tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)

    return Reduction(init, update)


# ---------------------------------------------------------------------------------- pass
@functools.partial(
    jax.jit,
    static_argnames=("reduction", "plan", "steps", "per_step", "sharding", "materialize"),
)
def _pass_chunk(
    state,
    params,
    table,
    leaf,
    start_digits,
    n_valid,
    wanted,
    active,
    *,
    reduction,
    plan,
    steps,
    per_step,
    sharding,
    materialize,
):
    """``steps`` scan steps of ``per_step`` prefixes each, from prefix digits ``start_digits``."""
    Lf = plan.leaf_size
    starts = prefix_codes(start_digits, plan, steps * per_step)[::per_step]
    offsets = jnp.arange(steps, dtype=jnp.int32) * per_step
    leaf = jnp.asarray(leaf)

    # No lax.cond inside the scan: on XLA:CPU every conditional is a host synchronisation
    # point, which under load cost more than the arithmetic (measured).
    def step(state, xs):
        sub_start, offset = xs
        pre_codes = prefix_codes(sub_start, plan, per_step)
        if sharding is not None:
            pre_codes = jax.lax.with_sharding_constraint(pre_codes, sharding)
        valid = jnp.repeat(offset + jnp.arange(per_step) < n_valid, Lf)
        ok = valid & _block_allowed(pre_codes, leaf, wanted, active, plan)
        eta = block_eta(params, pre_codes, table, plan)
        if materialize:
            # XLA:CPU: reductions over a materialised eta run ~2x faster than over the
            # fused broadcast expression (measured, benchmarks/README.md)
            eta = jax.lax.optimization_barrier(eta)
        return reduction.update(state, Block(eta, ok, pre_codes, leaf))

    return jax.lax.scan(step, state, (starts, offsets))


def _chunking(
    S, plan: Plan, chunk_size, memory_budget, num_devices, factor, platform, options, itemsize
):
    """(prefixes per step, steps per call) of a pass (``itemsize``: bytes per float)."""
    Lf, Np = plan.leaf_size, plan.num_prefixes
    if chunk_size is None:
        chunk_size = max(Lf, memory_budget // (max(1, S) * itemsize * factor))
    chunk_size = int(chunk_size)
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    if platform == "cpu":
        target = min(chunk_size, max(1, options.step_elems // S))
    else:
        target = chunk_size
    per_step = max(1, min(target // Lf, Np))
    per_step = -(-per_step // num_devices) * num_devices
    steps = max(1, min(chunk_size // (per_step * Lf), -(-Np // per_step)))
    return per_step, steps


def scan_grid(
    params: Params,
    space: LayoutSpace,
    reduction: Reduction,
    *,
    chunk_size: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    devices=None,
    factor: int = 3,
    on_chunk: Callable[[int, int, Any], None] | None = None,
    options: GridOptions = DEFAULT_GRID,
    prefixes: tuple[int, int] | None = None,
):
    """Stream every layout of ``space`` through ``reduction``; returns its final state.

    Args:
        params: :class:`~layoutopt.model.Params` with a leading draw axis S (float32, or
            float64 inside an x64 scope).
        space: the layout space; forbidden layouts arrive with ``block.ok`` False.
        reduction: what to compute (:func:`compose` several for one pass).
        chunk_size: layouts per kernel call; by default sized to ``memory_budget``.
        memory_budget: bytes one call may use, about ``S * chunk * itemsize * factor``
            (``itemsize`` of the params' floats: 4, or 8 for float64 params).
        devices: devices to shard the prefix axis over (default: all visible).
        factor: floats per (draw, layout) the reduction keeps alive at once.
        on_chunk: called as ``on_chunk(first_layout, n_layouts, output)`` after every kernel
            call with the reduction's outputs stacked over the call's steps, covering
            ``n_layouts`` consecutive layouts from index ``first_layout``.
        options: :class:`GridOptions` (leaf size, step size).
        prefixes: ``(lo, hi)``: stream only the leaf blocks ``lo .. hi-1`` of :func:`plan`,
            a contiguous slice of the index range (layouts ``lo * Lf`` to ``hi * Lf``).

    Returns:
        The reduction's state after the whole space (or the slice).
    """
    sharding, ndev = mesh_sharding(devices)
    platform = platform_of(devices)
    S = int(params.intercept.shape[0])
    pl = plan(space.cardinalities, options.max_leaf)
    Lf, Np = pl.leaf_size, pl.num_prefixes
    itemsize = np.dtype(params.intercept.dtype).itemsize
    per_step, steps = _chunking(
        S, pl, chunk_size, memory_budget, ndev, factor, platform, options, itemsize
    )
    leaf = leaf_codes(pl)
    table = leaf_table(params, pl, leaf)
    wanted, active = space.forbidden_arrays()
    state = reduction.init(S, space.num_components)
    per_call = per_step * steps
    lo, hi = (0, Np) if prefixes is None else prefixes
    for p0 in range(lo, hi, per_call):
        digits = np.asarray(space.codes_of(p0 * Lf)[: len(pl.prefix)], dtype=np.int32)
        n_valid = min(per_call, hi - p0)
        state, out = _pass_chunk(
            state,
            params,
            table,
            leaf,
            digits,
            np.int32(n_valid),
            wanted,
            active,
            reduction=reduction,
            plan=pl,
            steps=steps,
            per_step=per_step,
            sharding=sharding,
            materialize=platform == "cpu",
        )
        if on_chunk is not None:
            on_chunk(p0 * Lf, n_valid * Lf, out)
    return state
