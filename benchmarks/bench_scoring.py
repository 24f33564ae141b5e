"""Throughput of score_grid vs a naive one-hot design-matrix scorer, plus an exp+add roofline.

The posterior is a real Laplace fit (pairwise design of the space, simulated clicks), so
score_grid's default is the closed-form Gaussian mean and interval (``method="auto"``); the
draw-based answer (``method="draws"``) is timed beside it.

Usage: python benchmarks/bench_scoring.py [--draws 256] [--repeats 5] [--tested 300,1000]
       [--no-record]
(``--tested``: further fits to that many tested layouts, as a long campaign accumulates;
the closed form is timed on each with the covariance tables, the default there, and with the
r factor rows, whose cost grows with r)
       python benchmarks/bench_scoring.py --scale-out 1,2,3 [--dask 3] [--draws 256]
(the second times the same full-grid score_grid as one program on 1, 2, 3 JAX processes on
localhost, and score_grid_on over a Dask LocalCluster: seconds per layout-draw)
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from _common import laplace_posterior, publish

from layoutopt.infer.posterior import Posterior
from layoutopt.model.core import pair_list
from layoutopt.score.cluster import score_grid_on
from layoutopt.score.covariance import prefer_tables
from layoutopt.score.grid import GridOptions
from layoutopt.score.scoring import score_grid, score_grid_to_parquet

CARD = (10, 8, 5, 4, 10, 10)  # 160,000 layouts


def median_time(f, repeats):
    f()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def one_hot_design(space):
    """X (N, P): intercept, main one-hots, pair one-hots (the naive formulation)."""
    codes = space.codes_range(0, space.size)
    cols = [np.ones((len(codes), 1), np.float32)]
    for k, n in enumerate(space.cardinalities):
        cols.append(np.eye(n, dtype=np.float32)[codes[:, k]])
    for k, j in pair_list(space.num_components):
        nj = space.cardinalities[j]
        cols.append(
            np.eye(space.cardinalities[k] * nj, dtype=np.float32)[codes[:, k] * nj + codes[:, j]]
        )
    return np.concatenate(cols, axis=1)


def theta_of(params):
    S = params.intercept.shape[0]
    parts = (
        [params.intercept[:, None]]
        + [m for m in params.main]
        + [p.reshape(S, -1) for p in params.pair]
    )
    return jnp.concatenate(parts, axis=1).T  # (P, S)


@jax.jit
def naive_stats(X, theta):
    eta = X @ theta  # (N, S): materialises the whole grid x draws
    ctr = jax.nn.sigmoid(eta)
    mean = ctr.mean(axis=1)
    lo, hi = jnp.quantile(ctr, jnp.array([0.05, 0.95]), axis=1)
    best = jnp.argmax(eta, axis=0)
    p_best = jnp.zeros(X.shape[0]).at[best].add(1.0 / eta.shape[1])
    return mean, lo, hi, p_best


@jax.jit
def roofline_step(x, b):
    # the least any scorer must do per (draw, layout): one add, one sigmoid (exp) summed over
    # the draws, one max over the layouts - on an eta that needs no computing at all
    e = x + b[:, None]
    return jnp.mean(jax.nn.sigmoid(e), axis=0), jnp.max(e, axis=1)


def scale_worker(directory, i, n, port, repeats):
    """One of n JAX processes: time score_grid_distributed (process 0 prints the median)."""
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=n, process_id=i)
    from jax.experimental import multihost_utils

    from layoutopt.score.distributed import score_grid_distributed

    post = Posterior.load(Path(directory) / "post.nc")

    def once():
        multihost_utils.sync_global_devices("start")
        t = time.perf_counter()
        grid = score_grid_distributed(post)
        return time.perf_counter() - t, grid

    _, grid = once()
    ts = [once()[0] for _ in range(repeats)]
    if i == 0:
        print(json.dumps({"n": n, "t": float(np.median(ts)), "rows": len(grid)}))
    jax.distributed.shutdown()


def scale_out(post, counts, dask_workers, repeats):
    """Median seconds of the same full-grid pass on each process count, and on Dask."""
    out = {}
    with tempfile.TemporaryDirectory() as d:
        post.save(Path(d) / "post.nc")
        env = dict(os.environ, JAX_PLATFORMS="cpu")
        for n in counts:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            cmd = [sys.executable, __file__, "--worker", d, "", str(n), str(port)]
            cmd += ["--repeats", str(repeats)]
            procs = []
            for i in range(n):
                cmd[4] = str(i)
                procs.append(subprocess.Popen(list(cmd), env=env, stdout=subprocess.PIPE))
            lines = [p.communicate()[0].decode().strip().splitlines() for p in procs]
            out[f"{n} process(es)"] = json.loads(lines[0][-1])["t"]
        if dask_workers:
            import distributed

            with (
                distributed.LocalCluster(
                    n_workers=dask_workers, threads_per_worker=1, dashboard_address=None
                ) as cluster,
                distributed.Client(cluster) as client,
            ):
                path = Path(d) / "grid.parquet"
                # the baseline of the Dask rows: the same Parquet file from one process
                one = lambda: score_grid_to_parquet(post, path, argmax_method="enumerate")  # noqa: E731
                out["1 process, score_grid_to_parquet"] = median_time(one, repeats)
                run = lambda: score_grid_on(client, post, path, parts=4 * dask_workers)  # noqa: E731
                out[f"Dask, {dask_workers} workers"] = median_time(run, repeats)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--draws", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--tested", default="300,1000", help="tested-layout counts, e.g. 300,1000")
    ap.add_argument("--no-record", action="store_true")
    ap.add_argument("--scale-out", default=None, help="process counts, e.g. 1,2,3")
    ap.add_argument("--dask", type=int, default=0, help="Dask workers for --scale-out")
    ap.add_argument("--worker", nargs=4, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        d, i, n, port = args.worker
        scale_worker(d, int(i), int(n), int(port), args.repeats)
        return 0
    if args.scale_out:
        post = laplace_posterior(CARD, args.draws)
        counts = [int(c) for c in args.scale_out.split(",")]
        times = scale_out(post, counts, args.dask, args.repeats)
        work = post.space.num_allowed * args.draws
        base = times[f"{counts[0]} process(es)"]
        lines = ["| run | time (s) | ns per layout-draw | vs baseline |", "|---|---|---|---|"]
        for name, t in times.items():
            if name == "1 process, score_grid_to_parquet":
                base = t  # the Dask rows write the same file: compared with this one
            lines.append(f"| {name} | {t:.3f} | {1e9 * t / work:.3f} | {base / t:.2f}x |")
        table = "\n".join(lines) + (
            f"\n\nscore_grid (closed form, every row, P(best)) of {post.space.num_allowed:,} "
            f"layouts x {args.draws} draws on localhost ({os.cpu_count()} cores), medians of "
            f"{args.repeats} runs after one warm-up. The process rows are against the first "
            "(in memory, score_grid_distributed); the Dask rows (score_grid_on: Parquet parts "
            "+ merge) against one process writing the same file (score_grid_to_parquet)."
        )
        publish("bench_scoring", table, record_it=not args.no_record)
        return 0
    S = args.draws
    post = laplace_posterior(CARD, S)
    space = post.space
    N = space.size

    t_full = median_time(lambda: score_grid(post), args.repeats)
    t_draws = median_time(lambda: score_grid(post, method="draws"), args.repeats)
    t_top = median_time(lambda: score_grid(post, top=10), args.repeats)
    t_top_draws = median_time(lambda: score_grid(post, top=10, method="draws"), args.repeats)
    X = jnp.asarray(one_hot_design(space))
    theta = theta_of(post.params)
    t_naive = median_time(lambda: jax.block_until_ready(naive_stats(X, theta)), args.repeats)
    # agreement of the scorers: the naive one and method="draws" compute the same draw
    # statistics (every layout's mean, the interval of the best); the closed form agrees
    # with them to Monte Carlo error (reported in units of the MC sd of the mean)
    full = score_grid(post, method="draws")
    m_naive, lo_naive, hi_naive, _ = (np.asarray(a) for a in naive_stats(X, theta))
    idx = space.indices(full.codes)
    assert np.abs(m_naive[idx] - full.mean).max() < 1e-5
    assert (
        abs(lo_naive[idx[0]] - full.lower[0]) < 1e-5
        and abs(hi_naive[idx[0]] - full.upper[0]) < 1e-5
    )
    gauss = score_grid(post)
    assert np.array_equal(gauss.p_best, full.p_best)
    mc_sd = (gauss.upper - gauss.lower) / (2 * 1.645) / np.sqrt(S)
    mc_err = float(np.max(np.abs(gauss.mean - full.mean) / mc_sd))

    # roofline: add + sigmoid + mean over draws + max over layouts of the same S x N floats,
    # streamed in cache-sized slices of a ready-made array (no eta computation, no sort)
    C = 4096
    x = jnp.asarray(np.random.default_rng(0).normal(-3, 0.3, (S, C)), jnp.float32)
    b = jnp.zeros(S, jnp.float32)
    t_roof = (
        median_time(
            lambda: jax.block_until_ready([roofline_step(x, b) for _ in range(N // C)]),
            args.repeats,
        )
        * N
        / (N // C * C)
    )
    xn = np.asarray(x)
    t_np = median_time(lambda: [np.exp(xn) for _ in range(N // C)], args.repeats)
    t_np *= N / (N // C * C)

    naive = N * S / t_naive
    roof = N * S / t_roof

    def row(name, t):
        rate = N * S / t
        return (
            f"| {name} | {t:.3f} | {rate / 1e6:.1f} M | {rate / naive:.1f}x | "
            f"{100 * rate / roof:.0f}% |"
        )

    r = post.gaussian.rank
    pairs = bool(post.gaussian.factor.pair)

    def how(p):
        return "covariance tables" if prefer_tables(CARD, pairs, p.gaussian.rank) else "factor rows"

    rows = [
        "| scorer | time (s) | layout x draw evals/s | vs naive | vs roofline |",
        "|---|---|---|---|---|",
        row(
            "score_grid, full grid, closed form (default for Laplace: mean, interval, "
            f"p_best of every layout; {post.observed_codes.shape[0]} tested layouts, r = {r}: "
            f"{how(post)} + the draws' max)",
            t_full,
        ),
        row("score_grid, full grid, method='draws' (host row sort of eta)", t_draws),
        row("score_grid, top=10, closed form", t_top),
        row("score_grid, top=10, method='draws'", t_top_draws),
        f"| naive one-hot X @ theta + jnp.quantile (N x P dense, P={theta.shape[0]}) | "
        f"{t_naive:.3f} | {naive / 1e6:.1f} M | 1.0x | {100 * naive / roof:.0f}% |",
        f"| roofline: add + sigmoid + mean + max of ready-made S x N floats (XLA) | "
        f"{t_roof:.3f} | {roof / 1e6:.1f} M | {roof / naive:.1f}x | 100% |",
        f"| (numpy np.exp alone of S x N floats, same slices) | {t_np:.3f} | "
        f"{N * S / t_np / 1e6:.1f} M | - | - |",
    ]
    factor_rows = GridOptions(closed_form="factor")
    rows.insert(
        3,
        row(
            f"score_grid, full grid, closed form with the r = {r} factor rows "
            "(closed_form='factor')",
            median_time(lambda: score_grid(post, grid_options=factor_rows), args.repeats),
        ),
    )
    for tested in [int(t) for t in args.tested.split(",") if t]:
        more = laplace_posterior(CARD, S, tested=tested)
        rk = more.gaussian.rank
        for label, opts in (("default", GridOptions()), ("factor rows", factor_rows)):
            t = median_time(lambda: score_grid(more, grid_options=opts), args.repeats)  # noqa: B023
            kind = how(more) if label == "default" else f"the r = {rk} factor rows"
            rows.insert(
                len(rows) - 3,
                row(f"score_grid, full grid, closed form, {tested} tested layouts: {kind}", t),
            )
    table_md = "\n".join(rows) + (
        f"\n\n{N:,} layouts x {S} draws (Laplace fit to {post.observed_codes.shape[0]} "
        f"layouts, factor rank r = {r}), medians of {args.repeats} runs after one warm-up. "
        f"Closed-form vs draw-based mean: max {mc_err:.1f} Monte Carlo sds; p_best identical."
    )
    publish("bench_scoring", table_md, record_it=not args.no_record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
