"""Synthetic ground-truth worlds and a campaign runner that measures regret.

A :class:`SyntheticWorld` is the additive + pairwise model with *known* parameters::

    ctr(x) = inv_link(b0 + sum_k m_k[x_k] + sum_{k<l} p_kl[x_k, x_l])

computed by the same :func:`layoutopt.model.logits` the fitted model uses, so the simulator
and the model can never disagree about what a parameter means.

:func:`run_campaign` is the campaign driver (:func:`layoutopt.decide.driver.run`) playing any
:mod:`layoutopt.decide.policies` policy against a world, recording per round the **local regret**
(mean regret of the impressions served in the round) and the **simple regret** of the layout
the policy would ship now. Presets: :meth:`SyntheticWorld.hill2017` (the simulation of Hill
et al. 2017) and :meth:`SyntheticWorld.demo` (the ``layoutopt demo`` world). The same
driver plays worlds with audiences (:class:`SegmentWorld`, from
:mod:`layoutopt.sim.segments`) and in time (:class:`~layoutopt.sim.timeworld.TimeWorld`: click
delays, a change of taste); all three implement the driver's
:class:`~layoutopt.decide.driver.World` protocol.

References:
    Hill, Nassif, Liu, Iyer and Vishwanathan, "An Efficient Bandit Algorithm for Realtime
    Multivariate Optimization", KDD 2017.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from layoutopt.decide import driver
from layoutopt.decide.driver import Response, RoundInfo, World
from layoutopt.decide.policies import Policy
from layoutopt.decide.stopping import StopRule
from layoutopt.model.core import LINKS, Params, inv_link, logits, pair_list
from layoutopt.model.priors import PriorConfig
from layoutopt.model.space import LayoutSpace
from layoutopt.score.optimize import argmax_codes
from layoutopt.util.arrays import pow2_at_least
from layoutopt.util.limits import check_seed

__all__ = [
    "SyntheticWorld",
    "WorldBest",
    "CampaignRecord",
    "CampaignResult",
    "run_campaign",
    "HILL2017_CHECKPOINTS",
]

#: Impression counts at which Hill et al. (2017) read their regret curves, and we report.
HILL2017_CHECKPOINTS = (10_000, 20_000, 40_000, 60_000, 100_000)

# Spaces up to this many layouts keep a full table of true CTRs and are solved by enumeration.
_ENUMERATE_LIMIT = 1 << 22
#: The built-in example space of ``layoutopt demo`` (package data).
DEMO_SPACE_PATH = Path(__file__).parent.parent / "examples" / "demo_space.toml"


@functools.partial(jax.jit, static_argnames="link")
def _ctr_kernel(params: Params, codes: jax.Array, link: str) -> jax.Array:
    return inv_link(logits(params, codes), link)


class WorldBest(NamedTuple):
    """The true best allowed layout of a world.

    Attributes:
        codes: ``(K,)`` int32 variant codes.
        index: mixed-radix index (Python int).
        ctr: its true click-through rate.
        layout: ``{component: variant label}``.
    """

    codes: np.ndarray
    index: int
    ctr: float
    layout: dict[str, str]


@dataclass(frozen=True, eq=False)
class SyntheticWorld:
    """A ground-truth world: the additive + pairwise model with known parameters.

    Args:
        space: the :class:`~layoutopt.model.space.LayoutSpace`.
        params: true, unbatched :class:`~layoutopt.model.Params` (pairwise tables may be
            empty for an additive world).
        link: ``"logit"`` or ``"probit"``.

    Examples:
        >>> space = LayoutSpace({"a": ["a0", "a1"], "b": ["b0", "b1", "b2"]})
        >>> world = SyntheticWorld.random(space, seed=0, base_rate=0.05)
        >>> world.ctr(np.array([[0, 1]])).shape
        (1,)
        >>> clicks = world.serve(np.array([[0, 1]]), np.array([1000]), seed=1)

    References:
        Hill et al., "An Efficient Bandit Algorithm for Realtime Multivariate Optimization",
        KDD 2017 (Section 5 simulates worlds of exactly this form with a probit link).
    """

    space: LayoutSpace
    params: Params
    link: str = "logit"

    def __post_init__(self):
        if self.link not in LINKS:
            raise ValueError(f"link must be one of {LINKS}, got {self.link!r}")
        card = self.space.cardinalities
        K = len(card)
        if len(self.params.main) != K:
            raise ValueError(
                f"params have {len(self.params.main)} main-effect tables, the space has {K} "
                "components"
            )
        for k, m in enumerate(self.params.main):
            if np.shape(m) != (card[k],):
                raise ValueError(
                    f"params.main[{k}] has shape {np.shape(m)}; component "
                    f"{self.space.components[k]!r} needs ({card[k]},)"
                )
        if self.params.pair:
            pairs = pair_list(K)
            if len(self.params.pair) != len(pairs):
                raise ValueError(
                    f"params have {len(self.params.pair)} pair tables, expected {len(pairs)}"
                )
            for (k, j), p in zip(pairs, self.params.pair, strict=True):
                if np.shape(p) != (card[k], card[j]):
                    raise ValueError(
                        f"pair table for ({self.space.components[k]!r}, "
                        f"{self.space.components[j]!r}) has shape {np.shape(p)}, expected "
                        f"({card[k]}, {card[j]})"
                    )
        if np.shape(self.params.intercept) != ():
            raise ValueError("params must be unbatched (a scalar intercept)")
        # Store as float32 device arrays once: every later call then reuses one compilation.
        object.__setattr__(
            self, "params", jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), self.params)
        )

    # ------------------------------------------------------------------ constructors
    @classmethod
    def random(
        cls,
        space: LayoutSpace,
        seed: int,
        base_rate: float = 0.05,
        main_scale: float = 0.3,
        pair_scale: float = 0.15,
        link: str = "logit",
        pairwise: bool = True,
    ) -> SyntheticWorld:
        """Draw a world: ``m_k[v] ~ Normal(0, main_scale)``, ``p_kl[v, w] ~ Normal(0, pair_scale)``.

        The intercept is ``link(base_rate)``, so ``base_rate`` is the CTR of a layout whose
        effects are all zero (roughly the median CTR of the space).

        Args:
            space: the layout space.
            seed: integer seed (NumPy ``default_rng``).
            base_rate: CTR at zero effects, in (0, 1).
            main_scale: sd of every main effect, on the link scale.
            pair_scale: sd of every pairwise interaction effect, on the link scale.
            link: ``"logit"`` or ``"probit"``.
            pairwise: draw interaction terms (``False`` gives an additive world).

        Returns:
            The :class:`SyntheticWorld`.
        """
        if not 0.0 < base_rate < 1.0:
            raise ValueError(f"base_rate must lie in (0, 1), got {base_rate}")
        if main_scale < 0 or pair_scale < 0:
            raise ValueError("main_scale and pair_scale must be non-negative")
        rng = np.random.default_rng(check_seed(seed))
        card = space.cardinalities
        intercept = PriorConfig(base_rate=base_rate, link=link).intercept_loc
        main = tuple(rng.normal(0.0, main_scale, n) for n in card)
        pair = (
            tuple(rng.normal(0.0, pair_scale, (card[k], card[j])) for k, j in pair_list(len(card)))
            if pairwise
            else ()
        )
        return cls(space, Params(np.asarray(intercept), main, pair), link)

    @classmethod
    def hill2017(cls, seed: int) -> SyntheticWorld:
        """The simulation world of Hill et al. (2017): 3 widgets x 8 variants = 512 layouts.

        Probit link with strong pairwise interactions. The paper reports true success rates
        spread over about 0.045-0.24; we calibrated the generating scales to match:
        ``base_rate=0.115`` (probit intercept ``ndtri(0.115) = -1.20``), ``main_scale=0.06``,
        ``pair_scale=0.08`` (interactions *larger* than main effects). Over 300 worlds the mean
        minimum CTR is 0.046 (10-90%: 0.036-0.055) and the mean maximum 0.240 (0.211-0.274);
        ``tests/test_simulate.py`` re-checks this.

        Args:
            seed: integer seed of the world.

        Returns:
            The :class:`SyntheticWorld`.

        References:
            Hill et al., "An Efficient Bandit Algorithm for Realtime Multivariate
            Optimization", KDD 2017, Section 5.1.
        """
        space = LayoutSpace(
            {f"widget{d + 1}": [f"w{d + 1}v{v}" for v in range(8)] for d in range(3)}
        )
        return cls.random(
            space, seed, base_rate=0.115, main_scale=0.06, pair_scale=0.08, link="probit"
        )

    @classmethod
    def demo(cls) -> SyntheticWorld:
        """The world of ``layoutopt demo``: a Prime-style callout space with a fixed truth.

        The space is ``layoutopt/examples/demo_space.toml`` (5 components, one forbidden
        pair); effects are drawn with seed 2024, ``base_rate=0.04``, ``main_scale=0.25``,
        ``pair_scale=0.1``, logit link.

        Returns:
            The :class:`SyntheticWorld`.
        """
        space = LayoutSpace.from_toml(DEMO_SPACE_PATH)
        return cls.random(space, seed=2024, base_rate=0.04, main_scale=0.25, pair_scale=0.1)

    # ------------------------------------------------------------------ ground truth
    def ctr(self, codes) -> np.ndarray:
        """True click-through rate of layouts.

        Args:
            codes: ``(n, K)`` integer variant codes (allowed or not).

        Returns:
            ``(n,)`` float64 CTRs, ``inv_link(logits(params, codes))``.
        """
        codes = np.asarray(codes, dtype=np.int32)
        if codes.ndim != 2 or codes.shape[1] != self.space.num_components:
            raise ValueError(
                f"codes must have shape (n, {self.space.num_components}), got {codes.shape}"
            )
        n = codes.shape[0]
        # Pad to a power-of-two bucket so varying n costs O(log n) compilations, not O(n).
        cap = pow2_at_least(n, minimum=16)
        padded = np.zeros((cap, codes.shape[1]), dtype=np.int32)
        padded[:n] = codes
        out = _ctr_kernel(self.params, jnp.asarray(padded), self.link)
        return np.asarray(out, dtype=np.float64)[:n]

    @functools.cached_property
    def _table(self) -> np.ndarray:
        """True CTR of every layout by index (NaN where forbidden); small spaces only.

        Derived once from the immutable parameters (``cached_property`` stores it in the
        instance dict; the dataclass fields stay frozen).
        """
        if self.space.size > _ENUMERATE_LIMIT:
            raise ValueError(
                f"space of {self.space.size} layouts is too large for a CTR table "
                f"(limit {_ENUMERATE_LIMIT})"
            )
        chunks = []
        for _, codes in self.space.iter_chunks(65536, allowed_only=False):
            c = self.ctr(codes)
            c[~self.space.allowed_mask(codes)] = np.nan
            chunks.append(c)
        return np.concatenate(chunks)

    def ctr_of_index(self, indices) -> np.ndarray:
        """True CTR of layouts given by mixed-radix indices (table look-up when small)."""
        idx = np.asarray(indices, dtype=np.int64)
        if self.space.size <= _ENUMERATE_LIMIT:
            return self._table[idx]
        return self.ctr(self.space.codes(idx))

    def best(self) -> WorldBest:
        """The true best allowed layout.

        Exact by enumeration for spaces up to 2^22 layouts; beyond that by the exact
        optimiser :func:`layoutopt.score.optimize.argmax_codes` (``method="exact"``).

        Returns:
            :class:`WorldBest` with codes, index, ctr and layout.
        """
        return self._best

    @functools.cached_property
    def _best(self) -> WorldBest:
        if self.space.size <= _ENUMERATE_LIMIT:
            i = int(np.nanargmax(self._table))
            codes = self.space.codes_of(i)
        else:
            batched = jax.tree.map(lambda a: a[None], self.params)
            # the optimum is certified; the seed only places the incumbent's restarts
            found = argmax_codes(batched, self.space, method="exact", seed=0)[0]
            codes = tuple(int(c) for c in found)
            i = self.space.index_of_codes(codes)
        codes_arr = np.asarray(codes, dtype=np.int32)
        return WorldBest(
            codes_arr, i, float(self.ctr(codes_arr[None])[0]), self.space.decode(codes_arr)
        )

    def serve(self, codes, impressions, seed=None, rng: np.random.Generator | None = None):
        """Serve impressions and draw clicks ``~ Binomial(impressions, ctr)``.

        Args:
            codes: ``(n, K)`` variant codes.
            impressions: ``(n,)`` non-negative integer impressions per layout.
            seed: integer seed (used when ``rng`` is not given).
            rng: a NumPy ``Generator``; takes precedence over ``seed``.

        Returns:
            ``(n,)`` int64 clicks.
        """
        if rng is None:
            if seed is None:
                raise ValueError("serve needs a seed or an rng: randomness is always explicit")
            rng = np.random.default_rng(seed)
        impressions = np.asarray(impressions)
        if np.any(impressions < 0):
            raise ValueError("impressions must be non-negative")
        p = self.ctr(codes)
        if impressions.shape != p.shape:
            raise ValueError(f"impressions need shape {p.shape}, got {impressions.shape}")
        return rng.binomial(impressions.astype(np.int64), p).astype(np.int64)

    # ---------------------------------------------------- the driver's World protocol
    @property
    def shares(self) -> None:
        """No segments: the driver serves the whole batch to one audience."""
        return None

    @property
    def hours_per_round(self) -> None:
        """No time: clicks are seen at once and rounds are merged."""
        return None

    def respond(self, codes, impressions, *, segment, round, rng) -> Response:
        """Serve one round's rows (:class:`~layoutopt.decide.driver.World`): clicks at once."""
        return Response(self.serve(codes, impressions, rng=rng), None)

    def truth(self, index, segments, round: int) -> np.ndarray:
        """True CTR of layouts by index (one truth for every segment and round)."""
        return self.ctr_of_index(index)

    def best_at(self, segment, round: int) -> WorldBest:
        """The true best layout (the same for every segment and round)."""
        return self.best()


