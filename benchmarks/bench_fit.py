"""Fit time: layoutopt's Laplace, SVI and NUTS against the same model fitted with PyMC.

The data: the demo space (1,080 layouts), a pairwise initial design topped up with random
layouts, a fixed number of impressions per layout and binomial clicks from a seeded
:class:`~layoutopt.sim.SyntheticWorld`. Every method gets the same data and the same
explicit :class:`~layoutopt.model.PriorConfig` (``default_prior`` of the data: the pooled CTR as
``base_rate``), so all fit exactly the same model.

The PyMC side runs in another interpreter (PyMC is a benchmark-only tool, never a dependency of
layoutopt): ``--pymc-python PATH`` names it; by default the first of this interpreter,
``python`` and ``python3`` on ``PATH`` that can import pymc is used, and without one the PyMC
column is skipped with a message. The worker is this same file run with ``--pymc-worker``; it
reads the data from a temporary ``.npz`` and, on each request from stdin, builds the model,
runs ``pm.sample`` and writes the draws back. Rounds are interleaved (PyMC, then the
layoutopt methods, in reverse order every other round), so load drift on a shared machine
hits every method alike.

Reported per method (median over ``--repeats`` rounds; round 1 is the first call and
includes compilation, reported separately):

- NUTS twice: ``chain_method="sequential"`` and ``"vectorized"`` (same seed, data and
  options; ``--methods`` picks a subset, e.g. ``--methods nuts,nuts_vectorized --no-pymc``),
- wall time of the whole fit call (first, warm median) and its CPU time,
- samplers: min bulk ESS over the effect parameters (b0, main and pair effects) and over eta
  of every layout, and ESS per second of warm wall time,
- agreement with PyMC NUTS (the reference) on eta of all 1,080 layouts (main effects and b0
  are only jointly identified, eta is): ``max |mean - mean_ref| / sd_ref``, the mean of that
  ratio, ``median sd / sd_ref`` and ``mean |E ctr - E ctr_ref|``. A second PyMC run (another
  seed) against the first gives the Monte Carlo noise floor of these numbers.

Run (about 5-10 minutes on 2 busy cores)::

    python benchmarks/bench_fit.py --pymc-python /tmp/venv/pymc/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEMO_SPACE = HERE.parent / "layoutopt" / "examples" / "demo_space.toml"


# ------------------------------------------------------------------------ shared helpers
def _segments(sizes) -> np.ndarray:
    return np.repeat(np.arange(len(sizes)), sizes).astype(np.int64)


def _pairs(K: int) -> list[tuple[int, int]]:
    return [(k, j) for k in range(K) for j in range(k + 1, K)]


def flat_indices(codes: np.ndarray, card) -> tuple[np.ndarray, np.ndarray]:
    """Indices into the flat main ``(N, K)`` and pair ``(N, K(K-1)/2)`` effect vectors.

    Same layout as ``layoutopt.model.flatten_effects``: main blocks in component order, pair
    blocks in ``pair_list`` order, each pair table ``(n_k, n_l)`` row-major.
    """
    codes = np.asarray(codes, np.int64)
    K = len(card)
    off_m = np.concatenate([[0], np.cumsum(card)[:-1]])
    idx_m = codes + off_m[None, :]
    idx_p, off = [], 0
    for k, j in _pairs(K):
        idx_p.append(off + codes[:, k] * card[j] + codes[:, j])
        off += card[k] * card[j]
    return idx_m, np.stack(idx_p, axis=1)


# ----------------------------------------------------------------------------- PyMC side
def pymc_worker(data_path: str) -> None:
    """Serve ``"<round> <seed> <out.npz>"`` requests from stdin: build, sample, save draws."""
    import logging

    logging.getLogger("pymc").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    import pymc as pm
    import pytensor

    d = np.load(data_path)
    card = [int(c) for c in d["cardinalities"]]
    K = len(card)
    sizes_m = card
    sizes_p = [card[k] * card[j] for k, j in _pairs(K)]
    idx_m, idx_p = flat_indices(d["codes"], card)
    seg_m, seg_p = _segments(sizes_m), _segments(sizes_p)
    imp = d["impressions"].astype(np.int64)
    clicks = d["clicks"].astype(np.int64)
    loc, iscale = float(d["intercept_loc"]), float(d["intercept_scale"])
    mscale, pscale = float(d["main_scale"]), float(d["pair_scale"])
    chains, warmup = int(d["num_chains"]), int(d["num_warmup"])
    draws, target = int(d["draws_per_chain"]), float(d["target_accept"])

    def build():
        # Mirrors layoutopt.model.numpyro_model site for site.
        with pm.Model() as model:
            b0 = pm.Normal("intercept", mu=loc, sigma=iscale)
            sigma = pm.HalfNormal("sigma_main", sigma=mscale, shape=K)
            z_m = pm.Normal("z_main", 0.0, 1.0, shape=sum(sizes_m))
            main = pm.Deterministic("main", sigma[seg_m] * z_m)
            tau = pm.HalfNormal("tau_pair", sigma=pscale, shape=len(sizes_p))
            z_p = pm.Normal("z_pair", 0.0, 1.0, shape=sum(sizes_p))
            pair = pm.Deterministic("pair", tau[seg_p] * z_p)
            eta = b0 + main[idx_m].sum(axis=1) + pair[idx_p].sum(axis=1)
            pm.Binomial("clicks", n=imp, logit_p=eta, observed=clicks)
        return model

    # Log density (no Jacobian: constrained-space density) at the check points, so the
    # parent can confirm this is the same model as layoutopt's.
    logp = build().compile_logp(jacobian=False)
    checks = [
        float(
            logp(
                {
                    "intercept": d["chk_intercept"][i],
                    "sigma_main_log__": np.log(d["chk_sigma_main"][i]),
                    "z_main": d["chk_z_main"][i],
                    "tau_pair_log__": np.log(d["chk_tau_pair"][i]),
                    "z_pair": d["chk_z_pair"][i],
                }
            )
        )
        for i in range(len(d["chk_intercept"]))
    ]
    print(
        json.dumps(
            {
                "ready": True,
                "pymc": pm.__version__,
                "pytensor": pytensor.__version__,
                "cxx": bool(pytensor.config.cxx),
                "logp": checks,
            }
        ),
        flush=True,
    )
    for line in sys.stdin:
        if not line.strip():
            continue
        _, seed, out = line.split()
        t0, c0 = time.perf_counter(), time.process_time()
        with build():
            idata = pm.sample(
                draws=draws,
                tune=warmup,
                chains=chains,
                cores=1,
                target_accept=target,
                random_seed=int(seed),
                progressbar=False,
            )
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        post = idata.posterior
        stats = idata.sample_stats
        np.savez(
            out,
            **{k: post[k].values for k in ("intercept", "main", "pair", "sigma_main", "tau_pair")},
            diverging=stats["diverging"].values,
            n_steps=stats["n_steps"].values,
            step_size=stats["step_size"].values,
        )
        print(json.dumps({"wall": wall, "cpu": cpu}), flush=True)


def find_pymc_python(explicit: str | None) -> str | None:
    """The interpreter for the PyMC side, or None (with a message) if there is none."""
    candidates = (
        [explicit]
        if explicit
        else [sys.executable, shutil.which("python"), shutil.which("python3")]
    )
    for py in candidates:
        if py and subprocess.run([py, "-c", "import pymc"], capture_output=True).returncode == 0:
            return py
    where = explicit or "this interpreter, python, python3"
    print(
        f"PyMC not importable from {where}: skipping the PyMC column "
        "(pass --pymc-python PATH to an interpreter with pymc installed)",
        file=sys.stderr,
    )
    return None


class PymcWorker:
    def __init__(self, python: str, data_path: str):
        self.proc = subprocess.Popen(
            [python, str(Path(__file__).resolve()), "--pymc-worker", data_path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.info = self._read()

    def _read(self) -> dict:
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("PyMC worker exited early (see its stderr above)")
            if line.startswith("{"):
                return json.loads(line)

    def sample(self, rnd: int, seed: int, out: str) -> dict:
        self.proc.stdin.write(f"{rnd} {seed} {out}\n")
        self.proc.stdin.flush()
        res = self._read()
        d = np.load(out)
        res["draws"] = {k: d[k] for k in d.files}
        return res

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


# ------------------------------------------------------------------------ layoutopt side
def make_data(num_layouts: int, impressions: int, seed: int):
    from layoutopt.data.observations import Observations
    from layoutopt.decide.design import initial_design
    from layoutopt.infer.fitting import default_prior
    from layoutopt.model.space import LayoutSpace
    from layoutopt.sim.simulate import SyntheticWorld

    space = LayoutSpace.from_toml(DEMO_SPACE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the uncoverable (logo_only, quote) pair
        design = initial_design(space, seed=seed, kind="pairwise", size=num_layouts)
    codes = space.codes(design["index"].to_numpy())
    imp = np.full(len(codes), impressions, np.int64)
    world = SyntheticWorld.random(space, seed=seed)
    clicks = world.serve(codes, imp, seed=seed + 1)
    obs = Observations.from_codes(space, codes, imp, clicks)
    return space, obs, default_prior(obs), design.attrs["covering_size"]


def check_points(card, loc: float, num: int = 3, seed: int = 0) -> dict:
    """Random parameter values (constrained space) at which both log densities are compared."""
    rng = np.random.default_rng(seed)
    K = len(card)
    P = K * (K - 1) // 2
    n_p = sum(card[k] * card[j] for k, j in _pairs(K))
    return {
        "chk_intercept": loc + 0.3 * rng.normal(size=num),
        "chk_sigma_main": 0.05 + np.abs(rng.normal(0, 0.5, (num, K))),
        "chk_z_main": rng.normal(size=(num, sum(card))),
        "chk_tau_pair": 0.02 + np.abs(rng.normal(0, 0.3, (num, P))),
        "chk_z_pair": rng.normal(size=(num, n_p)),
    }


def check_same_model(points: dict, pymc_logp, obs, prior, card) -> float:
    """Max |numpyro log density + log binomial coefficients - PyMC logp| over the points."""
    from numpyro.infer.util import log_density
    from scipy.special import gammaln

    from layoutopt.model.numpyro_model import numpyro_model

    n, k = obs.impressions.astype(np.float64), obs.clicks.astype(np.float64)
    const = float(np.sum(gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)))
    kwargs = dict(
        layouts=obs.codes, impressions=n, clicks=k, cardinalities=tuple(card), prior=prior
    )
    diffs = []
    for i, ref in enumerate(pymc_logp):
        values = {
            name: points["chk_" + name][i]
            for name in ("intercept", "sigma_main", "z_main", "tau_pair", "z_pair")
        }
        lp, _ = log_density(numpyro_model, (), kwargs, values)
        diffs.append(abs(float(lp) + const - ref) / max(1.0, abs(ref)))
    return max(diffs)


def eta_draws(params_flat: dict, card, all_codes: np.ndarray) -> np.ndarray:
    """``(S, L)`` eta of every layout from flat draws ``intercept (S,), main, pair``."""
    import jax

    from layoutopt.model.core import logits, unflatten_effects

    p = unflatten_effects(
        np.asarray(params_flat["intercept"], np.float64),
        np.asarray(params_flat["main"], np.float64),
        np.asarray(params_flat["pair"], np.float64),
        tuple(card),
    )
    return np.asarray(jax.jit(jax.vmap(lambda q: logits(q, all_codes)))(p), np.float64)


def flat_of_posterior(post) -> dict:
    from layoutopt.model.core import flatten_effects

    main, pair = flatten_effects(post.params)
    return {
        "intercept": np.asarray(post.params.intercept),
        "main": np.asarray(main),
        "pair": np.asarray(pair),
    }


def ess_summary(by_chain: dict, eta_chain: np.ndarray) -> tuple[float, float]:
    """Min bulk ESS over [b0, main, pair] and over eta of every layout; ``(C, D, ...)`` input."""
    from numpyro.diagnostics import effective_sample_size

    eff = np.concatenate(
        [by_chain["intercept"][..., None], by_chain["main"], by_chain["pair"]], axis=-1
    ).astype(np.float64)
    return (
        float(np.min(effective_sample_size(eff))),
        float(np.min(effective_sample_size(eta_chain))),
    )


def compare(eta: np.ndarray, ref: np.ndarray) -> dict:
    m, mr = eta.mean(0), ref.mean(0)
    sd, sdr = eta.std(0), ref.std(0)
    z = np.abs(m - mr) / sdr
    sig = 1.0 / (1.0 + np.exp(-eta))
    sigr = 1.0 / (1.0 + np.exp(-ref))
    return {
        "max_z": float(z.max()),
        "mean_z": float(z.mean()),
        "sd_ratio": float(np.median(sd / sdr)),
        "mean_abs_dctr": float(np.mean(np.abs(sig.mean(0) - sigr.mean(0)))),
    }


def machine_info(pymc_info: dict | None) -> dict:
    import jax
    import numpyro

    model = "unknown"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next(
            ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")
        )
    except (OSError, StopIteration):
        pass
    info = {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "numpyro": numpyro.__version__,
        "numpy": np.__version__,
        "backend": jax.default_backend(),
    }
    if pymc_info:
        info.update(
            pymc=pymc_info["pymc"],
            pytensor=pymc_info["pytensor"],
            pytensor_c_backend=pymc_info["cxx"],
        )
    return info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pymc-python", help="interpreter with pymc installed (default: search)")
    ap.add_argument("--no-pymc", action="store_true", help="skip the PyMC column")
    ap.add_argument(
        "--repeats",
        type=int,
        default=4,
        help="rounds per method: the first call plus repeats - 1 warm calls",
    )
    ap.add_argument(
        "--layouts",
        type=int,
        default=48,
        help="tested layouts: the 36-row pairwise covering array + random top-up",
    )
    ap.add_argument("--impressions", type=int, default=3000, help="impressions per layout")
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--draws", type=int, default=500, help="draws per chain")
    ap.add_argument("--svi-steps", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--methods",
        default="nuts,nuts_vectorized,svi,laplace",
        help="layoutopt methods to run (nuts: sequential chains, nuts_vectorized: vmap-ed)",
    )
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--pymc-worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.repeats < 2:
        ap.error("--repeats must be at least 2 (one first call plus warm calls)")
    if args.pymc_worker:
        pymc_worker(args.pymc_worker)
        return 0

    import jax

    from layoutopt.infer.fitting import NutsOptions, SviOptions, fit

    load_before = os.getloadavg()
    t_start = time.perf_counter()
    space, obs, prior, covering = make_data(args.layouts, args.impressions, args.seed)
    card = space.cardinalities
    all_codes = space.codes_range(0, space.size)
    S = args.chains * args.draws
    target = 0.9  # layoutopt's NUTS default; PyMC gets the same
    print(
        f"data: {obs.num_layouts} layouts ({covering} covering + random), "
        f"{args.impressions} impressions each, {int(obs.clicks.sum())} clicks; "
        f"prior {prior}",
        file=sys.stderr,
    )

    points = check_points(card, prior.intercept_loc)
    tmp = tempfile.mkdtemp(prefix="bench_fit_")
    data_path = os.path.join(tmp, "data.npz")
    np.savez(
        data_path,
        codes=obs.codes,
        impressions=obs.impressions,
        clicks=obs.clicks,
        cardinalities=np.array(card),
        base_rate=prior.base_rate,
        intercept_loc=prior.intercept_loc,
        intercept_scale=prior.intercept_scale,
        main_scale=prior.main_scale,
        pair_scale=prior.pair_scale,
        num_chains=args.chains,
        num_warmup=args.warmup,
        draws_per_chain=args.draws,
        target_accept=target,
        **points,
    )

    worker = None
    if not args.no_pymc:
        py = find_pymc_python(args.pymc_python)
        if py:
            worker = PymcWorker(py, data_path)
            with jax.enable_x64(True):
                logp_rel_err = check_same_model(points, worker.info["logp"], obs, prior, card)
            print(
                f"same model check: max relative |log density difference| {logp_rel_err:.1e}",
                file=sys.stderr,
            )
            if logp_rel_err > 1e-6:
                raise SystemExit("the PyMC model's log density differs from layoutopt's")

    methods = {
        "nuts": dict(
            method="nuts",
            num_samples=S,
            num_chains=args.chains,
            num_warmup=args.warmup,
            options=NutsOptions(target_accept_prob=target, chain_method="sequential"),
        ),
        # the same chains (same seed, data and options) vmap-ed into one sampler
        "nuts_vectorized": dict(
            method="nuts",
            num_samples=S,
            num_chains=args.chains,
            num_warmup=args.warmup,
            options=NutsOptions(target_accept_prob=target, chain_method="vectorized"),
        ),
        "svi": dict(method="svi", num_samples=S, options=SviOptions(num_steps=args.svi_steps)),
        "laplace": dict(method="laplace", num_samples=S),
    }
    unknown = set(args.methods.split(",")) - set(methods)
    if unknown:
        ap.error(f"--methods: unknown {sorted(unknown)}; valid: {list(methods)}")
    methods = {k: v for k, v in methods.items() if k in args.methods.split(",")}
    runs = {name: [] for name in (["pymc"] if worker else []) + list(methods)}
    for rnd in range(args.repeats):
        seed = args.seed + 100 + rnd
        if worker:
            res = worker.sample(rnd, seed, os.path.join(tmp, f"pymc_{rnd}.npz"))
            dr = res["draws"]  # (C, D, ...)
            flat = {k: dr[k].reshape((-1,) + dr[k].shape[2:]) for k in dr}
            eta = eta_draws(flat, card, all_codes)
            ess_eff, ess_eta = ess_summary(dr, eta.reshape(args.chains, args.draws, -1))
            runs["pymc"].append(
                dict(
                    wall=res["wall"],
                    cpu=res["cpu"],
                    eta=eta,
                    ess_eff=ess_eff,
                    ess_eta=ess_eta,
                    divergences=int(dr["diverging"].sum()),
                    mean_steps=float(dr["n_steps"].mean()),
                )
            )
            print(f"round {rnd} pymc {res['wall']:.1f}s", file=sys.stderr)
        # alternate the order of the layoutopt methods, so neither always runs first
        for name, kw in list(methods.items())[:: 1 if rnd % 2 == 0 else -1]:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                t0, c0 = time.perf_counter(), time.process_time()
                post = fit(space, obs, seed=seed, prior=prior, **kw)
                jax.block_until_ready(post.params)
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            flat = flat_of_posterior(post)
            eta = eta_draws(flat, card, all_codes)
            rec = dict(
                wall=wall,
                cpu=cpu,
                eta=eta,
                diagnostics=post.diagnostics,
                warnings=[str(w.message)[:200] for w in caught],
            )
            if name.startswith("nuts"):
                C, D = args.chains, S // args.chains
                by_chain = {k: v.reshape((C, D) + v.shape[1:]) for k, v in flat.items()}
                rec["ess_eff"], rec["ess_eta"] = ess_summary(by_chain, eta.reshape(C, D, -1))
                rec["divergences"] = post.diagnostics["num_divergences"]
            runs[name].append(rec)
            print(f"round {rnd} {name} {wall:.1f}s", file=sys.stderr)
    if worker:
        pymc_info = worker.info
        worker.close()
    else:
        pymc_info, logp_rel_err = None, None
    load_after = os.getloadavg()
    total = time.perf_counter() - t_start

    ref_name = "pymc" if worker else next(iter(runs))
    ref = runs[ref_name][0]["eta"]
    rows = []
    med = np.median
    for name, rs in runs.items():
        warm = [r["wall"] for r in rs[1:]]
        row = {
            "method": name,
            "first_s": rs[0]["wall"],
            "warm_s": float(med(warm)),
            "warm_all_s": warm,
            "cpu_warm_s": float(med([r["cpu"] for r in rs[1:]])),
        }
        if "ess_eff" in rs[0]:
            row["ess_eff"] = float(med([r["ess_eff"] for r in rs]))
            row["ess_eta"] = float(med([r["ess_eta"] for r in rs]))
            row["ess_eff_per_s"] = float(med([r["ess_eff"] / r["wall"] for r in rs[1:]]))
            row["ess_eta_per_s"] = float(med([r["ess_eta"] / r["wall"] for r in rs[1:]]))
            row["divergences"] = [r["divergences"] for r in rs]
        if name == ref_name:
            row["vs_ref"] = compare(rs[1]["eta"], ref)  # same method, other seed: MC floor
            row["vs_ref_note"] = "round 2 vs round 1 (Monte Carlo noise floor)"
        else:
            cmp = [compare(r["eta"], ref) for r in rs]
            row["vs_ref"] = {k: float(med([c[k] for c in cmp])) for k in cmp[0]}
        if name == "pymc":
            row["mean_tree_steps"] = float(med([r["mean_steps"] for r in rs]))
        row["warnings"] = sorted({w for r in rs for w in r.get("warnings", [])})
        row["diagnostics"] = [r.get("diagnostics", {}) for r in rs]
        rows.append(row)

    info = machine_info(pymc_info)
    result = {
        "machine": info,
        "load_before": load_before,
        "load_after": load_after,
        "total_s": total,
        "reference": ref_name,
        "logp_check_rel_err": logp_rel_err,
        "args": vars(args),
        "data": {
            "layouts": obs.num_layouts,
            "covering": int(covering),
            "clicks": int(obs.clicks.sum()),
            "prior": repr(prior),
        },
        "rows": rows,
    }
    print_table(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str))
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


def print_table(res: dict) -> None:
    a = res["args"]
    names = {
        "pymc": "PyMC NUTS (reference)",
        "nuts": "layoutopt NUTS (sequential chains)",
        "nuts_vectorized": "layoutopt NUTS (vectorized chains)",
        "svi": "layoutopt SVI",
        "laplace": "layoutopt Laplace",
    }
    print(f"machine: {json.dumps(res['machine'])}")
    print(
        f"load average (1/5/15 min) before {res['load_before']}, after {res['load_after']}; "
        f"total {res['total_s']:.0f} s"
    )
    if res["logp_check_rel_err"] is not None:
        print(
            f"same-model check (log density, PyMC vs layoutopt, 3 random points): max "
            f"relative difference {res['logp_check_rel_err']:.1e}"
        )
    print(
        f"data: {res['data']}; {a['chains']} chains x {a['warmup']} warmup x {a['draws']} "
        f"draws; {a['repeats']} rounds"
    )
    print()
    print(
        "| method | first call (s) | warm, median (s) | warm CPU (s) | min ESS effects | "
        "min ESS eta | ESS/s effects | ESS/s eta | max \\|d eta\\|/sd | mean \\|d eta\\|/sd "
        "| sd / sd_ref | mean \\|d CTR\\| |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in res["rows"]:
        v = r["vs_ref"]

        def f(key, fmt, r=r):
            return format(r[key], fmt) if key in r else "-"

        print(
            f"| {names[r['method']]} | {r['first_s']:.2f} | {r['warm_s']:.2f} | "
            f"{r['cpu_warm_s']:.2f} | {f('ess_eff', '.0f')} | {f('ess_eta', '.0f')} | "
            f"{f('ess_eff_per_s', '.1f')} | {f('ess_eta_per_s', '.1f')} | "
            f"{v['max_z']:.3f} | {v['mean_z']:.3f} | {v['sd_ratio']:.2f} | "
            f"{v['mean_abs_dctr']:.2e} |"
        )
    print()
    by = {r["method"]: r for r in res["rows"]}
    if "nuts" in by and "nuts_vectorized" in by:
        seq, vec = by["nuts"], by["nuts_vectorized"]
        per_round = [s / v for s, v in zip(seq["warm_all_s"], vec["warm_all_s"], strict=True)]
        print(
            "sequential / vectorized chains, warm wall time per round: "
            + ", ".join(f"{x:.2f}" for x in per_round)
            + f" (median {np.median(per_round):.2f}); warm CPU time: "
            f"{seq['cpu_warm_s'] / vec['cpu_warm_s']:.2f}"
        )
    for r in res["rows"]:
        extra = {k: r[k] for k in ("warm_all_s", "divergences", "mean_tree_steps") if k in r}
        print(f"{r['method']}: {extra}")
        if r["warnings"]:
            print(f"  warnings: {r['warnings']}")
        if r["method"] != "pymc":
            print(f"  diagnostics: {r['diagnostics']}")


if __name__ == "__main__":
    sys.exit(main())
