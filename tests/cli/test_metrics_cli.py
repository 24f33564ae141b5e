"""--metric, --objective, --guardrail and --control on the command line, in-process."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest

from layoutopt.cli.app import main

TOML = """\
[components]
h = ["a", "b", "c"]
i = ["x", "y"]
"""


def run(capsys, *args):
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """Results where h=c has the most clicks and doubles dismissals; i=y doubles sign-ups."""
    d = tmp_path_factory.mktemp("metrics")
    (d / "space.toml").write_text(TOML)
    rng = np.random.default_rng(0)
    rows = []
    for h in "abc":
        for i in "xy":
            n = 5000
            rows.append(
                {
                    "h": h,
                    "i": i,
                    "impressions": n,
                    "clicks": rng.binomial(n, 0.04 + 0.03 * (h == "c")),
                    "signups": rng.binomial(n, 0.004 * (2 if i == "y" else 1)),
                    "dismissals": rng.binomial(n, 0.03 * (2 if h == "c" else 1)),
                }
            )
    pd.DataFrame(rows).to_csv(d / "results.csv", index=False)
    return d


def test_fit_per_metric_then_best_by_objective_and_guardrail(capsys, work):
    space, data = work / "space.toml", work / "results.csv"
    for m in ("clicks", "signups", "dismissals"):
        out = work / f"{m}.nc"
        code, text, err = run(
            capsys, "fit", "-s", space, "-d", data, "-o", out, "--metric", m, "--samples", "200"
        )
        assert code == 0, err
        assert f" {m}" in text.splitlines()[0]
    p = ["-p", work / "clicks.nc"]
    code, text, _ = run(capsys, "best", *p, "--json")
    assert json.loads(text)["layout"]["h"] == "c"  # clicks alone
    metrics = ["--metric", f"dismissals={work / 'dismissals.nc'}"]
    guard = ["--guardrail", "dismissals:0.10:0.9", "--control", "h=a,i=x"]
    code, text, err = run(capsys, "best", *p, *metrics, *guard, "--json")
    assert code == 0, err
    assert json.loads(text)["layout"]["h"] != "c"  # the guardrail excludes h=c
    code, text, err = run(capsys, "propose", *p, *metrics, *guard, "-k", "6", "--seed", "1")
    assert code == 0, err
    proposed = pd.read_csv(io.StringIO(text))
    assert len(proposed) and "c" not in set(proposed["h"])  # never a layout with h=c
    value = ["--metric", f"signups={work / 'signups.nc'}", "--objective", "clicks=1,signups=30"]
    code, text, err = run(capsys, "best", *p, *value, "--json")
    assert code == 0, err
    assert json.loads(text)["layout"]["i"] == "y"
    code, text, err = run(capsys, "score", *p, *value, "--top", "3")
    assert code == 0, err
    assert "Top 3 of 6 layouts" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--guardrail", "dismissals:0.1"], "expected METRIC:MAX_RELATIVE_INCREASE:PROBABILITY"),
        (["--objective", "clicks=lots"], "'clicks=lots' is not METRIC=WEIGHT"),
        (["--metric", "signups"], "expected NAME=FILE.nc"),
        (["--objective", "clicks=1,signups=30"], "metric 'signups' has no fitted posterior"),
    ],
)
def test_bad_options_are_one_line_errors(capsys, work, args, message):
    if not (work / "clicks.nc").exists():
        pytest.skip("needs the fits of the test above")
    code, _, err = run(capsys, "best", "-p", work / "clicks.nc", *args)
    assert code == 2 and "Traceback" not in err
    assert message in err


def test_campaign_objective_settings_and_status(capsys, work, tmp_path):
    db = tmp_path / "c.db"
    assert run(capsys, "campaign", "init", "-s", work / "space.toml", "--db", db)[0] == 0
    code, text, err = run(
        capsys,
        "campaign",
        "objective",
        "--db",
        db,
        "--objective",
        "clicks",
        "--guardrail",
        "dismissals:0.10:0.9",
        "--control",
        "h=a,i=x",
    )
    assert code == 0, err
    assert "guardrails: P(dismissals <= 1.1 x control) >= 0.9" in text
    results = pd.read_csv(work / "results.csv").drop(columns="signups")
    results.to_csv(tmp_path / "r.csv", index=False)
    assert run(capsys, "campaign", "ingest", "--db", db, tmp_path / "r.csv")[0] == 0
    code, _, err = run(capsys, "campaign", "fit", "--db", db)
    assert code == 0, err
    code, text, err = run(capsys, "campaign", "status", "--db", db)
    assert code == 0, err
    assert "objective: clicks per impression; guardrails:" in text
    verdict = [line for line in text.splitlines() if line.startswith("decision:")][0]
    assert "expected loss" in verdict and "guardrails exclude" in verdict
    assert "fails P(dismissals <= 1.1 x control)" in verdict


SETTINGS_TOML = (
    TOML
    + """
[objective]
clicks = 1
signups = 30

[guardrails.dismissals]
max_relative_increase = 0.10
probability = 0.9

[control]
h = "a"
i = "x"
"""
)


def test_campaign_init_reads_the_settings_tables_of_the_space_file(tmp_path, capsys):
    from layoutopt.campaign.campaign import Campaign

    (tmp_path / "space.toml").write_text(SETTINGS_TOML)
    db = tmp_path / "c.db"
    code, _, err = run(capsys, "campaign", "init", "--space", tmp_path / "space.toml", "--db", db)
    assert code == 0, err
    with Campaign.open(db) as camp:
        assert camp.objective().to_dict() == {"clicks": 1.0, "signups": 30.0}
        (guard,) = camp.guardrails()
        assert (guard.metric, guard.max_relative_increase, guard.probability) == (
            "dismissals",
            0.10,
            0.9,
        )
        assert camp.holdout[1] == {"h": "a", "i": "x"}
        assert camp.metric_columns() == ("signups", "dismissals")


@pytest.mark.parametrize(
    "extra, message",
    [
        ('[objective]\nclicks = "lots"\n', "objective"),
        ("[guardrails.dismissals]\nmax_relative_increase = 0.1\nprobability = 0.9\n", "[control]"),
        ('[control]\nh = "zzz"\ni = "x"\n', "zzz"),
        ('objective = "clicks"\n', "[objective] must be a table"),
    ],
)
def test_a_bad_settings_table_creates_nothing(tmp_path, capsys, extra, message):
    text = (extra + TOML) if not extra.startswith("[") else (TOML + "\n" + extra)
    (tmp_path / "space.toml").write_text(text)
    db = tmp_path / "c.db"
    code, _, err = run(capsys, "campaign", "init", "--space", tmp_path / "space.toml", "--db", db)
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 2 and len(errors) == 1 and message in errors[0], err
    assert not db.exists()
