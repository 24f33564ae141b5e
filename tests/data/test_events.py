"""Observations.from_events: streaming aggregation of impression logs, checked against pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from layoutopt import Exponential, LayoutSpace, Observations
from layoutopt.data import ExtraColumnsWarning
from layoutopt.data.events import AGE_EDGES
from layoutopt.model.delay import DELAY_EDGES
from layoutopt.sim.simulate import SyntheticWorld
from layoutopt.sim.timeworld import TimeWorld, event_log

NOW = pd.Timestamp("2026-01-03T00:00")


@pytest.fixture(scope="module")
def space():
    return LayoutSpace({"headline": ["h1", "h2"], "image": ["a", "b", "c"]})


@pytest.fixture(scope="module")
def log(space):
    world = TimeWorld(SyntheticWorld.random(space, seed=0, base_rate=0.2), Exponential(0.2))
    rng = np.random.default_rng(1)
    n = 3000
    codes = np.stack([rng.integers(0, 2, n), rng.integers(0, 3, n)], axis=1)
    served = rng.uniform(0, 48, n)
    return event_log(world, codes, served, 48.0, rng, start="2026-01-01T00:00")


def _oracle(df, space):
    """Brute force with pandas: per (labels, age cohort) counts and mean age."""
    age = (NOW - df["served_at"]) / pd.Timedelta(hours=1)
    cohort = np.searchsorted(AGE_EDGES, age.to_numpy(), side="right") - 1
    g = pd.DataFrame(
        {
            "headline": df["headline"].astype(str),
            "image": df["image"].astype(str),
            "cohort": cohort,
            "age": age,
            "click": df["clicked_at"].notna().astype(int),
        }
    ).groupby(["headline", "image", "cohort"])
    out = g.agg(impressions=("age", "size"), clicks=("click", "sum"), age=("age", "mean"))
    out = out.reset_index().sort_values(["headline", "image", "age"])
    delays = (df["clicked_at"] - df["served_at"]).dropna() / pd.Timedelta(hours=1)
    hist = np.bincount(
        np.searchsorted(DELAY_EDGES, delays.to_numpy(), side="right") - 1,
        minlength=len(DELAY_EDGES) - 1,
    )
    return out, hist


@pytest.mark.parametrize("batch_size", [1 << 20, 257])
def test_matches_pandas_groupby(space, log, batch_size):
    obs = Observations.from_events(log, space, now=NOW, batch_size=batch_size)
    want, hist = _oracle(log, space)
    got = obs.to_frame()
    got = got.assign(headline=got.headline.astype(str), image=got.image.astype(str))
    got = got.sort_values(["headline", "image", "age"]).reset_index(drop=True)
    assert len(got) == len(want)
    np.testing.assert_array_equal(got["impressions"], want["impressions"])
    np.testing.assert_array_equal(got["clicks"], want["clicks"])
    # Times are read at microsecond resolution: 1 us = 2.8e-10 h.
    np.testing.assert_allclose(got["age"], want["age"], rtol=0, atol=1e-9)
    np.testing.assert_array_equal(obs.delay_counts, hist)
    assert obs.round is None
    assert obs.num_layouts == 6 and obs.num_rows == len(want)


def test_file_sources_agree(space, log, tmp_path):
    frame = Observations.from_events(log, space, now=NOW)
    log.to_parquet(tmp_path / "events.parquet")
    pq = Observations.from_events(tmp_path / "events.parquet", space, now="2026-01-03")
    log.to_csv(tmp_path / "events.csv", index=False)
    csv = Observations.from_events(tmp_path / "events.csv", space, now=NOW.to_pydatetime())
    for other in (pq, csv):
        np.testing.assert_array_equal(other.codes, frame.codes)
        np.testing.assert_array_equal(other.impressions, frame.impressions)
        np.testing.assert_array_equal(other.clicks, frame.clicks)
        np.testing.assert_allclose(other.age, frame.age, rtol=1e-9)
        np.testing.assert_array_equal(other.delay_counts, frame.delay_counts)


def test_round_column_is_a_group_key_and_extra_columns_are_ignored(space, log):
    df = log.assign(round=(log["served_at"] < "2026-01-02").map({True: 0, False: 1}))
    df["user_id"] = "u"
    with pytest.warns(ExtraColumnsWarning, match=r"ignoring column\(s\) \['user_id'\]"):
        obs = Observations.from_events(df, space, now=NOW)
    assert set(obs.round.tolist()) == {0, 1}
    assert int(obs.impressions.sum()) == len(log)
    day1 = obs.round == 0
    assert obs.age[day1].min() >= 24.0 and obs.age[~day1].max() <= 24.0


def _events(**overrides):
    base = {
        "headline": ["h1", "h2", "h1"],
        "image": ["a", "b", "c"],
        "served_at": pd.to_datetime(["2026-01-01T00:00", "2026-01-01T01:00", "2026-01-01T02:00"]),
        "clicked_at": pd.to_datetime([None, "2026-01-01T03:00", None]),
    }
    base.update(overrides)
    return pd.DataFrame(base)


@pytest.mark.parametrize(
    "df, now, message",
    [
        (_events().drop(columns="clicked_at"), NOW, r"missing column\(s\) \['clicked_at'\]"),
        (_events(image=["a", "b", "zz"]), NOW, r"row 3, column 'image': unknown variant 'zz'"),
        (_events(image=["a", None, "c"]), NOW, r"row 2, column 'image': missing label"),
        (
            _events(served_at=pd.to_datetime(["2026-01-01", None, "2026-01-01"])),
            NOW,
            r"row 2, column 'served_at': missing time",
        ),
        (
            _events(clicked_at=pd.to_datetime([None, "2025-12-31", None])),
            NOW,
            r"row 2, column 'clicked_at': click before",
        ),
        (_events(), "2026-01-01T00:30", r"row 2, column 'served_at': served after now"),
        (_events(), "2026-01-01T02:30", r"row 2, column 'clicked_at': click after now"),
        (
            _events(served_at=["2026-01-01", "yesterday", "2026-01-01"]),
            NOW,
            r"row 2, column 'served_at': 'yesterday' is not a timestamp",
        ),
        (_events(), 17, r"now must be a timestamp"),
        (_events(), "soon", r"now: 'soon' is not a timestamp"),
        (_events().iloc[:0], NOW, r"no events"),
        (_events().assign(round=[0, -1, 0]), NOW, r"row 2, column 'round': -1 is not valid"),
    ],
)
def test_bad_logs_name_row_column_and_value(space, df, now, message):
    with pytest.raises(ValueError, match=message):
        Observations.from_events(df, space, now=now, batch_size=2)


def test_missing_file(space, tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        Observations.from_events(tmp_path / "nope.parquet", space, now=NOW)


def test_segment_columns_are_group_keys(space, log):
    """A space with segments: one column per context variable in the log, aggregated per
    (layout, segment, age cohort); the per-segment totals equal pandas', and an unknown value
    is named with its row."""
    seg_space = LayoutSpace(
        {"headline": ["h1", "h2"], "image": ["a", "b", "c"]},
        segments={"member": ["prime", "non"], "device": ["web", "app", "tv"]},
    )
    rng = np.random.default_rng(7)
    df = log.assign(
        member=rng.choice(["prime", "non"], len(log)), device=rng.choice(["web", "app"], len(log))
    )
    obs = Observations.from_events(df, seg_space, now=NOW, batch_size=500)
    keys = ["headline", "image", "member", "device"]
    got = obs.to_frame()
    got = got.astype({k: str for k in keys}).groupby(keys)[["impressions", "clicks"]].sum()
    want = df.assign(click=df["clicked_at"].notna().astype(int)).astype({k: str for k in keys})
    want = want.groupby(keys).agg(impressions=("click", "size"), clicks=("click", "sum"))
    pd.testing.assert_frame_equal(got.astype(np.int64), want.astype(np.int64))
    codes = {seg_space.segment_code({"member": m, "device": d}) for m, d in [("non", "app")]}
    assert codes <= set(obs.segments.tolist())
    bad = df.assign(device=df["device"].where(df.index != 41, "fridge"))
    with pytest.raises(ValueError, match="fridge"):
        Observations.from_events(bad, seg_space, now=NOW)


# ---------------------------------------------------------------------- hostile logs (issue 22)
def _as_text(log: pd.DataFrame, zone: str = "") -> pd.DataFrame:
    """The log with ISO text times (``zone`` appended), empty text where no click."""
    out = log.copy()
    for col in ("served_at", "clicked_at"):
        text = out[col].dt.strftime("%Y-%m-%dT%H:%M:%S.%f") + zone
        out[col] = text.where(out[col].notna(), "")
    return out


@pytest.mark.parametrize("kind", ["frame", "csv", "parquet"])
def test_a_log_where_nothing_was_clicked_yet_is_accepted(space, log, tmp_path, kind):
    unclicked = log.assign(clicked_at=pd.NaT)
    source: object = _as_text(unclicked)  # clicked_at: all empty text
    if kind == "frame":
        source = source.assign(clicked_at=None)  # all None: an Arrow "null" column
    elif kind == "csv":
        source.to_csv(tmp_path / "e.csv", index=False)
        source = tmp_path / "e.csv"
    else:
        unclicked.to_parquet(tmp_path / "e.parquet")
        source = tmp_path / "e.parquet"
    obs = Observations.from_events(source, space, now=NOW, batch_size=500)
    assert int(obs.clicks.sum()) == 0
    assert int(obs.impressions.sum()) == len(log)


def test_csv_times_with_offsets_equal_naive_utc(space, log, tmp_path):
    want = Observations.from_events(log, space, now=NOW).to_frame()
    # 02:00 ahead of UTC: every time shifted by two hours and marked +02:00
    shifted = log.assign(
        served_at=log["served_at"] + pd.Timedelta(hours=2),
        clicked_at=log["clicked_at"] + pd.Timedelta(hours=2),
    )
    _as_text(shifted, "+02:00").to_csv(tmp_path / "e.csv", index=False)
    got = Observations.from_events(tmp_path / "e.csv", space, now=NOW, batch_size=300).to_frame()
    pd.testing.assert_frame_equal(got, want)


@pytest.mark.parametrize(
    ("row", "column", "zone"),
    [(7, "served_at", "+01:00"), (2500, "served_at", "Z"), (10, "clicked_at", "-0500")],
)
def test_mixed_naive_and_offset_times_are_refused_saying_so(
    space, log, tmp_path, row, column, zone
):
    text = _as_text(log)
    clicked = np.flatnonzero(text["clicked_at"].to_numpy() != "")
    r = int(clicked[clicked >= row][0]) if column == "clicked_at" else row
    text.loc[r, column] = text.loc[r, column] + zone
    text.to_csv(tmp_path / "e.csv", index=False)
    # a small batch size puts row 2,500 in a later batch than the first naive time
    with pytest.raises(ValueError, match="mixed naive and offset timestamps") as err:
        Observations.from_events(tmp_path / "e.csv", space, now=NOW, batch_size=256)
    message = str(err.value)
    assert f"row {r + 1}, column {column!r} has a zone offset" in message
    assert "row 1, column 'served_at' has none" in message
