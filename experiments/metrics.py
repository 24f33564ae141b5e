"""Several metrics: a guardrail the clicks winner violates, and a value that clicks misjudge.

Each world is a random additive + pairwise truth per metric (logit scale) over a 36-layout
space, served through the public API only: round 0 an initial design, then ``--rounds``
rounds of ``--batch`` impressions proposed by Thompson sampling on the objective
(``lo.fit_metrics`` with Laplace fits, ``lo.ObjectivePosterior``, ``lo.propose``); the
shipped layout is the leader of ``lo.decision`` after the last round. Two scenarios:

* **guardrail**: objective ``clicks``, guardrail ``dismissals`` at most +10% over the
  control (layout 0) with probability 0.9. The truth is planted so that the layout with
  the most clicks raises dismissals by 50-80%. Figures: how often that layout is shipped
  (it should never be), how often the shipped layout truly respects the guardrail (at
  least 0.9 if the posterior probability is calibrated), and how often the clicks-only
  pick on the same data (``lo.best_layout`` of the clicks posterior) would violate it.
* **weighted**: objective ``clicks + 30 signups`` in worlds where the true value-best and
  the true clicks-best layouts differ. Figures: how often the shipped layout is the true
  value-best, against the clicks-only pick on the same data, and the value regret of both.

    python experiments/metrics.py --worlds 12 --rounds 5
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from _markdown import to_markdown

import layoutopt as lo

SPACE = lo.LayoutSpace(
    {
        "headline": ["h1", "h2", "h3"],
        "image": ["a", "b", "c"],
        "body": ["x", "y"],
        "reviews": ["on", "off"],
    }
)
CONTROL = 0  # the layout of index 0 is the status quo
BASE = {"clicks": 0.05, "signups": 0.005, "dismissals": 0.03}
GUARD = {"dismissals": {"max_relative_increase": 0.10, "probability": 0.9}}
WEIGHTS = {"clicks": 1.0, "signups": 30.0}


def _rates(rng: np.random.Generator, base: float, scale: float = 0.25) -> np.ndarray:
    """True rates of every layout: inv_logit(b + sum of mains + sum of pairs / 2)."""
    codes = SPACE.codes(np.arange(SPACE.size))
    K = SPACE.num_components
    eta = np.full(len(codes), np.log(base / (1 - base)))
    mains = [rng.normal(0, scale, n) for n in SPACE.cardinalities]
    for k in range(K):
        eta += mains[k][codes[:, k]]
    for k in range(K):
        for j in range(k + 1, K):
            table = rng.normal(0, scale / 2, (SPACE.cardinalities[k], SPACE.cardinalities[j]))
            eta += table[codes[:, k], codes[:, j]]
    return 1.0 / (1.0 + np.exp(-eta))


def world(seed: int, scenario: str) -> dict[str, np.ndarray]:
    """The true rates of each metric; planted as the scenario needs (see module doc)."""
    for attempt in range(100):
        rng = np.random.default_rng([seed, attempt, 0 if scenario == "guardrail" else 1])
        truth = {m: _rates(rng, b) for m, b in BASE.items()}
        star = int(np.argmax(truth["clicks"]))
        if star == CONTROL:
            continue
        if scenario == "guardrail":
            # the clicks winner raises dismissals by 50-80% over the control
            truth["dismissals"][star] = truth["dismissals"][CONTROL] * rng.uniform(1.5, 1.8)
            return truth
        value = sum(w * truth[m] for m, w in WEIGHTS.items())
        if int(np.argmax(value)) != star:
            return truth
    raise RuntimeError(f"no {scenario} world for seed {seed}")


def observations(served: np.ndarray, counts: dict[str, np.ndarray]) -> lo.Observations:
    """Every layout's totals (unserved ones with 0 impressions: one fit shape, one compile)."""
    codes = SPACE.codes(np.arange(SPACE.size))
    extra = {m: c for m, c in counts.items() if m != "clicks"}
    return lo.Observations.from_codes(SPACE, codes, served, counts["clicks"], counts=extra)


