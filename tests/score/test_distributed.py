"""Scoring on 2 and 3 real JAX processes (CPU collectives on localhost) equals one process.

The test starts n copies of this file as worker processes (``python test_distributed.py
DIR i n PORT``): each runs ``jax.distributed.initialize`` and the distributed passes over
every posterior saved in DIR, and writes what it got; every process's answer must equal the
single-process ``score_grid`` / ``best_layout`` / ``argmax_codes`` exactly, row for row.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

HERE = Path(__file__).resolve()
ROOT = HERE.parents[2]
TOP = 7
NAMES = ("laplace", "draws", "tied", "one_block")


# long-running (multi-process, sampling or compile-heavy): `pytest -m slow`, run by .ci/run
pytestmark = pytest.mark.slow


def methods(name: str) -> tuple[str, ...]:
    """Scoring methods compared: the Laplace fit in closed form and from its draws; the
    others have no Gaussian, so "auto" is the draws."""
    return ("auto", "draws") if name == "laplace" else ("auto",)


#: The posteriors each run scores (a run's compilations dominate its time): 2 processes
#: split the closed form and exact ties across slices, 3 the forbidden rules and a space of
#: one leaf block (the 2nd and 3rd processes score nothing).
RUNS = {2: ("laplace", "tied"), 3: ("draws", "one_block")}


def run_worker(directory: Path, i: int, n: int, port: int) -> None:
    """One process of the distributed run: score the run's posteriors in ``directory``."""
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=f"127.0.0.1:{port}", num_processes=n, process_id=i
    )
    from layoutopt.infer.posterior import Posterior
    from layoutopt.score.distributed import (
        argmax_codes_distributed,
        best_layout_distributed,
        decision_inputs_distributed,
        score_grid_distributed,
        score_grid_to_parquet_distributed,
    )

    for name in RUNS[n]:
        post = Posterior.load(directory / f"{name}.nc")
        out = {}
        for method in methods(name):
            g = score_grid_distributed(post, method=method)
            t = score_grid_distributed(post, top=TOP, method=method)
            for key, grid in (("all", g), ("top", t)):
                for f in ("codes", "mean", "lower", "upper", "p_best", "best_codes"):
                    out[f"{method}-{key}-{f}"] = getattr(grid, f)
        b = best_layout_distributed(post)
        out["best"] = np.array([b.index, b.mean, b.lower, b.upper, b.p_best], np.float64)
        out["argmax"] = argmax_codes_distributed(post)
        if name == RUNS[n][0]:  # once per run (compilations are a run's time)
            leader, best = decision_inputs_distributed(post)
            out["decision"] = np.concatenate([[leader.index, leader.p_best], best.reshape(-1)])
            # one Parquet dataset: a part per process, merged by process 0
            rows = score_grid_to_parquet_distributed(post, directory / f"{name}-{n}.parquet")
            out["parquet_rows"] = np.array([rows])
        np.savez(directory / f"{name}-{i}-of-{n}.npz", **out)
    jax.distributed.shutdown()


if __name__ == "__main__":
    run_worker(Path(sys.argv[1]), *(int(a) for a in sys.argv[2:]))
    sys.exit(0)

# ------------------------------------------------------------------------------- the tests
import jax.numpy as jnp  # noqa: E402
from conftest import make_truth, random_draws, simulate_observations  # noqa: E402

from layoutopt.infer.fitting import fit  # noqa: E402
from layoutopt.infer.posterior import Posterior  # noqa: E402
from layoutopt.model.core import Params  # noqa: E402
from layoutopt.model.priors import PriorConfig  # noqa: E402
from layoutopt.model.space import LayoutSpace  # noqa: E402
from layoutopt.score.distributed import combine_best, score_grid_distributed  # noqa: E402
from layoutopt.score.grid import plan  # noqa: E402
from layoutopt.score.optimize import argmax_codes  # noqa: E402
from layoutopt.score.scoring import (  # noqa: E402
    best_layout,
    score_grid,
    score_grid_to_parquet,
)


def make_space(card, rules=()) -> LayoutSpace:
    return LayoutSpace(
        {f"c{k}": [f"v{i}" for i in range(n)] for k, n in enumerate(card)}, forbidden=list(rules)
    )


def save(path: Path, space: LayoutSpace, params: Params) -> None:
    Posterior(space=space, prior=PriorConfig(), params=params, method="laplace").save(path)


