"""The streamed pass over a space: the scores of every layout, chunk by chunk, and of given ones.

One function, :func:`scan_space`, runs the grid engine over a :class:`~layoutopt.score.target.
Target` (one parameter set or the traffic mix alike) and hands each chunk's ``(mean, lower,
upper)`` to a callback; :func:`stats_of_codes` scores explicit layouts with the same
arithmetic, so a layout's figures are the same whether it is scored in a grid or on its own.
Scoring in memory, the Parquet writer and the shards are all clients of these two.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from layoutopt.model.space import LayoutSpace
from layoutopt.score import grid as engine
from layoutopt.score.covariance import closed_form, quadratic_form
from layoutopt.score.grid import DEFAULT_GRID, DEFAULT_MEMORY_BUDGET, GridOptions, ctr_of
from layoutopt.score.intervals import (
    GAUSS_HERMITE_NODES,
    gaussian_interval,
    host_order,
    interval,
    ranks,
)
from layoutopt.score.target import Target
from layoutopt.util.arrays import pow2_at_least

__all__ = ["KERNEL_FACTOR", "draw_values_of_codes", "scan_space", "stats_of_codes"]

#: Floats per (draw, layout) the scoring kernel keeps alive at once (eta, ctr, sorted ctr, ...).
KERNEL_FACTOR = 6


def scan_space(
    target: Target,
    space: LayoutSpace,
    *,
    level: float,
    top: int | None = None,
    on_chunk=None,
    chunk_size: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    devices=None,
    options: GridOptions = DEFAULT_GRID,
    prefixes: tuple[int, int] | None = None,
    argmax: bool = True,
):
    """Stream the whole space (or the leaf blocks ``prefixes``) through the grid engine.

    With ``argmax`` keeps the per-draw argmax (for ``p_best``); with ``top`` the running
    top-k by mean. With ``on_chunk`` every layout's ``(mean, lower, upper)`` is computed and
    handed to ``on_chunk(first_layout, n_layouts, (mean, lower, upper))`` for consecutive
    layouts (forbidden rows carry mean -inf); without it no interval is computed for layouts
    not kept. With ``target.gauss`` (the stacked float64 Gaussian) mean and interval are the
    closed-form ones, from a second pass over its rows (2 + r, or 2 and the covariance
    tables) in float64; the draws' pass
    then only keeps the per-draw max (nothing is sorted), and ``top`` is refused (the
    caller ranks the chunks on the host).

    Returns:
        ``(argmax state or None, top-k state or None)``.
    """
    kw = dict(
        chunk_size=chunk_size,
        memory_budget=memory_budget,
        devices=devices,
        factor=KERNEL_FACTOR,
        options=options,
        prefixes=prefixes,
    )
    if target.gauss is None:
        return _scan_draws(target, space, level, top, on_chunk, kw)
    if top is not None:
        raise ValueError("closed-form scoring ranks the top rows on the host")
    best = None
    if argmax:
        state = engine.scan_grid(
            target.params, space, target.wrap(target.argmax), aux=target.aux, **kw
        )
    if on_chunk is not None:
        # the covariance tables are built on the host while the draws' pass runs
        with jax.enable_x64(True):
            g, components, aux = _float64(target.gauss, space, options)
    if argmax:
        best = target.resolve(target.params, space, state, options)
    if on_chunk is None:
        return best, None
    link = target.link

    def collect(start, n, out):  # (steps, 3, C) float64
        out = np.asarray(out[-1])
        mean, m, sd = np.moveaxis(out, 1, 0).reshape(3, -1)[:, :n]
        on_chunk(start, n, (mean.astype(np.float32), *gaussian_interval(m, sd, link, level)))

    with jax.enable_x64(True):
        stats = engine.compose(engine.gaussian_stats(link, GAUSS_HERMITE_NODES, components))
        engine.scan_grid(g, space, stats, on_chunk=collect, aux=aux, **kw)
    return best, None


def _float64(gauss, space: LayoutSpace, options: GridOptions):
    """``(rows, components, tables)`` of :func:`~layoutopt.score.covariance.closed_form`
    as float64 arrays (call inside an x64 scope)."""
    rows, components, tables = closed_form(gauss, space.cardinalities, options.closed_form)
    f64 = lambda a: jnp.asarray(a, jnp.float64)  # noqa: E731
    return jax.tree.map(f64, rows), components, tuple(f64(t) for t in tables)


def _scan_draws(target: Target, space, level, top, on_chunk, kw):
    """:func:`scan_space` from the draws: the per-draw max, the top-k by the draws' mean
    CTR, and each chunk's order statistics (sorted on the host on CPU)."""
    S, link = target.num_draws, target.link
    order_ranks = ranks(S, level)
    host_sort = engine.platform_of(kw["devices"]) in kw["options"].host_sort_platforms
    parts = [target.argmax]
    if top is not None:
        parts.append(engine.top_k(int(top), link))
    if on_chunk is not None:
        parts.append(engine.mean_ctr(link))
        # on CPU the rows are sorted on the host, see host_order
        parts.append(engine.eta_rows() if host_sort else engine.order_statistics(order_ranks))

    def collect(first, n, out):
        mean, e = out[-2], out[-1]
        mean = np.asarray(mean).reshape(-1)[:n]
        if host_sort:  # (steps, C, S): one copy to a writable (n, S), sorted in place
            order = host_order(np.array(np.asarray(e).reshape(-1, S)[:n]), order_ranks)
        else:  # (steps, 4, C)
            e = np.asarray(e)
            order = np.moveaxis(e, 1, 0).reshape(e.shape[1], -1)[:, :n]
        on_chunk(first, n, (mean, *interval(order, S, link, level)))

    state = engine.scan_grid(
        target.params,
        space,
        target.wrap(engine.compose(*parts)),
        on_chunk=None if on_chunk is None else collect,
        aux=target.aux,
        **kw,
    )
    best = target.resolve(target.params, space, state[0], kw["options"])
    return best, (state[1] if top is not None else None)


