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
from jax.scipy.special import log_ndtr, ndtr

__all__ = [
    "Params",
    "logits",
    "inv_link",
    "log_likelihood",
    "loglik_eta_derivatives",
    "pair_list",
    "effect_sizes",
    "flatten_effects",
    "unflatten_effects",
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
    :mod:`layoutopt.model.delay`) the success probability is ``inv_link(eta) * F``.
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


def segment_effect_sizes(
    cardinalities: tuple[int, ...], num_segments: int, prior
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


def loglik_eta_derivatives(eta, impressions, clicks, link, exposure=None):
    """Per-row gradient and negative second derivative of the log-likelihood in eta."""
    exact = exposure is None
    if exact:
        exposure = jnp.ones_like(eta)

    def row(e, n, y, f):
        return log_likelihood(e, n, y, link, None if exact else f)

    d1 = jax.vmap(jax.grad(row))(eta, impressions, clicks, exposure)
    d2 = jax.vmap(jax.grad(jax.grad(row)))(eta, impressions, clicks, exposure)
    # Both links give a log-concave likelihood, so -d2 >= 0 up to rounding; clipping keeps
    # rounding noise from making H indefinite. For the logit link this is the Fisher weight
    # n mu (1 - mu); for probit it is the observed information (exact Newton).
    return d1, jnp.maximum(-d2, 0.0)
