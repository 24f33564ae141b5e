"""``fit(method="svi")``: NumPyro SVI with a Gaussian guide on the one click model."""

from __future__ import annotations

import warnings

import jax
import numpy as np
import optax
from numpyro.infer import SVI, Predictive, Trace_ELBO, init_to_median
from numpyro.infer.autoguide import (
    AutoLowRankMultivariateNormal,
    AutoMultivariateNormal,
    AutoNormal,
)
from numpyro.optim import optax_to_numpyro

from layoutopt.infer.data import time_outputs
from layoutopt.infer.laplace_fit import FitWarning
from layoutopt.infer.nuts import model_args, static_model
from layoutopt.infer.options import SviOptions
from layoutopt.infer.posterior import Posterior
from layoutopt.infer.problem import HYPER_SITES, FitProblem, FitRun, posterior_from_sites
from layoutopt.model.numpyro_model import TERM_SITES

__all__ = ["fit_svi", "FULL_GUIDE_MAX_DIM", "latent_size"]

#: ``guide="auto"`` takes the full-rank guide up to this many latent dimensions.
FULL_GUIDE_MAX_DIM = 2000


def latent_size(problem: FitProblem) -> int:
    """Latent dimensions the ``guide="auto"`` rule counts: every parameter and one scale per
    group, with the component scales and the segment block counted once more, as the rule
    has always counted them (so that it picks the same guide for the same model)."""
    spec = problem.spec
    K, G = spec.num_components, spec.num_segments
    extra = 2 + K + (len(spec.pairs) if spec.segment_pairs else 0) if G else 0
    return spec.num_params + 2 * K + len(spec.pairs) + extra


def _guide(name: str, model, options: SviOptions):
    # init_to_median starts b0 at the prior's centre (the pooled CTR by default), rather
    # than uniformly in (-2, 2) on the link scale, far from typical CTRs of a few percent.
    init = init_to_median(num_samples=15)
    if name == "lowrank":
        extra = {} if options.rank is None else {"rank": int(options.rank)}
        return AutoLowRankMultivariateNormal(model, init_loc_fn=init, **extra)
    if name == "full":
        return AutoMultivariateNormal(model, init_loc_fn=init)
    return AutoNormal(model, init_loc_fn=init)


def fit_svi(problem: FitProblem, options: SviOptions, run: FitRun) -> Posterior:
    """SVI draws of ``problem``'s posterior from the fitted Gaussian guide."""
    guide_name = options.guide
    if guide_name == "auto":
        # A full-rank Gaussian captures the strong posterior correlations between b0, main
        # and pair effects (the one-hot design is collinear); the low-rank guide missed them
        # by ~1 posterior sd on the demo model. Its P^2 covariance only binds for large P.
        guide_name = "full" if latent_size(problem) <= FULL_GUIDE_MAX_DIM else "lowrank"
    num_steps = int(options.num_steps)
    args = model_args(problem)
    model = static_model(args.pop("spec"), args.pop("prior"))
    guide = _guide(guide_name, model, options)
    # Decaying the step size averages out the gradient noise of the 1-particle ELBO at the
    # end, which is what makes the final guide's mean usable.
    schedule = optax.cosine_decay_schedule(float(options.learning_rate), num_steps, alpha=0.01)
    optim = optax_to_numpyro(optax.chain(optax.clip_by_global_norm(100.0), optax.adam(schedule)))
    svi = SVI(model, guide, optim, Trace_ELBO(num_particles=int(options.num_particles)))
    key_fit, key_draw = jax.random.split(jax.random.PRNGKey(run.seed))
    result = svi.run(key_fit, num_steps, progress_bar=run.progress, stable_update=True, **args)
    losses = np.asarray(jax.device_get(result.losses))
    tail = losses[-max(1, num_steps // 20) :]
    sites = ["intercept", "beta", "delay_shape", "delay_scale"]
    sites += [site for _, _, site in TERM_SITES.values()] + list(HYPER_SITES.values())
    predictive = Predictive(
        model, guide=guide, params=result.params, num_samples=run.num_samples, return_sites=sites
    )
    draws = jax.device_get(predictive(key_draw, **args))
    diagnostics = {
        "final_loss": float(np.nanmean(tail)),
        "num_steps": num_steps,
        "guide": guide_name,
    }
    diagnostics.update(time_outputs(problem.time, problem.delay, 0)[1])
    if not np.isfinite(diagnostics["final_loss"]):
        warnings.warn(
            "SVI loss is not finite at the end of the run; lower learning_rate",
            FitWarning,
            stacklevel=3,
        )
    samples = {k: np.asarray(v) for k, v in draws.items()}
    return posterior_from_sites(
        problem, samples, method="svi", num_chains=1, diagnostics=diagnostics
    )
