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
