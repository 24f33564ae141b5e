"""The additive + pairwise model of click-through: one ``logits`` function and its priors.

For a layout ``x = (x_1, ..., x_K)``::

    eta(x) = b0 + sum_k m_k[x_k] + sum_{k<l} p_kl[x_k, x_l]
    clicks ~ Binomial(impressions, inv_link(eta))          link: logit (default) or probit

with hierarchical, non-centred priors::

    b0 ~ Normal(logit(base_rate), intercept_scale)
    sigma_k ~ HalfNormal(main_scale),   m_k = sigma_k * z_k,    z_k ~ Normal(0, 1)
    tau_kl  ~ HalfNormal(pair_scale),   p_kl = tau_kl * z_kl,   z_kl ~ Normal(0, 1)

With segments (context variables declared in the space; ``s`` is a segment code)::

    eta(x, s) = eta(x) + c[s] + sum_k d_k[s, x_k]   (+ sum_{k<l} q_kl[s, x_k, x_l] optionally)
    omega_c ~ HalfNormal(segment_scale),   c = omega_c * z_c
    omega_k ~ HalfNormal(segment_scale),   d_k = omega_k * z_dk    (partial pooling)
    upsilon_kl ~ HalfNormal(pair_scale),   q_kl = upsilon_kl * z_qkl  (``segment_pairs``)

A component-level mean ``mu_k`` (DESIGN.md) is not a separate parameter: any shift common to
all variants of a component is absorbed by ``b0``, and a second copy would only make the
posterior improper along that direction.

:func:`logits` is the single place eta is computed; the NumPyro model, the Laplace fit, the
grid scorer, the optimiser and the simulator all call it.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.scipy.special import log_ndtr, ndtr

# PriorConfig lives in priors.py with the meta-priors; re-exported here for old imports.
from layoutopt.priors import BASE_RATE_RANGE, SCALE_RANGE, PriorConfig, PriorSpec  # noqa: F401

__all__ = [
    "Params",
    "PriorConfig",
    "logits",
    "inv_link",
    "log_likelihood",
    "pair_list",
    "effect_sizes",
    "flatten_effects",
    "unflatten_effects",
    "numpyro_model",
    "numpyro_model_spec",
    "zero_params",
    "fold_segment",
    "has_segments",
    "segment_effect_sizes",
    "unflatten_segment_effects",
]

LINKS = ("logit", "probit")


class Params(NamedTuple):
    """Model parameters as a pytree (optionally with leading batch axes, e.g. draws).

    Attributes:
        intercept: ``b0``, shape ``(...)``.
        main: tuple of K arrays; ``main[k]`` has shape ``(..., n_k)`` (effects ``m_k``).
        pair: tuple of K(K-1)/2 arrays in :func:`pair_list` order; ``pair[i]`` for the pair
            ``(k, l)`` has shape ``(..., n_k, n_l)``. Empty for the additive-only model.
        segment_intercept: segment intercepts ``c``, shape ``(..., G)`` for G segments;
            ``None`` without segments.
        segment_main: segment deviations: K arrays, ``segment_main[k]`` of shape
            ``(..., G, n_k)`` (``d_k``); empty without segments.
        segment_pair: segment-specific pair deviations ``q_kl``, ``(..., G, n_k, n_l)`` in
            :func:`pair_list` order; empty unless segment-specific pair tables were asked for.
    """

    intercept: jax.Array
    main: tuple[jax.Array, ...]
    pair: tuple[jax.Array, ...]
    segment_intercept: jax.Array | None = None
    segment_main: tuple[jax.Array, ...] = ()
    segment_pair: tuple[jax.Array, ...] = ()


def pair_list(num_components: int) -> list[tuple[int, int]]:
    """The component pairs ``(k, l)``, ``k < l``, in the order used by ``Params.pair``."""
    return list(itertools.combinations(range(num_components), 2))


def logits(params: Params, layouts: jax.Array, segments: jax.Array | None = None) -> jax.Array:
    """Linear predictor eta for layouts: K + K(K-1)/2 table look-ups each, no one-hot.

    ``eta(x, s) = b0 + sum_k m_k[x_k] + sum_{k<l} p_kl[x_k, x_l]
    + c[s] + sum_k d_k[s, x_k] (+ sum_{k<l} q_kl[s, x_k, x_l])``

    The segment terms are added only when ``params`` has them; without them the sum (and its
    float order) is exactly the segment-free model's.

    Args:
        params: unbatched :class:`Params` (vmap over draws at the call site).
        layouts: integer variant codes, shape ``(..., K)``.
        segments: integer segment codes, shape ``layouts.shape[:-1]``; required when
            ``params`` has segment terms, ignored otherwise.

    Returns:
        eta with shape ``layouts.shape[:-1]``.
    """
    eta = jnp.asarray(params.intercept) + jnp.zeros(layouts.shape[:-1])
    for k, m in enumerate(params.main):
        eta = eta + m[layouts[..., k]]
    if params.pair:
        pairs = pair_list(len(params.main))
        for (k, l), p in zip(pairs, params.pair, strict=True):
            eta = eta + p[layouts[..., k], layouts[..., l]]
    if has_segments(params):
        if segments is None:
            raise ValueError(
                "params have segment terms: pass segments= (segment codes), or fold one "
                "segment in with fold_segment()"
            )
        eta = eta + params.segment_intercept[segments]
        for k, d in enumerate(params.segment_main):
            eta = eta + d[segments, layouts[..., k]]
        if params.segment_pair:
            pairs = pair_list(len(params.main))
            for (k, l), q in zip(pairs, params.segment_pair, strict=True):
                eta = eta + q[segments, layouts[..., k], layouts[..., l]]
    return eta


def has_segments(params: Params) -> bool:
    """Whether ``params`` carry segment terms (``segment_intercept`` is not None)."""
    return getattr(params, "segment_intercept", None) is not None


def fold_segment(params: Params, segment: int) -> Params:
    """Ordinary :class:`Params` of one segment: its terms folded into intercept and tables.

    ``b0 + c[s]``, ``m_k + d_k[s]`` and ``p_kl + q_kl[s]``, so that
    ``logits(fold_segment(params, s), x) == logits(params, x, s)`` (up to float rounding) and
    every segment-free consumer (grid kernel, optimiser) scores segment ``s`` unchanged.
    Works with or without leading draw axes. Params without segment terms come back as they
    are.

    Args:
        params: :class:`Params`, possibly batched over draws.
        segment: the segment code (Python int).

    Returns:
        :class:`Params` without segment terms.
    """
    if not has_segments(params):
        return params
    s = int(segment)
    intercept = params.intercept + params.segment_intercept[..., s]
    main = tuple(m + d[..., s, :] for m, d in zip(params.main, params.segment_main, strict=True))
    pair = params.pair
    if params.segment_pair:
        pair = tuple(p + q[..., s, :, :] for p, q in zip(pair, params.segment_pair, strict=True))
    return Params(intercept, main, pair)


def inv_link(eta: jax.Array, link: str = "logit") -> jax.Array:
    """Click-through rate from the linear predictor."""
    if link == "logit":
        return jax.nn.sigmoid(eta)
    if link == "probit":
        return ndtr(eta)
    raise ValueError(f"link must be one of {LINKS}, got {link!r}")


def log_likelihood(
    eta: jax.Array,
    impressions: jax.Array,
    clicks: jax.Array,
    link: str = "logit",
    exposure: jax.Array | None = None,
) -> jax.Array:
    """Binomial log-likelihood per row, without the constant log binomial coefficient.

    With ``exposure`` ``F`` (the share of eventual clicks already observable, see
    :mod:`layoutopt.delay`) the success probability is ``inv_link(eta) * F``.
    """
    if link == "logit":
        log_p, log_q = jax.nn.log_sigmoid(eta), jax.nn.log_sigmoid(-eta)
    elif link == "probit":
        log_p, log_q = log_ndtr(eta), log_ndtr(-eta)
    else:
        raise ValueError(f"link must be one of {LINKS}, got {link!r}")
    if exposure is not None:
        # log(1 - p F) = log((1 - p) + p (1 - F)), accurate for p or F near 1; F is kept
        # off 0 (a cohort served this instant) and off 1 in the log1p, where the first
        # branch applies exactly.
        f = jnp.clip(exposure, 1e-12, 1.0)
        below = jnp.minimum(f, 1.0 - 1e-6)
        log_q = jnp.where(f >= 1.0, log_q, jnp.logaddexp(log_q, log_p + jnp.log1p(-below)))
        log_p = log_p + jnp.log(f)
    return clicks * log_p + (impressions - clicks) * log_q


def effect_sizes(cardinalities: tuple[int, ...], pairwise: bool = True) -> tuple[list, list]:
    """Sizes of the flat main and pair effect blocks: ``([n_k], [n_k * n_l])``."""
    main = list(cardinalities)
    pair = (
        [cardinalities[k] * cardinalities[l] for k, l in pair_list(len(cardinalities))]
        if pairwise
        else []
    )
    return main, pair


def flatten_effects(params: Params) -> tuple[jax.Array, jax.Array]:
    """Concatenate main and pair tables into flat vectors (batch axes kept in front)."""
    batch = jnp.shape(params.intercept)
    main = jnp.concatenate([m.reshape(batch + (-1,)) for m in params.main], axis=-1)
    if params.pair:
        pair = jnp.concatenate([p.reshape(batch + (-1,)) for p in params.pair], axis=-1)
    else:
        pair = jnp.zeros(batch + (0,))
    return main, pair


def unflatten_effects(
    intercept: jax.Array, main: jax.Array, pair: jax.Array, cardinalities: tuple[int, ...]
) -> Params:
    """Inverse of :func:`flatten_effects`; ``pair`` of length 0 gives the additive model."""
    batch = jnp.shape(intercept)
    mains, off = [], 0
    for n in cardinalities:
        mains.append(main[..., off : off + n])
        off += n
    pairs = []
    if pair.shape[-1] > 0:
        off = 0
        for k, l in pair_list(len(cardinalities)):
            n = cardinalities[k] * cardinalities[l]
            shape = batch + (cardinalities[k], cardinalities[l])
            pairs.append(pair[..., off : off + n].reshape(shape))
            off += n
    return Params(intercept, tuple(mains), tuple(pairs))


def zero_params(cardinalities: tuple[int, ...], pairwise: bool = True, intercept=0.0) -> Params:
    """All-zero effects (intercept given): a starting point and a shape template."""
    card = cardinalities
    return Params(
        jnp.asarray(intercept, dtype=jnp.float32),
        tuple(jnp.zeros((n,)) for n in card),
        tuple(jnp.zeros((card[k], card[l])) for k, l in pair_list(len(card))) if pairwise else (),
    )


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
    from layoutopt.delay import delay_log_likelihood, weibull_cdf

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


def segment_effect_sizes(
    cardinalities: tuple[int, ...], num_segments: int, prior: PriorConfig
) -> tuple[list, list]:
    """Sizes of the flat segment blocks: ``([G n_k], [G n_k n_l])`` (pairs only with
    ``prior.segment_pairs``)."""
    G = num_segments
    main, pair = effect_sizes(cardinalities, prior.pairwise and prior.segment_pairs)
    return [G * n for n in main], [G * n for n in pair]


def unflatten_segment_effects(
    params: Params,
    intercept: jax.Array,
    main: jax.Array,
    pair: jax.Array,
    cardinalities: tuple[int, ...],
    num_segments: int,
) -> Params:
    """``params`` with the flat segment blocks ``c`` (G,), ``d`` and ``q`` unpacked into it.

    ``main`` holds ``d_k`` for k = 1..K one after the other, each ``(G, n_k)`` row-major;
    ``pair`` the ``q_kl`` ``(G, n_k, n_l)`` in :func:`pair_list` order (length 0: none).
    """
    batch = jnp.shape(intercept)[:-1]
    G = num_segments
    mains, off = [], 0
    for n in cardinalities:
        mains.append(main[..., off : off + G * n].reshape(batch + (G, n)))
        off += G * n
    pairs = []
    if pair.shape[-1] > 0:
        off = 0
        for k, l in pair_list(len(cardinalities)):
            n = G * cardinalities[k] * cardinalities[l]
            shape = batch + (G, cardinalities[k], cardinalities[l])
            pairs.append(pair[..., off : off + n].reshape(shape))
            off += n
    return params._replace(
        segment_intercept=intercept, segment_main=tuple(mains), segment_pair=tuple(pairs)
    )


def _sample_segment_terms(params, cardinalities, prior: PriorConfig, G: int) -> Params:
    import numpyro
    import numpyro.distributions as dist

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