# ======================================================================= campaigns
class CampaignRecord(NamedTuple):
    """One round of a simulated campaign (the field names of :class:`CampaignResult`).

    Attributes:
        round: 0-based round number.
        impressions: cumulative impressions after the round.
        clicks: cumulative clicks.
        local_regret: mean regret of the impressions served in the round,
            ``sum_i n_i (ctr* - ctr_i) / sum_i n_i``.
        simple_regret: ``ctr* - ctr(pick)`` of the layout the policy would ship after the
            round (``best_layout`` for the model policies; the empirical winner for
            ``uniform``; the most-served arm for ``independent``).
        pick_index: index of that pick.
        pick_tested: whether the pick had been served.
        num_tested: distinct layouts served so far.
        seconds: wall time of the round.
        fit_converged: whether the round's fit converged (True for the baselines).
        pick_ctr: true CTR of what the policy would ship now (traffic-weighted over
            segments: ``sum_g w_g ctr(pick_g, g)``).
        interval_width: width of the pick's 90% credible interval (NaN for baselines).
        expected_loss: the stopping rule's expected loss of the leader (NaN without
            ``stop=``).
        value_remaining: its relative value remaining (NaN without ``stop=``).
        stop: whether the rule said stop after this round (the last round when True).
    """

    round: int
    impressions: int
    clicks: int
    local_regret: float
    simple_regret: float
    pick_index: int
    pick_tested: bool
    num_tested: int
    seconds: float
    fit_converged: bool
    pick_ctr: float
    interval_width: float
    expected_loss: float = float("nan")
    value_remaining: float = float("nan")
    stop: bool = False


