"""The low-rank (Woodbury) Laplace solver against the dense one."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_truth, simulate_observations

from layoutopt.data.observations import Observations
from layoutopt.decide.design import initial_design
from layoutopt.infer import lowrank as lr
from layoutopt.infer import steps
from layoutopt.infer.fitting import LaplaceOptions, design_indices, fit, laplace_solver
from layoutopt.model.delay import Exponential
from layoutopt.model.priors import PriorConfig
from layoutopt.model.space import LayoutSpace
from layoutopt.model.spec import Design, ModelSpec
from layoutopt.sim.simulate import SyntheticWorld
from layoutopt.util.limits import LAPLACE_MAX_PARAMS, check_fit_size

CARD = (4, 3, 5, 3)


@pytest.fixture(scope="module")
def data():
    space = LayoutSpace({f"c{k}": [f"v{i}" for i in range(n)] for k, n in enumerate(CARD)})
    rng = np.random.default_rng(0)
    codes = space.codes(rng.choice(space.size, 40, replace=False))
    obs = simulate_observations(space, make_truth(CARD, 1), codes, 2000, seed=2)
    return space, obs


@pytest.mark.slow
@pytest.mark.parametrize("scales", ["per_group"])  # one scale per slot: the finest mapping
def test_lowrank_fit_equals_dense(data, scales):
    space, obs = data
    dense = fit(
        space, obs, seed=0, num_samples=8, options=LaplaceOptions(scales=scales, solver="dense")
    )
    low = fit(
        space, obs, seed=0, num_samples=8, options=LaplaceOptions(scales=scales, solver="lowrank")
    )
    # the same iteration in float64 with an exact inverse: equal up to rounding
    assert dense.diagnostics["iterations"] == low.diagnostics["iterations"]
    assert low.diagnostics["converged"]
    assert low.diagnostics["log_evidence"] == pytest.approx(
        dense.diagnostics["log_evidence"], rel=1e-10
    )
    for name in ("sigma_main", "tau_pair"):
        np.testing.assert_allclose(low.hyper[name], dense.hyper[name], rtol=1e-6)


def test_woodbury_solve_and_draws_match_the_dense_inverse(data):
    space, obs = data
    rows = 64
    codes = np.zeros((rows, len(CARD)), np.int32)
    codes[: obs.num_layouts] = obs.codes
    design = design_indices(codes, CARD, True)
    rng = np.random.default_rng(3)
    P = int(design.max()) + 1
    w = np.zeros(rows)
    w[: obs.num_layouts] = rng.uniform(1.0, 50.0, obs.num_layouts)  # padded rows: weight 0
    prec = rng.uniform(0.5, 4.0, P)
    X = np.zeros((rows, P))
    np.put_along_axis(X, design.astype(np.int64), 1.0, axis=1)
    H = X.T @ (w[:, None] * X) + np.diag(prec)
    with jax.enable_x64(True):
        active = Design(jnp.asarray(design), jnp.ones(design.shape))
        s = jnp.sqrt(jnp.asarray(w))
        # slot precisions: one value per slot here, so pass the per-column ones via X
        gram = X @ np.diag(1 / prec) @ X.T
        chol = jnp.linalg.cholesky(jnp.eye(rows) + s[:, None] * gram * s[None, :])
        g = jnp.asarray(rng.normal(size=(3, P)))
        got = np.asarray(lr.solve(active, chol, s, jnp.asarray(prec), g))
        np.testing.assert_allclose(got, np.linalg.solve(H, np.asarray(g).T).T, rtol=1e-9)
        mode = jnp.asarray(rng.normal(size=P))
        S = 4000
        z = np.asarray(
            lr.lowrank_draws(
                jax.random.PRNGKey(0), active, mode, chol, s, jnp.asarray(prec),
                num_samples=S, batch=500,
            )
        )  # fmt: skip
    cov = np.linalg.inv(H)
    sd = np.sqrt(np.diag(cov))
    assert z.shape == (S, P)
    # sample mean: standard error sd / sqrt(S); 5 standard errors over P coordinates
    assert np.max(np.abs(z.mean(0) - np.asarray(mode)) / sd) < 5 / np.sqrt(S)
    # sample variance: relative standard error sqrt(2 / S) = 2.2%; 5 of them
    np.testing.assert_allclose(z.var(0) / np.diag(cov), 1.0, atol=5 * np.sqrt(2 / S))


@pytest.mark.parametrize(
    "solver, num_params, num_rows, expected",
    [
        ("auto", 9649, 256, "lowrank"),  # dense refused above LAPLACE_MAX_PARAMS
        # more rows than parameters: Woodbury saves nothing, and dense is refused above 4,000
        ("auto", 9649, 16384, "cg"),
        ("auto", 4000, 64, "dense"),  # the dense solver's limit: it still runs dense
        ("auto", 210, 64, "dense"),
        ("lowrank", 210, 1024, "lowrank"),
        ("dense", 9649, 256, "dense"),  # asked for: check_fit_size refuses it
        ("auto", 19441, 8192, "cg"),  # beyond the low-rank solver's rows: 3 slots x 80 items
        ("auto", 78401, 256, "cg"),  # beyond its parameters
        ("auto", 9649, 4096, "lowrank"),  # its row limit: still low-rank
        ("cg", 210, 64, "cg"),
    ],
)
def test_solver_choice(solver, num_params, num_rows, expected):
    assert LAPLACE_MAX_PARAMS == 4000
    assert laplace_solver(solver, num_params, num_rows) == expected


def test_solver_option_check():
    with pytest.raises(ValueError, match="solver='qr' is not valid"):
        laplace_solver("qr", 10, 10)
    with pytest.raises(ValueError, match="solver='qr' is not valid"):
        LaplaceOptions(solver="qr")


@pytest.mark.parametrize(
    "card, rows, method, parts",
    [
        # dense: P x P Hessian; the message names the low-rank solver, SVI and additive
        ((12,) * 12, 241, "laplace", ["9,649 parameters", "dense solver", "(4,000)",
                                      "solver='lowrank'", "'svi'", "additive"]),
        # low-rank: an N x N factorisation per iteration; 9x9 would still fit dense
        ((9,) * 9, 5000, "laplace-lowrank", ["5,000 distinct observed rows", "(4,096)",
                                             "solver='dense'", "solver='cg'"]),
        ((12,) * 12, 5000, "laplace-lowrank", ["5,000 distinct observed rows", "solver='cg'"]),
        # low-rank parameter cap (40 x 10 = 78,401): neither solver
        ((10,) * 40, 3, "laplace-lowrank", ["78,401 parameters", "low-rank solver",
                                           "(50,000)", "'svi'", "additive"]),
        ((10,) * 40, 3, "laplace", ["78,401 parameters", "'svi'", "additive"]),
    ],
)  # fmt: skip
def test_size_limits_by_solver(card, rows, method, parts):
    with pytest.raises(ValueError) as err:
        check_fit_size(card, rows, method, 1000)
    for part in parts:
        assert part in str(err.value)
    if method == "laplace" and card == (10,) * 40:
        assert "solver='lowrank'" not in str(err.value)  # beyond its limit too
    if rows == 5000 and card == (12,) * 12:
        assert "solver='dense'" not in str(err.value)


def test_size_limits_accept_the_lowrank_solver_at_12x12_and_20000():
    size = check_fit_size((12,) * 12, 241, "laplace-lowrank", 1000)
    assert size.num_params == 9649 and size.memory_bytes < 2**30
    size = check_fit_size((15,) * 14, 512, "laplace-lowrank", 1000)
    assert size.num_params == 20686 and size.memory_bytes < 2**30
    assert check_fit_size((12,) * 12, 4096, "laplace-lowrank", 1000).num_rows == 4096


def test_damped_newton_takes_full_steps_near_the_mode_and_backtracks_far_away():
    # f(x) = -sum log cosh(x): concave, Newton from |x| > 1.09 overshoots the mode 0
    def f(x):
        return -jnp.sum(jnp.log(jnp.cosh(x)))

    with jax.enable_x64(True):
        for x0, full in [(0.3, True), (1.5, False), (40.0, False)]:
            x = jnp.full(3, x0)
            g = -jnp.tanh(x)
            delta = g * jnp.cosh(x) ** 2  # H^-1 g with H = 1 / cosh^2
            step, newton = steps.damped_newton(f, x, delta, g)
            assert bool(newton) is full
            assert float(f(x + step)) > float(f(x))  # ascent every time
            assert float(jnp.max(jnp.abs(step))) <= 2.0  # never beyond the cap
            if full:
                np.testing.assert_allclose(np.asarray(step), np.asarray(delta))


@pytest.fixture(scope="module")
def obs_12x12():
    space = LayoutSpace({f"c{k}": [f"v{i}" for i in range(12)] for k in range(12)})
    world = SyntheticWorld.random(space, 0, base_rate=0.04, main_scale=0.2, pair_scale=0.1)
    codes = space.codes(initial_design(space, seed=0)["index"].to_numpy())  # 241 layouts
    n = np.full(len(codes), 3000)
    return space, Observations.from_codes(space, codes, n, world.serve(codes, n, seed=0))


@pytest.mark.slow
def test_fit_12x12_just_works_with_the_default_solver(obs_12x12):
    """9,649 parameters on 241 layouts: the dense solver is refused, "auto" picks the
    low-rank one, and the iteration converges (it ran 500 iterations without converging
    before Newton steps were backtracked and the scales waited for full steps)."""
    space, obs = obs_12x12
    post = fit(space, obs, method="laplace", seed=0, num_samples=200)
    d = post.diagnostics
    assert d["converged"] and d["iterations"] < 50, d
    assert d["newton_decrement"] < 1e-3
    assert post.params.intercept.shape == (200,)
    # the world's scales are 0.2 and 0.1; empirical Bayes from 241 layouts lands near them
    assert 0.1 < float(post.hyper["sigma_main"].ravel()[0]) < 0.4
    assert 0.04 < float(post.hyper["tau_pair"].ravel()[0]) < 0.2
    with pytest.raises(ValueError, match="9,649 parameters, more than method 'laplace' with"):
        fit(space, obs, seed=0, options=LaplaceOptions(solver="dense"))


@pytest.mark.slow
def test_auto_fits_a_delay_model_above_the_dense_limit(obs_12x12):
    """The low-rank solver carries the delay's exposure: "auto" no longer refuses it."""
    space, obs = obs_12x12
    aged = Observations.from_codes(
        space, obs.codes, obs.impressions, obs.clicks, age=np.full(obs.num_layouts, 48.0)
    )
    post = fit(space, aged, seed=0, num_samples=50, delay=Exponential(rate=0.1))
    assert post.diagnostics["converged"], post.diagnostics
    with pytest.raises(ValueError, match="9,649 parameters, more than method 'laplace' with"):
        fit(
            space, aged, seed=0, delay=Exponential(rate=0.1), options=LaplaceOptions(solver="dense")
        )


