"""Proposals: which layouts to test next, and with what share of the traffic.

Every strategy reads the posterior draws only through :func:`layoutopt.model.logits` (via the
optimiser and the grid scorer), so proposals, scores and the fit can never disagree.

* ``"thompson"`` -- traffic proportional to P(layout is the best), estimated by the share of
  posterior draws whose argmax it is (Thompson sampling in batch form, Hill et al. 2017).
* ``"top_two"`` -- top-two Thompson sampling (Russo 2016): a share ``beta`` goes to the leader
  of a draw, the rest to a *challenger* (the argmax of another draw, conditioned on differing
  from the leader). Spends more traffic on telling the best two apart.
* ``"ids"`` -- information-directed sampling (Russo & Van Roy 2018,
  :mod:`layoutopt.decide.ids`): at most two layouts, mixed to minimise the squared
  expected regret per unit of information about which layout is the best. Spends less
  traffic than Thompson on layouts the posterior already knows are worse.
* ``"greedy"`` -- the k layouts of highest posterior mean click-through, equal weights.
* ``"ucb"`` -- the k layouts of highest upper posterior quantile of click-through (Bayes-UCB),
  equal weights.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import jax
import numpy as np
import pandas as pd

from layoutopt.decide.design import initial_design
from layoutopt.decide.ids import ids_weights
from layoutopt.infer.posterior import Posterior
from layoutopt.model.space import LayoutSpace
from layoutopt.score.evidence import no_evidence
from layoutopt.score.mix import mix_draw_bests, segment_view
from layoutopt.score.objective import ObjectivePosterior
from layoutopt.score.optimize import argmax_codes, check_argmax_work
from layoutopt.score.scoring import score_grid
from layoutopt.score.stream import draw_values_of_codes
from layoutopt.score.target import draws_target, value_target
from layoutopt.util.limits import check_grid_work, check_seed
from layoutopt.util.seeds import split_seed

__all__ = ["propose", "STRATEGIES", "check_thompson_share", "check_variance_scale"]

STRATEGIES = ("thompson", "top_two", "ids", "greedy", "ucb")
#: Most allowed layouts ``strategy="ucb"`` ranks (it scores the whole grid in memory).
MAX_UCB_GRID = 10_000_000


def propose(
    posterior: Posterior,
    space: LayoutSpace | None = None,
    k: int = 8,
    strategy: str = "thompson",
    seed: int | None = None,
    exclude=None,
    num_draws: int | None = None,
    *,
    beta: float = 0.5,
    quantile: float = 0.95,
    method: str = "auto",
    segment: dict | None = None,
    explore: bool = True,
    variance_scale: float = 1.0,
    thompson_share: float = 0.0,
) -> pd.DataFrame:
    """The next batch of layouts to test, with the share of traffic each should get.

    For ``"thompson"`` the weight of a layout is the posterior probability that it is the best
    allowed layout, estimated from S posterior draws as ``#{s : argmax_x eta_s(x) = layout} / S``
    (per-draw argmax from :func:`layoutopt.score.optimize.argmax_codes`, exact for any space size
    with ``method="auto"``). Only layouts that are the argmax of at least one draw get traffic,
    so **fewer than k rows** come back when the draws agree on fewer than k layouts: giving
    traffic to a layout no draw believes in would not be Thompson sampling, and a confident
    posterior should exploit. Use ``"top_two"`` to keep exploring a runner-up, or more draws for
    a finer estimate.

    For ``"ids"`` (information-directed sampling, :mod:`layoutopt.decide.ids`) the
    candidates are the same per-draw argmax layouts; each gets its expected regret
    ``E[v(best)] - E[v(x)]`` and its information gain about the best (the variance of its
    value's mean across the draws' bests), both from the draws, and the batch goes to the
    one or two layouts whose mixture minimises the squared regret per unit of gain: at
    most two rows, however large ``k``.

    For ``"top_two"`` the weight is the exact probability of playing a layout under top-two
    Thompson sampling with the empirical posterior (the S draws): with ``p`` the P(best)
    estimate above, ``w_j = beta * p_j + (1 - beta) * p_j * sum_{i != j} p_i / (1 - p_i)``,
    because a challenger drawn by re-sampling until its argmax differs from leader ``i`` is
    ``j`` with probability ``p_j / (1 - p_i)``. No extra randomness, so no Monte Carlo noise
    on top of the draws'. When every draw has the same argmax there is no challenger among the
    draws; the challenger share then follows the per-draw argmax over the space without the
    leader (each draw's runner-up).

    In both cases the k heaviest layouts are kept and their weights renormalised to sum to 1.

    **No evidence yet.** When the posterior cannot tell layouts apart
    (:func:`layoutopt.score.evidence.no_evidence`: the leader's P(best) within twice what
    chance gives, or every learned scale at its floor), every strategy explores instead:
    ``k`` distinct allowed layouts drawn uniformly at random (as
    ``initial_design(kind="random")``), equal weights, and ``batch.attrs["no_evidence"]``
    holds the one line saying why. Ranking by noise (greedy) or by the argmax counts of a
    posterior that knows nothing (Thompson) would look like a decision and is not one.

    Args:
        posterior: posterior draws (:class:`~layoutopt.infer.posterior.Posterior`).
        space: the layout space; defaults to ``posterior.space`` and must equal it if given.
        k: most layouts to propose (>= 1).
        strategy: one of ``"thompson"``, ``"top_two"``, ``"ids"``, ``"greedy"``, ``"ucb"``.
        seed: seed for subsampling draws (``num_draws``), the optimiser's restarts and
            tie-breaking between equally weighted layouts at the k cut-off.
        exclude: layouts never to propose -- a DataFrame with the component label columns (other
            columns ignored) or, lacking them, an ``index`` column; a list of
            ``{component: label}`` dicts; or a list/array of layout indices. Thompson and
            top-two then estimate P(best) among the remaining layouts.
        num_draws: use only this many posterior draws (a seeded subsample without
            replacement); default all of them.
        beta: ``"top_two"``: probability of playing the leader (Russo's default 0.5).
        quantile: ``"ucb"``: posterior quantile of click-through to rank by, in (0.5, 1)
            (Bayes-UCB). Ranking needs the whole grid, so ``"ucb"`` is limited to
            ``MAX_UCB_GRID`` allowed layouts.
        method: optimiser for the per-draw argmax, passed to
            :func:`layoutopt.score.optimize.argmax_codes` (``"auto"``, ``"enumerate"``, ``"exact"``
            or ``"hill"``).
        segment: on a space with segments, propose for one segment ``{context variable:
            value}`` (its terms folded into the draws); ``None`` proposes for the traffic
            mix observed (P(best) and scores of the CTR averaged over segments with their
            impression shares; one grid-engine pass, see :mod:`layoutopt.score.target`).
        explore: with no evidence yet (below), explore with uniform layouts; False applies
            the strategy whatever the evidence (to study a strategy on a posterior that
            knows nothing, as the tests of its arithmetic do).
        variance_scale: read the posterior with its variance multiplied by this factor
            (posterior reshaping, Chapelle & Li 2011): every draw is moved to
            ``mean + sqrt(variance_scale) * (draw - mean)`` before the strategy sees it.
            1 (the default) is the posterior itself; below 1 the draw-based strategies
            spend less traffic on layouts the posterior already ranks below the leader
            (``experiments/README.md``, the Hill et al. setting, measures the trade). Not
            for an :class:`~layoutopt.score.objective.ObjectivePosterior`.
        thompson_share: ``"ids"``: the share of the batch given by Thompson's weights
            (P(best)), the rest by the IDS mixture: ``(1 - s) * q + s * P(best)``, so the
            batch never stops exploring where the draws still disagree. 0 (the default) is
            IDS itself; must lie in ``[0, 1)``. Rows beyond ``k`` are cut as for every
            strategy, so give ``k`` room for Thompson's layouts.

    Returns:
        DataFrame, one row per proposed layout sorted by ``weight`` descending (equal weights:
        best first for ``"greedy"``/``"ucb"``, by ``index`` otherwise): ``index``, one label
        column per component, and ``weight`` (positive, summing to 1). At most ``k`` rows;
        all distinct, allowed and outside ``exclude``. ``attrs["no_evidence"]`` is set when
        the batch explores (above).

    Raises:
        ValueError: for an unknown strategy (the message lists the valid ones), ``k < 1``, a
            ``space`` that is not the posterior's, a bad ``num_draws``, ``beta``,
            ``quantile``, ``variance_scale`` or ``thompson_share``, malformed ``exclude``
            entries (unknown component, label or index),
            an ``exclude`` that leaves no allowed layout, a seed outside ``[0, 2**32 - 1]``,
            a non-finite posterior, or work beyond the limits of ``layoutopt.util.limits``
            (greedy enumeration, exact per-draw argmax), refused before it starts.

    Examples:
        >>> batch = propose(post, k=8, strategy="thompson", seed=1)  # doctest: +SKIP
        >>> batch[["index", "weight"]].head(3)  # doctest: +SKIP

    References:
        Hill, Nassif, Liu, Iyer, Vishwanathan, *An Efficient Bandit Algorithm for Realtime
        Multivariate Optimization* (KDD 2017). Russo, *Simple Bayesian Algorithms for Best Arm
        Identification* (COLT 2016; Operations Research 2020). Chapelle and Li, *An
        Empirical Evaluation of Thompson Sampling* (NeurIPS 2011) for ``variance_scale``.
        Kaufmann, Cappé, Garivier, *On Bayesian Upper Confidence Bounds for Bandit Problems*
        (AISTATS 2012) for ``"ucb"``.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; valid strategies: {list(STRATEGIES)}")
    if seed is None:
        raise ValueError("propose is random (draw subsample, restarts, ties): pass seed=")
    if not isinstance(posterior, Posterior | ObjectivePosterior):
        raise ValueError(
            f"posterior must be a Posterior or an ObjectivePosterior, got "
            f"{type(posterior).__name__}"
        )
    if space is None:
        space = posterior.space
    elif space != posterior.space:
        raise ValueError(
            f"space {space!r} is not the space the posterior was fitted on "
            f"({posterior.space!r}); pass space=None to use the posterior's"
        )
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    k = int(k)
    if not 0.0 < beta < 1.0:
        raise ValueError(f"beta must lie in (0, 1), got {beta}")
    if not 0.5 < quantile < 1.0:
        raise ValueError(f"quantile must lie in (0.5, 1), got {quantile}")
    thompson_share = check_thompson_share(thompson_share)
    seed = check_seed(seed)
    posterior.check_finite()
    posterior = _reshaped(posterior, variance_scale)
    # one seed per use: the draw subsample and tie order, and the optimiser's restarts
    seed_rng, seed_argmax = split_seed(seed, 2)
    rng = np.random.default_rng(seed_rng)
    posterior, mix = segment_view(posterior, segment)
    posterior = _subsample(posterior, num_draws, rng)
    excluded = _exclude_codes(space, exclude)
    target = _without(space, excluded)
    # The traffic mix and an objective have no single eta: their per-draw argmax comes
    # from enumeration.
    mixed = posterior if mix else None
    params = None if mix else posterior.params

    num_draws = posterior.num_draws
    if strategy in ("thompson", "top_two", "ids"):
        best = _draw_bests(params, target, method, seed_argmax, mixed)
        codes, winner, counts = np.unique(best, axis=0, return_inverse=True, return_counts=True)
        codes, prob = codes.astype(np.int32), counts / best.shape[0]
        line = no_evidence(prob.max(), target.num_allowed, num_draws, posterior.diagnostics)
        if explore and line is not None:
            return _explore(space, target, k, rng, line)
        if strategy == "ids":
            scored = (
                value_target(mixed, target) if mix else draws_target(posterior, target, "draws")
            )
            values = draw_values_of_codes(scored, target, codes)
            best_values = values[np.arange(len(winner)), winner.reshape(-1)]
            weights = ids_weights(values, winner, best_values)
            weights = (1.0 - thompson_share) * weights + thompson_share * prob
            return _batch(space, codes, weights, k, rng)
        if strategy == "top_two":
            prob = _top_two(prob, beta)
            if len(codes) == 1 and target.num_allowed > 1:
                runner, q = _p_best(params, _without(target, codes), method, seed_argmax, mixed)
                codes = np.concatenate([codes, runner], axis=0)
                prob = np.concatenate([[beta], (1.0 - beta) * q])
        return _batch(space, codes, prob, k, rng)

    codes, p_best = _top_scores(posterior, space, excluded, k, strategy, quantile)
    line = no_evidence(p_best, target.num_allowed, num_draws, posterior.diagnostics)
    if explore and line is not None:
        return _explore(space, target, k, rng, line)
    return _batch(space, codes, np.ones(len(codes)), k, rng, ranked=True)


# --------------------------------------------------------------------------------- helpers
def _explore(space: LayoutSpace, target: LayoutSpace, k: int, rng, line: str) -> pd.DataFrame:
    """No evidence yet: ``k`` distinct allowed layouts (outside ``exclude``) drawn uniformly
    (``initial_design(kind="random")``), equal weights, the reason in ``attrs``."""
    size = min(k, target.num_allowed)
    design = initial_design(target, seed=int(rng.integers(2**32)), size=size, kind="random")
    codes = target.codes(np.asarray(design["index"], np.int64))
    batch = _batch(space, codes, np.ones(len(codes)), k, rng)
    batch.attrs["no_evidence"] = line
    return batch


def check_variance_scale(variance_scale) -> float:
    """``variance_scale`` as a float, or ValueError saying what is valid (a finite number > 0)."""
    if isinstance(variance_scale, bool) or not isinstance(variance_scale, int | float):
        raise ValueError(f"variance_scale must be a number > 0, got {variance_scale!r}")
    if not (np.isfinite(variance_scale) and variance_scale > 0):
        raise ValueError(f"variance_scale must be a finite number > 0, got {variance_scale}")
    return float(variance_scale)


def check_thompson_share(thompson_share) -> float:
    """``thompson_share`` as a float, or ValueError saying what is valid (a number in [0, 1))."""
    if isinstance(thompson_share, bool) or not isinstance(thompson_share, int | float):
        raise ValueError(f"thompson_share must lie in [0, 1), got {thompson_share!r}")
    if not 0.0 <= thompson_share < 1.0:
        raise ValueError(f"thompson_share must lie in [0, 1), got {thompson_share}")
    return float(thompson_share)


def _reshaped(posterior, variance_scale):
    """The posterior with every draw moved to ``mean + sqrt(variance_scale) * (draw - mean)``
    (all parameter arrays, along the draw axis); the posterior itself for 1."""
    if check_variance_scale(variance_scale) == 1:
        return posterior
    if isinstance(posterior, ObjectivePosterior):
        raise ValueError(
            "variance_scale applies to a Posterior's draws; an ObjectivePosterior combines "
            "several fits: reshape each of them instead, or pass variance_scale=1"
        )
    factor = float(np.sqrt(variance_scale))

    def move(a):
        a = np.asarray(a)
        mean = a.mean(axis=0, keepdims=True)
        return (mean + factor * (a - mean)).astype(a.dtype)

    return dataclasses.replace(posterior, params=jax.tree.map(move, posterior.params))


def _subsample(posterior, num_draws, rng: np.random.Generator):
    """The posterior (or objective) with a seeded subsample of ``num_draws`` draws."""
    S = posterior.num_draws
    if num_draws is None:
        return posterior
    if isinstance(num_draws, bool) or not isinstance(num_draws, int | np.integer):
        raise ValueError(f"num_draws must be an integer or None, got {num_draws!r}")
    if not 1 <= num_draws <= S:
        raise ValueError(f"num_draws must lie in [1, {S}] (the posterior has {S} draws)")
    if num_draws == S:
        return posterior
    return posterior.subsample(np.sort(rng.choice(S, size=int(num_draws), replace=False)))


def _exclude_codes(space: LayoutSpace, exclude) -> np.ndarray:
    """``(E, K)`` codes of the layouts to exclude, validated."""
    K = space.num_components
    if exclude is None:
        return np.zeros((0, K), dtype=np.int32)
    if isinstance(exclude, pd.DataFrame):
        if all(c in exclude.columns for c in space.components):
            rows = exclude[list(space.components)].astype(str).to_dict("records")
            return _encode_all(space, rows)
        if "index" in exclude.columns:
            return _codes_of_all(space, exclude["index"].tolist())
        missing = [c for c in space.components if c not in exclude.columns]
        raise ValueError(
            f"exclude: DataFrame lacks component column(s) {missing} and has no 'index' column"
        )
    if isinstance(exclude, Mapping):
        return _encode_all(space, [exclude])
    if isinstance(exclude, np.ndarray) and exclude.ndim == 1:
        exclude = exclude.tolist()
    if isinstance(exclude, str) or not isinstance(exclude, Sequence):
        raise ValueError(
            "exclude must be a DataFrame, a list of {component: label} dicts or a list of "
            f"layout indices, got {type(exclude).__name__}"
        )
    if all(isinstance(e, Mapping) for e in exclude):
        return _encode_all(space, list(exclude))
    if all(isinstance(e, int | np.integer) and not isinstance(e, bool) for e in exclude):
        return _codes_of_all(space, list(exclude))
    raise ValueError(
        "exclude entries must be all {component: label} dicts or all integer layout indices"
    )


def _encode_all(space: LayoutSpace, rows: list) -> np.ndarray:
    out = []
    for i, row in enumerate(rows):
        try:
            out.append(space.encode(row))
        except ValueError as err:
            raise ValueError(f"exclude entry #{i}: {err}") from None
    return np.asarray(out, dtype=np.int32).reshape(-1, space.num_components)


def _codes_of_all(space: LayoutSpace, indices: list) -> np.ndarray:
    out = []
    for i, ix in enumerate(indices):
        try:
            out.append(space.codes_of(int(ix)))
        except ValueError as err:
            raise ValueError(f"exclude entry #{i}: {err}") from None
    return np.asarray(out, dtype=np.int32).reshape(-1, space.num_components)


def _without(space: LayoutSpace, codes: np.ndarray) -> LayoutSpace:
    """The space with the given layouts added as forbidden (whole-layout) rules."""
    codes = np.asarray(codes)
    if codes.size == 0:
        return space
    codes = np.unique(codes[space.allowed_mask(codes)], axis=0)  # forbidden ones: no-ops
    if codes.size == 0:
        return space
    # every other part of the space (retired variants, distinct groups) is kept
    spec = space.to_dict()
    spec["forbidden"] = spec["forbidden"] + [space.decode(c) for c in codes]
    try:
        return LayoutSpace.from_dict(spec, source="exclude")
    except ValueError:
        raise ValueError(
            f"exclude removes every one of the {space.num_allowed} allowed layouts; "
            "nothing is left to propose"
        ) from None


def _draw_bests(params, space: LayoutSpace, method: str, seed: int, mixed=None) -> np.ndarray:
    """``(S, K)`` codes of every draw's best allowed layout of ``space`` (exact; ties to the
    lowest index). ``mixed``: the posterior whose traffic mix (or objective) is maximised
    instead of ``params``' eta (one enumeration pass)."""
    if mixed is not None:
        return mix_draw_bests(mixed, space)
    check_argmax_work(params, space, method, seed, "Thompson sampling")
    return np.asarray(argmax_codes(params, space, method=method, seed=seed), np.int32)


def _p_best(params, space: LayoutSpace, method: str, seed: int, mixed=None):
    """Distinct per-draw argmax codes and the share of draws each wins (exact given draws)."""
    best = _draw_bests(params, space, method, seed, mixed)
    codes, counts = np.unique(best, axis=0, return_counts=True)
    return codes.astype(np.int32), counts / best.shape[0]


def _top_two(p: np.ndarray, beta: float) -> np.ndarray:
    """Top-two Thompson allocation from P(best) over the distinct leaders (Russo 2016)."""
    if len(p) < 2:
        return p.copy()
    odds = p / (1.0 - p)  # all p < 1 when two or more layouts have mass
    return beta * p + (1.0 - beta) * p * (odds.sum() - odds)


def _top_scores(post, space, excluded, k, strategy, quantile):
    """Codes of the k allowed, non-excluded layouts of highest posterior mean CTR (greedy) or
    highest upper ``quantile`` of CTR (ucb), best first, ties towards the lower index; and
    the leader's P(best) (of the highest mean for greedy, the largest for ucb) from the
    same grid pass."""
    excluded = np.asarray(excluded).reshape(-1, space.num_components)
    excluded = excluded[space.allowed_mask(excluded)] if len(excluded) else excluded
    drop = {tuple(int(x) for x in row) for row in excluded}
    if strategy == "greedy":
        check_grid_work(
            space.num_allowed,
            post.num_draws,
            'strategy="greedy"',
            'use strategy="thompson" or "top_two", which search with the exact optimiser',
        )
        # a running top-k on the device; the extra rows make room for excluded layouts
        grid = score_grid(post, space, top=k + len(drop))
        codes, key, p_best = grid.codes, grid.mean, float(grid.p_best[0])
    else:
        if space.num_allowed > MAX_UCB_GRID:
            raise ValueError(
                f'strategy="ucb" ranks every allowed layout by an upper quantile and is limited '
                f"to {MAX_UCB_GRID} allowed layouts; this space has {space.num_allowed}. Use "
                'strategy="thompson" or "top_two" (exact for any size) or "greedy"'
            )
        # score_grid's interval is equal-tailed: its upper end is the (1 + level)/2 quantile
        grid = score_grid(post, space, top=None, level=2.0 * quantile - 1.0)
        codes, key, p_best = grid.codes, grid.upper, float(np.max(grid.p_best))
    order = np.lexsort((np.arange(len(key)), -np.asarray(key, dtype=np.float64)))
    out = [codes[i] for i in order if tuple(int(x) for x in codes[i]) not in drop][:k]
    return np.asarray(out, dtype=np.int32).reshape(-1, space.num_components), p_best


def _batch(space, codes, weight, k, rng, ranked=False) -> pd.DataFrame:
    """Keep the k heaviest, renormalise, sort by weight descending.

    Equal weights keep the given order when ``ranked`` (greedy, ucb: best first); otherwise
    ties at the cut-off are broken in a seeded random order and shown by index.
    """
    codes = np.asarray(codes, dtype=np.int32).reshape(-1, space.num_components)
    weight = np.asarray(weight, dtype=np.float64)
    keep = weight > 0
    codes, weight = codes[keep], weight[keep]
    tie = np.arange(len(weight)) if ranked else rng.random(len(weight))
    order = np.lexsort((tie, -weight))[:k]
    codes, weight = codes[order], weight[order]
    df = space.frame(codes)
    df["weight"] = weight / weight.sum()
    if not ranked:
        df = df.sort_values(["weight", "index"], ascending=[False, True], kind="stable")
    return df.reset_index(drop=True)
