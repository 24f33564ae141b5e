"""Closed-form Gaussian scoring of Laplace posteriors (issue 12).

Oracle: the dense float64 covariance of the Laplace kernel itself, ``Sigma = H^-1`` with
``H = D L L' D`` from its Cholesky factor, and each layout's flat design row x, so that
``m = x . mode`` and ``v = x' Sigma x`` exactly; the mean CTR by 200-node Gauss-Hermite
quadrature in float64. Spaces: plain (with a forbidden rule), with variant attributes, and
with segments.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from conftest import numpy_eta, simulate_observations
from scipy.special import expit, ndtr, ndtri

import layoutopt as lo
from layoutopt.infer import fitting as inference
from layoutopt.infer.data import pad_data, pad_rows
from layoutopt.infer.fitting import resolve_problem
from layoutopt.infer.laplace_fit import kernel_prior, laplace_solve
from layoutopt.infer.posterior import Posterior
from layoutopt.model.core import Params
from layoutopt.model.priors import PriorConfig
from layoutopt.score.grid import GridOptions, gaussian_mean_ctr
from layoutopt.score.scoring import score_grid, score_grid_to_parquet, score_layouts
from layoutopt.score.shards import merge_shards

LEVEL = 0.9
Z = float(ndtri(0.5 + 0.5 * LEVEL))
COMPONENTS = {"a": ["a0", "a1", "a2"], "b": ["b0", "b1", "b2", "b3"], "c": ["c0", "c1"]}
ATTRIBUTES = {
    "a": {
        "a0": {"free": True, "len": 3},
        "a1": {"free": False, "len": 5},
        "a2": {"free": True, "len": 9},
    }
}


def make_space(kind: str) -> lo.LayoutSpace:
    forbidden = [{"a": "a2", "b": "b3"}]
    if kind == "attributes":
        return lo.LayoutSpace(COMPONENTS, forbidden=forbidden, attributes=ATTRIBUTES)
    if kind == "segments":
        return lo.LayoutSpace(COMPONENTS, forbidden=forbidden, segments={"m": ["p", "n"]})
    return lo.LayoutSpace(COMPONENTS, forbidden=forbidden)


def make_obs(space: lo.LayoutSpace, impressions: int = 3000) -> lo.Observations:
    """10 of the 24 layouts (some never seen: their variance is mostly prior), seeded."""
    rng = np.random.default_rng(7)
    truth = Params(
        np.float64(-3.0),
        tuple(rng.normal(0, 0.3, n) for n in space.cardinalities),
        tuple(
            rng.normal(0, 0.1, (space.cardinalities[k], space.cardinalities[j]))
            for k, j in lo.model.pair_list(space.num_components)
        ),
    )
    idx = np.sort(rng.choice(space.size, 10, replace=False))
    codes = space.codes(idx)
    if not space.num_segments:
        return simulate_observations(space, truth, codes, impressions, seed=8)
    codes = np.concatenate([codes, codes[:6]])
    segs = np.r_[np.zeros(10, np.int64), np.ones(6, np.int64)]
    ctr = expit(numpy_eta(truth, codes) + 0.2 * segs)
    imps = np.full(len(codes), 3000)
    return lo.Observations.from_codes(space, codes, imps, rng.binomial(imps, ctr), segments=segs)


def dense_oracle(space: lo.LayoutSpace, obs: lo.Observations, segment: int = 0):
    """``(codes, m, v)`` of every allowed layout from the kernel's dense float64 factor."""
    problem = resolve_problem(space, obs)
    options = inference.LaplaceOptions()
    data = pad_data(problem.data, pad_rows(obs.num_rows))
    design = problem.spec.design(data.codes, data.segments, problem.attributes)
    prior, _ = kernel_prior(problem, options.scales)
    out = laplace_solve("dense", data, design, prior, options, problem)
    L, d = np.asarray(out.chol, np.float64), np.asarray(out.d, np.float64)
    sigma = np.linalg.inv(d[:, None] * (L @ L.T) * d[None, :])
    allowed = space.codes_range(0, space.size)
    allowed = allowed[space.allowed_mask(allowed)]
    seg = np.full(len(allowed), segment)
    cols, values = problem.spec.design(allowed, seg, problem.attributes)
    X = np.zeros((len(allowed), len(d)))
    np.add.at(X, (np.arange(len(allowed))[:, None], cols), values)
    return allowed, X @ np.asarray(out.mode), np.einsum("np,pq,nq->n", X, sigma, X)


