"""Synthetic worlds in time: clicks that arrive late, and tastes that change.

A :class:`TimeWorld` wraps a :class:`~layoutopt.simulate.SyntheticWorld`: each impression
that will be clicked is clicked a random delay after it was served (``delay``), and from
round ``change_round`` on the click-through rates are those of a second world (``after``).
:func:`run_time_campaign` plays a Thompson-sampling campaign against it, round by round:
at the end of every round it observes only the clicks that have arrived by then, aggregates
them to (layout, round) cohorts with their ``age``, ``round`` and the histogram of the
observed delays, and fits with the given ``delay=`` and ``half_life=``.

Examples:
    >>> space = LayoutSpace({"a": ["a0", "a1"], "b": ["b0", "b1", "b2"]})
    >>> world = TimeWorld(SyntheticWorld.random(space, seed=0), delay=Exponential(0.1))
    >>> result = run_time_campaign(world, budget=4000, batch_size=1000, seed=0,
    ...                            delay="auto")  # doctest: +SKIP
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from layoutopt.data import Observations
from layoutopt.delay import DELAY_EDGES, Weibull
from layoutopt.simulate import SyntheticWorld
from layoutopt.space import LayoutSpace

__all__ = ["TimeWorld", "TimeCampaignResult", "event_log", "run_time_campaign", "served_clicks"]


@dataclass(frozen=True, eq=False)
class TimeWorld:
    """A ground-truth world with click delays and an optional change of taste.

    Attributes:
        world: CTRs before the change (and throughout without one).
        delay: the true click delay (None: clicks are seen at once).
        hours_per_round: wall-clock hours of one campaign round.
        change_round: first round served with ``after``'s CTRs (None: no change).
        after: the world after the change; needs the same space.
    """

    world: SyntheticWorld
    delay: Weibull | None = None
    hours_per_round: float = 1.0
    change_round: int | None = None
    after: SyntheticWorld | None = None

    def __post_init__(self):
        if not (math.isfinite(self.hours_per_round) and self.hours_per_round > 0):
            raise ValueError(f"hours_per_round must be > 0, got {self.hours_per_round!r}")
        if (self.change_round is None) != (self.after is None):
            raise ValueError("change_round and after go together: give both or neither")
        if self.after is not None and self.after.space != self.world.space:
            raise ValueError("after must be a world on the same space")
        if self.delay is not None and not isinstance(self.delay, Weibull):
            raise ValueError(f"delay must be a Weibull or Exponential, got {self.delay!r}")

    @property
    def space(self) -> LayoutSpace:
        """The layout space."""
        return self.world.space

    def at(self, round: int) -> SyntheticWorld:
        """The world whose CTRs hold in ``round``."""
        if self.change_round is not None and round >= self.change_round:
            return self.after
        return self.world


def served_clicks(
    world: TimeWorld, codes, impressions, round: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Serve one round: eventual clicks per row and the hour each click arrives.

    Impressions of round ``r`` are served at hour ``r * hours_per_round``; a click that
    will happen arrives after a delay drawn from ``world.delay``.

    Args:
        world: the :class:`TimeWorld`.
        codes: ``(n, K)`` layouts served.
        impressions: ``(n,)`` impressions per layout.
        round: the round number.
        rng: NumPy generator (explicit randomness).

    Returns:
        ``(row, hour)``: for each eventual click, its row in ``codes`` and arrival hour.
    """
    clicks = world.at(round).serve(codes, impressions, rng=rng)
    row = np.repeat(np.arange(len(codes)), clicks)
    served = round * world.hours_per_round
    delay = np.zeros(len(row)) if world.delay is None else world.delay.sample(rng, len(row))
    return row, served + delay


def event_log(
    world: TimeWorld,
    codes,
    served_hours,
    now_hours: float,
    rng: np.random.Generator,
    start="2026-01-01T00:00",
):
    """An impression-level event log, as :meth:`Observations.from_events` reads it.

    Args:
        world: the :class:`TimeWorld`; CTRs are those of the round each impression falls
            in (``served_hours // hours_per_round``).
        codes: ``(n, K)`` layout of every impression.
        served_hours: ``(n,)`` hours after ``start`` at which each was served.
        now_hours: extraction time in hours after ``start``; clicks arriving later are
            not in the log yet (``clicked_at`` null).
        rng: NumPy generator.
        start: timestamp of hour 0.

    Returns:
        A pandas DataFrame: one label column per component, ``served_at``, ``clicked_at``.
    """
    import pandas as pd

    codes = np.asarray(codes)
    served_hours = np.asarray(served_hours, np.float64)
    rounds = np.floor(served_hours / world.hours_per_round).astype(np.int64)
    p = np.empty(len(codes))
    for r in np.unique(rounds):
        at = rounds == r
        p[at] = world.at(int(r)).ctr(codes[at])
    will = rng.random(len(codes)) < p
    delay = np.zeros(len(codes)) if world.delay is None else world.delay.sample(rng, len(codes))
    click_hours = served_hours + delay
    seen = will & (click_hours <= now_hours)
    t0 = pd.Timestamp(start)
    frame = {
        comp: pd.Categorical.from_codes(codes[:, k], categories=list(labels))
        for k, (comp, labels) in enumerate(
            zip(world.space.components, world.space.variants, strict=True)
        )
    }
    frame["served_at"] = t0 + pd.to_timedelta(served_hours, unit="h")
    clicked = t0 + pd.to_timedelta(np.where(seen, click_hours, 0.0), unit="h")
    frame["clicked_at"] = pd.Series(clicked).where(seen)
    return pd.DataFrame(frame)


