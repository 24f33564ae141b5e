"""Policies: how a campaign chooses what to serve next, as pairs of pure functions.

A policy is ``Policy(init, step)`` (the shape of optax's ``GradientTransformation`` and
blackjax's kernels)::

    state = policy.init(space, key)
    state, allocation, info = policy.step(state, observations, key)

``observations`` is everything observed so far (``None`` before the first round);
``allocation`` says which layouts get what share of the next batch, and ``info`` what the
policy would ship now (:class:`PolicyInfo`: its pick with interval and P(best)). The driver
(:func:`layoutopt.decide.driver.run`) plays any policy round after round.

Model policies (:func:`thompson`, :func:`top_two`, :func:`greedy`, :func:`ucb`) serve an
initial design first, then refit the additive + pairwise model every round and propose with
:func:`layoutopt.decide.proposals.propose`; their pick is
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

import math
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np

from layoutopt.data.observations import Observations
from layoutopt.decide.design import DESIGN_KINDS, UncoverablePairsWarning, initial_design
from layoutopt.decide.proposals import propose
from layoutopt.infer.fitting import FitWarning, LaplaceOptions, NutsOptions, SviOptions, fit
from layoutopt.infer.posterior import Posterior
from layoutopt.model.delay import Weibull, check_delay
from layoutopt.model.priors import PriorConfig
from layoutopt.model.space import LayoutSpace
from layoutopt.score.scoring import best_layout
from layoutopt.util.arrays import pow2_at_least
from layoutopt.util.seeds import seed_of

__all__ = [
    "Allocation",
    "Policy",
    "PolicyInfo",
    "greedy",
    "independent",
    "thompson",
    "top_two",
    "ucb",
    "uniform",
]

#: How an allocation's weights become impression counts (see :class:`Allocation`).
SPLITS = ("multinomial", "round")
#: Round-0 designs of the model policies: ``initial_design`` kinds, or every allowed layout.
INITIAL_DESIGNS = (*DESIGN_KINDS, "uniform")
# Spaces up to this many allowed layouts are fitted on *every* allowed layout (untested ones
# with zero impressions), so the observation arrays never change shape during a campaign.
FULL_PADDING_LIMIT = 4096
FitOptions = LaplaceOptions | NutsOptions | SviOptions
# Baselines keep one arm per allowed layout: they enumerate the space.
BASELINE_LIMIT = 1 << 22


class Allocation(NamedTuple):
    """What to serve in the next batch.

    Attributes:
        codes: ``(n, K)`` int32 variant codes of distinct allowed layouts.
        weights: ``(n,)`` non-negative traffic shares (normalised by the driver).
        split: how a batch is divided by the weights: ``"multinomial"`` (each impression
            drawn independently, as per-impression Thompson sampling would) or ``"round"``
            (largest-remainder rounding of ``batch * weight``, ties in a random order).
        segments: ``(n,)`` segment code each row is meant for, or None: every segment is
            served all rows. With segment codes, a segment's traffic is split by the weights
            of its own rows only.
    """

    codes: np.ndarray
    weights: np.ndarray
    split: str
    segments: np.ndarray | None = None


class PolicyInfo(NamedTuple):
    """What a policy would ship now, given the observations of its step.

    Attributes:
        pick: mixed-radix index of the layout it would ship (-1 before any observation).
        mean: its estimated CTR (posterior mean, or observed CTR for the baselines).
        lower: lower end of its 90% credible interval (NaN for the baselines).
        upper: upper end (NaN for the baselines).
        p_best: its posterior probability of being the best layout (NaN for baselines).
        posterior: the fitted :class:`~layoutopt.infer.posterior.Posterior` (None for baselines).
        converged: whether the step's fit reported convergence (True without a fit).
        segment_picks: ``(G,)`` the layout it would ship to each segment code when it picks
            per segment (None: ``pick`` for every segment).
    """

    pick: int
    mean: float
    lower: float
    upper: float
    p_best: float
    posterior: Posterior | None
    converged: bool
    segment_picks: np.ndarray | None = None


class Policy(NamedTuple):
    """A policy: a pair of pure functions, ``init`` and ``step``.

    Attributes:
        init: builds the policy's state for a space from a JAX PRNG key.
        step: given everything observed so far (or None), returns the new state, the
            :class:`Allocation` of the next batch and a :class:`PolicyInfo`.
        name: a short label for tables (``"thompson"``, ``"uniform"``, ...).
    """

    init: Callable[[LayoutSpace, jax.Array], Any]
    step: Callable[[Any, Observations | None, jax.Array], tuple[Any, Allocation, PolicyInfo]]
    name: str


def _no_info(pick: int = -1, mean: float = math.nan) -> PolicyInfo:
    return PolicyInfo(pick, mean, math.nan, math.nan, math.nan, None, True)


def _allowed_codes(space: LayoutSpace, limit: int) -> np.ndarray:
    """All allowed layouts as codes (spaces with at most ``limit`` allowed layouts)."""
    if space.num_allowed > limit:
        raise ValueError(
            f"this policy needs every allowed layout enumerated, but the space has "
            f"{space.num_allowed} (limit {limit})"
        )
    return np.concatenate([c for _, c in space.iter_chunks(65536, allowed_only=True)])


def _layout_totals(obs: Observations) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(index, codes, impressions, clicks)`` per distinct layout, summed over segments and
    cohorts, sorted by index (the rows of ``obs`` themselves when it has one per layout)."""
    index = obs.space.indices(obs.codes)
    uniq, first, inv = np.unique(index, return_index=True, return_inverse=True)
    if len(uniq) == len(index):
        return index, obs.codes, obs.impressions, obs.clicks
    imp = np.bincount(inv, obs.impressions, len(uniq)).astype(np.int64)
    clk = np.bincount(inv, obs.clicks, len(uniq)).astype(np.int64)
    return uniq, obs.codes[first], imp, clk


