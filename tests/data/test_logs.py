"""Real logs in: one row per impression, mapped column names, extra columns, 0/1 clicks."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from layoutopt import DelayWarning, Exponential, LayoutSpace, Observations, fit
from layoutopt.data import ExtraColumnsWarning
from layoutopt.data.observations import aggregate_file

SPACE = LayoutSpace({"headline": ["h1", "h2", "h3"], "image": ["a", "b"]})
SEG = LayoutSpace(
    {"headline": ["h1", "h2", "h3"], "image": ["a", "b"]},
    segments={"device": ["mobile", "desktop"]},
)
NOW = pd.Timestamp("2026-01-03T00:00")


def impression_log(n: int = 500, seed: int = 0) -> pd.DataFrame:
    """One row per impression, with the user's own column names and two extra columns."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "title": rng.choice(["h1", "h2", "h3"], n),
            "image": rng.choice(["a", "b"], n),
            "click": (rng.random(n) < 0.3).astype(int),
            "user": rng.integers(0, 10**6, n),
            "position": rng.integers(1, 4, n),
        }
    )


def oracle(log: pd.DataFrame) -> pd.DataFrame:
    """Per-layout impressions and clicks by pandas, in layout index order."""
    g = log.groupby(["title", "image"]).agg(impressions=("click", "size"), clicks=("click", "sum"))
    g = g.reset_index().rename(columns={"title": "headline"})
    return g  # sorted by (headline, image): the space's index order


def assert_matches(obs: Observations, expected: pd.DataFrame) -> None:
    got = obs.to_frame()
    assert got["headline"].astype(str).tolist() == expected["headline"].tolist()
    assert got["image"].astype(str).tolist() == expected["image"].tolist()
    assert got["impressions"].tolist() == expected["impressions"].tolist()
    assert got["clicks"].tolist() == expected["clicks"].tolist()


MAP = {"headline": "title", "clicks": "click"}
EXTRA = r"ignoring column\(s\) \['user', 'position'\]"


@pytest.mark.parametrize("chunk_rows", [7, 1 << 18])
def test_impression_rows_are_summed_like_pandas(chunk_rows):
    log = impression_log()
    with pytest.warns(ExtraColumnsWarning, match=EXTRA):
        obs = Observations.from_frame(log, SPACE, columns=MAP, chunk_rows=chunk_rows)
    assert_matches(obs, oracle(log))
    assert int(obs.impressions.sum()) == len(log)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_files_stream_in_chunks_with_one_warning(tmp_path, suffix):
    log = impression_log(1000, seed=1)
    path = tmp_path / f"log{suffix}"
    log.to_csv(path, index=False) if suffix == ".csv" else log.to_parquet(path, index=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        obs, rows = aggregate_file(path, SPACE, columns=MAP, chunk_rows=64)
    assert rows == 1000
    assert_matches(obs, oracle(log))
    # 16 chunks, one line naming both extra columns
    assert [type(w.message) for w in caught] == [ExtraColumnsWarning]
    assert "['user', 'position']" in str(caught[0].message) and str(path) in str(caught[0].message)
    read = Observations.from_csv if suffix == ".csv" else Observations.from_parquet
    with pytest.warns(ExtraColumnsWarning):
        again = read(path, SPACE, columns=MAP, chunk_rows=100)
    assert_matches(again, oracle(log))
    with pytest.warns(ExtraColumnsWarning):
        assert_matches(Observations.from_file(path, SPACE, columns=MAP), oracle(log))


@pytest.mark.parametrize(
    "clicks",
    [[True, False, True], ["true", "FALSE", "1"], [1.0, 0.0, 1.0], ["1", "0", " 1 "]],
)
def test_zero_one_outcomes_in_any_spelling(clicks):
    df = pd.DataFrame({"headline": ["h1", "h1", "h2"], "image": ["a", "a", "b"], "clicks": clicks})
    obs = Observations.from_frame(df, SPACE)
    assert obs.impressions.tolist() == [2, 1] and obs.clicks.tolist() == [1, 1]


def test_a_click_count_above_one_is_refused_naming_row_and_column():
    log = impression_log(50).drop(columns=["user", "position"])
    log.loc[37, "click"] = 2
    with pytest.raises(ValueError) as err:
        Observations.from_frame(log, SPACE, source="log", columns=MAP, chunk_rows=10)
    assert str(err.value).startswith("log: row 38, column 'click': 2 clicks on one row")
    assert "without an 'impressions' column" in str(err.value)


def test_row_errors_in_a_later_chunk_of_a_file_count_from_its_first_row(tmp_path):
    log = impression_log(300).drop(columns=["user", "position"])
    log.loc[250, "title"] = "h9"
    path = tmp_path / "log.csv"
    log.to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"row 251, column 'title': unknown variant 'h9'"):
        Observations.from_csv(path, SPACE, columns=MAP, chunk_rows=64)


