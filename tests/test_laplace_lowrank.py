"""The low-rank (Woodbury) Laplace solver against the dense one."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_truth, simulate_observations

from layoutopt import _laplace_lowrank as lr
from layoutopt.inference import LaplaceOptions, design_indices, fit, laplace_solver
from layoutopt.limits import check_fit_size
from layoutopt.space import LayoutSpace

CARD = (4, 3, 5, 3)


@pytest.fixture(scope="module")
def data():
    space = LayoutSpace({f"c{k}": [f"v{i}" for i in range(n)] for k, n in enumerate(CARD)})
    rng = np.random.default_rng(0)
    codes = space.codes(rng.choice(space.size, 40, replace=False))
    obs = simulate_observations(space, make_truth(CARD, 1), codes, 2000, seed=2)
    return space, obs


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
        s = jnp.sqrt(jnp.asarray(w))
        # slot precisions: one value per slot here, so pass the per-column ones via X
        gram = X @ np.diag(1 / prec) @ X.T
        chol = jnp.linalg.cholesky(jnp.eye(rows) + s[:, None] * gram * s[None, :])
        g = jnp.asarray(rng.normal(size=(3, P)))
        got = np.asarray(lr._solve(jnp.asarray(design), chol, s, jnp.asarray(prec), g))
        np.testing.assert_allclose(got, np.linalg.solve(H, np.asarray(g).T).T, rtol=1e-9)
        mode = jnp.asarray(rng.normal(size=P))
        S = 4000
        z = np.asarray(
            lr.lowrank_draws(
                jax.random.PRNGKey(0), jnp.asarray(design), mode, chol, s, jnp.asarray(prec),
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


def test_solver_choice_and_option_check():
    assert laplace_solver("auto", 9649, 512) == "lowrank"
    assert laplace_solver("auto", 9649, 16384) == "dense"  # more rows than parameters
    assert laplace_solver("auto", 210, 64) == "dense"  # small: the dense Hessian is cheap
    assert laplace_solver("lowrank", 210, 1024) == "lowrank"
    with pytest.raises(ValueError, match="solver='cg' is not valid"):
        laplace_solver("cg", 10, 10)
    with pytest.raises(ValueError, match="solver='cg' is not valid"):
        LaplaceOptions(solver="cg")


def test_size_limits_apply_to_the_dense_solver_only():
    card = (12,) * 12  # 9,649 parameters
    with pytest.raises(ValueError, match="9,649 parameters, more than method 'laplace'"):
        check_fit_size(card, 241, "laplace", 1000)
    size = check_fit_size(card, 241, "laplace-lowrank", 1000)
    assert size.num_params == 9649 and size.memory_bytes < 2**30
