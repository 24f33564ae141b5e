"""The traffic floor and burn-in: weights, added layouts, a simulated and a stored campaign."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import layoutopt as lo
from layoutopt.campaign.campaign import Campaign
from layoutopt.cli.app import main
from layoutopt.decide import policies
from layoutopt.decide.floor import floor_allocation, floor_weights, variant_impressions
from layoutopt.decide.interface import Allocation
from layoutopt.sim.simulate import SyntheticWorld, run_campaign

SPACE = lo.LayoutSpace({"h": ["h0", "h1", "h2", "h3"], "i": ["i0", "i1"], "r": ["r0", "r1"]})


def test_floor_weights_keep_order_and_sum():
    w = floor_weights(np.array([0.7, 0.2, 0.1, 0.0]), 0.1)
    np.testing.assert_allclose(w, [0.1 + 0.6 * 0.7, 0.1 + 0.6 * 0.2, 0.1 + 0.6 * 0.1, 0.1])
    assert w.sum() == pytest.approx(1.0) and (np.diff(w) <= 0).all()
    np.testing.assert_allclose(floor_weights(np.zeros(4), 0.1), 0.25)
    with pytest.raises(ValueError, match="at most 0.25 fits 4 layouts"):
        floor_weights(np.ones(4), 0.3)


def test_burn_in_brings_in_unseen_variants():
    codes = np.array([[0, 0, 0], [1, 0, 1]], np.int32)
    obs = lo.Observations(SPACE, codes, np.array([900, 900]), np.array([50, 40]))
    alloc = Allocation(codes, np.array([0.9, 0.1]), "multinomial")
    out = floor_allocation(alloc, SPACE, obs, min_share=0.05, burn_in=100, pick=0)
    seen = variant_impressions(SPACE, obs)
    assert seen[0].tolist() == [900, 900, 0, 0] and seen[1].tolist() == [1800, 0]
    # h2, h3 and i1 are unseen: each brought in on the leader (index 0: h0 i0 r0) at the floor
    added = {tuple(c) for c in out.codes[2:]}
    assert added == {(2, 0, 0), (3, 0, 0), (0, 1, 0)}
    np.testing.assert_allclose(out.weights[2:], 0.05)
    assert out.weights.sum() == pytest.approx(1.0) and out.weights[0] > out.weights[1]


def test_burn_in_steps_around_forbidden_layouts_and_per_segment():
    space = lo.LayoutSpace(
        {"h": ["h0", "h1", "h2"], "i": ["i0", "i1"]},
        forbidden=[{"h": "h2", "i": "i0"}],
        segments={"member": ["prime", "other"]},
    )
    codes = np.array([[0, 0], [1, 1], [0, 0]], np.int32)
    alloc = Allocation(codes, np.array([0.8, 0.2, 1.0]), "round", np.array([0, 0, 1]))
    obs = lo.Observations(
        space, np.array([[0, 0], [1, 1]], np.int32), np.array([50, 50]), np.array([1, 1])
    )
    out = floor_allocation(alloc, space, obs, min_share=0.1, burn_in=10, pick=-1)
    seg0 = {tuple(c) for c in out.codes[out.segments == 0]}
    seg1 = {tuple(c) for c in out.codes[out.segments == 1]}
    # h2 next to the leader h0/i0 is forbidden: the switch is made on h1/i1 instead
    assert (2, 1) in seg0 and (2, 0) not in seg0
    # segment 1 has only h0/i0: h2/i0 is forbidden, so i is switched as well
    assert seg1 == {(0, 0), (2, 1)}
    for g in (0, 1):
        w = out.weights[out.segments == g]
        assert w.sum() == pytest.approx(1.0) and w.min() >= 0.1 - 1e-12


def test_simulated_campaign_honours_floor_and_burn_in():
    world = SyntheticWorld.random(SPACE, seed=3, base_rate=0.05, main_scale=0.6)
    policy = policies.with_floor(
        policies.thompson(k=2, num_samples=200), min_share=0.1, burn_in=300
    )
    infos = []
    run_campaign(
        world, policy, budget=8000, batch_size=1000, seed=0, callback=lambda i, r: infos.append(i)
    )
    prev = None
    for info in infos:
        alloc = info.allocation
        w = np.asarray(alloc.weights) / np.sum(alloc.weights)
        assert w.min() >= 0.1 - 1e-12  # the floor, every round
        if prev is not None:  # every variant under its burn-in before the round is served
            for k, counts in enumerate(variant_impressions(SPACE, prev)):
                for v in np.flatnonzero(counts < 300):
                    assert (alloc.codes[:, k] == v).any(), (info.round, k, v)
        prev = info.observations
    seen = variant_impressions(SPACE, infos[-1].observations)
    assert min(int(c.min()) for c in seen) >= 300


def test_stored_campaign_records_its_floor(tmp_path):
    design = lo.initial_design(SPACE, seed=0)
    frame = design[list(SPACE.components)].astype(str)
    frame["impressions"] = 400
    frame["clicks"] = np.random.default_rng(0).binomial(400, 0.05, len(frame))
    with Campaign.create(str(tmp_path / "c.db"), SPACE, name="floor") as camp:
        camp.ingest(frame)
        prop = camp.propose(k=3, seed=1, min_share=0.2, burn_in=50)
        plain = camp.propose(k=3, seed=2, new_round=True)
        no_holdout = {"holdout": 0.0, "control": None}  # recorded with every round
        assert camp.proposal_options() == {
            prop.round: {"min_share": 0.2, "burn_in": 50} | no_holdout,
            plain.round: {"min_share": 0.0, "burn_in": 0} | no_holdout,
        }
    w = prop.layouts["weight"].to_numpy()
    assert w.min() >= 0.2 - 1e-9 and w.sum() == pytest.approx(1.0)
    assert plain.round == prop.round + 1
    with pytest.raises(ValueError, match="min_share must lie in"):
        policies.with_floor(policies.thompson(), min_share=1.5)


def test_cli_propose_with_a_floor(tmp_path):
    db = str(tmp_path / "c.db")
    design = lo.initial_design(SPACE, seed=0)
    frame = design[list(SPACE.components)].astype(str)
    frame["impressions"], frame["clicks"] = 300, 15
    with Campaign.create(db, SPACE, name="floor") as camp:
        camp.ingest(frame)
    out = tmp_path / "next.csv"
    args = ["campaign", "propose", "--db", db, "-k", "3", "-o", str(out), "--min-share", "0.3"]
    assert main(args) == 0
    w = pd.read_csv(out)["weight"]
    assert w.min() >= 0.3 - 1e-9 and w.sum() == pytest.approx(1.0, abs=1e-6)
