"""Fitting the additive + pairwise model: Laplace (empirical Bayes), NUTS and SVI.

:func:`fit` is the single entry point. All three methods return a :class:`Posterior` whose
``params`` carry a leading axis of posterior draws, so everything downstream (scoring,
optimisation, proposals) is indifferent to how the posterior was obtained.

``"laplace"`` is the fast path. For fixed hyper-scales the effects have Gaussian priors::

    b0 ~ N(link(base_rate), intercept_scale^2)
    m_k ~ N(0, sigma_k^2 I),   p_kl ~ N(0, tau_kl^2 I)

so the posterior mode is found by Newton steps on a log-concave objective (both the logit
and the probit binomial log-likelihoods are concave in eta). The scales ``sigma_k`` and
``tau_kl`` are set by empirical Bayes: between Newton steps they move to the maximiser of
the Laplace-approximated evidence times their HalfNormal hyperprior (type-II MAP), using
MacKay's fixed point. The whole alternation is one ``lax.while_loop`` inside one jitted
function, cached per problem shape; draws come from ``N(mode, H^-1)`` at convergence.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.scipy.linalg import cho_solve, solve_triangular
from numpyro.diagnostics import effective_sample_size, split_gelman_rubin
from numpyro.infer import MCMC, NUTS, SVI, Predictive, Trace_ELBO, init_to_median
from numpyro.infer.autoguide import (
    AutoLowRankMultivariateNormal,
    AutoMultivariateNormal,
    AutoNormal,
)
from numpyro.optim import optax_to_numpyro

from layoutopt.data.observations import Observations
from layoutopt.infer import lowrank
from layoutopt.infer.delay import estimate_delay
from layoutopt.infer.meta import MetaPrior
from layoutopt.infer.posterior import GaussianPosterior, Posterior
from layoutopt.model.core import (
    Params,
    effect_sizes,
    log_likelihood,
    logits,
    loglik_eta_derivatives,
    pair_list,
    segment_effect_sizes,
    unflatten_effects,
    unflatten_segment_effects,
)
from layoutopt.model.delay import Weibull, check_delay
from layoutopt.model.numpyro_model import numpyro_model, numpyro_model_spec
from layoutopt.model.priors import PriorConfig, PriorSpec, attribute_design
from layoutopt.model.space import LayoutSpace
from layoutopt.util.arrays import pow2_at_least
from layoutopt.util.limits import LAPLACE_MAX_PARAMS, check_fit_size, check_seed, fit_size

__all__ = [
    "fit",
    "FitWarning",
    "LaplaceOptions",
    "METHODS",
    "NutsOptions",
    "SviOptions",
    "default_prior",
]

METHODS = ("laplace", "nuts", "svi")

# NUTS health thresholds. r_hat 1.05 rather than Vehtari et al.'s 1.01 because the default
# runs are short (a few hundred draws per chain), where split-r_hat itself fluctuates by
# about 0.01-0.02 even for a healthy sampler.
_MAX_R_HAT = 1.05
_MIN_ESS = 100.0

# How often a fit traced the Laplace kernel; tests use it to check that repeated fits of
# the same problem shape reuse the compiled function.
TRACE_COUNTS = {"laplace": 0}


class FitWarning(UserWarning):
    """A fit finished but its diagnostics say the draws may not be trustworthy."""


@dataclass(frozen=True)
class LaplaceOptions:
    """Options of ``fit(method="laplace")``.

    Attributes:
        max_iter: cap on Newton / empirical-Bayes iterations.
        tol: stop when the Newton step and the change of every hyper-scale, in units of its
            hyperprior scale, are below it; a final Newton step then polishes the mode.
        scale_floor: hyper-scales never fall below this fraction of their hyperprior scale.
        scales: ``"pooled"`` (one empirical-Bayes scale shared by all main effects and one
            by all pair effects) or ``"per_group"`` (one per component and per pair, as in
            the NumPyro model). Per-group point estimates from a small design collapse
            towards zero for many groups, which made 90% intervals on untested layouts cover
            only ~70% of true CTRs in the extrapolation study; pooled scales covered ~90%
            (``experiments/README.md``).
        solver: ``"auto"`` (``"lowrank"`` where the dense solver is refused, above
            ``limits.LAPLACE_MAX_PARAMS`` parameters, when fewer rows were observed than
            there are parameters; else ``"dense"``), ``"dense"`` (the P x P Hessian and its
            Cholesky factor) or ``"lowrank"`` (Woodbury over the N observed rows, never
            forming the P x P Hessian: exact, O(N^3 + C N^2) per iteration instead of
            O(P^3); up to ``limits.LAPLACE_LOWRANK_MAX_PARAMS`` parameters and
            ``limits.LAPLACE_LOWRANK_MAX_ROWS`` rows; no segments, variant attributes,
            meta-prior or delay model; see ``layoutopt.infer.lowrank``).
    """

    max_iter: int = 500
    tol: float = 1e-3
    scale_floor: float = 1e-3
    scales: str = "pooled"
    solver: str = "auto"

    def __post_init__(self):
        if self.solver not in LAPLACE_SOLVERS:
            raise ValueError(
                f"laplace option solver={self.solver!r} is not valid; valid: {LAPLACE_SOLVERS}"
            )
        if self.scales not in LAPLACE_SCALES:
            raise ValueError(
                f"laplace option scales={self.scales!r} is not valid; valid: {list(LAPLACE_SCALES)}"
            )
        if self.max_iter < 1 or not self.tol > 0 or not 0 < self.scale_floor < 1:
            raise ValueError(
                f"laplace options need max_iter >= 1, tol > 0, 0 < scale_floor < 1; got "
                f"max_iter={self.max_iter}, tol={self.tol}, scale_floor={self.scale_floor}"
            )


#: ``NutsOptions.chain_method`` values (as ``numpyro.infer.MCMC`` names them).
NUTS_CHAIN_METHODS = ("sequential", "vectorized", "parallel")


@dataclass(frozen=True)
class NutsOptions:
    """Options of ``fit(method="nuts")``.

    Attributes:
        target_accept_prob: NUTS step-size adaptation target, in (0, 1).
        max_tree_depth: cap on the trajectory doubling (>= 1).
        chain_method: how ``numpyro.infer.MCMC`` runs the chains: ``"sequential"`` (one
            after another, no extra devices), ``"vectorized"`` (one ``vmap``-ed sampler:
            every step runs the longest tree among the chains) or ``"parallel"``
            (``pmap`` over devices; NumPyro falls back to sequential with a warning when
            there are fewer devices than chains). The chains start from the same keys in
            every mode, but the draws of different modes are not bit-identical.
            Vectorized is the default: with 4 chains on the demo model and 2 CPU cores it
            was 1.7x faster per fit (median over seeds; 0.8x on one seed whose chains
            differed in tree depth) and 1.4x in CPU time (``benchmarks/bench_fit.py``,
            ``benchmarks/README.md``).
    """

    target_accept_prob: float = 0.9
    max_tree_depth: int = 10
    chain_method: str = "vectorized"

    def __post_init__(self):
        if self.chain_method not in NUTS_CHAIN_METHODS:
            raise ValueError(
                f"nuts option chain_method={self.chain_method!r} is not valid; valid: "
                f"{NUTS_CHAIN_METHODS}"
            )
        if not 0 < self.target_accept_prob < 1 or self.max_tree_depth < 1:
            raise ValueError(
                f"nuts options need 0 < target_accept_prob < 1 and max_tree_depth >= 1; got "
                f"target_accept_prob={self.target_accept_prob}, "
                f"max_tree_depth={self.max_tree_depth}"
            )


@dataclass(frozen=True)
class SviOptions:
    """Options of ``fit(method="svi")``.

    Attributes:
        guide: ``"auto"`` (``"full"`` up to 2,000 latent dimensions, else ``"lowrank"``),
            ``"full"``, ``"lowrank"`` or ``"diag"``.
        num_steps: optimisation steps.
        learning_rate: Adam step size, cosine-decayed to 1% of it.
        rank: low-rank guide rank (None: NumPyro's default).
        num_particles: ELBO particles per step.
    """

    guide: str = "auto"
    num_steps: int = 5000
    learning_rate: float = 0.02
    rank: int | None = None
    num_particles: int = 1

    def __post_init__(self):
        if self.guide not in _GUIDES + ("auto",):
            raise ValueError(
                f"unknown guide {self.guide!r}; valid guides: {list(_GUIDES + ('auto',))}"
            )
        if self.num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {self.num_steps}")


OPTIONS = {"laplace": LaplaceOptions, "nuts": NutsOptions, "svi": SviOptions}


# --------------------------------------------------------------------------- public entry
def default_prior(observations: Observations) -> PriorConfig:
    """The prior :func:`fit` uses when none is given.

    ``PriorConfig()`` with ``base_rate`` set to the pooled observed click-through rate
    ``clicks.sum() / impressions.sum()``, clipped to ``[1e-4, 0.5]`` (the default 0.05 when
    there are no impressions). Centring ``b0`` on the data keeps the intercept prior from
    fighting the likelihood when the true rate is far from 5%; the clip keeps the prior
    sensible for a dataset with no clicks.

    Args:
        observations: the data to be fitted.

    Returns:
        A :class:`PriorConfig`.

    Examples:
        >>> prior = default_prior(obs)  # doctest: +SKIP
    """
    total = float(np.sum(observations.impressions))
    if total <= 0:
        return PriorConfig()
    rate = float(np.sum(observations.clicks)) / total
    return PriorConfig(base_rate=float(np.clip(rate, 1e-4, 0.5)))


def fit(
    space: LayoutSpace,
    observations: Observations,
    method: str = "laplace",
    seed: int = 0,
    num_samples: int = 1000,
    prior: PriorConfig | MetaPrior | None = None,
    num_chains: int = 4,
    num_warmup: int = 500,
    progress: bool = False,
    options: LaplaceOptions | NutsOptions | SviOptions | None = None,
    delay: Weibull | str | None = None,
    half_life: float | None = None,
) -> Posterior:
    """Fit the additive + pairwise click-through model and return posterior draws.

    ``eta(x) = b0 + sum_k m_k[x_k] + sum_{k<l} p_kl[x_k, x_l]``,
    ``clicks ~ Binomial(impressions, inv_link(eta))``.

    When the space declares variant attributes, ``m_k[v] = a_k(v) . beta_k + e_k[v]`` with
    ``beta ~ N(0, attribute_scale^2)`` (or the meta-prior's groups) and the residuals
    ``e_k`` under the hierarchical prior above; ``params.main`` holds the composed ``m_k``
    and ``hyper["beta"]`` the coefficient draws ``(S, B)``, named as in
    :func:`layoutopt.model.priors.attribute_design`. Without attributes the model and its
    numbers are exactly those of the model without them.

    Args:
        space: the layout space.
        observations: aggregated click data on ``space``.
        method: ``"laplace"`` (mode + Gaussian, hyper-scales by empirical Bayes; fast),
            ``"nuts"`` (NumPyro NUTS; the reference answer) or ``"svi"`` (NumPyro SVI with
            a Gaussian guide; for large parameter counts).
        seed: seed of every random choice; the same seed gives identical draws.
        num_samples: total number of posterior draws S over all chains. NUTS runs
            ``ceil(num_samples / num_chains)`` draws per chain, so S may round up to a
            multiple of ``num_chains``.
        prior: prior settings; ``None`` means :func:`default_prior` (``PriorConfig()``
            with ``base_rate`` at the pooled observed CTR, clipped to ``[1e-4, 0.5]``). A
            :class:`~layoutopt.MetaPrior` (learned from past campaigns) fixes every
            parameter's prior at its group's mean and variance instead; the Laplace fit
            then learns no scales (``scales`` is ignored).
        num_chains: NUTS chains (ignored by the other methods).
        num_warmup: NUTS warm-up steps per chain (ignored by the other methods).
        progress: show NumPyro's progress bar (NUTS, SVI).
        options: the method's options, :class:`LaplaceOptions`, :class:`NutsOptions` or
            :class:`SviOptions` (None: that type's defaults).
        delay: click-delay model for observations with an ``age`` column (hours since
            served): ``None`` (every click is in), a :class:`~layoutopt.model.delay.Weibull` or
            :class:`~layoutopt.model.delay.Exponential` with given parameters, or ``"auto"``: a
            Weibull learned from the observed delays of matured clicks
            (``observations.delay_counts``, see ``Observations.from_events``) jointly with
            right-censored young cohorts. A cohort's likelihood is
            ``Binomial(n, inv_link(eta) * F(age))``. NUTS and SVI sample the Weibull
            (``delay_shape``, ``delay_scale``) with the effects; Laplace first estimates it
            by maximum likelihood with a free CTR per observed layout
            (:func:`~layoutopt.model.delay.estimate_delay`), then fits with ``F`` fixed there.
        half_life: discount older evidence: a row ``a`` rounds (or, without a ``round``
            column, ``a`` hours of ``age``) older than the newest data enters the
            likelihood raised to the power ``w = 0.5 ** (a / half_life)`` -- a power prior,
            ``p(theta | data) ~ p(theta) prod_i L_i(theta) ** w_i``, equivalent to
            impressions and clicks scaled by ``w``. Intervals widen accordingly, since old
            data count for less. ``None`` weighs all data equally. The delay histogram of
            ``delay="auto"`` is not discounted (the delay is assumed not to drift).

    Returns:
        A :class:`Posterior` with S draws, hyper-parameters (``sigma_main`` ``(S, K)``,
        ``tau_pair`` ``(S, K(K-1)/2)``; constant over draws for Laplace, where they are
        point estimates) and ``diagnostics``:

        - laplace: ``converged``, ``iterations``, ``log_evidence`` (Laplace approximation
          of ``log p(clicks | hyper-scales)`` without the binomial coefficients, plus the
          hyperprior log density), ``newton_decrement`` at the returned mode.
        - nuts: ``max_r_hat``, ``min_ess`` (over intercept and effects),
          ``num_divergences``.
        - svi: ``final_loss`` (mean ELBO loss over the last 5% of steps).
        - with ``delay`` or ``half_life``: ``delay`` (the delay used, "(estimated)" for a
          Laplace ``"auto"``) and ``half_life``; ``hyper`` gains ``delay_shape`` and
          ``delay_scale`` ``(S,)`` (draws for NUTS/SVI ``"auto"``, constants for Laplace).

    Raises:
        ValueError: for an unknown method, observations from another space, non-positive
            ``num_samples`` / ``num_chains``, negative ``num_warmup``, options of another
            method's type, a seed outside ``[0, 2**32 - 1]``, a model too large for the
            method (see :func:`layoutopt.util.limits.check_fit_size`; nothing is started), a
            fit whose draws are not finite, a ``delay`` without an ``age`` column (or
            ``"auto"`` without delay counts), or a ``half_life`` that is not a positive
            number or without ``round``/``age``.

    Warns:
        FitWarning: when NUTS has ``max_r_hat > 1.05``, ``min_ess < 100`` or divergences,
            or when the Laplace iteration did not converge.

    Examples:
        >>> post = fit(space, obs, method="laplace", seed=0)  # doctest: +SKIP
        >>> post.num_draws  # doctest: +SKIP
        1000

    References:
        MacKay, *Bayesian interpolation* (Neural Computation 1992) for the evidence fixed
        point; Hoffman & Gelman, *The No-U-Turn Sampler* (JMLR 2014); Vehtari et al.,
        *Rank-normalization, folding, and localization: an improved R-hat* (2021).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid methods: {list(METHODS)}")
    if not isinstance(space, LayoutSpace):
        raise ValueError(f"space must be a LayoutSpace, got {type(space).__name__}")
    if not isinstance(observations, Observations):
        raise ValueError(f"observations must be an Observations, got {type(observations).__name__}")
    if observations.space != space:
        raise ValueError(
            f"observations belong to a different space ({observations.space!r}) than the "
            f"one being fitted ({space!r}); build them with Observations.from_codes(space, ...)"
        )
    for name, value, low in (
        ("num_samples", num_samples, 1),
        ("num_chains", num_chains, 1),
        ("num_warmup", num_warmup, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    time = _time_setup(observations, check_delay(delay), half_life)
    prior, spec = _resolve_prior(space, observations, prior)
    if options is None:
        options = OPTIONS[method]()
    elif not isinstance(options, OPTIONS[method]):
        raise ValueError(
            f"method {method!r} takes options={OPTIONS[method].__name__}(...), got "
            f"{type(options).__name__}"
        )
    seed = check_seed(seed)
    check_fit_size(
        space.cardinalities,
        observations.num_layouts,
        _size_method(method, options, space, observations, prior, spec, time),
        int(num_samples),
        prior.pairwise,
        guide=getattr(options, "guide", "auto"),
    )
    if method == "laplace":
        post = _fit_laplace(
            space, observations, prior, int(seed), int(num_samples), options, time=time, spec=spec
        )
        return _checked(post)
    if method == "nuts":
        post = _fit_nuts(
            space,
            observations,
            prior,
            int(seed),
            int(num_samples),
            int(num_chains),
            int(num_warmup),
            progress,
            options,
            time=time,
            spec=spec,
        )
        return _checked(post)
    post = _fit_svi(
        space,
        observations,
        prior,
        int(seed),
        int(num_samples),
        progress,
        options,
        time=time,
        spec=spec,
    )
    return _checked(post)


def _checked(post: Posterior) -> Posterior:
    """Refuse a fit whose draws are not finite: it must never be written or used."""
    try:
        post.check_finite()
    except ValueError as err:
        raise ValueError(f"fit failed: {err}") from None
    return post


class _Time(NamedTuple):
    """Delay and drift inputs of a fit: weighted counts, ages and the delay model."""

    impressions: np.ndarray
    clicks: np.ndarray
    age: np.ndarray | None
    delay: Weibull | str | None
    delay_counts: np.ndarray | None
    half_life: float | None


def _time_setup(observations: Observations, delay, half_life) -> _Time | None:
    """Validate ``delay``/``half_life`` against the data; None when neither is used."""
    if delay is None and half_life is None:
        return None
    obs = observations
    if delay is not None and obs.age is None:
        raise ValueError(
            "delay needs observations with an 'age' column (hours since served); "
            "aggregate an event log with Observations.from_events or add 'age'"
        )
    if delay == "auto" and not obs.has_delays:
        raise ValueError(
            "delay='auto' learns the delay from observed click delays, but these "
            "observations carry none (counts, or a log with a 0/1 clicked column: no click "
            "times); use Observations.from_events on a log with clicked_at, or give the "
            "delay, e.g. delay=Exponential(rate=0.1)"
        )
    weight = np.ones(obs.num_rows)
    if half_life is not None:
        if (
            isinstance(half_life, bool)
            or not isinstance(half_life, int | float | np.number)
            or not (np.isfinite(half_life) and half_life > 0)
        ):
            raise ValueError(f"half_life must be a positive number, got {half_life!r}")
        if obs.round is not None:
            older = obs.round.max() - obs.round
        elif obs.age is not None:
            older = obs.age - obs.age.min()
        else:
            raise ValueError(
                "half_life needs observations with a 'round' column (or 'age' in hours)"
            )
        weight = 0.5 ** (older / float(half_life))
    return _Time(
        obs.impressions * weight,
        obs.clicks * weight,
        obs.age,
        delay,
        obs.delay_counts,
        None if half_life is None else float(half_life),
    )


def _resolve_delay(observations: Observations, time: _Time | None) -> Weibull | None:
    """The delay a Laplace fit holds fixed: the given one or the ML estimate for "auto"."""
    if time is None or time.delay is None:
        return None
    if time.delay != "auto":
        return time.delay
    _, group = np.unique(observations.codes, axis=0, return_inverse=True)
    return estimate_delay(
        group.reshape(-1), time.impressions, time.clicks, time.age, time.delay_counts
    )


def _time_outputs(time: _Time | None, delay: Weibull | None, num_samples: int):
    """Hyper draws and diagnostics recording the delay and half-life a fit used."""
    if time is None:
        return {}, {}
    diagnostics = {"half_life": time.half_life, "delay": repr(time.delay)}
    hyper = {}
    if delay is not None:
        diagnostics["delay"] = repr(delay) + (" (estimated)" if time.delay == "auto" else "")
        for name, value in zip(("delay_shape", "delay_scale"), delay.weibull, strict=True):
            hyper[name] = np.full(num_samples, value, np.float32)
    return hyper, diagnostics


def _resolve_prior(space, observations, prior) -> tuple[PriorConfig, PriorSpec | None]:
    """The recorded PriorConfig and, when attributes or a meta-prior need one, a PriorSpec.

    ``None`` as the spec keeps the fit on the original code path (no attributes, default
    prior), so its numbers are exactly those of the model without attributes.
    """
    if prior is None:
        prior = default_prior(observations)
    if isinstance(prior, MetaPrior):
        return prior.config(), prior.spec(space)
    if not isinstance(prior, PriorConfig):
        raise ValueError(
            f"prior must be a PriorConfig, a MetaPrior or None, got {type(prior).__name__}"
        )
    return prior, (prior.spec(space) if space.has_attributes else None)


def _num_hypers(space: LayoutSpace, pairwise: bool) -> tuple[int, int]:
    K = space.num_components
    return K, (K * (K - 1) // 2 if pairwise else 0)


def _params_from_flat(intercept, main, pair, cardinalities, dtype=np.float32) -> Params:
    # Contiguous host copies: slices of one big array would keep it alive and complicate I/O.
    p = unflatten_effects(np.asarray(intercept), np.asarray(main), np.asarray(pair), cardinalities)
    return jax.tree.map(lambda a: np.ascontiguousarray(a, dtype=dtype), p)


# ------------------------------------------------------------------------------ Laplace
class LaplaceState(NamedTuple):
    """Loop state of the Laplace / empirical-Bayes iteration.

    Attributes:
        theta: flat parameters ``[b0, main effects, pair effects]``, shape ``(P,)``.
        log_var: log hyper-variances ``[log sigma_k^2..., log tau_kl^2...]``, shape ``(G,)``.
        iteration: number of completed Newton + hyper-scale updates.
        step: largest change of ``theta`` or of a hyper-scale (in units of its hyperprior
            scale) in the last update.
        phase: 0 while searching, 1 polishing the mode at fixed scales, 2 recording the
            curvature at the mode, 3 done.
        eta, grad, chol, d, prec: the Newton system last evaluated (linear predictor,
            log-posterior gradient, Cholesky factor of the Jacobi-scaled Hessian, the
            scaling ``sqrt(diag H)``, prior precisions); at phase 3 they are those at the
            returned mode.
    """

    theta: jax.Array
    log_var: jax.Array
    iteration: jax.Array
    step: jax.Array
    phase: jax.Array
    eta: jax.Array
    grad: jax.Array
    chol: jax.Array
    d: jax.Array
    prec: jax.Array


class _PriorArrays(NamedTuple):
    """Per-parameter prior and design extras of the Laplace kernel (traced arrays).

    Attributes:
        prior_mean: ``(P,)`` prior mean of every flat parameter (the intercept's is ignored
            in favour of ``intercept_loc``).
        learn: ``(G,)`` bool, whether each hyper-scale group is learned by empirical Bayes.
        design_values: ``(N, C)`` value of each active design column (1 for one-hot
            columns, ``a_k(x_k)`` for attribute columns).
        attributes: ``(sum n_k, B)`` block-diagonal attribute design.
    """

    prior_mean: jax.Array
    learn: jax.Array
    design_values: jax.Array
    attributes: jax.Array


class _Structure(NamedTuple):
    """Static description of the flat parameter vector (hashable: a jit static arg)."""

    cardinalities: tuple[int, ...]
    pairwise: bool
    link: str
    num_segments: int = 0
    segment_pairs: bool = False


def design_indices(
    codes: np.ndarray,
    cardinalities: tuple[int, ...],
    pairwise: bool,
    segments: np.ndarray | None = None,
    num_segments: int = 0,
    segment_pairs: bool = False,
):
    """Column of each active one-hot entry per layout, ``(N, 1 + K + K(K-1)/2)`` int32.

    The column order is that of ``[b0, flatten_effects(params)]``, so the Hessian built
    from these indices matches the gradient that autodiff takes through ``logits``. With
    segments the row also touches its segment's ``c[s]``, ``d_k[s, x_k]`` (and ``q_kl``)
    columns, laid out after the pair block as :func:`unflatten_segment_effects` reads them.
    """
    codes = np.asarray(codes, dtype=np.int64)
    sizes_m, sizes_p = effect_sizes(cardinalities, pairwise)
    off_m = 1 + np.concatenate([[0], np.cumsum(sizes_m)[:-1]]).astype(np.int64)
    cols = [np.zeros(len(codes), np.int64)]
    cols += [off_m[k] + codes[:, k] for k in range(len(cardinalities))]
    if sizes_p:
        off_p = 1 + sum(sizes_m) + np.concatenate([[0], np.cumsum(sizes_p)[:-1]])
        for i, (k, j) in enumerate(pair_list(len(cardinalities))):
            cols.append(off_p[i] + codes[:, k] * cardinalities[j] + codes[:, j])
    if num_segments:
        cols += _segment_design_columns(
            codes,
            cardinalities,
            pairwise,
            np.asarray(segments, np.int64),
            num_segments,
            segment_pairs,
            1 + sum(sizes_m) + sum(sizes_p),
        )
    return np.stack(cols, axis=1).astype(np.int32)


def _segment_design_columns(codes, card, pairwise, seg, G, segment_pairs, start) -> list:
    cols = [start + seg]
    off = start + G
    for k, n in enumerate(card):
        cols.append(off + seg * n + codes[:, k])
        off += G * n
    if pairwise and segment_pairs:
        for k, j in pair_list(len(card)):
            cols.append(off + (seg * card[k] + codes[:, k]) * card[j] + codes[:, j])
            off += G * card[k] * card[j]
    return cols


LAPLACE_SCALES = ("pooled", "per_group")
LAPLACE_SOLVERS = ("auto", "dense", "lowrank")
#: ``solver="auto"`` picks the low-rank solver above this many parameters, where the dense
#: solver is refused (:func:`layoutopt.util.limits.check_fit_size`). Below it the low-rank solver
#: is often faster too (``benchmarks/README.md``), but only the dense one carries segments,
#: attributes, meta-priors and delays, so it has to be asked for.
LOWRANK_MIN_PARAMS = LAPLACE_MAX_PARAMS


def _size_method(method, options, space, observations, prior, spec, time) -> str:
    """The method name for :func:`layoutopt.util.limits.check_fit_size`: ``"laplace-lowrank"``
    where the low-rank solver will run (its own limits), else ``method``.

    ``solver="auto"`` on a model the low-rank solver cannot fit (segments, attributes, a
    meta-prior, a delay) stays ``"laplace"``: the dense limit then refuses it, naming SVI.
    """
    if method != "laplace":
        return method
    num_params = fit_size(space.cardinalities, 0, "laplace", 0, prior.pairwise).num_params
    solver = laplace_solver(options.solver, num_params, _pad_rows(observations.num_rows))
    unsupported = (
        spec is not None or space.num_segments > 0 or (time is not None and time.delay is not None)
    )
    if solver == "lowrank" and not (unsupported and options.solver == "auto"):
        return "laplace-lowrank"
    return "laplace"


def laplace_solver(solver: str, num_params: int, num_rows: int) -> str:
    """``"dense"`` or ``"lowrank"`` (:mod:`layoutopt.infer.lowrank`) for the option.

    Args:
        solver: ``"auto"``, ``"dense"`` or ``"lowrank"`` (:class:`LaplaceOptions`).
        num_params: parameters P of the model.
        num_rows: (padded) observed rows N.

    Returns:
        The solver: for ``"auto"``, ``"lowrank"`` when ``P > LOWRANK_MIN_PARAMS`` (the dense
        solver's limit) and ``N < P`` (else Woodbury saves nothing), else ``"dense"``.

    Raises:
        ValueError: for an unknown solver, naming the valid ones.
    """
    if solver not in LAPLACE_SOLVERS:
        raise ValueError(f"laplace option solver={solver!r} is not valid; valid: {LAPLACE_SOLVERS}")
    if solver == "auto":
        return "lowrank" if num_params > LOWRANK_MIN_PARAMS and num_rows < num_params else "dense"
    return solver


def _groups(
    cardinalities: tuple[int, ...],
    pairwise: bool,
    scales: str = "pooled",
    num_segments: int = 0,
    segment_pairs: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hyper-scale groups for the Laplace fit.

    Returns ``(group, group_size, kind)``: the group of every flat parameter (-1 marks the
    intercept), the number of effects in each group, and each group's kind (0 main, 1 pair,
    2 segment). ``"per_group"`` gives one scale per component and per pair, as in the NumPyro
    model; ``"pooled"`` one scale for all main effects and one for all pair effects. With
    segments the segment intercepts get a scale of their own (``omega_c``), and the segment
    deviations one per component (``"per_group"``) or one for all (``"pooled"``).
    """
    sizes_m, sizes_p = effect_sizes(cardinalities, pairwise)
    if scales == "per_group":
        sizes = sizes_m + sizes_p
        kind = [0] * len(sizes_m) + [1] * len(sizes_p)
    else:
        sizes = [sum(sizes_m)] + ([sum(sizes_p)] if sizes_p else [])
        kind = [0] + ([1] if sizes_p else [])
    if num_segments:
        prior = PriorConfig(pairwise=pairwise, segment_pairs=segment_pairs)
        seg_m, seg_p = segment_effect_sizes(cardinalities, num_segments, prior)
        if scales == "pooled":
            seg_m, seg_p = [sum(seg_m)], ([sum(seg_p)] if seg_p else [])
        sizes = sizes + [num_segments] + seg_m + seg_p
        kind = kind + [2] * (1 + len(seg_m)) + [1] * len(seg_p)
    group = np.concatenate([[-1], np.repeat(np.arange(len(sizes)), sizes)]).astype(np.int32)
    return group, np.asarray(sizes, np.float64), np.asarray(kind, np.int32)


def _pad_rows(n: int) -> int:
    # Round the row count up to a power of two so that a loop that adds a few layouts per
    # round reuses the compiled kernel instead of recompiling at every new N.
    return pow2_at_least(n, minimum=8)


@partial(jax.jit, static_argnames=("structure",))
def _laplace_kernel(
    codes,
    segs,
    design,
    impressions,
    clicks,
    group,
    group_size,
    hyper_scale,
    intercept_loc,
    intercept_scale,
    scale_floor,
    tol,
    max_iter,
    extra: _PriorArrays,
    exposure=None,
    *,
    structure: _Structure,
):
    # Only the structure (cardinalities, link, pairwise) and array shapes are static, so a
    # loop of fits over growing data, other priors or other draw counts reuses one compile.
    TRACE_COUNTS["laplace"] += 1
    card, link = structure.cardinalities, structure.link
    P = group.shape[0]
    G = group_size.shape[0]
    num_main = sum(card)
    is_b0 = group < 0
    gidx = jnp.maximum(group, 0)
    # theta = [b0, e (residual main effects), pair cells, segment terms, beta (attribute
    # coefficients)]; without attributes beta is empty, the design values are 1 and the
    # means 0, so every number below is what it was before attributes existed.
    end_pair = P - extra.attributes.shape[1]
    prior_mean = jnp.where(is_b0, intercept_loc, extra.prior_mean)
    num_seg = structure.num_segments
    num_pair = (
        sum(effect_sizes(card, structure.pairwise)[1]) if num_seg else end_pair - 1 - num_main
    )

    def unflat(theta):
        main = theta[1 : 1 + num_main] + extra.attributes @ theta[end_pair:]
        pair = theta[1 + num_main : 1 + num_main + num_pair]
        params = unflatten_effects(theta[0], main, pair, card)
        if num_seg:
            params = _segment_params(params, theta[1 + num_main + num_pair : end_pair], structure)
        return params

    def precision(log_var):
        return jnp.where(is_b0, intercept_scale**-2.0, jnp.exp(-log_var)[gidx])

    def newton_system(theta, log_var):
        eta = logits(unflat(theta), codes, segs if num_seg else None)
        d1, w = loglik_eta_derivatives(eta, impressions, clicks, link, exposure)
        prec = precision(log_var)
        values = extra.design_values
        grad = jnp.zeros(P, theta.dtype).at[design].add(d1[:, None] * values)
        grad = grad - prec * (theta - prior_mean)
        # X^T W X from the observed layouts' one-hot rows without building X: each row
        # touches only 1 + K + K(K-1)/2 columns.
        hess = (
            jnp.zeros((P, P), theta.dtype)
            .at[design[:, :, None], design[:, None, :]]
            .add(w[:, None, None] * values[:, :, None] * values[:, None, :])
        )
        hess = hess + jnp.diag(prec)
        # Jacobi scaling: parameter blocks differ in precision by orders of magnitude
        # (prior-only levels vs. heavily observed ones); scaling removes that part of the
        # ill-conditioning before the Cholesky.
        d = jnp.sqrt(jnp.diag(hess))
        chol = jnp.linalg.cholesky(hess / d[:, None] / d[None, :])
        return eta, grad, chol, d, prec

    min_log_var = 2.0 * jnp.log(scale_floor * hyper_scale)

    def hyper_update(theta, log_var, chol, d):
        # diag(H^-1) = diag(Hs^-1) / d^2 with Hs^-1 = L^-T L^-1.
        linv = solve_triangular(chol, jnp.eye(P, dtype=chol.dtype), lower=True)
        var = jnp.sum(linv**2, axis=0) / d**2
        dev = theta - prior_mean
        sq = jnp.zeros(G, theta.dtype).at[gidx].add(jnp.where(is_b0, 0.0, dev**2))
        tr = jnp.zeros(G, theta.dtype).at[gidx].add(jnp.where(is_b0, 0.0, var))
        new = lowrank.mackay_log_var(sq, tr, log_var, group_size, hyper_scale, min_log_var)
        # Fixed groups (attribute coefficients, meta-prior scales) keep their prior sd.
        return jnp.where(extra.learn, new, log_var)

    def log_post(theta, prec):
        eta = logits(unflat(theta), codes, segs if num_seg else None)
        loglik = jnp.sum(log_likelihood(eta, impressions, clicks, link, exposure))
        return loglik - 0.5 * jnp.sum(prec * (theta - prior_mean) ** 2)

    def body(state: LaplaceState) -> LaplaceState:
        # One traced copy of the Newton system serves all three phases (search, polish,
        # final curvature): XLA compile time on CPU grows with every copy.
        eta, grad, chol, d, prec = newton_system(state.theta, state.log_var)
        delta = cho_solve((chol, True), grad / d) / d
        # Cap the step (the first Newton step from zero effects can overshoot on sparse
        # data) and backtrack it until the log posterior rises; near the mode the full
        # step is taken, so quadratic convergence is kept.
        delta, newton = lowrank.damped_newton(
            partial(log_post, prec=prec), state.theta, delta, grad
        )
        moved = lowrank.advance(
            state,
            delta,
            newton,
            lambda theta: hyper_update(theta, state.log_var, chol, d),
            hyper_scale,
            tol,
            max_iter,
        )
        return LaplaceState(*moved, eta=eta, grad=grad, chol=chol, d=d, prec=prec)

    init = _laplace_init(prior_mean, hyper_scale, codes.shape[0])
    state = jax.lax.while_loop(lambda s: s.phase < 3, body, init)
    return _laplace_result(
        state, impressions, clicks, link, prior_mean, hyper_scale, tol, extra.learn, exposure
    )


def _laplace_init(prior_mean, hyper_scale, num_rows: int) -> LaplaceState:
    """Start at the prior mode with each scale at its hyperprior's scale (traced)."""
    dtype, P = prior_mean.dtype, prior_mean.shape[0]
    return LaplaceState(
        theta=prior_mean,
        log_var=2.0 * jnp.log(hyper_scale),
        iteration=jnp.asarray(0),
        step=jnp.asarray(jnp.inf, dtype),
        phase=jnp.asarray(0),
        eta=jnp.zeros(num_rows, dtype),
        grad=jnp.zeros(P, dtype),
        chol=jnp.eye(P, dtype=dtype),
        d=jnp.ones(P, dtype),
        prec=jnp.ones(P, dtype),
    )


class LaplaceResult(NamedTuple):
    """What the Laplace kernel returns.

    Attributes:
        mode: ``(P,)`` flat posterior mode ``[b0, main effects, pair effects]``.
        chol: ``(P, P)`` lower Cholesky factor L of the Jacobi-scaled Hessian at the mode;
            the Hessian is ``H = D L L' D`` with ``D = diag(d)``.
        d: ``(P,)`` the Jacobi scaling.
        scales: ``(G,)`` empirical-Bayes hyper-scales (one per scale group).
        iterations: Newton / fixed-point iterations of the search.
        converged: whether the last step was below ``tol``.
        log_evidence: Laplace approximation of ``log p(clicks | scales)`` (without the
            binomial coefficients) plus the hyperprior log density.
        newton_decrement: ``sqrt(g' H^-1 g)`` at the returned mode: scale-free, unlike
            ``|g|``, which float32 rounding inflates for effects pinned near zero by a huge
            prior precision.
    """

    mode: jax.Array
    chol: jax.Array
    d: jax.Array
    scales: jax.Array
    iterations: jax.Array
    converged: jax.Array
    log_evidence: jax.Array
    newton_decrement: jax.Array


def _laplace_result(
    state: LaplaceState,
    impressions,
    clicks,
    link,
    prior_mean,
    hyper_scale,
    tol,
    learn,
    exposure=None,
) -> LaplaceResult:
    """The evidence and the summary of the final Laplace state (traced)."""
    theta, chol, d, prec = state.theta, state.chol, state.d, state.prec
    # log p(y | scales) ~ l(mode) + log N(mode; prior) + P/2 log 2pi - 1/2 log det H
    loglik = jnp.sum(log_likelihood(state.eta, impressions, clicks, link, exposure))
    log_prior_quad = -0.5 * jnp.sum(prec * (theta - prior_mean) ** 2)
    log_det_h = 2.0 * jnp.sum(jnp.log(jnp.diag(chol))) + 2.0 * jnp.sum(jnp.log(d))
    scales = jnp.exp(0.5 * state.log_var)
    log_hyper = jnp.sum(
        jnp.where(
            learn,
            0.5 * jnp.log(2.0 / jnp.pi) - jnp.log(hyper_scale) - 0.5 * (scales / hyper_scale) ** 2,
            0.0,
        )
    )
    log_evidence = (
        loglik + log_prior_quad + 0.5 * jnp.sum(jnp.log(prec)) - 0.5 * log_det_h + log_hyper
    )
    return LaplaceResult(
        mode=theta,
        chol=chol,
        d=d,
        scales=scales,
        iterations=state.iteration,
        converged=state.step <= tol,
        log_evidence=log_evidence,
        newton_decrement=jnp.sqrt(jnp.sum(solve_triangular(chol, state.grad / d, lower=True) ** 2)),
    )


def _segment_params(params: Params, flat, structure: _Structure) -> Params:
    """``params`` with the flat segment block ``[c, d..., q...]`` unpacked into it."""
    card, G = structure.cardinalities, structure.num_segments
    num_d = G * sum(card)
    return unflatten_segment_effects(
        params, flat[..., :G], flat[..., G : G + num_d], flat[..., G + num_d :], card, G
    )


@partial(jax.jit, static_argnames=("num_samples",))
def _gaussian_draws(key, mode, chol, d, *, num_samples: int):
    """``num_samples`` draws of N(mode, H^-1) with ``H = D L L' D``, ``D = diag(d)``."""
    z = jax.random.normal(key, (num_samples, mode.shape[0]), dtype=mode.dtype)
    return mode + solve_triangular(chol.T, z.T, lower=False).T / d


def _segment_param_count(card, num_seg: int, prior) -> int:
    """Flat segment parameters ``[c, d..., q...]`` (0 without segments)."""
    if not num_seg:
        return 0
    seg_m, seg_p = segment_effect_sizes(card, num_seg, prior)
    return num_seg + sum(seg_m) + sum(seg_p)


def _prior_arrays(space, prior, spec, scales_mode, codes, design, structure=None):
    """The kernel's :class:`_PriorArrays` and the number of attribute coefficients B.

    With segments (``structure.num_segments``) the segment groups and parameters are
    included: prior mean 0, learned scales, design value 1 on their columns.
    """
    num_seg = 0 if structure is None else structure.num_segments
    seg_pairs = False if structure is None else structure.segment_pairs
    card = space.cardinalities
    G = len(_groups(card, prior.pairwise, scales_mode, num_seg, seg_pairs)[1])
    ones = np.ones(design.shape, np.float64)
    if spec is None:
        P = 1 + sum(sum(s) for s in effect_sizes(card, prior.pairwise))
        P += _segment_param_count(card, num_seg, prior)
        zeros = np.zeros((sum(space.cardinalities), 0))
        return _PriorArrays(np.zeros(P), np.ones(G, bool), ones, zeros), 0
    A, _ = attribute_design(space)
    B = A.shape[1]
    # segment effects (after the pairs, before beta): prior mean 0 and learned scales, as
    # without a spec; the spec's groups are the main and pair ones
    num_spec = len(_spec_hyper_scale(spec, scales_mode))
    num_seg_params = _segment_param_count(card, num_seg, prior)
    mean = np.concatenate(
        [[0.0], spec.main_loc, spec.pair_loc, np.zeros(num_seg_params), spec.beta_loc]
    )
    learn = np.concatenate(
        [np.full(num_spec, spec.learn_scales), np.ones(G - num_spec, bool), np.zeros(B, bool)]
    )
    values = np.concatenate([ones, _beta_values(space, codes)], axis=1)
    return _PriorArrays(mean, learn, values, A), B


def _spec_hyper_scale(spec, scales_mode) -> np.ndarray:
    if scales_mode == "pooled":
        return np.concatenate([spec.main_scale[:1], spec.pair_scale[:1]])
    return np.concatenate([spec.main_scale, spec.pair_scale])


def _beta_groups(group, group_size, hyper_scale, spec):
    """Append one fixed-scale group per attribute coefficient (after the effect groups)."""
    B = len(spec.beta_loc)
    G = len(group_size)
    group = np.concatenate([group, G + np.arange(B)]).astype(np.int32)
    sizes = np.concatenate([group_size, np.ones(B)])
    return group, sizes, np.concatenate([hyper_scale, spec.beta_scale])


def _beta_columns(space, codes, offset) -> np.ndarray:
    """Design columns of the attribute coefficients: every row touches all B of them."""
    B = sum(len(space.attribute_columns(k)) for k in range(space.num_components))
    return np.broadcast_to(offset + np.arange(B, dtype=np.int32), (len(codes), B))


def _beta_values(space, codes) -> np.ndarray:
    """``a_k(x_k)`` of each row for every attribute coefficient, ``(N, B)``."""
    cols = [space.attribute_matrix(k)[codes[:, k]] for k in range(space.num_components)]
    return np.concatenate(cols, axis=1) if cols else np.zeros((len(codes), 0))


def _fit_laplace(
    space,
    observations,
    prior,
    seed,
    num_samples,
    options: LaplaceOptions,
    time=None,
    spec=None,
) -> Posterior:
    scales_mode = options.scales
    if spec is not None and not spec.learn_scales:
        scales_mode = "per_group"  # a meta-prior fixes one scale per component and pair
    max_iter = int(options.max_iter)
    card = space.cardinalities
    K, num_pairs = _num_hypers(space, prior.pairwise)
    G = space.num_segments
    structure = _Structure(card, prior.pairwise, prior.link, G, prior.segment_pairs and G > 0)
    codes, segs, impressions, clicks, delay, exposure = _laplace_rows(observations, time, K, G)
    rows = len(codes)
    group, group_size, hyper_scale, design, extra, num_beta = _laplace_design(
        space, prior, spec, scales_mode, codes, segs, structure
    )
    solver = laplace_solver(options.solver, len(group), rows)
    intercept_scale = prior.intercept_scale if spec is None else spec.intercept_scale
    if solver == "lowrank" and (spec is not None or exposure is not None or G):
        raise ValueError(
            "laplace solver='lowrank' supports neither segments, variant attributes, a "
            "meta-prior nor a delay model; use LaplaceOptions(solver='dense') or method='svi'"
        )
    intercept = (prior.intercept_loc if spec is None else spec.intercept_loc, intercept_scale)
    flat_design = design if solver == "dense" else design_indices(codes, card, prior.pairwise)
    out = _laplace_solve(
        solver,
        (codes, segs, flat_design, impressions, clicks, exposure),
        (group, group_size, hyper_scale),
        intercept,
        options,
        extra,
        structure,
    )
    with jax.enable_x64(True):
        if solver == "dense":
            draws = _gaussian_draws(
                jax.random.PRNGKey(seed), out.mode, out.chol, out.d, num_samples=num_samples
            )
        else:
            draws = lowrank.lowrank_draws(
                jax.random.PRNGKey(seed),
                jnp.asarray(flat_design),
                *(jnp.asarray(a) for a in (out.mode, out.chol, out.s, out.prec)),
                num_samples=num_samples,
            )
        draws = np.asarray(draws)
    mode, var, factor = laplace_factor(
        out.mode,
        _prior_precision(out.scales, group, intercept_scale),
        flat_design,
        extra.design_values if solver == "dense" else np.ones(flat_design.shape),
        impressions,
        clicks,
        prior.link,
        exposure,
    )
    params, hyper = _laplace_params(
        draws, np.asarray(out.scales), extra, num_beta, scales_mode, prior, structure
    )
    gaussian = _gaussian_params(
        (mode, var, factor), out.scales, extra, num_beta, scales_mode, prior, structure
    )
    diagnostics = {
        "converged": bool(out.converged),
        "iterations": int(out.iterations),
        "log_evidence": float(out.log_evidence),
        "newton_decrement": float(out.newton_decrement),
    }
    time_hyper, time_diagnostics = _time_outputs(time, delay, num_samples)
    hyper.update(time_hyper)
    diagnostics.update(time_diagnostics)
    if not diagnostics["converged"]:
        warnings.warn(
            f"Laplace fit did not converge in {max_iter} iterations; raise max_iter, or "
            "check the data (e.g. a layout with clicks == impressions) or use method='nuts'",
            FitWarning,
            stacklevel=3,
        )
    return Posterior(
        space=space,
        prior=prior,
        params=params,
        method="laplace",
        num_chains=1,
        hyper=hyper,
        diagnostics=diagnostics,
        observed_codes=np.array(observations.codes, np.int32),
        segment_shares=observations.segment_shares(),
        gaussian=gaussian,
    )


def _laplace_solve(solver, rows, groups, intercept, options: LaplaceOptions, extra, structure):
    """Run the dense or low-rank Laplace kernel; its result as host (numpy) arrays.

    Args:
        solver: ``"dense"`` or ``"lowrank"``.
        rows: ``(codes, segs, design, impressions, clicks, exposure)`` of the padded rows.
        groups: ``(group, group_size, hyper_scale)`` of the hyper-scales.
        intercept: ``(loc, scale)`` of the intercept prior.
        options: the :class:`LaplaceOptions`.
        extra: the kernel's :class:`_PriorArrays`.
        structure: the :class:`_Structure`.
    """
    codes, segs, design, impressions, clicks, exposure = rows
    group, group_size, hyper_scale = groups
    dense = solver == "dense"
    # The one-hot design is collinear by construction (b0, a component's main effects and
    # every pair table containing it can trade a constant), so with large counts the
    # Hessian's condition number reaches 1e6-1e7 and float32 Cholesky breaks down. The
    # kernel therefore runs in float64 under a scoped switch; draws are returned as float32
    # like the other methods'.
    with jax.enable_x64(True):
        f64 = partial(jnp.asarray, dtype=jnp.float64)
        kernel = _laplace_kernel if dense else lowrank.lowrank_kernel
        out = kernel(
            jnp.asarray(codes),
            *((jnp.asarray(segs),) if dense else ()),
            jnp.asarray(design),
            f64(impressions),
            f64(clicks),
            jnp.asarray(group),
            f64(group_size),
            f64(hyper_scale),
            f64(intercept[0]),
            f64(intercept[1]),
            f64(options.scale_floor),
            f64(options.tol),
            jnp.asarray(int(options.max_iter)),
            *(
                (jax.tree.map(jnp.asarray, extra), None if exposure is None else f64(exposure))
                if dense
                else ()
            ),
            structure=structure if dense else structure._replace(num_segments=0),
        )
        return jax.device_get(out)


def _prior_precision(scales, group, intercept_scale) -> np.ndarray:
    """``(P,)`` prior precision of every flat parameter from the final hyper-scales."""
    scales = np.asarray(scales, np.float64)
    g = np.asarray(group)
    return np.where(g < 0, float(intercept_scale) ** -2.0, scales[np.maximum(g, 0)] ** -2.0)


def laplace_factor(mode, prec, design, values, impressions, clicks, link, exposure=None):
    """``Sigma = H^-1 = D - U U'`` of a Laplace fit, from the Woodbury identity (float64).

    ``H = Lam + X' W X`` with ``Lam = diag(prec)`` the prior precision and X the N observed
    rows (active columns ``design`` with values ``values``; W the likelihood weights at the
    mode, as the Laplace kernel takes them). With ``D = Lam^-1`` and ``B = W^1/2 X D^1/2``::

        Sigma = D - D X' W^1/2 (I + B B')^-1 W^1/2 X D = D - U U',   U = D X' W^1/2 C^-T

    where ``C C' = I + B B'`` (eigenvalues >= 1: a well-conditioned N x N Cholesky, unlike
    ``W^-1 + X D X'`` whose W^-1 is infinite for an empty row). Rows with the same layout
    (age cohorts) are merged by adding their weights, and rows of weight 0 dropped, so U
    has one column per distinct observed layout; zero columns pad it to the N padded rows,
    so that scoring compiles once per N, like the kernel (a loop adding layouts each round).

    Returns:
        ``(mode, D, U)``: ``(P,)``, ``(P,)`` and ``(P, N)`` float64.
    """
    mode = np.asarray(mode, np.float64)
    design, values = np.asarray(design), np.asarray(values, np.float64)
    eta = np.sum(values * mode[design], axis=1)
    with jax.enable_x64(True):
        f = None if exposure is None else jnp.asarray(exposure, jnp.float64)
        _, w = loglik_eta_derivatives(
            jnp.asarray(eta), jnp.asarray(impressions, jnp.float64),
            jnp.asarray(clicks, jnp.float64), link, f,
        )  # fmt: skip
    w = np.asarray(w, np.float64)
    uniq, inverse = np.unique(design, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    w_u = np.bincount(inverse, weights=w, minlength=len(uniq))
    first = np.zeros(len(uniq), np.int64)
    first[inverse[::-1]] = np.arange(len(design))[::-1]
    keep = w_u > 0
    rows, vals, w_u = uniq[keep], values[first[keep]], w_u[keep]
    P, r = mode.shape[0], len(rows)
    X = np.zeros((r, P))
    np.add.at(X, (np.repeat(np.arange(r), rows.shape[1]), rows.reshape(-1)), vals.reshape(-1))
    d = 1.0 / np.asarray(prec, np.float64)
    B = np.sqrt(w_u)[:, None] * X * np.sqrt(d)[None, :]
    C = np.linalg.cholesky(np.eye(r) + B @ B.T)
    # U' = C^-1 W^1/2 X D
    U = np.zeros((P, len(design)))
    if r:
        U[:, :r] = np.linalg.solve(C, np.sqrt(w_u)[:, None] * X * d[None, :]).T
    return mode, d, U


def _gaussian_params(flat, scales, extra, num_beta, scales_mode, prior, structure):
    """:class:`GaussianPosterior` tables from the flat ``(mode, D, U)`` of
    :func:`laplace_factor`: composed like the draws (:func:`_laplace_params`), except that an
    attribute coefficient's variance enters its component's table with weight ``a^2``."""
    mode, var, factor = flat
    # float64: v = x'Dx - |U'x|^2 cancels where the data determine eta far better than the
    # prior does; float32 tables would lose ~1e-7 x'Dx (30% of the sd at 10^7 impressions)
    args = (num_beta, scales_mode, prior, structure, np.float64)
    scales = np.asarray(scales)
    squared = extra._replace(attributes=np.asarray(extra.attributes, np.float64) ** 2)
    return GaussianPosterior(
        _laplace_params(mode[None], scales, extra, *args)[0],
        _laplace_params(var[None], scales, squared, *args)[0],
        _laplace_params(np.ascontiguousarray(factor.T), scales, extra, *args)[0],
    )


def _laplace_design(space, prior, spec, scales_mode, codes, segs, structure):
    """Hyper-scale groups, their prior scales, the design columns of every row and the
    kernel's :class:`_PriorArrays` (attribute coefficients appended when ``spec`` has them).

    Returns ``(group, group_size, hyper_scale, design, extra, num_beta)``.
    """
    card, G = structure.cardinalities, structure.num_segments
    group, group_size, group_kind = _groups(
        card, prior.pairwise, scales_mode, G, structure.segment_pairs
    )
    hyper_scale = np.choose(group_kind, [prior.main_scale, prior.pair_scale, prior.segment_scale])
    design = design_indices(codes, card, prior.pairwise, segs, G, structure.segment_pairs)
    extra, num_beta = _prior_arrays(space, prior, spec, scales_mode, codes, design, structure)
    if spec is not None:
        # the spec's scales for the main and pair groups; segment groups keep theirs
        spec_scale = _spec_hyper_scale(spec, scales_mode)
        hyper_scale = np.concatenate([spec_scale, hyper_scale[len(spec_scale) :]])
        group, group_size, hyper_scale = _beta_groups(group, group_size, hyper_scale, spec)
        design = np.concatenate([design, _beta_columns(space, codes, len(group) - num_beta)], 1)
    return group, group_size, hyper_scale, design, extra, num_beta


def _laplace_rows(observations: Observations, time, K: int, G: int):
    """The fitted rows padded to a power of two: codes, segment codes, (time-weighted)
    impressions and clicks, the delay the fit holds fixed and its exposure ``F(age)``."""
    n = observations.num_rows
    rows = _pad_rows(n)
    codes = np.zeros((rows, K), np.int32)
    codes[:n] = observations.codes
    segs = np.zeros(rows, np.int32)
    if G:
        segs[:n] = observations.segments
    impressions = np.zeros(rows)
    impressions[:n] = observations.impressions if time is None else time.impressions
    clicks = np.zeros(rows)
    clicks[:n] = observations.clicks if time is None else time.clicks
    delay = _resolve_delay(observations, time)
    exposure = None
    if delay is not None:
        exposure = np.ones(rows)
        exposure[:n] = np.asarray(delay.cdf(time.age))
    return codes, segs, impressions, clicks, delay, exposure


def _laplace_params(
    draws, out_scales, extra, num_beta, scales_mode, prior, structure, dtype=np.float32
):
    """Posterior :class:`Params` (``dtype``) and hyper draws from the flat Laplace draws and
    scales."""
    card, G = structure.cardinalities, structure.num_segments
    K = len(card)
    num_pairs = K * (K - 1) // 2 if prior.pairwise else 0
    num_samples = draws.shape[0]
    num_main = sum(card)
    num_pair = sum(effect_sizes(card, prior.pairwise)[1])
    end = 1 + num_main + num_pair
    end_pair = draws.shape[1] - num_beta
    beta = draws[:, end_pair:]
    main = draws[:, 1 : 1 + num_main] + beta @ np.asarray(extra.attributes).T
    params = _params_from_flat(draws[:, 0], main, draws[:, 1 + num_main : end], card, dtype)
    scales = np.asarray(out_scales, np.float32)[: len(out_scales) - num_beta]
    num_base = (1 + (num_pairs > 0)) if scales_mode == "pooled" else K + num_pairs
    scales, seg_scales = scales[:num_base], scales[num_base:]
    if scales_mode == "pooled":
        # Same shapes as per-group scales (and as NUTS/SVI), the pooled value repeated.
        scales = np.concatenate([np.repeat(scales[:1], K), np.repeat(scales[1:], num_pairs)])
    hyper = {
        "sigma_main": np.repeat(scales[None, :K], num_samples, axis=0),
        "tau_pair": np.repeat(scales[None, K:], num_samples, axis=0),
    }
    if G:
        params = _segment_params(params, draws[:, end:end_pair], structure)
        params = jax.tree.map(lambda a: np.ascontiguousarray(a, dtype=dtype), params)
        hyper.update(_segment_hyper(seg_scales, scales_mode, K, num_pairs, structure, num_samples))
    if num_beta:
        hyper["beta"] = np.ascontiguousarray(beta, dtype=np.float32)
    return params, hyper


def _segment_hyper(seg_scales, scales_mode, K, num_pairs, structure, S) -> dict:
    """Laplace point estimates of the segment scales, repeated over draws like NUTS's."""
    omega_c, rest = seg_scales[:1], seg_scales[1:]
    num_d = 1 if scales_mode == "pooled" else K
    omega, ups = rest[:num_d], rest[num_d:]
    if scales_mode == "pooled":
        omega = np.repeat(omega, K)
        ups = np.repeat(ups, num_pairs if structure.segment_pairs else 0)
    out = {
        "omega_intercept": np.repeat(omega_c, S).astype(np.float32),
        "omega_main": np.repeat(omega[None, :], S, axis=0).astype(np.float32),
    }
    if structure.segment_pairs:
        out["upsilon_pair"] = np.repeat(ups[None, :], S, axis=0).astype(np.float32)
    return out


# --------------------------------------------------------------------------------- NUTS
def _model_and_args(observations, space, prior, spec, time=None) -> tuple[Any, dict]:
    """The NumPyro model and its arguments: the original model unless a spec is needed."""
    args = _model_args(observations, space, prior, time)
    if spec is None:
        return numpyro_model, args
    A, _ = attribute_design(space)
    return numpyro_model_spec, {**args, "spec": spec, "attributes": jnp.asarray(A, jnp.float32)}


def _model_args(
    observations: Observations, space: LayoutSpace, prior: PriorConfig, time: _Time | None = None
) -> dict:
    args = {
        "layouts": jnp.asarray(observations.codes),
        "impressions": jnp.asarray(observations.impressions, jnp.float32),
        "clicks": jnp.asarray(observations.clicks, jnp.float32),
        "cardinalities": space.cardinalities,
        "prior": prior,
        "segments": None if observations.segments is None else jnp.asarray(observations.segments),
        "num_segments": space.num_segments,
    }
    if time is not None:
        args["impressions"] = jnp.asarray(time.impressions, jnp.float32)
        args["clicks"] = jnp.asarray(time.clicks, jnp.float32)
        if time.delay is not None:
            args["age"] = jnp.asarray(time.age, jnp.float32)
            args["delay"] = time.delay
            if time.delay == "auto":
                args["delay_counts"] = jnp.asarray(time.delay_counts, jnp.float32)
    return args


def _posterior_from_sites(space, prior, samples, method, num_chains, diagnostics, obs):
    """Posterior from flat ``(S, ...)`` site draws: intercept, main, pair, sigma, tau."""
    S = samples["intercept"].shape[0]
    K, num_pairs = _num_hypers(space, prior.pairwise)
    pair = samples.get("pair", np.zeros((S, 0), np.float32))
    params = _params_from_flat(samples["intercept"], samples["main"], pair, space.cardinalities)
    hyper = {
        "sigma_main": np.asarray(samples["sigma_main"], np.float32).reshape(S, K),
        "tau_pair": np.asarray(samples.get("tau_pair", np.zeros((S, 0))), np.float32).reshape(
            S, num_pairs
        ),
    }
    if space.num_segments:
        structure = _Structure(
            space.cardinalities,
            prior.pairwise,
            prior.link,
            space.num_segments,
            "segment_pair" in samples,
        )
        flat = [samples["segment_intercept"], samples["segment_main"]]
        flat.append(samples.get("segment_pair", np.zeros((S, 0), np.float32)))
        flat = np.concatenate([np.asarray(a, np.float32).reshape(S, -1) for a in flat], axis=1)
        params = _segment_params(params, flat, structure)
        params = jax.tree.map(lambda a: np.ascontiguousarray(a, dtype=np.float32), params)
        for name in ("omega_intercept", "omega_main", "upsilon_pair"):
            if name in samples:
                hyper[name] = np.asarray(samples[name], np.float32).reshape(
                    (S,) + np.shape(samples[name])[1:]
                )
    for name in ("delay_shape", "delay_scale"):
        if name in samples:
            hyper[name] = np.asarray(samples[name], np.float32).reshape(S)
    if "beta" in samples:
        hyper["beta"] = np.asarray(samples["beta"], np.float32).reshape(S, -1)
    return Posterior(
        space=space,
        prior=prior,
        params=params,
        method=method,
        num_chains=num_chains,
        hyper=hyper,
        diagnostics=diagnostics,
        observed_codes=np.array(obs.codes, np.int32),
        segment_shares=obs.segment_shares(),
    )


def _fit_nuts(
    space,
    observations,
    prior,
    seed,
    num_samples,
    num_chains,
    num_warmup,
    progress,
    options,
    time=None,
    spec=None,
) -> Posterior:
    per_chain = math.ceil(num_samples / num_chains)
    model, model_args = _model_and_args(observations, space, prior, spec, time)
    kernel = NUTS(
        model,
        target_accept_prob=float(options.target_accept_prob),
        max_tree_depth=int(options.max_tree_depth),
        dense_mass=False,
    )
    mcmc = MCMC(
        kernel,
        num_warmup=num_warmup,
        num_samples=per_chain,
        num_chains=num_chains,
        chain_method=options.chain_method,
        progress_bar=progress,
    )
    mcmc.run(
        jax.random.PRNGKey(seed),
        extra_fields=("diverging",),
        **model_args,
    )
    by_chain = jax.device_get(mcmc.get_samples(group_by_chain=True))
    divergences = int(np.sum(jax.device_get(mcmc.get_extra_fields()["diverging"])))
    effects = [by_chain["intercept"][..., None], by_chain["main"]]
    if "pair" in by_chain:
        effects.append(by_chain["pair"])
    for name in ("segment_intercept", "segment_main", "segment_pair"):
        if name in by_chain:
            effects.append(by_chain[name])
    effects = np.concatenate([np.asarray(e, np.float64) for e in effects], axis=-1)
    r_hat = np.asarray(split_gelman_rubin(effects))
    ess = np.asarray(effective_sample_size(effects))
    diagnostics = {
        "max_r_hat": float(np.max(r_hat)),
        "min_ess": float(np.min(ess)),
        "num_divergences": divergences,
    }
    problems = []
    if not diagnostics["max_r_hat"] <= _MAX_R_HAT:
        problems.append(f"max r_hat {diagnostics['max_r_hat']:.3f} > {_MAX_R_HAT}")
    if not diagnostics["min_ess"] >= _MIN_ESS:
        problems.append(f"min ESS {diagnostics['min_ess']:.0f} < {_MIN_ESS:.0f}")
    if divergences:
        problems.append(f"{divergences} divergent transitions")
    if problems:
        warnings.warn(
            "NUTS diagnostics look unhealthy (" + "; ".join(problems) + "): increase "
            "num_warmup and num_samples, raise target_accept_prob (e.g. 0.95) for "
            "divergences, and compare with method='laplace'",
            FitWarning,
            stacklevel=3,
        )
    flat = {k: np.asarray(v).reshape((-1,) + np.shape(v)[2:]) for k, v in by_chain.items()}
    diagnostics.update(_time_outputs(time, _resolve_fixed(time), 0)[1])
    return _posterior_from_sites(space, prior, flat, "nuts", num_chains, diagnostics, observations)


_GUIDES = ("lowrank", "full", "diag")
_FULL_GUIDE_MAX_DIM = 2000


def _resolve_fixed(time: _Time | None) -> Weibull | None:
    """The given (not learned) delay, for the diagnostics of NUTS and SVI fits."""
    return time.delay if time is not None and isinstance(time.delay, Weibull) else None


def _fit_svi(
    space, observations, prior, seed, num_samples, progress, options, time=None, spec=None
) -> Posterior:
    guide_name = options.guide
    if guide_name == "auto":
        # A full-rank Gaussian captures the strong posterior correlations between b0, main
        # and pair effects (the one-hot design is collinear); the low-rank guide missed them
        # by ~1 posterior sd on the demo model. Its P^2 covariance only binds for large P.
        sizes_m, sizes_p = effect_sizes(space.cardinalities, prior.pairwise)
        latent = 1 + 2 * space.num_components + len(sizes_p) + sum(sizes_m) + sum(sizes_p)
        if space.num_segments:
            seg_m, seg_p = segment_effect_sizes(space.cardinalities, space.num_segments, prior)
            latent += 2 + space.num_segments + space.num_components + sum(seg_m)
            latent += len(seg_p) + sum(seg_p)
        latent += 0 if spec is None else len(spec.beta_loc)
        guide_name = "full" if latent <= _FULL_GUIDE_MAX_DIM else "lowrank"
    num_steps = int(options.num_steps)
    lr = float(options.learning_rate)
    # init_to_median starts b0 at the prior's centre (the pooled CTR by default), rather
    # than uniformly in (-2, 2) on the link scale, far from typical CTRs of a few percent.
    init = init_to_median(num_samples=15)
    model, model_args = _model_and_args(observations, space, prior, spec, time)
    if guide_name == "lowrank":
        rank = options.rank
        extra = {} if rank is None else {"rank": int(rank)}
        guide = AutoLowRankMultivariateNormal(model, init_loc_fn=init, **extra)
    elif guide_name == "full":
        guide = AutoMultivariateNormal(model, init_loc_fn=init)
    else:
        guide = AutoNormal(model, init_loc_fn=init)
    # Decaying the step size averages out the gradient noise of the 1-particle ELBO at the
    # end, which is what makes the final guide's mean usable.
    schedule = optax.cosine_decay_schedule(lr, num_steps, alpha=0.01)
    optim = optax_to_numpyro(optax.chain(optax.clip_by_global_norm(100.0), optax.adam(schedule)))
    svi = SVI(model, guide, optim, Trace_ELBO(num_particles=int(options.num_particles)))
    key_fit, key_draw = jax.random.split(jax.random.PRNGKey(seed))
    result = svi.run(key_fit, num_steps, progress_bar=progress, stable_update=True, **model_args)
    losses = np.asarray(jax.device_get(result.losses))
    tail = losses[-max(1, num_steps // 20) :]
    sites = ["intercept", "main", "sigma_main"]
    if prior.pairwise:
        sites += ["pair", "tau_pair"]
    if space.num_segments:
        sites += ["segment_intercept", "segment_main", "omega_intercept", "omega_main"]
        if prior.pairwise and prior.segment_pairs:
            sites += ["segment_pair", "upsilon_pair"]
    if time is not None and time.delay == "auto":
        sites += ["delay_shape", "delay_scale"]
    if spec is not None and len(spec.beta_loc):
        sites.append("beta")
    predictive = Predictive(
        model,
        guide=guide,
        params=result.params,
        num_samples=num_samples,
        return_sites=sites,
    )
    draws = jax.device_get(predictive(key_draw, **model_args))
    diagnostics = {
        "final_loss": float(np.nanmean(tail)),
        "num_steps": num_steps,
        "guide": guide_name,
    }
    diagnostics.update(_time_outputs(time, _resolve_fixed(time), 0)[1])
    if not np.isfinite(diagnostics["final_loss"]):
        warnings.warn(
            "SVI loss is not finite at the end of the run; lower learning_rate",
            FitWarning,
            stacklevel=3,
        )
    return _posterior_from_sites(
        space,
        prior,
        {k: np.asarray(v) for k, v in draws.items()},
        "svi",
        1,
        diagnostics,
        observations,
    )
