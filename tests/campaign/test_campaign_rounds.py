"""One campaign loop: a stored campaign proposes what the simulated driver proposes.

The driver plays a policy against a synthetic world; the same rounds' served rows are
ingested into a stored campaign, and ``Campaign.propose`` with the same policy and seed must
return the driver policy's next allocation exactly (same layouts, same weights, per segment
on a segment space): both run ``driver.round_step`` with ``driver.round_keys``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import layoutopt as lo
from layoutopt.campaign.campaign import Campaign
from layoutopt.campaign.rounds import allocation_frame
from layoutopt.decide import policies
from layoutopt.decide.driver import run
from layoutopt.sim.segments import SegmentWorld
from layoutopt.sim.simulate import SyntheticWorld

PLAIN = lo.LayoutSpace({"h": ["h0", "h1", "h2"], "i": ["i0", "i1"], "r": ["r0", "r1", "r2"]})
SEGMENTED = lo.LayoutSpace(
    {"h": ["h0", "h1", "h2"], "i": ["i0", "i1"], "r": ["r0", "r1"]},
    segments={"member": ["prime", "other"]},
)
BATCH, ROUNDS, SEED = 1500, 4, 7


def _world(segmented: bool):
    if segmented:
        return SegmentWorld.random(
            SEGMENTED,
            seed=9,
            shares=[0.7, 0.3],
            base_rate=0.08,
            main_scale=0.4,
            segment_scale=0.6,
        )
    return SyntheticWorld.random(PLAIN, seed=3, base_rate=0.08, main_scale=0.4)


def _served(space: lo.LayoutSpace, info) -> pd.DataFrame:
    """A round's served rows as a results table (labels, segment columns, counts)."""
    frame = space.frame(info.codes).drop(columns="index")
    if info.segments is not None:
        labels = pd.DataFrame([space.segment_of(int(g)) for g in info.segments])
        frame = pd.concat([frame, labels], axis=1)
    return frame.assign(impressions=info.impressions, clicks=info.clicks)


@pytest.mark.parametrize("strategy", ["thompson", "top_two"])
@pytest.mark.parametrize("segmented", [False, True], ids=["plain", "segments"])
def test_stored_campaign_proposes_what_the_driver_proposes(tmp_path, segmented, strategy):
    world = _world(segmented)
    space = world.space
    factory = getattr(policies, strategy)
    rounds = []
    run(
        factory(k=3),
        world,
        budget=ROUNDS * BATCH,
        batch_size=BATCH,
        seed=SEED,
        callback=rounds.append,
    )
    with Campaign.create(tmp_path / "c.db", space) as camp:
        for r in range(ROUNDS - 1):
            assert camp.ingest(_served(space, rounds[r])).round == r
            prop = camp.propose(k=3, strategy=strategy, seed=SEED)
            assert prop.round == r + 1 and prop.refit is not None
            want = allocation_frame(space, rounds[r + 1].allocation)
            # the same observations, prior, padding and keys: the same fit and draws, so
            # exact equality (no tolerance needed)
            pd.testing.assert_frame_equal(prop.layouts, want)
        stored = camp.proposals()
    if segmented:
        # one batch per segment, each with its segment column and weights summing to 1
        assert set(stored["member"]) == {"prime", "other"}
        sums = stored.groupby(["round", "member"])["weight"].sum().to_numpy()
        np.testing.assert_allclose(sums, 1.0, rtol=1e-12)


def test_traffic_mix_proposal_stays_available(tmp_path):
    world = _world(True)
    rounds = []
    run(
        policies.thompson(k=3, per_segment=False),
        world,
        budget=2 * BATCH,
        batch_size=BATCH,
        seed=SEED,
        callback=rounds.append,
    )
    with Campaign.create(tmp_path / "c.db", SEGMENTED) as camp:
        camp.ingest(_served(SEGMENTED, rounds[0]))
        prop = camp.propose(k=3, seed=SEED, per_segment=False)
    assert "member" not in prop.layouts.columns
    pd.testing.assert_frame_equal(prop.layouts, allocation_frame(SEGMENTED, rounds[1].allocation))
    np.testing.assert_allclose(prop.layouts["weight"].sum(), 1.0, rtol=1e-12)


def test_propose_without_new_data_reuses_the_fit_and_records_the_seed(tmp_path):
    world = _world(False)
    rounds = []
    run(
        policies.thompson(k=3),
        world,
        budget=BATCH,
        batch_size=BATCH,
        seed=SEED,
        callback=rounds.append,
    )
    with Campaign.create(tmp_path / "c.db", PLAIN) as camp:
        camp.ingest(_served(PLAIN, rounds[0]))
        first = camp.propose(k=3, seed=SEED)
        again = camp.propose(k=3, seed=SEED)
        other = camp.propose(k=3, seed=SEED + 1)
        assert again.refit is None and again.fit_id == first.fit_id == other.fit_id
        assert len(camp.store.fits(camp.campaign_id)) == 1
        assert camp.history()["seed"].tolist()[1:] == [SEED, SEED, SEED + 1]
