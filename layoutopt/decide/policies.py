"""Policies: how a campaign chooses what to serve next, as pairs of pure functions.

A policy is ``Policy(init, step)`` (the shape of optax's ``GradientTransformation`` and
blackjax's kernels)::

    state = policy.init(space, key)
    state, allocation, info = policy.step(state, observations, key)

``observations`` is everything observed so far (``None`` before the first round);
``allocation`` says which layouts get what share of the next batch, and ``info`` what the
policy would ship now (:class:`PolicyInfo`: its pick with interval and P(best)). The driver
(:func:`layoutopt.decide.driver.run`) plays any policy round after round.

Model policies (:func:`thompson`, :func:`top_two`, :func:`ids`, :func:`greedy`,
:func:`ucb`) serve an initial design first, then refit the additive + pairwise model every
round and propose with :func:`layoutopt.decide.proposals.propose`; their pick is
:func:`layoutopt.score.scoring.best_layout`. The
baselines of Hill et al. (2017) fit no model: :func:`uniform` (a classic A/B/n test) and
:func:`independent` (Beta-Bernoulli Thompson sampling with one arm per layout, their
"N^D-MAB").

On a space with segments the model policies fit the segment model and, by default
(``per_segment=True``), propose and pick per segment: their ``Allocation`` carries a
segment code per row and their ``PolicyInfo`` the pick of every segment. Built with
``delay=`` / ``half_life=`` they pass them to every ``fit``, for observations with ``age``
and ``round`` columns (a campaign in time, see :class:`layoutopt.sim.timeworld.TimeWorld`). The
baselines pool every segment and cohort of a layout.

References:
    Hill, Nassif, Liu, Iyer and Vishwanathan, "An Efficient Bandit Algorithm for Realtime
    Multivariate Optimization", KDD 2017. Russo, "Simple Bayesian Algorithms for Best Arm
    Identification", COLT 2016.
"""

from __future__ import annotations

from typing import Any

from layoutopt.decide.baselines import independent, uniform
from layoutopt.decide.floor import with_floor
from layoutopt.decide.interface import Allocation, Policy, PolicyInfo
from layoutopt.decide.model_policy import ModelConfig, model_policy
from layoutopt.decide.objective_policy import fit_objective, on_objective
from layoutopt.decide.proposals import check_thompson_share, check_variance_scale
from layoutopt.infer import LaplaceOptions, NutsOptions, SviOptions
from layoutopt.model.delay import Weibull
from layoutopt.model.priors import PriorConfig

__all__ = [
    "Allocation",
    "Policy",
    "PolicyInfo",
    "fit_objective",
    "greedy",
    "ids",
    "independent",
    "on_objective",
    "with_floor",
    "thompson",
    "top_two",
    "ucb",
    "uniform",
]

FitOptions = LaplaceOptions | NutsOptions | SviOptions


_MODEL_ARGS = """\
method: inference method of the refit (``"laplace"``, ``"nuts"``, ``"svi"``).
        prior: the prior (a :class:`~layoutopt.PriorConfig` or a meta-prior); default
            ``PriorConfig(link=link, pairwise=pairwise)``. A base rate left unset is the
            pooled CTR of the first data fitted; the prior is then fixed for the campaign so
            the fit compiles once.
        link: ``"logit"`` or ``"probit"``; None: the prior's (``"logit"`` without one).
            A link that contradicts the prior's is refused.
        pairwise: model pairwise interactions (False: additive, Hill et al.'s "MVT1");
            None: the prior's (True without one). One that contradicts the prior's is
            refused.
        initial: round-0 design: ``"pairwise"``, ``"random"``, ``"full"`` (see
            :func:`~layoutopt.decide.design.initial_design`) or ``"uniform"`` (every allowed
            layout).
        initial_size: layouts in the round-0 design (default: the design's own; for
            ``"random"`` the product of the two largest cardinalities).
        num_samples: posterior draws per fit.
        fit_options: options of the fit method (e.g. ``LaplaceOptions(tol=1e-2)``), the
            same every round.
        allocation: how the batch is split by the proposal weights (:class:`Allocation`).
        per_segment: on a space with segments, propose and pick per segment
            (``propose(..., segment=g)``, ``best_layout(..., segment=g)``); False: one
            proposal for the traffic mix, served to every segment.
        delay: ``fit``'s click-delay model (``"auto"``: learned from the observed delays;
            a :class:`~layoutopt.model.delay.Weibull`; None: clicks taken as complete). With
            ``"auto"`` the initial design is served again until a first click has arrived.
        half_life: ``fit``'s half-life in rounds (None: no forgetting; ``"auto"``: chosen
            by the data at every fit, see :mod:`layoutopt.infer.drift`).
"""


def _with_model_args(factory):
    """Fill the ``{model_args}`` slot of a model-policy factory's docstring with the
    arguments all of them share (one text, so the four factories cannot drift apart)."""
    if factory.__doc__:  # None under python -OO
        factory.__doc__ = factory.__doc__.replace("{model_args}\n", _MODEL_ARGS)
    return factory


def _config(strategy: str, args: dict[str, Any], propose: dict) -> ModelConfig:
    """The :class:`ModelConfig` of a factory's arguments (its ``locals()``)."""
    return ModelConfig(
        strategy,
        int(args["k"]),
        args["method"],
        args["prior"],
        args["link"],
        args["pairwise"],
        args["initial"],
        args["initial_size"],
        int(args["num_samples"]),
        args["fit_options"],
        args["allocation"],
        propose,
        per_segment=args["per_segment"],
        delay=args["delay"],
        half_life=args["half_life"],
    )


