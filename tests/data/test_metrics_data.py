"""Observations with several metrics: further count columns read, summed and viewed as data."""

import numpy as np
import pandas as pd
import pytest

import layoutopt as lo

SPACE = lo.LayoutSpace({"h": ["a", "b"], "i": ["x", "y"]})


def _frame():
    return pd.DataFrame(
        {
            "h": ["a", "a", "b"],
            "i": ["x", "x", "y"],
            "impressions": [10, 5, 7],
            "clicks": [1, 2, 3],
            "signups": [0, 1, 1],
            "dismissals": [4, 0, 2],
        }
    )


def test_metrics_are_summed_with_the_clicks_row_for_row():
    obs = lo.Observations.from_frame(_frame(), SPACE, metrics=("signups", "dismissals"))
    assert obs.metric_names == ("clicks", "signups", "dismissals")
    assert obs.impressions.tolist() == [15, 7]
    assert obs.counts["signups"].tolist() == [1, 1]
    assert obs.counts["dismissals"].tolist() == [4, 2]
    view = obs.metric("dismissals")
    assert view.clicks.tolist() == [4, 2] and view.counts == {}
    assert view.impressions.tolist() == [15, 7]
    # to_frame writes every metric; reading it back gives the same data
    again = lo.Observations.from_frame(obs.to_frame(), SPACE, metrics=("signups", "dismissals"))
    for m in obs.metric_names:
        assert np.array_equal(again.metric(m).clicks, obs.metric(m).clicks)


def test_chunked_file_equals_the_frame(tmp_path):
    path = tmp_path / "r.csv"
    df = _frame().drop(columns="dismissals")
    df.to_csv(path, index=False)
    whole = lo.Observations.from_frame(df, SPACE, metrics=("signups",))
    # one row per chunk: the running sums carry the metric across chunks
    chunked = lo.Observations.from_csv(path, SPACE, metrics=("signups",), chunk_rows=1)
    assert chunked.counts["signups"].tolist() == whole.counts["signups"].tolist()


def test_impression_rows_take_0_1_metrics():
    log = pd.DataFrame({"h": ["a", "a"], "i": ["x", "x"], "clicks": [1, 0], "signups": [1, 0]})
    obs = lo.Observations.from_frame(log, SPACE, metrics=("signups",))
    assert obs.impressions.tolist() == [2] and obs.counts["signups"].tolist() == [1]


@pytest.mark.parametrize(
    ("change", "metrics", "message"),
    [
        ({"signups": [0, 11, 1]}, ("signups",), r"row 2, column 'signups': 11 signups exceed 5"),
        ({"signups": [0, -1, 1]}, ("signups",), r"row 2, column 'signups': -1 is negative"),
        ({}, ("revenue",), r"missing column\(s\) \['revenue'\]"),
        ({}, ("clicks",), r"metrics: 'clicks' is not a valid metric column"),
        ({}, ("signups", "signups"), r"'signups' is not a valid metric column"),
    ],
)
def test_bad_metric_columns_are_named(change, metrics, message):
    df = _frame().assign(**change)
    with pytest.raises(ValueError, match=message):
        lo.Observations.from_frame(df, SPACE, metrics=metrics)


def test_an_unknown_metric_view_lists_the_metrics():
    obs = lo.Observations.from_frame(_frame(), SPACE, metrics=("signups", "dismissals"))
    with pytest.raises(ValueError, match=r"no metric 'revenue'.*'signups', 'dismissals'"):
        obs.metric("revenue")


def test_from_codes_sums_metrics_with_time_columns():
    obs = lo.Observations.from_codes(
        SPACE,
        [[0, 0], [0, 0], [1, 1]],
        [10, 5, 7],
        [1, 2, 3],
        round=[0, 0, 1],
        counts={"signups": [1, 1, 0]},
    )
    assert obs.counts["signups"].tolist() == [2, 0]
    with pytest.raises(ValueError, match=r"row 0: signups \(11\) exceed impressions \(10\)"):
        lo.Observations.from_codes(SPACE, [[0, 0]], [10], [1], counts={"signups": [11]})
