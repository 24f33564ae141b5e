"""Aggregating an impression-level Parquet event log: time and peak memory.

Writes a synthetic log (5 components x 4 variants = 1,024 layouts, served over 14 days,
~5% clicks with Weibull(0.7, 6 h) delays) in chunks of 2M rows, then aggregates it with
``Observations.from_events`` in a fresh subprocess per measurement (peak RSS from
``getrusage``). Baselines in the same run: the same code on a log 10x smaller (time per
row should stay flat, memory should not grow) and pandas reading the small log whole.

    python benchmarks/bench_events.py --rows 50000000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

CHUNK = 2_000_000
NOW = "2026-01-15T00:00"


def write_log(path: Path, rows: int, seed: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    labels = pa.array([f"v{i}" for i in range(4)])
    t0 = np.datetime64("2026-01-01T00:00", "us").astype(np.int64)
    span = 14 * 24 * 3_600_000_000
    writer = None
    for start in range(0, rows, CHUNK):
        n = min(CHUNK, rows - start)
        cols = {
            f"c{k}": pa.DictionaryArray.from_arrays(
                pa.array(rng.integers(0, 4, n).astype(np.int8)), labels
            )
            for k in range(5)
        }
        served = t0 + rng.integers(0, span, n)
        delay = (6.0 * rng.weibull(0.7, n) * 3_600_000_000).astype(np.int64)
        clicked = served + delay
        keep = (rng.random(n) < 0.05) & (clicked <= t0 + span)
        cols["served_at"] = pa.array(served, pa.timestamp("us"))
        cols["clicked_at"] = pa.array(clicked, pa.timestamp("us"), mask=~keep)
        table = pa.table(cols)
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    writer.close()


CHILD = """
import json, resource, sys, time
import layoutopt as lo
space = lo.LayoutSpace({f"c{k}": [f"v{i}" for i in range(4)] for k in range(5)})
t = time.perf_counter()
if sys.argv[2] == "layoutopt":
    obs = lo.Observations.from_events(sys.argv[1], space, now=sys.argv[3])
    rows = obs.num_rows
else:
    import pandas as pd
    df = pd.read_parquet(sys.argv[1])
    rows = int(df.groupby([f"c{k}" for k in range(5)], observed=True).size().shape[0])
seconds = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "peak_mb": peak, "rows": rows}))
"""


def measure(path: Path, how: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), how, NOW],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=50_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from _common import machine

    small = max(args.rows // 10, 1000)
    with tempfile.TemporaryDirectory() as tmp:
        big_path, small_path = Path(tmp) / "big.parquet", Path(tmp) / "small.parquet"
        t = time.perf_counter()
        write_log(big_path, args.rows, args.seed)
        write_log(small_path, small, args.seed + 1)
        print(f"wrote logs in {time.perf_counter() - t:.0f}s ({big_path.stat().st_size >> 20} MiB)")
        base = measure(small_path, "layoutopt")
        pandas = measure(small_path, "pandas")
        big = measure(big_path, "layoutopt")
    per_row = (big["seconds"] / args.rows) / (base["seconds"] / small)
    print(f"machine: {machine()}")
    print("| log | method | seconds | peak RSS MB | rows out |")
    print("|---|---|---|---|---|")
    for size, name, m in (
        (small, "from_events", base),
        (small, "pandas read_parquet + groupby", pandas),
        (args.rows, "from_events", big),
    ):
        print(f"| {size:,} | {name} | {m['seconds']:.1f} | {m['peak_mb']:.0f} | {m['rows']} |")
    print(
        f"time per row, big / small log: {per_row:.2f}; peak RSS big / small: "
        f"{big['peak_mb'] / base['peak_mb']:.2f}; pandas / from_events peak RSS on the small "
        f"log: {pandas['peak_mb'] / base['peak_mb']:.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