def test_counts_with_impressions_column_still_work_mapped():
    df = pd.DataFrame(
        {"headline": ["h1"], "image": ["a"], "n": [10], "k": [3]},
    )
    obs = Observations.from_frame(df, SPACE, columns={"impressions": "n", "clicks": "k"})
    assert obs.impressions.tolist() == [10] and obs.clicks.tolist() == [3]
    with pytest.raises(ValueError, match=r"row 1, column 'k': 11 clicks exceed 10 impressions"):
        Observations.from_frame(df.assign(k=11), SPACE, columns={"impressions": "n", "clicks": "k"})


BAD_MAPS = [
    ({"clickz": "click"}, "columns maps 'clickz', which is not a column layoutopt reads"),
    ({"clicks": "klick"}, "columns maps 'clicks' to 'klick', but the table has no such column"),
    ({"clicks": "click", "headline": "click"}, r"several names to column\(s\) \['click'\]"),
    ({"image": "title"}, "the table has a column 'image' and columns maps 'image' to 'title'"),
]


@pytest.mark.parametrize("mapping, message", BAD_MAPS)
def test_bad_mappings_are_one_line_errors(mapping, message):
    log = impression_log(5).drop(columns=["user", "position"])
    with pytest.raises(ValueError, match=message) as err:
        Observations.from_frame(log, SPACE, columns=mapping)
    assert "\n" not in str(err.value)


def test_missing_clicks_names_the_optional_impressions():
    df = pd.DataFrame({"headline": ["h1"], "image": ["a"]})
    with pytest.raises(ValueError, match=r"missing column\(s\) \['clicks'\].*without 'imp"):
        Observations.from_frame(df, SPACE)


