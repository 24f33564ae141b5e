"""The HTML report: self-contained, labelled, and rendered by a real browser (headless
Chromium) into a screenshot that is not blank."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from layoutopt.campaign.campaign import Campaign
from layoutopt.campaign.report import posterior_report, strongest_pairs
from layoutopt.cli.app import main
from layoutopt.decide.design import initial_design

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def campaign_report_file(tmp_path_factory, tiny_space):
    """A two-round campaign on the tiny space, fitted, and its report."""
    tmp = tmp_path_factory.mktemp("report")
    rng = np.random.default_rng(0)
    with Campaign.create(tmp / "c.db", tiny_space, name="tiny") as camp:
        design = initial_design(tiny_space, seed=0)
        design = design[list(tiny_space.components)].assign(impressions=800)
        design["clicks"] = rng.binomial(800, 0.1, len(design))
        camp.ingest(design)
        batch = camp.propose(k=3, seed=1).layouts[list(tiny_space.components)]
        camp.ingest(batch.assign(impressions=800, clicks=rng.binomial(800, 0.12, len(batch))))
        camp.fit(seed=2)
        path = camp.report(tmp / "report.html")
    return path


def test_report_is_self_contained_and_labelled(campaign_report_file, tiny_space):
    text = campaign_report_file.read_text()
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    # figures embedded, nothing fetched from the network
    assert text.count('src="data:image/png;base64,') == 4  # history, top, forest, pairs
    assert not re.search(r"(src|href)=[\"']https?:", text)
    for heading in (
        "Campaign history",
        "Top layouts",
        "Main effects per component",
        "Strongest pairwise interactions",
        "Fit diagnostics",
    ):
        assert f"<h2>{heading}</h2>" in text
    for labels in tiny_space.variants:  # the top-layouts table names variants by label
        assert any(f"<td>{label}</td>" in text for label in labels)


def test_strongest_pairs_are_ordered(tiny_fits):
    post = tiny_fits("laplace")
    chosen = strongest_pairs(post, n=10)
    strength = [np.abs(np.asarray(post.params.pair[i]).mean(0)).max() for i, _, _ in chosen]
    assert strength == sorted(strength, reverse=True) and len(chosen) == len(post.params.pair)


def test_cli_report_from_posterior(tmp_path, tiny_fits, capsys):
    post_file = tmp_path / "post.nc"
    tiny_fits("laplace").save(post_file)
    out = tmp_path / "r.html"
    assert main(["report", "--posterior", str(post_file), "-o", str(out)]) == 0
    text = out.read_text()
    assert "Campaign history" not in text and text.count("data:image/png;base64,") == 3
    assert main(["report", "--posterior", str(tmp_path / "nope.nc"), "-o", str(out)]) == 2
    assert "no such posterior file" in capsys.readouterr().err


def test_report_refuses_other_suffix(tmp_path, tiny_fits):
    with pytest.raises(ValueError, match=r"unsupported output format '\.txt'"):
        posterior_report(tiny_fits("laplace"), tmp_path / "r.txt")


def test_report_renders_in_headless_chromium(campaign_report_file, tmp_path):
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing on CI (.ci/run installs it)")
        pytest.skip(f"{CHROMIUM} not installed")
    import matplotlib.image

    shot = tmp_path / "shot.png"
    profile = tmp_path / "profile"
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--screenshot={shot}",
        "--window-size=1200,1800",
        campaign_report_file.as_uri(),
    ]
    try:
        subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert shot.exists(), "chromium wrote no screenshot"
    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[:2] == (1800, 1200)
    # not blank: a good share of the page is ink (text, plots), in several colours
    ink = (pixels < 0.9).any(axis=-1).mean()
    assert ink > 0.03, f"only {ink:.1%} of the screenshot is not white"
    colours = np.unique((pixels * 15).round().reshape(-1, 3), axis=0)
    assert len(colours) > 20


def test_campaign_report_says_when_data_arrived_since_the_fit(campaign_report_file, tiny_space):
    assert "Note:" not in campaign_report_file.read_text()
    with Campaign.open(campaign_report_file.parent / "c.db") as camp:
        row = dict(zip(tiny_space.components, ("h1", "cat photo", "none"), strict=True))
        camp.ingest(pd.DataFrame([row | {"impressions": 10, "clicks": 1}]))
        text = camp.report(campaign_report_file.parent / "later.html").read_text()
    assert "Note: 1 batch(es) ingested since the last fit; the figures show the latest fit." in text
