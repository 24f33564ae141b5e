"""The Dask engine against a real LocalCluster of worker processes, one killed mid-job."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pandas as pd
import pytest
from conftest import random_draws

from layoutopt.infer.posterior import Posterior
from layoutopt.model.priors import PriorConfig
from layoutopt.model.space import LayoutSpace
from layoutopt.score.cluster import part_paths, score_grid_on
from layoutopt.score.scoring import score_grid_to_parquet

if os.environ.get("CI") == "true":
    import distributed  # CI installs the dask extra: a missing one fails there
else:
    distributed = pytest.importorskip("distributed")

# 9 x 7 x 5 x 6 x 4 x 8 = 60,480 layouts in 63 leaf blocks
CARD = (9, 7, 5, 6, 4, 8)
RULES = [{"c0": "v2", "c3": "v1"}, {"c1": "v4"}, {"c0": "v8", "c5": "v0", "c2": "v3"}]


# long-running (multi-process, sampling or compile-heavy): `pytest -m slow`, run by .ci/run
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def post() -> Posterior:
    space = LayoutSpace(
        {f"c{k}": [f"v{i}" for i in range(n)] for k, n in enumerate(CARD)}, forbidden=RULES
    )
    params = random_draws(CARD, 16, 3, base=-3.0, main_scale=0.3, pair_scale=0.1)
    return Posterior(space=space, prior=PriorConfig(), params=params, method="laplace")


@pytest.fixture(scope="module")
def want(post, tmp_path_factory) -> pd.DataFrame:
    path = tmp_path_factory.mktemp("whole") / "whole.parquet"
    score_grid_to_parquet(post, path, argmax_method="enumerate")
    return pd.read_parquet(path)


@pytest.fixture(scope="module")
def client():
    env = {"PYTHONPATH": os.environ.get("PYTHONPATH", ""), "JAX_PLATFORMS": "cpu"}
    with (
        distributed.LocalCluster(
            n_workers=3, threads_per_worker=1, processes=True, dashboard_address=None, env=env
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


def test_cluster_run_equals_the_unsharded_file(client, post, want, tmp_path):
    out = tmp_path / "grid.parquet"
    rows = score_grid_on(client, post, out, parts=7)
    got = pd.read_parquet(out)
    assert rows == len(got) == post.space.num_allowed
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert not part_paths(out, 7)[0].parent.exists()  # the parts are removed


def test_cluster_top_rows(client, post, want, tmp_path):
    out = tmp_path / "top.parquet"
    assert score_grid_on(client, post, out, parts=4, top=5, keep_parts=True) == 5
    top = want.assign(neg=-want["mean"]).sort_values(["neg", "index"]).head(5)
    top = top.drop(columns="neg").reset_index(drop=True)
    pd.testing.assert_frame_equal(pd.read_parquet(out), top, check_exact=True)
    assert all(p.exists() for p in part_paths(out, 4))


def test_back_to_back_runs_on_one_posterior(client, post, want, tmp_path):
    # the same posterior scattered again at once: the last run's copy is being released
    # while this run's is sent (a shared content-hashed key lost its data here)
    for k in range(3):
        out = tmp_path / f"again{k}.parquet"
        assert score_grid_on(client, post, out, parts=3) == post.space.num_allowed
    pd.testing.assert_frame_equal(pd.read_parquet(out), want, check_exact=True)


def test_a_worker_killed_mid_job_is_retried_and_the_result_is_exact(client, post, want, tmp_path):
    out = tmp_path / "killed.parquet"
    pids = client.run(os.getpid)  # {worker address: pid}
    result = {}  # score_grid_on runs on the client: in a thread, while this one kills
    job = threading.Thread(
        target=lambda: result.update(rows=score_grid_on(client, post, out, parts=12))
    )
    job.start()
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and time.monotonic() < deadline and job.is_alive():
        busy = [w for w, keys in client.processing().items() if keys and w in pids]
        if busy:
            killed = busy[0]
            os.kill(pids[killed], signal.SIGKILL)
        time.sleep(0.05)
    job.join(timeout=300)
    assert killed is not None, "no task was running to kill"
    assert not job.is_alive() and "rows" in result
    assert killed not in client.scheduler_info()["workers"]  # that worker is gone
    got = pd.read_parquet(out)
    assert result["rows"] == len(got)
    pd.testing.assert_frame_equal(got, want, check_exact=True)


def test_bad_parts_are_refused_before_anything_runs(client, post, tmp_path):
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="parts must be a positive integer"):
            score_grid_on(client, post, tmp_path / "x.parquet", parts=bad)
    assert np.all([not p.exists() for p in part_paths(tmp_path / "x.parquet", 1)])
