"""Score every layout of a space under the posterior: mean CTR, credible interval, P(best).

For S posterior draws and a layout x the scorer computes::

    ctr_s(x) = inv_link(eta_s(x)),   eta_s(x) = b0_s + sum_k m_k,s[x_k] + sum_{k<l} p_kl,s[x_k, x_l]
    mean(x)  = (1/S) sum_s ctr_s(x)
    lower(x), upper(x) = the (1-level)/2 and (1+level)/2 quantiles of ctr_s(x) over s
                         (linear interpolation between order statistics, as numpy's default)
    p_best(x) = (1/S) #{s : x = argmax over allowed layouts y of eta_s(y)}

The space is streamed through the jitted *leaf-block* kernel of :mod:`layoutopt.score.grid`: in
mixed-radix order the space is a run of blocks in which the leading
components are fixed and the trailing ones run over their full product, so a block's eta is a
broadcast sum of dense tables (prefix part + leaf table + cross pairs), with table look-ups
once per prefix, never a one-hot design matrix. Every term is a term of
:func:`layoutopt.model.logits` (tested to agree to float32 rounding; only the order of the
additions differs). Forbidden layouts are masked in the kernel. The pass composes the grid
engine's reductions (per-draw running max/argmax for P(best), the running top-k by posterior
mean, the mean CTR and the interval's order statistics), scanning several blocks per call,
so device memory is O(S x chunk) whatever the size of
the space. With ``top=k`` no interval is computed for layouts not kept: the k kept layouts'
intervals come from a second, tiny pass over their codes. With ``top=None`` each chunk's eta is
sorted along the draw axis on the host (CPU) or on the device (accelerators). With several
devices the prefix axis of each step is sharded over a 1-D mesh of all of them
(``jax.sharding``); results do not depend on the number of devices.

Closed form (``method="auto"``, the default for Laplace posteriors; ``method="draws"`` keeps
the estimates above): the posterior is Gaussian in the parameters and eta is linear, so
``eta(x) ~ N(m(x), v(x))`` exactly (:class:`~layoutopt.infer.posterior.GaussianPosterior`), and::

    mean(x) = E[inv_link(eta(x))]            (32-node Gauss-Hermite; probit: exact)
    lower(x), upper(x) = inv_link(m(x) -+ z sqrt(v(x))),   z = Phi^-1((1 + level) / 2)

with m and v from 2 + r float64 pseudo-draws through the same grid kernel. ``p_best``
always comes from the draws (joint over layouts).

Ties: ``p_best`` credits, per draw, the allowed layout with the highest float32 eta as summed
by the kernel; exactly equal values go to the lowest index.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from scipy.special import ndtr, ndtri

from layoutopt.data.observations import layout_codes
from layoutopt.infer.posterior import Posterior
from layoutopt.model.core import inv_link
from layoutopt.model.space import LayoutSpace
from layoutopt.score import grid as engine
from layoutopt.score.grid import DEFAULT_GRID, DEFAULT_MEMORY_BUDGET, GridOptions
from layoutopt.score.mix import mix_stats, scan_mix, segment_view
from layoutopt.score.optimize import (
    AUTO_ENUMERATE_LIMIT,
    argmax_codes,
    argmax_layout,
    check_argmax_work,
)
from layoutopt.util.arrays import pow2_at_least
from layoutopt.util.io import atomic_path
from layoutopt.util.limits import check_grid_work
from layoutopt.util.seeds import split_seed

__all__ = [
    "BestLayout",
    "GridScores",
    "best_layout",
    "score_grid",
    "score_grid_to_parquet",
    "score_layouts",
]

#: ``score_grid(top=None)`` refuses spaces with more allowed layouts than this.
MAX_FULL_GRID = 10_000_000
#: Floats per (draw, layout) the scoring kernel keeps alive at once (eta, ctr, sorted ctr, ...).
_KERNEL_FACTOR = 6
_STAT_COLUMNS = ("mean", "lower", "upper", "p_best")
#: Ways to compute mean and interval (``method=``); P(best) always comes from the draws.
SCORING_METHODS = ("auto", "gaussian", "draws")
#: Gauss-Hermite nodes of the closed-form mean CTR (logit link). Relative error (float64,
#: against a 24,001-point trapezoid rule, eta means -8..3): < 1e-8 for eta sds up to 1.5,
#: 4e-7 up to 2, 7e-5 up to 3 (sigmoid's complex poles slow GH down for wide Gaussians);
#: float32 rounding adds ~1e-6. Far below the Monte Carlo error of 256 draws in every case.
GAUSS_HERMITE_NODES = 32


# ---------------------------------------------------------------------------- kernel
def _quantile_positions(S: int, q: float) -> tuple[int, int, float]:
    """Order statistics and weight of quantile ``q`` of S values (numpy's "linear")."""
    h = (S - 1) * q
    i = min(int(math.floor(h)), S - 1)
    return i, min(i + 1, S - 1), h - i


def _ranks(S: int, level: float) -> tuple[int, int, int, int]:
    lo_i, lo_j, _ = _quantile_positions(S, (1.0 - level) / 2.0)
    hi_i, hi_j, _ = _quantile_positions(S, (1.0 + level) / 2.0)
    return lo_i, lo_j, hi_i, hi_j


def _host_order(rows: np.ndarray, ranks) -> np.ndarray:
    """Order statistics ``ranks`` of each row of a writable ``(n, S)`` eta array: ``(4, n)``.

    Sorts the rows in place: numpy's vectorised float sort of contiguous rows beats both
    XLA:CPU's comparator sort (~100x) and ``np.partition`` with four kth (~10x; measured,
    benchmarks/README.md).
    """
    rows.sort(axis=1)
    return rows[:, list(ranks)].T


def _interval(order: np.ndarray, S: int, link: str, level: float):
    """Equal-tailed interval of CTR from the eta order statistics ``(4, n)`` of ``_ranks``.

    The link is monotone, so the order statistics of CTR are inv_link of those of eta; only
    these 4 numbers per layout are transformed (float64), then interpolated as numpy's
    "linear" quantile method does.
    """
    *_, lo_w = _quantile_positions(S, (1.0 - level) / 2.0)
    *_, hi_w = _quantile_positions(S, (1.0 + level) / 2.0)
    o = np.asarray(order, np.float64)
    if link == "logit":
        o = 1.0 / (1.0 + np.exp(-o))
    else:
        o = ndtr(o)
    lower = o[0] + (o[1] - o[0]) * lo_w
    upper = o[2] + (o[3] - o[2]) * hi_w
    return lower.astype(np.float32), upper.astype(np.float32)


def _gaussian_interval(m, sd, link: str, level: float):
    """Equal-tailed interval of CTR for ``eta ~ N(m, sd^2)``: ``inv_link(m -+ z sd)``.

    Exact (the link is monotone, so the CTR quantiles are inv_link of the eta quantiles);
    computed in float64 from the float32 ``m`` and ``sd``.
    """
    z = float(ndtri(0.5 + 0.5 * level))
    m, sd = np.asarray(m, np.float64), np.asarray(sd, np.float64)
    if link == "logit":
        lower, upper = (1.0 / (1.0 + np.exp(-(m + s * z * sd))) for s in (-1.0, 1.0))
    else:
        lower, upper = ndtr(m - z * sd), ndtr(m + z * sd)
    return lower.astype(np.float32), upper.astype(np.float32)


@functools.partial(jax.jit, static_argnames=("link", "plan"))
def _gaussian_of_codes(gauss, leaf_table, codes, *, link, plan):
    eta = engine.codes_eta(gauss, codes, leaf_table, plan)
    m, sd = engine.gaussian_moments(eta)
    return engine.gaussian_mean_ctr(m, sd, link, GAUSS_HERMITE_NODES), m, sd


@functools.partial(jax.jit, static_argnames=("link", "plan"))
def _eta_mean_of_codes(params, leaf_table, codes, *, link, plan):
    eta = engine.codes_eta(params, codes, leaf_table, plan)
    return eta, jnp.mean(inv_link(eta, link), axis=0)


def _stats_chunked(
    params,
    space,
    codes,
    link,
    level,
    memory_budget=DEFAULT_MEMORY_BUDGET,
    options: GridOptions = DEFAULT_GRID,
    gauss=None,
):
    """``(mean, lower, upper)`` of explicit layouts ``codes`` (n, K).

    eta is summed exactly as in the grid kernel (:func:`layoutopt.score.grid.codes_eta`), so
    these figures equal the grid's for the same layout. With ``gauss`` (the stacked
    :class:`~layoutopt.infer.posterior.GaussianPosterior`) they are the closed-form ones.
    """
    if gauss is not None:
        return _gaussian_stats_of_codes(gauss, space, codes, link, level, options)
    S = int(params.intercept.shape[0])
    n = len(codes)
    plan = engine.plan(space.cardinalities, options.max_leaf)
    leaf_table = engine.leaf_table(params, plan, engine.leaf_codes(plan))
    chunk = max(1, min(n, memory_budget // (S * 4 * _KERNEL_FACTOR)))
    # pad to a power of two so repeated calls reuse few compilations
    chunk = pow2_at_least(chunk)
    ranks = _ranks(S, level)
    outs = [[], [], []]
    for s in range(0, n, chunk):
        c = codes[s : s + chunk]
        pad = np.zeros((chunk, codes.shape[1]), np.int32)
        pad[: len(c)] = c
        eta, mean = _eta_mean_of_codes(params, leaf_table, jnp.asarray(pad), link=link, plan=plan)
        eta = np.asarray(eta)[:, : len(c)]
        lower, upper = _interval(_host_order(np.array(eta.T), ranks), S, link, level)
        for o, r in zip(outs, (np.asarray(mean)[: len(c)], lower, upper), strict=True):
            o.append(r)
    return tuple(np.concatenate(o, axis=-1) for o in outs)


def _gaussian_stats_of_codes(gauss, space, codes, link, level, options: GridOptions):
    """Closed-form ``(mean, lower, upper)`` of explicit layouts (see :func:`_stats_chunked`)."""
    plan = engine.plan(space.cardinalities, options.max_leaf)
    n = len(codes)
    chunk = pow2_at_least(min(max(n, 1), 2**14))
    outs = [[], [], []]
    with jax.enable_x64(True):
        gauss = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), gauss)
        leaf_table = engine.leaf_table(gauss, plan, engine.leaf_codes(plan))
        for s in range(0, n, chunk):
            c = codes[s : s + chunk]
            pad = np.zeros((chunk, codes.shape[1]), np.int32)
            pad[: len(c)] = c
            mean, m, sd = (np.asarray(a)[: len(c)] for a in _gaussian_of_codes(
                gauss, leaf_table, jnp.asarray(pad), link=link, plan=plan
            ))  # fmt: skip
            stats = (mean.astype(np.float32), *_gaussian_interval(m, sd, link, level))
            for o, r in zip(outs, stats, strict=True):
                o.append(r)
    if not n:
        return tuple(np.zeros(0, np.float32) for _ in outs)
    return tuple(np.concatenate(o) for o in outs)


def _scan_space(
    params,
    space,
    level,
    link,
    top,
    chunk_size,
    memory_budget,
    devices,
    on_chunk,
    options: GridOptions = DEFAULT_GRID,
    prefixes=None,
    gauss=None,
    argmax: bool = True,
):
    """Stream the whole space through the grid engine; returns the final reduction states.

    With ``argmax`` keeps the per-draw argmax (for ``p_best``); with ``top`` the running
    top-k by mean. With ``on_chunk`` every layout's ``(mean, lower, upper)`` is computed and
    handed to ``on_chunk(first_layout, n_layouts, (mean, lower, upper))`` for consecutive
    layouts (forbidden rows carry mean -inf); without it no interval is computed for layouts
    not kept. With ``gauss`` (the stacked float64 Gaussian of :func:`_gaussian_batch`) mean
    and interval are the closed-form ones, from a second pass over its 2 + r rows in
    float64; the draws' pass then only keeps the per-draw max (nothing is sorted), and a
    top-k is kept by the caller from ``on_chunk`` (:class:`_HostTop`).

    Returns:
        ``(argmax state or None, top-k state or None)``.
    """
    kw = dict(
        chunk_size=chunk_size,
        memory_budget=memory_budget,
        devices=devices,
        factor=_KERNEL_FACTOR,
        options=options,
        prefixes=prefixes,
    )
    if gauss is None:
        return _scan_draws(params, space, level, link, top, on_chunk, kw)
    best = None
    if argmax:
        state = engine.scan_grid(params, space, engine.per_draw_max(), **kw)
        best = engine.resolve_argmax(params, space, state, options)
    if top is not None:
        raise ValueError("closed-form scoring ranks the top rows on the host (_HostTop)")
    if on_chunk is None:
        return best, None

    def collect(start, n, out):  # (steps, 3, C) float64
        out = np.asarray(out[-1])
        mean, m, sd = np.moveaxis(out, 1, 0).reshape(3, -1)[:, :n]
        on_chunk(start, n, (mean.astype(np.float32), *_gaussian_interval(m, sd, link, level)))

    with jax.enable_x64(True):
        g = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), gauss)
        stats = engine.compose(engine.gaussian_stats(link, GAUSS_HERMITE_NODES))
        engine.scan_grid(g, space, stats, on_chunk=collect, **kw)
    return best, None


