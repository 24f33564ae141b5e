"""half_life="auto": the discount chosen by prequential evidence (layoutopt.infer.drift)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit, gammaln, ndtr

import layoutopt as lo
from layoutopt.infer.drift import NO_DRIFT_PRIOR, Discount, candidates, log_predictive, log_prior

SPACE = lo.LayoutSpace({"headline": ["h1", "h2"], "image": ["a", "b"]})
BEFORE = np.array([0.08, 0.04, 0.04, 0.03])
AFTER = np.array([0.03, 0.04, 0.04, 0.08])


def _rounds(ctr_of_round, num_rounds, impressions=1500, seed=0):
    codes = SPACE.codes(np.arange(SPACE.size))
    rng = np.random.default_rng(seed)
    n = np.full(len(codes), impressions)
    rows = [(codes, n, rng.binomial(n, ctr_of_round(r)), np.full(4, r)) for r in range(num_rounds)]
    codes, n, clicks, rounds = (np.concatenate(c) for c in zip(*rows, strict=True))
    return lo.Observations.from_codes(SPACE, codes, n, clicks, round=rounds)


@pytest.mark.parametrize("link", ["logit", "probit"])
def test_log_predictive_matches_brute_force_integration(link):
    """Adaptive Gauss-Hermite against a fine trapezoid rule over eta (the exact oracle)."""
    m = np.array([-3.0, -2.5, -1.0, -3.2, 0.0])
    v = np.array([0.04, 0.5, 1e-4, 2.0, 0.3])
    n = np.array([500.0, 80.0, 1000.0, 20.0, 0.0])
    y = np.array([20.0, 9.0, 300.0, 0.0, 0.0])
    f = np.array([1.0, 0.7, 1.0, 0.3, 1.0])
    got = log_predictive(m, v, n, y, f, link)
    inv = expit if link == "logit" else ndtr
    for i in range(len(m)):
        eta = np.linspace(m[i] - 12 * np.sqrt(v[i]), m[i] + 12 * np.sqrt(v[i]), 200_001)
        p = inv(eta) * f[i]
        log_lik = y[i] * np.log(p) + (n[i] - y[i]) * np.log1p(-p)
        coef = gammaln(n[i] + 1) - gammaln(y[i] + 1) - gammaln(n[i] - y[i] + 1)
        dens = np.exp(log_lik + coef - 0.5 * (eta - m[i]) ** 2 / v[i]) / np.sqrt(2 * np.pi * v[i])
        want = np.log(np.trapezoid(dens, eta))
        # 24 nodes: ~1e-5 nats off where the integrand is far from Gaussian (a broad
        # prior over a probit tail); a round's scores differ by nats, so 1e-4 is plenty.
        assert got[i] == pytest.approx(want, abs=1e-4)


@pytest.mark.parametrize(
    "discount, newest, target, want",
    [
        (Discount(), 2, 3, [1, 1, 1, 0]),
        (Discount(half_life=1.0), 2, 3, [0.25, 0.5, 1, 0]),
        (Discount(since=2), 2, 3, [0, 0, 1, 0]),
        # before the change the change point has not happened: no discounting
        (Discount(since=3), 1, 2, [1, 1, 0, 0]),
        # at the change: nothing of the new tastes yet, the prior alone
        (Discount(since=3), 2, 3, [0, 0, 0, 0]),
    ],
)
def test_discount_weights_of_the_fit_before_a_round(discount, newest, target, want):
    rounds = np.array([0, 1, 2, 3])
    assert discount.before(target).weights(rounds, newest) == pytest.approx(want)


def test_candidates_list_no_discounting_first():
    found = [d.label for d in candidates([0, 0, 1, 2])]
    assert found[0] == "none"
    assert found[-2:] == ["change at round 1", "change at round 2"]
    assert "half-life 2" in found
    assert Discount(half_life=2.0, since=3).label == "change at round 3, half-life 2"


def test_the_prior_favours_no_discounting():
    found = candidates([0, 1, 2, 3])
    pi = np.exp(log_prior(found))
    assert pi.sum() == pytest.approx(1.0)
    assert pi[0] == pytest.approx(NO_DRIFT_PRIOR)
    assert np.ptp(pi[1:]) == pytest.approx(0.0)


def test_no_drift_chooses_no_discounting():
    """Stationary CTRs: every discount loses prequential evidence to no discounting, so the
    fit is the undiscounted one."""
    obs = _rounds(lambda r: BEFORE, 4)
    prior = lo.PriorConfig(base_rate=0.05)
    auto = lo.fit(SPACE, obs, half_life="auto", prior=prior, seed=0, num_samples=200)
    plain = lo.fit(SPACE, obs, prior=prior, seed=0, num_samples=200)
    d = auto.diagnostics
    assert d["half_life"] is None and d["change_round"] is None
    assert d["half_life_auto"].startswith("none ")
    # half-lives are within noise of no discounting here (tenths of a nat: the rounds are
    # large for 4 layouts), far from the ~2.5 nats the prior asks; a change point loses
    assert max(d["drift_scores"].values()) < 1.0
    assert max(v for k, v in d["drift_scores"].items() if k.startswith("change")) < -3.0
    np.testing.assert_allclose(
        auto.mean_params().intercept, plain.mean_params().intercept, atol=1e-5
    )


def test_a_change_of_taste_is_found_and_the_fit_is_the_oracle(tmp_path):
    """Tastes reverse at round 2 of 4: the change point wins and the fit weighs exactly
    the rounds after it, as a fit that knows the change point does."""
    obs = _rounds(lambda r: BEFORE if r < 2 else AFTER, 4)
    prior = lo.PriorConfig(base_rate=0.05)
    auto = lo.fit(SPACE, obs, half_life="auto", prior=prior, seed=0, num_samples=200)
    d = auto.diagnostics
    assert d["change_round"] == 2 and d["half_life"] is None
    assert d["drift_scores"]["change at round 2"] > 50  # nats: overwhelming, not noise
    late = obs.round >= 2
    oracle_obs = lo.Observations.from_codes(
        SPACE, obs.codes[late], obs.impressions[late], obs.clicks[late]
    )
    oracle = lo.fit(SPACE, oracle_obs, prior=prior, seed=0, num_samples=200)
    for a, b in zip(auto.mean_params().main, oracle.mean_params().main, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4)
    assert lo.best_layout(auto, SPACE).layout == {"headline": "h2", "image": "b"}
    # the choice travels with the posterior
    auto.save(tmp_path / "p.nc")
    assert lo.Posterior.load(tmp_path / "p.nc").diagnostics["change_round"] == 2


@pytest.mark.slow
def test_a_policy_chooses_at_every_refit():
    """policies.thompson(half_life="auto"): the driver's fits carry the choice; the first
    fit (one round, nothing to predict) keeps every round."""
    from layoutopt.sim.simulate import SyntheticWorld, run_campaign
    from layoutopt.sim.timeworld import TimeWorld

    infos = []
    run_campaign(
        TimeWorld(SyntheticWorld.random(SPACE, seed=0, base_rate=0.05)),  # rows keep rounds
        policy=lo.policies.thompson(k=2, num_samples=100, half_life="auto"),
        budget=2000,
        batch_size=1000,
        seed=0,
        callback=lambda info, rec: infos.append(info),
    )
    first, last = infos[0].posterior.diagnostics, infos[-1].posterior.diagnostics
    assert first["half_life_auto"].startswith("none ")
    assert "0 rounds scored" in first["half_life_auto"]
    assert "1 round scored" in last["half_life_auto"]
