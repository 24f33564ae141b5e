"""Time and peak RSS of score_grid(top=10) as the space grows; each size in a fresh process.

Usage: python benchmarks/bench_scale.py [--sizes 5,6,7,8] [--draws 64] [--no-record]
    [--baseline-rev REV] [--baseline-max 6] [--laplace]
With --laplace the posterior is a Laplace fit (pairwise design of the space, scored in closed
form: ``2 + r`` float64 rows for mean and interval, the draws for P(best)) instead of random
draws; the fit is not timed.
(sizes are log10 of the number of layouts.) With --baseline-rev the library as of git revision
REV (e.g. the commit before the leaf-block kernel) is timed in the same run, in the same way,
for sizes up to --baseline-max.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, resource, sys, time
sys.path.insert(0, "benchmarks")
if len(sys.argv) > 4:
    sys.path.insert(0, sys.argv[4])  # an exported older revision of layoutopt
import layoutopt
assert len(sys.argv) <= 4 or layoutopt.__file__.startswith(sys.argv[4]), layoutopt.__file__
from _common import laplace_posterior, posterior
from layoutopt.score.scoring import score_grid
e, S = int(sys.argv[1]), int(sys.argv[2])
make = laplace_posterior if sys.argv[3] == "laplace" else posterior
post = make((10,) * e, S)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t = time.perf_counter()
g = score_grid(post, top=10)
t = time.perf_counter() - t
print(json.dumps({"time": t, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "before_mb": before, "best": float(g.mean[0])}))
"""


def _child(e, draws, src=None, mode="random"):
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(e), str(draws), mode] + ([src] if src else []),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="5,6,7")
    ap.add_argument("--draws", type=int, default=64)
    ap.add_argument("--baseline-rev", default=None)
    ap.add_argument("--baseline-max", type=int, default=6)
    ap.add_argument("--no-record", action="store_true")
    ap.add_argument("--laplace", action="store_true", help="a Laplace fit, closed-form scores")
    args = ap.parse_args(argv)
    mode = "laplace" if args.laplace else "random"
    src = None
    if args.baseline_rev:
        src = tempfile.mkdtemp(prefix="layoutopt-baseline-")
        archive = subprocess.run(
            ["git", "archive", args.baseline_rev, "layoutopt"], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", src], input=archive, check=True)
        # modules not tracked at REV (e.g. the package __init__) come from the working tree
        here = Path(__file__).resolve().parents[1] / "layoutopt"
        for f in here.glob("*.py"):
            if not (Path(src) / "layoutopt" / f.name).exists():
                shutil.copy(f, Path(src) / "layoutopt" / f.name)
    rows = [
        "| layouts | draws | time (s) | evals/s | peak RSS (MiB) | "
        "peak before scoring (MiB) | baseline "
        f"{args.baseline_rev or '-'}: time (s) | speed-up |",
        "|---|---|---|---|---|---|---|---|",
    ]
    base = None
    for e in (int(x) for x in args.sizes.split(",")):
        r = _child(e, args.draws, mode=mode)
        base = base or r["rss_mb"]
        old, ratio = "-", "-"
        if src and e <= args.baseline_max:
            b = _child(e, args.draws, src, mode=mode)
            assert abs(b["best"] - r["best"]) < 1e-6, (b, r)
            old, ratio = f"{b['time']:.1f}", f"{b['time'] / r['time']:.1f}x"
        rows.append(
            f"| 10^{e} | {args.draws} | {r['time']:.2f} | "
            f"{10**e * args.draws / r['time'] / 1e6:.1f} M | {r['rss_mb']:.0f} "
            f"({r['rss_mb'] / base:.2f}x of smallest) | {r['before_mb']:.0f} | {old} | {ratio} |"
        )
    table = "\n".join(rows) + (
        "\n\nOne fresh process per size (RSS includes JAX itself; 'before scoring' is the "
        "peak after building the posterior, i.e. the fit's share with --laplace)."
    )
    from _common import publish

    publish("bench_scale", table, record_it=not args.no_record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
