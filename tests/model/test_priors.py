"""Priors: PriorConfig's new home, attribute coefficients in the fit, MetaPrior (issue 10)."""

from __future__ import annotations

import json
import math

import arviz as az
import numpy as np
import pytest

from layoutopt import LayoutSpace, MetaPrior, Observations, Params, Posterior, PriorConfig, fit
from layoutopt.decide import propose
from layoutopt.infer.fitting import NutsOptions, SviOptions
from layoutopt.model.priors import PriorConfig as ModelPriorConfig
from layoutopt.model.priors import attribute_design

ADDITIVE = PriorConfig(pairwise=False)
# Eight headlines, odd ones "free": enough variants for the residual scale and the
# coefficient to be identified, so NUTS and Laplace can be compared on them.
HEADLINES = tuple(f"h{i}" for i in range(1, 9))
FREE = {h: i % 2 == 0 for i, h in enumerate(HEADLINES)}


def attr_space(labels=HEADLINES):
    return LayoutSpace(
        {"headline": list(labels), "image": ["a", "b", "c"]},
        attributes={"headline": {h: {"free": FREE.get(h, True)} for h in labels}},
    )


def attr_obs(space, seed, impressions=1000, free_effect=0.5):
    """Every layout observed; headline effect = free_effect * free + small noise."""
    rng = np.random.default_rng(seed)
    codes = space.codes(np.arange(space.size))
    free = space.attribute_matrix(0)[:, 0]
    main_h = free_effect * free + rng.normal(0, 0.15, len(free))
    main_i = np.array([0.0, 0.1, -0.1])
    eta = -3.0 + main_h[codes[:, 0]] + main_i[codes[:, 1]]
    imps = np.full(len(codes), impressions)
    return Observations.from_codes(space, codes, imps, rng.binomial(imps, 1 / (1 + np.exp(-eta))))


def test_prior_config_moved_but_old_import_works():
    assert ModelPriorConfig is PriorConfig
    assert PriorConfig().attribute_scale == 0.5
    with pytest.raises(ValueError, match=r"attribute_scale must be a number in \[1e-06, 100\]"):
        PriorConfig(attribute_scale=0.0)


def test_attribute_design_is_block_diagonal():
    space = LayoutSpace(
        {"a": ["x", "y"], "b": ["p", "q", "r"]},
        attributes={
            "a": {"x": {"f": True}, "y": {"f": False}},
            "b": {"p": {"t": "u"}, "q": {"t": "v"}, "r": {"t": "w"}},
        },
    )
    A, names = attribute_design(space)
    assert names == ["a:f", "b:t=v", "b:t=w"]
    np.testing.assert_array_equal(A, [[1, 0, 0], [0, 0, 0], [0, 0, 0], [0, 1, 0], [0, 0, 1]])


# ------------------------------------------------------------------------ attribute fits
@pytest.fixture(scope="module")
def attr_laplace():
    """(space, observations, Laplace fit) of the attribute world (no NUTS run)."""
    space = attr_space()
    obs = attr_obs(space, seed=0)
    # Additive model: with no true interactions the pair scales sit in NUTS's funnel and
    # short runs diverge; the attribute block is what is being compared here.
    lap = fit(space, obs, method="laplace", seed=0, num_samples=2000, prior=ADDITIVE)
    return space, obs, lap


@pytest.fixture(scope="module")
def attr_fits(attr_laplace):
    """:func:`attr_laplace` and the NUTS reference fit of the same data (tens of seconds)."""
    space, obs, lap = attr_laplace
    # The reference run is long enough to be healthy, not just lucky. Its slowest directions
    # are the intercept against the image effects (only their sum is identified; ESS ~135
    # per 1,000 draws) and the non-centred funnel of sigma_main at small scales (a scale
    # learned from 8 and 3 effects). 300 warm-up + 400 draws gave min ESS 63-128 over seeds
    # 0-4 before ModelSpec (3 of 5 under 100; seed 0 passed at 128) and 12-135 since: the
    # same model under another XLA graph rounds its float32 gradient differently and the
    # trajectory follows. 500 + 1,000 gives min ESS 133-412
    # and max r_hat <= 1.02 over seeds 0-7. Divergences (1-3, at sigma_main ~0.06) remain in
    # 3 of 8 seeds at target_accept 0.99-0.995 and warm-up up to 1,000, so seed 0 is a
    # checked one (r_hat 1.019, ESS 207, no divergence) -- the warning is never silenced.
    nuts = fit(
        space,
        obs,
        prior=ADDITIVE,
        method="nuts",
        seed=0,
        num_samples=1000,
        num_chains=2,
        num_warmup=500,
        options=NutsOptions(target_accept_prob=0.99, chain_method="sequential"),
    )
    return space, obs, lap, nuts


