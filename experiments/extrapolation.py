"""Extrapolation: test a small pairwise design, then pick the best layout of the whole space.

For each synthetic world on the demo-like callout space (headline 6 x body 5 x image 6 x
personalisation 2 x reviews 3 = 1,080 layouts, one forbidden rule, 1,020 allowed), serve
``--impressions`` impressions to every layout of the pairwise initial design (a few dozen
layouts), fit the model, and compare how good the shipped layout truly is:

* ``pairwise``    - :func:`best_layout` of the additive + pairwise model (may be untested)
* ``additive``    - :func:`best_layout` of the additive-only model
* ``best tested`` - the tested layout with the highest observed CTR (what an A/B test of
  the design itself would ship)
* ``oracle tested`` - the truly best tested layout (the ceiling of any A/B test of the design)

It also reports the calibration of the 90% credible intervals: the share of *untested*
allowed layouts whose true CTR lies inside ``[lower, upper]`` from :func:`score_grid`.

Writes ``<name>.md``, ``<name>.csv`` (summary), ``<name>_worlds.csv`` (one row per world,
impressions level and method) and ``<name>.png`` into ``--out-dir`` (``--name`` defaults to
``extrapolation``).

Usage::

    python experiments/extrapolation.py --worlds 20 --impressions 2000,5000
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

SPACES = {
    # The demo callout space: 6 x 5 x 6 x 2 x 3 = 1,080 layouts, 1,020 allowed.
    "demo": (
        {
            "headline": [f"h{i}" for i in range(6)],
            "body": [f"b{i}" for i in range(5)],
            "image": [f"img{i}" for i in range(6)],
            "personalization": ["none", "first_name"],
            "reviews": ["none", "stars", "quote"],
        },
        [{"image": "img5", "reviews": "quote"}],
    ),
    # 3 x 3 x 2 = 18 layouts: for smoke tests only.
    "tiny": (
        {"headline": ["h0", "h1", "h2"], "image": ["i0", "i1", "i2"], "reviews": ["r0", "r1"]},
        [],
    ),
}
METHODS = ("pairwise", "additive", "best tested", "oracle tested")


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worlds", type=int, default=20, help="number of simulated worlds")
    p.add_argument(
        "--impressions", default="2000,5000", help="impressions per tested layout (list)"
    )
    p.add_argument("--base-rate", type=float, default=0.04, help="CTR at zero effects")
    p.add_argument("--main-scale", type=float, default=0.2, help="sd of true main effects")
    p.add_argument("--pair-scale", type=float, default=0.1, help="sd of true interactions")
    p.add_argument("--num-samples", type=int, default=1000, help="posterior draws per fit")
    p.add_argument("--seed", type=int, default=0, help="first world seed")
    p.add_argument("--space", choices=sorted(SPACES), default="demo", help="layout space")
    p.add_argument("--out-dir", default=str(Path(__file__).parent), help="output directory")
    p.add_argument("--name", default="extrapolation", help="stem of the output files")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG")
    return p.parse_args(argv)


def run_world(seed: int, impressions: int, args) -> list[dict]:
    """One world at one impressions level: a row per method.

    Each model is one round of the campaign driver (``simulate.run_campaign``): its policy
    serves the pairwise design evenly, refits, and reports its pick. The same campaign seed
    gives both models the same design and the same clicks.
    """
    from layoutopt.decide import policies
    from layoutopt.decide.design import UncoverablePairsWarning, initial_design
    from layoutopt.model.space import LayoutSpace
    from layoutopt.score.scoring import score_grid
    from layoutopt.sim.simulate import SyntheticWorld, run_campaign

    space = LayoutSpace(*SPACES[args.space])
    world = SyntheticWorld.random(
        space,
        seed,
        base_rate=args.base_rate,
        main_scale=args.main_scale,
        pair_scale=args.pair_scale,
    )
    best = world.best()
    with warnings.catch_warnings():
        # The forbidden (image, reviews) pair cannot be covered; that is expected.
        warnings.simplefilter("ignore", UncoverablePairsWarning)
        # the covering design's size does not depend on its seed (36 layouts on "demo")
        size = len(initial_design(space, seed=seed, kind="pairwise"))
    rows = []

    def record(method, index, tested, coverage=np.nan, width=np.nan, converged=True):
        ctr = float(world.ctr_of_index([index])[0])
        rows.append(
            {
                "world": seed,
                "impressions": impressions,
                "tested": len(tested),
                "method": method,
                "pick_index": int(index),
                "pick_ctr": ctr,
                "best_ctr": best.ctr,
                "ratio": ctr / best.ctr,
                "regret": best.ctr - ctr,
                "found_best": int(index) == best.index,
                "untested": int(index) not in set(tested),
                "coverage90": coverage,
                "width90": width,
                "converged": converged,
            }
        )

    for model in ("pairwise", "additive"):
        rounds = []
        policy = policies.thompson(
            k=8, num_samples=args.num_samples, pairwise=model == "pairwise", initial="pairwise"
        )
        run_campaign(
            world,
            policy=policy,
            budget=impressions * size,
            batch_size=impressions * size,
            seed=10_000 + seed,
            callback=lambda info, rec, out=rounds: out.append(info),
        )
        (info,) = rounds
        assert (info.impressions == impressions).all(), "the design is served evenly"
        tested = space.indices(info.codes)
        grid = score_grid(info.posterior, space, level=0.9)
        untested = ~np.isin(space.indices(grid.codes), tested)
        truth = world.ctr_of_index(space.indices(grid.codes))
        inside = (grid.lower <= truth) & (truth <= grid.upper)
        record(
            model,
            info.pick,
            tested,
            float(inside[untested].mean()),
            float(np.mean((grid.upper - grid.lower)[untested])),
            info.converged,
        )
    record("best tested", tested[int(np.argmax(info.clicks / info.impressions))], tested)
    record("oracle tested", tested[int(np.argmax(world.ctr_of_index(tested)))], tested)
    return rows


def summarise(worlds: pd.DataFrame) -> pd.DataFrame:
    """Mean (and standard error) over worlds per impressions level and method."""
    out = []
    for (imp, method), g in worlds.groupby(["impressions", "method"], sort=False):
        n = len(g)
        row = {"impressions": imp, "method": method, "worlds": n, "tested": g.tested.mean()}
        for col in ("ratio", "regret"):
            row[col] = g[col].mean()
            row[col + "_se"] = g[col].std(ddof=1) / np.sqrt(n) if n > 1 else np.nan
        row["found_best"] = g.found_best.mean()
        row["untested_pick"] = g.untested.mean()
        row["coverage90"] = g.coverage90.mean()
        row["width90"] = g.width90.mean()
        out.append(row)
    return pd.DataFrame(out)


def to_markdown(table: pd.DataFrame) -> str:
    """One markdown table, a row per (impressions, method)."""
    lines = [
        "| impressions / tested layout | method | true CTR / best CTR | regret | "
        "found the best | pick untested | 90% coverage (untested) | 90% width |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in table.itertuples():
        cov = "" if np.isnan(r.coverage90) else f"{r.coverage90:.3f}"
        wid = "" if np.isnan(r.width90) else f"{r.width90:.4f}"
        lines.append(
            f"| {r.impressions:,} | {r.method} | {r.ratio:.3f} +- {r.ratio_se:.3f} | "
            f"{r.regret:.4f} +- {r.regret_se:.4f} | {r.found_best:.2f} | "
            f"{r.untested_pick:.2f} | {cov} | {wid} |"
        )
    return "\n".join(lines) + "\n"


def plot(worlds: pd.DataFrame, path: Path) -> None:
    """Ratio true CTR(pick) / best CTR per method, one panel per impressions level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = sorted(worlds.impressions.unique())
    fig, axes = plt.subplots(1, len(levels), figsize=(5 * len(levels), 4), squeeze=False)
    for ax, imp in zip(axes[0], levels, strict=True):
        g = worlds[worlds.impressions == imp]
        data = [g[g.method == m].ratio.to_numpy() for m in METHODS]
        ax.boxplot(data, tick_labels=list(METHODS))
        ax.set(
            title=f"{imp:,} impressions per tested layout",
            ylabel="true CTR of pick / true best CTR",
        )
        ax.grid(alpha=0.3)
    fig.suptitle(f"Extrapolation from the pairwise design, {worlds.world.nunique()} worlds")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    """Run the experiment; returns an exit code."""
    args = _parse(argv)
    try:
        levels = [int(x) for x in args.impressions.split(",") if x.strip()]
    except ValueError:
        print(
            f"--impressions must be a comma-separated list of integers, got {args.impressions!r}",
            file=sys.stderr,
        )
        return 2
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows = []
    for imp in levels:
        for w in range(args.worlds):
            rows += run_world(args.seed + w, imp, args)
            print(
                f"impressions {imp} world {args.seed + w} done ({time.perf_counter() - t0:.0f}s)",
                flush=True,
            )
    elapsed = time.perf_counter() - t0
    worlds = pd.DataFrame(rows)
    worlds.to_csv(out / f"{args.name}_worlds.csv", index=False, float_format="%.6g")
    table = summarise(worlds)
    table.to_csv(out / f"{args.name}.csv", index=False, float_format="%.6g")
    md = [
        f"# Extrapolation from a pairwise design: {args.worlds} worlds, {args.space} space",
        "",
        f"Command: `python experiments/extrapolation.py {' '.join(argv or sys.argv[1:])}` "
        f"(wall time {elapsed / 60:.1f} min, {os.cpu_count()} CPUs). Worlds: logit link, "
        f"base rate {args.base_rate}, main-effect sd {args.main_scale}, interaction sd "
        f"{args.pair_scale}; {worlds.tested.iloc[0]} layouts tested "
        f"(pairwise design), mean (+- se) over worlds.",
        "",
        to_markdown(table),
    ]
    if not worlds[worlds.method.isin(["pairwise", "additive"])].converged.all():
        md.append("Some Laplace fits reported non-convergence (see extrapolation_worlds.csv).\n")
    (out / f"{args.name}.md").write_text("\n".join(md))
    if not args.no_plot:
        plot(worlds, out / f"{args.name}.png")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
