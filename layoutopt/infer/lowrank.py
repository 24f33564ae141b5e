"""Laplace / empirical-Bayes fit without a P x P Hessian: a low-rank update of the prior.

The Hessian of the negative log posterior is ``H = Lam + X' W X``: the diagonal prior
precision ``Lam`` plus one rank-one term per observed layout (``X`` the ``N x P`` one-hot
design, ``W`` the likelihood weights). With ``s = sqrt(w)`` and ``B = I + S X Lam^-1 X' S``
(``N x N``, eigenvalues >= 1), Woodbury's identity and the determinant lemma give, exactly::

    H^-1 = Lam^-1 - Lam^-1 X' S B^-1 S X Lam^-1,     log det H = log det Lam + log det B

so the Newton step, the group traces of ``H^-1`` that the hyper-scale fixed point needs,
the evidence and the posterior draws cost ``O(N^3 + C N^2)`` (C = 1 + K + K(K-1)/2 columns
per layout) instead of ``O(P^3)``, and memory is ``O(N^2 + N C)`` instead of ``O(P^2)``.
``X Lam^-1 X'`` never needs ``X``: rows n and m share a column of slot c exactly when they
have the same code(s) there, and every column of a slot has the same prior precision. For
a 12 x 12 model (P = 9,649) fitted on a few hundred layouts this is what makes Laplace fit
at all on a small machine; for N >= P the dense kernel is cheaper.

Iteration: as the dense kernel's (Newton step on the mode, MacKay's fixed point on the
scales), with two safeguards that large models need: every Newton step is backtracked until
the log posterior at the current scales rises (Armijo, :func:`damped_newton`), and the
scales move only after a full Newton step. Without them a 12 x 12 model on 241 layouts
never converged: each scale update moved the mode by more than the step cap, and mode and
scales chased each other in a 2-cycle for all 500 iterations.

Draws: ``z = H^-1 (X' S e1 + Lam^1/2 e2)`` with ``e1, e2`` standard normal has covariance
``H^-1 H H^-1 = H^-1`` (perturb-and-solve, Papandreou & Yuille 2010), exact in distribution.

References:
    Papandreou, G. & Yuille, A. (2010). Gaussian sampling by local perturbations. NIPS.
    MacKay, D. J. C. (1992). Bayesian interpolation. Neural Computation.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.linalg import cho_solve

from layoutopt.model.core import (
    log_likelihood,
    logits,
    loglik_eta_derivatives,
    unflatten_effects,
)

#: Newton steps are capped at this largest change of one effect (logit units): the first
#: step from zero effects can overshoot on sparse data.
_MAX_STEP = 2.0
#: Trial step lengths 1, 1/2, ..., 2^-(_BACKTRACKS - 1) of the line search.
_BACKTRACKS = 16


class LowRankState(NamedTuple):
    """Loop state of the low-rank Laplace iteration (as ``inference.LaplaceState``).

    Attributes:
        theta: flat parameters ``(P,)``.
        log_var: log hyper-variances ``(G,)``.
        iteration: completed Newton + hyper-scale updates.
        step: largest change in the last update (as the dense kernel measures it).
        phase: 0 searching, 1 polishing the mode at fixed scales, 2 recording, 3 done.
        eta: ``(N,)`` linear predictor at the last evaluated point.
        grad: ``(P,)`` log-posterior gradient there.
        chol: ``(N, N)`` lower Cholesky factor of ``B``.
        s: ``(N,)`` square roots of the likelihood weights.
        prec: ``(P,)`` prior precisions.
    """

    theta: jax.Array
    log_var: jax.Array
    iteration: jax.Array
    step: jax.Array
    phase: jax.Array
    eta: jax.Array
    grad: jax.Array
    chol: jax.Array
    s: jax.Array
    prec: jax.Array


class LowRankResult(NamedTuple):
    """What :func:`lowrank_kernel` returns (the fields of ``inference.LaplaceResult``, with
    the factor of ``B`` in place of the dense one).

    Attributes:
        mode: ``(P,)`` flat posterior mode.
        chol: ``(N, N)`` lower Cholesky factor of ``B = I + S X Lam^-1 X' S`` at the mode.
        s: ``(N,)`` square roots of the likelihood weights at the mode.
        prec: ``(P,)`` prior precisions ``Lam``.
        scales: ``(G,)`` empirical-Bayes hyper-scales.
        iterations: iterations of the search.
        converged: whether the last step was below ``tol``.
        log_evidence: as ``inference.LaplaceResult.log_evidence`` (determinant lemma).
        newton_decrement: ``sqrt(g' H^-1 g)`` at the returned mode.
    """

    mode: jax.Array
    chol: jax.Array
    s: jax.Array
    prec: jax.Array
    scales: jax.Array
    iterations: jax.Array
    converged: jax.Array
    log_evidence: jax.Array
    newton_decrement: jax.Array


def _xt(design, y, P):
    """``X' y`` for ``y`` ``(..., N)``: scatter-add into the active columns."""
    vals = jnp.broadcast_to(y[..., :, None], y.shape + (design.shape[1],))
    return jnp.zeros(y.shape[:-1] + (P,), y.dtype).at[..., design].add(vals)


def _x(design, a):
    """``X a`` for ``a`` ``(..., P)``: sum of the active columns, ``(..., N)``."""
    return a[..., design].sum(axis=-1)


def _slot_gram(design, slot_scale):
    """``sum_c slot_scale[c] [design[n, c] == design[m, c]]``, ``(N, N)``."""
    N, C = design.shape

    def add(c, acc):
        col = design[:, c]
        return acc + jnp.where(col[:, None] == col[None, :], slot_scale[c], 0.0)

    return jax.lax.fori_loop(0, C, add, jnp.zeros((N, N), slot_scale.dtype))


def _slot_traces(design, Q):
    """``t_c = sum_nm Q_nm [design[n, c] == design[m, c]]`` for every slot c, ``(C,)``."""

    def one(col):
        return jnp.sum(jnp.where(col[:, None] == col[None, :], Q, 0.0))

    return jax.lax.map(one, design.T)


def _solve(design, chol, s, prec, g):
    """``H^-1 g`` by Woodbury, for ``g`` ``(..., P)``."""
    a = g / prec
    u = s * _x(design, a)
    v = cho_solve((chol, True), u.reshape(-1, u.shape[-1]).T).T.reshape(u.shape)
    return a - _xt(design, s * v, g.shape[-1]) / prec


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
    delta = delta * jnp.minimum(1.0, _MAX_STEP / size)
    # All trial lengths at once: L evaluations of eta, O(L N C), negligible beside the
    # factorisation. The slack absorbs float64 rounding of a sum over ~10^5 clicks, which
    # would otherwise reject the tiny last steps.
    here = log_post(theta)
    ts = 0.5 ** jnp.arange(_BACKTRACKS, dtype=theta.dtype)
    there = jax.vmap(lambda t: log_post(theta + t * delta))(ts)
    slack = 1e-10 * (1.0 + jnp.abs(here))
    ok = there >= here + 1e-4 * ts * jnp.dot(grad, delta) - slack
    t = jnp.where(jnp.any(ok), ts[jnp.argmax(ok)], ts[-1])
    return t * delta, (t == 1.0) & (size <= _MAX_STEP)


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


@partial(jax.jit, static_argnames=("structure",))
def lowrank_kernel(
    codes,
    design,
    impressions,
    clicks,
    group,
    group_size,
    hyper_scale,
    intercept_loc,
    intercept_scale,
    scale_floor,
    tol,
    max_iter,
    *,
    structure,
):
    """The Laplace / empirical-Bayes iteration of ``inference._laplace_kernel``, by Woodbury.

    Same arguments, loop and stopping rule; returns a :class:`LowRankResult`.
    """
    card, link = structure.cardinalities, structure.link
    P, G, N = group.shape[0], group_size.shape[0], codes.shape[0]
    num_main = sum(card)
    is_b0 = group < 0
    gidx = jnp.maximum(group, 0)
    prior_mean = jnp.where(is_b0, intercept_loc, 0.0)
    slot_group = group[design[0]]  # every column of a slot is in the same group
    slot_is_b0 = slot_group < 0
    slot_gidx = jnp.maximum(slot_group, 0)

    def unflat(theta):
        return unflatten_effects(theta[0], theta[1 : 1 + num_main], theta[1 + num_main :], card)

    def slot_prec(log_var):
        return jnp.where(slot_is_b0, intercept_scale**-2.0, jnp.exp(-log_var)[slot_gidx])

    def system(theta, log_var):
        eta = logits(unflat(theta), codes)
        d1, w = loglik_eta_derivatives(eta, impressions, clicks, link)
        prec = jnp.where(is_b0, intercept_scale**-2.0, jnp.exp(-log_var)[gidx])
        grad = _xt(design, d1, P) - prec * (theta - prior_mean)
        s = jnp.sqrt(w)
        gram = _slot_gram(design, 1.0 / slot_prec(log_var))
        chol = jnp.linalg.cholesky(jnp.eye(N, dtype=theta.dtype) + s[:, None] * gram * s)
        return eta, grad, chol, s, prec

    min_log_var = 2.0 * jnp.log(scale_floor * hyper_scale)

    def hyper_update(theta, log_var, chol, s):
        # sum over group g of diag(H^-1) = n_g / lam_g - sum_{slots c in g} t_c / lam_g^2
        q = cho_solve((chol, True), jnp.eye(N, dtype=chol.dtype)) * s[:, None] * s[None, :]
        t = _slot_traces(design, q)
        lam = slot_prec(log_var)
        corr = jnp.zeros(G, theta.dtype).at[slot_gidx].add(jnp.where(slot_is_b0, 0.0, t / lam**2))
        tr = group_size * jnp.exp(log_var) - corr
        sq = jnp.zeros(G, theta.dtype).at[gidx].add(jnp.where(is_b0, 0.0, theta**2))
        return mackay_log_var(sq, tr, log_var, group_size, hyper_scale, min_log_var)

    def log_post(theta, prec):
        eta = logits(unflat(theta), codes)
        loglik = jnp.sum(log_likelihood(eta, impressions, clicks, link))
        return loglik - 0.5 * jnp.sum(prec * (theta - prior_mean) ** 2)

    def body(state: LowRankState) -> LowRankState:
        eta, grad, chol, s, prec = system(state.theta, state.log_var)
        delta = _solve(design, chol, s, prec, grad)
        delta, newton = damped_newton(partial(log_post, prec=prec), state.theta, delta, grad)
        moved = advance(
            state,
            delta,
            newton,
            lambda theta: hyper_update(theta, state.log_var, chol, s),
            hyper_scale,
            tol,
            max_iter,
        )
        return LowRankState(*moved, eta, grad, chol, s, prec)

    dtype = prior_mean.dtype
    init = LowRankState(
        prior_mean,
        2.0 * jnp.log(hyper_scale),
        jnp.asarray(0),
        jnp.asarray(jnp.inf, dtype),
        jnp.asarray(0),
        jnp.zeros(N, dtype),
        jnp.zeros(P, dtype),
        jnp.eye(N, dtype=dtype),
        jnp.zeros(N, dtype),
        jnp.ones(P, dtype),
    )
    st = jax.lax.while_loop(lambda s: s.phase < 3, body, init)
    loglik = jnp.sum(log_likelihood(st.eta, impressions, clicks, link))
    log_prior_quad = -0.5 * jnp.sum(st.prec * (st.theta - prior_mean) ** 2)
    log_det_h = jnp.sum(jnp.log(st.prec)) + 2.0 * jnp.sum(jnp.log(jnp.diag(st.chol)))
    scales = jnp.exp(0.5 * st.log_var)
    log_hyper = jnp.sum(
        0.5 * jnp.log(2.0 / jnp.pi) - jnp.log(hyper_scale) - 0.5 * (scales / hyper_scale) ** 2
    )
    log_evidence = (
        loglik + log_prior_quad + 0.5 * jnp.sum(jnp.log(st.prec)) - 0.5 * log_det_h + log_hyper
    )
    step = _solve(design, st.chol, st.s, st.prec, st.grad)
    return LowRankResult(
        mode=st.theta,
        chol=st.chol,
        s=st.s,
        prec=st.prec,
        scales=scales,
        iterations=st.iteration,
        converged=st.step <= tol,
        log_evidence=log_evidence,
        newton_decrement=jnp.sqrt(jnp.maximum(jnp.dot(st.grad, step), 0.0)),
    )


@partial(jax.jit, static_argnames=("num_samples", "batch"))
def lowrank_draws(key, design, mode, chol, s, prec, *, num_samples: int, batch: int = 32):
    """``num_samples`` draws of ``N(mode, H^-1)`` by perturb-and-solve, ``batch`` at a time."""
    N, P = chol.shape[0], mode.shape[0]
    n_batches = -(-num_samples // batch)
    keys = jax.random.split(key, n_batches)

    def one(k):
        k1, k2 = jax.random.split(k)
        e1 = jax.random.normal(k1, (batch, N), mode.dtype)
        e2 = jax.random.normal(k2, (batch, P), mode.dtype)
        r = _xt(design, s * e1, P) + jnp.sqrt(prec) * e2
        return mode + _solve(design, chol, s, prec, r)

    return jax.lax.map(one, keys).reshape(-1, P)[:num_samples]
