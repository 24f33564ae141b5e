"""The iteration steps the Laplace kernels share: the damped Newton step, MacKay's fixed
point for the scale groups, and the three-phase loop's advance (search, polish, record).

References:
    MacKay, D. J. C. (1992). Bayesian interpolation. Neural Computation.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["damped_newton", "mackay_log_var", "advance", "MAX_STEP", "BACKTRACKS"]

#: Newton steps are capped at this largest change of one effect (logit units): the first
#: step from zero effects can overshoot on sparse data.
MAX_STEP = 2.0
#: Trial step lengths 1, 1/2, ..., 2^-(BACKTRACKS - 1) of the line search.
BACKTRACKS = 16


def damped_newton(log_post, theta, delta, grad):
    """Cap a Newton step and backtrack it until the log posterior rises enough (Armijo).

    Args:
        log_post: ``theta -> log posterior`` at fixed hyper-scales (concave).
        theta: the current point ``(P,)``.
        delta: the Newton step ``H^-1 grad`` there.
        grad: the gradient of ``log_post`` there.

    Returns:
        ``(step, newton)``: the step to take, and whether it is the full, uncapped Newton
        step (the iterate is then in Newton's quadratic range).
    """
    size = jnp.max(jnp.abs(delta))
    delta = delta * jnp.minimum(1.0, MAX_STEP / size)
    # All trial lengths at once: L evaluations of eta, O(L N C), negligible beside the
    # factorisation. The slack absorbs float64 rounding of a sum over ~10^5 clicks, which
    # would otherwise reject the tiny last steps.
    here = log_post(theta)
    ts = 0.5 ** jnp.arange(BACKTRACKS, dtype=theta.dtype)
    there = jax.vmap(lambda t: log_post(theta + t * delta))(ts)
    slack = 1e-10 * (1.0 + jnp.abs(here))
    ok = there >= here + 1e-4 * ts * jnp.dot(grad, delta) - slack
    t = jnp.where(jnp.any(ok), ts[jnp.argmax(ok)], ts[-1])
    return t * delta, (t == 1.0) & (size <= MAX_STEP)


def mackay_log_var(sq, tr, log_var, group_size, hyper_scale, min_log_var):
    """MacKay's fixed point for the group variances, as log variances (traced).

    With the HalfNormal(S) hyperprior on each group's sd, stationarity of the Laplace
    evidence + log hyperprior in ``s = sigma^2`` reads ``s * (gamma + s / S^2) = ||m||^2``,
    with ``gamma = n - tr(Sigma) / s`` the effective number of well-determined effects
    (``sq = ||m||^2`` and ``tr = tr(Sigma)`` per group). Same fixed point as EM's
    ``s = (||m||^2 + tr Sigma) / n``, reached in far fewer sweeps. Floored at ``min_log_var``.
    """
    s_old = jnp.exp(log_var)
    gamma = jnp.clip(group_size - tr / s_old, 1e-6, group_size)
    s_new = sq / (gamma + s_old / hyper_scale**2)
    return jnp.maximum(jnp.log(jnp.maximum(s_new, 1e-30)), min_log_var)


def advance(state, delta, newton, new_log_var, hyper_scale, tol, max_iter):
    """One step of the kernels' three-phase loop (search, polish, final curvature).

    Phase 0 searches: it takes the (damped) Newton step ``delta`` and moves the scales to
    ``new_log_var()`` only after a full, uncapped Newton step (``newton``), i.e. once the
    mode at the current scales is within Newton's quadratic range; updating them after
    every step let mode and scales chase each other in a 2-cycle (9 x 9 dense, 12 x 12
    low-rank). Phase 1 polishes the mode at the final scales so that it matches the returned
    curvature; phase 2 only records the curvature at that mode.

    Returns:
        ``(theta, log_var, iteration, step, phase)`` of the next state.
    """
    searching = state.phase == 0
    theta = jnp.where(state.phase < 2, state.theta + delta, state.theta)
    log_var = jnp.where(searching & newton, new_log_var(theta), state.log_var)
    # Scales are compared in sd units of their hyperprior: along the flat ridges of the
    # evidence (an effect a pair table can absorb, a scale sinking to its floor) the fixed
    # point creeps, and sd changes below tol * S no longer move predictions.
    d_scale = jnp.abs(jnp.exp(0.5 * log_var) - jnp.exp(0.5 * state.log_var)) / hyper_scale
    step = jnp.maximum(jnp.max(jnp.abs(delta)), jnp.max(d_scale, initial=0.0))
    step = jnp.where(newton, step, jnp.inf)  # the scales have not seen a damped step's mode
    iteration = state.iteration + searching
    done_searching = (step <= tol) | (iteration >= max_iter)
    phase = jnp.where(searching & ~done_searching, 0, state.phase + 1)
    return theta, log_var, iteration, jnp.where(searching, step, state.step), phase
