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
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.scipy.special import log_ndtr, ndtr
from scipy.special import ndtri

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
    "zero_params",
    "fold_segment",
    "has_segments",
    "segment_effect_sizes",
    "unflatten_segment_effects",
]

LINKS = ("logit", "probit")
#: Supported prior scales (sd on the link scale); beyond them the fit loses precision
#: (a scale of 1e12 lets eta reach CTRs of exactly 0 or 1, where the draws become NaN).
SCALE_RANGE = (1e-6, 100.0)
#: Supported prior base rates.
BASE_RATE_RANGE = (1e-6, 1.0 - 1e-6)


def _check_number(name: str, value, low: float, high: float) -> None:
    ok = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
    if not ok or not low <= float(value) <= high:
        raise ValueError(f"{name} must be a number in [{low:g}, {high:g}], got {value!r}")


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


@dataclass(frozen=True)
class PriorConfig:
    """Prior and likelihood settings (frozen and hashable: static configuration).

    Attributes:
        base_rate: prior guess of a typical click-through rate; centres ``b0`` at
            ``link(base_rate)``.
        intercept_scale: prior sd of ``b0`` on the link scale.
        main_scale: scale of the HalfNormal prior on each component's effect sd ``sigma_k``.
        pair_scale: scale of the HalfNormal prior on each pair's interaction sd ``tau_kl``;
            smaller than ``main_scale`` by default because interactions are rarer and weaker.
        link: ``"logit"`` (default) or ``"probit"``.
        pairwise: include the pairwise interaction terms; ``False`` gives the additive model.
        segment_scale: scale of the HalfNormal priors on the segment scales ``omega_c`` (of
            the segment intercepts) and ``omega_k`` (of the segment x component
            deviations); only used when the space has segments.
        segment_pairs: give every segment its own deviation from each pair table (scales
            ``upsilon_kl ~ HalfNormal(pair_scale)``); by default pair tables are shared.
    """

    base_rate: float = 0.05
    intercept_scale: float = 1.5
    main_scale: float = 1.0
    pair_scale: float = 0.5
    link: str = "logit"
    pairwise: bool = True
    segment_scale: float = 0.5
    segment_pairs: bool = False

    def __post_init__(self):
        _check_number("base_rate", self.base_rate, *BASE_RATE_RANGE)
        for name in ("intercept_scale", "main_scale", "pair_scale", "segment_scale"):
            _check_number(name, getattr(self, name), *SCALE_RANGE)
        if self.link not in LINKS:
            raise ValueError(f"link must be one of {LINKS}, got {self.link!r}")

    @property
    def intercept_loc(self) -> float:
        """Prior mean of ``b0``: the base rate on the link scale."""
        if self.link == "logit":
            return float(np.log(self.base_rate / (1.0 - self.base_rate)))

        return float(ndtri(self.base_rate))


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
    eta: jax.Array, impressions: jax.Array, clicks: jax.Array, link: str = "logit"
) -> jax.Array:
    """Binomial log-likelihood per row, without the constant log binomial coefficient."""
    if link == "logit":
        log_p, log_q = jax.nn.log_sigmoid(eta), jax.nn.log_sigmoid(-eta)
    elif link == "probit":
        log_p, log_q = log_ndtr(eta), log_ndtr(-eta)
    else:
        raise ValueError(f"link must be one of {LINKS}, got {link!r}")
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
    prior: PriorConfig = PriorConfig(),
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
    if clicks is None:
        numpyro.sample("clicks", dist.Binomial(impressions, probs=inv_link(eta, prior.link)))
    else:
        numpyro.factor("loglik", log_likelihood(eta, impressions, clicks, prior.link).sum())


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
