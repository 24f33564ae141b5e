"""Cold start: new variants mid-campaign, variant attributes, and meta-priors at thin traffic.

A population of synthetic campaigns on a callout space (headline 6 x image 3 x body 3 = 54
layouts). Each headline has attributes ``free`` (bool), ``theme`` (speed / price / trust)
and ``chars`` (number), drawn per campaign; its true main effect is
``a(v) . beta + e_v`` with ``beta`` drawn around a population mean (free +0.4, theme=price
-0.2, theme=trust +0.1, -0.15 per sd of chars; campaign-to-campaign sd 0.1) and a residual
``e_v ~ N(0, 0.15^2)``. Images and bodies have main effects ``N(0, 0.25^2)``, every pair
table ``N(0, 0.08^2)``, the intercept ``N(logit(0.03), 0.2^2)``.

For every world a meta-prior is learned from 5 past campaigns of the same population
(pairwise design, 2,000 impressions per layout, Laplace fits with attributes).

Study 1 (new variants). The campaign starts with headlines h1-h4; after a pairwise design
with ``--impressions`` per layout, h5 and h6 are added (``with_variants`` with their
attributes). Before their first impression, the model is refitted on the new space with the
old data and the layouts holding a new headline are scored: predicted/true CTR, absolute
error, 90% interval coverage, for (a) no attributes, (b) attributes, (c) attributes +
meta-prior. Then ``--rounds`` rounds of Thompson sampling (``--k`` layouts x ``--batch``
impressions per round, Laplace refit each round) run with (b) and with (c); local regret of
those rounds is reported.

Study 2 (thin traffic). A fresh campaign on the full space tests its pairwise design with
``--thin`` impressions per layout (a few hundred); the fit with the default prior and with
the meta-prior (both with attributes) each pick ``best_layout``. Reported: true CTR of the
pick / true best CTR, and the 90% interval coverage of the true CTR of every allowed layout.

Writes ``cold_start.md``, ``cold_start.csv`` (one row per world, study and method) and
``cold_start.png`` into ``--out-dir``.

Usage::

    python experiments/cold_start.py --worlds 20
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

HEADLINES = [f"h{i}" for i in range(1, 7)]
NEW = HEADLINES[4:]
THEMES = ("speed", "price", "trust")
BETA_POP = {"free": 0.4, "price": -0.2, "trust": 0.1, "chars": -0.15}


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worlds", type=int, default=20, help="number of simulated worlds")
    p.add_argument("--past", type=int, default=5, help="past campaigns per meta-prior")
    p.add_argument("--impressions", type=int, default=1000, help="per layout before the change")
    p.add_argument("--rounds", type=int, default=4, help="Thompson rounds after the change")
    p.add_argument("--k", type=int, default=6, help="layouts per round")
    p.add_argument("--batch", type=int, default=300, help="impressions per layout per round")
    p.add_argument("--thin", type=int, default=200, help="impressions per layout, study 2")
    p.add_argument("--num-samples", type=int, default=500, help="posterior draws per fit")
    p.add_argument("--seed", type=int, default=0, help="first world seed")
    p.add_argument("--out-dir", default=str(Path(__file__).parent), help="output directory")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG")
    p.add_argument(
        "--merge",
        default="",
        help="comma-separated cold_start.csv files of runs over other worlds (e.g. run in "
        "parallel with other --seed values) to merge instead of running",
    )
    return p.parse_args(argv)


class Campaign:
    """One synthetic campaign: attributes, true effects, and the layout spaces."""

    def __init__(self, rng: np.random.Generator, pop_beta: dict[str, float]):
        from layoutopt import LayoutSpace

        self.attrs = {
            h: {
                "free": bool(rng.random() < 0.5),
                "theme": str(rng.choice(THEMES)),
                "chars": int(rng.integers(20, 81)),
            }
            for h in HEADLINES
        }
        beta = {k: v + rng.normal(0, 0.1) for k, v in pop_beta.items()}
        a = self.attrs
        self.main_h = np.array(
            [
                beta["free"] * a[h]["free"]
                + beta.get(a[h]["theme"], 0.0)
                + beta["chars"] * (a[h]["chars"] - 50) / 17.0
                + rng.normal(0, 0.15)
                for h in HEADLINES
            ]
        )
        self.main_o = [rng.normal(0, 0.25, 3), rng.normal(0, 0.25, 3)]
        self.pairs = {(0, 1): rng.normal(0, 0.08, (6, 3)), (0, 2): rng.normal(0, 0.08, (6, 3))}
        self.pairs[(1, 2)] = rng.normal(0, 0.08, (3, 3))
        self.b0 = np.log(0.03 / 0.97) + rng.normal(0, 0.2)
        comps = {"headline": HEADLINES, "image": ["i1", "i2", "i3"], "body": ["b1", "b2", "b3"]}
        self.full = LayoutSpace(comps, attributes={"headline": a})
        self.plain = LayoutSpace(comps)

    def space(self, headlines, attributes=True):
        from layoutopt import LayoutSpace

        comps = {
            "headline": list(headlines),
            "image": ["i1", "i2", "i3"],
            "body": ["b1", "b2", "b3"],
        }
        attrs = {"headline": {h: self.attrs[h] for h in headlines}} if attributes else None
        return LayoutSpace(comps, attributes=attrs)

    def ctr(self, space, codes) -> np.ndarray:
        """True CTR of layouts given as codes of ``space`` (matched by label)."""
        c = self.full.codes_from(space, codes)
        eta = self.b0 + self.main_h[c[:, 0]] + self.main_o[0][c[:, 1]] + self.main_o[1][c[:, 2]]
        for (k, j), t in self.pairs.items():
            eta = eta + t[c[:, k], c[:, j]]
        return 1.0 / (1.0 + np.exp(-eta))

    def serve(self, space, codes, n, rng):
        from layoutopt import Observations

        codes = np.asarray(codes)
        clicks = rng.binomial(n, self.ctr(space, codes))
        return Observations.from_codes(space, codes, np.full(len(codes), n), clicks)


def _design_codes(space, seed):
    from layoutopt import initial_design

    d = initial_design(space, seed=seed)
    return space.codes(d["index"].to_numpy())


def _merge(space, *parts):
    from layoutopt import Observations

    parts = [p.to_space(space) for p in parts if p is not None]
    return Observations.from_codes(
        space,
        np.concatenate([p.codes for p in parts]),
        np.concatenate([p.impressions for p in parts]),
        np.concatenate([p.clicks for p in parts]),
    )


def _grid(post, space, camp):
    from layoutopt import score_grid

    g = score_grid(post, space).to_pandas()
    codes = space.codes(g["index"].to_numpy())
    g["true"] = camp.ctr(space, codes)
    return g, codes


def learn_meta(world_rng, args):
    """A meta-prior from ``args.past`` past campaigns of the population."""
    from layoutopt import MetaPrior, fit

    posts = []
    for i in range(args.past):
        camp = Campaign(world_rng, BETA_POP)
        codes = _design_codes(camp.full, seed=i)
        obs = camp.serve(camp.full, codes, 2000, world_rng)
        posts.append(fit(camp.full, obs, seed=i, num_samples=args.num_samples))
    return MetaPrior.learn(posts, sources=[f"past campaign {i}" for i in range(args.past)])


def study_new_variants(camp, meta, rng, args, seed) -> list[dict]:
    from layoutopt import fit
    from layoutopt.decide import propose

    rows = []
    old = camp.space(HEADLINES[:4])
    old_obs = camp.serve(old, _design_codes(old, seed), args.impressions, rng)
    arms = {
        "no attributes": (camp.plain, None),
        "attributes": (camp.full, None),
        "attributes + meta-prior": (camp.full, meta),
    }
    for name, (space, prior) in arms.items():
        post = fit(space, old_obs.to_space(space), seed=seed, prior=prior, num_samples=400)
        g, codes = _grid(post, space, camp)
        new = g["headline"].isin(NEW).to_numpy()
        true, mean = g["true"].to_numpy()[new], g["mean"].to_numpy()[new]
        inside = (g["lower"].to_numpy()[new] <= true) & (true <= g["upper"].to_numpy()[new])
        rows.append(
            {
                "study": "new variants, before data",
                "method": name,
                "pred_over_true": float(np.mean(mean / true)),
                "abs_rel_error": float(np.mean(np.abs(mean - true) / true)),
                "coverage90": float(np.mean(inside)),
            }
        )
    best = float(camp.ctr(camp.full, camp.full.codes(np.arange(camp.full.size))).max())
    for name in ("attributes", "attributes + meta-prior"):
        space, prior = arms[name]
        round_rng = np.random.default_rng(seed + 10_000)
        obs = old_obs.to_space(space)
        regrets, served_new = [], 0
        for r in range(args.rounds):
            post = fit(space, obs, seed=seed + r, prior=prior, num_samples=args.num_samples)
            batch = propose(post, space, k=args.k, strategy="thompson", seed=seed + 100 + r)
            codes = space.codes(batch["index"].to_numpy())
            regrets.append(best - float(np.mean(camp.ctr(space, codes))))
            served_new += int(batch["headline"].isin(NEW).sum())
            obs = _merge(space, obs, camp.serve(space, codes, args.batch, round_rng))
        rows.append(
            {
                "study": "new variants, rounds after",
                "method": name,
                "local_regret": float(np.mean(regrets)),
                "share_new": served_new / (args.rounds * args.k),
            }
        )
    return rows


def study_thin(camp, meta, rng, args, seed) -> list[dict]:
    from layoutopt import best_layout, fit

    space = camp.full
    obs = camp.serve(space, _design_codes(space, seed), args.thin, rng)
    everything = space.codes(np.arange(space.size))
    best = float(camp.ctr(space, everything).max())
    rows = []
    for name, prior in (("default prior", None), ("meta-prior", meta)):
        post = fit(space, obs, seed=seed, prior=prior, num_samples=args.num_samples)
        pick = best_layout(post, space)
        g, _ = _grid(post, space, camp)
        true = g["true"].to_numpy()
        inside = (g["lower"].to_numpy() <= true) & (true <= g["upper"].to_numpy())
        rows.append(
            {
                "study": f"thin traffic ({args.thin}/layout)",
                "method": name,
                "pick_over_best": float(camp.ctr(space, [space.encode(pick.layout)])[0] / best),
                "coverage90": float(np.mean(inside)),
            }
        )
    return rows


def run_world(seed: int, args) -> list[dict]:
    from layoutopt import FitWarning

    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        # A non-converged Laplace fit is counted in the table, not fatal to the study.
        warnings.simplefilter("ignore", FitWarning)
        meta = learn_meta(rng, args)
        rows = study_new_variants(Campaign(rng, BETA_POP), meta, rng, args, seed)
        rows += study_thin(Campaign(rng, BETA_POP), meta, rng, args, seed)
    return [{"world": seed, **r} for r in rows]


def summarise(worlds: pd.DataFrame) -> pd.DataFrame:
    metrics = ["pred_over_true", "abs_rel_error", "coverage90", "local_regret", "share_new"]
    metrics += ["pick_over_best"]
    out = []
    for (study, method), g in worlds.groupby(["study", "method"], sort=False):
        row = {"study": study, "method": method, "worlds": len(g)}
        for m in metrics:
            if m in g and g[m].notna().any():
                v = g[m].dropna()
                row[m] = f"{v.mean():.3f} ± {v.std(ddof=1) / np.sqrt(len(v)):.3f}"
        out.append(row)
    return pd.DataFrame(out).fillna("")


PAIRED = [
    ("new variants, before data", "abs_rel_error", "attributes", "no attributes"),
    ("new variants, before data", "abs_rel_error", "attributes + meta-prior", "attributes"),
    ("new variants, rounds after", "local_regret", "attributes + meta-prior", "attributes"),
]


def paired(worlds: pd.DataFrame) -> pd.DataFrame:
    """Per-world differences ``a - b`` of a metric (same worlds), mean ± se."""
    thin = [s for s in worlds.study.unique() if s.startswith("thin")]
    checks = PAIRED + [
        (t, m, "meta-prior", "default prior")
        for t in thin
        for m in ("pick_over_best", "coverage90")
    ]
    out = []
    for study, metric, a, b in checks:
        g = worlds[worlds.study == study].pivot(index="world", columns="method", values=metric)
        if a not in g or b not in g:
            continue
        d = (g[a] - g[b]).dropna()
        se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
        lower_is_better = metric in ("abs_rel_error", "local_regret")
        better = int((d < 0).sum() if lower_is_better else (d > 0).sum())
        worse = int((d > 0).sum() if lower_is_better else (d < 0).sum())
        out.append(
            {
                "study": study,
                "metric": metric,
                "difference": f"{a} - {b}",
                "mean ± se": f"{d.mean():+.3f} ± {se:.3f}",
                "worlds better / worse / of": f"{better} / {worse} / {len(d)}",
            }
        )
    return pd.DataFrame(out)


def _markdown(table: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(False)]
    return "\n".join(lines)


def plot(worlds: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    panels = [
        ("new variants, before data", "abs_rel_error", "|pred - true| / true, new headlines"),
        ("new variants, rounds after", "local_regret", "local regret after the change"),
        (None, "pick_over_best", "thin traffic: true CTR of pick / best"),
    ]
    for ax, (study, metric, title) in zip(axes, panels, strict=True):
        g = worlds[worlds.study.str.startswith("thin")] if study is None else worlds
        g = g if study is None else g[g.study == study]
        methods = list(dict.fromkeys(g.method))
        ax.boxplot([g[g.method == m][metric].dropna() for m in methods], tick_labels=methods)
        ax.set_title(title)
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(f"Cold start, {worlds.world.nunique()} worlds")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    """Run both studies; returns an exit code."""
    args = _parse(argv)
    if args.worlds < 1 or args.past < 2 or args.rounds < 1:
        print("--worlds >= 1, --past >= 2 and --rounds >= 1 are needed", file=sys.stderr)
        return 2
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if args.merge:
        worlds = pd.concat([pd.read_csv(f) for f in args.merge.split(",")], ignore_index=True)
        worlds = worlds.sort_values("world", kind="stable")
        args.worlds = worlds.world.nunique()
    else:
        rows = []
        for w in range(args.worlds):
            rows += run_world(args.seed + w, args)
            print(f"world {args.seed + w} done ({time.perf_counter() - t0:.0f}s)", flush=True)
        worlds = pd.DataFrame(rows)
    elapsed = time.perf_counter() - t0
    worlds.to_csv(out / "cold_start.csv", index=False, float_format="%.6g")
    table = summarise(worlds)
    cmd = " ".join(argv if argv is not None else sys.argv[1:])
    timing = f"wall time {elapsed / 60:.1f} min, {os.cpu_count()} CPUs"
    if args.merge:
        timing = "merging the per-world rows of runs made with the same settings"
    md = [
        f"# Cold start: {args.worlds} worlds",
        "",
        f"Command: `python experiments/cold_start.py {cmd}` ({timing}). "
        f"Meta-prior from {args.past} past "
        f"campaigns per world; {args.impressions} impressions per design layout before the "
        f"change, then {args.rounds} Thompson rounds of {args.k} x {args.batch}; thin "
        f"traffic {args.thin} per design layout. Laplace fits. Mean ± se over worlds.",
        "",
        _markdown(table),
        "",
        "Paired differences over the same worlds (better: lower error/regret, higher "
        "pick/coverage):",
        "",
        _markdown(paired(worlds)),
        "",
    ]
    (out / "cold_start.md").write_text("\n".join(md))
    if not args.no_plot:
        plot(worlds, out / "cold_start.png")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
