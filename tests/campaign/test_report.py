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
        camp.decision()  # the verdict the report shows at the top
        camp.propose(k=3, seed=3)  # an open round, answered by nobody yet
        path = camp.report(tmp / "report.html")
    shutil.copy(tmp / "c.db", tmp / "as_reported.db")  # the store as the report saw it
    return path


def test_report_is_self_contained_and_labelled(campaign_report_file, tiny_space):
    text = campaign_report_file.read_text()
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    # figures embedded, nothing fetched from the network
    # history and forest as PNG; the top layouts as inline SVG (hover); pairs as heat tables
    assert text.count('src="data:image/png;base64,') == 2 and text.count("<svg") == 1
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
    assert "Campaign history" not in text and text.count("data:image/png;base64,") == 1
    assert text.count("<svg") == 1 and "Verdict" not in text
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


def _section(text: str, heading: str) -> str:
    """The HTML between ``<h2>heading</h2>`` and the next ``<h2>``."""
    start = text.index(f"<h2>{heading}</h2>")
    end = text.find("<h2>", start + 4)
    return text[start : end if end > 0 else len(text)]


def test_report_acts_verdict_open_round_traffic_and_one_index(campaign_report_file, tiny_space):
    text = campaign_report_file.read_text()
    with Campaign.open(campaign_report_file.parent / "as_reported.db") as camp:
        verdict = camp.latest_decision()
        doc = camp.allocation()
        history = camp.history()
        proposals = camp.proposals()
    # the verdict comes first, with the leader named by index and labels
    verb = "stop and ship" if verdict.stop else "continue"
    assert text.index(f"Verdict: {verb}") < text.index("<h2>Open round</h2>")
    labels = " / ".join(verdict.leader.layout.values())
    assert f"leader: layout {verdict.leader.index} ({labels})" in text
    assert f"P(best) {verdict.p_best:.3f}" in text
    # the open round: each layout by index with its weight
    open_round = _section(text, "Open round")
    assert f"Round {doc['round']} is <b>open</b>" in open_round
    for row in doc["layouts"]:
        assert f'<td class="num">{row["index"]}</td>' in open_round
        assert f'<td class="num">{row["weight"]:.1%}</td>' in open_round
    # history carries each fit's verdict
    assert "<th>verdict</th>" in _section(text, "Campaign history")
    # traffic: one row per tested layout, the round columns add up to the history's
    traffic = _section(text, "Tested layouts and their traffic")
    cells = re.findall(r'title="layout (\d+): [^\n]*\nround (\d+): ([\d,]+) imp', traffic)
    per_round = pd.DataFrame(cells, columns=["index", "round", "n"]).astype(
        {"index": int, "round": int}
    )
    per_round["n"] = per_round["n"].str.replace(",", "").astype(int)
    got = per_round.groupby("round")["n"].sum()
    want = history.set_index("round")["impressions"]
    assert (got == want[got.index]).all() and want[want > 0].index.isin(got.index).all()
    tested = set(proposals.loc[proposals["round"] == 1, "index"])
    assert tested <= set(per_round.loc[(per_round["round"] == 1) & (per_round["n"] > 0), "index"])
    # one index everywhere: the top table has it, the plot names each layout by it
    top = _section(text, "Top layouts")
    assert "<th>index</th>" in top
    for i in re.findall(r"#\d+ · layout (\d+)</text>", top):
        assert f"<title>layout {i} (#" in top
    row = tiny_space.layout(int(re.findall(r"#1 · layout (\d+)</text>", top)[0]))
    assert " / ".join(row.values()) in top


@pytest.mark.parametrize(("width", "name"), [(1280, "desktop"), (390, "phone")])
def test_report_screenshots_at_desktop_and_phone_width(campaign_report_file, tmp_path, width, name):
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing on CI (.ci/run installs it)")
        pytest.skip(f"{CHROMIUM} not installed")
    import matplotlib.image

    shot = tmp_path / f"report_{name}.png"
    profile = tmp_path / "profile"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--hide-scrollbars", f"--user-data-dir={profile}", f"--screenshot={shot}",
           f"--window-size={width},2400", campaign_report_file.as_uri()]  # fmt: skip
    try:
        subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert shot.exists(), "chromium wrote no screenshot"
    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[:2] == (2400, width)
    ink = (pixels < 0.9).any(axis=-1)
    assert ink.mean() > 0.03, f"only {ink.mean():.1%} of the screenshot is not white"
    # nothing runs off the right edge: the last 4 pixel columns are page background
    # (wide tables scroll inside their own box, figures scale to the width)
    assert ink[:, -4:].mean() < 0.01