@dataclass(frozen=True)
class TimeCampaignResult:
    """Per-round record of :func:`run_time_campaign`.

    Attributes:
        simple_regret: ``(R,)`` best CTR of the round's world minus the pick's CTR there.
        local_regret: ``(R,)`` impression-weighted regret of what the round served.
        pick_index: ``(R,)`` picked layout per round.
        interval_width: ``(R,)`` width of the pick's 90% interval.
        change_round: the world's change round (None without one).
    """

    simple_regret: np.ndarray
    local_regret: np.ndarray
    pick_index: np.ndarray
    interval_width: np.ndarray
    change_round: int | None


def run_time_campaign(
    world: TimeWorld,
    budget: int,
    batch_size: int,
    seed: int,
    *,
    delay: Weibull | str | None = None,
    half_life: float | None = None,
    k: int = 8,
    num_samples: int = 500,
    options: Any = None,
) -> TimeCampaignResult:
    """Thompson sampling against a :class:`TimeWorld`, refitting with delay and drift.

    Round 0 serves the pairwise initial design; later rounds serve
    ``propose(posterior, k=k, strategy="thompson")`` with impressions drawn from the
    proposal weights. Every fit sees one row per (layout, round) with ``age`` (hours from
    serving to the end of the current round), ``round`` and the clicks arrived so far, and
    the histogram of their delays, and is run with ``delay`` and ``half_life``.

    Args:
        world: the ground truth.
        budget: total impressions.
        batch_size: impressions per round.
        seed: seed of every random choice.
        delay: ``fit``'s delay model (None: naive).
        half_life: ``fit``'s half-life in rounds (None: no forgetting).
        k: layouts per proposal.
        num_samples: posterior draws per fit.
        options: ``fit``'s method options (e.g. ``LaplaceOptions(tol=1e-2)``).

    Returns:
        :class:`TimeCampaignResult`.
    """
    from layoutopt.design import UncoverablePairsWarning, initial_design
    from layoutopt.inference import FitWarning, fit
    from layoutopt.propose import propose
    from layoutopt.scoring import best_layout

    if budget <= 0 or batch_size <= 0:
        raise ValueError("budget and batch_size must be positive")
    space = world.space
    rng = np.random.default_rng(seed)
    codes_log, imp_log, round_log = [], [], []
    click_row, click_hour = np.zeros(0, np.int64), np.zeros(0)
    simple, local, picks, widths = [], [], [], []
    posterior = None
    for r in range(math.ceil(budget / batch_size)):
        n_batch = min(batch_size, budget - r * batch_size)
        if r == 0:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UncoverablePairsWarning)
                design = initial_design(space, seed=int(rng.integers(2**31)))
            codes = space.codes(np.asarray(design["index"], np.int64))
            weights = np.ones(len(codes))
        else:
            key = int(rng.integers(2**31))
            batch = propose(posterior, space, k=k, strategy="thompson", seed=key)
            codes = space.codes(np.asarray(batch["index"], np.int64))
            weights = np.asarray(batch["weight"], np.float64)
        n = rng.multinomial(n_batch, weights / weights.sum())
        codes, n = codes[n > 0], n[n > 0]
        row, hour = served_clicks(world, codes, n, r, rng)
        click_row = np.concatenate([click_row, row + sum(len(c) for c in codes_log)])
        click_hour = np.concatenate([click_hour, hour])
        codes_log.append(codes)
        imp_log.append(n)
        round_log.append(np.full(len(codes), r))
        truth = world.at(r)
        local.append(float(np.sum(n * (truth.best().ctr - truth.ctr(codes))) / np.sum(n)))
        # Observe at the end of the round.
        now = (r + 1) * world.hours_per_round
        obs = _observe(space, codes_log, imp_log, round_log, click_row, click_hour, now, world)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FitWarning)
            posterior = fit(
                space,
                obs,
                seed=int(rng.integers(2**31)),
                num_samples=num_samples,
                delay=delay,
                half_life=half_life,
                options=options,
            )
        best = best_layout(posterior, space)
        picks.append(int(best.index))
        widths.append(float(best.upper - best.lower))
        simple.append(float(truth.best().ctr - truth.ctr_of_index([best.index])[0]))
    return TimeCampaignResult(
        np.asarray(simple),
        np.asarray(local),
        np.asarray(picks, np.int64),
        np.asarray(widths),
        world.change_round,
    )


def _observe(space, codes_log, imp_log, round_log, click_row, click_hour, now, world):
    """Observations at hour ``now``: per served row, the clicks arrived by then."""
    codes = np.concatenate(codes_log)
    rounds = np.concatenate(round_log)
    seen = click_hour <= now
    clicks = np.bincount(click_row[seen], minlength=len(codes))
    served = rounds * world.hours_per_round
    delays = click_hour[seen] - served[click_row[seen]]
    bins = np.clip(np.searchsorted(DELAY_EDGES, delays, side="right") - 1, 0, None)
    hist = np.bincount(bins, minlength=len(DELAY_EDGES) - 1)
    return Observations.from_codes(
        space,
        codes,
        np.concatenate(imp_log),
        clicks,
        source="campaign",
        age=now - served,
        round=rounds,
        delay_counts=hist,
    )
