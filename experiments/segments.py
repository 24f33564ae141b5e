"""Segments: per-audience picks vs one pick for everyone, and pooling for a small audience.

Two studies on synthetic :class:`~layoutopt.simulate.SegmentWorld` worlds (space: headline 4
x body 3 x image 3 x reviews 2 = 72 layouts; audience ``member = prime | non_prime``; true
effects ``m_k ~ N(0, main_scale^2)``, ``p_kl ~ N(0, pair_scale^2)``, segment intercepts and
segment x component deviations ``~ N(0, segment_scale^2)``):

* **picks** - a campaign per world (the campaign driver, :func:`~layoutopt.sim.run_campaign`
  with :func:`~layoutopt.decide.policies.thompson`, Laplace refit per round), played twice on the
  same seed: ``per segment`` (``per_segment=True``: each audience gets its own proposals and
  its own shipped layout, ``segment=g``) and ``one for all`` (``per_segment=False``: one
  proposal and one shipped layout for the traffic mix, ``segment=None``).
  Reported: the traffic-weighted true CTR of what would be shipped at the end,
  ``sum_g w_g ctr(pick_g, g)``, beside the two ceilings (every audience's own best; the one
  best layout for the mix), and the mean local regret over the campaign.
* **small** - the minor audience gets only ``--small-share`` (5%) of the traffic. Every
  layout of the pairwise initial design is served ``--impressions`` in total, split by the
  shares; the minor audience's best layout is then picked from (a) the segment model fitted
  on all data (``pooled``: it borrows the shared effects from the major audience) and (b) the
  plain model fitted on the minor audience's rows alone (``alone``). Reported for the minor
  audience: true CTR of the pick / its true best, the RMSE of the posterior mean CTR over all
  72 layouts, and the coverage of the 90% intervals.

Writes ``segments.md``, ``segments_picks.csv``, ``segments_small.csv`` and ``segments.png``
into ``--out-dir``.

Usage::

    python experiments/segments.py --worlds 8 --budget 40000 --batch-size 4000
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

import layoutopt as lo
from layoutopt.decide import policies
from layoutopt.sim.segments import SegmentWorld
from layoutopt.sim.simulate import run_campaign

COMPONENTS = {
    "headline": [f"h{i}" for i in range(4)],
    "body": [f"b{i}" for i in range(3)],
    "image": [f"img{i}" for i in range(3)],
    "reviews": ["none", "stars"],
}
SEGMENTS = {"member": ["prime", "non_prime"]}


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worlds", type=int, default=8, help="worlds of the picks study")
    p.add_argument("--small-worlds", type=int, default=30, help="worlds of the small study")
    p.add_argument("--budget", type=int, default=40_000, help="campaign impressions (picks)")
    p.add_argument("--batch-size", type=int, default=4_000, help="impressions per round")
    p.add_argument("--share", type=float, default=0.6, help="prime share of traffic (picks)")
    p.add_argument("--impressions", default="20000,100000", help="total impressions (small)")
    p.add_argument("--small-share", type=float, default=0.05, help="minor audience share")
    p.add_argument("--base-rate", type=float, default=0.04, help="CTR at zero effects")
    p.add_argument("--main-scale", type=float, default=0.3, help="sd of shared main effects")
    p.add_argument("--pair-scale", type=float, default=0.1, help="sd of shared interactions")
    p.add_argument("--segment-scale", type=float, default=0.2, help="sd of segment terms")
    p.add_argument("--num-samples", type=int, default=400, help="posterior draws per fit")
    p.add_argument("--k", type=int, default=6, help="layouts per proposal")
    p.add_argument("--seed", type=int, default=0, help="first world seed")
    p.add_argument("--out-dir", default=str(Path(__file__).parent), help="output directory")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG")
    return p.parse_args(argv)


def _world(seed: int, shares, args) -> SegmentWorld:
    space = lo.LayoutSpace(COMPONENTS, segments=SEGMENTS)
    return SegmentWorld.random(
        space,
        seed=seed,
        shares=shares,
        base_rate=args.base_rate,
        main_scale=args.main_scale,
        pair_scale=args.pair_scale,
        segment_scale=args.segment_scale,
    )


def run_picks(seed: int, args) -> list[dict]:
    """One world, both campaign modes on the same seed."""
    world = _world(seed, [args.share, 1.0 - args.share], args)
    own = float(world.shares @ [world.best(g).ctr for g in range(2)])
    rows = []
    for mode, per_segment in (("per segment", True), ("one for all", False)):
        policy = policies.thompson(k=args.k, num_samples=args.num_samples, per_segment=per_segment)
        result = run_campaign(
            world, policy=policy, budget=args.budget, batch_size=args.batch_size, seed=seed
        )
        rows.append(
            {
                "world": seed,
                "mode": mode,
                "pick_ctr": float(result.pick_ctr[-1]),
                "own_best_ctr": own,
                "mix_best_ctr": world.best(None).ctr,
                "mean_local_regret": float(result.local_regret.mean()),
                "audiences_disagree": world.best(0).index != world.best(1).index,
            }
        )
    return rows


def _minor_scores(post, space, segment, world, g):
    grid = lo.score_grid(post, space, segment=segment).to_pandas().sort_values("index")
    codes = space.codes(grid["index"].to_numpy())
    truth = world.ctr(codes, g)
    pick = codes[int(np.argmax(grid["mean"].to_numpy()))]
    inside = (grid["lower"] <= truth) & (truth <= grid["upper"])
    return {
        "ratio": float(world.ctr(pick[None], g)[0] / world.best(g).ctr),
        "rmse": float(np.sqrt(np.mean((grid["mean"].to_numpy() - truth) ** 2))),
        "coverage90": float(inside.mean()),
    }


def run_small(seed: int, impressions: int, args) -> list[dict]:
    """Pooled segment model vs the minor audience fitted alone, on one world."""
    world = _world(seed, [1.0 - args.small_share, args.small_share], args)
    space = world.space
    rng = np.random.default_rng(seed + 10_000)
    design = lo.initial_design(space, seed=seed)
    codes = space.codes(design["index"].to_numpy())
    per_layout = impressions // len(codes)
    rows, segs, imps, clicks = [], [], [], []
    for g, share in enumerate(world.shares):
        n = rng.binomial(per_layout, share, size=len(codes))
        rows.append(codes)
        segs.append(np.full(len(codes), g))
        imps.append(n)
        clicks.append(world.serve(codes, n, g, rng))
    obs = lo.Observations.from_codes(
        space,
        np.concatenate(rows),
        np.concatenate(imps),
        np.concatenate(clicks),
        segments=np.concatenate(segs),
    )
    plain = lo.LayoutSpace(COMPONENTS)
    minor = lo.Observations.from_codes(plain, codes, imps[1], clicks[1])
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", lo.FitWarning)
        pooled = lo.fit(space, obs, seed=seed, num_samples=args.num_samples)
        alone = lo.fit(plain, minor, seed=seed, num_samples=args.num_samples)
    for method, post, sp, seg in (
        ("pooled", pooled, space, {"member": "non_prime"}),
        ("alone", alone, plain, None),
    ):
        scores = _minor_scores(post, sp, seg, world, 1)
        converged = bool(post.diagnostics["converged"])
        out.append(
            {
                "world": seed,
                "impressions": impressions,
                "minor_impressions": int(imps[1].sum()),
                "method": method,
                **scores,
                "converged": converged,
            }
        )
    return out


def _mean_se(df: pd.DataFrame, by: list[str], cols: list[str]) -> pd.DataFrame:
    g = df.groupby(by, sort=False)
    out = g[cols].mean()
    for c in cols:
        out[f"{c}_se"] = g[c].std(ddof=1) / np.sqrt(g[c].count())
    return out.reset_index()


def _paired(picks: pd.DataFrame) -> str:
    wide = picks.pivot(index="world", columns="mode", values="pick_ctr")
    diff = wide["per segment"] - wide["one for all"]
    se = diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else float("nan")
    return (
        f"{diff.mean():+.4f} +- {se:.4f} CTR (per-segment better in {(diff > 0).sum()}, "
        f"equal in {(diff == 0).sum()}, worse in {(diff < 0).sum()} of {len(diff)} worlds)"
    )


def to_markdown(picks: pd.DataFrame, small: pd.DataFrame) -> str:
    """The two summary tables as Markdown."""
    a = _mean_se(picks, ["mode"], ["pick_ctr", "own_best_ctr", "mix_best_ctr", "mean_local_regret"])
    lines = [
        "| mode | true CTR of shipped layouts (traffic-weighted) | ceiling: own best per "
        "audience | ceiling: one best for all | mean local regret |",
        "|---|---|---|---|---|",
    ]
    for r in a.itertuples():
        lines.append(
            f"| {r.mode} | {r.pick_ctr:.4f} +- {r.pick_ctr_se:.4f} | {r.own_best_ctr:.4f} | "
            f"{r.mix_best_ctr:.4f} | {r.mean_local_regret:.4f} +- {r.mean_local_regret_se:.4f} |"
        )
    b = _mean_se(small, ["impressions", "method"], ["ratio", "rmse", "coverage90"])
    minor = small.groupby("impressions")["minor_impressions"].mean()
    lines += [
        "",
        "| total impressions | minor audience impressions | method | true CTR of pick / "
        "best | RMSE of mean CTR | 90% coverage |",
        "|---|---|---|---|---|---|",
    ]
    for r in b.itertuples():
        lines.append(
            f"| {r.impressions:,} | {minor[r.impressions]:,.0f} | {r.method} | "
            f"{r.ratio:.3f} +- {r.ratio_se:.3f} | {r.rmse:.4f} +- {r.rmse_se:.4f} | "
            f"{r.coverage90:.2f} +- {r.coverage90_se:.2f} |"
        )
    return "\n".join(lines) + "\n"


def plot(picks: pd.DataFrame, small: pd.DataFrame, path: Path) -> None:
    """Left: shipped CTR / own-best ceiling per mode. Right: minor audience RMSE by method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    modes = list(dict.fromkeys(picks["mode"]))
    ax1.boxplot(
        [(picks[picks["mode"] == m].eval("pick_ctr / own_best_ctr")).to_numpy() for m in modes],
        tick_labels=modes,
    )
    ax1.set(title="shipped CTR / every audience's own best", ylabel="ratio")
    ax1.grid(alpha=0.3)
    levels = sorted(small["impressions"].unique())
    for method, marker in (("pooled", "o"), ("alone", "s")):
        s = small[small["method"] == method].groupby("impressions")["rmse"].mean()
        ax2.plot(levels, [s[v] for v in levels], marker=marker, label=method)
    ax2.set(
        title="minor audience (5% of traffic)",
        xlabel="total impressions",
        ylabel="RMSE of posterior mean CTR",
        xscale="log",
    )
    ax2.legend()
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    """Run both studies; returns an exit code."""
    args = _parse(argv)
    try:
        levels = [int(x) for x in args.impressions.split(",") if x.strip()]
    except ValueError:
        print(f"--impressions must be comma-separated integers, got {args.impressions!r}")
        return 2
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    picks, small = [], []
    for w in range(args.worlds):
        picks += run_picks(args.seed + w, args)
        print(f"picks: world {args.seed + w} done ({time.perf_counter() - t0:.0f}s)", flush=True)
    for w in range(args.small_worlds):
        for imp in levels:
            small += run_small(args.seed + w, imp, args)
    print(f"small: {args.small_worlds} worlds done ({time.perf_counter() - t0:.0f}s)", flush=True)
    elapsed = time.perf_counter() - t0
    picks, small = pd.DataFrame(picks), pd.DataFrame(small)
    picks.to_csv(out / "segments_picks.csv", index=False, float_format="%.6g")
    small.to_csv(out / "segments_small.csv", index=False, float_format="%.6g")
    disagree = int(picks.groupby("world")["audiences_disagree"].first().sum())
    md = [
        f"# Segments: {args.worlds} + {args.small_worlds} worlds",
        "",
        f"Command: `python experiments/segments.py {' '.join(argv or sys.argv[1:])}` (wall time "
        f"{elapsed / 60:.1f} min, {os.cpu_count()} CPUs). Worlds: 72 layouts, logit link, base "
        f"rate {args.base_rate}, main-effect sd {args.main_scale}, interaction sd "
        f"{args.pair_scale}, segment sd {args.segment_scale}. Mean +- se over worlds.",
        "",
        f"Picks: campaigns of {args.budget:,} impressions in batches of {args.batch_size:,}, "
        f"traffic {args.share:.0%} prime / {1 - args.share:.0%} non_prime; the two audiences' "
        f"true best layouts differ in {disagree} of {args.worlds} worlds.",
        "",
        f"Paired gain of per-segment picks over one for all (same world, same seed): "
        f"{_paired(picks)}.",
        "",
        f"Small audience: {args.small_share:.0%} of the traffic; pairwise design served; "
        f"{args.small_worlds} worlds.",
        "",
        to_markdown(picks, small),
    ]
    (out / "segments.md").write_text("\n".join(md))
    if not args.no_plot:
        plot(picks, small, out / "segments.png")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