def _scan_draws(params, space, level, link, top, on_chunk, kw):
    """:func:`_scan_space` from the draws: the per-draw max, the top-k by the draws' mean
    CTR, and each chunk's eta order statistics (sorted on the host on CPU)."""
    S = int(params.intercept.shape[0])
    ranks = _ranks(S, level)
    host_sort = engine.platform_of(kw["devices"]) in kw["options"].host_sort_platforms
    parts = [engine.per_draw_max()]
    if top is not None:
        parts.append(engine.top_k(int(top), link))
    if on_chunk is not None:
        parts.append(engine.mean_ctr(link))
        # on CPU the rows are sorted on the host, see _host_order
        parts.append(engine.eta_rows() if host_sort else engine.order_statistics(ranks))

    def collect(first, n, out):
        mean, e = out[-2], out[-1]
        mean = np.asarray(mean).reshape(-1)[:n]
        if host_sort:  # (steps, C, S): one copy to a writable (n, S), sorted in place
            order = _host_order(np.array(np.asarray(e).reshape(-1, S)[:n]), ranks)
        else:  # (steps, 4, C)
            e = np.asarray(e)
            order = np.moveaxis(e, 1, 0).reshape(e.shape[1], -1)[:, :n]
        on_chunk(first, n, (mean, *_interval(order, S, link, level)))

    state = engine.scan_grid(
        params, space, engine.compose(*parts), on_chunk=None if on_chunk is None else collect, **kw
    )
    best = engine.resolve_argmax(params, space, state[0], kw["options"])
    return best, (state[1] if top is not None else None)