def _segment_model():
    """5 components of 8 variants, 6 segments with their own pair deviations: the issue's
    model (4,767 parameters; cardinalities alone count 681)."""
    space = LayoutSpace(
        {f"c{k}": [f"v{i}" for i in range(8)] for k in range(5)},
        segments={"s": [f"g{i}" for i in range(6)]},
    )
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 8, size=(24, 5))
    segs = rng.integers(0, 6, size=24)
    n = np.full(24, 2000)
    clicks = rng.binomial(n, 0.05)
    return space, Observations.from_codes(space, codes, n, clicks, segments=segs)


@pytest.mark.slow
def test_size_guard_counts_segment_terms():
    space, obs = _segment_model()
    prior = PriorConfig(segment_pairs=True)
    with pytest.raises(ValueError, match="4,767 parameters, more than method 'laplace' with"):
        fit(space, obs, seed=0, prior=prior, options=LaplaceOptions(solver="dense"))
    post = fit(space, obs, seed=0, num_samples=20, prior=prior)  # auto: low-rank
    assert post.diagnostics["converged"], post.diagnostics
    assert post.params.segment_pair[0].shape == (20, 6, 8, 8)
    assert check_fit_size(ModelSpec((8,) * 5, num_segments=6, segment_pairs=True), 24,
                          "laplace-lowrank", 20).num_params == 4767  # fmt: skip


