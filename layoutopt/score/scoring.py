"""Scores of given layouts and the best layout; the public entry points of scoring.

:func:`score_layouts` scores explicit layouts with the grid's own arithmetic
(:func:`layoutopt.score.stream.stats_of_codes`), :func:`best_layout` picks the layout of
highest posterior mean CTR (by enumeration, or by a candidate search on huge spaces). The
scores of every layout (:func:`score_grid`, :func:`score_grid_to_parquet`,
:class:`GridScores`) live in :mod:`layoutopt.score.grid_scores` and are re-exported here, so
``layoutopt.score.scoring`` names the whole scoring API.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from layoutopt.data.observations import layout_codes
from layoutopt.infer.posterior import Posterior
from layoutopt.model.space import LayoutSpace
from layoutopt.score.evidence import no_evidence
from layoutopt.score.grid_scores import (
    MAX_FULL_GRID,
    GridScores,
    score_grid,
    score_grid_to_parquet,
)
from layoutopt.score.intervals import GAUSS_HERMITE_NODES
from layoutopt.score.optimize import (
    AUTO_ENUMERATE_LIMIT,
    argmax_codes,
    argmax_layout,
    check_argmax_work,
)
from layoutopt.score.rows import index_of, p_best_lookup, p_best_of
from layoutopt.score.stream import stats_of_codes
from layoutopt.score.target import (
    SCORING_METHODS,
    Target,
    check_level,
    scoring_target,
    segment_view,
)
from layoutopt.score.types import BestLayout
from layoutopt.util.seeds import split_seed

__all__ = [
    "GAUSS_HERMITE_NODES",
    "MAX_FULL_GRID",
    "SCORING_METHODS",
    "BestLayout",
    "GridScores",
    "best_layout",
    "score_grid",
    "score_grid_to_parquet",
    "score_layouts",
    "best_of_grid",
]


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
    layouts,
    *legacy,
    level: float = 0.9,
    space: LayoutSpace | None = None,
    best_codes: np.ndarray | None = None,
    argmax_method: str = "auto",
    seed: int | None = None,
    segment: dict | None = None,
    method: str = "auto",
) -> pd.DataFrame:
    """Score given layouts: the same columns as :meth:`GridScores.to_pandas`.

    ``score_layouts(post, frame)``; the form of earlier releases,
    ``score_layouts(post, space_or_None, frame[, level])``, is still read.

    Args:
        posterior: the fitted posterior.
        layouts: DataFrame (or list of ``{component: label}`` dicts) with one label column
            per component; other columns are ignored.
        legacy: ``(layouts[, level])`` after a space (or None) in second place, the order
            of earlier releases.
        level: credible level of the interval.
        space: defaults to (and must equal) ``posterior.space``.
        best_codes: optional ``(S, K)`` per-draw argmax layouts already computed (e.g.
            ``GridScores.best_codes``); otherwise computed with ``argmax_method``.
        argmax_method: method of the per-draw argmax over the whole space for ``p_best``.
        seed: seed of that argmax's random restarts (needed when it is ``"exact"`` or
            ``"hill"``, as ``"auto"`` is for spaces above ``AUTO_ENUMERATE_LIMIT``).
        segment: one segment, or ``None`` for the traffic mix (as in :func:`score_grid`; its
            per-draw best comes from an engine pass over the mixture CTR).
        method: ``"auto"``, ``"gaussian"`` or ``"draws"``, as in :func:`score_grid`.

    Returns:
        DataFrame in the input's row order with ``index``, the component labels, ``mean``,
        ``lower``, ``upper`` and ``p_best`` (probability of being the best layout of the
        whole space).

    Raises:
        ValueError: naming the column and value of an unknown variant, a missing component
            column, or a forbidden layout.
    """
    if layouts is None or isinstance(layouts, LayoutSpace):
        if not 1 <= len(legacy) <= 2 or space is not None:
            raise ValueError(
                "score_layouts(posterior, layouts, level=..., space=...): a space in second "
                "place takes the layouts third (and at most a level fourth)"
            )
        space, layouts, level = layouts, legacy[0], legacy[1] if len(legacy) == 2 else level
    elif legacy:
        raise ValueError(
            f"score_layouts takes (posterior, layouts) and keywords; got {len(legacy)} more "
            "positional argument(s): pass level= and space= by name"
        )
    space, target = scoring_target(posterior, space, segment, method)
    level = check_level(level)
    codes = _encode_frame(space, layouts)
    if best_codes is None:
        best_codes = target.best(space, method=argmax_method, seed=seed, what="P(best)")
    mean, lower, upper = stats_of_codes(target, space, codes, level)
    lookup = p_best_lookup(space, np.asarray(best_codes))
    df = space.frame(codes)
    df["mean"] = np.asarray(mean, np.float64)
    df["lower"] = np.asarray(lower, np.float64)
    df["upper"] = np.asarray(upper, np.float64)
    df["p_best"] = p_best_of(space, codes, lookup)
    return df


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
    view, mix = segment_view(posterior, segment)
    found = posterior.diagnostics
    if mix:  # the mixture CTR has no eta to search: exact, by enumeration
        return best_of_grid(
            score_grid(posterior, space, top=1, level=level, devices=devices, method=method),
            found,
        )
    space, target = scoring_target(view, space, None, method)
    level = check_level(level)
    if space.size <= enumerate_limit:
        return best_of_grid(
            score_grid(view, space, top=1, level=level, devices=devices, method=method), found
        )
    if seed is None:
        raise ValueError(
            f"the space has {space.size} layouts, more than enumerate_limit={enumerate_limit}: "
            "best_layout searches per-draw argmaxes from random restarts; pass seed="
        )
    seed_draws, seed_mean = split_seed(seed, 2)
    params = target.params
    check_argmax_work(
        params,
        space,
        "exact",
        seed_draws,
        "best_layout",
        "propose(..., method='hill') gives an approximate answer",
    )
    best_codes = argmax_codes(params, space, method="exact", seed=seed_draws)
    lookup = p_best_lookup(space, best_codes)
    mean_params = jax.tree.map(lambda a: jnp.mean(a, axis=0), params)
    x_mean, _, _ = argmax_layout(mean_params, space, method="exact", seed=seed_mean)
    uniq, counts = np.unique(best_codes, axis=0, return_counts=True)
    cands = [x_mean] + list(uniq[np.argsort(-counts, kind="stable")][:num_candidates])
    cands = np.unique(np.asarray(cands, np.int32), axis=0)
    mean, _, _ = stats_of_codes(target, space, cands, level)
    x = cands[int(np.argmax(mean))]
    x = _coordinate_ascent(target, space, x, level)
    mean, lower, upper = stats_of_codes(target, space, x[None], level)
    index = index_of(space, x[None])[0]
    p_best = float(lookup.get(index, 0.0))
    return BestLayout(
        space.decode(x),
        index,
        float(mean[0]),
        float(lower[0]),
        float(upper[0]),
        p_best,
        False,
        no_evidence(p_best, space.num_allowed, len(best_codes), found),
    )


def best_of_grid(grid: GridScores, diagnostics=None) -> BestLayout:
    """The top row of an enumerated ``score_grid(top=1)`` (in memory or distributed) as an
    exact :class:`BestLayout`, with :func:`~layoutopt.score.evidence.no_evidence` over the
    layouts scored (``diagnostics``: the fit's, for its ``scales_at_floor``)."""
    codes = grid.codes[0]
    p_best = float(grid.p_best[0])
    return BestLayout(
        grid.space.decode(codes),
        index_of(grid.space, codes[None])[0],
        float(grid.mean[0]),
        float(grid.lower[0]),
        float(grid.upper[0]),
        p_best,
        True,
        no_evidence(p_best, grid.num_scored, grid.num_draws, diagnostics),
    )


def _coordinate_ascent(target: Target, space, x, level, max_sweeps: int = 50) -> np.ndarray:
    """Single-component moves that raise the posterior mean CTR, until none does."""
    x = np.array(x, np.int32)
    cur, _, _ = stats_of_codes(target, space, x[None], level)
    cur = float(cur[0])
    for _ in range(max_sweeps):
        moved = False
        for k, n in enumerate(space.cardinalities):
            cand = np.tile(x, (n, 1))
            cand[:, k] = np.arange(n)
            ok = space.allowed_mask(cand)
            m, _, _ = stats_of_codes(target, space, cand, level)
            m = np.where(ok, m, -np.inf)
            v = int(np.argmax(m))
            if m[v] > cur:
                x, cur, moved = cand[v], float(m[v]), True
        if not moved:
            break
    return x
