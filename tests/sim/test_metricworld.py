"""Worlds of several metrics through the one driver: every metric counted, a policy on the
objective, the stopping rule deciding on the value, guardrails respected."""

import numpy as np
import pytest

import layoutopt as lo
from layoutopt.decide import driver, policies
from layoutopt.model.core import Params

SPACE = lo.LayoutSpace({"h": ["a", "b", "c"], "i": ["x", "y"], "r": ["on", "off"]})
CONTROL = {"h": "a", "i": "x", "r": "off"}
W = lo.simulate.SyntheticWorld


def _world(main, base):
    """An additive world: ``main`` = one array of effects per component (logit scale)."""
    intercept = np.log(base / (1 - base))
    return W(SPACE, Params(np.asarray(intercept), tuple(np.asarray(m, float) for m in main), ()))


# clicks: h=c best, i=x and r=on a little better; sign-ups: i=y doubles them (worth more than
# the clicks i=x adds, at 30 a sign-up); dismissals: h=c doubles them
CLICKS = _world([[0, 0.2, 0.5], [0.1, 0], [0.3, 0]], 0.05)
SIGNUPS = _world([[0, 0, 0], [0, np.log(2)], [0, 0]], 0.004)
DISMISSALS = _world([[0, 0, np.log(2)], [0, 0], [0, 0]], 0.03)


def test_the_ledger_counts_every_metric_as_served():
    world = lo.simulate.MetricWorld({"clicks": CLICKS, "signups": SIGNUPS})
    _, obs = driver.run(policies.uniform(), world, budget=120_000, batch_size=40_000, seed=3)
    assert obs.metric_names == ("clicks", "signups")
    idx = SPACE.indices(obs.codes)
    for metric, counts in (("clicks", obs.clicks), ("signups", obs.counts["signups"])):
        rate = world.rate(metric, idx)
        z = (counts - obs.impressions * rate) / np.sqrt(obs.impressions * rate * (1 - rate))
        assert np.all(np.abs(z) < 4.5), (metric, z)  # 12 layouts: |z| < 4.5 fails w.p. 1e-4
    same = driver.run(policies.uniform(), world, budget=120_000, batch_size=40_000, seed=3)[1]
    np.testing.assert_array_equal(same.counts["signups"], obs.counts["signups"])


def test_a_policy_on_a_weighted_objective_ships_the_value_best_and_stops_on_the_value():
    objective = {"clicks": 1, "signups": 30}
    world = lo.simulate.MetricWorld({"clicks": CLICKS, "signups": SIGNUPS}, objective=objective)
    clicks_best = CLICKS.best().layout
    assert world.best().layout["i"] == "y" and world.best().layout != clicks_best
    policy = policies.on_objective(
        policies.thompson(k=6, num_samples=200), policies.fit_objective(objective), k=6
    )
    decisions = []
    result = lo.simulate.run_campaign(
        world,
        policy,
        budget=300_000,
        batch_size=30_000,
        seed=0,
        stop=lo.StopRule(max_value_remaining=0.05),
        callback=lambda info, rec: decisions.append(info.decision),
    )
    assert result.stop[-1] and len(result.stop) < 10  # stopped before the budget
    assert SPACE.layout(int(result.pick_index[-1])) == world.best().layout
    assert result.simple_regret[-1] == 0.0
    # the verdict was the value's: its leader is the objective's pick, not the clicks' best
    assert decisions[-1].leader.index == result.pick_index[-1]
    assert decisions[-1].leader.layout["i"] == "y"


def test_a_guardrail_keeps_the_clicks_best_from_being_shipped():
    guard = {"dismissals": {"max_relative_increase": 0.10, "probability": 0.9}}
    world = lo.simulate.MetricWorld(
        {"clicks": CLICKS, "dismissals": DISMISSALS}, guardrails=guard, control=CONTROL
    )
    assert not world.admissible([CLICKS.best().index])[0]  # h=c doubles dismissals
    policy = policies.on_objective(
        policies.thompson(k=6, num_samples=200),
        policies.fit_objective(guardrails=guard, control=CONTROL),
        k=6,
    )
    result = lo.simulate.run_campaign(world, policy, budget=120_000, batch_size=20_000, seed=1)
    picks = result.pick_index[1:]  # after the design round
    assert world.admissible(picks).all()
    assert SPACE.layout(int(picks[-1]))["h"] == "b"  # the best that passes


def test_bad_worlds_are_refused():
    with pytest.raises(ValueError, match="need a 'clicks' world"):
        lo.simulate.MetricWorld({"signups": SIGNUPS})
    with pytest.raises(ValueError, match=r"no world for metric\(s\) \['signups'\]"):
        lo.simulate.MetricWorld({"clicks": CLICKS}, objective={"clicks": 1, "signups": 30})
    with pytest.raises(ValueError, match="relative to a control layout"):
        lo.simulate.MetricWorld(
            {"clicks": CLICKS, "dismissals": DISMISSALS},
            guardrails={"dismissals": {"max_relative_increase": 0.1, "probability": 0.9}},
        )
    value_of = policies.fit_objective({"clicks": 1, "signups": 2})
    obs = lo.Observations.from_codes(SPACE, [[0, 0, 0]], [100], [5])
    post = lo.fit(SPACE, obs, num_samples=10)
    with pytest.raises(ValueError, match=r"needs metric\(s\) \['signups'\]; the observations"):
        value_of(post, None, obs)
