"""Drift: regret after a change of taste, with and without ``half_life``.

At round ``--change`` every effect of the world flips sign (the old best becomes one of the
worst); Thompson sampling (the campaign driver, ``simulate.run_campaign`` with
``policies.thompson(k=8, half_life=...)``, no click delay) refits every round with
``half_life=None`` or a half-life in rounds. We report the simple regret averaged over
the rounds after the change and the width of the pick's 90% interval before the change
(the price of forgetting).

    python experiments/drift.py --seeds 2 --rounds 24 --change 16 --half-lives 3
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from _markdown import to_markdown

import layoutopt as lo
from layoutopt.decide import policies
from layoutopt.sim.simulate import SyntheticWorld, run_campaign
from layoutopt.sim.timeworld import TimeWorld

SPACE = lo.LayoutSpace(
    {"headline": ["h1", "h2", "h3", "h4"], "image": ["a", "b", "c"], "reviews": ["x", "y"]}
)


def reversal(before: SyntheticWorld) -> SyntheticWorld:
    """A reversal of taste: every effect flips sign, so the old best is now among the worst
    and the pooled (pre + post) data point nowhere in particular."""
    p = before.params
    flipped = lo.Params(p.intercept, tuple(-m for m in p.main), tuple(-t for t in p.pair))
    return SyntheticWorld(before.space, flipped, before.link)


def one(seed: int, rounds: int, change: int, half_life) -> dict:
    before = SyntheticWorld.random(SPACE, seed=200 + seed, base_rate=0.05, main_scale=0.4)
    world = TimeWorld(before, change_round=change, after=reversal(before))
    policy = policies.thompson(k=8, num_samples=500, half_life=half_life)
    res = run_campaign(world, policy=policy, budget=rounds * 1000, batch_size=1000, seed=seed)
    return {
        "seed": seed,
        "half_life": "none" if half_life is None else half_life,
        "regret_after_change": float(res.simple_regret[change:].mean()),
        "regret_last_3": float(res.simple_regret[-3:].mean()),
        "width_before_change": float(res.interval_width[change - 3 : change].mean()),
        "width_after_change": float(res.interval_width[-3:].mean()),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--rounds", type=int, default=24)
    p.add_argument("--change", type=int, default=12)
    p.add_argument("--half-lives", type=float, nargs="+", default=[2.0, 5.0])
    p.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = p.parse_args(argv)
    rows = [
        one(s, args.rounds, args.change, h)
        for s in range(args.seeds)
        for h in [None] + list(args.half_lives)
    ]
    df = pd.DataFrame(rows)
    df.to_csv(args.out / "drift.csv", index=False, float_format="%.6g")
    table = df.groupby("half_life", sort=False).mean(numeric_only=True).drop(columns="seed")
    md = [
        "# Drift",
        "",
        f"Command: `python experiments/drift.py --seeds {args.seeds} --rounds {args.rounds} "
        f"--change {args.change} --half-lives {' '.join(f'{h:g}' for h in args.half_lives)}`",
        "",
        to_markdown(table, ".4f"),
        "",
    ]
    (args.out / "drift.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
