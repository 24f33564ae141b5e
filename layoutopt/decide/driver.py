"""One driver for every campaign: play a policy round after round.

Each round the driver asks the policy for an :class:`~layoutopt.decide.policies.Allocation`, splits
the batch's impressions over the world's segments (by their traffic shares) and then by the
allocation, serves them (``world.respond``: a synthetic world in
:func:`layoutopt.sim.run_campaign`, or any :class:`World`, e.g. a wrapper around real
traffic), records the served rows in a :class:`Ledger` and hands a :class:`RoundInfo` to the
callback. The policy's next step sees what the ledger shows at the round's end: per layout
(and segment) totals, or, in a world with time (click delays, drift), one row per (layout,
segment, round) cohort with its ``age``, ``round`` and only the clicks that have arrived.
Its pick after the last round comes from one more step whose allocation is not served.

Keys: round r's JAX PRNG key is ``fold_in(key(seed), r)``, split once into the batch split's,
the serving's and the policy step's key; a longer budget therefore replays the same first
rounds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol, runtime_checkable

import jax
import numpy as np

from layoutopt.data.observations import Observations
from layoutopt.decide.interface import Allocation, Policy, PolicyInfo
from layoutopt.decide.stopping import Decision, StopRule, decision
from layoutopt.model.delay import DELAY_EDGES
from layoutopt.model.space import LayoutSpace
from layoutopt.util.limits import check_seed
from layoutopt.util.seeds import seed_of

__all__ = [
    "Ledger",
    "Response",
    "RoundInfo",
    "RoundKeys",
    "World",
    "resume",
    "round_keys",
    "round_step",
    "run",
    "setup_keys",
    "split_batch",
]

# Round r's key is fold_in(key(seed), r); the policy's init and first step fold in this.
_SETUP = 2**31 - 1


class RoundKeys(NamedTuple):
    """Round r's JAX PRNG keys: ``fold_in(key(seed), r)`` split once into its three uses.

    Attributes:
        split: divides the batch by the allocation.
        serve: the world's randomness (clicks, delays).
        step: the policy's step after the round (its fit and the next proposal).
    """

    split: jax.Array
    serve: jax.Array
    step: jax.Array


def setup_keys(seed: int) -> tuple[jax.Array, jax.Array]:
    """``(init, first step)`` keys of a campaign of integer ``seed``.

    Raises:
        ValueError: for a seed outside ``[0, 2**32 - 1]``.
    """
    base = jax.random.key(check_seed(seed))
    k_init, k_first = jax.random.split(jax.random.fold_in(base, _SETUP))
    return k_init, k_first


def round_keys(seed: int, round: int) -> RoundKeys:
    """The :class:`RoundKeys` of round ``round`` (0-based) of a campaign of integer ``seed``.

    They depend on the seed and the round alone, so a longer campaign replays the same first
    rounds, and a stored campaign (:meth:`layoutopt.campaign.Campaign.propose`) draws the
    same keys as a simulated one.

    Raises:
        ValueError: for a seed outside ``[0, 2**32 - 1]``.
    """
    base = jax.random.key(check_seed(seed))
    return RoundKeys(*jax.random.split(jax.random.fold_in(base, round), 3))


def round_step(
    policy: Policy, state: Any, observations: Observations | None, key: jax.Array
) -> tuple[Any, Allocation, PolicyInfo]:
    """The one loop body of every campaign: the policy's step on what was observed.

    :func:`run` calls it after each simulated round (``key`` is that round's
    ``RoundKeys.step``), and a stored campaign calls it on the store's observations, so a
    stored and a simulated campaign with the same data, policy and seed propose the same.

    Args:
        policy: a :class:`~layoutopt.decide.interface.Policy`.
        state: its state (:func:`resume`, or the previous step's).
        observations: everything observed so far (None before the first round).
        key: the step's key (:func:`round_keys`).

    Returns:
        ``(state, allocation, info)``.

    Raises:
        ValueError: if the allocation has no layout with a positive, finite weight, or a
            row count that does not match its codes.
    """
    state, alloc, info = policy.step(state, observations, key)
    weights = np.asarray(alloc.weights, np.float64)
    codes = np.asarray(alloc.codes)
    bad = weights.shape != (len(codes),) or not np.all(np.isfinite(weights))
    if bad or not (weights > 0).any():
        raise ValueError(
            f"policy {policy.name!r}: an allocation needs at least one layout with a positive "
            f"weight, and one finite weight per layout; got {len(codes)} layouts, weights "
            f"{weights.reshape(-1)[:4].tolist()}"
        )
    return state, alloc, info


def resume(
    policy: Policy,
    space: LayoutSpace,
    *,
    seed: int,
    first: Observations,
    rounds: int,
    fitted: tuple[Observations, Any] | None = None,
) -> Any:
    """The policy's state after ``rounds`` rounds of a campaign of ``seed``, without replaying
    them: ``init`` with the campaign's init key, then ``policy.resume`` (when it has one)
    with the observations of the first round.

    Args:
        policy: a :class:`~layoutopt.decide.interface.Policy`.
        space: the layout space.
        seed: the campaign's seed.
        first: what the campaign had observed at its first fit (its round-0 data).
        rounds: rounds played so far.
        fitted: ``(observations, posterior)`` of the latest fit, or None; a step on those
            same observations proposes from that posterior instead of fitting again.

    Returns:
        The state to pass to :func:`round_step`.
    """
    state = policy.init(space, setup_keys(seed)[0])
    return state if policy.resume is None else policy.resume(state, first, rounds, fitted)


class RoundInfo(NamedTuple):
    """What happened in one round.

    Attributes:
        round: 0-based round number.
        allocation: the policy's :class:`~layoutopt.decide.policies.Allocation` for the round.
        codes: ``(n, K)`` layouts served (those that got impressions).
        impressions: ``(n,)`` impressions served to each.
        clicks: ``(n,)`` clicks on each seen by the round's end (late clicks of a world with
            delays show up in later rounds' observations).
        observations: everything observed up to and including this round.
        pick: index of the layout the policy would ship after this round.
        mean: the pick's estimated CTR.
        lower: lower end of its 90% credible interval (NaN for baselines).
        upper: upper end (NaN for baselines).
        p_best: its probability of being the best layout (NaN for baselines).
        posterior: the policy's fit after this round (None for baselines).
        converged: whether that fit converged.
        seconds: wall time of the round (split, serve, and the policy's next step).
        segments: ``(n,)`` segment code each row was served to (None without segments).
        segment_picks: ``(G,)`` the layout the policy would ship to each segment, when it
            picks per segment (None otherwise: ``pick`` for everyone).
        decision: the stopping rule's :class:`~layoutopt.decide.stopping.Decision` on the
            round's fit (``run(..., stop=rule)``; None without a rule).
    """

    round: int
    allocation: Allocation
    codes: np.ndarray
    impressions: np.ndarray
    clicks: np.ndarray
    observations: Observations
    pick: int
    mean: float
    lower: float
    upper: float
    p_best: float
    posterior: Any
    converged: bool
    seconds: float
    segments: np.ndarray | None = None
    segment_picks: np.ndarray | None = None
    decision: Decision | None = None


def split_batch(allocation: Allocation, total: int, rng: np.random.Generator) -> np.ndarray:
    """Impressions per row of ``allocation`` summing to ``total`` (see ``Allocation.split``)."""
    w = np.clip(np.asarray(allocation.weights, dtype=np.float64), 0.0, None)
    if not len(w) or w.sum() <= 0:
        raise ValueError("an allocation needs at least one layout with a positive weight")
    w = w / w.sum()
    if allocation.split == "multinomial":
        return rng.multinomial(total, w).astype(np.int64)
    if allocation.split != "round":
        raise ValueError(
            f"allocation split must be 'multinomial' or 'round', got {allocation.split!r}"
        )
    raw = w * total
    n = np.floor(raw).astype(np.int64)
    short = total - int(n.sum())
    if short:
        n[np.argsort(-(raw - n), kind="stable")[:short]] += 1
    return n


class Response(NamedTuple):
    """A world's answer to one served row set (see :class:`World`).

    Attributes:
        clicks: ``(n,)`` clicks the impressions of each row will produce.
        delays: ``(clicks.sum(),)`` hours from serving to each of those clicks, row after
            row (the clicks of row 0 first); None when every click is seen at once.
        counts: ``{metric: (n,)}`` further metrics' counts of each row (sign-ups,
            dismissals: a world of several metrics, :class:`layoutopt.sim.MetricWorld`),
            seen at once; None for clicks only.
    """

    clicks: np.ndarray
    delays: np.ndarray | None
    counts: dict[str, np.ndarray] | None = None


@runtime_checkable
class World(Protocol):
    """What the driver plays against: a synthetic world or a wrapper around real traffic.

    Attributes:
        space: the layout space.
        shares: ``(G,)`` traffic share of every segment code (summing to 1), or None for a
            world without segments. With shares, each round's batch is split over the
            segments multinomially and each segment is served its part of the allocation.
        hours_per_round: wall-clock hours of one round, or None for a world without time.
            With hours, the driver keeps one cohort per (layout, segment, round), a click
            becomes visible at the first round end at or after it arrives, and the
            observations carry ``age``, ``round`` and the histogram of observed delays.
    """

    space: LayoutSpace
    shares: np.ndarray | None
    hours_per_round: float | None

    def respond(
        self, codes, impressions, *, segment: int | None, round: int, rng: np.random.Generator
    ) -> Response:
        """Serve ``impressions`` of layouts ``codes`` to ``segment`` in ``round``."""
        ...


class Ledger:
    """Every served row, aggregated per cohort, with the clicks that have matured so far.

    A cohort is one (layout, segment, round); worlds without time merge the rounds (a
    cohort per (layout, segment)), worlds without segments use segment 0. Clicks that have
    not arrived yet wait as counts per (cohort, round at whose end they become visible,
    delay bin), so memory grows with cohorts and rounds, never with impressions.

    Args:
        space: the layout space.
        segmented: whether rows carry a segment code.
        hours_per_round: hours per round (None: no time; clicks are seen at once).
    """

    def __init__(self, space: LayoutSpace, segmented: bool, hours_per_round: float | None):
        self.space, self.segmented, self.hours = space, segmented, hours_per_round
        self.keys = np.zeros((0, 3), np.int64)  # (layout index, segment, round)
        self.imp = np.zeros(0, np.int64)
        self.seen = np.zeros(0, np.int64)
        self.pending = np.zeros((0, 4), np.int64)  # (cohort, due round, delay bin, count)
        self.delay_counts = np.zeros(len(DELAY_EDGES) - 1, np.int64)
        self.metrics: dict[str, np.ndarray] = {}  # further metrics per cohort, seen at once

    def add(self, round: int, codes, segments, impressions, response: Response) -> np.ndarray:
        """Record one round's served rows; returns each row's clicks seen by the round's end."""
        n = len(codes)
        seg = np.zeros(n, np.int64) if segments is None else np.asarray(segments, np.int64)
        rnd = np.full(n, round if self.hours is not None else 0, np.int64)
        keys = np.column_stack([self.space.indices(codes), seg, rnd])
        cohort = self._cohorts(keys, impressions)
        self._add_counts(cohort, response.counts or {})
        clicks = np.asarray(response.clicks, np.int64)
        if response.delays is None or self.hours is None:
            np.add.at(self.seen, cohort, clicks)
            return clicks
        row = np.repeat(np.arange(n), clicks)
        delays = np.asarray(response.delays, np.float64)
        due = round + np.maximum(np.ceil(delays / self.hours) - 1, 0).astype(np.int64)
        bins = np.clip(np.searchsorted(DELAY_EDGES, delays, side="right") - 1, 0, None)
        new = np.column_stack([cohort[row], due, bins])
        uniq, inv = np.unique(new, axis=0, return_inverse=True)
        counts = np.bincount(inv.reshape(-1), minlength=len(uniq)).astype(np.int64)
        self.pending = np.concatenate([self.pending, np.column_stack([uniq, counts])])
        return np.bincount(row[due == round], minlength=n).astype(np.int64)

    def _add_counts(self, cohort: np.ndarray, counts: dict) -> None:
        """Add a round's further-metric counts to their cohorts (a world answers the same
        metrics every round)."""
        for m, c in counts.items():
            have = self.metrics.get(m, np.zeros(0, np.int64))
            grown = np.zeros(len(self.imp), np.int64)
            grown[: len(have)] = have
            np.add.at(grown, cohort, np.asarray(c, np.int64))
            self.metrics[m] = grown

    def _cohorts(self, keys: np.ndarray, impressions) -> np.ndarray:
        """Cohort number of every row of ``keys``, adding new cohorts and impressions."""
        all_keys = np.concatenate([self.keys, keys])
        uniq, first, inv = np.unique(all_keys, axis=0, return_index=True, return_inverse=True)
        inv = inv.reshape(-1)
        # keep cohorts in order of first appearance, so old cohort numbers stay valid
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        self.keys = uniq[order]
        imp = np.zeros(len(uniq), np.int64)
        imp[: len(self.imp)] = self.imp
        seen = np.zeros(len(uniq), np.int64)
        seen[: len(self.seen)] = self.seen
        cohort = rank[inv[len(self.imp) :]]
        np.add.at(imp, cohort, np.asarray(impressions, np.int64))
        self.imp, self.seen = imp, seen
        return cohort

    def observe(self, round: int) -> Observations:
        """Everything visible at the end of ``round``: clicks due by then become seen."""
        due = self.pending[:, 1] <= round
        matured = self.pending[due]
        np.add.at(self.seen, matured[:, 0], matured[:, 3])
        np.add.at(self.delay_counts, matured[:, 2], matured[:, 3])
        self.pending = self.pending[~due]
        codes = self.space.codes(self.keys[:, 0])
        segments = self.keys[:, 1] if self.segmented else None
        counts = {m: _padded(c, len(self.imp)) for m, c in self.metrics.items()}
        if self.hours is None:
            return Observations.from_codes(
                self.space, codes, self.imp, self.seen, "campaign", segments, counts=counts
            )
        now = (round + 1) * self.hours
        return Observations.from_codes(
            self.space,
            codes,
            self.imp,
            self.seen,
            "campaign",
            segments,
            age=now - self.keys[:, 2] * self.hours,
            round=self.keys[:, 2],
            delay_counts=self.delay_counts.copy(),
            counts=counts,
        )


def _padded(counts: np.ndarray, n: int) -> np.ndarray:
    """A metric's per-cohort counts over all ``n`` cohorts (cohorts added after its last
    count have none)."""
    out = np.zeros(n, np.int64)
    out[: len(counts)] = counts
    return out


def _plan(alloc: Allocation, total: int, shares, rng: np.random.Generator):
    """Split a round's impressions: over segments by ``shares``, then by the allocation.

    Returns ``(codes, segments, impressions)`` of the rows that get impressions; segments
    is None for a world without segments.
    """
    codes = np.asarray(alloc.codes, np.int32)
    if shares is None:
        n = split_batch(alloc, total, rng)
        keep = n > 0
        return codes[keep], None, n[keep]
    per_segment = rng.multinomial(total, np.asarray(shares, np.float64))
    out_codes, out_seg, out_n = [], [], []
    for g, total_g in enumerate(per_segment):
        rows = np.ones(len(codes), bool) if alloc.segments is None else alloc.segments == g
        if not rows.any():
            raise ValueError(f"the allocation has no layout for segment code {g}")
        sub = Allocation(codes[rows], np.asarray(alloc.weights)[rows], alloc.split)
        n = split_batch(sub, int(total_g), rng)
        keep = n > 0
        out_codes.append(sub.codes[keep])
        out_seg.append(np.full(int(keep.sum()), g, np.int32))
        out_n.append(n[keep])
    return np.concatenate(out_codes), np.concatenate(out_seg), np.concatenate(out_n)


def _serve(world: World, round: int, codes, segments, n, rng) -> Response:
    """Serve the planned rows, segment after segment; one :class:`Response` for all rows."""
    if segments is None:
        return world.respond(codes, n, segment=None, round=round, rng=rng)
    clicks, delays, counts = np.zeros(len(codes), np.int64), [], {}
    for g in np.unique(segments):
        at = segments == g
        got = world.respond(codes[at], n[at], segment=int(g), round=round, rng=rng)
        clicks[at] = got.clicks
        delays.append(got.delays)
        for m, c in (got.counts or {}).items():
            counts.setdefault(m, np.zeros(len(codes), np.int64))[at] = c
    if any(d is None for d in delays):
        return Response(clicks, None, counts or None)
    # rows are grouped by segment in increasing order, so the delays concatenate row by row
    return Response(clicks, np.concatenate(delays), counts or None)


def run(
    policy: Policy,
    world: World,
    *,
    budget: int,
    batch_size: int,
    seed: int,
    callback: Callable[[RoundInfo], None] | None = None,
    stop: StopRule | None = None,
):
    """Play ``policy`` against ``world`` for ``budget`` impressions in rounds of ``batch_size``.

    A campaign has ``ceil(budget / batch_size)`` rounds; the last may be smaller. Each
    round's batch is split over the world's segments by their shares (when it has any) and
    within a segment by the policy's allocation for it (``Allocation.segments``; an
    allocation without segments serves every segment the same layouts). The served rows go
    into a :class:`Ledger`; the policy's next step sees what the ledger shows at the round's
    end: totals per layout (and segment), or per (layout, segment, round) cohort with
    ``age``, ``round`` and the observed delays in a world with time.

    Args:
        policy: a :class:`~layoutopt.decide.policies.Policy`.
        world: a :class:`World` (``SyntheticWorld``, ``SegmentWorld``, ``TimeWorld``, or
            any object with its attributes and ``respond`` method).
        budget: total impressions.
        batch_size: impressions per round.
        seed: integer seed of the whole campaign (same seed, same campaign).
        callback: called with every round's :class:`RoundInfo` (printing, progress bars,
            recording).
        stop: a :class:`~layoutopt.decide.stopping.StopRule`: after every round the rule is
            applied to the policy's fit (the traffic mix on a space with segments; rounds
            and impressions so far) and the campaign ends at the first round it says stop,
            before the budget is spent. Needs a policy that fits a model.

    Returns:
        ``(state, observations)``: the policy's final state and everything observed.
    """
    if budget <= 0 or batch_size <= 0:
        raise ValueError(f"budget and batch_size must be positive, got {budget}, {batch_size}")
    if not isinstance(world, World):
        raise ValueError(
            f"world must have space, shares, hours_per_round and respond(); got "
            f"{type(world).__name__}"
        )
    space, shares = world.space, world.shares
    num_rounds = math.ceil(budget / batch_size)
    k_init, k_first = setup_keys(seed)
    state = policy.init(space, k_init)
    state, alloc, _ = round_step(policy, state, None, k_first)
    ledger = Ledger(space, shares is not None, world.hours_per_round)
    obs = None
    for r in range(num_rounds):
        t0 = time.perf_counter()
        k_split, k_serve, k_step = round_keys(seed, r)
        total = min(batch_size, budget - r * batch_size)
        codes, segs, n = _plan(alloc, total, shares, np.random.default_rng(seed_of(k_split)))
        response = _serve(world, r, codes, segs, n, np.random.default_rng(seed_of(k_serve)))
        clicks = ledger.add(r, codes, segs, n, response)
        obs = ledger.observe(r)
        served = alloc
        state, alloc, info = round_step(policy, state, obs, k_step)
        verdict = None if stop is None else _decide(policy, info, stop, r, obs)
        if callback is not None:
            seconds = time.perf_counter() - t0
            rows = (codes, segs, n, clicks)
            callback(_round_info(r, served, rows, obs, info, seconds)._replace(decision=verdict))
        if verdict is not None and verdict.stop:
            break
    return state, obs


def _decide(policy: Policy, info: PolicyInfo, rule: StopRule, r: int, obs) -> Decision:
    """The rule's decision on round ``r``'s fit."""
    if info.posterior is None:
        raise ValueError(
            f"stop= needs a policy that fits a model; {policy.name!r} has no posterior "
            "(use thompson, top_two, ucb or greedy)"
        )
    imps = int(np.sum(obs.impressions))
    scored = info.posterior if info.scored is None else info.scored  # an objective's value
    return decision(scored, rule, rounds=r + 1, impressions=imps)


def _round_info(r, alloc, rows, obs, info: PolicyInfo, seconds) -> RoundInfo:
    codes, segments, n, clicks = rows
    return RoundInfo(
        round=r,
        allocation=alloc,
        codes=codes,
        impressions=n,
        clicks=clicks,
        observations=obs,
        pick=info.pick,
        mean=float(info.mean),
        lower=float(info.lower),
        upper=float(info.upper),
        p_best=float(info.p_best),
        posterior=info.posterior,
        converged=info.converged,
        seconds=seconds,
        segments=segments,
        segment_picks=info.segment_picks,
    )