@pytest.mark.slow
def test_attribute_coefficient_laplace_agrees_with_nuts(attr_fits):
    space, _, lap, nuts = attr_fits
    assert lap.hyper["beta"].shape == (2000, 1) and nuts.hyper["beta"].shape == (1000, 1)
    # Composed main effects and the coefficient: means within 0.5 NUTS posterior sd (the
    # Monte Carlo error of the NUTS mean is ~0.07 sd at the ESS of ~200 seen here).
    for a, b in zip(lap.params.main, nuts.params.main, strict=True):
        diff = np.abs(np.mean(a, 0) - np.mean(b, 0))
        assert np.all(diff < 0.5 * np.std(b, 0)), (diff, np.std(b, 0))
    beta_l, beta_n = lap.hyper["beta"][:, 0], nuts.hyper["beta"][:, 0]
    assert abs(beta_l.mean() - beta_n.mean()) < 0.5 * beta_n.std()
    # The truth (0.5 per "free") lies in both 95% intervals.
    for b in (beta_l, beta_n):
        lo_, hi_ = np.quantile(b, [0.025, 0.975])
        assert lo_ < 0.5 < hi_


def test_tiny_attribute_scale_reduces_to_the_model_without_attributes():
    space = attr_space()
    plain = LayoutSpace({"headline": list(space.variants[0]), "image": list(space.variants[1])})
    obs = attr_obs(space, seed=1)
    S = 20000
    a = fit(space, obs, seed=0, prior=PriorConfig(attribute_scale=1e-6), num_samples=S)
    b = fit(plain, obs.to_space(plain), seed=0, prior=PriorConfig(), num_samples=S)
    assert np.abs(a.hyper["beta"]).max() < 1e-5
    # Two independent sets of S draws: means differ by Monte Carlo error, sd * sqrt(2 / S).
    for x, y in zip(a.params.main, b.params.main, strict=True):
        tol = 4 * np.std(y, 0) * math.sqrt(2 / S)
        assert np.all(np.abs(np.mean(x, 0) - np.mean(y, 0)) < tol)
        np.testing.assert_allclose(np.std(x, 0), np.std(y, 0), rtol=0.05)


@pytest.mark.slow
def test_new_variant_gets_its_attribute_prediction_and_thompson_tries_it(attr_laplace):
    space, obs, lap = attr_laplace
    new = space.with_variants({"headline": ["h9"]}, attributes={"headline": {"h9": {"free": True}}})
    post = fit(new, obs.to_space(new), seed=0, num_samples=4000, prior=ADDITIVE)
    main = post.params.main[0]
    beta = post.hyper["beta"][:, 0]
    resid = main[:, 8] - beta  # e[h9]: no data, so its prior N(0, sigma^2), independent of beta
    sigma = post.hyper["sigma_main"][0, 0]
    S = len(resid)
    assert abs(resid.mean()) < 4 * sigma / math.sqrt(S)
    assert abs(resid.std() / sigma - 1) < 4 / math.sqrt(2 * S)
    # Prediction before any data: close to the free headlines, far above the others.
    assert abs(main[:, 8].mean() - beta.mean()) < 4 * sigma / math.sqrt(S)
    assert main[:, 8].mean() > main[:, 1].mean() + 0.3
    # Old effects unchanged by adding a variant (same data, same model up to h9).
    np.testing.assert_allclose(post.mean_params().main[0][:8], lap.mean_params().main[0], atol=0.02)
    batch = propose(post, new, k=8, strategy="thompson", seed=2)
    assert (batch["headline"] == "h9").any()


