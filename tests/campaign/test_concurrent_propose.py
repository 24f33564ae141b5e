"""Concurrent proposers: a round is numbered, seeded and written with its options in one
transaction, so two processes proposing at once never record two rounds from one seed."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from layoutopt.campaign.campaign import Campaign
from layoutopt.campaign.proposal_options import proposal_options
from layoutopt.campaign.store import RoundConflict
from layoutopt.model.space import LayoutSpace

SPACE = LayoutSpace({"a": ["a1", "a2", "a3"], "b": ["b1", "b2"], "c": ["c1", "c2", "c3"]})


def _results(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = SPACE.frame(SPACE.codes(np.arange(SPACE.size))).drop(columns="index")
    return frame.assign(impressions=500, clicks=rng.binomial(500, 0.05, len(frame)))


@pytest.fixture
def fitted(store_target):
    with Campaign.create(store_target, SPACE) as camp:
        camp.ingest(_results(0))
        camp.fit(seed=0, num_samples=100)
    return store_target


def test_a_stale_proposal_writes_nothing(fitted):
    with Campaign.open(fitted) as camp:
        with pytest.raises(RoundConflict, match="round 0 was proposed.*computed round 2"):
            camp.store.add_proposal(
                camp.campaign_id,
                {"fit_id": None, "seed": 2, "strategy": "thompson", "k": 1, "rows": []},
                expected_round=2,
            )
        assert camp.store.proposals(camp.campaign_id) == []


def test_the_default_seed_is_the_round_and_options_land_with_it(fitted):
    with Campaign.open(fitted) as camp:
        first = camp.propose(k=3, seed=None, min_share=0.05)
        camp.ingest(_results(1))
        second = camp.propose(k=3, seed=None)
        assert (first.round, first.seed, second.round, second.seed) == (1, 1, 2, 2)
        options = proposal_options(camp.store, camp.campaign_id)
        assert options[1]["min_share"] == 0.05 and options[2]["min_share"] == 0.0


_PROPOSE = """
import sys
from layoutopt.cli.app import main
sys.exit(main(["campaign", "propose", "--db", sys.argv[1], "--k", "3"]))
"""


@pytest.mark.slow
def test_concurrent_proposes_without_a_seed_never_share_one(fitted):
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _PROPOSE, fitted],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    with Campaign.open(fitted) as camp:
        rounds = camp.store.proposals(camp.campaign_id)
        options = proposal_options(camp.store, camp.campaign_id)
    # nothing was ingested between them: one round, the others found it open
    assert [(r["round"], r["seed"]) for r in rounds] == [(1, 1)]
    assert set(options) == {1}
    said = [out + err for out, err in outs]
    assert all("round 1" in text for text in said), said
