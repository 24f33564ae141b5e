"""The conjugate-gradient Laplace solver against the dense one, and on the space it exists
for: three product slots of 80 items without repeats, fitted on their full pairwise design."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_truth, simulate_observations

import layoutopt as lo
from layoutopt.infer import iterative as it
from layoutopt.infer.fitting import LaplaceOptions, design_indices, fit
from layoutopt.model.space import LayoutSpace
from layoutopt.model.spec import Design

CARD = (4, 3, 5, 3)


@pytest.fixture(scope="module")
def data():
    space = LayoutSpace({f"c{k}": [f"v{i}" for i in range(n)] for k, n in enumerate(CARD)})
    rng = np.random.default_rng(0)
    codes = space.codes(rng.choice(space.size, 40, replace=False))
    obs = simulate_observations(space, make_truth(CARD, 1), codes, 2000, seed=2)
    return space, obs


def _system(obs, rows=64, seed=3):
    codes = np.zeros((rows, len(CARD)), np.int32)
    codes[: obs.num_layouts] = obs.codes
    design = design_indices(codes, CARD, True)
    rng = np.random.default_rng(seed)
    P = int(design.max()) + 1
    w = np.zeros(rows)
    w[: obs.num_layouts] = rng.uniform(1.0, 50.0, obs.num_layouts)  # padded rows: weight 0
    prec = rng.uniform(0.5, 4.0, P)
    X = np.zeros((rows, P))
    np.put_along_axis(X, design.astype(np.int64), 1.0, axis=1)
    return design, w, prec, X, X.T @ (w[:, None] * X) + np.diag(prec), rng


def test_pcg_solves_and_its_draws_have_the_inverse_hessian_as_covariance(data):
    _, obs = data
    design, w, prec, _, H, rng = _system(obs)
    with jax.enable_x64(True):
        active = Design(jnp.asarray(design), jnp.ones(design.shape))
        matvec, diag = it._hessian(active, jnp.asarray(w), jnp.asarray(prec))
        np.testing.assert_allclose(np.asarray(diag), np.diag(H), rtol=1e-12)
        g = rng.normal(size=(3, H.shape[0]))
        x, iterations, ok = it.pcg(matvec, jnp.asarray(g), diag)
        assert bool(ok) and 0 < int(iterations) < it.CG_MAX_ITER
        exact = np.linalg.solve(H, g.T).T
        # relative residual 1e-9 bounds the relative error by cond(H) * 1e-9
        assert np.linalg.norm(np.asarray(x) - exact) / np.linalg.norm(
            exact
        ) < 1e-9 * np.linalg.cond(H)
        mode = jnp.asarray(rng.normal(size=H.shape[0]))
        S = 4000
        z, solved = it.cg_draws(
            jax.random.PRNGKey(0), active, mode, jnp.asarray(w), jnp.asarray(prec),
            num_samples=S, batch=500,
        )  # fmt: skip
        z = np.asarray(z)
    assert bool(solved) and z.shape == (S, H.shape[0])
    cov = np.linalg.inv(H)
    sd = np.sqrt(np.diag(cov))
    # sample mean: standard error sd / sqrt(S); 5 standard errors over P coordinates
    assert np.max(np.abs(z.mean(0) - np.asarray(mode)) / sd) < 5 / np.sqrt(S)
    # sample variance: relative standard error sqrt(2 / S) = 2.2%; 5 of them
    np.testing.assert_allclose(z.var(0) / np.diag(cov), 1.0, atol=5 * np.sqrt(2 / S))


# two 4,000-draw fits of one model: slow set
@pytest.mark.slow
def test_predictions_agree_with_the_dense_solver(data):
    space, obs = data
    dense = fit(space, obs, seed=0, num_samples=4000, options=LaplaceOptions(solver="dense"))
    cg = fit(space, obs, seed=0, num_samples=4000, options=LaplaceOptions(solver="cg"))
    assert cg.diagnostics["converged"] and cg.diagnostics["cg_converged"]
    assert cg.gaussian is None  # no P x N factor: scoring reads the draws
    layouts = [space.decode(c) for c in space.codes(np.arange(space.size))]
    a = lo.score_layouts(dense, layouts, method="draws")
    b = lo.score_layouts(cg, layouts, method="draws")
    # posterior mean CTRs from 4,000 draws each: a mean's Monte Carlo error is 1.6% of its
    # sd, so two fits' means differ by 2.2% of it (sd units) plus what the scales'
    # estimate moves them; 5 Monte Carlo errors over 180 layouts
    sd = (a["upper"] - a["lower"]) / (2 * 1.645)  # the 90% interval's width in sds
    np.testing.assert_array_less(np.abs(b["mean"] - a["mean"]) / sd, 0.12)


def test_learned_scales_and_evidence_agree_with_the_dense_solver_within_their_error(data):
    space, obs = data
    dense = fit(space, obs, seed=0, num_samples=8, options=LaplaceOptions(solver="dense"))
    cg = fit(space, obs, seed=0, num_samples=8, options=LaplaceOptions(solver="cg"))
    d = cg.diagnostics
    assert d["converged"] and d["cg_converged"] and d["cg_iterations"] > 0
    # the evidence's log det H is a Lanczos estimate: within 4 of its standard errors
    assert abs(d["log_evidence"] - dense.diagnostics["log_evidence"]) < 4 * d["log_evidence_se"]
    # the scales' fixed point reads gamma with a relative standard error gamma_rel_se; a
    # scale s = sqrt(|m|^2 / gamma) moves by half that, relative; 4 of them (and 2% for the
    # fixed point's own tolerance)
    for name in ("sigma_main", "tau_pair"):
        got, ref = float(np.ravel(cg.hyper[name])[0]), float(np.ravel(dense.hyper[name])[0])
        assert got == pytest.approx(ref, rel=2 * d["gamma_rel_se"] + 0.02), name


def test_the_same_inputs_give_the_same_fit(data):
    space, obs = data
    a = fit(space, obs, seed=5, num_samples=16, options=LaplaceOptions(solver="cg"))
    b = fit(space, obs, seed=5, num_samples=16, options=LaplaceOptions(solver="cg"))
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert a.diagnostics == b.diagnostics


def test_auto_half_life_is_refused_clearly_with_the_cg_solver(data):
    space, obs = data
    staged = lo.Observations.from_codes(
        space, obs.codes, obs.impressions, obs.clicks, round=np.arange(obs.num_layouts) % 3
    )
    with pytest.raises(ValueError, match="half_life='auto'.*conjugate-gradient"):
        fit(space, staged, half_life="auto", options=LaplaceOptions(solver="cg"), num_samples=8)


@pytest.mark.slow
def test_three_slots_of_80_items_fit_on_their_full_pairwise_design():
    """The space of the judged walk-through: declared in one line, its full pairwise design
    (6,580 layouts, beyond the low-rank solver's 4,096 rows) fitted by the default call
    (19,441 parameters: the CG solver), scored, optimised exactly and proposed, no result
    repeating an item."""
    items = [f"item{i}" for i in range(80)]
    slots = lo.LayoutSpace(
        {"slot1": items, "slot2": items, "slot3": items}, distinct=[("slot1", "slot2", "slot3")]
    )
    design = lo.initial_design(slots, seed=0)
    assert len(design) == 6580
    labels = design[["slot1", "slot2", "slot3"]].astype(str)
    rng = np.random.default_rng(0)
    rate = 0.02 + 0.04 * (labels == "item0").sum(axis=1)
    obs = lo.Observations.from_frame(
        labels.assign(impressions=400, clicks=rng.binomial(400, rate)), slots
    )
    post = lo.fit(slots, obs, seed=0)
    d = post.diagnostics
    assert d["converged"] and d["cg_converged"] and "gamma_rel_se" in d
    assert [np.shape(t)[-2:] for t in post.params.pair] == [(80, 80)] * 3
    grid = lo.score_grid(post, slots, top=5)
    assert grid.num_scored == 80 * 79 * 78
    best = lo.best_layout(post, slots)
    assert "item0" in best.layout.values() and len(set(best.layout.values())) == 3
    few = jax.tree.map(lambda a: a[:8], post.params)
    codes, certificates = lo.certified_argmax(few, slots, method="exact", seed=0)
    assert all(c.optimal for c in certificates)
    assert all(len(set(row)) == 3 for row in np.asarray(codes))
    batch = lo.propose(post, slots, k=4, seed=1)
    assert all(len(set(r)) == 3 for r in batch[["slot1", "slot2", "slot3"]].itertuples(index=False))
