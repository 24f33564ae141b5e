"""The GPU benchmark script runs end to end at CI sizes on the CPU (its figures are not
checked here: speed lives in benchmarks/, never in a test)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

GPU = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.py"


@pytest.mark.slow
def test_gpu_script_runs_tiny_on_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    run = subprocess.run(
        [sys.executable, str(GPU), "--tiny", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(out.read_text())
    whats = [r["what"] for r in result["rows"]]
    assert any("closed form" in w for w in whats) and any("draws" in w for w in whats)
    assert "exact argmax (B&B)" in whats and "Laplace fit" in whats
    for row in result["rows"]:
        assert math.isfinite(row["seconds"]) and row["seconds"] > 0
    assert "| what | device |" in run.stdout