@dataclass(frozen=True)
class CampaignResult:
    """Every round of one campaign: one array per :class:`CampaignRecord` field.

    Attributes:
        name: the policy's name (``"thompson"``, ``"additive/thompson"``, ``"uniform"``...).
        best_ctr: the world's true best CTR ``ctr*`` (in round 0; with segments the
            traffic-weighted best of every segment, ``sum_g w_g ctr*_g``).
        rounds: ``{field: (R,) array}`` for every field of :class:`CampaignRecord`; also
            readable as attributes (``result.local_regret``).
    """

    name: str
    best_ctr: float
    rounds: dict[str, np.ndarray]

    def __getattr__(self, field_name: str) -> np.ndarray:
        if field_name in CampaignRecord._fields:
            return self.rounds[field_name]
        raise AttributeError(field_name)

    @classmethod
    def from_records(cls, name: str, best_ctr: float, records: Sequence[CampaignRecord]):
        """Stack per-round records into arrays."""
        rounds = {f: np.asarray([getattr(r, f) for r in records]) for f in CampaignRecord._fields}
        return cls(name, float(best_ctr), rounds)

    def to_pandas(self):
        """One row per round, one column per :class:`CampaignRecord` field."""

        return pd.DataFrame(self.rounds)

    def summary(self, checkpoints: Sequence[int] = HILL2017_CHECKPOINTS):
        """Regret at impression checkpoints (the first round reaching each checkpoint).

        Returns:
            DataFrame indexed by checkpoint with ``local_regret``, ``simple_regret`` and
            ``cumulative_regret`` (mean regret per impression served so far).
        """

        imp = self.impressions
        per_round = np.diff(np.concatenate([[0], imp]))
        cum = np.cumsum(per_round * self.local_regret) / np.maximum(imp, 1)
        rows = []
        for c in checkpoints:
            r = int(np.searchsorted(imp, c))
            if r >= len(imp):
                continue
            rows.append(
                {
                    "impressions": int(c),
                    "local_regret": float(self.local_regret[r]),
                    "simple_regret": float(self.simple_regret[r]),
                    "cumulative_regret": float(cum[r]),
                }
            )
        return pd.DataFrame(rows).set_index("impressions") if rows else pd.DataFrame()


