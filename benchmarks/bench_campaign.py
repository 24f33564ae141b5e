"""Campaign store: ingest of a large results file, and what the store adds to a round.

1. Ingest of an ``--rows``-row results CSV (default 1,000,000 rows on the 1,080-layout demo
   space) into a fresh SQLite store, in a fresh process: wall time and peak RSS. Baselines
   in the same run, each in a fresh process: reading the same file with
   ``Observations.from_csv`` (whole file in pandas, no store), and importing layoutopt (the
   RSS floor). Goal: < 30 s and < 1 GB.
2. A ``--rounds``-round campaign (default 50; ingest → ``Campaign.propose`` with the refit
   it implies). At every ``--every``-th round the same data are fitted and proposed from
   bare (``lo.fit`` + ``lo.propose``, same data, seeds, method, draws and k, after an untimed
   warm-up call so that neither pays JIT compilation); the table gives the median wall and
   CPU time of each and their ratio. The campaign's extra work: reading the observations,
   scoring the pick (``best_layout``) that the fit records, writing the posterior as NetCDF
   bytes and recording the proposal.

Usage::

    python benchmarks/bench_campaign.py [--rows 1000000] [--rounds 50] [--every 5] [--no-record]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _common import publish

import layoutopt as lo
from layoutopt.util.seeds import split_seed

DEMO = Path(lo.__file__).parent / "examples" / "demo_space.toml"

_INGEST = """
import resource, sys, time
t0 = time.perf_counter()
from layoutopt.campaign import Campaign
import layoutopt as lo
from layoutopt.util.seeds import split_seed
space = lo.LayoutSpace.from_toml(sys.argv[3])
t1 = time.perf_counter()
r1 = resource.getrusage(resource.RUSAGE_SELF)
if sys.argv[1] == "store":
    camp = Campaign.create(sys.argv[4], space)
    camp.ingest(sys.argv[2])
elif sys.argv[1] == "pandas":
    lo.Observations.from_csv(sys.argv[2], space)
