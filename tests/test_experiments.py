"""Smoke tests: every experiment script's ``main`` runs end to end with tiny sizes."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pandas as pd
import pytest

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"


# long-running (multi-process, sampling or compile-heavy): `pytest -m slow`, run by .ci/run
pytestmark = pytest.mark.slow


def _load(name: str):
    # a script's own folder is on sys.path when it runs; its shared helpers need the same
    if str(EXPERIMENTS) not in sys.path:
        sys.path.insert(0, str(EXPERIMENTS))
    spec = importlib.util.spec_from_file_location(f"experiment_{name}", EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_hill2017_smoke(tmp_path):
    mod = _load("hill2017")
    argv = [
        "--worlds",
        "1",
        "--budget",
        "2000",
        "--batch-size",
        "1000",
        "--num-samples",
        "100",
        "--k",
        "4",
        "--fit-tol",
        "1e-2",
        "--out-dir",
        str(tmp_path),
    ]
    assert mod.main(argv) == 0
    for name in ("hill2017.md", "hill2017.csv", "hill2017_rounds.csv", "hill2017.png"):
        assert (tmp_path / name).stat().st_size > 0
    rounds = pd.read_csv(tmp_path / "hill2017_rounds.csv")
    assert set(rounds.method) == {"pairwise", "additive", "independent", "uniform"}
    assert len(rounds) == 1 * 4 * 2
    assert mod.main(["--methods", "pairwise,bogus", "--out-dir", str(tmp_path)]) == 2


def test_extrapolation_smoke(tmp_path):
    mod = _load("extrapolation")
    argv = [
        "--worlds",
        "2",
        "--impressions",
        "500",
        "--num-samples",
        "100",
        "--space",
        "tiny",
        "--out-dir",
        str(tmp_path),
    ]
    assert mod.main(argv) == 0
    for name in (
        "extrapolation.md",
        "extrapolation.csv",
        "extrapolation_worlds.csv",
        "extrapolation.png",
    ):
        assert (tmp_path / name).stat().st_size > 0
    table = pd.read_csv(tmp_path / "extrapolation.csv")
    assert set(table.method) == {"pairwise", "additive", "best tested", "oracle tested"}
    assert ((table.ratio > 0) & (table.ratio <= 1)).all()
    assert mod.main(["--impressions", "lots", "--out-dir", str(tmp_path)]) == 2


def test_segments_smoke(tmp_path):
    mod = _load("segments")
    argv = ["--worlds", "1", "--small-worlds", "1", "--budget", "2000", "--batch-size", "1000"]
    argv += ["--impressions", "3000"]
    argv += ["--num-samples", "50", "--k", "3", "--out-dir", str(tmp_path)]
    assert mod.main(argv) == 0
    for name in ("segments.md", "segments_picks.csv", "segments_small.csv", "segments.png"):
        assert (tmp_path / name).stat().st_size > 0
    picks = pd.read_csv(tmp_path / "segments_picks.csv")
    assert list(picks["mode"]) == ["per segment", "one for all"]
    # no shipped layout can beat every audience's own best
    assert (picks["pick_ctr"] <= picks["own_best_ctr"] + 1e-12).all()
    small = pd.read_csv(tmp_path / "segments_small.csv")
    assert list(small["method"]) == ["pooled", "alone"]
    assert mod.main(["--impressions", "lots", "--out-dir", str(tmp_path)]) == 2


def test_delayed_feedback_smoke(tmp_path):
    mod = _load("delayed_feedback")
    argv = "--delays 6 --seeds 1 --events 2000 --rounds 2"
    assert mod.main(argv.split() + ["--out", str(tmp_path)]) == 0
    for name in (
        "delayed_feedback.md",
        "delayed_feedback_bias.csv",
        "delayed_feedback_regret.csv",
        "delayed_feedback.png",
    ):
        assert (tmp_path / name).stat().st_size > 0
    regret = pd.read_csv(tmp_path / "delayed_feedback_regret.csv")
    assert list(regret["model"]) == ["naive", "auto"]
    assert (regret["mean_local_regret"] >= 0).all() and (regret["final_simple_regret"] >= 0).all()


def test_drift_smoke(tmp_path):
    mod = _load("drift")
    argv = "--seeds 1 --rounds 4 --change 3 --half-lives 1"
    assert mod.main(argv.split() + ["--out", str(tmp_path)]) == 0
    for name in ("drift.md", "drift.csv"):
        assert (tmp_path / name).stat().st_size > 0
    table = pd.read_csv(tmp_path / "drift.csv")
    assert list(table["half_life"].astype(str)) == ["none", "1.0"]
    assert (table["regret_after_change"] >= 0).all() and (table["width_before_change"] > 0).all()


def test_drift_auto_smoke(tmp_path):
    mod = _load("drift_auto")
    argv = "--worlds 1 --rounds 3 --change 2 --impressions 600"
    assert mod.main(argv.split() + ["--out", str(tmp_path)]) == 0
    for name in ("drift_auto.md", "drift_auto.csv", "drift_auto.png"):
        assert (tmp_path / name).stat().st_size > 0
    table = pd.read_csv(tmp_path / "drift_auto.csv")
    assert set(table["fit"]) == {"auto", "2", "4", "none", "oracle"}
    assert set(table["kind"]) == {"reversal", "new", "none"}
    assert ((table["value"] > 0) & (table["value"] <= 1)).all()


def test_cold_start_smoke(tmp_path):
    mod = _load("cold_start")
    argv = "--worlds 1 --past 2 --rounds 1 --k 2 --batch 50 --thin 50 --num-samples 50"
    assert mod.main(argv.split() + ["--out-dir", str(tmp_path)]) == 0
    for name in ("cold_start.md", "cold_start.csv", "cold_start.png"):
        assert (tmp_path / name).stat().st_size > 0
    worlds = pd.read_csv(tmp_path / "cold_start.csv")
    assert len(worlds) == 3 + 2 + 2  # 3 arms before data, 2 after, 2 at thin traffic
    assert ((worlds.coverage90.dropna() >= 0) & (worlds.coverage90.dropna() <= 1)).all()
    assert (worlds.pick_over_best.dropna() <= 1 + 1e-12).all()
    merged = tmp_path / "merged"
    assert mod.main(["--merge", str(tmp_path / "cold_start.csv"), "--out-dir", str(merged)]) == 0
    assert "1 worlds" in (merged / "cold_start.md").read_text()
    assert mod.main(["--past", "1", "--out-dir", str(tmp_path)]) == 2


def test_stopping_smoke(tmp_path):
    mod = _load("stopping")
    argv = "--worlds 2 --rounds 4 --min-rounds 2 --value-remaining 0.5"
    assert mod.main(argv.split() + ["--out", str(tmp_path)]) == 0
    for name in ("stopping.md", "stopping.csv", "stopping_regret.csv", "stopping.png"):
        assert (tmp_path / name).stat().st_size > 0
    table = pd.read_csv(tmp_path / "stopping.csv")
    assert len(table) == 2 and (table["stop_round"].between(2, 4)).all()
    assert (table["expected_loss"] >= 0).all() and (table["realised_loss"] >= 0).all()
    assert (table["impressions_at_stop"] == 1000 * table["stop_round"]).all()


def test_metrics_smoke(tmp_path):
    mod = _load("metrics")
    argv = "--worlds 1 --rounds 2 --batch 2000 --samples 100"
    assert mod.main(argv.split() + ["--out", str(tmp_path)]) == 0
    for name in ("metrics.md", "metrics.csv", "metrics.png"):
        assert (tmp_path / name).stat().st_size > 0
    table = pd.read_csv(tmp_path / "metrics.csv")
    assert list(table.scenario) == ["guardrail", "weighted"]
    # the planted clicks winner is never shipped under the guardrail
    assert not table.shipped_is_clicks_best[0]
