"""Rules in data: an optional component's empty cell means "not shown" (only there); a
repeated item in a distinct group is refused naming the slots."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from layoutopt import ABSENT, LayoutSpace, Observations
from layoutopt.campaign.campaign import Campaign

OPTIONAL = LayoutSpace(
    {"headline": ["h1", "h2"], "reviews": ["stars", "quote"]}, optional=["reviews"]
)
PLAIN = LayoutSpace({"headline": ["h1", "h2"], "reviews": ["stars", "quote"]})
NOW = pd.Timestamp("2026-01-03T00:00")


def rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "headline": ["h1", "h2", "h1", "h2", "h1"],
            "reviews": ["stars", None, np.nan, "quote", ""],
            "impressions": [100, 100, 100, 100, 50],
            "clicks": [5, 6, 7, 8, 1],
        }
    )


def totals(obs: Observations) -> dict:
    """{layout labels: impressions} of an Observations."""
    return {
        tuple(OPTIONAL.decode(c).values()): int(n)
        for c, n in zip(obs.codes, obs.impressions, strict=True)
    }


EXPECTED = {
    ("h1", "stars"): 100,
    ("h1", ABSENT): 150,
    ("h2", ABSENT): 100,
    ("h2", "quote"): 100,
}


def test_frame_csv_and_parquet_read_missing_cells_as_absent(tmp_path):
    assert OPTIONAL.variants[1] == (ABSENT, "stars", "quote")
    assert totals(Observations.from_frame(rows(), OPTIONAL)) == EXPECTED
    csv, parquet = tmp_path / "rows.csv", tmp_path / "rows.parquet"
    rows().to_csv(csv, index=False)
    assert ",," in csv.read_text()  # the absent cells are empty in the file
    assert totals(Observations.from_csv(csv, OPTIONAL)) == EXPECTED
    rows().to_parquet(parquet)
    assert totals(Observations.from_parquet(parquet, OPTIONAL)) == EXPECTED


def test_missing_cells_stay_an_error_for_other_components(tmp_path):
    with pytest.raises(
        ValueError,
        match=r"frame: row 2, column 'reviews': missing label; valid variants: "
        r"\['stars', 'quote'\] \(if 'reviews' may be left out, declare it optional",
    ):
        Observations.from_frame(rows(), PLAIN)
    bad = rows().assign(headline=["h1", None, "h1", "h2", "h1"])
    path = tmp_path / "bad.csv"
    bad.to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"bad.csv: row 2, column 'headline': missing label"):
        Observations.from_csv(path, OPTIONAL)


def test_event_logs_read_null_as_absent():
    log = pd.DataFrame(
        {
            "headline": ["h1", "h2", "h2"],
            "reviews": [None, "stars", None],
            "served_at": [NOW - pd.Timedelta(hours=5)] * 3,
            "clicked": [0, 1, 1],
        }
    )
    obs = Observations.from_events(log, OPTIONAL, now=NOW)
    assert totals(obs) == {("h1", ABSENT): 1, ("h2", "stars"): 1, ("h2", ABSENT): 1}
    with pytest.raises(ValueError, match=r"row 1, column 'reviews': missing label"):
        Observations.from_events(log, PLAIN, now=NOW)


def test_campaign_ingest_keeps_absent_layouts(tmp_path):
    path = tmp_path / "round0.csv"
    rows().to_csv(path, index=False)
    with Campaign.create(str(tmp_path / "c.db"), OPTIONAL) as camp:
        result = camp.ingest(path)
        assert result.layouts == 4 and result.impressions == 450
    with Campaign.open(str(tmp_path / "c.db")) as camp:
        assert camp.space == OPTIONAL
        assert totals(camp.observations()) == EXPECTED


def test_a_repeated_item_in_data_is_refused_naming_the_slots():
    items = ["a", "b", "c"]
    slots = LayoutSpace({"s1": items, "s2": items}, distinct=[("s1", "s2")])
    frame = pd.DataFrame({"s1": ["a", "b"], "s2": ["b", "b"], "impressions": 9, "clicks": 1})
    with pytest.raises(
        ValueError,
        match=r"frame: row 2: layout \{'s1': 'b', 's2': 'b'\} shows 'b' twice, in "
        r"\['s1', 's2'\] \(a distinct group",
    ):
        Observations.from_frame(frame, slots)
