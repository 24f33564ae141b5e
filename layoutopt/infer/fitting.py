"""Fitting the additive + pairwise model: the entry point :func:`fit` and its method table.

All three methods return a :class:`Posterior` whose ``params`` carry a leading axis of
posterior draws, so everything downstream (scoring, optimisation, proposals) is indifferent
to how the posterior was obtained. :func:`fit` validates the arguments, resolves the model
(:class:`~layoutopt.model.spec.ModelSpec`), the prior (:class:`~layoutopt.model.priors.Prior`)
and the delay and drift settings once, checks the size of the model (every term counted),
and hands the same :class:`~layoutopt.infer.problem.FitProblem` to the method's fitter:
:func:`~layoutopt.infer.laplace_fit.fit_laplace` (dense or low-rank Laplace with
empirical-Bayes scales), :func:`~layoutopt.infer.nuts.fit_nuts` or
:func:`~layoutopt.infer.svi.fit_svi`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from layoutopt.data.observations import Observations
from layoutopt.infer.data import fit_data, fixed_delay, pad_rows, time_setup
from layoutopt.infer.drift import choose_discount
from layoutopt.infer.laplace import TRACE_COUNTS, LaplaceResult, LaplaceState
from layoutopt.infer.laplace_fit import FitWarning, fit_laplace, laplace_factor
from layoutopt.infer.meta import MetaPrior
from layoutopt.infer.nuts import fit_nuts
from layoutopt.infer.options import (
    LAPLACE_SCALES,
    LAPLACE_SOLVERS,
    LOWRANK_MIN_PARAMS,
    NUTS_CHAIN_METHODS,
    OPTIONS,
    LaplaceOptions,
    NutsOptions,
    SviOptions,
    laplace_solver,
)
from layoutopt.infer.posterior import Posterior
from layoutopt.infer.problem import FitProblem, FitRun
from layoutopt.infer.svi import fit_svi
from layoutopt.model.delay import Weibull, check_delay
from layoutopt.model.priors import DEFAULT_BASE_RATE, Prior, PriorConfig, attribute_design
from layoutopt.model.space import LayoutSpace
from layoutopt.model.spec import ModelSpec, design_indices
from layoutopt.util.limits import check_fit_size, check_seed

__all__ = [
    "fit",
    "FitWarning",
    "LaplaceOptions",
    "METHODS",
    "NutsOptions",
    "SviOptions",
    "default_prior",
    "resolve_problem",
    # re-exported where tests and callers have always found them
    "LAPLACE_SCALES",
    "LAPLACE_SOLVERS",
    "LOWRANK_MIN_PARAMS",
    "NUTS_CHAIN_METHODS",
    "LaplaceResult",
    "LaplaceState",
    "TRACE_COUNTS",
    "design_indices",
    "laplace_factor",
    "laplace_solver",
]

METHODS = ("laplace", "nuts", "svi")
#: The fitter of each method; all take ``(problem, options, run)``.
FITTERS = {"laplace": fit_laplace, "nuts": fit_nuts, "svi": fit_svi}


def default_prior(observations: Observations, prior: PriorConfig | None = None) -> PriorConfig:
    """The prior :func:`fit` uses: ``prior`` (default ``PriorConfig()``) with its base rate
    set from the data where it was left unset.

    A ``base_rate`` of None becomes the pooled observed click-through rate
    ``clicks.sum() / impressions.sum()``, clipped to ``[1e-4, 0.5]`` (0.05 when there are no
    impressions); every other field is kept as given, so ``PriorConfig(pairwise=False)``
    differs from the default prior only by its missing pairwise terms. Centring ``b0`` on
    the data keeps the intercept prior from fighting the likelihood when the true rate is
    far from 5%; the clip keeps the prior sensible for a dataset with no clicks. A base rate
    given explicitly is kept.

    Args:
        observations: the data to be fitted.
        prior: the prior settings (None: ``PriorConfig()``).

    Returns:
        A :class:`PriorConfig` whose ``base_rate`` is a number.

    Examples:
        >>> prior = default_prior(obs, PriorConfig(pairwise=False))  # doctest: +SKIP
    """
    prior = PriorConfig() if prior is None else prior
    if prior.base_rate is not None:
        return prior
    total = float(np.sum(observations.impressions))
    rate = DEFAULT_BASE_RATE
    if total > 0:
        rate = float(np.clip(float(np.sum(observations.clicks)) / total, 1e-4, 0.5))
    return dataclasses.replace(prior, base_rate=rate)


def fit(
    space: LayoutSpace,
    observations: Observations,
    method: str = "laplace",
    *,
    seed: int = 0,
    num_samples: int = 1000,
    prior: PriorConfig | MetaPrior | None = None,
    num_chains: int = 4,
    num_warmup: int = 500,
    progress: bool = False,
    options: LaplaceOptions | NutsOptions | SviOptions | None = None,
    delay: Weibull | str | None = None,
    half_life: float | str | None = None,
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

    The model's terms are one :class:`~layoutopt.model.spec.ModelSpec`, its prior one
    :class:`~layoutopt.model.priors.Prior` and its rows one
    :class:`~layoutopt.model.spec.FitData` (exposure ``F(age)`` and drift weights ones
    without a delay model or half-life); every method reads the same three.

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
        prior: prior settings; ``None`` means ``PriorConfig()``. A ``base_rate`` left at
            None is set to the pooled observed CTR, clipped to ``[1e-4, 0.5]``
            (:func:`default_prior`); no other field is touched. A
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
            ``"auto"`` (observations with a ``round`` column): the discount is chosen by
            the data's prequential evidence (:mod:`layoutopt.infer.drift`): every round
            after the first is predicted by Laplace fits on the rounds before it under no
            discounting, each half-life of :data:`~layoutopt.infer.drift.AUTO_HALF_LIVES`
            and a change point at every round (earlier rounds dropped), and the one whose
            log predictive probabilities sum highest discounts the fit. The selection
            always uses Laplace fits, whatever ``method``; see ``docs/drift.md``.

    Returns:
        A :class:`Posterior` with S draws, hyper-parameters (``sigma_main`` ``(S, K)``,
        ``tau_pair`` ``(S, K(K-1)/2)``; constant over draws for Laplace, where they are
        point estimates) and ``diagnostics``:

        - laplace: ``converged``, ``iterations``, ``log_evidence`` (Laplace approximation
          of ``log p(clicks | hyper-scales)`` without the binomial coefficients, plus the
          hyperprior log density), ``newton_decrement`` at the returned mode,
          ``scales_at_floor`` (every learned effect scale ended at its floor: the data do not
          tell variants apart; :mod:`layoutopt.score.evidence` reads it).
        - nuts: ``max_r_hat``, ``min_ess`` (over intercept and effects),
          ``num_divergences``.
        - svi: ``final_loss`` (mean ELBO loss over the last 5% of steps).
        - with ``delay`` or ``half_life``: ``delay`` (the delay used, "(estimated)" for a
          Laplace ``"auto"``) and ``half_life``; ``hyper`` gains ``delay_shape`` and
          ``delay_scale`` ``(S,)`` (draws for NUTS/SVI ``"auto"``, constants for Laplace).
        - with ``half_life="auto"``: ``half_life`` is the chosen half-life (None: no
          decay), ``change_round`` the chosen change point (None: every round kept),
          ``half_life_auto`` a line saying what won and by how much, and
          ``drift_scores`` every candidate's log score minus that of no discounting.

    Raises:
        ValueError: for an unknown method, observations from another space, non-positive
            ``num_samples`` / ``num_chains``, negative ``num_warmup``, options of another
            method's type, a seed outside ``[0, 2**32 - 1]``, a model too large for the
            method (see :func:`layoutopt.util.limits.check_fit_size`; nothing is started), a
            fit whose draws are not finite, a ``delay`` without an ``age`` column (or
            ``"auto"`` without delay counts), or a ``half_life`` that is neither a positive
            number nor ``"auto"``, a number without ``round``/``age`` or ``"auto"`` without
            ``round``.

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
    _check_arguments(space, observations, method, num_samples, num_chains, num_warmup)
    time = time_setup(observations, check_delay(delay), half_life)
    if options is None:
        options = OPTIONS[method]()
    elif not isinstance(options, OPTIONS[method]):
        raise ValueError(
            f"method {method!r} takes options={OPTIONS[method].__name__}(...), got "
            f"{type(options).__name__}"
        )
    seed = check_seed(seed)
    if time.half_life == "auto":
        chosen = options if isinstance(options, LaplaceOptions) else None
        time, _ = choose_discount(resolve_problem(space, observations, prior, time=time), chosen)
    problem = resolve_problem(
        space,
        observations,
        prior,
        time=time,
        learned_delay=method != "laplace" and time.delay == "auto",
    )
    check_fit_size(
        problem.spec,
        observations.num_layouts,
        _size_method(method, options, problem.spec, observations),
        int(num_samples),
        guide=getattr(options, "guide", "auto"),
    )
    run = FitRun(int(seed), int(num_samples), int(num_chains), int(num_warmup), bool(progress))
    if method != "nuts":
        run = run._replace(num_chains=1)
    return _checked(FITTERS[method](problem, options, run))


def _check_arguments(space, observations, method, num_samples, num_chains, num_warmup) -> None:
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


def _checked(post: Posterior) -> Posterior:
    """Refuse a fit whose draws are not finite: it must never be written or used."""
    try:
        post.check_finite()
    except ValueError as err:
        raise ValueError(f"fit failed: {err}") from None
    return post


def resolve_prior(
    space: LayoutSpace, spec: ModelSpec, prior, observations: Observations
) -> tuple[PriorConfig, Prior]:
    """The recorded :class:`PriorConfig` and the resolved :class:`Prior` of ``prior``, the
    base rate left unset taken from ``observations`` (:func:`default_prior`)."""
    if isinstance(prior, MetaPrior):
        config = default_prior(observations, prior.config())
        return config, prior.resolve(spec, space, defaults=config)
    config = default_prior(observations, prior)
    return config, config.resolve(spec)


def resolve_problem(space, observations, prior=None, *, time=None, learned_delay=False):
    """The :class:`FitProblem` every fitter reads: spec, resolved prior, rows.

    Args:
        space: the layout space.
        observations: the data.
        prior: a :class:`PriorConfig`, a :class:`MetaPrior` or None (``PriorConfig()``);
            an unset base rate is taken from the data (:func:`default_prior`).
        time: the checked delay and drift settings (None: neither).
        learned_delay: whether the fitter samples the click delay (NUTS and SVI with
            ``delay="auto"``).

    Returns:
        The :class:`FitProblem`.

    Raises:
        ValueError: for a prior of another type.
    """
    if prior is None:
        prior = PriorConfig()
    if not isinstance(prior, PriorConfig | MetaPrior):
        raise ValueError(
            f"prior must be a PriorConfig, a MetaPrior or None, got {type(prior).__name__}"
        )
    config = prior.config() if isinstance(prior, MetaPrior) else prior
    spec = ModelSpec.from_space(space, config, learned_delay=learned_delay)
    config, resolved = resolve_prior(space, spec, prior, observations)
    if time is None:
        time = time_setup(observations, None, None)
    A, _ = attribute_design(space)
    delay = fixed_delay(observations, time, learned=learned_delay)
    data = fit_data(observations, time, delay)
    return FitProblem(space, spec, resolved, config, data, A, time, delay, observations)


def _size_method(method, options, spec: ModelSpec, observations) -> str:
    """The method name for :func:`layoutopt.util.limits.check_fit_size`:
    ``"laplace-lowrank"`` or ``"laplace-cg"`` where that solver will run (its own limits),
    else ``method``."""
    if method != "laplace":
        return method
    solver = laplace_solver(options.solver, spec.num_params, pad_rows(observations.num_rows))
    return "laplace" if solver == "dense" else f"laplace-{solver}"
