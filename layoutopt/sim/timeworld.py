"""Synthetic worlds in time: clicks that arrive late, and tastes that change.

A :class:`TimeWorld` wraps a :class:`~layoutopt.sim.SyntheticWorld` (or a
:class:`~layoutopt.sim.segments.SegmentWorld`, for audiences in time): each impression that
will be clicked is clicked a random delay after it was served (``delay``), and from round
``change_round`` on the click-through rates are those of a second world (``after``).
:func:`layoutopt.sim.run_campaign` plays any policy against it: the driver keeps one
cohort per (layout, round), shows the policy at every round's end only the clicks that have
arrived by then, with each cohort's ``age`` and ``round`` and the histogram of the observed
delays, and a model policy built with ``delay=`` / ``half_life=`` fits with them.
:func:`event_log` writes the same world as an impression-level log.

Examples:
    >>> space = LayoutSpace({"a": ["a0", "a1"], "b": ["b0", "b1", "b2"]})
    >>> world = TimeWorld(SyntheticWorld.random(space, seed=0), delay=Exponential(0.1))
    >>> result = run_campaign(world, policy=policies.thompson(k=4, delay="auto"),
    ...                       budget=4000, batch_size=1000, seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from layoutopt.decide.driver import Response
from layoutopt.model.delay import Weibull
from layoutopt.model.space import LayoutSpace
from layoutopt.sim.segments import SegmentWorld
from layoutopt.sim.simulate import SyntheticWorld, WorldBest

__all__ = ["TimeWorld", "event_log", "served_clicks"]


@dataclass(frozen=True, eq=False)
class TimeWorld:
    """A ground-truth world with click delays and an optional change of taste.

    Attributes:
        world: CTRs before the change (and throughout without one): a
            :class:`~layoutopt.sim.SyntheticWorld`, or a
            :class:`~layoutopt.sim.segments.SegmentWorld` (audiences with their shares and
            CTRs, each with the same delay and change of taste).
        delay: the true click delay (None: clicks are seen at once).
        hours_per_round: wall-clock hours of one campaign round.
        change_round: first round served with ``after``'s CTRs (None: no change).
        after: the world after the change; needs the same space (and the same kind and
            shares).
    """

    world: SyntheticWorld | SegmentWorld
    delay: Weibull | None = None
    hours_per_round: float = 1.0
    change_round: int | None = None
    after: SyntheticWorld | SegmentWorld | None = None

    def __post_init__(self):
        if not (math.isfinite(self.hours_per_round) and self.hours_per_round > 0):
            raise ValueError(f"hours_per_round must be > 0, got {self.hours_per_round!r}")
        if (self.change_round is None) != (self.after is None):
            raise ValueError("change_round and after go together: give both or neither")
        if self.after is not None and self.after.space != self.world.space:
            raise ValueError("after must be a world on the same space")
        if self.after is not None and type(self.after) is not type(self.world):
            raise ValueError(
                f"after must be a {type(self.world).__name__} like world, got "
                f"{type(self.after).__name__}"
            )
        if isinstance(self.after, SegmentWorld) and not np.allclose(
            self.after.shares, self.world.shares
        ):
            raise ValueError("after must keep the audiences' traffic shares")
        if self.delay is not None and not isinstance(self.delay, Weibull):
            raise ValueError(f"delay must be a Weibull or Exponential, got {self.delay!r}")

    @property
    def space(self) -> LayoutSpace:
        """The layout space."""
        return self.world.space

    def at(self, round: int) -> SyntheticWorld | SegmentWorld:
        """The world whose CTRs hold in ``round``."""
        if self.change_round is not None and round >= self.change_round:
            return self.after
        return self.world

    # ---------------------------------------------------- the driver's World protocol
    @property
    def _segmented(self) -> bool:
        return isinstance(self.world, SegmentWorld)

    @property
    def shares(self) -> np.ndarray | None:
        """The audiences' traffic shares of a segment world; None: one audience."""
        return self.world.shares if self._segmented else None

    def respond(self, codes, impressions, *, segment, round, rng) -> Response:
        """Serve one round's rows (:class:`~layoutopt.decide.driver.World`): eventual clicks under
        round ``round``'s CTRs (of ``segment`` in a segment world) and the delay of each
        (see :func:`served_clicks`)."""
        world = self.at(round)
        if self._segmented:  # its respond refuses segment=None with a clear message
            clicks = world.respond(codes, impressions, segment=segment, round=round, rng=rng)
            clicks = clicks.clicks
        else:
            clicks = world.serve(codes, impressions, rng=rng)
        n = int(clicks.sum())
        delays = np.zeros(n) if self.delay is None else self.delay.sample(rng, n)
        return Response(clicks, delays)

    def truth(self, index, segments, round: int) -> np.ndarray:
        """True CTR of layouts by index in ``round`` (in segment codes ``segments`` for a
        segment world; ignored otherwise)."""
        if self._segmented:
            return self.at(round).truth(index, segments, round)
        return self.at(round).ctr_of_index(index)

    def best_at(self, segment, round: int) -> WorldBest:
        """The true best layout in ``round`` (of a segment code, or the traffic mix)."""
        if self._segmented:
            return self.at(round).best(segment)
        return self.at(round).best()


def served_clicks(
    world: TimeWorld,
    codes,
    impressions,
    round: int,
    rng: np.random.Generator,
    segment: int | None = None,
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
        segment: the segment code served (a world over a segment world only).

    Returns:
        ``(row, hour)``: for each eventual click, its row in ``codes`` and arrival hour.
    """
    response = world.respond(codes, impressions, segment=segment, round=round, rng=rng)
    row = np.repeat(np.arange(len(codes)), response.clicks)
    return row, round * world.hours_per_round + response.delays


def event_log(
    world: TimeWorld,
    codes,
    served_hours,
    now_hours: float,
    rng: np.random.Generator,
    start="2026-01-01T00:00",
    segments=None,
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
        segments: ``(n,)`` segment code of every impression; required for a world over a
            :class:`~layoutopt.sim.segments.SegmentWorld` (then the log has one column per
            context variable), refused otherwise.

    Returns:
        A pandas DataFrame: one label column per component (and per context variable),
        ``served_at``, ``clicked_at``.
    """
    import pandas as pd

    codes = np.asarray(codes)
    served_hours = np.asarray(served_hours, np.float64)
    rounds = np.floor(served_hours / world.hours_per_round).astype(np.int64)
    if (segments is None) == bool(world.shares is not None):
        raise ValueError(
            "segments: give one segment code per impression for a world with segments, "
            "and none otherwise"
        )
    seg = None if segments is None else np.asarray(segments, np.int64)
    p = np.empty(len(codes))
    for r in np.unique(rounds):
        at = rounds == r
        if seg is None:
            p[at] = world.at(int(r)).ctr(codes[at])
            continue
        for g in np.unique(seg[at]):
            here = at & (seg == g)
            p[here] = world.at(int(r)).ctr(codes[here], int(g))
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
    if seg is not None:
        labels = [world.space.segment_of(int(g)) for g in range(world.space.num_segments)]
        for name, values in world.space.segments:
            by_code = [labels[g][name] for g in range(len(labels))]
            frame[name] = pd.Categorical(np.asarray(by_code, dtype=object)[seg], list(values))
    frame["served_at"] = t0 + pd.to_timedelta(served_hours, unit="h")
    clicked = t0 + pd.to_timedelta(np.where(seen, click_hours, 0.0), unit="h")
    frame["clicked_at"] = pd.Series(clicked).where(seen)
    return pd.DataFrame(frame)