# ------------------------------------------------------------------------------ baselines
def uniform() -> Policy:
    """A classic A/B/n test: every round spreads the batch evenly over all allowed layouts.

    The batch is split by largest-remainder rounding with the remainder going to layouts in
    a random order. The pick is the served layout with the highest observed CTR (summed
    over segments and rounds; late clicks count once they are seen).

    Returns:
        The :class:`Policy`.
    """

    def init(space, key):
        return _allowed_codes(space, BASELINE_LIMIT)

    def step(allowed, obs, key):
        order = np.random.default_rng(seed_of(key)).permutation(len(allowed))
        alloc = Allocation(allowed[order], np.ones(len(allowed)), "round")
        if obs is None:
            return allowed, alloc, _no_info()
        index, _, imp, clk = _layout_totals(obs)
        rate = clk / np.maximum(imp, 1)
        j = int(np.argmax(np.where(imp > 0, rate, -1.0)))
        return allowed, alloc, _no_info(int(index[j]), rate[j])

    return Policy(init, step, "uniform")


def independent(draws_per_round: int = 1000) -> Policy:
    """Thompson sampling with an independent Beta(1, 1)-Bernoulli arm per layout ("N^D-MAB").

    Within a round the posterior is frozen (the paper also updates per batch of 1,000); each
    of ``draws_per_round`` impressions gets its own Beta draw and goes to that draw's argmax,
    so with ``draws_per_round`` equal to the batch size this is exact per-impression
    Thompson sampling with delayed updates. The pick is the most-served arm.

    Args:
        draws_per_round: Beta draws per round (set it to the batch size).

    Returns:
        The :class:`Policy`.
    """
    if draws_per_round < 1:
        raise ValueError(f"draws_per_round must be positive, got {draws_per_round}")

    def init(space, key):
        codes = _allowed_codes(space, BASELINE_LIMIT)
        return codes, space.indices(codes)

    def step(state, obs, key):
        allowed, allowed_index = state
        a = np.ones(len(allowed))
        b = np.ones(len(allowed))
        info = _no_info()
        if obs is not None:
            index, _, imp, clk = _layout_totals(obs)
            pos = np.searchsorted(allowed_index, index)
            a[pos] += clk
            b[pos] += imp - clk
            j = int(np.argmax(imp))
            info = _no_info(int(allowed_index[pos[j]]), clk[j] / imp[j])
        rng = np.random.default_rng(seed_of(key))
        draws = rng.beta(a, b, size=(draws_per_round, len(allowed)))
        n = np.bincount(draws.argmax(axis=1), minlength=len(allowed))
        keep = n > 0
        return state, Allocation(allowed[keep], n[keep] / draws_per_round, "round"), info

    return Policy(init, step, "independent")


