"""Time and peak RSS of score_grid(top=10) as the space grows; each size in a fresh process.

Usage: python benchmarks/bench_scale.py [--sizes 5,6,7] [--draws 64] [--no-record]
(sizes are log10 of the number of layouts; 8 = 10^8 takes long on 2 cores.)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = """
import json, resource, sys, time
sys.path.insert(0, "benchmarks")
from _common import posterior
from layoutopt.scoring import score_grid
e, S = int(sys.argv[1]), int(sys.argv[2])
post = posterior((10,) * e, S)
t = time.perf_counter()
g = score_grid(post, top=10)
t = time.perf_counter() - t
print(json.dumps({"time": t, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "best": float(g.mean[0])}))
"""


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="5,6,7")
    ap.add_argument("--draws", type=int, default=64)
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args(argv)
    rows = ["| layouts | draws | time (s) | evals/s | peak RSS (MiB) |", "|---|---|---|---|---|"]
    base = None
    for e in (int(x) for x in args.sizes.split(",")):
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(e), str(args.draws)],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        base = base or r["rss_mb"]
        rows.append(
            f"| 10^{e} | {args.draws} | {r['time']:.1f} | "
            f"{10**e * args.draws / r['time'] / 1e6:.1f} M | {r['rss_mb']:.0f} "
            f"({r['rss_mb'] / base:.2f}x of smallest) |"
        )
    table = "\n".join(rows) + "\n\nOne fresh process per size (RSS includes JAX itself)."
    if args.no_record:
        print(table)
    else:
        from _common import record

        record("bench_scale", "python benchmarks/bench_scale.py " + " ".join(sys.argv[1:]), table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
