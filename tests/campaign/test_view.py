"""CampaignView reads what Campaign reads: the same records from the same store, without JAX
(tests/cli/test_startup.py checks the imports in a fresh interpreter)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from layoutopt.campaign.campaign import Campaign
from layoutopt.campaign.view import CampaignView
from layoutopt.model.space import LayoutSpace

SPACE = LayoutSpace({"h": ["a", "b", "c"], "i": ["x", "y"]}, segments={"member": ["prime", "non"]})


def _results(seed: int) -> pd.DataFrame:
    """h=c has the most clicks and doubles dismissals, per member segment."""
    rng = np.random.default_rng(seed)
    rows = []
    for member, n in (("prime", 3000), ("non", 1000)):
        for h in "abc":
            for i in "xy":
                rows.append(
                    {
                        "h": h,
                        "i": i,
                        "member": member,
                        "impressions": n,
                        "clicks": rng.binomial(n, 0.04 + 0.03 * (h == "c")),
                        "dismissals": rng.binomial(n, 0.03 * (2 if h == "c" else 1)),
                    }
                )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Segments, an objective with a guardrail, a fit, a decision, a proposal and a stale
    batch."""
    d = tmp_path_factory.mktemp("view")
    _results(0).to_csv(d / "r0.csv", index=False)
    _results(1).to_csv(d / "r1.csv", index=False)
    guard = {"dismissals": {"max_relative_increase": 0.1, "probability": 0.9}}
    control = {"h": "a", "i": "x"}
    with Campaign.create(d / "c.db", SPACE, guardrails=guard, control=control) as camp:
        camp.ingest(d / "r0.csv")
        camp.fit(seed=0)
        camp.decision()
        camp.propose(k=3, seed=1)
        camp.ingest(d / "r1.csv")
    return d / "c.db"


def test_view_reads_what_the_campaign_reads(store):
    with Campaign.open(store) as camp, CampaignView.open(store) as view:
        assert view.name == camp.name and view.campaign_id == camp.campaign_id
        assert view.space == camp.space and view.space_version == camp.space_version
        assert view.stale() == camp.stale() == "1 batch(es) ingested since the last fit"
        assert view.best() == camp.best()
        assert view.latest_fit() == camp.latest_fit()
        assert view.holdout == camp.holdout
        line = view.settings_line()
        assert line == camp.settings_line() and "guardrails: P(dismissals <= 1.1" in line
        decision = view.latest_decision()
        assert decision == camp.latest_decision() and "guardrails exclude" in decision.excluded
        assert view.exclusions() == camp.exclusions() == decision.excluded
        assert view.sample_ratios() == camp.sample_ratios()
        seen, full = view.observations(time=True), camp.observations(time=True)
        pd.testing.assert_frame_equal(seen.to_frame(), full.to_frame())
        np.testing.assert_array_equal(seen.segments, full.segments)
        pd.testing.assert_frame_equal(view.history(), camp.history())
        pd.testing.assert_frame_equal(view.proposals(), camp.proposals())
        pd.testing.assert_frame_equal(view.logged(), camp.logged())


def test_view_refuses_as_the_campaign_does(tmp_path):
    with pytest.raises(ValueError) as full:
        Campaign.open(tmp_path / "missing.db")
    with pytest.raises(ValueError) as read:
        CampaignView.open(tmp_path / "missing.db")
    assert str(read.value) == str(full.value)
    with Campaign.create(tmp_path / "c.db", SPACE):
        pass
    with CampaignView.open(tmp_path / "c.db") as view:
        assert view.stale() == "no fit yet" and view.latest_decision() is None
        with pytest.raises(ValueError, match="not fitted yet"):
            view.best()
        with pytest.raises(ValueError, match="no data ingested yet"):
            view.observations()