@_with_model_args
def thompson(
    k: int = 8,
    *,
    variance_scale: float = 1.0,
    method: str = "laplace",
    prior: PriorConfig | None = None,
    link: str | None = None,
    pairwise: bool | None = None,
    initial: str = "pairwise",
    initial_size: int | None = None,
    num_samples: int = 1000,
    fit_options: FitOptions | None = None,
    allocation: str = "multinomial",
    per_segment: bool = True,
    delay: Weibull | str | None = None,
    half_life: float | str | None = None,
) -> Policy:
    """Batch Thompson sampling: traffic proportional to P(layout is the best).

    Round 0 serves the initial design evenly; every later round refits the model on all
    observations so far and serves ``propose(posterior, k=k, strategy="thompson",
    variance_scale=variance_scale)``.

    Args:
        k: most layouts per proposal.
        variance_scale: propose from the posterior with its variance multiplied by this
            factor (posterior reshaping, Chapelle & Li 2011; see
            :func:`~layoutopt.decide.proposals.propose`): 1 is Thompson sampling, below 1
            spends less traffic on layouts the posterior ranks below the leader. The pick
            (:class:`PolicyInfo`) always reads the posterior itself.
        {model_args}

    Returns:
        The :class:`Policy`.

    Raises:
        ValueError: for a ``variance_scale`` that is not a finite number > 0.
    """
    propose = {"variance_scale": check_variance_scale(variance_scale)}
    return model_policy(_config("thompson", locals(), propose))


@_with_model_args
def top_two(
    k: int = 8,
    *,
    beta: float = 0.5,
    method: str = "laplace",
    prior: PriorConfig | None = None,
    link: str | None = None,
    pairwise: bool | None = None,
    initial: str = "pairwise",
    initial_size: int | None = None,
    num_samples: int = 1000,
    fit_options: FitOptions | None = None,
    allocation: str = "multinomial",
    per_segment: bool = True,
    delay: Weibull | str | None = None,
    half_life: float | str | None = None,
) -> Policy:
    """Top-two Thompson sampling: a share ``beta`` to the leader, the rest to a challenger.

    Round 0 serves the initial design evenly; every later round refits the model on all
    observations so far and serves ``propose(posterior, k=k, strategy="top_two")``.

    Args:
        k: most layouts per proposal.
        beta: probability of playing the leader (Russo 2016).
        {model_args}

    Returns:
        The :class:`Policy`.
    """
    return model_policy(_config("top_two", locals(), {"beta": beta}))


@_with_model_args
def ids(
    k: int = 2,
    *,
    thompson_share: float = 0.0,
    method: str = "laplace",
    prior: PriorConfig | None = None,
    link: str | None = None,
    pairwise: bool | None = None,
    initial: str = "pairwise",
    initial_size: int | None = None,
    num_samples: int = 1000,
    fit_options: FitOptions | None = None,
    allocation: str = "multinomial",
    per_segment: bool = True,
    delay: Weibull | str | None = None,
    half_life: float | str | None = None,
) -> Policy:
    """Information-directed sampling (Russo & Van Roy 2018): the batch goes to the one or
    two layouts that minimise the squared expected regret per unit of information about
    which layout is the best (:mod:`layoutopt.decide.ids`).

    Round 0 serves the initial design evenly; every later round refits the model on all
    observations so far and serves ``propose(posterior, k=k, strategy="ids")``.

    Args:
        k: most layouts per proposal (the IDS distribution has at most two; give room for
            Thompson's layouts with ``thompson_share``).
        thompson_share: share of every batch given by Thompson's weights instead
            (``propose(..., thompson_share=)``): IDS alone can stop exploring on a wrong
            pick; this share keeps exploring where the draws disagree. In ``[0, 1)``.
        {model_args}

    Returns:
        The :class:`Policy`.

    Raises:
        ValueError: for a ``thompson_share`` outside ``[0, 1)``.
    """
    propose = {"thompson_share": check_thompson_share(thompson_share)}
    return model_policy(_config("ids", locals(), propose))


@_with_model_args
def greedy(
    k: int = 8,
    *,
    method: str = "laplace",
    prior: PriorConfig | None = None,
    link: str | None = None,
    pairwise: bool | None = None,
    initial: str = "pairwise",
    initial_size: int | None = None,
    num_samples: int = 1000,
    fit_options: FitOptions | None = None,
    allocation: str = "multinomial",
    per_segment: bool = True,
    delay: Weibull | str | None = None,
    half_life: float | str | None = None,
) -> Policy:
    """The k layouts of highest posterior mean CTR, equal weights.

    Round 0 serves the initial design evenly; every later round refits the model on all
    observations so far and serves ``propose(posterior, k=k, strategy="greedy")``.

    Args:
        k: most layouts per proposal.
        {model_args}

    Returns:
        The :class:`Policy`.
    """
    return model_policy(_config("greedy", locals(), {}))


@_with_model_args
def ucb(
    k: int = 8,
    *,
    quantile: float = 0.95,
    method: str = "laplace",
    prior: PriorConfig | None = None,
    link: str | None = None,
    pairwise: bool | None = None,
    initial: str = "pairwise",
    initial_size: int | None = None,
    num_samples: int = 1000,
    fit_options: FitOptions | None = None,
    allocation: str = "multinomial",
    per_segment: bool = True,
    delay: Weibull | str | None = None,
    half_life: float | str | None = None,
) -> Policy:
    """Bayes-UCB: the k layouts of highest upper posterior ``quantile`` of CTR.

    Round 0 serves the initial design evenly; every later round refits the model on all
    observations so far and serves ``propose(posterior, k=k, strategy="ucb")``.

    Args:
        k: most layouts per proposal.
        quantile: posterior quantile of CTR to rank by (Bayes-UCB), in (0.5, 1).
        {model_args}

    Returns:
        The :class:`Policy`.
    """
    return model_policy(_config("ucb", locals(), {"quantile": quantile}))
