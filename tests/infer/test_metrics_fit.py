"""fit_metrics: one model per metric, each the existing fit on that metric's data."""

import numpy as np
import pandas as pd
import pytest

import layoutopt as lo
from layoutopt.util.seeds import split_seed

SPACE = lo.LayoutSpace({"h": ["a", "b", "c"], "i": ["x", "y"]})


def _obs():
    rng = np.random.default_rng(0)
    rows = []
    for i in range(SPACE.size):
        x = SPACE.layout(i)
        n = 2000
        rows.append(
            {
                **x,
                "impressions": n,
                "clicks": rng.binomial(n, 0.05),
                "signups": rng.binomial(n, 0.01 + 0.01 * (x["h"] == "c")),
            }
        )
    return lo.Observations.from_frame(pd.DataFrame(rows), SPACE, metrics=("signups",))


def test_each_metric_is_the_plain_fit_of_its_data():
    obs = _obs()
    posts = lo.fit_metrics(SPACE, obs, seed=4, num_samples=64)
    assert list(posts) == ["clicks", "signups"]
    # the second metric's fit is the plain fit of its data with the second split seed
    plain = lo.fit(SPACE, obs.metric("signups"), seed=split_seed(4, 2)[1], num_samples=64)
    np.testing.assert_array_equal(posts["signups"].params.intercept, plain.params.intercept)
    np.testing.assert_array_equal(posts["signups"].params.main[0], plain.params.main[0])
    # the signups model sees the signups: variant c's main effect is the largest
    assert int(np.argmax(posts["signups"].mean_params().main[0])) == 2


def test_unknown_or_repeated_metrics_are_refused():
    obs = _obs()
    with pytest.raises(ValueError, match=r"no metric 'revenue'"):
        lo.fit_metrics(SPACE, obs, ["clicks", "revenue"])
    with pytest.raises(ValueError, match=r"metrics must be distinct"):
        lo.fit_metrics(SPACE, obs, ["clicks", "clicks"])
