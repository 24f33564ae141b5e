"""Delayed clicks: bias of young layouts' CTR, naive vs delay-aware, and campaign regret.

Part 1 (bias): 9 layouts; six served evenly over 7 days, three added in the last 6 hours.
Clicks arrive after a Weibull(0.8) delay with the given mean. The log is aggregated with
``Observations.from_events`` and fitted with ``delay=None`` (naive) and ``delay="auto"``;
we report the mean relative error of the three young layouts' posterior mean CTR.

Part 2 (regret): the campaign driver (``simulate.run_campaign`` with
``policies.thompson(k=8, delay=...)``, 1 h per round) against a world whose clicks arrive
after the same delays; naive vs ``delay="auto"``.

    python experiments/delayed_feedback.py --seeds 3 --rounds 15
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd
from _markdown import to_markdown

import layoutopt as lo
from layoutopt.decide import policies
from layoutopt.sim.simulate import SyntheticWorld, run_campaign
from layoutopt.sim.timeworld import TimeWorld, event_log

SHAPE = 0.8


def delay_with_mean(hours: float) -> lo.Weibull:
    return lo.Weibull(SHAPE, hours / math.gamma(1 + 1 / SHAPE))


def bias(mean_delay: float, seed: int, n: int) -> dict:
    space = lo.LayoutSpace({"headline": ["h1", "h2", "h3"], "image": ["a", "b", "c"]})
    world = TimeWorld(
        SyntheticWorld.random(space, seed=seed, base_rate=0.08), delay_with_mean(mean_delay)
    )
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, 9, n)
    served = np.where(idx < 6, rng.uniform(0, 168, n), rng.uniform(162, 168, n))
    log = event_log(world, space.codes(idx), served, 168.0, rng)
    now = pd.Timestamp("2026-01-01") + pd.Timedelta(hours=168)
    obs = lo.Observations.from_events(log, space, now=now)
    codes = space.codes(np.arange(9))
    truth = world.world.ctr(codes)
    row = {"mean_delay_h": mean_delay, "seed": seed}
    for name, delay in (("naive", None), ("auto", "auto")):
        post = lo.fit(space, obs, delay=delay, seed=seed, num_samples=400)
        mean = np.asarray(lo.score_layouts(post, space, space.frame(codes))["mean"])
        row[f"young_bias_{name}"] = float(np.mean(mean[6:] / truth[6:] - 1))
        row[f"old_bias_{name}"] = float(np.mean(mean[:6] / truth[:6] - 1))
    return row


def regret(mean_delay: float, seed: int, rounds: int) -> list[dict]:
    space = lo.LayoutSpace(
        {"headline": ["h1", "h2", "h3", "h4"], "image": ["a", "b", "c"], "reviews": ["x", "y"]}
    )
    world = TimeWorld(
        SyntheticWorld.random(space, seed=100 + seed, base_rate=0.05, main_scale=0.4),
        delay_with_mean(mean_delay),
        hours_per_round=1.0,
    )
    rows = []
    for name, delay in (("naive", None), ("auto", "auto")):
        policy = policies.thompson(k=8, num_samples=500, delay=delay)
        res = run_campaign(world, policy=policy, budget=rounds * 1000, batch_size=1000, seed=seed)
        rows.append(
            {
                "mean_delay_h": mean_delay,
                "seed": seed,
                "model": name,
                "mean_local_regret": float(res.local_regret.mean()),
                "final_simple_regret": float(res.simple_regret[-3:].mean()),
            }
        )
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--delays", type=float, nargs="+", default=[1.0, 6.0, 24.0, 48.0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--events", type=int, default=60_000)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--campaign-seeds", type=int, default=1, help="campaign worlds per delay")
    p.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = p.parse_args(argv)
    b = pd.DataFrame([bias(d, s, args.events) for d in args.delays for s in range(args.seeds)])
    r = pd.DataFrame(
        [
            row
            for d in args.delays
            for s in range(args.campaign_seeds)
            for row in regret(d, s, args.rounds)
        ]
    )
    b.to_csv(args.out / "delayed_feedback_bias.csv", index=False, float_format="%.6g")
    r.to_csv(args.out / "delayed_feedback_regret.csv", index=False, float_format="%.6g")
    bt = b.groupby("mean_delay_h").mean(numeric_only=True).drop(columns="seed")
    values = ["mean_local_regret", "final_simple_regret"]
    rt = r.pivot_table(index="mean_delay_h", columns="model", values=values)
    if args.campaign_seeds > 1:  # standard errors over the campaign worlds
        se = r.pivot_table(index="mean_delay_h", columns="model", values=values, aggfunc="sem")
        se.columns = pd.MultiIndex.from_tuples([(f"{v} se", m) for v, m in se.columns])
        rt = pd.concat([rt, se], axis=1)
    md = [
        "# Delayed feedback",
        "",
        f"Command: `python experiments/delayed_feedback.py --seeds {args.seeds} "
        f"--events {args.events} --rounds {args.rounds} --campaign-seeds {args.campaign_seeds}`",
        "",
        "## Relative bias of posterior mean CTR (young: added 0-6 h before now)",
        "",
        to_markdown(bt, ".3f"),
        "",
        f"## Campaign regret (Thompson, 1 h rounds of 1,000 impressions, "
        f"{args.campaign_seeds} campaign world(s), mean over them)",
        "",
        to_markdown(rt, ".4f"),
        "",
    ]
    (args.out / "delayed_feedback.md").write_text("\n".join(md))
    print("\n".join(md))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.plot(bt.index, bt["young_bias_naive"], "o-", label="naive")
        ax.plot(bt.index, bt["young_bias_auto"], "s-", label='delay="auto"')
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("mean click delay (h)")
        ax.set_ylabel("relative bias, young layouts")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.out / "delayed_feedback.png", dpi=120)
    except ImportError:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
