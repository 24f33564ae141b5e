"""The NumPyro model of aggregated click data (NUTS and SVI sample it).

One model, :func:`click_model`, reads the model's terms from a
:class:`~layoutopt.model.spec.ModelSpec`, their priors from a
:class:`~layoutopt.model.priors.Prior` and the rows from a
:class:`~layoutopt.model.spec.FitData`; the likelihood is the one of
:mod:`layoutopt.model.core` (``logits`` and ``log_likelihood``), so the sampled model and
the Laplace fit can never drift apart. :func:`numpyro_model` is its keyword form for a
space without attributes (as NumPyro users and the benchmarks call it).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from layoutopt.model.core import inv_link, log_likelihood, logits
from layoutopt.model.delay import delay_log_likelihood, weibull_cdf
from layoutopt.model.priors import Prior, PriorConfig
from layoutopt.model.spec import FitData, ModelSpec

__all__ = ["click_model", "numpyro_model", "TERM_SITES"]

#: Per term kind: the site of its group sds, of its standard-normal innovations, and of its
#: (deterministic) values. The segment intercepts share one sd, a scalar site.
TERM_SITES = {
    "main": ("sigma_main", "z_main", "main"),
    "pair": ("tau_pair", "z_pair", "pair"),
    "segment_intercept": ("omega_intercept", "z_segment_intercept", "segment_intercept"),
    "segment_main": ("omega_main", "z_segment_main", "segment_main"),
    "segment_pair": ("upsilon_pair", "z_segment_pair", "segment_pair"),
}


def click_model(spec: ModelSpec, prior: Prior, data: FitData, attributes: jax.Array) -> None:
    """NumPyro model of the click data: every term of ``spec`` under ``prior``.

    ``t = loc + s[group] * z`` for every term block (``z`` standard normal, ``s`` the
    group sds: ``HalfNormal(prior.scale)`` sample sites where ``prior.learned``, else
    deterministic at ``prior.scale``); ``m_k = e_k + A_k beta_k`` with
    ``beta ~ N(loc, scale^2)`` when the spec has attribute coefficients. The likelihood
    enters as factor ``loglik`` (``Binomial(n w, inv_link(eta) F(age))`` with weights
    ``w`` and exposure ``F``), or a ``clicks`` site when ``data.clicks`` is None. With
    ``spec.learned_delay`` the Weibull ``delay_shape`` ~ LogNormal(0, 0.5) and
    ``delay_scale`` ~ LogNormal(log 12 h, 2) are sampled and ``F`` follows them, jointly
    with the delay histogram (:func:`layoutopt.model.delay.delay_log_likelihood`).

    Args:
        spec: the model's terms.
        prior: their prior (:meth:`PriorConfig.resolve`, ``MetaPrior.resolve``).
        data: the rows (jax or numpy arrays).
        attributes: ``(sum n_k, B)`` block-diagonal attribute design.
    """
    groups = spec.scale_groups(pooled=False)
    b0 = numpyro.sample("intercept", dist.Normal(float(prior.loc[0]), prior.intercept_scale))
    kinds = spec.group_kinds()
    flat = [b0[None]]
    for kind, (scale_site, z_site, value_site) in TERM_SITES.items():
        blocks = [b for b in spec.blocks if b.kind == kind]
        if not blocks:
            continue
        start, stop = spec.span(kind)
        which = [g for g, k in enumerate(kinds) if k == kind]
        sd = _scales(scale_site, prior, which, scalar=kind == "segment_intercept")
        z = numpyro.sample(z_site, dist.Normal(0.0, 1.0).expand([stop - start]).to_event(1))
        index = groups.group[start:stop] - which[0]
        value = jnp.asarray(prior.loc[start:stop], jnp.float32) + sd[index] * z
        if kind == "main" and spec.num_beta:
            b_start, b_stop = spec.span("beta")
            beta = numpyro.sample(
                "beta",
                dist.Normal(
                    jnp.asarray(prior.loc[b_start:b_stop], jnp.float32),
                    jnp.asarray(prior.scale[groups.group[b_start:b_stop]], jnp.float32),
                ).to_event(1),
            )
            value = value + attributes @ beta
        flat.append(numpyro.deterministic(value_site, value))
    # main is composed already: unravel with no attribute design adds exact zeros
    flat.append(jnp.zeros(spec.num_beta))
    params, _ = spec.unravel(
        jnp.concatenate(flat), jnp.zeros((sum(spec.cardinalities), spec.num_beta))
    )
    eta = logits(params, data.codes, data.segments)
    impressions, clicks = data.weighted()
    exposure = data.exposure
    if spec.learned_delay:
        exposure = exposure * _learned_exposure(data, clicks)
    if clicks is None:
        probs = inv_link(eta, spec.link) * exposure
        numpyro.sample("clicks", dist.Binomial(impressions, probs=probs))
    else:
        numpyro.factor(
            "loglik", log_likelihood(eta, impressions, clicks, spec.link, exposure).sum()
        )


def _scales(name: str, prior: Prior, which: list[int], *, scalar: bool):
    """The sds of the groups ``which``: sampled where learned, else fixed."""
    scale = jnp.asarray(prior.scale[which], jnp.float32)
    if scalar:
        scale = scale[0]
    if bool(np.all(prior.learned[which])):
        d = dist.HalfNormal(scale)
        return numpyro.sample(name, d if scalar else d.to_event(1)).reshape(-1)
    return numpyro.deterministic(name, scale).reshape(-1)


def _learned_exposure(data: FitData, clicks):
    """``F(age)`` of a sampled Weibull, with the delay histogram's likelihood.

    The joint likelihood of :mod:`layoutopt.model.delay` is the binomial cohort term plus
    the binned delays minus ``sum clicks * log F(age)`` (the observed clicks' delays are
    already in the histogram, so their ``F(age)`` must not count twice).
    """
    shape = numpyro.sample("delay_shape", dist.LogNormal(0.0, 0.5))
    scale = numpyro.sample("delay_scale", dist.LogNormal(jnp.log(12.0), 2.0))
    f = weibull_cdf(data.age, shape, scale)
    observed = 0.0 if clicks is None else jnp.sum(clicks * jnp.log(jnp.clip(f, 1e-12, 1.0)))
    numpyro.factor("delay_loglik", delay_log_likelihood(data.delay_counts, shape, scale) - observed)
    return f


def numpyro_model(
    layouts: jax.Array,
    impressions: jax.Array,
    clicks: jax.Array | None,
    cardinalities: tuple[int, ...],
    prior: PriorConfig = PriorConfig(),  # noqa: B008 (frozen, hashable)
    *,
    age: jax.Array | None = None,
    delay=None,
    delay_counts: jax.Array | None = None,
    segments: jax.Array | None = None,
    num_segments: int = 0,
) -> None:
    """:func:`click_model` of a space without attributes, from arrays.

    Sample sites: ``intercept``; ``sigma_main`` (K,) and ``z_main`` (sum n_k);
    ``tau_pair`` (K(K-1)/2,) and ``z_pair`` (sum n_k n_l) when ``prior.pairwise``;
    deterministic ``main`` and ``pair`` (flat, see
    :func:`~layoutopt.model.core.unflatten_effects`); the segment sites of
    :data:`TERM_SITES` with segments.

    Args:
        layouts: ``(N, K)`` integer codes of the rows.
        impressions: ``(N,)`` impressions per row.
        clicks: ``(N,)`` clicks per row; ``None`` to sample from the prior predictive.
        cardinalities: ``(n_1, ..., n_K)``.
        prior: prior settings.
        age: ``(N,)`` hours since serving, for a delay model; None for none.
        delay: a :class:`~layoutopt.model.delay.Weibull` (fixed ``F``) or ``"auto"``
            (sampled with the effects).
        delay_counts: histogram of observed delays (``"auto"``).
        segments: ``(N,)`` segment codes of the rows (``None`` without segments).
        num_segments: number of segments G (0 without segments).
    """
    n = len(layouts)
    spec = ModelSpec(
        tuple(int(c) for c in cardinalities),
        prior.pairwise,
        prior.link,
        int(num_segments),
        bool(prior.segment_pairs and prior.pairwise and num_segments),
        learned_delay=delay == "auto",
    )
    fixed = delay is not None and delay != "auto"
    data = FitData(
        codes=layouts,
        segments=jnp.zeros(n, jnp.int32) if segments is None else segments,
        impressions=impressions,
        clicks=clicks,
        exposure=delay.cdf(age) if fixed else jnp.ones(n),
        # integer ones keep integer impressions integer (NumPyro's Binomial sampler
        # refuses a float total_count)
        weight=jnp.ones(n, jnp.asarray(impressions).dtype),
        age=jnp.zeros(n) if age is None else age,
        delay_counts=jnp.zeros(0) if delay_counts is None else delay_counts,
    )
    click_model(spec, prior.resolve(spec), data, jnp.zeros((sum(spec.cardinalities), 0)))