@functools.partial(jax.jit, static_argnames=("link", "plan", "components"))
def _gaussian_of_codes(gauss, leaf_table, codes, tables, *, link, plan, components):
    eta = engine.codes_eta(gauss, codes, leaf_table, plan)
    quad = quadratic_form(components, tables, codes) if components else None
    m, sd = engine.gaussian_moments(eta, quad)
    return engine.gaussian_mean_ctr(m, sd, link, GAUSS_HERMITE_NODES), m, sd


@functools.partial(jax.jit, static_argnames=("link", "plan", "values"))
def _values_mean_of_codes(params, leaf_table, codes, aux, *, link, plan, values):
    v = values(engine.codes_eta(params, codes, leaf_table, plan), aux)
    return v, jnp.mean(ctr_of(v, link), axis=0)


def stats_of_codes(
    target: Target,
    space: LayoutSpace,
    codes: np.ndarray,
    level: float,
    *,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    options: GridOptions = DEFAULT_GRID,
):
    """``(mean, lower, upper)`` of explicit layouts ``codes`` (n, K).

    eta is summed exactly as in the grid kernel (:func:`layoutopt.score.grid.codes_eta`) and
    transformed as in the pass (``target.values``), so these figures equal the grid's for
    the same layout. With ``target.gauss`` they are the closed-form ones.
    """
    codes = np.asarray(codes, np.int32).reshape(-1, space.num_components)
    if target.gauss is not None:
        return _gaussian_stats_of_codes(target, space, codes, level, options)
    S = target.num_draws
    if not len(codes):
        return tuple(np.zeros(0, np.float32) for _ in range(3))
    order_ranks = ranks(S, level)
    outs = [[], [], []]
    for v, mean in _value_chunks(target, space, codes, memory_budget, options):
        lower, upper = interval(host_order(np.array(v.T), order_ranks), S, target.link, level)
        for o, r in zip(outs, (mean, lower, upper), strict=True):
            o.append(r)
    return tuple(np.concatenate(o, axis=-1) for o in outs)


