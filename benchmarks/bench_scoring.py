"""Throughput of score_grid vs a naive one-hot design-matrix scorer, plus a gather roofline.

Usage: python benchmarks/bench_scoring.py [--draws 256] [--repeats 5] [--no-record]
"""

from __future__ import annotations

import argparse
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from _common import posterior, record

from layoutopt.model import pair_list
from layoutopt.scoring import score_grid

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
def gathers(table, idx):
    # one gather of a contiguous S-vector per index, summed: the memory-bound core of eta
    return jnp.take(table, idx, axis=0).sum(axis=1)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--draws", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args(argv)
    S = args.draws
    post = posterior(CARD, S)
    space = post.space
    N = space.size
    K = space.num_components
    lookups = K + K * (K - 1) // 2 + 1

    t_ours = median_time(lambda: score_grid(post, top=10), args.repeats)
    X = jnp.asarray(one_hot_design(space))
    theta = theta_of(post.params)
    t_naive = median_time(lambda: jax.block_until_ready(naive_stats(X, theta)), args.repeats)
    # agreement of the two scorers on the best layout's mean
    top = score_grid(post, top=1)
    m_naive = np.asarray(naive_stats(X, theta)[0])
    assert abs(m_naive.max() - top.mean[0]) < 1e-5, (m_naive.max(), top.mean[0])

    # roofline: random row gathers of an (R, S) table, summed over `lookups` rows per layout
    n_rows = 2048
    table = jnp.asarray(np.random.default_rng(0).normal(size=(n_rows, S)), jnp.float32)
    m = 20000
    idx = jnp.asarray(np.random.default_rng(1).integers(0, n_rows, (m, lookups)), jnp.int32)
    t_g = median_time(lambda: jax.block_until_ready(gathers(table, idx)), args.repeats)
    gather_rate = m * lookups * S / t_g  # table reads (floats) per second
    roof = gather_rate / lookups  # layout x draw evaluations per second if eta were all

    ours = N * S / t_ours
    naive = N * S / t_naive
    rows = [
        "| scorer | time (s) | layout x draw evals/s | ratio |",
        "|---|---|---|---|",
        f"| score_grid (fused chunks, top=10) | {t_ours:.3f} | {ours / 1e6:.1f} M | "
        f"{ours / naive:.1f}x vs naive |",
        f"| naive one-hot X @ theta (N x P dense, P={X.shape[1]}) | {t_naive:.3f} | "
        f"{naive / 1e6:.1f} M | 1.0x |",
        f"| gather roofline ({lookups} row look-ups per eval, jnp.take) | - | "
        f"{roof / 1e6:.1f} M | score_grid at {100 * ours / roof:.0f}% of it |",
    ]
    table_md = "\n".join(rows) + (
        f"\n\n{N:,} layouts x {S} draws, medians of {args.repeats} runs after one warm-up."
    )
    if args.no_record:
        print(table_md)
    else:
        record(
            "bench_scoring",
            "python benchmarks/bench_scoring.py " + " ".join(sys.argv[1:]),
            table_md,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
