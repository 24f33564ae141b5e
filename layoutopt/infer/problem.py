"""What every fitter is given: the problem (space, spec, prior, data) and the run settings,
and the shared way from flat draws and scale groups to a :class:`Posterior`."""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np

from layoutopt.data.observations import Observations
from layoutopt.infer.data import TimeSetup
from layoutopt.infer.posterior import Posterior
from layoutopt.model.core import Params
from layoutopt.model.delay import Weibull
from layoutopt.model.numpyro_model import TERM_SITES
from layoutopt.model.priors import Prior, PriorConfig
from layoutopt.model.space import LayoutSpace
from layoutopt.model.spec import FitData, ModelSpec, ScaleGroups

__all__ = [
    "FitProblem",
    "FitRun",
    "HYPER_SITES",
    "hyper_from_scales",
    "params_from_flat",
    "posterior_from_flat",
    "posterior_from_sites",
]

#: Per term kind, the ``Posterior.hyper`` key of its group sds (beta's are fixed: none).
HYPER_SITES = {
    "main": "sigma_main",
    "pair": "tau_pair",
    "segment_intercept": "omega_intercept",
    "segment_main": "omega_main",
    "segment_pair": "upsilon_pair",
}


class FitProblem(NamedTuple):
    """A model to fit and the data to fit it to.

    Attributes:
        space: the layout space.
        spec: the model's terms.
        prior: the resolved prior of every parameter.
        config: the :class:`PriorConfig` the posterior records.
        data: the rows (unpadded, float64 counts).
        attributes: ``(sum n_k, B)`` block-diagonal attribute design.
        time: the delay and drift settings.
        delay: the delay the fit holds fixed (its exposure is in ``data``), or None.
        observations: the observations (recorded on the posterior).
    """

    space: LayoutSpace
    spec: ModelSpec
    prior: Prior
    config: PriorConfig
    data: FitData
    attributes: np.ndarray
    time: TimeSetup
    delay: Weibull | None
    observations: Observations


class FitRun(NamedTuple):
    """How long and how randomly to run a fitter.

    Attributes:
        seed: seed of every random choice.
        num_samples: posterior draws.
        num_chains: NUTS chains (others ignore it).
        num_warmup: NUTS warm-up steps per chain (others ignore it).
        progress: show NumPyro's progress bar (NUTS, SVI).
    """

    seed: int
    num_samples: int
    num_chains: int = 1
    num_warmup: int = 0
    progress: bool = False


def params_from_flat(spec: ModelSpec, flat, attributes, dtype=np.float32) -> Params:
    """Host :class:`Params` (``dtype``, contiguous) of flat ``(..., P)`` parameters."""
    params, _ = spec.unravel(np.asarray(flat), np.asarray(attributes))
    # Contiguous copies: slices of one big array would keep it alive and complicate I/O.
    return jax.tree.map(lambda a: np.ascontiguousarray(a, dtype=dtype), params)


def hyper_from_scales(spec: ModelSpec, groups: ScaleGroups, scales, num_samples: int) -> dict:
    """``Posterior.hyper`` sds from a fit's group scales, repeated over the draws.

    Pooled groups are spread back over the groups they pool, so the shapes are those of
    NUTS and SVI (``sigma_main`` ``(S, K)``, ``omega_intercept`` ``(S,)``, ...).
    """
    scales = np.asarray(scales, np.float32)
    per_block = scales[groups.group[[b.offset for b in spec.blocks[1:]]]]
    kinds = np.asarray(spec.group_kinds(), dtype=object)
    hyper = {}
    for kind, name in HYPER_SITES.items():
        if kind in ("main", "pair") or np.any(kinds == kind):
            values = per_block[kinds == kind] if len(kinds) else np.zeros(0, np.float32)
            values = np.repeat(values[None, :], num_samples, axis=0)
            hyper[name] = values[:, 0].copy() if kind == "segment_intercept" else values
    return hyper


def posterior_from_flat(
    problem: FitProblem,
    flat,
    hyper: dict,
    *,
    method: str,
    num_chains: int,
    diagnostics: dict,
    gaussian=None,
) -> Posterior:
    """The :class:`Posterior` of flat ``(S, P)`` draws (main effects composed with the
    attributes), ``hyper`` gaining ``beta`` when the spec has coefficients."""
    spec = problem.spec
    params = params_from_flat(spec, flat, problem.attributes)
    if spec.num_beta:
        start, stop = spec.span("beta")
        hyper["beta"] = np.ascontiguousarray(np.asarray(flat)[:, start:stop], dtype=np.float32)
    obs = problem.observations
    return Posterior(
        space=problem.space,
        prior=problem.config,
        params=params,
        method=method,
        num_chains=num_chains,
        hyper=hyper,
        diagnostics=diagnostics,
        observed_codes=np.array(obs.codes, np.int32),
        segment_shares=obs.segment_shares(),
        gaussian=gaussian,
    )


def posterior_from_sites(
    problem: FitProblem, samples: dict, *, method: str, num_chains: int, diagnostics: dict
) -> Posterior:
    """The :class:`Posterior` of flat ``(S, ...)`` site draws of
    :func:`~layoutopt.model.numpyro_model.click_model`."""
    spec = problem.spec
    S = np.shape(samples["intercept"])[0]
    flat = [np.reshape(samples["intercept"], (S, 1))]
    for kind, (_, _, value_site) in TERM_SITES.items():
        if any(b.kind == kind for b in spec.blocks):
            flat.append(np.reshape(samples[value_site], (S, -1)))
    flat.append(np.reshape(samples.get("beta", np.zeros((S, 0))), (S, spec.num_beta)))
    flat = np.concatenate([np.asarray(f, np.float32) for f in flat], axis=1)
    hyper = {}
    for kind, name in HYPER_SITES.items():
        if name in samples:
            value = np.asarray(samples[name], np.float32)
            hyper[name] = value.reshape(S) if kind == "segment_intercept" else value.reshape(S, -1)
    hyper.setdefault("tau_pair", np.zeros((S, 0), np.float32))
    for name in ("delay_shape", "delay_scale"):
        if name in samples:
            hyper[name] = np.asarray(samples[name], np.float32).reshape(S)
    # the main site is composed already: no attribute design on top
    zero = problem._replace(attributes=np.zeros((sum(spec.cardinalities), spec.num_beta)))
    return posterior_from_flat(
        zero, flat, hyper, method=method, num_chains=num_chains, diagnostics=diagnostics
    )
