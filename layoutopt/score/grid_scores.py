"""Scores of every layout of a space: :func:`score_grid` in memory, streamed to Parquet.

For S posterior draws and a layout x the scorer computes::

    ctr_s(x) = inv_link(eta_s(x)),   eta_s(x) = b0_s + sum_k m_k,s[x_k] + sum_{k<l} p_kl,s[x_k, x_l]
    mean(x)  = (1/S) sum_s ctr_s(x)
    lower(x), upper(x) = the (1-level)/2 and (1+level)/2 quantiles of ctr_s(x) over s
                         (linear interpolation between order statistics, as numpy's default)
    p_best(x) = (1/S) #{s : x = argmax over allowed layouts y of eta_s(y)}

(for the traffic mix, ``ctr_s(x)`` is the mixture CTR and ``p_best`` ranks it; see
:mod:`layoutopt.score.target`). The space is streamed through the grid engine
(:mod:`layoutopt.score.grid`, by :func:`layoutopt.score.stream.scan_space`): device memory is
O(S x chunk) whatever the size of the space. With ``top=k`` no interval is computed for
layouts not kept: the k kept layouts' intervals come from a second, tiny pass over their
codes. With several devices the prefix axis of each step is sharded over a 1-D mesh of all
of them (``jax.sharding``); results do not depend on the number of devices.

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

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from layoutopt.infer.posterior import Posterior
from layoutopt.model.space import LayoutSpace
from layoutopt.score.grid import DEFAULT_GRID, DEFAULT_MEMORY_BUDGET, GridOptions
from layoutopt.score.rows import (
    STAT_COLUMNS,
    arrow_rows,
    p_best_lookup,
    p_best_of,
    sortable_index,
)
from layoutopt.score.shards import write_shard
from layoutopt.score.stream import scan_space, stats_of_codes
from layoutopt.score.target import Target, check_level, scoring_target
from layoutopt.util.io import atomic_path
from layoutopt.util.limits import check_grid_work

__all__ = [
    "MAX_FULL_GRID",
    "GridScores",
    "check_top",
    "score_grid",
    "score_grid_to_parquet",
    "score_rows",
]

#: ``score_grid(top=None)`` refuses spaces with more allowed layouts than this.
MAX_FULL_GRID = 10_000_000


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
        for name in STAT_COLUMNS:
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
            with their impression shares; see :mod:`layoutopt.score.target`): streamed
            through the engine like one segment, at any space size.
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
    space, target = scoring_target(posterior, space, segment, method)
    level = check_level(level)
    top = check_top(space, top)
    check_grid_work(
        space.num_allowed,
        target.num_draws * target.rows_per_draw,
        "scoring",
        "use best_layout() (`layoutopt best`), which searches with the optimiser",
    )
    codes, mean, lower, upper, argmax = score_rows(
        target,
        space,
        top,
        level,
        chunk_size=chunk_size,
        memory_budget=memory_budget,
        devices=devices,
        grid_options=grid_options,
    )
    best_codes = np.asarray(argmax.best_codes)
    return GridScores(
        space=space,
        codes=codes,
        mean=mean,
        lower=lower,
        upper=upper,
        p_best=p_best_of(space, codes, p_best_lookup(space, best_codes)),
        level=level,
        num_draws=target.num_draws,
        num_scored=space.num_allowed,
        best_codes=best_codes,
    )


def score_rows(
    target: Target,
    space: LayoutSpace,
    top: int | None,
    level: float,
    *,
    chunk_size: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    devices=None,
    grid_options: GridOptions = DEFAULT_GRID,
    prefixes: tuple[int, int] | None = None,
):
    """The rows of :func:`score_grid` over the whole space or the leaf blocks ``prefixes``.

    Args:
        target: what to score (:func:`layoutopt.score.target.scoring_target`).
        space: its space.
        top: keep the ``top`` rows of highest mean (highest first, ties: lowest index), or
            ``None`` for every allowed layout in index order.
        level: checked credible level.
        chunk_size: layouts per kernel call.
        memory_budget: bytes of device memory one chunk may use.
        devices: devices to shard each chunk over (default: all visible).
        grid_options: tunables of the grid engine.
        prefixes: ``(lo, hi)`` leaf blocks to stream (default: all); the per-draw argmax is
            then that of the slice.

    Returns:
        ``(codes, mean, lower, upper, argmax)``, ``argmax`` the
        :class:`~layoutopt.score.reductions.ArgmaxState` of the streamed range (per-draw
        best value and layout; ``best_eta`` is -inf where it has no allowed layout).
    """
    pieces: list = []
    # closed form with top=k: the chunks' 3 numbers per layout cost less to rank on the host
    # than a device top-k per step (lax.top_k, measured)
    host_top = None if target.gauss is None or top is None else _HostTop(space, top)
    collect = host_top or (None if top is not None else lambda *a: pieces.append(a))
    argmax, top_state = scan_space(
        target,
        space,
        level=level,
        top=None if host_top else top,
        on_chunk=collect,
        chunk_size=chunk_size,
        memory_budget=memory_budget,
        devices=devices,
        options=grid_options,
        prefixes=prefixes,
    )
    if host_top is not None:
        codes, mean, lower, upper = host_top.rows()
    elif top is None:
        codes, mean, lower, upper = _concat_pieces(space, pieces)
    else:
        codes, mean, lower, upper = _top_rows(target, space, top_state, level, grid_options)
    return codes, mean, lower, upper, argmax


def check_top(space: LayoutSpace, top) -> int | None:
    """``top`` as an int (at most the allowed layouts), or None; refused above MAX_FULL_GRID."""
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
    return top


def _concat_pieces(space: LayoutSpace, pieces: list):
    """``(codes, mean, lower, upper)`` of the allowed layouts of the streamed chunks."""
    codes, mean, lower, upper = [], [], [], []
    for start, n_valid, (m, lo, hi) in pieces:
        keep = np.isfinite(m)
        c = space.codes_range(start, n_valid)
        codes.append(c[keep])
        mean.append(m[keep])
        lower.append(lo[keep])
        upper.append(hi[keep])
    codes = np.concatenate(codes)
    return (codes, *(np.concatenate(a) for a in (mean, lower, upper)))


def _top_rows(target: Target, space: LayoutSpace, top_state, level, options: GridOptions):
    """The kept top-k layouts, highest mean first (ties: lowest index), with intervals.

    The interval only for the k kept layouts: their eta over all draws, exactly.
    """
    mean = np.asarray(top_state.top_mean)
    keep = np.isfinite(mean)
    codes = np.asarray(top_state.top_codes)[keep]
    mean = mean[keep]
    _, lower, upper = stats_of_codes(target, space, codes, level, options=options)
    order = np.lexsort((sortable_index(space, codes), -mean))
    return codes[order], mean[order], lower[order], upper[order]


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
        segment: one segment, or ``None`` for the traffic mix (as in :func:`score_grid`; its
            ``p_best`` comes from an enumeration of the mixture CTR, and ``shard=`` works).
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
    space, target = scoring_target(posterior, space, segment, method)
    level = check_level(level)
    if space.size > 2**63 - 1:
        raise ValueError("spaces beyond 2^63 layouts cannot be written with int64 indices")
    if shard is not None:
        return write_shard(
            posterior, path, shard, level=level, chunk_size=chunk_size, devices=devices,
            memory_budget=memory_budget, method=method, segment=segment,
        )  # fmt: skip
    check_grid_work(
        space.num_allowed, target.num_draws * target.rows_per_draw, "scoring", "pass top=k"
    )
    best = target.best(
        space, method=argmax_method, seed=seed, what="P(best)", chunk_size=chunk_size,
        devices=devices,
    )  # fmt: skip
    lookup = p_best_lookup(space, best)
    best_idx = np.array(sorted(lookup), dtype=np.int64)
    best_p = np.array([lookup[i] for i in best_idx], dtype=np.float64)
    schema, to_table = arrow_rows(space)
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

            scan_space(
                target, space, level=level, on_chunk=on_chunk, chunk_size=chunk_size,
                memory_budget=memory_budget, devices=devices, argmax=target.gauss is None,
            )  # fmt: skip

    _atomic_write(path, write)
    return rows