# ---------------------------------------------------------------------------- results
def _index_of(space: LayoutSpace, codes: np.ndarray) -> list[int]:
    """Exact Python-int indices of a code array (any space size)."""
    return [space.index_of_codes(row) for row in codes]


def _p_best_lookup(space: LayoutSpace, best_codes: np.ndarray):
    """``{index: share of draws}`` of the per-draw argmax layouts."""
    counts = Counter(_index_of(space, best_codes))
    S = len(best_codes)
    return {i: c / S for i, c in counts.items()}


def _p_best_of(space: LayoutSpace, codes: np.ndarray, lookup: dict) -> np.ndarray:
    """``p_best`` of each row of ``codes`` from :func:`_p_best_lookup` (vectorised)."""
    if space.size > 2**63 - 1:
        return np.array([lookup.get(i, 0.0) for i in _index_of(space, codes)], np.float64)
    out = np.zeros(len(codes), np.float64)
    if not lookup or not len(codes):
        return out
    keys = np.array(sorted(lookup), np.int64)
    vals = np.array([lookup[i] for i in sorted(lookup)], np.float64)
    idx = space.indices(codes)
    pos = np.minimum(np.searchsorted(keys, idx), len(keys) - 1)
    hit = keys[pos] == idx
    out[hit] = vals[pos[hit]]
    return out


