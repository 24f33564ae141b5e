"""Estimating a click delay by maximum likelihood (the Laplace fit's ``delay="auto"``).

The delay model and its likelihood are :mod:`layoutopt.model.delay`'s; this module maximises
the profile likelihood over the Weibull parameters with a free click-through rate per group.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import minimize

from layoutopt.model.core import log_likelihood
from layoutopt.model.delay import DELAY_EDGES, Weibull, delay_log_likelihood, weibull_cdf

__all__ = ["estimate_delay"]


def estimate_delay(group, impressions, clicks, age, delay_counts) -> Weibull:
    """Maximum-likelihood Weibull delay from cohorts and the delay histogram.

    Maximises Chapelle's joint likelihood (module docstring) over the Weibull
    ``(shape, scale)`` and one free click-through rate per ``group`` (a profile
    likelihood: the CTRs are nuisance parameters, so the delay estimate does not depend on
    the click model). Used by the Laplace fit, which then fits the click model with ``F``
    fixed at this estimate.

    Args:
        group: ``(N,)`` int group of each row (e.g. its distinct layout).
        impressions, clicks: ``(N,)`` counts (or power-prior weighted counts).
        age: ``(N,)`` hours since serving.
        delay_counts: histogram over :data:`DELAY_EDGES`.

    Returns:
        The :class:`Weibull` at the maximum (shape in [0.1, 10], scale in [1 min, 1 year]).

    Raises:
        ValueError: if no click delay was observed.

    References:
        Chapelle, *Modeling delayed feedback in display advertising* (KDD 2014).
    """
    counts = np.asarray(delay_counts, np.float64)
    if counts.sum() <= 0:
        raise ValueError("delay='auto' needs observed click delays (delay_counts); none seen")
    group = np.asarray(group)
    num_groups = int(group.max()) + 1
    n = np.asarray(impressions, np.float64)
    c = np.asarray(clicks, np.float64)
    centres = np.sqrt(np.maximum(DELAY_EDGES[:-1], 1e-3) * np.minimum(DELAY_EDGES[1:], 1e5))
    median = float(centres[np.searchsorted(np.cumsum(counts), counts.sum() / 2)])
    n_g = np.bincount(group, n, num_groups)
    c_g = np.bincount(group, c, num_groups)
    rate = np.clip((c_g + 0.5) / (n_g + 1.0), 1e-6, 0.5)
    # Rows and groups padded to powers of two (empty rows, unused groups) so that a
    # campaign's growing data reuse a few compiled losses.
    rows, groups = _pow2(len(n)), _pow2(num_groups)
    logit0 = np.zeros(groups)
    logit0[:num_groups] = np.log(rate / (1 - rate))
    args = [
        _padded(group, rows, 0),
        _padded(n, rows, 0.0),
        _padded(c, rows, 0.0),
        _padded(np.asarray(age, np.float64), rows, 1.0),
        counts,
        max(n.sum(), 1.0),
        logit0,
    ]
    with jax.enable_x64(True):
        args = [jnp.asarray(a) for a in args]

        def fun(x):
            v, g = _delay_loss_grad(jnp.asarray(x), *args)
            return float(v), np.asarray(g, np.float64)

        bounds = [(np.log(0.1), np.log(10.0)), (np.log(1 / 60), np.log(24 * 365.0))]
        res = minimize(fun, [0.0, np.log(median)], jac=True, method="L-BFGS-B", bounds=bounds)
    return Weibull(float(np.exp(res.x[0])), float(np.exp(res.x[1])))


def _pow2(n: int) -> int:
    return max(8, 1 << (max(n, 1) - 1).bit_length())


def _padded(a: np.ndarray, size: int, fill) -> np.ndarray:
    out = np.full(size, fill, dtype=np.asarray(a).dtype)
    out[: len(a)] = a
    return out


def _delay_loss(x, group, n, c, age, counts, total, logit0):
    """Profile negative joint log-likelihood per impression at ``x = [log k, log s]``.

    The per-group CTRs are maximised out by Newton steps at fixed ``F`` (the groups are
    independent given ``F``); by the envelope theorem the gradient in ``x`` is the partial
    derivative at those maximisers, so they are held fixed with ``stop_gradient``.
    """
    shape, scale = jnp.exp(x[0]), jnp.exp(x[1])
    f = jnp.clip(weibull_cdf(age, shape, scale), 1e-12, 1.0)
    groups = logit0.shape[0]

    def rows_ll(eta, f):
        return log_likelihood(eta[group], n, c, "logit", f) - c * jnp.log(f)

    def newton(eta, _):
        g = jax.grad(lambda e: rows_ll(e, f).sum())(eta)
        # Separable in the groups, so the Hessian is diagonal; the curvature floor keeps
        # a group without data where it is.
        w = jax.ops.segment_sum(_row_curvature(eta[group], n, c, f), group, groups)
        step = jnp.clip(g / jnp.maximum(w, 1e-9), -2.0, 2.0)
        return eta + step, None

    eta, _ = jax.lax.scan(newton, jax.lax.stop_gradient(logit0), None, length=30)
    eta = jax.lax.stop_gradient(eta)
    ll = rows_ll(eta, f).sum() + delay_log_likelihood(counts, shape, scale)
    return -ll / total


def _row_curvature(eta, n, c, f):
    """Per-row negative second derivative of the cohort log-likelihood in eta."""

    def one(e, n, c, f):
        return log_likelihood(e, n, c, "logit", f)

    return jnp.maximum(-jax.vmap(jax.grad(jax.grad(one)))(eta, n, c, f), 0.0)


_delay_loss_grad = jax.jit(jax.value_and_grad(_delay_loss))
