"""Stopping by value remaining: is the expected loss calibrated, and what does stopping save?

Each world is a random additive + pairwise truth (``SyntheticWorld.random``) over a 72-layout
space. Thompson sampling (``policies.thompson(k=8)``, Laplace fits) runs a fixed horizon of
``--rounds`` rounds of 1,000 impressions; after every round ``lo.decision(posterior, rule)``
gives the leader's expected loss and value remaining and the rule's verdict. A campaign run
with ``run_campaign(..., stop=rule)`` is this campaign cut at the first "stop" (the rounds
are the same: ``tests/decide/test_stopping.py``), so one run per world gives both:

* **calibration**: at the stopping round, the realised loss of the shipped leader
  (``ctr* - ctr(leader)``, known from the truth) against the expected loss the posterior
  reported; over worlds the mean realised loss should not exceed the mean reported one
  beyond its Monte Carlo error (the standard error over worlds);
* **savings**: impressions at stop against the fixed horizon with the same mean realised
  regret (the first horizon whose mean simple regret over the worlds is at most the
  stopped campaigns' mean).

    python experiments/stopping.py --worlds 40 --rounds 40
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from _markdown import to_markdown

import layoutopt as lo
from layoutopt.decide import policies
from layoutopt.sim.simulate import SyntheticWorld, run_campaign

SPACE = lo.LayoutSpace(
    {
        "headline": ["h1", "h2", "h3", "h4"],
        "image": ["a", "b", "c"],
        "body": ["x", "y", "z"],
        "reviews": ["on", "off"],
    }
)
BATCH = 1000


def one(seed: int, rounds: int, rule: lo.StopRule) -> tuple[dict, np.ndarray]:
    """One world: the per-round decisions of a fixed-horizon campaign, and its regret curve."""
    world = SyntheticWorld.random(SPACE, seed=500 + seed, base_rate=0.05, main_scale=0.3)
    decisions = []

    def record(info, rec):
        d = lo.decision(info.posterior, rule, rounds=info.round + 1, impressions=rec.impressions)
        decisions.append(d)

    res = run_campaign(
        world,
        policies.thompson(k=8, num_samples=500),
        budget=rounds * BATCH,
        batch_size=BATCH,
        seed=seed,
        callback=record,
    )
    stops = [i for i, d in enumerate(decisions) if d.stop]
    at = stops[0] if stops else rounds - 1
    d = decisions[at]
    best = world.best().ctr
    realised = best - float(world.truth([d.leader.index], None, at)[0])
    row = {
        "world": seed,
        "stopped": bool(stops),
        "stop_round": at + 1,
        "impressions_at_stop": int(res.impressions[at]),
        "expected_loss": d.expected_loss,
        "expected_loss_se": d.expected_loss_se,
        "value_remaining": d.value_remaining,
        "p_best": d.p_best,
        "realised_loss": realised,
        "relative_realised_loss": realised / float(world.truth([d.leader.index], None, at)[0]),
        "best_ctr": best,
        "fixed_horizon_regret": float(res.simple_regret[-1]),
    }
    return row, np.asarray(res.simple_regret, np.float64)


def summarise(df: pd.DataFrame, curves: np.ndarray, rule: lo.StopRule) -> pd.DataFrame:
    """The calibration and savings figures over the worlds (one row per figure)."""
    n = len(df)
    st = df[df.stopped]
    mean_curve = curves.mean(axis=0)
    stop_regret = float(df.realised_loss.mean())
    same = np.flatnonzero(mean_curve <= stop_regret)
    horizon = int(same[0] + 1) if len(same) else curves.shape[1]
    vr = rule.max_value_remaining

    def se(x):
        return float(x.std(ddof=1) / len(x) ** 0.5) if len(x) > 1 else float("nan")

    rows = [
        ("worlds", n),
        ("stopped by the rule before the horizon", len(st)),
        ("stopped: mean impressions at stop", float(st.impressions_at_stop.mean())),
        ("stopped: mean reported expected loss", float(st.expected_loss.mean())),
        ("stopped: mean realised loss", float(st.realised_loss.mean())),
        ("stopped: se of the mean realised loss", se(st.realised_loss)),
        ("stopped: share whose leader is the true best", float((st.realised_loss <= 0).mean())),
        (
            f"stopped: share with relative realised loss <= {vr:.0%} (rule: >= {rule.quantile:g})",
            float((st.relative_realised_loss <= vr).mean()),
        ),
        (
            "all worlds at stop or horizon: mean reported expected loss",
            float(df.expected_loss.mean()),
        ),
        ("all worlds at stop or horizon: mean realised loss", stop_regret),
        ("all worlds at stop or horizon: se of the mean realised loss", se(df.realised_loss)),
        (
            "all worlds: mean impressions (stop, or the horizon)",
            float(df.impressions_at_stop.mean()),
        ),
        ("fixed-horizon impressions", curves.shape[1] * BATCH),
        ("fixed horizon: mean realised regret", float(df.fixed_horizon_regret.mean())),
        ("shortest fixed horizon with the same mean regret as stopping", horizon * BATCH),
        (
            "stopping's mean impressions / that horizon",
            float(df.impressions_at_stop.mean()) / (horizon * BATCH),
        ),
    ]
    return pd.DataFrame(rows, columns=["figure", "value"]).set_index("figure")


def plot(df: pd.DataFrame, curves: np.ndarray, path: Path) -> None:
    """Mean simple regret by horizon with the stopping points; reported vs realised loss."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    x = np.arange(1, curves.shape[1] + 1) * BATCH
    a.plot(x, curves.mean(axis=0), label="fixed horizon: mean simple regret")
    a.scatter(
        df.impressions_at_stop, df.realised_loss, s=12, c="C1", label="stopped: realised loss"
    )
    a.set_xlabel("impressions")
    a.set_ylabel("regret (CTR)")
    a.legend()
    top = float(max(df.expected_loss.max(), df.realised_loss.max())) * 1.1 + 1e-6
    b.scatter(df.expected_loss, df.realised_loss, s=12)
    b.plot([0, top], [0, top], "k--", lw=1)
    b.set_xlabel("reported expected loss at stop")
    b.set_ylabel("realised loss at stop")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worlds", type=int, default=40)
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--value-remaining", type=float, default=0.01)
    p.add_argument("--min-rounds", type=int, default=3)
    p.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = p.parse_args(argv)
    rule = lo.StopRule(max_value_remaining=args.value_remaining, min_rounds=args.min_rounds)
    rows, curves = zip(*(one(s, args.rounds, rule) for s in range(args.worlds)), strict=True)
    df = pd.DataFrame(rows)
    curves = np.stack(curves)
    df.to_csv(args.out / "stopping.csv", index=False, float_format="%.6g")
    rounds = [f"round_{r + 1}" for r in range(curves.shape[1])]
    regret = pd.DataFrame(curves, columns=rounds).rename_axis("world")
    regret.to_csv(args.out / "stopping_regret.csv", float_format="%.6g")
    table = summarise(df, curves, rule)
    plot(df, curves, args.out / "stopping.png")
    md = [
        "# Stopping by value remaining",
        "",
        f"Command: `python experiments/stopping.py --worlds {args.worlds} --rounds {args.rounds} "
        f"--value-remaining {args.value_remaining:g} --min-rounds {args.min_rounds}`",
        "",
        f"Rule: `{rule}`.",
        "",
        to_markdown(table, ".6g"),
        "",
    ]
    (args.out / "stopping.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