def test_attribute_coefficients_saved_and_readable_by_arviz(attr_laplace, tmp_path):
    _, _, lap = attr_laplace
    path = tmp_path / "post.nc"
    lap.save(path)
    again = Posterior.load(path)
    np.testing.assert_array_equal(again.hyper["beta"], lap.hyper["beta"])
    assert again.space == lap.space
    idata = az.from_netcdf(path)
    assert list(idata.posterior["beta"].coords["attribute"].values) == ["headline:free"]
    summary = az.summary(idata, var_names=["beta"], hdi_prob=0.9)
    assert summary.shape[0] == 1


# ---------------------------------------------------------------------------- MetaPrior
def _post(space, intercept, main, pair=()):
    """A Posterior with the given draws (S leading)."""
    params = Params(
        np.asarray(intercept, np.float32),
        tuple(np.asarray(m, np.float32) for m in main),
        tuple(np.asarray(p, np.float32) for p in pair),
    )
    return Posterior(
        space=space, prior=PriorConfig(pairwise=bool(pair)), params=params, method="laplace"
    )


def _eb(x, v):
    """The documented estimator, written out independently."""
    n = len(x)
    mu = np.mean(x)
    tau2 = max(np.mean((x - mu) ** 2) + np.mean(v), 1e-4)
    return mu, tau2 + (tau2 + np.mean(v)) / n + math.sqrt(2 / (n - 1)) * (tau2 + np.mean(v))


def test_meta_prior_learn_matches_the_formulas_across_different_spaces():
    a = LayoutSpace({"headline": ["h1", "h2", "h3"], "image": ["x", "y"]})
    b = LayoutSpace({"image": ["x", "z"], "headline": ["h1", "h4"]})  # other order, labels
    rng = np.random.default_rng(0)
    S = 50
    pa = _post(
        a,
        rng.normal(-3, 0.1, S),
        [rng.normal([0.5, 0, -0.5], 0.1, (S, 3)), rng.normal([0.2, -0.2], 0.05, (S, 2))],
    )
    pb = _post(
        b,
        rng.normal(-2.5, 0.2, S),
        [rng.normal([0.1, -0.1], 0.05, (S, 2)), rng.normal([1.0, -1.0], 0.1, (S, 2))],
    )
    meta = MetaPrior.learn([pa, pb], sources=["spring", "summer"])
    assert meta.sources == ("spring", "summer") and not meta.pairwise
    h = [np.asarray(pa.params.main[0]), np.asarray(pb.params.main[1])]
    x = np.concatenate([d.mean(0) for d in h])
    v = np.concatenate([d.var(0) for d in h])
    np.testing.assert_allclose(meta.groups["main:headline"], _eb(x, v), rtol=1e-5)
    b0 = [np.asarray(p.params.intercept) for p in (pa, pb)]
    np.testing.assert_allclose(
        meta.groups["intercept"],
        _eb(np.array([d.mean() for d in b0]), np.array([d.var() for d in b0])),
        rtol=1e-5,
    )
    assert meta.counts["main:image"] == 2


def test_meta_prior_widens_a_prior_learned_from_few_campaigns():
    space = LayoutSpace({"h": ["a", "b"]})
    rng = np.random.default_rng(1)
    posts = [
        _post(
            space,
            rng.normal(-3, 0.3, (1, 1)).repeat(20, 0)[:, 0] + rng.normal(0, 0.01, 20),
            [rng.normal(0, 0.3, (20, 2))],
        )
        for _ in range(40)
    ]
    few = MetaPrior.learn(posts[:3]).groups["intercept"][1]
    many = MetaPrior.learn(posts).groups["intercept"][1]
    truth = 0.3**2
    assert many < few  # the estimation error shrinks with more campaigns
    assert 0.5 * truth < many < 2.5 * truth


