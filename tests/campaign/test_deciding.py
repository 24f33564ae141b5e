"""A stored campaign's stopping rule: the verdict of every fit recorded, the CLI's lines."""

from __future__ import annotations

import pytest
from test_campaign import SPACE, served

from layoutopt.campaign.campaign import Campaign
from layoutopt.cli.app import main
from layoutopt.decide.design import initial_design
from layoutopt.decide.stopping import StopRule, decision


def _campaign(target):
    camp = Campaign.create(target, SPACE, name="signup")
    camp.ingest(served(SPACE, initial_design(SPACE, seed=0), 300, seed=1))
    return camp


def test_every_fit_records_the_rules_verdict(store_target):
    with _campaign(store_target) as camp:
        assert camp.stop_rule() == StopRule()  # the default until one is set
        assert camp.latest_decision() is None
        post = camp.fit(seed=0)
        recorded = camp.latest_decision()
        assert recorded is not None
        want = decision(post, StopRule(), rounds=camp.rounds, impressions=300 * 9)
        assert recorded.leader.index == want.leader.index
        assert recorded.expected_loss == pytest.approx(want.expected_loss, rel=1e-12)
        assert recorded.value_remaining == pytest.approx(want.value_remaining, rel=1e-12)
        assert recorded.stop == want.stop and recorded.reason == want.reason
        loose = camp.set_stop_rule({"max_value_remaining": 10.0})
        assert camp.decision().stop and camp.stop_rule() == loose
        with pytest.raises(ValueError, match="unknown stop-rule fields"):
            camp.set_stop_rule({"patience": 2})
        assert camp.stop_rule() == loose  # nothing stored by the refused rule
        camp.ingest(served(SPACE, initial_design(SPACE, seed=0), 300, seed=2))
        camp.fit(seed=1)
        frame = camp.decisions()
    with Campaign.open(store_target) as camp:  # another process reads the same
        assert camp.decisions().equals(frame)
    assert frame["verdict"].tolist() == ["stop", "stop"]
    assert frame["fit_id"].is_monotonic_increasing and (frame["expected_loss"] >= 0).all()


def test_cli_decide_and_status(tmp_path, capsys):
    db = str(tmp_path / "c.db")
    with _campaign(db) as camp:
        camp.fit(seed=0)
    assert main(["campaign", "decide", "--db", db, "--value-remaining", "0"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("continue: leader") and "expected loss" in out
    args = ["campaign", "decide", "--db", db, "--value-remaining", "5", "--set"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("stop and ship") and "stored rule" in captured.err
    assert main(["campaign", "status", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "decision: stop and ship" in out and "value remaining" in out
    assert main(["campaign", "decide", "--db", db, "--quantile", "2"]) == 2
    assert "quantile must lie in (0, 1)" in capsys.readouterr().err