def campaign(truth, objective, guardrails, seed: int, rounds: int, batch: int, samples: int):
    """Serve ``rounds`` rounds proposed on the objective; returns the last posteriors."""
    rng = np.random.default_rng(seed)
    served = np.zeros(SPACE.size, np.int64)
    counts = {m: np.zeros(SPACE.size, np.int64) for m in truth}

    def serve(index, weights):
        n = rng.multinomial(batch, np.asarray(weights) / np.sum(weights))
        served[index] += n
        for m, rate in truth.items():
            counts[m][index] += rng.binomial(n, rate[index])

    design = lo.initial_design(SPACE, seed=seed)
    serve(np.asarray(design["index"]), np.ones(len(design)))
    control = SPACE.layout(CONTROL) if guardrails else None
    for r in range(rounds):
        posts = lo.fit_metrics(
            SPACE, observations(served, counts), seed=seed + r, num_samples=samples
        )
        vp = lo.ObjectivePosterior.create(posts, objective, guardrails, control)
        if r == rounds - 1:
            return posts, vp
        batch_frame = lo.propose(vp, k=8, seed=seed + r)
        serve(np.asarray(batch_frame["index"]), batch_frame["weight"])
    raise AssertionError("rounds must be >= 1")


def one(seed: int, scenario: str, args) -> dict:
    truth = world(seed, scenario)
    star = int(np.argmax(truth["clicks"]))
    guarded = scenario == "guardrail"
    objective = "clicks" if guarded else WEIGHTS
    posts, vp = campaign(
        truth, objective, GUARD if guarded else None, seed, args.rounds, args.batch, args.samples
    )
    d = lo.decision(vp)
    shipped = d.leader.index
    clicks_pick = lo.best_layout(posts["clicks"]).index
    limit = 1.1 * truth["dismissals"][CONTROL]
    value = sum(w * truth[m] for m, w in WEIGHTS.items())
    row = {
        "scenario": scenario,
        "world": seed,
        "shipped": shipped,
        "clicks_best": star,
        "clicks_pick": clicks_pick,
        "shipped_is_clicks_best": shipped == star,
        "clicks_pick_is_clicks_best": clicks_pick == star,
        "shipped_respects_guardrail": bool(truth["dismissals"][shipped] <= limit),
        "clicks_pick_respects_guardrail": bool(truth["dismissals"][clicks_pick] <= limit),
        "clicks_best_dismissals_ratio": truth["dismissals"][star] / truth["dismissals"][CONTROL],
        "truly_admissible_layouts": int((truth["dismissals"] <= limit).sum()),
        "value_best": int(np.argmax(value)),
        "shipped_is_value_best": shipped == int(np.argmax(value)),
        "clicks_pick_is_value_best": clicks_pick == int(np.argmax(value)),
        "shipped_value_regret": float(value.max() - value[shipped]),
        "clicks_pick_value_regret": float(value.max() - value[clicks_pick]),
        "shipped_clicks_regret": float(truth["clicks"].max() - truth["clicks"][shipped]),
        # against the best layout that truly respects the guardrail (the control always does)
        "shipped_clicks_regret_admissible": float(
            truth["clicks"][truth["dismissals"] <= limit].max() - truth["clicks"][shipped]
        ),
        "shipped_is_control": shipped == CONTROL,
        "impressions": int(args.batch * (args.rounds - 1) + args.batch),
        "excluded": d.excluded,
    }
    return row


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    g, w = df[df.scenario == "guardrail"], df[df.scenario == "weighted"]

    def se(x):
        x = np.asarray(x, float)
        return float(x.std(ddof=1) / len(x) ** 0.5) if len(x) > 1 else float("nan")

    rows = [
        ("guardrail: worlds", len(g)),
        (
            "guardrail: clicks-best layout's dismissals / control's (mean)",
            float(g.clicks_best_dismissals_ratio.mean()),
        ),
        (
            "guardrail: share shipping the clicks-best layout (must be 0)",
            float(g.shipped_is_clicks_best.mean()),
        ),
        (
            "guardrail: share whose shipped layout truly respects the guardrail (stated: >= 0.9)",
            float(g.shipped_respects_guardrail.mean()),
        ),
        (
            "guardrail: clicks-only pick on the same data: share = the clicks-best layout",
            float(g.clicks_pick_is_clicks_best.mean()),
        ),
        (
            "guardrail: clicks-only pick on the same data: share respecting the guardrail",
            float(g.clicks_pick_respects_guardrail.mean()),
        ),
        (
            "guardrail: mean clicks regret of the shipped layout (CTR)",
            float(g.shipped_clicks_regret.mean()),
        ),
        (
            "guardrail: mean clicks regret against the best truly admissible layout (CTR)",
            float(g.shipped_clicks_regret_admissible.mean()),
        ),
        ("guardrail: share shipping the control", float(g.shipped_is_control.mean())),
        ("weighted: worlds", len(w)),
        (
            "weighted: share shipping the true value-best layout",
            float(w.shipped_is_value_best.mean()),
        ),
        (
            "weighted: clicks-only pick: share = the true value-best layout",
            float(w.clicks_pick_is_value_best.mean()),
        ),
        ("weighted: mean value regret of the shipped layout", float(w.shipped_value_regret.mean())),
        ("weighted: se of that mean", se(w.shipped_value_regret)),
        (
            "weighted: mean value regret of the clicks-only pick",
            float(w.clicks_pick_value_regret.mean()),
        ),
        ("weighted: se of that mean", se(w.clicks_pick_value_regret)),
    ]
    return pd.DataFrame(rows, columns=["figure", "value"]).set_index("figure")