@dataclass(frozen=True, eq=False)
class GridScores:
    """Scores of (some of) the allowed layouts of a space.

    Attributes:
        space: the scored :class:`~layoutopt.model.space.LayoutSpace`.
        codes: ``(n, K)`` int32 variant codes of the scored layouts.
        mean: ``(n,)`` posterior mean CTR.
        lower: ``(n,)`` lower end of the equal-tailed ``level`` credible interval of CTR.
        upper: ``(n,)`` upper end.
        p_best: ``(n,)`` share of draws in which the layout is the best allowed layout of
            the whole space.
        level: credible level of the interval.
        num_draws: number of posterior draws S.
        num_scored: number of allowed layouts scored (the whole space; ``n`` may be fewer
            when only the top rows were kept).
        best_codes: ``(S, K)`` the per-draw best layout.
    """

    space: LayoutSpace
    codes: np.ndarray
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    p_best: np.ndarray
    level: float
    num_draws: int
    num_scored: int
    best_codes: np.ndarray

    def __len__(self) -> int:
        return len(self.mean)

    def to_pandas(self) -> pd.DataFrame:
        """One row per layout, sorted by posterior mean CTR, highest first.

        Returns:
            DataFrame with columns ``index``, one label column per component, ``mean``,
            ``lower``, ``upper``, ``p_best``.
        """
        df = self.space.frame(self.codes)
        for name in _STAT_COLUMNS:
            df[name] = np.asarray(getattr(self, name), dtype=np.float64)
        # highest mean first; equal means keep index order (the rows are in index order)
        order = np.argsort(-df["mean"].to_numpy(), kind="stable")
        return df.iloc[order].reset_index(drop=True)

    def top(self, k: int) -> pd.DataFrame:
        """The ``k`` layouts with the highest posterior mean CTR (as :meth:`to_pandas`)."""
        if k < 0:
            raise ValueError(f"k must be non-negative, got {k}")
        return self.to_pandas().head(k).reset_index(drop=True)

    def to_parquet(self, path: str | Path) -> None:
        """Write :meth:`to_pandas` to a Parquet file atomically (temp file, then rename)."""
        df = self.to_pandas()
        _atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))

    def __repr__(self) -> str:
        return (
            f"GridScores({len(self)} of {self.num_scored} allowed layouts, "
            f"S={self.num_draws}, level={self.level})"
        )


def _atomic_write(path, write) -> None:
    with atomic_path(path) as tmp:
        write(tmp)


def _resolve(posterior: Posterior, space: LayoutSpace | None):
    if not isinstance(posterior, Posterior):
        raise ValueError(f"expected a Posterior, got {type(posterior).__name__}")
    space = posterior.space if space is None else space
    if space != posterior.space:
        raise ValueError(
            f"space {space!r} differs from the space the posterior was fitted on "
            f"{posterior.space!r}"
        )
    posterior.check_finite()
    params = engine.as_params(posterior.params)
    engine.check_params(params, space)
    return space, params, posterior.prior.link


def _gaussian_batch(posterior: Posterior, method: str):
    """The stacked float64 Gaussian rows to score with, or None for the draws.

    ``"auto"`` uses the Gaussian when the posterior carries one (Laplace fits): exact
    under the Laplace approximation, no Monte Carlo error, and no sort; ``"gaussian"``
    insists on it; ``"draws"`` always uses the draws (the empirical mean and quantiles).
    """
    if method not in SCORING_METHODS:
        raise ValueError(f"method={method!r} is not valid; valid: {SCORING_METHODS}")
    gauss = posterior.gaussian
    if method == "draws" or (method == "auto" and gauss is None):
        return None
    if gauss is None:
        raise ValueError(
            f"method='gaussian' needs a Laplace posterior; this one is a {posterior.method} "
            "fit without a Gaussian: use method='draws' or 'auto'"
        )
    return gauss.stacked()


def _check_level(level: float) -> float:
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    return float(level)