@pytest.fixture(scope="module")
def posteriors(tmp_path_factory) -> Path:
    """Four posteriors saved as NetCDF: a Laplace fit (closed form) on 6 leaf blocks, draws
    on 63 blocks with forbidden rules, exact ties across blocks, and a one-block space (the
    2nd and 3rd processes score nothing)."""
    d = tmp_path_factory.mktemp("distributed")
    card = (3, 2, 5, 6, 4, 8)
    space = make_space(card, [{"c0": "v1", "c3": "v2"}])
    rng = np.random.default_rng(5)
    codes = space.codes(np.sort(rng.choice(space.num_allowed, 60, replace=False)))
    codes = codes[space.allowed_mask(codes)]
    obs = simulate_observations(space, make_truth(card, seed=4), codes, 3000, seed=6)
    fit(space, obs, method="laplace", seed=0, num_samples=64).save(d / "laplace.nc")
    card = (9, 7, 5, 6, 4, 8)
    rules = [{"c0": "v2", "c3": "v1"}, {"c1": "v4"}, {"c0": "v8", "c5": "v0", "c2": "v3"}]
    draws = random_draws(card, 16, 3, base=-3.0, main_scale=0.3, pair_scale=0.1)
    save(d / "draws.nc", make_space(card, rules), draws)
    p = random_draws(card, 16, 4, base=-3.0, main_scale=0.3, pair_scale=0.1)
    main = (jnp.zeros_like(p.main[0]),) + p.main[1:]  # c0 has no effect: 9 tied copies
    pair = tuple(jnp.zeros_like(t) if i < len(card) - 1 else t for i, t in enumerate(p.pair))
    tied = Params(p.intercept, main, pair)
    save(d / "tied.nc", make_space(card), tied)
    card = (2, 4, 5, 6)
    one = random_draws(card, 32, 7, base=-2.0)
    save(d / "one_block.nc", make_space(card), one)
    return d


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_processes(directory: Path, n: int) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
    port = free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, str(HERE), str(directory), str(i), str(n), str(port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(n)
    ]
    logs = [p.communicate(timeout=240)[0] for p in procs]
    for p, log in zip(procs, logs, strict=True):
        assert p.returncode == 0, log[-3000:]


def expected(name: str, post: Posterior, n: int) -> dict:
    """The single-process answers, keyed as the workers write them."""
    out = {}
    for method in methods(name):
        for key, top in (("all", None), ("top", TOP)):
            grid = score_grid(post, top=top, method=method)
            for f in ("codes", "mean", "lower", "upper", "p_best", "best_codes"):
                out[f"{method}-{key}-{f}"] = getattr(grid, f)
    b = best_layout(post)
    out["best"] = np.array([b.index, b.mean, b.lower, b.upper, b.p_best], np.float64)
    out["argmax"] = np.asarray(argmax_codes(post.params, post.space, method="enumerate"))
    if name == RUNS[n][0]:
        best = np.asarray(score_grid(post, top=1).best_codes)
        out["decision"] = np.concatenate([[b.index, b.p_best], best.reshape(-1)])
        out["parquet_rows"] = np.array([post.space.num_allowed])
    return out


def test_the_test_spaces_have_the_slices_they_are_meant_to(posteriors):
    blocks = {n: plan(Posterior.load(posteriors / f"{n}.nc").space.cardinalities) for n in NAMES}
    assert [blocks[n].num_prefixes for n in NAMES] == [6, 63, 63, 1]
    assert Posterior.load(posteriors / "laplace.nc").gaussian is not None  # closed form


@pytest.mark.parametrize("n", [2, 3])
def test_n_processes_equal_one_process_row_for_row(posteriors, n):
    run_processes(posteriors, n)
    for name in RUNS[n]:
        post = Posterior.load(posteriors / f"{name}.nc")
        want = expected(name, post, n)
        for i in range(n):
            with np.load(posteriors / f"{name}-{i}-of-{n}.npz") as got:
                assert set(got.files) == set(want)
                for key, value in want.items():
                    np.testing.assert_array_equal(got[key], value, err_msg=f"{name} {i} {key}")
                    assert got[key].dtype == np.asarray(value).dtype, (name, key)
        # the answers are not trivial: several layouts share P(best)
        assert np.count_nonzero(want["auto-all-p_best"]) > 1 or name == "one_block"
        if name == RUNS[n][0]:  # the merged parts equal one process's Parquet file
            single = posteriors / f"{name}-single.parquet"
            score_grid_to_parquet(post, single, argmax_method="enumerate")
            got = pd.read_parquet(posteriors / f"{name}-{n}.parquet")
            pd.testing.assert_frame_equal(got, pd.read_parquet(single), check_exact=True)
            assert not (posteriors / f"{name}-{n}.parquet.parts").exists()


def test_one_process_is_score_grid(posteriors):
    post = Posterior.load(posteriors / "draws.nc")
    got, want = score_grid_distributed(post, top=TOP), score_grid(post, top=TOP)
    for f in ("codes", "mean", "lower", "upper", "p_best", "best_codes"):
        np.testing.assert_array_equal(getattr(got, f), getattr(want, f))


def test_combine_best_sends_exact_ties_to_the_lowest_slice():
    eta = np.array([[1.0, 2.0, 3.0], [1.0, 2.5, 3.0], [0.5, 2.5, 4.0]], np.float32)
    codes = np.arange(3 * 3 * 2, dtype=np.int32).reshape(3, 3, 2)
    got = combine_best(eta, codes)
    np.testing.assert_array_equal(got, [codes[0, 0], codes[1, 1], codes[2, 2]])


def test_a_share_beyond_max_work_is_refused_before_it_starts(posteriors):
    post = Posterior.load(posteriors / "draws.nc")  # 16 draws x ~50k allowed layouts
    with pytest.raises(ValueError, match="one process's share.*max_work="):
        score_grid_distributed(post, top=1, max_work=10**5)
    assert len(score_grid_distributed(post, top=1, max_work=10**7)) == 1
