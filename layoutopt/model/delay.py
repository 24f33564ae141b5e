"""Click delays: the distribution of the time between an impression and its click.

A click that will happen may not have happened yet. With ``F`` the distribution function
of the delay (in hours), a cohort of ``n`` impressions served ``age`` hours ago shows
``clicks ~ Binomial(n, p * F(age))`` (Chapelle, KDD 2014): young impressions are discounted,
not counted as non-clicks. :func:`layoutopt.fit` takes ``delay=`` one of the distributions
here, or ``"auto"`` to learn a :class:`Weibull` from the observed delays of the clicks.

Joint likelihood used for ``"auto"``: an impression that clicked after ``d`` hours
contributes ``p f(d)``, one without a click yet ``1 - p F(age)``. Per cohort this factors
into ``Binomial(n, p F(age))`` times the truncated delay density ``f(d) / F(age)`` of each
observed click, and the ``F(age)`` terms cancel, so the whole log-likelihood is::

    sum_rows [c log p + (n - c) log(1 - p F(age))] + sum_bins h_b log(F(e_b+1) - F(e_b))

with ``h`` the histogram of observed delays over the edges ``e`` (delays are interval-
censored to their bin). Right-censoring of clicks still to come is the ``1 - p F(age)``
term. A shared histogram is therefore a sufficient statistic for the delay, whatever the
cohort a click came from.

References:
    Chapelle, *Modeling delayed feedback in display advertising* (KDD 2014).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from layoutopt.model.delay_bins import DELAY_EDGES

__all__ = [
    "DELAY_EDGES",
    "DELAYS",
    "Exponential",
    "Weibull",
    "check_delay",
    "delay_log_likelihood",
    "log_bin_probs",
    "weibull_cdf",
]

DELAYS = ("auto",)


@dataclass(frozen=True)
class Weibull:
    """Weibull click delay: ``F(t) = 1 - exp(-(t / scale) ** shape)``, ``t`` in hours.

    Attributes:
        shape: ``k > 0``; 1 is the exponential, below 1 a heavy early peak with a long
            tail (typical of sign-ups), above 1 a delay concentrated around ``scale``.
        scale: ``s > 0`` hours; 63% of eventual clicks arrive within ``scale`` hours.

    Examples:
        >>> d = Weibull(shape=1.0, scale=10.0)
        >>> round(float(d.cdf(10.0)), 4)
        0.6321
    """

    shape: float
    scale: float

    def __post_init__(self):
        for name in ("shape", "scale"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                raise ValueError(f"Weibull {name} must be a number, got {value!r}")
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"Weibull {name} must be a finite number > 0, got {value!r}")

    @property
    def weibull(self) -> tuple[float, float]:
        """``(shape, scale)`` of this delay as a Weibull."""
        return float(self.shape), float(self.scale)

    @property
    def mean(self) -> float:
        """Mean delay in hours, ``scale * Gamma(1 + 1 / shape)``."""
        return float(self.scale * math.gamma(1.0 + 1.0 / self.shape))

    def cdf(self, hours):
        """``F(hours)``: the share of eventual clicks seen ``hours`` after the impression."""
        return weibull_cdf(hours, *self.weibull)

    def sample(self, rng: np.random.Generator, size) -> np.ndarray:
        """Delays in hours drawn with the NumPy generator ``rng``."""
        return self.scale * rng.weibull(self.shape, size)


@dataclass(frozen=True)
class Exponential(Weibull):
    """Exponential click delay with ``rate`` per hour: ``F(t) = 1 - exp(-rate * t)``.

    Attributes:
        rate: clicks arrive at this rate per hour; the mean delay is ``1 / rate`` hours.

    Examples:
        >>> round(float(Exponential(rate=0.5).cdf(2.0)), 4)
        0.6321
    """

    shape: float = 1.0
    scale: float = 1.0

    def __init__(self, rate: float):
        if isinstance(rate, bool) or not isinstance(rate, int | float | np.number):
            raise ValueError(f"Exponential rate must be a number, got {rate!r}")
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"Exponential rate must be a finite number > 0, got {rate!r}")
        object.__setattr__(self, "shape", 1.0)
        object.__setattr__(self, "scale", 1.0 / float(rate))

    @property
    def rate(self) -> float:
        """Clicks per hour."""
        return 1.0 / self.scale

    def __repr__(self) -> str:
        return f"Exponential(rate={self.rate:g})"


def weibull_cdf(hours, shape, scale):
    """Weibull distribution function, NumPy or JAX arrays alike (0 for ``hours <= 0``)."""
    # NumPy on host inputs: eager jnp ops would compile once per new array shape.
    host = all(isinstance(a, np.ndarray | float | int | np.number) for a in (hours, shape, scale))
    xp = np if host else jnp
    t = xp.asarray(hours, dtype=float) if host else jnp.asarray(hours)
    # where() on the input as well: 0 ** shape has a NaN derivative in shape.
    positive = t > 0
    z = (xp.where(positive, t, 1.0) / scale) ** shape
    return xp.where(positive, -xp.expm1(-z), 0.0)


def log_bin_probs(edges, shape, scale):
    """``log(F(edges[b+1]) - F(edges[b]))`` per bin for a Weibull; the last edge may be inf.

    Computed from survival terms, ``log S(lo) + log(1 - S(hi) / S(lo))``, which stays
    accurate where ``F`` is near 1.
    """
    # The dtype of the parameters, explicitly: a float64 edge array converted inside
    # estimate_delay's x64 scope could otherwise reach a later float32 trace (NUTS) as a
    # float64 constant, and JAX warns about (and truncates) it there.
    edges = jnp.asarray(np.asarray(edges), dtype=jnp.result_type(shape, scale))
    lo, hi = edges[:-1], edges[1:]
    a = jnp.where(lo > 0, (jnp.where(lo > 0, lo, 1.0) / scale) ** shape, 0.0)
    finite = jnp.isfinite(hi)
    # The infinite edge takes a harmless stand-in (b = a + 1) so that the branch
    # where() discards has no inf/NaN derivative.
    b = jnp.where(finite, (jnp.where(finite, hi, 1.0) / scale) ** shape, a + 1.0)
    # Tiny floor: an empty bin between equal edges would be log 0 * 0 counts.
    tail = jnp.where(finite, jnp.log(jnp.maximum(-jnp.expm1(-(b - a)), 1e-300)), 0.0)
    return -a + tail


def check_delay(delay) -> Weibull | str | None:
    """Validate a ``delay=`` argument: None, a :class:`Weibull`/:class:`Exponential`, "auto".

    Raises:
        ValueError: for anything else.
    """
    if delay is None or isinstance(delay, Weibull) or (isinstance(delay, str) and delay in DELAYS):
        return delay
    raise ValueError(
        f"delay must be None, 'auto', Exponential(rate) or Weibull(shape, scale); got {delay!r}"
    )


def parse_delay(text: str) -> Weibull | str:
    """A delay model from its command-line spelling.

    ``"auto"`` (learned from the observed delays), ``"exponential:RATE"`` (per hour) or
    ``"weibull:SHAPE,SCALE"`` (scale in hours).

    Raises:
        ValueError: naming the text and the valid spellings.
    """
    kind, _, args = str(text).strip().partition(":")
    kind = kind.lower()
    valid = "'auto', 'exponential:RATE' (per hour) or 'weibull:SHAPE,SCALE' (hours)"
    try:
        if kind == "auto" and not args:
            return "auto"
        if kind == "exponential":
            return Exponential(float(args))
        if kind == "weibull":
            shape, scale = (float(v) for v in args.split(","))
            return Weibull(shape, scale)
    except ValueError as err:
        raise ValueError(f"--delay {text!r}: {err}; valid: {valid}") from None
    raise ValueError(f"--delay {text!r} is not a delay model; valid: {valid}")


def delay_spec(delay: Weibull | str | None) -> str | None:
    """The spelling :func:`parse_delay` reads back: ``"auto"``, ``"exponential:RATE"`` or
    ``"weibull:SHAPE,SCALE"`` (``None`` stays ``None``); exact (``repr`` of the floats)."""
    if delay is None or delay == "auto":
        return delay
    if isinstance(delay, Exponential):
        return f"exponential:{delay.rate!r}"
    if isinstance(delay, Weibull):
        return f"weibull:{float(delay.shape)!r},{float(delay.scale)!r}"
    raise ValueError(f"delay must be None, 'auto', Exponential or Weibull, got {delay!r}")


def delay_log_likelihood(delay_counts, shape, scale):
    """``sum_b h_b log(F(e_b+1) - F(e_b))``: the observed delays, interval-censored to bins."""
    counts = jnp.asarray(delay_counts)
    return jnp.sum(jnp.where(counts > 0, counts * log_bin_probs(DELAY_EDGES, shape, scale), 0.0))
