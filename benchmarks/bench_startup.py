"""Start-up time of the ``layoutopt`` command line, against ``python -c pass`` in the same run.

Every figure is a separate process (what a user at a shell waits for), the median of
``--repeats`` runs:

- ``--help``, ``campaign --help`` and ``campaign status`` (on a store with one ingested
  design) beside ``python -c pass``, the interpreter's own start;
- the first and the second ``fit`` and ``propose`` in a fresh compilation cache (the second
  reads every compiled program from the cache), and a ``fit --no-cache`` for comparison;
  these run once each, since a first run happens once per cache.

Run::

    python benchmarks/bench_startup.py [--repeats 5]

The table goes to stdout (Markdown). Nothing here is part of the library or the test suite.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO_SPACE = ROOT / "layoutopt" / "examples" / "demo_space.toml"


def timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    """Seconds one process takes from start to exit (it must succeed)."""
    t0 = time.perf_counter()
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {result.stderr.strip()[-500:]}")
    return seconds


def prepare(work: Path, env: dict[str, str]) -> None:
    """The demo space, its pairwise design with made-up clicks, a store holding it."""
    lo = [sys.executable, "-m", "layoutopt", "--no-cache"]
    (work / "space.toml").write_text(DEMO_SPACE.read_text())
    subprocess.run(
        [*lo, "design", "-s", "space.toml", "-o", "design.csv"],
        cwd=work,
        env=env,
        check=True,
        capture_output=True,
    )
    lines = (work / "design.csv").read_text().splitlines()
    rows = [lines[0] + ",impressions,clicks"]
    # a deterministic CTR between 3% and 7% per row: the figures time, they do not estimate
    rows += [f"{line},5000,{150 + (37 * i) % 200}" for i, line in enumerate(lines[1:])]
    (work / "results.csv").write_text("\n".join(rows) + "\n")
    for cmd in (
        ["campaign", "init", "-s", "space.toml", "--db", "c.db"],
        ["campaign", "ingest", "--db", "c.db", "results.csv"],
    ):
        subprocess.run([*lo, *cmd], cwd=work, env=env, check=True, capture_output=True)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its table; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per start-up figure")
    args = parser.parse_args(argv)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    lo = [sys.executable, "-m", "layoutopt"]
    with tempfile.TemporaryDirectory(prefix="bench_startup_") as tmp:
        work = Path(tmp)
        prepare(work, env)
        rows = []
        cases = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "layoutopt --help": [*lo, "--help"],
            "layoutopt campaign --help": [*lo, "campaign", "--help"],
            "layoutopt campaign status": [*lo, "campaign", "status", "--db", "c.db"],
        }
        for what, cmd in cases.items():
            runs = [timed(cmd, work, env) for _ in range(args.repeats)]
            rows.append((what, statistics.median(runs), f"median of {args.repeats}"))
        cached = dict(env, LAYOUTOPT_CACHE_DIR=str(work / "jax-cache"))
        fit = ["fit", "-s", "space.toml", "-d", "results.csv", "-o", "post.nc"]
        propose = ["propose", "-p", "post.nc", "-o", "next.csv"]
        rows.append(("layoutopt fit --no-cache", timed([*lo, "--no-cache", *fit], work, env), ""))
        for what, cmd in (("fit", fit), ("propose", propose)):
            for order in ("first", "second"):
                seconds = timed([*lo, *cmd], work, cached)
                rows.append((f"layoutopt {what}, {order} process", seconds, "fresh cache"))
    base = rows[0][1]
    load = os.getloadavg()[0]
    print(f"{os.cpu_count()} cores, load average {load:.1f}, {sys.executable}")
    print()
    print("| command | seconds | x `python -c pass` | runs |")
    print("|---|---:|---:|---|")
    for what, seconds, runs in rows:
        print(f"| {what} | {seconds:.2f} | {seconds / base:.1f} | {runs} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
