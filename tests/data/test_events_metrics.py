"""Event logs with further metrics: each metric's counts and its own delays, streamed; and
fit_metrics giving each metric its own delay model (a sign-up arrives later than a click)."""

import numpy as np
import pandas as pd
import pytest

import layoutopt as lo

SPACE = lo.LayoutSpace({"h": ["a", "b"], "i": ["x", "y"]})
NOW = pd.Timestamp("2026-01-05")


def _log(n=20000, seed=0):
    """Impressions over 4 days; clicks after Exponential(mean 1 h), sign-ups after
    Exponential(mean 10 h); what has not happened by NOW is null."""
    rng = np.random.default_rng(seed)
    served = pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.uniform(0, 96, n), "h")
    clicked = pd.Series(served + pd.to_timedelta(rng.exponential(1.0, n), "h"))
    signed = pd.Series(served + pd.to_timedelta(rng.exponential(10.0, n), "h"))
    frame = pd.DataFrame(
        {
            "h": rng.choice(["a", "b"], n),
            "i": rng.choice(["x", "y"], n),
            "served_at": served,
            "clicked_at": clicked.where((rng.random(n) < 0.10) & (clicked < NOW)),
            "signups_at": signed.where((rng.random(n) < 0.05) & (signed < NOW)),
        }
    )
    return frame


def test_a_metric_time_column_gives_its_counts_and_its_own_delays(tmp_path):
    log = _log()
    path = tmp_path / "events.parquet"
    log.to_parquet(path)
    obs = lo.Observations.from_events(path, SPACE, now=NOW, metrics=("signups",), batch_size=3000)
    assert obs.metric_names == ("clicks", "signups")
    assert int(obs.impressions.sum()) == len(log)
    assert int(obs.clicks.sum()) == int(log.clicked_at.notna().sum())
    assert int(obs.counts["signups"].sum()) == int(log.signups_at.notna().sum())
    # per layout, exactly the log's counts (summed over age cohorts)
    frame = pd.DataFrame(
        {"h": [SPACE.variants[0][c] for c in obs.codes[:, 0]], "s": obs.counts["signups"]}
    )
    expect = log.groupby("h").signups_at.count()
    assert frame.groupby("h").s.sum().to_dict() == expect.to_dict()
    # each metric's delays are its own histogram; the metric's view carries them
    assert int(obs.delay_counts.sum()) == int(obs.clicks.sum())
    assert int(obs.metric_delays["signups"].sum()) == int(obs.counts["signups"].sum())
    view = obs.metric("signups")
    np.testing.assert_array_equal(view.delay_counts, obs.metric_delays["signups"])
    assert view.metric_delays == {} and obs.metric("clicks").delay_counts is obs.delay_counts


def test_a_metric_flag_column_counts_without_delays():
    log = _log(n=3000)
    log["signups"] = log.pop("signups_at").notna().astype(int)
    obs = lo.Observations.from_events(log, SPACE, now=NOW, metrics=["signups"])
    assert int(obs.counts["signups"].sum()) == int(log.signups.sum())
    assert obs.metric_delays == {}
    assert obs.metric("signups").delay_counts is None  # not the clicks' delays


@pytest.mark.parametrize(
    ("change", "metrics", "match"),
    [
        (
            lambda f: f.drop(columns="signups_at"),
            ("signups",),
            r"missing column\(s\) \['signups_at'\]",
        ),
        (lambda f: f, ("clicks",), "distinct names other than 'clicks'"),
        (lambda f: f, ("signups", "signups"), "distinct names"),
        (
            lambda f: f.assign(signups_at=f.served_at - pd.Timedelta("1h")),
            ("signups",),
            r"column 'signups_at': event before its impression's served_at",
        ),
    ],
)
def test_bad_metric_columns_are_named(change, metrics, match):
    with pytest.raises(ValueError, match=match):
        lo.Observations.from_events(change(_log(n=500)), SPACE, now=NOW, metrics=metrics)


@pytest.mark.slow
def test_fit_metrics_learns_each_metrics_delay_from_its_own_events():
    obs = lo.Observations.from_events(_log(), SPACE, now=NOW, metrics=("signups",))
    posts = lo.fit_metrics(SPACE, obs, delay="auto", num_samples=64, seed=1)
    # Laplace's delay estimate (a Weibull, its scale the 63% point; an exponential's is its
    # mean). About 2,000 click delays and 800 sign-up delays: relative se of a scale ~5%,
    # so +-30% is > 5 se.
    clicks = float(posts["clicks"].hyper["delay_scale"][0])
    signups = float(posts["signups"].hyper["delay_scale"][0])
    assert 0.7 < clicks < 1.3, clicks
    assert 7.0 < signups < 13.0, signups
    # a per-metric mapping: a metric left out gets fit's default (no delay)
    mixed = lo.fit_metrics(SPACE, obs, delay={"signups": "auto"}, num_samples=64, seed=1)
    assert "delay_scale" not in mixed["clicks"].hyper
    assert float(mixed["signups"].hyper["delay_scale"][0]) == signups


def test_per_metric_mappings_are_checked():
    obs = lo.Observations.from_events(_log(n=2000), SPACE, now=NOW, metrics=("signups",))
    with pytest.raises(ValueError, match=r"names \['views'\], not among the metrics fitted"):
        lo.fit_metrics(SPACE, obs, delay={"views": "auto"})
    with pytest.raises(ValueError, match="num_samples needs one value for every metric"):
        lo.fit_metrics(SPACE, obs, num_samples={"clicks": 10})
