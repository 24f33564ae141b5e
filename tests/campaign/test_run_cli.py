"""``layoutopt campaign allocation | assign`` and propose's open round, in-process."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from test_run_assign import UNITS, open_campaign

from layoutopt.campaign.campaign import Campaign
from layoutopt.cli.app import main


@pytest.fixture()
def proposed(tmp_path):
    db = tmp_path / "c.db"
    with open_campaign(db) as camp:
        camp.propose(k=6, seed=5)
    return db


def test_allocation_and_assign_commands(proposed, tmp_path, capsys):
    out = tmp_path / "allocation.json"
    assert main(["campaign", "allocation", "--db", str(proposed), "-o", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["round"] == 1 and doc["hash"]["name"] == "layoutopt-sha256-53"
    assert abs(sum(lay["weight"] for lay in doc["layouts"]) - 1) < 1e-12
    assert doc["layouts"][-1]["threshold"] == 2**53
    units = tmp_path / "units.csv"
    pd.DataFrame({"unit": UNITS[:300]}).to_csv(units, index=False)
    result = tmp_path / "assignments.csv"
    argv = ["campaign", "assign", "--db", str(proposed), "--units", str(units), "-o", str(result)]
    assert main(argv) == 0
    assert "300 units assigned" in capsys.readouterr().err
    got = pd.read_csv(result, dtype={"unit": str})
    with Campaign.open(proposed) as camp:
        want = camp.assign(UNITS[:300])
    assert list(got.columns) == list(want.columns)
    assert got["index"].tolist() == want["index"].tolist()
    assert (got["propensity"] - want["propensity"]).abs().max() < 1e-12
    assert doc["salt"] == camp.salt


def test_commands_fail_in_one_line(proposed, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"visitor": ["a"]}).to_csv(bad, index=False)
    out = tmp_path / "a.csv"
    assert (
        main(["campaign", "assign", "--db", str(proposed), "--units", str(bad), "-o", str(out)])
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {bad}: no 'unit' column; columns: ['visitor']"]
    assert not out.exists()
    fresh = tmp_path / "fresh.db"
    open_campaign(fresh).close()
    assert main(["campaign", "allocation", "--db", str(fresh), "-o", str(tmp_path / "x.json")]) == 2
    assert "nothing proposed yet" in capsys.readouterr().err


def test_propose_twice_without_data_returns_the_open_round(proposed, tmp_path, capsys):
    with Campaign.open(proposed) as camp:
        first = camp.proposals()
        again = camp.propose(k=4, strategy="top_two", seed=9)
        assert again.round == 1 and camp.rounds == 1
        assert "round 1 is still open" in again.note and again.refit is None
        assert again.layouts["index"].tolist() == first["index"].tolist()
        assert again.layouts["weight"].tolist() == first["weight"].tolist()
    nxt = tmp_path / "next.csv"
    argv = ["campaign", "propose", "--db", str(proposed), "--k", "3", "-o", str(nxt)]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "note: round 1 is still open" in err and "round 1:" in err
    assert pd.read_csv(nxt)["index"].tolist() == first["index"].tolist()
    with Campaign.open(proposed) as camp:
        assert camp.rounds == 1
        camp.ingest(
            pd.read_csv(nxt).drop(columns=["index", "weight"]).assign(impressions=10, clicks=1)
        )
        assert camp.propose(k=3, seed=2).round == 2  # answered: a new round
        assert camp.propose(k=3, seed=3, new_round=True).round == 3
