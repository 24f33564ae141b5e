"""``layoutopt score --distributed`` on 2 real processes equals ``layoutopt score``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from layoutopt.cli.app import main
from layoutopt.infer.posterior import Posterior
from layoutopt.model.core import Params, pair_list
from layoutopt.model.priors import PriorConfig
from layoutopt.model.space import LayoutSpace

ROOT = Path(__file__).resolve().parents[2]
CARD = (3, 4, 5, 6)  # 360 layouts: several leaf blocks, so both processes score rows


# long-running (multi-process, sampling or compile-heavy): `pytest -m slow`, run by .ci/run
pytestmark = pytest.mark.slow


def _posterior(path: Path) -> None:
    rng = np.random.default_rng(11)
    S = 32
    space = LayoutSpace(
        {f"c{k}": [f"v{i}" for i in range(n)] for k, n in enumerate(CARD)},
        forbidden=[{"c0": "v1", "c2": "v3"}],
    )
    params = Params(
        rng.normal(-3.0, 0.2, S).astype(np.float32),
        tuple(rng.normal(0, 0.3, (S, n)).astype(np.float32) for n in CARD),
        tuple(
            rng.normal(0, 0.1, (S, CARD[k], CARD[j])).astype(np.float32)
            for k, j in pair_list(len(CARD))
        ),
    )
    Posterior(space=space, prior=PriorConfig(), params=params, method="nuts").save(path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(n: int, args: list[str]) -> list[subprocess.CompletedProcess]:
    port = _free_port()
    procs = []
    for i in range(n):
        env = dict(
            os.environ,
            PYTHONPATH=str(ROOT),
            JAX_PLATFORMS="cpu",
            LAYOUTOPT_CACHE_DIR="off",
            LAYOUTOPT_COORDINATOR=f"127.0.0.1:{port}",
            LAYOUTOPT_NUM_PROCESSES=str(n),
            LAYOUTOPT_PROCESS_ID=str(i),
        )
        cmd = [sys.executable, "-m", "layoutopt", "score", "--distributed", *args]
        procs.append(
            subprocess.Popen(
                cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=240)
        out.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    return out


def test_two_processes_equal_one(tmp_path):
    post = tmp_path / "post.nc"
    _posterior(post)
    single, top = tmp_path / "single.parquet", tmp_path / "top.csv"
    assert main(["score", "-p", str(post), "-o", str(single)]) == 0
    assert main(["score", "-p", str(post), "-o", str(top), "--top", "5"]) == 0
    dist = tmp_path / "dist.parquet"
    runs = _run(2, ["-p", str(post), "-o", str(dist)])
    assert all(r.returncode == 0 for r in runs), [r.stderr[-2000:] for r in runs]
    assert "(2 processes)" in runs[0].stderr and "wrote" not in runs[1].stderr
    # a grid in memory is written best first, the merged parts in index order: same rows
    want = pd.read_parquet(single).sort_values("index", ignore_index=True)
    got = pd.read_parquet(dist)
    assert got["index"].is_monotonic_increasing
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert got["p_best"].sum() == pytest.approx(1.0)
    dist_top = tmp_path / "dist_top.csv"
    runs = _run(2, ["-p", str(post), "-o", str(dist_top), "--top", "5"])
    assert all(r.returncode == 0 for r in runs), [r.stderr[-2000:] for r in runs]
    pd.testing.assert_frame_equal(pd.read_csv(dist_top), pd.read_csv(top), check_exact=True)


def test_incomplete_environment_is_one_line(tmp_path, monkeypatch, capsys):
    post = tmp_path / "post.nc"
    _posterior(post)
    monkeypatch.setenv("LAYOUTOPT_COORDINATOR", "127.0.0.1:1")
    monkeypatch.delenv("LAYOUTOPT_NUM_PROCESSES", raising=False)
    monkeypatch.delenv("LAYOUTOPT_PROCESS_ID", raising=False)
    assert main(["score", "--distributed", "-p", str(post)]) == 2
    err = capsys.readouterr().err
    assert "LAYOUTOPT_NUM_PROCESSES" in err and "set all three" in err
    assert main(["score", "--distributed", "--shard", "0/2", "-p", str(post)]) == 2
    assert "drop --shard/--merge" in capsys.readouterr().err
