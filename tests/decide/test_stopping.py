"""The stopping rule: its verdicts, a posterior's decision, and a simulated campaign that stops."""

from __future__ import annotations

import numpy as np
import pytest

import layoutopt as lo
from layoutopt.decide import policies
from layoutopt.decide.stopping import Decision, StopRule, decision
from layoutopt.score.loss import expected_loss
from layoutopt.sim.simulate import SyntheticWorld, run_campaign

SPACE = lo.LayoutSpace({"h": ["h0", "h1", "h2"], "i": ["i0", "i1", "i2"], "r": ["r0", "r1"]})


def _world():
    return SyntheticWorld.random(SPACE, seed=4, base_rate=0.05, main_scale=0.5)


@pytest.fixture(scope="module")
def posterior():
    world = _world()
    codes = np.asarray([SPACE.codes_of(i) for i in range(SPACE.size)], np.int32)
    n = np.full(len(codes), 150)
    ctr = world.truth(np.arange(SPACE.size), None, 0)
    clicks = np.random.default_rng(0).binomial(n, ctr)
    obs = lo.Observations(SPACE, codes, n, clicks)
    return lo.fit(SPACE, obs, method="laplace", seed=0, num_samples=400)


def test_rule_checks_its_fields_and_round_trips():
    with pytest.raises(ValueError, match="needs max_value_remaining or max_expected_loss"):
        StopRule(max_value_remaining=None)
    with pytest.raises(ValueError, match="quantile must lie in"):
        StopRule(quantile=1.0)
    with pytest.raises(ValueError, match="max_expected_loss must be a finite number"):
        StopRule(max_expected_loss=-1.0)
    with pytest.raises(ValueError, match="min_rounds must be a whole number"):
        StopRule(min_rounds=1.5)
    rule = StopRule(max_value_remaining=0.02, max_expected_loss=1e-4, min_rounds=3)
    assert StopRule.from_json(rule.to_json()) == rule
    with pytest.raises(ValueError, match="unknown stop-rule fields \\['patience'\\]"):
        StopRule.from_json('{"patience": 3}')


def test_verdicts_name_the_threshold():
    rule = StopRule(max_value_remaining=0.01, max_expected_loss=1e-4, min_rounds=2)
    assert rule.verdict(0.001, 1.0, 1, 10) == (False, "1 of at least 2 rounds")
    stop, why = rule.verdict(0.005, 1.0, 2, 10)
    assert stop and why.startswith("value remaining 0.50% <= 1.00%")
    stop, why = rule.verdict(0.5, 5e-5, 2, 10)
    assert stop and why.startswith("expected loss")
    stop, why = rule.verdict(0.5, 1.0, 2, 10)
    assert not stop and "value remaining 50.00% > 1.00%" in why and "expected loss" in why
    assert StopRule(min_impressions=100).verdict(0.0, 0.0, 9, 99)[0] is False


def test_decision_reports_the_leaders_loss(posterior):
    d = decision(posterior, StopRule(max_value_remaining=10.0))
    best = lo.best_layout(posterior)
    assert d.leader.index == best.index and d.leader.layout == best.layout
    loss = expected_loss(posterior, [best.layout], quantile=0.95)
    assert d.expected_loss == pytest.approx(float(loss.expected_loss[0]), rel=1e-12)
    assert d.value_remaining == pytest.approx(float(loss.value_remaining[0]), rel=1e-12)
    assert d.p_best == pytest.approx(best.p_best, abs=1e-12)
    assert d.stop and "value remaining" in d.reason
    tight = decision(posterior, StopRule(max_value_remaining=0.0))
    assert not tight.stop and tight.value_remaining > 0
    line = tight.line()
    assert line.startswith("continue") and "expected loss" in line and "value remaining" in line
    with pytest.raises(ValueError, match="pass rounds="):
        decision(posterior, StopRule(min_rounds=2))


def test_simulated_campaign_stops_by_the_rule():
    rule = StopRule(max_value_remaining=0.05, min_rounds=2)
    kw = dict(policy=policies.thompson(k=4, num_samples=200), batch_size=1000, seed=0)
    seen: list[Decision] = []
    res = run_campaign(
        _world(), budget=30_000, stop=rule, callback=lambda i, r: seen.append(i.decision), **kw
    )
    stop_at = len(res.impressions)
    assert stop_at < 30 and res.stop[-1] and not res.stop[:-1].any()
    assert res.value_remaining[-1] <= 0.05 < res.value_remaining[:-1].min()
    assert all(isinstance(d, Decision) for d in seen) and len(seen) == stop_at
    # the rule only ends the campaign: its rounds are those of the same campaign without it
    full = run_campaign(_world(), budget=stop_at * 1000, **kw)
    np.testing.assert_array_equal(full.pick_index, res.pick_index)
    assert np.isnan(full.expected_loss).all() and not full.stop.any()


def test_stop_needs_a_model_policy():
    with pytest.raises(ValueError, match="stop= needs a policy that fits a model"):
        run_campaign(
            _world(), policies.uniform(), budget=2000, batch_size=1000, seed=0, stop=StopRule()
        )