def quadrature_mean(m, v):
    """E[expit(eta)], eta ~ N(m, v): trapezoid rule on 24,001 points over +-12 sd (float64;
    the integrand is smooth and its tails below 1e-30, so the rule is exact to ~1e-13)."""
    z = np.linspace(-12.0, 12.0, 24001)
    f = np.exp(-0.5 * z * z) / np.sqrt(2.0 * np.pi) * (z[1] - z[0])
    return expit(np.asarray(m)[:, None] + np.sqrt(np.asarray(v))[:, None] * z) @ f


# "heavy": 3 x 10^7 impressions per observed layout, so v is ~1e-7 of x'Dx for them: the
# cancellation in D - UU' that float32 tables and kernels lost up to 30% of the sd to
@pytest.fixture(scope="module", params=["plain", "attributes", "segments", "heavy"])
def case(request):
    space = make_space(request.param)
    obs = make_obs(space, 3 * 10**7 if request.param == "heavy" else 3000)
    post = lo.fit(space, obs, method="laplace", seed=0, num_samples=4000)
    return request.param, space, obs, post


def _segment(space):
    return {"m": "n"} if space.num_segments else None


def test_representation_matches_the_dense_covariance(case):
    """m and v of the stored tables (evaluated in float64) equal x.mode and x' Sigma x."""
    kind, space, obs, post = case
    codes, m, v = dense_oracle(space, obs, segment=1 if space.num_segments else 0)
    gauss = post.gaussian if not space.num_segments else post.gaussian.fold(1)
    got_m = numpy_eta(gauss.mode, codes)[0]
    got_v = numpy_eta(gauss.var, codes)[0] - np.sum(numpy_eta(gauss.factor, codes) ** 2, axis=0)
    # float64 tables: v loses ~eps64 * x'Dx (~1e-15) to the cancellation in D - UU', and
    # the oracle's inverse of H (condition ~1e7) is good to ~1e-9 relative
    np.testing.assert_allclose(got_m, m, rtol=1e-9, atol=0)
    np.testing.assert_allclose(got_v, v, rtol=1e-6, atol=0)
    # one column per distinct observed layout, zero-padded to the fit's padded rows
    assert post.gaussian.rank == pad_rows(obs.num_rows)
    cells = obs.codes if not space.num_segments else np.c_[obs.codes, obs.segments]
    distinct = len(np.unique(cells, axis=0))  # (layout, segment) cells
    assert np.all(np.asarray(post.gaussian.factor.intercept)[distinct:] == 0)
    assert v.max() / v.min() > 5  # both seen and unseen layouts


@pytest.mark.parametrize("how", ["factor", "tables"])
def test_closed_form_scores_match_the_oracle(case, how):
    """score_grid's mean and interval (float32 kernel) against the float64 oracle, with
    ``|U' x|^2`` from the r factor rows and from the covariance tables."""
    kind, space, obs, post = case
    codes, m, v = dense_oracle(space, obs, segment=1 if space.num_segments else 0)
    options = GridOptions(closed_form=how)
    grid = score_grid(post, level=LEVEL, segment=_segment(space), grid_options=options)
    assert np.array_equal(grid.codes, codes)  # index order, forbidden layout left out
    sd = np.sqrt(v)
    # float64 kernel, float32 results: rounding to 6e-8 relative; 32-node GH is exact to
    # ~1e-12 for these sds (< 0.5)
    assert sd.max() < 0.5
    np.testing.assert_allclose(grid.mean, quadrature_mean(m, v), rtol=2e-7, atol=0)
    np.testing.assert_allclose(grid.lower, expit(m - Z * sd), rtol=2e-7, atol=0)
    np.testing.assert_allclose(grid.upper, expit(m + Z * sd), rtol=2e-7, atol=0)


