"""on_objective: a model policy run by the one driver, proposing on an objective."""

import numpy as np
import pytest

import layoutopt as lo
from layoutopt.decide.objective_policy import on_objective
from layoutopt.sim.simulate import SyntheticWorld, run_campaign

SPACE = lo.LayoutSpace({"h": ["a", "b", "c"], "i": ["x", "y"], "r": ["on", "off"]})
CONTROL = {"h": "a", "i": "x", "r": "on"}


def test_the_driver_never_serves_a_layout_that_fails_the_guardrail():
    # the guarded metric is the clicks model itself, bounded at the control's rate: a
    # layout passes only when its CTR is surely no higher than the control's
    seen, served = [], []

    def value_of(post, key, observations):
        vp = lo.ObjectivePosterior.create(
            {"clicks": post, "dismissals": post},
            "clicks",
            {"dismissals": {"max_relative_increase": 0.0, "probability": 0.8}},
            control=CONTROL,
        )
        report = lo.guardrail_report(vp, SPACE.codes(np.arange(SPACE.size)))
        seen.append(set(report.loc[report["passes"], "index"]))
        return vp

    def record(info, rec):
        served.append(info)

    policy = on_objective(lo.policies.thompson(k=4, num_samples=200), value_of, k=4)
    world = SyntheticWorld.random(SPACE, seed=3, base_rate=0.05, main_scale=0.4)
    run_campaign(world, policy, budget=6000, batch_size=2000, seed=0, callback=record)
    # a step fits on rounds 1, 2 and after the last (the final pick); round r's info holds
    # the allocation served in round r (from the fit before it) and the pick after it
    assert len(seen) == 3 and all(len(p) < SPACE.size for p in seen)  # some fail
    for r, info in enumerate(served):
        if r:
            assert set(SPACE.indices(info.allocation.codes).tolist()) <= seen[r - 1]
        assert info.pick in seen[r]
    assert policy.name == "thompson (objective)"


def test_unknown_strategy_is_refused():
    with pytest.raises(ValueError, match="unknown strategy 'best'"):
        on_objective(lo.policies.thompson(k=2), lambda p, k: p, k=2, strategy="best")
