"""GPU figures in one short run: full-grid scoring, the exact argmax and a large Laplace fit.

One script, prepared so that one device call gets every figure (issue: "GPU figures, prepared
so one short device call gets them"). It times, on the default JAX device and on the CPU in
the same run (the CPU at sizes it can finish, for the ratio):

* full-grid scoring of ``--layouts`` layouts x ``--draws`` draws: the closed-form pass of a
  Laplace posterior (``method="gaussian"``, mean and interval of every layout) and the
  draw-based pass (``method="draws"``), both with P(best) (the per-draw argmax over every
  layout) and a top-10 kept (the grid itself is never held in memory);
* the exact per-draw argmax (branch and bound with a certificate) over spaces of
  ``--argmax-layouts`` layouts;
* a Laplace fit of about ``--fit-params`` parameters (the low-rank solver).

For each: seconds (median of ``--repeats`` after a warm-up), layout-draws per second, the
bytes the pass must at least move (the pair tables of every draw, read once per leaf block,
and the per-layout outputs), and the fraction of the device's memory bandwidth and FP32 rate
that this implies (``--bandwidth`` in GB/s and ``--flops`` in GFLOP/s; defaults: H200 SXM,
4,800 GB/s and 67,000 GFLOP/s FP32). The figures go to ``--out`` (JSON) and are printed as a
markdown table. ``--tiny`` shrinks every size so that CI runs the whole script on a CPU in
seconds (``tests/test_benchmarks.py``).

Usage:
    python benchmarks/gpu.py --out /tmp/gpu.json                 # on the device (< 8 min)
    python benchmarks/gpu.py --tiny --out /tmp/gpu_tiny.json     # anywhere, seconds
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import laplace_posterior, machine, make_space, posterior  # noqa: E402

import layoutopt as lo  # noqa: E402


def _card(num_layouts: float, width: int = 10) -> tuple[int, ...]:
    """Cardinalities of about ``num_layouts`` layouts: components of ``width`` variants."""
    k = max(2, round(math.log(num_layouts, width)))
    return (width,) * k


def _median(fn, repeats: int) -> float:
    fn()  # warm-up: compilation
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def _traffic(card, draws: int, leaf: int = 1024) -> tuple[float, float]:
    """Least bytes moved and flops of one full-grid pass (float32)."""
    n = math.prod(card)
    pairs = sum(card[k] * card[j] for k in range(len(card)) for j in range(k + 1, len(card)))
    blocks = max(1, n // leaf)
    table_bytes = 4.0 * draws * pairs * blocks  # every draw's pair tables, once per leaf block
    out_bytes = 4.0 * 4 * n  # mean, lower, upper, p_best per layout
    flops = float(n) * draws * (len(card) * (len(card) - 1) / 2 + len(card) + 4)
    return table_bytes + out_bytes, flops


def _row(name, seconds, card, draws, args) -> dict:
    n = math.prod(card)
    moved, flops = _traffic(card, draws)
    return {
        "what": name,
        "layouts": n,
        "draws": draws,
        "seconds": seconds,
        "layout_draws_per_s": n * draws / seconds,
        "bytes_moved": moved,
        "bandwidth_fraction": moved / seconds / (args.bandwidth * 1e9),
        "fp32_fraction": flops / seconds / (args.flops * 1e9),
    }


def scoring(args, device) -> list[dict]:
    """Closed-form and draw-based full-grid scoring, on ``device``."""
    rows = []
    for size in args.layouts:
        card = _card(size)
        with jax.default_device(device):
            # a real Laplace fit of the space (its pairwise design, simulated clicks)
            gauss = laplace_posterior(card, args.draws)
            post = posterior(card, args.draws, seed=0)
            t = _median(lambda g=gauss: lo.score_grid(g, top=10, method="gaussian"), args.repeats)
            rows.append(_row("closed form (Laplace), P(best) included", t, card, args.draws, args))
            t = _median(lambda p=post: lo.score_grid(p, top=10, method="draws"), args.repeats)
            rows.append(_row("draws, P(best) included", t, card, args.draws, args))
    return rows


def argmax(args) -> list[dict]:
    """The exact per-draw argmax (branch and bound) over large spaces."""
    rows = []
    for size in args.argmax_layouts:
        card = _card(size)
        post = posterior(card, args.argmax_draws, seed=1)
        space = make_space(card)
        t = _median(lambda p=post, s=space: lo.argmax_codes(p.params, s, method="exact", seed=0), 1)
        rows.append(
            {
                "what": "exact argmax (B&B)",
                "layouts": space.size,
                "draws": args.argmax_draws,
                "seconds": t,
            }
        )
    return rows


def laplace_fit(args) -> list[dict]:
    """A Laplace fit of about ``args.fit_params`` parameters with the low-rank solver."""
    n = max(3, round(math.sqrt(args.fit_params / 10)))  # 10 pairs of n x n cells dominate
    card = (n,) * 5
    t0 = time.perf_counter()
    post = laplace_posterior(card, 100)
    seconds = time.perf_counter() - t0
    return [
        {
            "what": "Laplace fit",
            "parameters": 1 + sum(card) + 10 * n * n,
            "seconds": seconds,
            "converged": bool(post.diagnostics.get("converged", False)),
        }
    ]


def table(rows: list[dict]) -> str:
    """The figures as a markdown table."""
    head = "| what | device | layouts | draws | s | layout-draws/s | bandwidth | FP32 |"
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['what']} | {r.get('device', '')} | {r.get('layouts', r.get('parameters', ''))}"
            f" | {r.get('draws', '')} | {r['seconds']:.3f} | "
            f"{r.get('layout_draws_per_s', float('nan')):.3g} | "
            f"{r.get('bandwidth_fraction', float('nan')):.1%} | "
            f"{r.get('fp32_fraction', float('nan')):.1%} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="JSON file for the figures")
    ap.add_argument("--tiny", action="store_true", help="CI sizes: seconds on a CPU")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--bandwidth", type=float, default=4800.0, help="GB/s (H200: 4,800)")
    ap.add_argument("--flops", type=float, default=67000.0, help="FP32 GFLOP/s (H200: 67,000)")
    args = ap.parse_args(argv)
    if args.tiny:
        args.layouts, args.draws, args.argmax_layouts, args.argmax_draws = [1e4], 32, [1e6], 8
        args.fit_params, args.repeats, cpu_layouts = 300, 1, [1e4]
    else:
        args.layouts, args.draws = [1e8, 1e9], 1000
        args.argmax_layouts, args.argmax_draws = [1e10, 1e12], 1000
        args.fit_params, cpu_layouts = 20_000, [1e6]
    accel = jax.devices()[0]
    cpu = jax.devices("cpu")[0]
    rows = [dict(r, device=str(accel.platform)) for r in scoring(args, accel)]
    if accel.platform != "cpu":
        cpu_args = argparse.Namespace(**{**vars(args), "layouts": cpu_layouts})
        rows += [dict(r, device="cpu") for r in scoring(cpu_args, cpu)]
    rows += [dict(r, device=str(accel.platform)) for r in argmax(args)]
    rows += [dict(r, device=str(accel.platform)) for r in laplace_fit(args)]
    result = {"machine": machine(), "device": str(accel), "rows": rows}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"Machine: {result['machine']}\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
