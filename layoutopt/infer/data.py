"""The fit's data: observations, delay and drift turned once into :class:`FitData`.

A delay model and a half-life are not branches of the fitters: they are an exposure factor
``F(age)`` and a weight per row (ones without them), built here once and read by every
fitter the same way.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np

from layoutopt.data.observations import Observations
from layoutopt.infer.delay import estimate_delay
from layoutopt.model.delay import Weibull
from layoutopt.model.spec import FitData
from layoutopt.util.arrays import pow2_at_least

__all__ = [
    "DelayWarning",
    "FitData",
    "TimeSetup",
    "check_half_life",
    "fit_data",
    "fixed_delay",
    "pad_data",
    "pad_rows",
    "time_outputs",
    "time_setup",
    "unmeasurable_delay",
]


class TimeSetup(NamedTuple):
    """Delay and drift settings of a fit, checked against the data.

    Attributes:
        delay: the delay asked for (None, a Weibull or ``"auto"``).
        half_life: the half-life (None: no discounting; ``"auto"`` until
            :func:`layoutopt.infer.drift.choose_discount` has chosen one).
        weight: ``(N,)`` power-prior weight of each row (ones without a half-life).
        auto: diagnostics of ``half_life="auto"``'s choice
            (:meth:`layoutopt.infer.drift.DriftChoice.diagnostics`), or None.
    """

    delay: Weibull | str | None
    half_life: float | str | None
    weight: np.ndarray
    auto: dict | None = None


def check_half_life(half_life) -> float | str | None:
    """``half_life`` as a fit takes it: None, ``"auto"`` or a positive float of rounds.

    Raises:
        ValueError: for anything else, naming the value and what is valid.
    """
    if half_life is None or (isinstance(half_life, str) and half_life == "auto"):
        return half_life
    if (
        isinstance(half_life, bool)
        or not isinstance(half_life, int | float | np.number)
        or not (np.isfinite(half_life) and half_life > 0)
    ):
        raise ValueError(
            f"half_life must be None, 'auto' or a positive number of rounds, got {half_life!r}"
        )
    return float(half_life)


class DelayWarning(UserWarning):
    """``fit(delay="auto")`` found no measurable click delay and fitted without one."""


def unmeasurable_delay(observations: Observations) -> str | None:
    """Why ``delay="auto"`` cannot learn a click delay from ``observations``, or None.

    The delay is unmeasurable when the rows carry no age (counts without an ``age``
    column), when no click time was observed (tables of counts, logs with a 0/1 ``clicked``
    column, logs whose clicks have not arrived), or when every observed click came within
    the first bin of the delay histogram (under a minute after its impression: click times
    equal to the serving times, e.g. a log that stamps both at once). A Weibull fitted to
    such a histogram sits at its lower bound (a one-minute delay), which says nothing.
    """
    obs = observations
    if obs.age is None:
        return "the rows carry no age (hours since served)"
    if obs.delay_counts is None:
        return "the data carry no click times (counts, or a log with a 0/1 clicked column)"
    counts = np.asarray(obs.delay_counts)
    if counts.sum() <= 0:
        return "no click has been observed yet"
    if counts[1:].sum() <= 0:
        return (
            f"all {int(counts.sum()):,} observed clicks came less than a minute after their "
            "impressions (clicked_at equal to served_at?)"
        )
    return None


def time_setup(observations: Observations, delay, half_life) -> TimeSetup:
    """Validate ``delay``/``half_life`` against the data and weigh the rows.

    ``delay="auto"`` on data whose click delays cannot be measured
    (:func:`unmeasurable_delay`) warns, naming why, and fits without a delay.

    Raises:
        ValueError: a given delay without an ``age`` column, a half-life that is not a
            positive number or ``"auto"``, a half-life without ``round``/``age``, or
            ``"auto"`` without ``round``.

    Warns:
        DelayWarning: ``delay="auto"`` with no measurable click delay.
    """
    obs = observations
    if delay == "auto":
        why = unmeasurable_delay(obs)
        if why is not None:
            warnings.warn(
                f"delay='auto' found no measurable click delay: {why}; fitting without a "
                "delay model (every click taken as arrived). Give the delay, e.g. "
                "delay=Exponential(rate=0.1), to discount young impressions anyway",
                DelayWarning,
                stacklevel=3,
            )
            delay = None
    if delay is not None and obs.age is None:
        raise ValueError(
            "delay needs observations with an 'age' column (hours since served); "
            "aggregate an event log with Observations.from_events or add 'age'"
        )
    weight = np.ones(obs.num_rows)
    half_life = check_half_life(half_life)
    if half_life == "auto":
        if obs.round is None:
            raise ValueError(
                "half_life='auto' compares discounts round by round: it needs observations "
                "with a 'round' column (give a number of hours instead for 'age' only)"
            )
    elif half_life is not None:
        if obs.round is not None:
            older = obs.round.max() - obs.round
        elif obs.age is not None:
            older = obs.age - obs.age.min()
        else:
            raise ValueError(
                "half_life needs observations with a 'round' column (or 'age' in hours)"
            )
        weight = 0.5 ** (older / half_life)
    return TimeSetup(delay, half_life, weight)


def fixed_delay(observations: Observations, time: TimeSetup, *, learned: bool):
    """The delay a fit holds fixed: the given one; for ``"auto"`` the ML estimate (with a
    free CTR per observed layout) unless the fitter samples it (``learned``)."""
    if time.delay is None or (time.delay == "auto" and learned):
        return None
    if time.delay != "auto":
        return time.delay
    obs = observations
    _, group = np.unique(obs.codes, axis=0, return_inverse=True)
    return estimate_delay(
        group.reshape(-1),
        obs.impressions * time.weight,
        obs.clicks * time.weight,
        obs.age,
        obs.delay_counts,
    )


def pad_rows(n: int) -> int:
    """Rows padded to a power of two (at least 8).

    A loop that adds a few layouts per round then reuses the compiled kernel instead of
    recompiling at every new N.
    """
    return pow2_at_least(n, minimum=8)


def fit_data(observations: Observations, time: TimeSetup, delay) -> FitData:
    """The :class:`FitData` of ``observations`` (float64 counts).

    Args:
        observations: the data.
        time: the checked delay and drift settings.
        delay: the fixed delay (:func:`fixed_delay`), or None.

    Returns:
        The :class:`FitData`.
    """
    obs = observations
    n = obs.num_rows
    segments = np.zeros(n) if obs.segments is None else obs.segments
    age = np.zeros(n) if obs.age is None else obs.age
    exposure = np.ones(n) if delay is None else np.asarray(delay.cdf(age), np.float64)
    counts = np.zeros(0) if obs.delay_counts is None else np.asarray(obs.delay_counts)
    return FitData(
        codes=np.asarray(obs.codes, np.int32).reshape(n, -1),
        segments=np.asarray(segments, np.int32).reshape(n),
        impressions=np.asarray(obs.impressions, np.float64),
        clicks=np.asarray(obs.clicks, np.float64),
        exposure=exposure,
        weight=np.asarray(time.weight, np.float64),
        age=np.asarray(age, np.float64),
        delay_counts=np.asarray(counts, np.float64),
    )


def pad_data(data: FitData, rows: int) -> FitData:
    """``data`` padded to ``rows`` rows: layout 0, segment 0, no impressions, exposure and
    weight 1."""
    n = len(data.codes)

    def pad(values, fill):
        out = np.full((rows,) + np.shape(values)[1:], fill, np.asarray(values).dtype)
        out[:n] = values
        return out

    return data._replace(
        codes=pad(data.codes, 0),
        segments=pad(data.segments, 0),
        impressions=pad(data.impressions, 0.0),
        clicks=pad(data.clicks, 0.0),
        exposure=pad(data.exposure, 1.0),
        weight=pad(data.weight, 1.0),
        age=pad(data.age, 0.0),
    )


def time_outputs(time: TimeSetup, delay: Weibull | None, num_samples: int):
    """Hyper draws and diagnostics recording the delay and half-life a fit used."""
    if time.delay is None and time.half_life is None and time.auto is None:
        return {}, {}
    diagnostics = {"half_life": time.half_life, "delay": repr(time.delay)} | (time.auto or {})
    hyper = {}
    if delay is not None:
        diagnostics["delay"] = repr(delay) + (" (estimated)" if time.delay == "auto" else "")
        for name, value in zip(("delay_shape", "delay_scale"), delay.weibull, strict=True):
            hyper[name] = np.full(num_samples, value, np.float32)
    return hyper, diagnostics
