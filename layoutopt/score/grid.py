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
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from layoutopt.model.core import Params
from layoutopt.model.space import LayoutSpace
from layoutopt.score.blocks import (
    DEFAULT_GRID,
    DEFAULT_MEMORY_BUDGET,
    Block,
    GridOptions,
    Plan,
    Reduction,
    allowed,
    as_params,
    block_allowed,
    block_eta,
    check_params,
    chunk_codes,
    codes_eta,
    compose,
    leaf_codes,
    leaf_table,
    mesh_sharding,
    plan,
    platform_of,
    prefix_codes,
)
from layoutopt.score.reductions import (
    IDENTITY,
    ArgmaxState,
    TopKState,
    ctr_of,
    eta_rows,
    gaussian_mean_ctr,
    gaussian_moments,
    gaussian_stats,
    mean_ctr,
    order_statistics,
    per_draw_argmax,
    per_draw_max,
    resolve_argmax,
    top_k,
    transformed,
)

__all__ = [
    "DEFAULT_GRID",
    "DEFAULT_MEMORY_BUDGET",
    "IDENTITY",
    "ArgmaxState",
    "Block",
    "GridOptions",
    "Plan",
    "Reduction",
    "TopKState",
    "allowed",
    "as_params",
    "block_allowed",
    "block_eta",
    "check_params",
    "chunk_codes",
    "codes_eta",
    "compose",
    "ctr_of",
    "eta_rows",
    "gaussian_mean_ctr",
    "gaussian_moments",
    "gaussian_stats",
    "leaf_codes",
    "leaf_table",
    "mean_ctr",
    "mesh_sharding",
    "order_statistics",
    "per_draw_argmax",
    "per_draw_max",
    "plan",
    "platform_of",
    "prefix_codes",
    "resolve_argmax",
    "scan_grid",
    "top_k",
    "transformed",
]


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
    rules,
    *,
    aux,
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
        ok = valid & block_allowed(pre_codes, leaf, rules, plan)
        eta = block_eta(params, pre_codes, table, plan)
        if materialize:
            # XLA:CPU: reductions over a materialised eta run ~2x faster than over the
            # fused broadcast expression (measured, benchmarks/README.md)
            eta = jax.lax.optimization_barrier(eta)
        return reduction.update(state, Block(eta, ok, pre_codes, leaf, aux))

    return jax.lax.scan(step, state, (starts, offsets))


def _chunking(
    S, plan: Plan, *, chunk_size, memory_budget, num_devices, factor, platform, options, itemsize
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
    aux: Any = (),
):
    """Stream every layout of ``space`` through ``reduction``; returns its final state.

    Args:
        params: :class:`~layoutopt.model.Params` with a leading draw axis S (float32, or
            float64 inside an x64 scope).
        space: the layout space; layouts its rules exclude (forbidden, repeating a distinct
            group) arrive with ``block.ok`` False.
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
        aux: traced operands the reduction reads as ``block.aux`` (a pytree of arrays, e.g.
            a :class:`~layoutopt.score.target.Target`'s ``aux``); new values reuse the
            compiled pass.

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
        S,
        pl,
        chunk_size=chunk_size,
        memory_budget=memory_budget,
        num_devices=ndev,
        factor=factor,
        platform=platform,
        options=options,
        itemsize=itemsize,
    )
    leaf = leaf_codes(pl)
    table = leaf_table(params, pl, leaf)
    rules = space.forbidden_arrays()
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
            rules,
            aux=aux,
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
