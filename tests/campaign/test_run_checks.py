"""Sample-ratio checks per round from ingested rows that name their round, and their status
lines."""

from __future__ import annotations

import numpy as np
from test_run_assign import open_campaign, served

from layoutopt.campaign.checks import SRM_ALPHA
from layoutopt.cli.app import main

UNITS = [f"u{i}" for i in range(12_000)]


def test_honest_rounds_pass_and_a_skewed_round_is_flagged(tmp_path, capsys):
    db = tmp_path / "c.db"
    with open_campaign(db) as camp:
        camp.propose(k=6, seed=5)
        a1 = camp.assign(UNITS)
        camp.ingest(served(a1, 1, seed=2).assign(round=1))
        camp.propose(k=6, seed=6)
        # returning units keep their layouts: the plan is the cohorts' mixture, not w_2
        a2 = camp.assign(UNITS + [f"new-{i}" for i in range(4000)])
        camp.ingest(served(a2, 1, seed=3).assign(round=2))
        checks = camp.sample_ratios()
    with open_campaign(tmp_path / "skewed.db") as camp:  # the same round 1, 20% of one lost
        camp.propose(k=6, seed=5)
        a = camp.assign(UNITS)
        second = a["index"].value_counts().index[1]
        rng = np.random.default_rng(4)
        lost = (a["index"] == second).to_numpy() & (rng.random(len(a)) < 0.2)
        camp.ingest(served(a[~lost], 1, seed=2).assign(round=1))
        (skewed,) = camp.sample_ratios()
    assert [c.round for c in checks] == [1, 2]
    # honest rounds: a false alarm has probability SRM_ALPHA each
    assert not checks[0].check.mismatch and not checks[1].check.mismatch
    assert checks[0].check.p_value > SRM_ALPHA and checks[1].check.observed.sum() == 16_000
    bad = skewed.check
    # ~400 of ~2,000 impressions lost: about 9 standard errors, chi-square far past 1e-6
    assert bad.mismatch and bad.p_value < 1e-6
    assert skewed.index[bad.worst] == second
    assert main(["campaign", "status", "--db", str(tmp_path / "skewed.db")]) == 0
    (line,) = [ln for ln in capsys.readouterr().out.splitlines() if "sample ratio" in ln]
    assert "round 1: sample ratio mismatch, p = " in line and f"(index {second})" in line
    assert main(["campaign", "status", "--db", str(db)]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "sample ratio" in ln]
    assert [ln.split(":")[0] for ln in lines] == ["round 1", "round 2"]
    assert all("sample ratio ok" in ln for ln in lines)


def test_unplanned_layout_and_rounds_without_a_round_column(tmp_path):
    with open_campaign(tmp_path / "c.db") as camp:
        prop = camp.propose(k=2, seed=5)
        assert camp.sample_ratios() == []  # round-0 data name no proposed round
        planned = set(prop.layouts["index"].astype(int))
        other = next(i for i in range(camp.space.size) if i not in planned)
        row = camp.space.frame(camp.space.codes(np.array([other])))
        camp.ingest(served(row, 50, seed=1).assign(round=1))
        (check,) = camp.sample_ratios()
    assert check.check.mismatch and check.check.p_value == 0.0
    assert check.index[check.check.worst] == other


def test_a_round_is_checked_against_the_holdout_it_was_served_with(tmp_path):
    control = {"headline": "h1", "image": "i2", "reviews": "none"}
    with open_campaign(tmp_path / "c.db", holdout=0.3, control=control) as camp:
        camp.propose(k=6, seed=5)
        a = camp.assign(UNITS[:3000])  # ~900 units held out on the control
        camp.set_holdout(0.0)  # the holdout ends after round 1 was served
        camp.ingest(served(a, 1, seed=2).assign(round=1))
        (check,) = camp.sample_ratios()
        assert camp.proposal_options()[1]["holdout"] == 0.3
    # against round 1's own plan (30% to the control) the traffic is as planned; against
    # today's 0% the ~900 control impressions would be a mismatch far past 1e-6
    assert not check.check.mismatch and check.check.p_value > SRM_ALPHA