def test_draws_agree_with_the_closed_form_within_monte_carlo_error(case):
    """The draws come from the kernel's Cholesky factor, the closed form from Woodbury."""
    kind, space, obs, post = case
    seg = _segment(space)
    g = score_grid(post, level=LEVEL, segment=seg)
    d = score_grid(post, level=LEVEL, segment=seg, method="draws")
    S = post.num_draws
    width = g.upper - g.lower  # ~3.3 sd of CTR
    # mean: MC sd = sd(ctr) / sqrt(S); 5 MC sds. Quantile at 5%/95%: MC sd of the sample
    # quantile = sqrt(q (1-q) / S) / phi(z) ~ 2.1 sd / sqrt(S); 5 of those.
    sd_ctr = width / (2 * Z)
    assert np.all(np.abs(g.mean - d.mean) < 5 * sd_ctr / np.sqrt(S))
    assert np.all(np.abs(g.lower - d.lower) < 5 * 2.12 * sd_ctr / np.sqrt(S))
    assert np.all(np.abs(g.upper - d.upper) < 5 * 2.12 * sd_ctr / np.sqrt(S))
    # P(best) comes from the same draws whichever way mean and interval are computed
    assert np.array_equal(g.p_best, d.p_best) and np.array_equal(g.best_codes, d.best_codes)


def test_entry_points_agree(case):
    """score_grid (full and top=k), score_layouts and best_layout give the same numbers."""
    kind, space, obs, post = case
    seg = _segment(space)
    full = score_grid(post, level=LEVEL, segment=seg).to_pandas()
    top = score_grid(post, top=5, level=LEVEL, segment=seg).to_pandas()
    pd.testing.assert_frame_equal(top, full.head(5), check_exact=True)
    rows = score_layouts(post, None, full[list(space.components)], level=LEVEL, segment=seg)
    for col in ("index", "mean", "lower", "upper", "p_best"):
        np.testing.assert_array_equal(rows[col].to_numpy(), full[col].to_numpy())
    best = lo.best_layout(post, level=LEVEL, segment=seg)
    first = full.iloc[0]
    assert (best.index, best.mean, best.lower, best.upper) == (
        first["index"],
        pytest.approx(first["mean"], abs=0),
        pytest.approx(first["lower"], abs=0),
        pytest.approx(first["upper"], abs=0),
    )


@pytest.mark.parametrize("sd_max, rtol", [(2.0, 2e-6), (3.0, 1e-4)])
def test_gauss_hermite_mean_accuracy(sd_max, rtol):
    """32 nodes in float32: float32-level up to sd 2, 1e-4 relative up to sd 3 (the GH
    error of a sigmoid grows with the sd), for CTRs from 3e-4 to 0.95."""
    m = np.repeat(np.linspace(-8.0, 3.0, 23), 16)
    sd = np.tile(np.linspace(0.0, sd_max, 16), 23)
    got = gaussian_mean_ctr(jnp.asarray(m, jnp.float32), jnp.asarray(sd, jnp.float32), "logit", 32)
    np.testing.assert_allclose(np.asarray(got), quadrature_mean(m, sd**2), rtol=rtol, atol=0)


def test_probit_mean_is_closed_form():
    m = np.repeat(np.linspace(-4.0, 1.0, 11), 7)
    sd = np.tile(np.linspace(0.0, 3.0, 7), 11)
    got = gaussian_mean_ctr(jnp.asarray(m, jnp.float32), jnp.asarray(sd, jnp.float32), "probit", 32)
    z = np.linspace(-12.0, 12.0, 24001)
    f = np.exp(-0.5 * z * z) / np.sqrt(2.0 * np.pi) * (z[1] - z[0])
    want = ndtr(m[:, None] + sd[:, None] * z) @ f
    np.testing.assert_allclose(np.asarray(got), want, rtol=2e-6, atol=0)


