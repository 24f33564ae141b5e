"""Drift: ``half_life="auto"`` against fixed half-lives and a fit that knows the change.

Each world serves ``--rounds`` rounds; every round a fresh pairwise design of the
4 x 3 x 2 space of ``drift.py`` (seed = the round) gets ``--impressions`` impressions,
split evenly. Three kinds of world, ``--worlds`` of each: ``reversal`` (at round
``--change`` every effect flips sign, ``drift.reversal``), ``new`` (at ``--change`` the
tastes are redrawn independently) and ``none`` (no change). After the last round the data
are fitted (Laplace, seed 0) with ``half_life="auto"``, ``2``, ``4``, ``None`` and by the
change-point oracle (only the rounds from the true change on; all rounds when nothing
changed), and each fit's pick (``best_layout``) is valued by its true CTR in the last
round over the true best's. We report the mean value of the pick and its standard error
over the worlds of each kind, what ``"auto"`` chose, and the wall time of its fits.

    python experiments/drift_auto.py --worlds 2 --rounds 12 --change 8
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _markdown import to_markdown
from drift import SPACE, reversal

import layoutopt as lo
from layoutopt.decide.design import initial_design
from layoutopt.sim.simulate import SyntheticWorld
from layoutopt.sim.timeworld import TimeWorld

KINDS = ("reversal", "new", "none")
FITS = ("auto", "2", "4", "none", "oracle")


def world_of(kind: str, seed: int, change: int) -> TimeWorld:
    """The world of one seed and kind (the same ``before`` for every kind)."""
    before = SyntheticWorld.random(SPACE, seed=300 + seed, base_rate=0.05, main_scale=0.4)
    if kind == "none":
        return TimeWorld(before)
    if kind == "reversal":
        return TimeWorld(before, change_round=change, after=reversal(before))
    after = SyntheticWorld.random(SPACE, seed=900 + seed, base_rate=0.05, main_scale=0.4)
    return TimeWorld(before, change_round=change, after=after)


def served(world: TimeWorld, rounds: int, impressions: int, seed: int) -> lo.Observations:
    """Every round's pairwise design served with its round's CTRs, as observations with a
    ``round`` column."""
    rng = np.random.default_rng(seed)
    codes, n, clicks, round_ = [], [], [], []
    for r in range(rounds):
        c = SPACE.codes(initial_design(SPACE, seed=r)["index"].to_numpy())
        each = np.full(len(c), impressions // len(c))
        codes.append(c)
        n.append(each)
        clicks.append(world.respond(c, each, segment=None, round=r, rng=rng).clicks)
        round_.append(np.full(len(c), r))
    return lo.Observations.from_codes(
        SPACE, *(np.concatenate(a) for a in (codes, n, clicks)), round=np.concatenate(round_)
    )


def one(kind: str, seed: int, rounds: int, change: int, impressions: int) -> list[dict]:
    world = world_of(kind, seed, change)
    obs = served(world, rounds, impressions, seed)
    last = world.at(rounds - 1)
    best = last.best().ctr
    first = change if kind != "none" else 0
    keep = obs.round >= first
    oracle = lo.Observations.from_codes(
        SPACE, obs.codes[keep], obs.impressions[keep], obs.clicks[keep]
    )
    out = []
    for name in FITS:
        half_life = {"auto": "auto", "2": 2.0, "4": 4.0}.get(name)
        t = time.perf_counter()
        data = oracle if name == "oracle" else obs
        post = lo.fit(SPACE, data, seed=0, num_samples=500, half_life=half_life)
        seconds = time.perf_counter() - t
        pick = lo.best_layout(post, SPACE, seed=0)
        out.append(
            {
                "kind": kind,
                "seed": seed,
                "fit": name,
                "value": float(last.ctr_of_index([pick.index])[0] / best),
                "chosen": post.diagnostics.get("half_life_auto", "").split(" (")[0],
                "seconds": seconds,
            }
        )
    return out


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard error of the pick's value, per kind of world and fit."""
    g = df.groupby(["kind", "fit"], sort=False)["value"]
    table = pd.DataFrame({"mean": g.mean(), "se": g.std(ddof=1) / np.sqrt(g.count())})
    return table.unstack("fit")[[(s, f) for f in FITS for s in ("mean", "se")]]


def plot(table: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    width = 0.8 / len(FITS)
    x = np.arange(len(table.index))
    for i, f in enumerate(FITS):
        ax.bar(
            x + (i - (len(FITS) - 1) / 2) * width,
            table[("mean", f)],
            width,
            yerr=table[("se", f)],
            capsize=2,
            label=f if f in ("auto", "none", "oracle") else f"half-life {f}",
        )
    ax.set_xticks(x, [f"{k}" for k in table.index])
    ax.set_ylabel("value of the pick / best (last round)")
    ax.set_ylim(max(0.0, float(np.nanmin(table.xs("mean", axis=1, level=0).values)) - 0.1), 1.02)
    ax.legend(ncol=5, fontsize=8, loc="lower center")
    ax.set_title("half_life='auto' vs fixed half-lives vs the change-point oracle", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worlds", type=int, default=8)
    p.add_argument("--rounds", type=int, default=12)
    p.add_argument("--change", type=int, default=8)
    p.add_argument("--impressions", type=int, default=2400)
    p.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = p.parse_args(argv)
    t0, cpu0 = time.perf_counter(), time.process_time()
    rows = [
        row
        for kind in KINDS
        for seed in range(args.worlds)
        for row in one(kind, seed, args.rounds, args.change, args.impressions)
    ]
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    df = pd.DataFrame(rows)
    df.to_csv(args.out / "drift_auto.csv", index=False, float_format="%.6g")
    table = summary(df)
    plot(table, args.out / "drift_auto.png")
    auto = df[df["fit"] == "auto"]
    chosen = auto.groupby("kind", sort=False)["chosen"].agg(lambda c: c.value_counts().to_dict())
    md = [
        "# Drift: half_life='auto'",
        "",
        f"Command: `python experiments/drift_auto.py --worlds {args.worlds} --rounds "
        f"{args.rounds} --change {args.change} --impressions {args.impressions}` "
        f"({wall:.0f} s wall, {cpu:.0f} s CPU; the auto fits {auto['seconds'].mean():.1f} s "
        "wall each on average)",
        "",
        "Value of the pick (true CTR in the last round / the best's), mean and se over "
        f"{args.worlds} worlds of each kind:",
        "",
        to_markdown(table, ".3f"),
        "",
        "What `half_life='auto'` chose:",
        "",
        *(f"- {kind}: {counts}" for kind, counts in chosen.items()),
        "",
    ]
    (args.out / "drift_auto.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