def _value_chunks(target: Target, space: LayoutSpace, codes, memory_budget, options):
    """``(values (S, c), mean CTR (c,))`` of consecutive chunks of ``codes`` (as the pass)."""
    R = int(target.params.intercept.shape[0])
    n = len(codes)
    plan = engine.plan(space.cardinalities, options.max_leaf)
    leaf_table = engine.leaf_table(target.params, plan, engine.leaf_codes(plan))
    # pad to a power of two so repeated calls reuse few compilations
    chunk = pow2_at_least(max(1, min(n, memory_budget // (R * 4 * KERNEL_FACTOR))))
    for s in range(0, n, chunk):
        c = codes[s : s + chunk]
        pad = np.zeros((chunk, codes.shape[1]), np.int32)
        pad[: len(c)] = c
        v, mean = _values_mean_of_codes(
            target.params,
            leaf_table,
            jnp.asarray(pad),
            target.aux,
            link=target.link,
            plan=plan,
            values=target.values,
        )
        yield np.asarray(v)[:, : len(c)], np.asarray(mean)[: len(c)]


def draw_values_of_codes(
    target: Target,
    space: LayoutSpace,
    codes: np.ndarray,
    *,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    options: GridOptions = DEFAULT_GRID,
) -> np.ndarray:
    """``(S, n)`` float32 CTR of explicit layouts ``codes`` in every posterior draw.

    The draws' values as the grid pass computes them (the mixture CTR for the traffic mix),
    so a per-draw comparison with the pass's per-draw best is exact. Memory: one chunk of
    ``codes`` at a time on the device, the ``(S, n)`` result on the host.

    Args:
        target: what to score (:func:`~layoutopt.score.target.scoring_target`).
        space: the space the codes belong to.
        codes: ``(n, K)`` variant codes.
        memory_budget: bytes of device memory one chunk may use.
        options: grid engine tunables (results do not depend on them).

    Returns:
        ``(S, n)`` per-draw CTR.
    """
    codes = np.asarray(codes, np.int32).reshape(-1, space.num_components)
    if not len(codes):
        return np.zeros((target.num_draws, 0), np.float32)
    chunks = [
        np.asarray(ctr_of(jnp.asarray(v), target.link))
        for v, _ in _value_chunks(target, space, codes, memory_budget, options)
    ]
    return np.concatenate(chunks, axis=1)


def _gaussian_stats_of_codes(target: Target, space, codes, level, options: GridOptions):
    """Closed-form ``(mean, lower, upper)`` of explicit layouts (see :func:`stats_of_codes`)."""
    plan = engine.plan(space.cardinalities, options.max_leaf)
    n = len(codes)
    chunk = pow2_at_least(min(max(n, 1), 2**14))
    link = target.link
    outs = [[], [], []]
    with jax.enable_x64(True):
        gauss, components, tables = _float64(target.gauss, space, options)
        leaf_table = engine.leaf_table(gauss, plan, engine.leaf_codes(plan))
        for s in range(0, n, chunk):
            c = codes[s : s + chunk]
            pad = np.zeros((chunk, codes.shape[1]), np.int32)
            pad[: len(c)] = c
            out = _gaussian_of_codes(
                gauss, leaf_table, jnp.asarray(pad), tables,
                link=link, plan=plan, components=components,
            )  # fmt: skip
            mean, m, sd = (np.asarray(a)[: len(c)] for a in out)
            stats = (mean.astype(np.float32), *gaussian_interval(m, sd, link, level))
            for o, r in zip(outs, stats, strict=True):
                o.append(r)
    if not n:
        return tuple(np.zeros(0, np.float32) for _ in outs)
    return tuple(np.concatenate(o) for o in outs)
