"""The report's parts on their own: diagnostics' warnings, the SVG plot's hover text, pair
tables on one colour scale, the traffic cap, and the sample-ratio and holdout lines."""

from __future__ import annotations

import re

import numpy as np
from test_run_assign import open_campaign, served

from layoutopt.campaign.report_campaign import checks_html, traffic_html
from layoutopt.campaign.report_figures import (
    diagnostic_warnings,
    diagnostics_html,
    pair_heatmaps,
    strongest_pairs,
)
from layoutopt.campaign.report_svg import IntervalRow, diverging_colour, interval_svg


def test_diagnostic_warnings_flag_each_bad_value_and_only_those():
    good = {"max_r_hat": 1.005, "min_ess": 850.0, "num_divergences": 0, "converged": True}
    assert diagnostic_warnings(good) == []
    bad = {"max_r_hat": 1.02, "min_ess": 399.0, "num_divergences": 2, "converged": False}
    lines = diagnostic_warnings(bad)
    assert [w.split(" = ")[0] for w in lines] == list(bad)
    assert "max_r_hat = 1.02 (warn above 1.01)" in lines[0]
    assert diagnostic_warnings({"max_r_hat": float("nan")})  # NaN is not "fine"


def test_diagnostics_html_explains_and_warns(tiny_fits):
    post = tiny_fits("laplace")
    text = diagnostics_html(post)
    assert "Newton iterations reached the posterior mode" in text
    assert ("No diagnostic is out of bounds" in text) == post.diagnostics["converged"]
    post_bad = post.__class__(**{**post.__dict__, "diagnostics": {"converged": False}})
    text = diagnostics_html(post_bad)
    assert "⚠ converged = False (warn when false)" in text and '<tr class="bad">' in text


def test_interval_svg_hovers_with_escaped_labels():
    rows = [IntervalRow(1, 7, "<b>x</b> / y", 0.1, 0.09, 0.11, 0.6),
            IntervalRow(2, 3, "a / b", 0.095, 0.08, 0.1, 0.4)]  # fmt: skip
    svg = interval_svg(rows, 0.9, "top <layouts>")
    assert svg.count("<title>") == 2 and "<b>" not in svg
    assert "<title>layout 7 (#1): &lt;b&gt;x&lt;/b&gt; / y\nmean CTR 10.00%, 90% interval " in svg
    assert "9.00% – 11.00%, P(best) 0.600</title>" in svg
    assert re.search(r">#2 · layout 3</text>", svg)


def test_pair_tables_share_one_colour_scale(tiny_fits):
    post = tiny_fits("laplace")
    text = pair_heatmaps(post, n=3)
    chosen = strongest_pairs(post, n=3)
    assert text.count("<table class='pair'>") == len(chosen) == 3
    means = [np.asarray(post.params.pair[i]).mean(axis=0) for i, _, _ in chosen]
    limit = max(float(np.abs(m).max()) for m in means)
    # only the strongest cell of all tables gets the end colour: one scale, not one per table
    full = {diverging_colour(limit, limit), diverging_colour(-limit, limit)}
    ends = [c for c in re.findall(r"background:(rgb\([^)]*\))", text) if c in full]
    assert len(ends) == 1
    assert f"blue {-limit:.3f}" in text and f"red {limit:+.3f}" in text


def test_checks_show_sample_ratio_per_round_and_the_holdout_lift(tmp_path):
    control = {"headline": "h1", "image": "i2", "reviews": "none"}
    with open_campaign(tmp_path / "c.db", holdout=0.3, control=control) as camp:
        camp.propose(k=4, seed=5)
        a = camp.assign([f"u{i}" for i in range(4000)])
        log = served(a, 1, seed=7).assign(
            round=a["round"], propensity=a["propensity"], holdout=a["holdout"], unit=a["unit"]
        )
        camp.ingest(log)
        text = checks_html(camp)
        lift = camp.lift()
        traffic = traffic_html(camp, max_rows=2)
    assert "round 1: sample ratio ok (4,000 impressions" in text
    assert f"holdout lift: {100 * lift.lift:+.1f}%" in text
    assert traffic.count("<tr>") == 1 + 2 and "Showing the 2 most served" in traffic