def test_save_load_round_trip(case, tmp_path):
    kind, space, obs, post = case
    post.save(tmp_path / "p.nc")
    back = Posterior.load(tmp_path / "p.nc")
    for a, b in zip(jax.tree.leaves(post.gaussian), jax.tree.leaves(back.gaussian), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert jax.tree.structure(post.gaussian) == jax.tree.structure(back.gaussian)
    seg = _segment(space)
    a, b = score_grid(post, segment=seg), score_grid(back, segment=seg)
    for name in ("mean", "lower", "upper", "p_best"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_method_choice_and_draw_based_posteriors():
    space = make_space("plain")
    post = lo.fit(space, make_obs(space), method="laplace", seed=0, num_samples=200)
    bare = Posterior(space=space, prior=PriorConfig(), params=post.params, method="nuts")
    assert bare.gaussian is None
    # "auto" on a posterior without a Gaussian is the draw-based answer
    a, d = score_grid(bare), score_grid(post, method="draws")
    np.testing.assert_array_equal(a.mean, d.mean)
    with pytest.raises(ValueError, match="method='gaussian' needs a Laplace posterior"):
        score_grid(bare, method="gaussian")
    with pytest.raises(ValueError, match="method='mc' is not valid"):
        score_grid(post, method="mc")


@pytest.mark.parametrize("n", [1, 3])
def test_parquet_and_shards_use_the_closed_form(tmp_path, n):
    space = make_space("plain")
    post = lo.fit(space, make_obs(space), method="laplace", seed=0, num_samples=300)
    whole = tmp_path / "whole.parquet"
    score_grid_to_parquet(post, whole, argmax_method="enumerate", level=LEVEL)
    want = pd.read_parquet(whole)
    grid = score_grid(post, level=LEVEL)
    np.testing.assert_array_equal(want["mean"].to_numpy(), grid.mean.astype(np.float64))
    np.testing.assert_array_equal(want["lower"].to_numpy(), grid.lower.astype(np.float64))
    np.testing.assert_array_equal(want["p_best"].to_numpy(), grid.p_best)
    paths = []
    for i in range(n):
        paths.append(tmp_path / f"part-{i}.parquet")
        score_grid_to_parquet(post, paths[-1], shard=(i, n), level=LEVEL)
    merge_shards(paths, tmp_path / "merged.parquet")
    got = pd.read_parquet(tmp_path / "merged.parquet")
    pd.testing.assert_frame_equal(got, want, check_exact=True)


def test_lowrank_solver_gives_the_same_gaussian():
    """The factor is built outside the low-rank kernel from its mode and scales alone."""
    space = make_space("plain")
    obs = make_obs(space)
    dense = lo.fit(space, obs, seed=0, num_samples=50, options=inference.LaplaceOptions())
    low = lo.fit(
        space, obs, seed=0, num_samples=50, options=inference.LaplaceOptions(solver="lowrank")
    )
    codes = space.codes_range(0, space.size)

    def moments(post):
        g = post.gaussian
        v = numpy_eta(g.var, codes)[0] - np.sum(numpy_eta(g.factor, codes) ** 2, axis=0)
        return numpy_eta(g.mode, codes)[0], v

    (m1, v1), (m2, v2) = moments(dense), moments(low)
    # the two solvers stop at the same tolerance (1e-6-ish on theta), not bit for bit
    np.testing.assert_allclose(m2, m1, rtol=0, atol=1e-5)
    np.testing.assert_allclose(v2, v1, rtol=1e-4, atol=0)


def test_delay_and_half_life_fit_agree_with_its_draws():
    """Exposure F(age) and time weights enter W exactly as in the kernel: the closed form
    agrees with the draws (sampled from the kernel's own Cholesky) to Monte Carlo error."""
    space = make_space("plain")
    base = make_obs(space)
    ages = np.resize(np.array([5.0, 30.0, 200.0]), base.num_rows)
    rounds = np.resize(np.array([0, 1, 2]), base.num_rows)
    obs = lo.Observations.from_codes(
        space, base.codes, base.impressions, base.clicks, age=ages, round=rounds
    )
    post = lo.fit(space, obs, delay=lo.Exponential(0.1), half_life=2.0, seed=0, num_samples=4000)
    g = score_grid(post, level=LEVEL)
    d = score_grid(post, level=LEVEL, method="draws")
    sd_ctr = (g.upper - g.lower) / (2 * Z)
    S = post.num_draws
    # as in test_draws_agree_with_the_closed_form_within_monte_carlo_error: 5 MC sds
    assert np.all(np.abs(g.mean - d.mean) < 5 * sd_ctr / np.sqrt(S))
    assert np.all(np.abs(g.upper - d.upper) < 5 * 2.12 * sd_ctr / np.sqrt(S))