def plot(df: pd.DataFrame, path: Path) -> None:
    """Left: guardrail shares, shipped vs clicks-only pick. Right: value regret per world."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g, w = df[df.scenario == "guardrail"], df[df.scenario == "weighted"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    labels = ["is the clicks-best", "respects the guardrail"]
    x = np.arange(2)
    a.bar(
        x - 0.2,
        [g.shipped_is_clicks_best.mean(), g.shipped_respects_guardrail.mean()],
        0.4,
        label="shipped (guardrail)",
    )
    a.bar(
        x + 0.2,
        [g.clicks_pick_is_clicks_best.mean(), g.clicks_pick_respects_guardrail.mean()],
        0.4,
        label="clicks-only pick",
    )
    a.axhline(0.9, color="k", ls="--", lw=1)
    a.set_xticks(x, labels)
    a.set_ylabel("share of worlds")
    a.set_ylim(0, 1.05)
    a.set_title("guardrail: dismissals <= 1.1 x control, p >= 0.9")
    a.legend(loc="center right")
    b.scatter(w.clicks_pick_value_regret, w.shipped_value_regret, s=16)
    top = float(max(w.clicks_pick_value_regret.max(), w.shipped_value_regret.max(), 1e-4)) * 1.1
    b.plot([0, top], [0, top], "k--", lw=1)
    b.set_xlabel("value regret of the clicks-only pick")
    b.set_ylabel("value regret of the shipped layout")
    b.set_title("weighted: value = clicks + 30 signups")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worlds", type=int, default=12)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--batch", type=int, default=6000)
    p.add_argument("--samples", type=int, default=400)
    p.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = p.parse_args(argv)
    rows = [one(s, sc, args) for sc in ("guardrail", "weighted") for s in range(args.worlds)]
    df = pd.DataFrame(rows)
    df.to_csv(args.out / "metrics.csv", index=False, float_format="%.6g")
    table = summarise(df)
    plot(df, args.out / "metrics.png")
    md = [
        "# Several metrics: guardrails and a weighted objective",
        "",
        f"Command: `python experiments/metrics.py --worlds {args.worlds} --rounds {args.rounds} "
        f"--batch {args.batch} --samples {args.samples}`",
        "",
        f"Guardrail: `{GUARD}` relative to layout {CONTROL}; weighted objective `{WEIGHTS}`.",
        "",
        to_markdown(table, ".4g"),
        "",
    ]
    (args.out / "metrics.md").write_text("\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