def test_no_warning_when_every_column_is_read_and_none_before_an_error():
    log = impression_log(20).drop(columns=["user", "position"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Observations.from_frame(log.assign(weight=1.0, index=0), SPACE, columns=MAP)
        bad = log.assign(user=1)
        bad.loc[3, "click"] = 5
        with pytest.raises(ValueError, match="row 4"):  # the error, not the warning
            Observations.from_frame(bad, SPACE, columns=MAP)


def test_extra_columns_are_segments_when_the_space_names_them():
    log = impression_log(400, seed=3).assign(
        device=lambda d: np.where(d.user % 2, "mobile", "desktop")
    )
    with pytest.warns(ExtraColumnsWarning, match=r"\['user', 'position'\]"):
        obs = Observations.from_frame(log, SEG, columns=MAP)
    assert int(obs.impressions.sum()) == 400
    mobile = obs.segment_values("device") == 0
    assert int(obs.impressions[mobile].sum()) == int((log.user % 2 == 1).sum())
    with pytest.warns(ExtraColumnsWarning, match=r"'device'.*declares no \[segments\]"):
        Observations.from_frame(log.drop(columns=["user", "position"]), SPACE, columns=MAP)


# ------------------------------------------------------------------ event logs
def _event_log(n=2000, seed=5):
    rng = np.random.default_rng(seed)
    served = NOW - pd.to_timedelta(rng.uniform(1, 47, n), unit="h")
    delay = pd.to_timedelta(rng.exponential(2.0, n), unit="h")
    clicked = (rng.random(n) < 0.25) & (served + delay < NOW)
    return pd.DataFrame(
        {
            "title": rng.choice(["h1", "h2", "h3"], n),
            "image": rng.choice(["a", "b"], n),
            "timestamp": served,
            "clicked_at": (served + delay).where(clicked),
            "click": clicked.astype(int),
        }
    )


def test_events_with_a_clicked_flag_match_the_click_times():
    log = _event_log()
    times = Observations.from_events(
        log.drop(columns="click"),
        SPACE,
        NOW,
        columns={"headline": "title", "served_at": "timestamp"},
    )
    flags = Observations.from_events(
        log.drop(columns="clicked_at"),
        SPACE,
        NOW,
        columns={"headline": "title", "served_at": "timestamp", "clicked": "click"},
    )
    np.testing.assert_array_equal(flags.codes, times.codes)
    np.testing.assert_array_equal(flags.impressions, times.impressions)
    np.testing.assert_array_equal(flags.clicks, times.clicks)
    np.testing.assert_allclose(flags.age, times.age, rtol=1e-12)
    assert times.has_delays and not flags.has_delays and flags.delay_counts is None
    with pytest.warns(DelayWarning, match="delay='auto'.*0/1 clicked column.*without a delay"):
        fit(SPACE, flags, delay="auto", seed=0, num_samples=50)
    # a given delay still fits: the cohorts' ages are known
    post = fit(SPACE, flags, delay=Exponential(rate=0.5), seed=0, num_samples=50)
    assert post.num_draws == 50


def test_clicked_flag_from_csv_text_and_bad_values(tmp_path):
    log = _event_log(300).drop(columns="clicked_at")
    log["click"] = log["click"].map({1: "true", 0: "false"})
    path = tmp_path / "events.csv"
    log.to_csv(path, index=False)
    cols = {"headline": "title", "served_at": "timestamp", "clicked": "click"}
    obs = Observations.from_events(path, SPACE, NOW, columns=cols, batch_size=64)
    assert int(obs.clicks.sum()) == int((log["click"] == "true").sum())
    log.loc[200, "click"] = "2"
    log.to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"row 201, column 'click': '2' is not 0 or 1"):
        Observations.from_events(path, SPACE, NOW, columns=cols, batch_size=64)


def test_event_log_without_any_outcome_column_says_what_is_needed():
    log = _event_log(10).drop(columns=["clicked_at", "click"])
    with pytest.raises(ValueError, match=r"missing column\(s\) \['clicked_at'\].*clicked \(0/1\)"):
        Observations.from_events(
            log, SPACE, NOW, columns={"headline": "title", "served_at": "timestamp"}
        )


def test_event_log_extra_columns_warn_once_with_mapping():
    log = _event_log(100).assign(user=1)
    cols = {"headline": "title", "served_at": "timestamp"}
    with pytest.warns(ExtraColumnsWarning, match=r"\['click', 'user'\]"):
        Observations.from_events(log, SPACE, NOW, columns=cols, batch_size=16)


def test_a_gzipd_csv_reads_like_the_plain_one(tmp_path):
    log = impression_log()
    log.to_csv(tmp_path / "log.csv", index=False)
    log.to_csv(tmp_path / "log.csv.gz", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExtraColumnsWarning)
        plain = Observations.from_csv(tmp_path / "log.csv", SPACE, columns=MAP)
        for read in (Observations.from_csv, Observations.from_file):
            got = read(tmp_path / "log.csv.gz", SPACE, columns=MAP, chunk_rows=64)
            np.testing.assert_array_equal(got.codes, plain.codes)
            np.testing.assert_array_equal(got.clicks, plain.clicks)
        events = log.assign(served_at=NOW - pd.Timedelta(hours=2))
        events.to_csv(tmp_path / "events.csv.gz", index=False)
        cols = {"headline": "title", "clicked": "click"}
        aged = Observations.from_events(tmp_path / "events.csv.gz", SPACE, NOW, columns=cols)
    assert int(aged.clicks.sum()) == int(plain.clicks.sum())
    (tmp_path / "log.txt.gz").write_bytes(b"")
    with pytest.raises(
        ValueError, match=r"unknown table format '\.txt\.gz'; use a \.csv, \.csv\.gz"
    ):
        Observations.from_file(tmp_path / "log.txt.gz", SPACE)
