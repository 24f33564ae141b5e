"""Model policies: refit the additive + pairwise model every round, then propose from it.

:func:`model_policy` builds the :class:`~layoutopt.decide.interface.Policy` of a
:class:`ModelConfig`; the factories of :mod:`layoutopt.decide.policies` (``thompson``,
``top_two``, ``greedy``, ``ucb``) fill one in. Round 0 serves an initial design; every later
step fits on everything observed (padded to a fixed row count so a jitted fit compiles
once), picks with :func:`~layoutopt.score.scoring.best_layout` and proposes with
:func:`~layoutopt.decide.proposals.propose`, per segment on a space with segments.

The default prior is :func:`model_prior`: one definition for the simulated and the stored
campaign loop.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, NamedTuple

import jax
import numpy as np

from layoutopt.data.observations import Observations
from layoutopt.decide.baselines import BASELINE_LIMIT
from layoutopt.decide.design import DESIGN_KINDS, UncoverablePairsWarning, initial_design
from layoutopt.decide.interface import (
    SPLITS,
    Allocation,
    Policy,
    PolicyInfo,
    allowed_codes,
    no_info,
)
from layoutopt.decide.proposals import propose
from layoutopt.infer import FitWarning, MetaPrior, default_prior, fit
from layoutopt.infer.data import check_half_life
from layoutopt.infer.posterior import Posterior
from layoutopt.model.delay import check_delay
from layoutopt.model.priors import PriorConfig
from layoutopt.model.space import LayoutSpace
from layoutopt.score.scoring import best_layout
from layoutopt.util.arrays import pow2_at_least
from layoutopt.util.seeds import seed_of

__all__ = [
    "FULL_PADDING_LIMIT",
    "INITIAL_DESIGNS",
    "ModelConfig",
    "ModelState",
    "model_policy",
    "model_prior",
    "same_rows",
]

#: Round-0 designs of the model policies: ``initial_design`` kinds, or every allowed layout.
INITIAL_DESIGNS = (*DESIGN_KINDS, "uniform")
# Spaces up to this many allowed layouts are fitted on *every* allowed layout (untested ones
# with zero impressions), so the observation arrays never change shape during a campaign.
FULL_PADDING_LIMIT = 4096


class ModelState(NamedTuple):
    """State of a model policy.

    Attributes:
        space: the layout space.
        round: rounds played so far.
        prior: the prior (fixed at the first fit, so the jitted fit compiles once).
        pool: allowed layouts that pad the fitted rows with zero impressions.
        posterior: the last fit (None before the first).
        fitted: the observations ``posterior`` was fitted on: a step on the very same
            observations proposes from it instead of fitting again (a stored campaign
            proposing twice without new data; in a simulation every round adds data).
    """

    space: LayoutSpace
    round: int
    prior: PriorConfig | MetaPrior | None
    pool: np.ndarray
    posterior: Posterior | None
    fitted: Observations | None = None


class ModelConfig(NamedTuple):
    """Static settings of a model policy (see :func:`thompson`)."""

    strategy: str
    k: int
    method: str
    prior: PriorConfig | MetaPrior | None
    link: str | None
    pairwise: bool | None
    initial: str
    initial_size: int | None
    num_samples: int
    fit_options: Any
    split: str
    propose: dict
    per_segment: bool = True
    delay: Any = None
    half_life: float | str | None = None


def model_prior(observations: Observations, cfg: ModelConfig, prior=None):
    """The prior a model policy fixes at its first fit: ``fit``'s default prior.

    ``prior`` (default: the policy's ``cfg.prior``; ``PriorConfig(link=cfg.link,
    pairwise=cfg.pairwise)`` without one) with a base rate left unset taken from the first
    observations a campaign fits (:func:`layoutopt.infer.default_prior`: the pooled
    observed CTR); a meta-prior is kept as it is. A policy fixes the result after its first
    fit, so the jitted fit compiles once per campaign; a stored campaign resumes with the
    same prior from the data of its first round.

    Args:
        observations: the observations of the campaign's first fit.
        cfg: the policy's settings (after :func:`settle_model`).
        prior: the prior so far (None: ``cfg.prior``).

    Returns:
        A :class:`~layoutopt.model.priors.PriorConfig` with a base rate, or the meta-prior.
    """
    prior = cfg.prior if prior is None else prior
    if isinstance(prior, MetaPrior):
        return prior
    if prior is None:
        prior = PriorConfig(link=cfg.link, pairwise=cfg.pairwise)
    return default_prior(observations, prior)


def settle_model(cfg: ModelConfig) -> ModelConfig:
    """``cfg`` with its link and pairwise flag settled against its prior.

    None takes the prior's setting (``"logit"`` and pairwise without a prior); a setting
    given both ways must agree, so no option silently overrides another.

    Raises:
        ValueError: when ``link`` or ``pairwise`` contradicts the prior's.
    """
    prior = cfg.prior
    known = None if prior is None else prior.config() if isinstance(prior, MetaPrior) else prior
    settled = {}
    for name, default in (("link", "logit"), ("pairwise", True)):
        given, held = getattr(cfg, name), None if known is None else getattr(known, name)
        if given is not None and held is not None and given != held:
            raise ValueError(
                f"{name}={given!r} contradicts the prior's {name}={held!r}; give it once "
                f"(in the prior, or as {name}= without a prior)"
            )
        settled[name] = next(v for v in (given, held, default) if v is not None)
    return cfg._replace(**settled)


def same_rows(a: Observations | None, b: Observations | None) -> bool:
    """Whether two observations hold the same rows (codes, segments, counts, time keys)."""
    if a is None or b is None:
        return False
    if a is b:
        return True
    fields = ("codes", "segments", "impressions", "clicks", "age", "round", "delay_counts")
    for name in fields:
        x, y = getattr(a, name), getattr(b, name)
        if (x is None) != (y is None) or (x is not None and not np.array_equal(x, y)):
            return False
    return a.space == b.space


def _pool(space: LayoutSpace, rng: np.random.Generator) -> np.ndarray:
    """Allowed layouts to draw zero-impression padding rows from."""
    if space.num_allowed <= FULL_PADDING_LIMIT:
        return allowed_codes(space, FULL_PADDING_LIMIT)
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
        return allowed_codes(space, BASELINE_LIMIT)
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
    prior = model_prior(obs, cfg, state.prior)
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
    """True while ``delay="auto"`` waits for a first click time to learn the delay from
    (data without click times are fitted at once: the fit says the delay is unmeasurable
    and fits without one)."""
    return cfg.delay == "auto" and obs.delay_counts is not None and obs.delay_counts.sum() == 0


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


def model_policy(cfg: ModelConfig) -> Policy:
    cfg = settle_model(cfg)
    if cfg.k < 1:
        raise ValueError(f"k must be positive, got {cfg.k}")
    if cfg.initial not in INITIAL_DESIGNS:
        raise ValueError(f"initial must be one of {INITIAL_DESIGNS}, got {cfg.initial!r}")
    if cfg.split not in SPLITS:
        raise ValueError(f"allocation must be one of {SPLITS}, got {cfg.split!r}")
    check_delay(cfg.delay)
    check_half_life(cfg.half_life)

    def init(space, key):
        pool = _pool(space, np.random.default_rng(seed_of(key)))
        return ModelState(space, 0, cfg.prior, pool, None)

    def step(state, obs, key):
        k_design, k_fit, k_propose = jax.random.split(key, 3)
        space = state.space
        if obs is None or _no_delays_yet(obs, cfg):  # round 0: the initial design, evenly
            codes = _design(space, cfg, seed_of(k_design))
            alloc = Allocation(codes, np.ones(len(codes)), "round")
            return state._replace(round=state.round + 1), alloc, no_info()
        if state.posterior is not None and same_rows(obs, state.fitted):
            prior, post, converged = state.prior, state.posterior, True
        else:
            prior, post, converged = _fit(space, obs, state, cfg, seed_of(k_fit))
        pick = best_layout(post, space)
        if space.num_segments and cfg.per_segment:
            alloc, picks = _per_segment(post, space, cfg, k_propose)
        else:
            alloc, picks = _proposal(post, space, cfg, seed_of(k_propose), None), None
        info = PolicyInfo(
            int(pick.index), pick.mean, pick.lower, pick.upper, pick.p_best, post, converged, picks
        )
        new = state._replace(round=state.round + 1, prior=prior, posterior=post, fitted=obs)
        return new, alloc, info

    def resume(state, first, rounds, fitted=None):
        prior = model_prior(first, cfg, state.prior)
        state = state._replace(round=int(rounds), prior=prior)
        if fitted is not None:
            state = state._replace(fitted=fitted[0], posterior=fitted[1])
        return state

    name = cfg.strategy if cfg.pairwise else f"additive/{cfg.strategy}"
    return Policy(init, step, name, resume)