def test_meta_prior_spec_gives_unseen_variants_their_group_prior():
    meta = MetaPrior(
        {
            "intercept": (-3.0, 0.04),
            "main:headline": (0.2, 0.09),
            "pair:headline|image": (0.0, 0.01),
            "attr:headline:free": (0.4, 0.01),
        },
        sources=("old",),
    )
    space = attr_space(("h1", "h2", "new"))
    spec = meta.spec(space)
    assert not spec.learn_scales
    np.testing.assert_allclose(spec.main_loc, [0.2, 0.2, 0.2, 0.0, 0.0, 0.0])
    np.testing.assert_allclose(spec.main_scale, [0.3, PriorConfig().main_scale])
    np.testing.assert_allclose(spec.beta_loc, [0.4])
    np.testing.assert_allclose(spec.pair_scale, [0.1])
    assert spec.intercept_loc == -3.0 and spec.intercept_scale == pytest.approx(0.2)
    # An unseen variant with no data: the Laplace posterior of its effect is its prior,
    # group mean + attribute prediction (mean 0.2 + 0.4 for a free one), sd from both.
    obs = attr_obs(space, seed=3)
    codes = obs.codes[obs.codes[:, 0] != 2]
    sub = Observations.from_codes(
        space, codes, obs.impressions[: len(codes)], obs.clicks[: len(codes)]
    )
    post = fit(space, sub, prior=meta, seed=0, num_samples=4000)
    new = post.params.main[0][:, 2] - post.params.main[0][:, 0] * 0  # composed effect
    e = new - post.hyper["beta"][:, 0]
    assert abs(e.mean() - 0.2) < 4 * 0.3 / math.sqrt(4000)
    assert abs(e.std() - 0.3) < 0.3 * 4 / math.sqrt(2 * 4000)
    assert post.prior.link == "logit" and post.method == "laplace"


@pytest.mark.slow
@pytest.mark.parametrize("method", ["laplace", "nuts", "svi"])
def test_fit_with_a_meta_prior_for_every_method(method, attr_laplace):
    space, obs, lap = attr_laplace
    meta = MetaPrior.learn([lap, lap], sources=["a", "b"])
    options = {
        "laplace": {"num_samples": 500},
        "nuts": {"num_samples": 600, "num_chains": 2, "num_warmup": 200},
        "svi": {"num_samples": 200, "options": SviOptions(num_steps=600, guide="diag")},
    }[method]
    post = fit(space, obs, method=method, prior=meta, seed=0, **options)
    # Fixed scales: sigma_main is the meta-prior's sd in every draw.
    sd = math.sqrt(meta.groups["main:headline"][1])
    np.testing.assert_allclose(post.hyper["sigma_main"][:, 0], sd, rtol=1e-5)
    assert abs(post.hyper["beta"].mean() - lap.hyper["beta"].mean()) < 0.15


def test_meta_prior_save_load_and_errors(tmp_path):
    meta = MetaPrior({"intercept": (-3.0, 0.04)}, ("camp-a", "camp-b"), "probit", False, {})
    path = tmp_path / "meta.json"
    meta.save(path)
    data = json.loads(path.read_text())
    assert data["sources"] == ["camp-a", "camp-b"] and data["link"] == "probit"
    assert MetaPrior.load(path) == meta
    assert meta.config().link == "probit" and not meta.config().pairwise
    with pytest.raises(ValueError, match="no such meta-prior file"):
        MetaPrior.load(tmp_path / "missing.json")
    (tmp_path / "other.json").write_text('{"a": 1}')
    with pytest.raises(ValueError, match="other.json: not a layoutopt meta-prior"):
        MetaPrior.load(tmp_path / "other.json")
    data["groups"]["intercept"]["variance"] = -1
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="bad.json: group 'intercept' .* positive variance"):
        MetaPrior.load(tmp_path / "bad.json")
    (tmp_path / "junk.json").write_text("{")
    with pytest.raises(ValueError, match="junk.json: not a readable meta-prior"):
        MetaPrior.load(tmp_path / "junk.json")


def test_meta_prior_learn_errors():
    space = LayoutSpace({"h": ["a", "b"]})
    post = _post(space, np.zeros(3), [np.zeros((3, 2))])
    with pytest.raises(ValueError, match="non-empty list of Posterior"):
        MetaPrior.learn([])
    with pytest.raises(ValueError, match="2 sources for 1 posteriors"):
        MetaPrior.learn([post], sources=["a", "b"])
    probit = Posterior(
        space=space, prior=PriorConfig(link="probit"), params=post.params, method="laplace"
    )
    with pytest.raises(ValueError, match="different links"):
        MetaPrior.learn([post, probit])
    with pytest.raises(ValueError, match="prior must be a PriorConfig, a MetaPrior or None"):
        fit(space, Observations.from_codes(space, [[0]], [10], [1]), prior={"a": 1})