def run_campaign(
    world: World,
    policy: Policy,
    budget: int,
    batch_size: int,
    seed: int,
    callback: Callable[[RoundInfo, CampaignRecord], None] | None = None,
    stop: StopRule | None = None,
) -> CampaignResult:
    """Play a policy against a synthetic world and record regret per round.

    This is :func:`layoutopt.decide.driver.run` against the world; every round's
    :class:`CampaignRecord` scores the served impressions and the policy's pick against the
    known truth. Three kinds of world are played the same way:

    * :class:`SyntheticWorld`: regret against the one best layout.
    * :class:`SegmentWorld`: every round's traffic splits over the segments by their
      shares; a segment-aware policy allocates (and picks) per segment. Local regret is
      ``best_g - ctr(x, g)`` averaged over the round's impressions; simple regret is
      ``sum_g w_g (best_g - ctr(pick_g, g))``, with the policy's pick for every segment
      when it does not pick per segment.
    * :class:`~layoutopt.sim.timeworld.TimeWorld`: clicks arrive after a delay (the policy sees
      only those arrived by each round's end) and the CTRs may change at a round; regret
      in a round is against that round's best.

    Args:
        world: the ground truth: a :class:`SyntheticWorld`, :class:`SegmentWorld` or
            :class:`~layoutopt.sim.timeworld.TimeWorld`.
        policy: a :class:`~layoutopt.decide.policies.Policy` (e.g. ``policies.thompson(k=8)``).
        budget: total impressions.
        batch_size: impressions per round (the last round may be smaller).
        seed: integer seed of the campaign (serving, fitting, proposing).
        callback: called as ``callback(info, record)`` after every round with the driver's
            :class:`~layoutopt.decide.driver.RoundInfo` and the round's :class:`CampaignRecord`.
        stop: a :class:`~layoutopt.decide.stopping.StopRule`: the campaign ends at the first
            round the rule says stop (``result.impressions[-1]`` is the experiment's size,
            ``result.simple_regret[-1]`` the regret of what it ships); the budget is the cap.

    Returns:
        :class:`CampaignResult`; its ``best_ctr`` is the traffic-weighted best CTR of round
        0 (every segment's own best).

    References:
        Hill et al., "An Efficient Bandit Algorithm for Realtime Multivariate Optimization",
        KDD 2017 (regret definitions and the uniform / N^D-MAB / MVT1 baselines).
    """
    space = world.space
    records: list[CampaignRecord] = []

    def record(info: RoundInfo) -> None:
        obs = info.observations
        tested = space.indices(obs.codes)
        best = _bests(world, info.round)
        rows = None if info.segments is None else info.segments
        served_best = best[0] if rows is None else best[rows]
        ctr = world.truth(space.indices(info.codes), rows, info.round)
        pick_ctr, simple = _shipped(world, info, best)
        rec = CampaignRecord(
            round=info.round,
            impressions=int(obs.impressions.sum()),
            clicks=int(obs.clicks.sum()),
            local_regret=float(
                np.sum(info.impressions * (served_best - ctr)) / info.impressions.sum()
            ),
            simple_regret=simple,
            pick_index=info.pick,
            pick_tested=bool(np.isin(info.pick, tested)),
            num_tested=len(np.unique(tested)),
            seconds=info.seconds,
            fit_converged=info.converged,
            pick_ctr=pick_ctr,
            interval_width=float(info.upper - info.lower),
            **_stop_fields(info),
        )
        records.append(rec)
        if callback is not None:
            callback(info, rec)

    driver.run(
        policy, world, budget=budget, batch_size=batch_size, seed=seed, callback=record, stop=stop
    )
    best_ctr = _bests(world, 0)
    if world.shares is not None:
        best_ctr = world.shares @ best_ctr
    return CampaignResult.from_records(policy.name, float(np.ravel(best_ctr)[0]), records)


def _stop_fields(info: RoundInfo) -> dict:
    d = info.decision
    if d is None:
        return {}
    return {"expected_loss": d.expected_loss, "value_remaining": d.value_remaining, "stop": d.stop}


def _bests(world, round: int) -> np.ndarray:
    """True best CTR of every segment code in ``round`` (one entry without segments)."""
    if world.shares is None:
        return np.array([world.best_at(None, round).ctr])
    return np.array([world.best_at(g, round).ctr for g in range(len(world.shares))])


def _shipped(world, info: RoundInfo, best: np.ndarray) -> tuple[float, float]:
    """``(pick_ctr, simple_regret)`` of what the policy would ship after ``info``'s round."""
    if world.shares is None:
        ctr = float(world.truth([info.pick], None, info.round)[0])
        return ctr, float(best[0] - ctr)
    G = len(world.shares)
    picks = np.full(G, info.pick) if info.segment_picks is None else info.segment_picks
    ctr = world.truth(np.asarray(picks, np.int64), np.arange(G), info.round)
    return float(world.shares @ ctr), float(world.shares @ (best - ctr))