# ------------------------------------------------------------------------- public API
def score_grid(
    posterior: Posterior,
    space: LayoutSpace | None = None,
    top: int | None = None,
    level: float = 0.9,
    chunk_size: int | None = None,
    devices=None,
    *,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    grid_options: GridOptions = DEFAULT_GRID,
    segment: dict | None = None,
    method: str = "auto",
) -> GridScores:
    """Score every allowed layout of the space under the posterior.

    Args:
        posterior: the fitted :class:`~layoutopt.infer.posterior.Posterior` (S draws).
        space: the space to score; defaults to (and must equal) ``posterior.space``.
        top: keep only the ``top`` layouts with the highest posterior mean CTR (a running
            top-k merged across chunks; memory O(top + chunk)). ``None`` keeps every allowed
            layout, which is refused above ``MAX_FULL_GRID`` layouts.
        level: credible level of the equal-tailed interval ``[lower, upper]``.
        chunk_size: layouts per kernel call; by default sized so that about
            ``S * chunk * 4 bytes * 6`` fits ``memory_budget``.
        devices: devices to shard each chunk's layout axis over (default: all visible).
        memory_budget: bytes of device memory one chunk may use (default 256 MiB).
        grid_options: tunables of the grid engine (:class:`layoutopt.score.grid.GridOptions`);
            results do not depend on them.
        segment: ``{context variable: value}`` to score one segment of a space with
            segments; ``None`` scores the traffic mix observed (CTR averaged over segments
            with their impression shares; see :mod:`layoutopt.score.mix`).
        method: how mean and interval are computed: ``"auto"`` (default) uses the Gaussian
            of a Laplace posterior in closed form (exact under the Laplace approximation,
            no Monte Carlo error, no sort of the draws; the fastest) and the draws
            otherwise; ``"gaussian"`` insists on the closed form; ``"draws"`` always uses
            the S draws (empirical mean and quantiles, as for NUTS/SVI). ``p_best`` always
            comes from the draws. The traffic mix (``segment=None`` with segments) is
            scored from the draws.

    Returns:
        :class:`GridScores`; ``p_best`` is always relative to the whole space.

    Raises:
        ValueError: for a mismatched space, a bad level or top, ``top=None`` on a space
            too large to hold in memory, a non-finite posterior, or an enumeration of more
            than ``limits.MAX_GRID_WORK`` draw-layouts (refused before it starts).

    Examples:
        >>> grid = score_grid(post, top=10)               # doctest: +SKIP
        >>> grid.to_pandas()[["index", "mean", "p_best"]]  # doctest: +SKIP
    """
    posterior, mix = segment_view(posterior, segment)
    if mix:
        return _score_grid_mix(posterior, space, top, level)
    space, params, link = _resolve(posterior, space)
    level = _check_level(level)
    gauss = _gaussian_batch(posterior, method)
    if top is not None:
        if int(top) != top or top <= 0:
            raise ValueError(f"top must be a positive integer or None, got {top!r}")
        top = int(min(top, space.num_allowed))
        if top > MAX_FULL_GRID:
            raise ValueError(
                f"top={top} is more rows than MAX_FULL_GRID={MAX_FULL_GRID} to hold in "
                "memory; pass a smaller top, or stream every row with score_grid_to_parquet()"
            )
    elif space.num_allowed > MAX_FULL_GRID:
        raise ValueError(
            f"the space has {space.num_allowed} allowed layouts, more than MAX_FULL_GRID="
            f"{MAX_FULL_GRID} rows to hold in memory; pass top=k to keep the k best, or stream "
            "every row to disk with score_grid_to_parquet()"
        )
    check_grid_work(
        space.num_allowed,
        params.intercept.shape[0],
        "scoring",
        "use best_layout() (`layoutopt best`), which searches with the optimiser",
    )
    pieces: list = []

    def collect(start, n_valid, out):
        pieces.append((start, n_valid, out))

    # closed form with top=k: the chunks' 3 numbers per layout cost less to rank on the host
    # than a device top-k per step (lax.top_k, measured)
    host_top = None if gauss is None or top is None else _HostTop(space, top)
    argmax, top_state = _scan_space(
        params,
        space,
        level,
        link,
        None if host_top else top,
        chunk_size,
        memory_budget,
        devices,
        host_top or (collect if top is None else None),
        grid_options,
        gauss=gauss,
    )
    best_codes = np.asarray(argmax.best_codes)
    lookup = _p_best_lookup(space, best_codes)
    if host_top is not None:
        codes, mean, lower, upper = host_top.rows()
    elif top is None:
        codes, mean, lower, upper = [], [], [], []
        for start, n_valid, (m, lo, hi) in pieces:
            keep = np.isfinite(m)
            c = space.codes_range(start, n_valid)
            codes.append(c[keep])
            mean.append(m[keep])
            lower.append(lo[keep])
            upper.append(hi[keep])
        codes = np.concatenate(codes)
        mean, lower, upper = (np.concatenate(a) for a in (mean, lower, upper))
    else:
        # the interval only for the k kept layouts: their eta over all draws, exactly
        mean = np.asarray(top_state.top_mean)
        keep = np.isfinite(mean)
        codes = np.asarray(top_state.top_codes)[keep]
        mean = mean[keep]
        _, lower, upper = _stats_chunked(
            params, space, codes, link, level, options=grid_options, gauss=gauss
        )
        order = np.lexsort((_sortable_index(space, codes), -mean))
        codes, mean, lower, upper = codes[order], mean[order], lower[order], upper[order]
    p_best = _p_best_of(space, codes, lookup)
    return GridScores(
        space=space,
        codes=codes,
        mean=mean,
        lower=lower,
        upper=upper,
        p_best=p_best,
        level=level,
        num_draws=int(params.intercept.shape[0]),
        num_scored=space.num_allowed,
        best_codes=best_codes,
    )


class _HostTop:
    """Running top-k of streamed ``(mean, lower, upper)`` chunks by mean, on the host.

    Chunks arrive in index order, so ties go to the layout seen first (lowest index), as
    in :func:`layoutopt.score.grid.top_k`. Memory O(k + chunk).
    """

    def __init__(self, space: LayoutSpace, k: int):
        self.space, self.k, self.seen = space, int(k), 0
        K = space.num_components
        self.kept = (np.zeros(0, np.float32), np.zeros(0, np.int64), np.zeros((0, K), np.int32))
        self.bounds = (np.zeros(0, np.float32), np.zeros(0, np.float32))

    def __call__(self, start, n, out):
        m, lo, hi = out
        at = np.flatnonzero(np.isfinite(m))
        if len(at) > self.k:  # all values tied with the k-th largest stay candidates
            at = at[m[at] >= np.partition(m[at], len(at) - self.k)[len(at) - self.k]]
        codes = self.space.codes_range(start, n)[at]
        mean = np.concatenate([self.kept[0], m[at]])
        seq = np.concatenate([self.kept[1], self.seen + at])
        keep = np.lexsort((seq, -mean))[: self.k]
        self.kept = (mean[keep], seq[keep], np.concatenate([self.kept[2], codes])[keep])
        self.bounds = tuple(
            np.concatenate([b, x[at]])[keep] for b, x in zip(self.bounds, (lo, hi), strict=True)
        )
        self.seen += n

    def rows(self):
        """``(codes, mean, lower, upper)`` of the kept layouts, highest mean first."""
        return self.kept[2], self.kept[0], *self.bounds