# ----------------------------------------------------------------------------- the model
class ModelState(NamedTuple):
    """State of a model policy.

    Attributes:
        space: the layout space.
        round: rounds played so far.
        prior: the prior (fixed after round 0, so the jitted fit compiles once).
        pool: allowed layouts that pad the fitted rows with zero impressions.
        posterior: the last fit (None before the first).
    """

    space: LayoutSpace
    round: int
    prior: PriorConfig | None
    pool: np.ndarray
    posterior: Posterior | None


class ModelConfig(NamedTuple):
    """Static settings of a model policy (see :func:`thompson`)."""

    strategy: str
    k: int
    method: str
    prior: PriorConfig | None
    link: str
    pairwise: bool
    initial: str
    initial_size: int | None
    num_samples: int
    fit_options: Any
    split: str
    propose: dict
    per_segment: bool = True
    delay: Any = None
    half_life: float | None = None


def _pool(space: LayoutSpace, rng: np.random.Generator) -> np.ndarray:
    """Allowed layouts to draw zero-impression padding rows from."""
    if space.num_allowed <= FULL_PADDING_LIMIT:
        return _allowed_codes(space, FULL_PADDING_LIMIT)
    size = 8192
    seen: dict[int, np.ndarray] = {}
    while len(seen) < size:
        idx = rng.integers(0, space.size, size=2 * size)
        codes = space.codes(idx)
        keep = space.allowed_mask(codes)
        for i, c in zip(idx[keep].tolist(), codes[keep], strict=True):
            seen.setdefault(i, c)
    return np.asarray(list(seen.values())[:size], dtype=np.int32)