def test_size_guard_counts_attribute_coefficients():
    spec = ModelSpec((20,) * 6, pairwise=False, attribute_counts=(1,) * 6)
    assert check_fit_size(spec, 10, "laplace", 10).num_params == 1 + 120 + 6
    wide = ModelSpec((2, 2), pairwise=False, attribute_counts=(2_000, 2_000))
    with pytest.raises(ValueError, match="4,005 parameters"):
        check_fit_size(wide, 10, "laplace", 10)


def test_size_limits_accept_the_cg_solver_beyond_the_low_rank_limits():
    # 3 slots x 80 items on their 6,580-layout pairwise design (8,192 padded rows)
    size = check_fit_size((80, 80, 80), 6580, "laplace-cg", 1000)
    assert size.num_params == 19441 and size.memory_bytes < 2**30
    # 15 x 14 (20,686 parameters) on 50,000 rows: no row limit
    assert check_fit_size((15,) * 14, 50_000, "laplace-cg", 1000).memory_bytes < 4 * 2**30
    with pytest.raises(ValueError, match="fewer draws"):
        check_fit_size((15,) * 14, 300, "laplace-cg", 100_000)
    # 40 x 10 (78,401 parameters): beyond what it was measured to, SVI named
    with pytest.raises(ValueError, match=r"conjugate-gradient solver handles \(50,000\).*'svi'"):
        check_fit_size((10,) * 40, 300, "laplace-cg", 1000)
