"""Laplace fit time by model size, against NumPyro's own AutoLaplaceApproximation.

For each space, data come from a seeded random world on a pairwise design topped up with
random layouts. ``layoutopt.fit(method="laplace")`` (Newton + empirical-Bayes scales in one
compiled kernel) is timed warm (median of the repeats after a first, compiling call) and so
is the generic alternative a NumPyro user would write: ``AutoLaplaceApproximation`` on the
same ``numpyro_model`` (MAP of every latent by Adam, then a Gaussian at the mode), with its
SVI loop compiled once and re-run. Agreement: max over all layouts of
``|posterior mean eta - baseline's| / layoutopt posterior sd``.

Run: ``python benchmarks/bench_laplace.py [--repeats 5] [--no-record]``

``--large`` instead times ``solver="lowrank"`` (Woodbury over the observed layouts, no
P x P Hessian) against ``solver="dense"`` in the same run where the dense one is allowed
(P <= ``limits.LAPLACE_MAX_PARAMS``: the 7 x 7, 8 x 8 and 9 x 9 models; exact agreement of
scales and evidence expected), and the 12 x 12 (P = 9,649) and 14 x 15 (P = 20,686) models
with the low-rank solver alone, reporting iterations and convergence of each
(``--sizes 7,8,9,12,14x15``: ``n`` is n components of n variants, ``KxN`` K of N).

``--slots`` times ``solver="cg"`` (conjugate gradients, no matrix of either size) on three
product slots of 80 items without repeats (19,441 parameters): on 300 random layouts
against the low-rank solver in the same run (the baseline: both can), and on the full
6,580-layout pairwise design, where the low-rank solver is refused (beyond 4,096 rows).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings

import jax
import numpy as np

from layoutopt.data.observations import Observations
from layoutopt.decide.design import initial_design
from layoutopt.infer.fitting import LaplaceOptions, default_prior, fit
from layoutopt.model.core import effect_sizes, logits, unflatten_effects
from layoutopt.model.numpyro_model import numpyro_model
from layoutopt.sim.simulate import SyntheticWorld
from layoutopt.util.limits import LAPLACE_MAX_PARAMS

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from _common import make_space, publish  # noqa: E402

SPACES = {
    "demo-sized 6x5x6x2x3": ((6, 5, 6, 2, 3), 48),
    "Hill 8x8x8": ((8, 8, 8), 96),
    "6x6x6x6x6x3": ((6, 6, 6, 6, 6, 3), 300),
}


def _data(card, num_layouts, seed=0):
    space = make_space(card)
    world = SyntheticWorld.random(space, seed, base_rate=0.04, main_scale=0.2, pair_scale=0.1)
    covering = len(initial_design(space, seed=seed))
    design = initial_design(space, seed=seed, size=max(num_layouts, covering))
    codes = space.codes(design["index"].to_numpy())
    n = np.full(len(codes), 3000)
    clicks = world.serve(codes, n, seed=seed)
    return space, Observations.from_codes(space, codes, n, clicks)


def _baseline(space, obs, prior, steps):
    """NumPyro AutoLaplaceApproximation: returns a function (seed) -> eta draws at all obs."""
    import optax
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.infer.autoguide import AutoLaplaceApproximation
    from numpyro.optim import optax_to_numpyro

    args = dict(
        layouts=np.asarray(obs.codes),
        impressions=np.asarray(obs.impressions, np.float32),
        clicks=np.asarray(obs.clicks, np.float32),
        cardinalities=space.cardinalities,
        prior=prior,
    )
    guide = AutoLaplaceApproximation(numpyro_model)
    svi = SVI(numpyro_model, guide, optax_to_numpyro(optax.adam(0.02)), Trace_ELBO())

    @jax.jit
    def run_key(key):
        init_key, draw_key = jax.random.split(key)
        state = svi.init(init_key, **args)
        state, _ = jax.lax.scan(lambda s, _: svi.stable_update(s, **args), state, None, steps)
        params = svi.get_params(state)
        draws = guide.sample_posterior(draw_key, params, sample_shape=(1000,))
        # Deterministic sites are not in the guide's draws: rebuild main / pair from z.
        sizes_m, sizes_p = effect_sizes(space.cardinalities, prior.pairwise)
        seg_m = np.repeat(np.arange(len(sizes_m)), sizes_m)
        seg_p = np.repeat(np.arange(len(sizes_p)), sizes_p)
        main = draws["sigma_main"][:, seg_m] * draws["z_main"]
        pair = draws["tau_pair"][:, seg_p] * draws["z_pair"]
        return unflatten_effects(draws["intercept"], main, pair, space.cardinalities)

    return lambda seed: run_key(jax.random.PRNGKey(seed))


def _eta_stats(params, codes):
    eta = jax.vmap(lambda p: logits(p, codes))(params)
    return np.asarray(eta.mean(0)), np.asarray(eta.std(0))


def _time(fn, repeats):
    times = []
    out = None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        jax.block_until_ready(jax.tree.leaves(out))
        times.append(time.perf_counter() - t)
    return times, out


#: n components x n variants -> tested layouts (topped-up pairwise design; the covering
#: array alone is larger for 12 x 12: 241 layouts)
LARGE = {7: 64, 8: 80, 9: 100, 12: 160}
#: the dense solver runs where fit allows it (P^3 per iteration)
DENSE_MAX = LAPLACE_MAX_PARAMS


def _shape(spec: str) -> tuple[int, ...]:
    """``"12"``: 12 components of 12 variants; ``"14x15"``: 14 components of 15 variants."""
    k, _, n = spec.partition("x")
    return (int(n or k),) * int(k)


def _solver_runs(space, obs, prior, solvers, repeats, num_samples) -> dict:
    """``{solver: (first call s, warm median s, posterior)}``."""
    res = {}
    for solver in solvers:

        def run(solver=solver):
            opts = LaplaceOptions(solver=solver)
            return fit(space, obs, seed=0, prior=prior, num_samples=num_samples, options=opts)

        first, _ = _time(lambda run=run: run().params, 1)
        warm, post = _time(run, repeats)
        res[solver] = (first[0], statistics.median(warm), post)
    return res


def _agreement(lo, de, codes) -> str:
    d_ev = abs(lo.diagnostics["log_evidence"] - de.diagnostics["log_evidence"])
    d_sc = max(np.max(np.abs(lo.hyper[k] / de.hyper[k] - 1)) for k in ("sigma_main", "tau_pair"))
    m, sd = _eta_stats(de.params, codes)
    ml, sdl = _eta_stats(lo.params, codes)
    ratio = sdl / sd
    return (
        f"evidence {d_ev:.1e}, scales {d_sc:.1e} rel, eta mean "
        f"{np.max(np.abs(ml - m) / sd):.2f} sd, sd ratio {np.min(ratio):.2f}-{np.max(ratio):.2f}"
    )


def _fit_summary(first, warm, post) -> str:
    d = post.diagnostics
    return f"{first:.1f} / {warm:.2f} | {d['iterations']}, {'yes' if d['converged'] else 'NO'}"


def large(sizes, repeats: int, num_samples: int) -> str:
    """Table: low-rank vs dense Laplace, time, iterations, convergence and agreement."""
    rows = []
    # One untimed pass over the first model: the first fits of a process pay one-off costs
    # beyond compilation (its warm calls were 5-20x slower than the same model's later on).
    card = _shape(sizes[0])
    space, obs = _data(card, LARGE.get(len(card), 160))
    _solver_runs(space, obs, default_prior(obs), ("lowrank",), 1, num_samples)
    for spec in sizes:
        card = _shape(spec)
        name = f"{len(card)} x {card[0]}"
        space, obs = _data(card, LARGE.get(len(card), 160))
        prior = default_prior(obs)
        P = 1 + sum(effect_sizes(card)[0]) + sum(effect_sizes(card)[1])
        solvers = ("lowrank", "dense") if P <= DENSE_MAX else ("lowrank",)
        res = _solver_runs(space, obs, prior, solvers, repeats, num_samples)
        lo = res["lowrank"]
        dense = "- | -"
        speedup = agree = "-"
        if "dense" in res:
            dense = _fit_summary(*res["dense"])
            speedup = f"{res['dense'][1] / lo[1]:.1f}x"
            agree = _agreement(lo[2], res["dense"][2], np.asarray(obs.codes))
        rows.append(
            f"| {name} | {P:,} | {obs.num_layouts} | {_fit_summary(*lo)} | {dense} | {speedup}"
            f" | {agree} |"
        )
        print(rows[-1], flush=True)
    header = (
        "| model | parameters | tested layouts | lowrank first / warm median (s) | lowrank "
        "iterations, converged | dense first / warm median (s) | dense iterations, converged "
        "| speed-up (warm) | agreement with dense |\n|---|---|---|---|---|---|---|---|---|"
    )
    return (
        f"{header}\n" + "\n".join(rows) + "\n\n"
        f"{num_samples} draws per fit; warm = median of {repeats} calls after the first; dense "
        f"run where fit allows it (P <= {DENSE_MAX:,}). Agreement: |difference| of the log "
        "evidence and relative difference of the empirical-Bayes scales (both deterministic "
        "functions of the mode), and of the posterior mean eta of the tested layouts in units "
        "of the dense posterior sd (Monte Carlo: different random draws), and the range of the "
        "ratio of posterior sds."
    )


def slots(repeats: int, num_samples: int) -> str:
    """Table: the CG solver on the 3 x 80 slot model, against the low-rank one where both run."""
    import resource

    from layoutopt.model.space import LayoutSpace

    items = [f"item{i}" for i in range(80)]
    space = LayoutSpace(
        {f"slot{k}": items for k in (1, 2, 3)}, distinct=[("slot1", "slot2", "slot3")]
    )
    world = SyntheticWorld.random(space, seed=0, main_scale=0.3, pair_scale=0.1)
    rows = []
    for label, design in (
        ("300 random layouts", initial_design(space, seed=0, kind="random", size=300)),
        ("full pairwise design", initial_design(space, seed=0)),
    ):
        codes = np.stack([design[c].cat.codes.to_numpy() for c in space.components], axis=1)
        obs = Observations.from_codes(
            space,
            codes,
            np.full(len(codes), 400),
            world.serve(codes, np.full(len(codes), 400), seed=1),
        )
        prior = default_prior(obs)
        solvers = ("cg", "lowrank") if obs.num_layouts <= 4096 else ("cg",)
        res = _solver_runs(space, obs, prior, solvers, repeats, num_samples)
        cg = res["cg"]
        d = cg[2].diagnostics
        versus = agree = "- (refused: beyond 4,096 rows)"
        if "lowrank" in res:
            versus = f"{res['lowrank'][1]:.2f} s ({cg[1] / res['lowrank'][1]:.2f}x)"
            scales = [
                float(np.ravel(cg[2].hyper[k])[0]) / float(np.ravel(res["lowrank"][2].hyper[k])[0])
                for k in ("sigma_main", "tau_pair")
            ]
            agree = f"scales x{scales[0]:.3f}, x{scales[1]:.3f}"
        rows.append(
            f"| {label} | {obs.num_layouts:,} | {cg[0]:.1f} / {cg[1]:.2f} | {d['iterations']}, "
            f"{'yes' if d['converged'] else 'NO'} | {d['cg_iterations']} | "
            f"{d['gamma_rel_se']:.4f} | {versus} | {agree} |"
        )
        print(rows[-1], flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    header = (
        "| data | layouts | cg first / warm median (s) | iterations, converged | most CG "
        "iterations of a solve | gamma_rel_se | lowrank warm median (cg / lowrank) | cg scales "
        "/ lowrank |\n|---|---|---|---|---|---|---|---|"
    )
    return (
        f"{header}\n" + "\n".join(rows) + "\n\n"
        f"3 slots x 80 items without repeats, 19,441 parameters, 400 impressions per layout "
        f"from a seeded random world; {num_samples} draws per fit; warm = median of {repeats} "
        f"calls after the first; peak resident memory of the whole run {peak:.2f} GiB."
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5, help="warm calls after the first")
    ap.add_argument("--steps", type=int, default=3000, help="Adam steps of the baseline")
    ap.add_argument("--no-record", action="store_true", help="print only; README untouched")
    ap.add_argument("--large", action="store_true", help="low-rank vs dense solver")
    ap.add_argument("--slots", action="store_true", help="cg solver on 3 slots x 80 items")
    ap.add_argument("--draws", type=int, default=1000, help="draws per fit (--large)")
    ap.add_argument("--sizes", default="7,8,9,12,14x15", help="n (n x n) or KxN models (--large)")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    if args.slots:
        publish("bench_laplace", slots(args.repeats, args.draws), record_it=not args.no_record)
        return 0
    if args.large:
        table = large(args.sizes.split(","), args.repeats, args.draws)
        publish("bench_laplace", table, record_it=not args.no_record)
        return 0
    rows = []
    for name, (card, num_layouts) in SPACES.items():
        space, obs = _data(card, num_layouts)
        prior = default_prior(obs)
        num_params = 1 + sum(effect_sizes(card)[0]) + sum(effect_sizes(card)[1])
        lap_first, _ = _time(lambda: fit(space, obs, seed=0, prior=prior).params, 1)  # noqa: B023
        lap, post = _time(lambda: fit(space, obs, seed=0, prior=prior).params, args.repeats)  # noqa: B023
        run = _baseline(space, obs, prior, args.steps)
        base_first, _ = _time(lambda: run(0), 1)  # noqa: B023
        base, base_params = _time(lambda: run(0), args.repeats)  # noqa: B023
        grid = np.concatenate([c for _, c in space.iter_chunks(1 << 16)])[:200_000]
        m, sd = _eta_stats(post, grid)
        mb, _ = _eta_stats(base_params, grid)
        lap_med, base_med = statistics.median(lap), statistics.median(base)
        rows.append(
            f"| {name} | {num_params} | {obs.num_layouts} | {lap_first[0]:.2f} | "
            f"{lap_med:.3f} | {base_first[0]:.2f} | {base_med:.3f} | "
            f"{base_med / lap_med:.1f}x | {np.max(np.abs(m - mb) / sd):.2f} |"
        )
        print(rows[-1], flush=True)
    header = (
        "| model | parameters | tested layouts | laplace first call (s) | laplace warm median (s)"
        " | AutoLaplace first (s) | AutoLaplace warm median (s) | speed-up (warm) | "
        "max \\|d eta\\|/sd |\n|---|---|---|---|---|---|---|---|---|"
    )
    table = (
        f"{header}\n" + "\n".join(rows) + "\n\n"
        f"Warm = median of {args.repeats} calls after the first; baseline: NumPyro "
        f"AutoLaplaceApproximation, {args.steps} Adam steps (lr 0.02) in one compiled scan."
    )
    publish("bench_laplace", table, record_it=not args.no_record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
