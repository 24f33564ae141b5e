"""``fit(method="nuts")``: NumPyro NUTS on the one click model, with health checks."""

from __future__ import annotations

import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.diagnostics import effective_sample_size, split_gelman_rubin
from numpyro.infer import MCMC, NUTS

from layoutopt.infer.data import time_outputs
from layoutopt.infer.laplace_fit import FitWarning
from layoutopt.infer.options import NutsOptions
from layoutopt.infer.posterior import Posterior
from layoutopt.infer.problem import FitProblem, FitRun, posterior_from_sites
from layoutopt.model.numpyro_model import TERM_SITES, click_model
from layoutopt.model.spec import FitData

__all__ = ["fit_nuts", "model_args", "static_model", "MAX_R_HAT", "MIN_ESS"]

# NUTS health thresholds. r_hat 1.05 rather than Vehtari et al.'s 1.01 because the default
# runs are short (a few hundred draws per chain), where split-r_hat itself fluctuates by
# about 0.01-0.02 even for a healthy sampler.
MAX_R_HAT = 1.05
MIN_ESS = 100.0


def model_args(problem: FitProblem) -> dict:
    """Keyword arguments of :func:`click_model` for ``problem`` (float32 rows, as NumPyro
    samples in float32); a fixed delay enters as exposure, a learned one is sampled."""
    data = problem.data
    f32 = {"codes": None, "segments": None}
    rows = FitData(
        *(
            jnp.asarray(v) if k in f32 else jnp.asarray(v, jnp.float32)
            for k, v in data._asdict().items()
        )
    )
    return {
        "spec": problem.spec,
        "prior": problem.prior,
        "data": rows,
        "attributes": jnp.asarray(problem.attributes, jnp.float32),
    }


def static_model(spec, prior):
    """``click_model`` with the static arguments bound (NumPyro traces arrays only)."""

    def model(data, attributes):
        click_model(spec, prior, data, attributes)

    return model


def fit_nuts(problem: FitProblem, options: NutsOptions, run: FitRun) -> Posterior:
    """NUTS draws of ``problem``'s posterior (``run.num_chains`` chains)."""
    per_chain = math.ceil(run.num_samples / run.num_chains)
    args = model_args(problem)
    model = static_model(args.pop("spec"), args.pop("prior"))
    kernel = NUTS(
        model,
        target_accept_prob=float(options.target_accept_prob),
        max_tree_depth=int(options.max_tree_depth),
        dense_mass=False,
    )
    mcmc = MCMC(
        kernel,
        num_warmup=run.num_warmup,
        num_samples=per_chain,
        num_chains=run.num_chains,
        chain_method=options.chain_method,
        progress_bar=run.progress,
    )
    mcmc.run(jax.random.PRNGKey(run.seed), extra_fields=("diverging",), **args)
    by_chain = jax.device_get(mcmc.get_samples(group_by_chain=True))
    divergences = int(np.sum(jax.device_get(mcmc.get_extra_fields()["diverging"])))
    effects = [by_chain["intercept"][..., None]]
    effects += [by_chain[site] for _, _, site in TERM_SITES.values() if site in by_chain]
    effects = np.concatenate([np.asarray(e, np.float64) for e in effects], axis=-1)
    diagnostics = {
        "max_r_hat": float(np.max(np.asarray(split_gelman_rubin(effects)))),
        "min_ess": float(np.min(np.asarray(effective_sample_size(effects)))),
        "num_divergences": divergences,
    }
    _warn_unhealthy(diagnostics)
    flat = {k: np.asarray(v).reshape((-1,) + np.shape(v)[2:]) for k, v in by_chain.items()}
    diagnostics.update(time_outputs(problem.time, problem.delay, 0)[1])
    return posterior_from_sites(
        problem, flat, method="nuts", num_chains=run.num_chains, diagnostics=diagnostics
    )


def _warn_unhealthy(diagnostics: dict) -> None:
    problems = []
    if not diagnostics["max_r_hat"] <= MAX_R_HAT:
        problems.append(f"max r_hat {diagnostics['max_r_hat']:.3f} > {MAX_R_HAT}")
    if not diagnostics["min_ess"] >= MIN_ESS:
        problems.append(f"min ESS {diagnostics['min_ess']:.0f} < {MIN_ESS:.0f}")
    if diagnostics["num_divergences"]:
        problems.append(f"{diagnostics['num_divergences']} divergent transitions")
    if problems:
        warnings.warn(
            "NUTS diagnostics look unhealthy (" + "; ".join(problems) + "): increase "
            "num_warmup and num_samples, raise target_accept_prob (e.g. 0.95) for "
            "divergences, and compare with method='laplace'",
            FitWarning,
            stacklevel=4,
        )