def _score_grid_mix(posterior: Posterior, space, top, level) -> GridScores:
    """:func:`score_grid` under the traffic mix of a posterior with segment terms."""
    space = posterior.space if space is None else space
    if space != posterior.space:
        raise ValueError(
            f"space {space!r} differs from the space the posterior was fitted on "
            f"{posterior.space!r}"
        )
    level = _check_level(level)
    if top is not None and (int(top) != top or top <= 0):
        raise ValueError(f"top must be a positive integer or None, got {top!r}")
    scan = scan_mix(posterior, space, level)
    codes, mean, lower, upper = scan.codes, scan.mean, scan.lower, scan.upper
    if top is not None:
        keep = np.lexsort((np.arange(len(mean)), -mean))[: int(top)]
        keep = np.sort(keep)
        codes, mean, lower, upper = codes[keep], mean[keep], lower[keep], upper[keep]
    p_best = _p_best_of(space, codes, _p_best_lookup(space, scan.best_codes))
    return GridScores(
        space=space,
        codes=codes,
        mean=mean,
        lower=lower.astype(np.float32),
        upper=upper.astype(np.float32),
        p_best=p_best,
        level=level,
        num_draws=posterior.num_draws,
        num_scored=space.num_allowed,
        best_codes=scan.best_codes,
    )


def _sortable_index(space: LayoutSpace, codes: np.ndarray) -> np.ndarray:
    # lexicographic order of codes == index order (mixed radix, last component fastest)
    if len(codes) == 0:
        return np.zeros(0, np.int64)
    return np.lexsort(codes.T[::-1]).argsort()


def score_grid_to_parquet(
    posterior: Posterior,
    path: str | Path,
    space: LayoutSpace | None = None,
    level: float = 0.9,
    chunk_size: int | None = None,
    devices=None,
    *,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    argmax_method: str = "auto",
    seed: int | None = None,
    segment: dict | None = None,
    shard: tuple[int, int] | None = None,
    method: str = "auto",
) -> int:
    """Stream the scores of every allowed layout to a Parquet file, in index order.

    Two passes: the per-draw argmax over the whole space first (for ``p_best``, via
    :func:`layoutopt.score.optimize.argmax_codes`), then the layouts chunk by chunk, each chunk
    written as a row group. Memory does not grow with the size of the space. The file is
    written to a temporary name and renamed into place when complete.

    Args:
        posterior: the fitted posterior.
        path: output Parquet file.
        space: defaults to (and must equal) ``posterior.space``.
        level: credible level of the interval.
        chunk_size: layouts per kernel call (and per row group).
        devices: devices to shard over (default: all visible).
        memory_budget: bytes of device memory one chunk may use.
        argmax_method: method of the per-draw argmax pass (see ``argmax_codes``).
        seed: seed of that pass's random restarts (needed when it is ``"exact"`` or
            ``"hill"``, as ``"auto"`` is for spaces above ``AUTO_ENUMERATE_LIMIT``).
        segment: one segment, or ``None`` for the traffic mix (as in :func:`score_grid`).
        shard: ``(i, n)``: write only the i-th (0-based) of n contiguous slices of the index
            range, in one pass, for batch schedulers that split a grid over machines. Its
            ``p_best`` column is NaN; the slice's per-draw best layout and eta go into the
            file's metadata, and :func:`layoutopt.score.shards.merge_shards` combines the n files
            into the file an unsharded call writes (``p_best`` from the enumeration kernel;
            ``argmax_method`` and ``seed`` do not apply).
        method: ``"auto"``, ``"gaussian"`` or ``"draws"``, as in :func:`score_grid`. With
            the Gaussian the pass over the layouts carries only its 2 + r pseudo-draws.

    Returns:
        The number of rows written (the allowed layouts, of the slice with ``shard``).
    """

    posterior, mix = segment_view(posterior, segment)
    if mix and shard is not None:
        raise ValueError(
            "shard= scores one segment (segment={...}); the traffic mix is scored whole"
        )
    if mix:  # bounded by MAX_MIX_LAYOUTS, so it fits in memory
        grid = score_grid(posterior, space, level=level, method=method)
        grid.to_parquet(path)
        return len(grid)

    space, params, link = _resolve(posterior, space)
    level = _check_level(level)
    gauss = _gaussian_batch(posterior, method)
    if space.size > 2**63 - 1:
        raise ValueError("spaces beyond 2^63 layouts cannot be written with int64 indices")
    if shard is not None:
        from layoutopt.score.shards import write_shard

        return write_shard(
            posterior, path, shard, level=level, chunk_size=chunk_size, devices=devices,
            memory_budget=memory_budget, method=method,
        )  # fmt: skip
    check_grid_work(space.num_allowed, params.intercept.shape[0], "scoring", "pass top=k")
    check_argmax_work(params, space, argmax_method, seed, "P(best)")
    best = argmax_codes(
        params, space, method=argmax_method, seed=seed, chunk_size=chunk_size, devices=devices
    )
    lookup = _p_best_lookup(space, best)
    best_idx = np.array(sorted(lookup), dtype=np.int64)
    best_p = np.array([lookup[i] for i in best_idx], dtype=np.float64)
    schema, to_table = _arrow_rows(space)
    rows = 0

    def write(tmp):
        nonlocal rows
        with pq.ParquetWriter(tmp, schema) as writer:

            def on_chunk(start, n_valid, out):
                nonlocal rows
                m, lo, hi = (np.asarray(a)[:n_valid] for a in out)
                keep = np.isfinite(m)
                if not keep.any():
                    return
                idx = start + np.flatnonzero(keep).astype(np.int64)
                codes = space.codes(idx)
                pos = np.searchsorted(best_idx, idx)
                pos = np.minimum(pos, max(len(best_idx) - 1, 0))
                hit = best_idx[pos] == idx
                p = np.where(hit, best_p[pos], 0.0)
                writer.write_table(to_table(idx, codes, (m[keep], lo[keep], hi[keep], p)))
                rows += len(idx)

            _scan_space(
                params, space, level, link, None, chunk_size, memory_budget, devices, on_chunk,
                gauss=gauss, argmax=gauss is None,
            )  # fmt: skip

    _atomic_write(path, write)
    return rows