r2 = resource.getrusage(resource.RUSAGE_SELF)
cpu = r2.ru_utime + r2.ru_stime - r1.ru_utime - r1.ru_stime
print(time.perf_counter() - t1, cpu, r2.ru_maxrss)
"""


def _child(mode: str, csv: Path, db: Path) -> tuple[float, float, float]:
    """Wall and CPU seconds (after imports) and peak RSS (MiB) of one fresh process."""
    out = subprocess.run(
        [sys.executable, "-c", _INGEST, mode, str(csv), str(DEMO), str(db)],
        capture_output=True,
        text=True,
        check=True,
    )
    seconds, cpu, peak_kib = out.stdout.strip().splitlines()[-1].split()
    return float(seconds), float(cpu), float(peak_kib) / 1024


def results_csv(space: lo.LayoutSpace, rows: int, path: Path, seed: int) -> None:
    """``rows`` result rows over the allowed layouts (labels, impressions, clicks)."""
    rng = np.random.default_rng(seed)
    allowed = np.flatnonzero(space.allowed_mask(space.codes(np.arange(space.size))))
    codes = space.codes(rng.choice(allowed, rows))
    frame = space.frame(codes).drop(columns="index")
    frame["impressions"] = rng.integers(1, 200, rows)
    frame["clicks"] = rng.binomial(frame["impressions"], 0.1)
    frame.to_csv(path, index=False)


def bench_ingest(rows: int, tmp: Path) -> str:
    space = lo.LayoutSpace.from_toml(DEMO)
    csv = tmp / "results.csv"
    results_csv(space, rows, csv, seed=0)
    size = csv.stat().st_size / 2**20
    runs = {m: _child(m, csv, tmp / f"{m}.db") for m in ("import", "pandas", "store")}
    names = {
        "import": "import layoutopt only (floor)",
        "pandas": "`Observations.from_csv` (whole file, no store)",
        "store": "`Campaign.ingest` (chunks of 200,000 rows, SQLite)",
    }
    lines = "".join(
        f"| {names[m]} | {wall:.1f} | {cpu:.1f} | {rss:.0f} |\n"
        for m, (wall, cpu, rss) in runs.items()
    )
    return (
        f"Ingest of {rows:,} rows ({size:.0f} MiB CSV, demo space) in a fresh process; "
        "times exclude imports; CPU = user + system seconds of the process; peak RSS of the "
        "process (ru_maxrss).\n\n"
        "| what | wall s | CPU s | peak RSS MiB |\n|---|---:|---:|---:|\n" + lines
    )


def bench_rounds(rounds: int, every: int, tmp: Path) -> str:
    space = lo.LayoutSpace.from_toml(DEMO)
    world = np.random.default_rng(1)
    truth = [world.normal(0, 0.3, n) for n in space.cardinalities]

    def serve(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        codes = np.stack(
            [space.encode(r) for r in frame[list(space.components)].to_dict("records")]
        )
        eta = -2.3 + sum(t[codes[:, k]] for k, t in enumerate(truth))
        out = frame[list(space.components)].copy()
        out["impressions"] = 2000
        out["clicks"] = rng.binomial(2000, 1 / (1 + np.exp(-eta)))
        return out

    camp = lo.Campaign.create(tmp / "rounds.db", space)
    camp.ingest(serve(lo.initial_design(space, seed=0), seed=0))
    t_camp, t_bare, c_camp, c_bare = [], [], [], []
    for r in range(1, rounds + 1):
        measured = r % every == 0
        if measured:
            # same data and seeds as the campaign's refit; the first call warms the JIT
            # caches for this data size, so neither timed call below pays compilation
            # the seeds Campaign.propose derives: (fit, propose), and the fit's own split
            fit_seed, propose_seed = split_seed(r, 2)
            fit_seed = split_seed(fit_seed, 2)[0]
            data = camp.observations()
            bare_propose(space, data, fit_seed, propose_seed)
        t0, c0 = time.perf_counter(), time.process_time()
        prop = camp.propose(k=8, seed=r)
        if measured:
            t_camp.append(time.perf_counter() - t0)
            c_camp.append(time.process_time() - c0)
            t0, c0 = time.perf_counter(), time.process_time()
            bare = bare_propose(space, data, fit_seed, propose_seed)
            t_bare.append(time.perf_counter() - t0)
            c_bare.append(time.process_time() - c0)
            pd.testing.assert_frame_equal(bare, prop.layouts)  # same data, same answer
        camp.ingest(serve(prop.layouts, seed=1000 + r))
    n = camp.observations().num_layouts
    camp.close()
    mc, mb = statistics.median(t_camp), statistics.median(t_bare)
    cc, cb = statistics.median(c_camp), statistics.median(c_bare)
    return (
        f"{rounds}-round campaign on the demo space (k=8, 2,000 impressions per layout, "
        f"laplace, 1,000 draws; {n} layouts tested at the end); timed every {every} rounds "
        f"({len(t_camp)} rounds), medians.\n\n"
        "| what | median wall s per round | median CPU s per round |\n|---|---:|---:|\n"
        f"| bare `lo.fit` + `lo.propose` on the same data | {mb:.2f} | {cb:.2f} |\n"
        "| `Campaign.propose` (refit + the pick's `best_layout`, store reads and writes) | "
        f"{mc:.2f} | {cc:.2f} |\n"
        f"| ratio campaign / bare | {mc / mb:.2f} | {cc / cb:.2f} |\n"
    )


def bare_propose(space, obs, fit_seed: int, propose_seed: int) -> pd.DataFrame:
    """What a round costs without the store: fit, then propose."""
    post = lo.fit(space, obs, method="laplace", seed=fit_seed)
    return lo.propose(post, k=8, seed=propose_seed)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--every", type=int, default=5)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        table = bench_ingest(args.rows, Path(tmp))
        if args.rounds > 0:
            table += "\n" + bench_rounds(args.rounds, args.every, Path(tmp))
    publish("bench_campaign", table, not args.no_record)


if __name__ == "__main__":
    main()