def _padded(obs: Observations, pool: np.ndarray) -> Observations:
    """``obs`` plus zero-impression rows from ``pool``, up to a size that rarely changes.

    Zero-impression rows add nothing to the binomial likelihood, and a fixed row count lets
    a jitted fit reuse one compilation for the whole campaign: every allowed (layout,
    segment) on small spaces, the next power of two of the observed rows otherwise.
    Observations with time columns gain a cohort every round anyway and are not padded.
    """
    if obs.age is not None or obs.round is not None:
        return obs
    space = obs.space
    G = max(space.num_segments, 1)
    small = space.num_allowed <= FULL_PADDING_LIMIT
    capacity = len(pool) * G if small else pow2_at_least(obs.num_rows, minimum=64)
    need = capacity - obs.num_rows
    if need <= 0:
        return obs
    seen = space.indices(obs.codes) * G + (0 if obs.segments is None else obs.segments)
    # candidate rows, layout-major: (pool[0], seg 0), (pool[0], seg 1), ..., (pool[1], seg 0)
    candidates = (space.indices(pool)[:, None] * G + np.arange(G)).reshape(-1)
    free = np.flatnonzero(~np.isin(candidates, seen))[:need]
    zeros = np.zeros(len(free), np.int64)
    return Observations.from_codes(
        space,
        np.concatenate([obs.codes, pool[free // G]]),
        np.concatenate([obs.impressions, zeros]),
        np.concatenate([obs.clicks, zeros]),
        source="campaign",
        segments=None if obs.segments is None else np.concatenate([obs.segments, free % G]),
    )


def _design(space: LayoutSpace, cfg: ModelConfig, seed: int) -> np.ndarray:
    if cfg.initial == "uniform":
        return _allowed_codes(space, BASELINE_LIMIT)
    size = cfg.initial_size
    if size is None and cfg.initial == "random":
        size = min(space.num_allowed, math.prod(sorted(space.cardinalities)[-2:]))
    # Pairs that no allowed layout contains cannot be covered; that is a property of the
    # space, already reported when the user builds a design themselves.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UncoverablePairsWarning)
        design = initial_design(space, seed=seed, size=size, kind=cfg.initial)
    return space.codes(np.asarray(design["index"], dtype=np.int64))


def _fit(space, obs, state: ModelState, cfg: ModelConfig, seed: int):
    """Refit on everything observed; returns (prior, posterior, converged)."""
    prior = state.prior
    if prior is None:
        rate = float(
            np.clip((obs.clicks.sum() + 0.5) / (obs.impressions.sum() + 1.0), 1e-4, 0.9999)
        )
        prior = PriorConfig(base_rate=float(f"{rate:.3g}"), link=cfg.link, pairwise=cfg.pairwise)
    # A campaign refits ~100 times; early fits on sparse data may stop at the iteration
    # cap. That is reported per round (PolicyInfo.converged) rather than raised as 100
    # warnings; the next round refits from scratch anyway.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FitWarning)
        post = fit(
            space,
            _padded(obs, state.pool),
            method=cfg.method,
            seed=seed,
            num_samples=cfg.num_samples,
            prior=prior,
            options=cfg.fit_options,
            delay=cfg.delay,
            half_life=cfg.half_life,
        )
    for w in caught:
        if not issubclass(w.category, FitWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return prior, post, not any(issubclass(w.category, FitWarning) for w in caught)


def _no_delays_yet(obs: Observations, cfg: ModelConfig) -> bool:
    """True while ``delay="auto"`` has no matured click to learn the delay from."""
    return cfg.delay == "auto" and (obs.delay_counts is None or obs.delay_counts.sum() == 0)


def _proposal(post, space: LayoutSpace, cfg: ModelConfig, seed: int, segment) -> Allocation:
    """``propose`` for one segment (or the traffic mix, ``segment=None``) as an Allocation."""
    batch = propose(
        post, space, k=cfg.k, strategy=cfg.strategy, seed=seed, segment=segment, **cfg.propose
    )
    return Allocation(
        space.codes(np.asarray(batch["index"], np.int64)),
        np.asarray(batch["weight"], np.float64),
        cfg.split,
    )


def _per_segment(post, space: LayoutSpace, cfg: ModelConfig, key) -> tuple[Allocation, np.ndarray]:
    """One proposal and one pick per segment code; segment g proposes with key fold_in(key, g)."""
    parts, picks = [], []
    for g in range(space.num_segments):
        segment = space.segment_of(g)
        parts.append(_proposal(post, space, cfg, seed_of(jax.random.fold_in(key, g)), segment))
        picks.append(int(best_layout(post, space, segment=segment).index))
    alloc = Allocation(
        np.concatenate([p.codes for p in parts]),
        np.concatenate([p.weights for p in parts]),
        cfg.split,
        np.concatenate([np.full(len(p.codes), g, np.int32) for g, p in enumerate(parts)]),
    )
    return alloc, np.asarray(picks, np.int64)


def _model_policy(cfg: ModelConfig) -> Policy:
    if cfg.k < 1:
        raise ValueError(f"k must be positive, got {cfg.k}")
    if cfg.initial not in INITIAL_DESIGNS:
        raise ValueError(f"initial must be one of {INITIAL_DESIGNS}, got {cfg.initial!r}")
    if cfg.split not in SPLITS:
        raise ValueError(f"allocation must be one of {SPLITS}, got {cfg.split!r}")
    check_delay(cfg.delay)
    h = cfg.half_life
    if h is not None and (
        isinstance(h, bool) or not isinstance(h, int | float) or not (math.isfinite(h) and h > 0)
    ):
        raise ValueError(f"half_life must be None or a positive number of rounds, got {h!r}")

    def init(space, key):
        pool = _pool(space, np.random.default_rng(seed_of(key)))
        return ModelState(space, 0, cfg.prior, pool, None)

    def step(state, obs, key):
        k_design, k_fit, k_propose = jax.random.split(key, 3)
        space = state.space
        if obs is None or _no_delays_yet(obs, cfg):  # round 0: the initial design, evenly
            codes = _design(space, cfg, seed_of(k_design))
            alloc = Allocation(codes, np.ones(len(codes)), "round")
            return state._replace(round=state.round + 1), alloc, _no_info()
        prior, post, converged = _fit(space, obs, state, cfg, seed_of(k_fit))
        pick = best_layout(post, space)
        if space.num_segments and cfg.per_segment:
            alloc, picks = _per_segment(post, space, cfg, k_propose)
        else:
            alloc, picks = _proposal(post, space, cfg, seed_of(k_propose), None), None
        info = PolicyInfo(
            int(pick.index), pick.mean, pick.lower, pick.upper, pick.p_best, post, converged, picks
        )
        return state._replace(round=state.round + 1, prior=prior, posterior=post), alloc, info

    name = cfg.strategy if cfg.pairwise else f"additive/{cfg.strategy}"
    return Policy(init, step, name)


_MODEL_ARGS = """\
method: inference method of the refit (``"laplace"``, ``"nuts"``, ``"svi"``).
        prior: the prior; default ``PriorConfig(base_rate=<pooled CTR of round 0>,
            link=link, pairwise=pairwise)``, fixed for the campaign so the fit compiles once.
        link: link of the default prior (``"logit"`` or ``"probit"``).
        pairwise: model pairwise interactions (False: additive, Hill et al.'s "MVT1").
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
        half_life: ``fit``'s half-life in rounds (None: no forgetting).
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
    method: str = "laplace",
    prior: PriorConfig | None = None,
    link: str = "logit",
    pairwise: bool = True,
    initial: str = "pairwise",
    initial_size: int | None = None,
    num_samples: int = 1000,
    fit_options: FitOptions | None = None,
    allocation: str = "multinomial",
    per_segment: bool = True,
    delay: Weibull | str | None = None,
    half_life: float | None = None,
) -> Policy:
    """Batch Thompson sampling: traffic proportional to P(layout is the best).

    Round 0 serves the initial design evenly; every later round refits the model on all
    observations so far and serves ``propose(posterior, k=k, strategy="thompson")``.

    Args:
        k: most layouts per proposal.
        {model_args}

    Returns:
        The :class:`Policy`.
    """
    return _model_policy(_config("thompson", locals(), {}))


@_with_model_args
def top_two(
    k: int = 8,
    *,
    beta: float = 0.5,
    method: str = "laplace",
    prior: PriorConfig | None = None,
    link: str = "logit",
    pairwise: bool = True,
    initial: str = "pairwise",
    initial_size: int | None = None,
    num_samples: int = 1000,
    fit_options: FitOptions | None = None,
    allocation: str = "multinomial",
    per_segment: bool = True,
    delay: Weibull | str | None = None,
    half_life: float | None = None,
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
    return _model_policy(_config("top_two", locals(), {"beta": beta}))


@_with_model_args
def greedy(
    k: int = 8,
    *,
    method: str = "laplace",
    prior: PriorConfig | None = None,
    link: str = "logit",
    pairwise: bool = True,
    initial: str = "pairwise",
    initial_size: int | None = None,
    num_samples: int = 1000,
    fit_options: FitOptions | None = None,
    allocation: str = "multinomial",
    per_segment: bool = True,
    delay: Weibull | str | None = None,
    half_life: float | None = None,
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
    return _model_policy(_config("greedy", locals(), {}))


@_with_model_args
def ucb(
    k: int = 8,
    *,
    quantile: float = 0.95,
    method: str = "laplace",
    prior: PriorConfig | None = None,
    link: str = "logit",
    pairwise: bool = True,
    initial: str = "pairwise",
    initial_size: int | None = None,
    num_samples: int = 1000,
    fit_options: FitOptions | None = None,
    allocation: str = "multinomial",
    per_segment: bool = True,
    delay: Weibull | str | None = None,
    half_life: float | None = None,
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
    return _model_policy(_config("ucb", locals(), {"quantile": quantile}))