def _arrow_rows(space: LayoutSpace):
    """``(schema, to_table)`` of the streamed grid files: ``to_table(idx, codes, stats)``."""
    schema = pa.schema(
        [("index", pa.int64())]
        + [(c, pa.dictionary(pa.int32(), pa.string())) for c in space.components]
        + [(name, pa.float64()) for name in _STAT_COLUMNS]
    )
    dictionaries = [pa.array(list(v), pa.string()) for v in space.variants]

    def to_table(idx, codes, stats):
        cols = [pa.array(idx, pa.int64())]
        for k in range(space.num_components):
            cols.append(
                pa.DictionaryArray.from_arrays(pa.array(codes[:, k], pa.int32()), dictionaries[k])
            )
        cols += [pa.array(np.asarray(a, np.float64)) for a in stats]
        return pa.Table.from_arrays(cols, schema=schema)

    return schema, to_table


def _encode_frame(space: LayoutSpace, layouts) -> np.ndarray:
    """``(n, K)`` codes of a frame with one label column per component (vectorised)."""
    if isinstance(layouts, pd.DataFrame):
        df = layouts
    else:
        try:
            df = pd.DataFrame(list(layouts) if not isinstance(layouts, dict) else layouts)
        except Exception as err:  # noqa: BLE001 - re-raised as a clear ValueError
            raise ValueError(f"layouts must be a DataFrame or list of dicts: {err}") from None
    return layout_codes(df, space, source="layouts")


def score_layouts(
    posterior: Posterior,
    space: LayoutSpace | None,
    layouts,
    level: float = 0.9,
    *,
    best_codes: np.ndarray | None = None,
    argmax_method: str = "auto",
    seed: int | None = None,
    segment: dict | None = None,
    method: str = "auto",
) -> pd.DataFrame:
    """Score given layouts: the same columns as :meth:`GridScores.to_pandas`.

    Args:
        posterior: the fitted posterior.
        space: defaults to (and must equal) ``posterior.space``.
        layouts: DataFrame (or list of ``{component: label}`` dicts) with one label column
            per component; other columns are ignored.
        level: credible level of the interval.
        best_codes: optional ``(S, K)`` per-draw argmax layouts already computed (e.g.
            ``GridScores.best_codes``); otherwise computed with ``argmax_method``.
        argmax_method: method of the per-draw argmax over the whole space for ``p_best``.
        seed: seed of that argmax's random restarts (needed when it is ``"exact"`` or
            ``"hill"``, as ``"auto"`` is for spaces above ``AUTO_ENUMERATE_LIMIT``).
        segment: one segment, or ``None`` for the traffic mix (as in :func:`score_grid`).
        method: ``"auto"``, ``"gaussian"`` or ``"draws"``, as in :func:`score_grid`.

    Returns:
        DataFrame in the input's row order with ``index``, the component labels, ``mean``,
        ``lower``, ``upper`` and ``p_best`` (probability of being the best layout of the
        whole space).

    Raises:
        ValueError: naming the column and value of an unknown variant, a missing component
            column, or a forbidden layout.
    """
    posterior, mix = segment_view(posterior, segment)
    if mix:
        space = posterior.space if space is None else space
        level = _check_level(level)
        codes = _encode_frame(space, layouts)
        if best_codes is None:
            best_codes = scan_mix(posterior, space, level).best_codes
        mean, lower, upper = mix_stats(posterior, codes, level)
    else:
        space, params, link = _resolve(posterior, space)
        level = _check_level(level)
        gauss = _gaussian_batch(posterior, method)
        codes = _encode_frame(space, layouts)
        if best_codes is None:
            check_argmax_work(params, space, argmax_method, seed, "P(best)")
            best_codes = argmax_codes(params, space, method=argmax_method, seed=seed)
        if len(codes):
            mean, lower, upper = _stats_chunked(params, space, codes, link, level, gauss=gauss)
        else:
            mean = lower = upper = np.zeros(0)
    lookup = _p_best_lookup(space, np.asarray(best_codes))
    df = space.frame(codes)
    df["mean"] = np.asarray(mean, np.float64)
    df["lower"] = np.asarray(lower, np.float64)
    df["upper"] = np.asarray(upper, np.float64)
    df["p_best"] = _p_best_of(space, codes, lookup)
    return df


class BestLayout(NamedTuple):
    """The chosen layout and its posterior summary.

    Attributes:
        layout: ``{component: variant label}``.
        index: its mixed-radix index (Python int).
        mean: posterior mean CTR.
        lower: lower end of the ``level`` credible interval of CTR.
        upper: upper end.
        p_best: share of draws in which it is the best allowed layout of the whole space.
        exact: True when the layout provably has the highest posterior mean CTR (the space
            was enumerated); False for the candidate search used on huge spaces.
    """

    layout: dict
    index: int
    mean: float
    lower: float
    upper: float
    p_best: float
    exact: bool


