"""The holdout: ingested rows with their holdout flag and propensity, and the campaign's lift."""

from __future__ import annotations

import numpy as np
import pytest
from test_run_assign import EFFECTS, SPACE, open_campaign, served

from layoutopt.campaign.campaign import Campaign

CONTROL = {"headline": "h1", "image": "i2", "reviews": "none"}  # the truth's worst layout


def true_ctr(frame) -> np.ndarray:
    labels = frame[list(SPACE.components)].astype(str)
    eta = -2.2 + sum(labels[c].map(lambda v: EFFECTS.get(v, 0.0)) for c in SPACE.components)
    return 1 / (1 + np.exp(-eta.to_numpy()))


def test_lift_covers_the_true_lift(tmp_path):
    units = [f"u{i}" for i in range(30_000)]
    with open_campaign(tmp_path / "c.db", holdout=0.3, control=CONTROL) as camp:
        camp.propose(k=6, seed=5)
        a = camp.assign(units)
        log = served(a, 1, seed=7).assign(
            round=a["round"], propensity=a["propensity"], holdout=a["holdout"], unit=a["unit"]
        )
        path = tmp_path / "served.csv"
        log.to_csv(path, index=False)
        result = camp.ingest(path)
        lift = camp.lift(level=0.99, seed=0)
        logged = camp.logged()
    assert result.added and result.impressions == len(units)
    assert logged["impressions"].sum() == len(units)
    assert set(logged["round"]) == {1} and logged["propensity"].between(0, 1).all()
    p = true_ctr(a)
    held = a["holdout"].to_numpy()
    truth = p[~held].mean() / p[held].mean() - 1  # given who was served what
    # 99% interval: a miss by chance has probability 1%; the expected lift is ~0.5 and the
    # interval's half-width ~0.15 at these counts, so the check also has power
    assert lift.lower <= truth <= lift.upper
    assert lift.upper - lift.lower < 0.5 and lift.p_better > 0.99
    assert lift.holdout_impressions == held.sum()


def test_lift_needs_a_holdout_and_flags_are_checked(tmp_path):
    with open_campaign(tmp_path / "c.db") as camp:
        camp.propose(k=3, seed=5)
        a = camp.assign(["a", "b", "c"])
        with pytest.raises(ValueError, match="holdout lift needs impressions"):
            camp.lift()
        bad = served(a, 1, seed=1).assign(holdout=["no", "maybe", "yes"])
        with pytest.raises(ValueError, match=r"row 2, column 'holdout': 'maybe' is not a flag"):
            camp.ingest(bad)
        bad = served(a, 1, seed=1).assign(propensity=[0.5, 0.0, 1.0])
        with pytest.raises(ValueError, match=r"row 2, column 'propensity': '0.0'; a propensity"):
            camp.ingest(bad)
        assert camp.store.batches(camp.campaign_id)[-1]["round"] == 0  # nothing stored
    with Campaign.open(tmp_path / "c.db") as camp:
        assert camp.logged().empty


def test_assign_output_with_a_click_column_ingests_as_impression_rows(tmp_path):
    # the served log exactly as assign wrote it, plus the user's own 0/1 column "click":
    # no impressions column (one impression per row), the name mapped by columns=
    with open_campaign(tmp_path / "c.db", holdout=0.2, control=CONTROL) as camp:
        camp.propose(k=4, seed=5)
        a = camp.assign([f"u{i}" for i in range(500)])
        log = a.assign(click=served(a, 1, seed=3)["clicks"].to_numpy())
        result = camp.ingest(log, columns={"clicks": "click"})
        logged = camp.logged()
    assert result.added and result.impressions == 500
    assert logged["impressions"].sum() == 500 and logged["clicks"].sum() == log["click"].sum()
    held = logged["holdout"].astype(bool)
    assert logged.loc[held, "impressions"].sum() == a["holdout"].sum() > 0
    assert set(logged["round"]) == {1}
