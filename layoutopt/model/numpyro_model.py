"""The NumPyro model of aggregated click data (NUTS and SVI sample it).

The likelihood is the one of :mod:`layoutopt.model.core` (``logits`` and
``log_likelihood``), so the sampled model and the Laplace fit can never drift apart.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from layoutopt.model.core import (
    Params,
    effect_sizes,
    inv_link,
    log_likelihood,
    logits,
    segment_effect_sizes,
    unflatten_effects,
    unflatten_segment_effects,
)
from layoutopt.model.delay import delay_log_likelihood, weibull_cdf
from layoutopt.model.priors import PriorConfig, PriorSpec

__all__ = ["numpyro_model", "numpyro_model_spec"]


def _segments(sizes: list[int]) -> np.ndarray:
    return np.repeat(np.arange(len(sizes)), sizes).astype(np.int32)


def numpyro_model(
    layouts: jax.Array,
    impressions: jax.Array,
    clicks: jax.Array | None,
    cardinalities: tuple[int, ...],
    prior: PriorConfig = PriorConfig(),  # noqa: B008 (frozen, hashable)
    age: jax.Array | None = None,
    delay=None,
    delay_counts: jax.Array | None = None,
    segments: jax.Array | None = None,
    num_segments: int = 0,
) -> None:
    """NumPyro model of aggregated click data (one row per distinct tested layout).

    Sample sites: ``intercept``; ``sigma_main`` (K,) and ``z_main`` (sum n_k);
    ``tau_pair`` (K(K-1)/2,) and ``z_pair`` (sum n_k n_l) when ``prior.pairwise``.
    Deterministic sites ``main`` and ``pair`` hold the flat effects
    (see :func:`unflatten_effects`); the likelihood enters as factor ``loglik``.
    With segments also ``omega_intercept`` and ``z_segment_intercept`` (G,), ``omega_main``
    (K,) and ``z_segment_main`` (G * sum n_k), and with ``prior.segment_pairs``
    ``upsilon_pair`` and ``z_segment_pair``; deterministic sites ``segment_intercept``,
    ``segment_main`` and ``segment_pair`` hold them flat (see :func:`unflatten_segment_effects`).

    Args:
        layouts: ``(N, K)`` integer codes of the distinct tested layouts.
        impressions: ``(N,)`` impressions per layout.
        clicks: ``(N,)`` clicks per layout; ``None`` to sample from the prior predictive
            (then a ``clicks`` site is sampled instead of the factor).
        cardinalities: ``(n_1, ..., n_K)``.
        prior: prior settings.
        age: ``(N,)`` hours since serving, for a delay model; None for none.
        delay: a :class:`layoutopt.delay.Weibull` (fixed ``F``) or ``"auto"``: Weibull
            ``delay_shape`` ~ LogNormal(0, 0.5) and ``delay_scale`` ~ LogNormal(log 12 h, 2)
            sample sites, learned jointly from the binomial cohorts and ``delay_counts``
            (see :func:`layoutopt.delay.delay_log_likelihood`).
        delay_counts: histogram of observed delays over ``DELAY_EDGES`` (``"auto"``).
        segments: ``(N,)`` segment codes of the rows (``None`` without segments).
        num_segments: number of segments G (0 without segments).
    """

    K = len(cardinalities)
    sizes_m, sizes_p = effect_sizes(cardinalities, prior.pairwise)
    b0 = numpyro.sample("intercept", dist.Normal(prior.intercept_loc, prior.intercept_scale))
    sigma = numpyro.sample("sigma_main", dist.HalfNormal(prior.main_scale).expand([K]).to_event(1))
    z_m = numpyro.sample("z_main", dist.Normal(0.0, 1.0).expand([sum(sizes_m)]).to_event(1))
    main = numpyro.deterministic("main", sigma[_segments(sizes_m)] * z_m)
    if prior.pairwise and sizes_p:
        tau = numpyro.sample(
            "tau_pair", dist.HalfNormal(prior.pair_scale).expand([len(sizes_p)]).to_event(1)
        )
        z_p = numpyro.sample("z_pair", dist.Normal(0.0, 1.0).expand([sum(sizes_p)]).to_event(1))
        pair = numpyro.deterministic("pair", tau[_segments(sizes_p)] * z_p)
    else:
        pair = jnp.zeros((0,))
    params = unflatten_effects(b0, main, pair, cardinalities)
    if num_segments:
        params = _sample_segment_terms(params, cardinalities, prior, num_segments)
    eta = logits(params, layouts, segments)
    _likelihood(eta, impressions, clicks, prior.link, age, delay, delay_counts)


def _likelihood(eta, impressions, clicks, link: str, age=None, delay=None, delay_counts=None):
    """Binomial cohorts, each click probability times ``F(age)`` when a delay is given."""
    exposure = None if delay is None else _delay_exposure(age, delay, delay_counts, clicks)
    if clicks is None:
        probs = inv_link(eta, link) * (1.0 if exposure is None else exposure)
        numpyro.sample("clicks", dist.Binomial(impressions, probs=probs))
    else:
        numpyro.factor("loglik", log_likelihood(eta, impressions, clicks, link, exposure).sum())


def _delay_exposure(age, delay, delay_counts, clicks):
    """``F(age)`` inside the NumPyro model; samples the Weibull for ``delay="auto"``.

    For ``"auto"`` the joint likelihood of :mod:`layoutopt.delay` is the binomial cohort
    term plus the binned delays minus ``sum clicks * log F(age)`` (the observed clicks'
    delays are already in the histogram, so their ``F(age)`` must not count twice).
    """
    if delay != "auto":
        return delay.cdf(age)
    shape = numpyro.sample("delay_shape", dist.LogNormal(0.0, 0.5))
    scale = numpyro.sample("delay_scale", dist.LogNormal(jnp.log(12.0), 2.0))
    f = weibull_cdf(age, shape, scale)
    observed = 0.0 if clicks is None else jnp.sum(clicks * jnp.log(jnp.clip(f, 1e-12, 1.0)))
    numpyro.factor("delay_loglik", delay_log_likelihood(delay_counts, shape, scale) - observed)
    return f


def numpyro_model_spec(
    layouts: jax.Array,
    impressions: jax.Array,
    clicks: jax.Array | None,
    cardinalities: tuple[int, ...],
    prior: PriorConfig,
    spec: PriorSpec,
    attributes: jax.Array,
    age: jax.Array | None = None,
    delay=None,
    delay_counts: jax.Array | None = None,
    segments: jax.Array | None = None,
    num_segments: int = 0,
) -> None:
    """:func:`numpyro_model` with per-block prior means/scales and variant attributes.

    ``m_k[v] = a_k(v) . beta_k + e_k[v]`` with ``beta ~ N(spec.beta_loc, spec.beta_scale^2)``
    and ``e_k = spec.main_loc + sigma_k z_k``; ``sigma_k ~ HalfNormal(spec.main_scale[k])``
    when ``spec.learn_scales`` (the default prior), else ``sigma_k = spec.main_scale[k]``
    (a meta-prior); likewise for the pair tables. Extra sample site ``beta`` (B,) when
    ``attributes`` has columns; ``main`` holds the composed main effects.

    Args:
        layouts, impressions, clicks, cardinalities, prior: as in :func:`numpyro_model`
            (``prior`` supplies ``link`` and ``pairwise``).
        spec: the resolved prior (:meth:`PriorConfig.spec`, :meth:`MetaPrior.spec`).
        attributes: ``(sum n_k, B)`` block-diagonal attribute design
            (:func:`layoutopt.priors.attribute_design`).
        age, delay, delay_counts: the delay model, as in :func:`numpyro_model`.
        segments, num_segments: the segment terms, as in :func:`numpyro_model` (their
            scales from ``prior.segment_scale``/``prior.pair_scale``; not meta-learned).
    """
    sizes_m, sizes_p = effect_sizes(cardinalities, prior.pairwise)
    b0 = numpyro.sample("intercept", dist.Normal(spec.intercept_loc, spec.intercept_scale))

    def scales(name, scale):
        scale = jnp.asarray(scale, jnp.float32)
        if spec.learn_scales:
            return numpyro.sample(name, dist.HalfNormal(scale).to_event(1))
        return numpyro.deterministic(name, scale)

    sigma = scales("sigma_main", spec.main_scale)
    z_m = numpyro.sample("z_main", dist.Normal(0.0, 1.0).expand([sum(sizes_m)]).to_event(1))
    main = jnp.asarray(spec.main_loc, jnp.float32) + sigma[_segments(sizes_m)] * z_m
    if attributes.shape[1]:
        beta = numpyro.sample(
            "beta",
            dist.Normal(
                jnp.asarray(spec.beta_loc, jnp.float32), jnp.asarray(spec.beta_scale, jnp.float32)
            ).to_event(1),
        )
        main = main + attributes @ beta
    main = numpyro.deterministic("main", main)
    if prior.pairwise and sizes_p:
        tau = scales("tau_pair", spec.pair_scale)
        z_p = numpyro.sample("z_pair", dist.Normal(0.0, 1.0).expand([sum(sizes_p)]).to_event(1))
        pair = jnp.asarray(spec.pair_loc, jnp.float32) + tau[_segments(sizes_p)] * z_p
        pair = numpyro.deterministic("pair", pair)
    else:
        pair = jnp.zeros((0,))
    params = unflatten_effects(b0, main, pair, cardinalities)
    if num_segments:
        params = _sample_segment_terms(params, cardinalities, prior, num_segments)
    eta = logits(params, layouts, segments)
    _likelihood(eta, impressions, clicks, prior.link, age, delay, delay_counts)


def _sample_segment_terms(params, cardinalities, prior: PriorConfig, G: int) -> Params:
    K = len(cardinalities)
    sizes_m, sizes_p = segment_effect_sizes(cardinalities, G, prior)
    w_c = numpyro.sample("omega_intercept", dist.HalfNormal(prior.segment_scale))
    z_c = numpyro.sample("z_segment_intercept", dist.Normal(0.0, 1.0).expand([G]).to_event(1))
    c = numpyro.deterministic("segment_intercept", w_c * z_c)
    omega = numpyro.sample(
        "omega_main", dist.HalfNormal(prior.segment_scale).expand([K]).to_event(1)
    )
    z_d = numpyro.sample("z_segment_main", dist.Normal(0.0, 1.0).expand([sum(sizes_m)]).to_event(1))
    d = numpyro.deterministic("segment_main", omega[_segments(sizes_m)] * z_d)
    q = jnp.zeros((0,))
    if sizes_p:
        ups = numpyro.sample(
            "upsilon_pair", dist.HalfNormal(prior.pair_scale).expand([len(sizes_p)]).to_event(1)
        )
        z_q = numpyro.sample(
            "z_segment_pair", dist.Normal(0.0, 1.0).expand([sum(sizes_p)]).to_event(1)
        )
        q = numpyro.deterministic("segment_pair", ups[_segments(sizes_p)] * z_q)
    return unflatten_segment_effects(params, c, d, q, cardinalities, G)
