"""Campaign.fit(half_life="auto") and `campaign fit --half-life auto`: the choice is
recorded with the fit, reused by propose, and shown by `campaign status`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from layoutopt.campaign.campaign import Campaign
from layoutopt.cli.app import main
from layoutopt.model.space import LayoutSpace

SPACE = LayoutSpace({"headline": ["h1", "h2"], "image": ["a", "b"]})
BEFORE = np.array([0.08, 0.04, 0.04, 0.03])
AFTER = np.array([0.03, 0.04, 0.04, 0.08])


def rounds_csv(path, rounds, change, seed=0, n=1500):
    """Every layout in every round of ``rounds``, tastes reversed from round ``change``."""
    rng = np.random.default_rng(seed)
    frame = SPACE.frame(SPACE.codes(np.arange(SPACE.size)))
    parts = []
    for r in rounds:
        ctr = BEFORE if r < change else AFTER
        parts.append(frame.assign(impressions=n, clicks=rng.binomial(n, ctr), round=r))
    pd.concat(parts).to_csv(path, index=False)
    return path


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.slow
def test_auto_half_life_is_recorded_reused_and_shown(tmp_path, capsys):
    db = str(tmp_path / "c.db")
    with Campaign.create(db, SPACE) as camp:
        camp.ingest(rounds_csv(tmp_path / "r.csv", range(4), change=2))
        post = camp.fit(seed=0, num_samples=100, half_life="auto")
        assert post.diagnostics["change_round"] == 2
        latest = camp.latest_fit()
        assert latest["options"]["half_life"] == "auto"
        assert latest["diagnostics"]["change_round"] == 2
        assert latest["diagnostics"]["half_life_auto"].startswith("change at round 2 ")
        camp.ingest(rounds_csv(tmp_path / "r4.csv", [4], change=2, seed=1))
        camp.propose(k=2, seed=1)  # data arrived: refits with half_life="auto" again
        again = camp.latest_fit()
        assert again["id"] != latest["id"] and again["options"]["half_life"] == "auto"
        assert again["diagnostics"]["change_round"] == 2
        html = camp.report(tmp_path / "report.html").read_text()
        assert "half_life_auto" in html and "change at round 2 (prequential" in html
    code, out, err = run(capsys, "campaign", "fit", "--db", db, "--half-life", "auto")
    assert code == 0, err
    assert "half_life auto: change at round 2 (" in out
    code, out, err = run(capsys, "campaign", "status", "--db", db)
    assert code == 0, err
    assert "latest fit: laplace (seed 0), half_life auto: change at round 2 (" in out
    code, _, err = run(capsys, "campaign", "fit", "--db", db, "--half-life", "soon")
    assert code != 0 and "--half-life 'soon'" in err and "Traceback" not in err