def best_layout(
    posterior: Posterior,
    space: LayoutSpace | None = None,
    level: float = 0.9,
    *,
    enumerate_limit: int = AUTO_ENUMERATE_LIMIT,
    num_candidates: int = 8,
    devices=None,
    seed: int | None = None,
    segment: dict | None = None,
    method: str = "auto",
) -> BestLayout:
    """The allowed layout with the highest posterior mean CTR.

    Rule: maximise the posterior mean click-through ``(1/S) sum_s inv_link(eta_s(x))`` (the
    layout with the highest expected value; ties go to the lowest index).

    Spaces up to ``enumerate_limit`` layouts are scored exhaustively (exact). Larger spaces
    use a candidate search, since the highest-mean-CTR layout is not in general the argmax of
    the posterior mean eta (CTR is non-linear in eta): candidates are the exact argmax of the
    posterior-mean eta, the exact per-draw argmaxes (branch and bound), their posterior mean
    CTR is evaluated exactly over all draws, and the best is refined by coordinate ascent on
    the posterior mean CTR (one component at a time, all its variants, until no move
    improves). The result is then a local optimum of the true objective that is at least as
    good as every candidate, but not proven global (``exact=False``). ``p_best`` is exact in
    both cases (share of draws whose exact argmax is the chosen layout).

    Args:
        posterior: the fitted posterior.
        space: defaults to (and must equal) ``posterior.space``.
        level: credible level of the interval.
        enumerate_limit: largest space size scored exhaustively.
        num_candidates: distinct per-draw argmaxes kept as candidates (the most frequent).
        devices: devices to shard enumeration over (default: all visible).
        seed: seed of the candidate search's random restarts; needed only for spaces above
            ``enumerate_limit`` (the enumeration is exact and not random).
        segment: the best layout for one segment ``{context variable: value}``; ``None``
            gives the one layout best for the traffic mix observed (highest mean CTR
            averaged over segments with their impression shares; exact, by enumeration).
        method: how mean and interval are computed, as in :func:`score_grid` (the Gaussian
            closed form for Laplace fits by default), so the pick and its numbers agree
            with :func:`score_grid` and :func:`score_layouts`.

    Returns:
        :class:`BestLayout`.
    """
    posterior, mix = segment_view(posterior, segment)
    if mix:  # exact: the mix is always enumerated
        return _best_of_grid(score_grid(posterior, space, top=1, level=level, method=method))
    space, params, link = _resolve(posterior, space)
    level = _check_level(level)
    gauss = _gaussian_batch(posterior, method)
    if space.size <= enumerate_limit:
        return _best_of_grid(
            score_grid(posterior, space, top=1, level=level, devices=devices, method=method)
        )
    if seed is None:
        raise ValueError(
            f"the space has {space.size} layouts, more than enumerate_limit={enumerate_limit}: "
            "best_layout searches per-draw argmaxes from random restarts; pass seed="
        )
    seed_draws, seed_mean = split_seed(seed, 2)
    check_argmax_work(
        params,
        space,
        "exact",
        seed_draws,
        "best_layout",
        "propose(..., method='hill') gives an approximate answer",
    )
    best_codes = argmax_codes(params, space, method="exact", seed=seed_draws)
    lookup = _p_best_lookup(space, best_codes)
    mean_params = jax.tree.map(lambda a: jnp.mean(a, axis=0), params)
    x_mean, _, _ = argmax_layout(mean_params, space, method="exact", seed=seed_mean)
    uniq, counts = np.unique(best_codes, axis=0, return_counts=True)
    cands = [x_mean] + list(uniq[np.argsort(-counts, kind="stable")][:num_candidates])
    cands = np.unique(np.asarray(cands, np.int32), axis=0)
    mean, _, _ = _stats_chunked(params, space, cands, link, level, gauss=gauss)
    x = cands[int(np.argmax(mean))]
    x = _coordinate_ascent(params, space, x, link, level, gauss)
    mean, lower, upper = _stats_chunked(params, space, x[None], link, level, gauss=gauss)
    index = _index_of(space, x[None])[0]
    return BestLayout(
        space.decode(x),
        index,
        float(mean[0]),
        float(lower[0]),
        float(upper[0]),
        float(lookup.get(index, 0.0)),
        False,
    )


def _best_of_grid(grid: GridScores) -> BestLayout:
    """The top row of an enumerated ``score_grid(top=1)`` as an exact :class:`BestLayout`."""
    codes = grid.codes[0]
    return BestLayout(
        grid.space.decode(codes),
        _index_of(grid.space, codes[None])[0],
        float(grid.mean[0]),
        float(grid.lower[0]),
        float(grid.upper[0]),
        float(grid.p_best[0]),
        True,
    )


def _coordinate_ascent(params, space, x, link, level, gauss, max_sweeps: int = 50) -> np.ndarray:
    """Single-component moves that raise the posterior mean CTR, until none does."""
    x = np.array(x, np.int32)
    cur, _, _ = _stats_chunked(params, space, x[None], link, level, gauss=gauss)
    cur = float(cur[0])
    for _ in range(max_sweeps):
        moved = False
        for k, n in enumerate(space.cardinalities):
            cand = np.tile(x, (n, 1))
            cand[:, k] = np.arange(n)
            ok = space.allowed_mask(cand)
            m, _, _ = _stats_chunked(params, space, cand, link, level, gauss=gauss)
            m = np.where(ok, m, -np.inf)
            v = int(np.argmax(m))
            if m[v] > cur:
                x, cur, moved = cand[v], float(m[v]), True
        if not moved:
            break
    return x
