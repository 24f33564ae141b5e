"""Campaign.ingest / ingest_events of raw impression logs with the user's column names."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from layoutopt import LayoutSpace, Observations
from layoutopt.campaign.campaign import Campaign
from layoutopt.data import ExtraColumnsWarning

SPACE = LayoutSpace({"headline": ["h1", "h2", "h3"], "image": ["a", "b"]})
NOW = pd.Timestamp("2026-01-03T00:00")


def raw_log(n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "title": rng.choice(["h1", "h2", "h3"], n),
            "image": rng.choice(["a", "b"], n),
            "click": (rng.random(n) < 0.2).astype(int),
            "timestamp": NOW - pd.to_timedelta(rng.uniform(1, 40, n), unit="h"),
            "user": rng.integers(0, 1000, n),
        }
    )


def test_ingest_a_raw_impression_file_with_mapped_columns(store_target, tmp_path):
    log = raw_log()
    path = tmp_path / "log.csv"
    log.to_csv(path, index=False)
    cols = {"headline": "title", "clicks": "click"}
    with pytest.warns(ExtraColumnsWarning, match=r"\['timestamp', 'user'\]"):
        direct = Observations.from_csv(path, SPACE, columns=cols)
    with Campaign.create(store_target, SPACE) as camp:
        with pytest.warns(ExtraColumnsWarning, match=r"\['timestamp', 'user'\]"):
            result = camp.ingest(path, columns=cols, chunk_rows=100)
        assert (result.rows, result.impressions, result.clicks) == (
            600,
            600,
            int(log["click"].sum()),
        )
        obs = camp.observations()
    np.testing.assert_array_equal(obs.codes, direct.codes)
    np.testing.assert_array_equal(obs.impressions, direct.impressions)
    np.testing.assert_array_equal(obs.clicks, direct.clicks)


def test_ingest_frames_and_event_logs_with_a_clicked_flag(store_target):
    log = raw_log(300, seed=1)
    cols = {"headline": "title", "served_at": "timestamp", "clicked": "click"}
    with Campaign.create(store_target, SPACE) as camp:
        with pytest.warns(ExtraColumnsWarning, match=r"\['user'\]"):
            events = camp.ingest_events(log, now=NOW, columns=cols)
        assert events.impressions == 300 and events.clicks == int(log["click"].sum())
        frame = log[["title", "image", "click"]].iloc[:50]
        result = camp.ingest(frame, columns={"headline": "title", "clicks": "click"})
        assert result.impressions == 50 and result.clicks == int(frame["click"].sum())
        with pytest.raises(ValueError, match=r"row 7, column 'click': 3 clicks on one row"):
            camp.ingest(
                frame.assign(click=[0] * 6 + [3] + [0] * 43),
                columns={"clicks": "click", "headline": "title"},
            )
        assert len(camp.store.batches(camp.campaign_id)) == 2
