"""The dense Laplace / empirical-Bayes kernel: Newton on the mode, MacKay on the scales.

For fixed hyper-scales the effects have Gaussian priors, so the posterior mode is found by
Newton steps on a log-concave objective (both the logit and the probit binomial
log-likelihoods are concave in eta). The scales are set by empirical Bayes: between Newton
steps they move to the maximiser of the Laplace-approximated evidence times their
HalfNormal hyperprior (type-II MAP), by MacKay's fixed point. The whole alternation is one
``lax.while_loop`` inside one jitted function, static in the :class:`ModelSpec` only.

Every kernel (this one and :func:`layoutopt.infer.lowrank.lowrank_kernel`) takes the same
arguments: the rows (:class:`FitData`), their :class:`Design`, the :class:`KernelPrior` and
the :class:`KernelSettings`, the attribute design, and the spec.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import cho_solve, solve_triangular

from layoutopt.infer import steps
from layoutopt.model.core import log_likelihood, logits, loglik_eta_derivatives
from layoutopt.model.spec import Design, FitData, ModelSpec

__all__ = [
    "KernelPrior",
    "KernelSettings",
    "LaplaceState",
    "LaplaceResult",
    "TRACE_COUNTS",
    "laplace_kernel",
    "gaussian_draws",
    "log_evidence",
]

# How often a fit traced the Laplace kernel; tests use it to check that repeated fits of
# the same problem shape reuse the compiled function.
TRACE_COUNTS = {"laplace": 0}


class KernelPrior(NamedTuple):
    """The prior as the Laplace kernels read it (traced arrays, scale groups resolved).

    Attributes:
        loc: ``(P,)`` prior mean of every flat parameter (``loc[0]`` the intercept's).
        group: ``(P,)`` scale group of every parameter, -1 for the intercept.
        size: ``(G,)`` parameters per group.
        scale: ``(G,)`` hyperprior scale (learned groups) or fixed sd of each group.
        learned: ``(G,)`` bool, whether each group's scale is learned by empirical Bayes.
        intercept_scale: prior sd of the intercept.
    """

    loc: jax.Array
    group: jax.Array
    size: jax.Array
    scale: jax.Array
    learned: jax.Array
    intercept_scale: jax.Array


class KernelSettings(NamedTuple):
    """Stopping rule of the kernels (traced, so other settings reuse the compile).

    Attributes:
        scale_floor: scales never fall below this fraction of their hyperprior scale.
        tol: stop when the Newton step and every scale change are below it.
        max_iter: cap on Newton / empirical-Bayes iterations.
    """

    scale_floor: jax.Array
    tol: jax.Array
    max_iter: jax.Array


class LaplaceState(NamedTuple):
    """Loop state of the Laplace / empirical-Bayes iteration.

    Attributes:
        theta: flat parameters ``(P,)`` in the spec's order.
        log_var: log hyper-variances of the scale groups, ``(G,)``.
        iteration: number of completed Newton + hyper-scale updates.
        step: largest change of ``theta`` or of a hyper-scale (in units of its hyperprior
            scale) in the last update.
        phase: 0 while searching, 1 polishing the mode at fixed scales, 2 recording the
            curvature at the mode, 3 done.
        eta, grad, chol, d, prec: the Newton system last evaluated (linear predictor,
            log-posterior gradient, Cholesky factor of the Jacobi-scaled Hessian, the
            scaling ``sqrt(diag H)``, prior precisions); at phase 3 they are those at the
            returned mode.
    """

    theta: jax.Array
    log_var: jax.Array
    iteration: jax.Array
    step: jax.Array
    phase: jax.Array
    eta: jax.Array
    grad: jax.Array
    chol: jax.Array
    d: jax.Array
    prec: jax.Array


class LaplaceResult(NamedTuple):
    """What the dense Laplace kernel returns.

    Attributes:
        mode: ``(P,)`` flat posterior mode.
        chol: ``(P, P)`` lower Cholesky factor L of the Jacobi-scaled Hessian at the mode;
            the Hessian is ``H = D L L' D`` with ``D = diag(d)``.
        d: ``(P,)`` the Jacobi scaling.
        scales: ``(G,)`` empirical-Bayes hyper-scales (one per scale group).
        iterations: Newton / fixed-point iterations of the search.
        converged: whether the last step was below ``tol``.
        log_evidence: Laplace approximation of ``log p(clicks | scales)`` (without the
            binomial coefficients) plus the hyperprior log density.
        newton_decrement: ``sqrt(g' H^-1 g)`` at the returned mode: scale-free, unlike
            ``|g|``, which float32 rounding inflates for effects pinned near zero by a huge
            prior precision.
    """

    mode: jax.Array
    chol: jax.Array
    d: jax.Array
    scales: jax.Array
    iterations: jax.Array
    converged: jax.Array
    log_evidence: jax.Array
    newton_decrement: jax.Array


def log_posterior(spec: ModelSpec, data: FitData, attributes, loc):
    """``(theta, prec) -> log posterior`` at fixed prior precisions (traced)."""
    impressions, clicks = data.weighted()

    def log_post(theta, prec):
        params, _ = spec.unravel(theta, attributes)
        eta = logits(params, data.codes, data.segments)
        loglik = jnp.sum(log_likelihood(eta, impressions, clicks, spec.link, data.exposure))
        return loglik - 0.5 * jnp.sum(prec * (theta - loc) ** 2)

    return log_post


def log_evidence(loglik, theta, prec, loc, log_det_h, scales, prior: KernelPrior):
    """Laplace evidence ``l(mode) + log N(mode; prior) + P/2 log 2pi - 1/2 log det H`` plus
    the HalfNormal log hyperprior of the learned scales (traced)."""
    hs = prior.scale
    log_hyper = jnp.sum(
        jnp.where(
            prior.learned,
            0.5 * jnp.log(2.0 / jnp.pi) - jnp.log(hs) - 0.5 * (scales / hs) ** 2,
            0.0,
        )
    )
    log_prior_quad = -0.5 * jnp.sum(prec * (theta - loc) ** 2)
    return loglik + log_prior_quad + 0.5 * jnp.sum(jnp.log(prec)) - 0.5 * log_det_h + log_hyper


@partial(jax.jit, static_argnames=("spec",))
def laplace_kernel(
    data: FitData,
    design: Design,
    prior: KernelPrior,
    settings: KernelSettings,
    attributes,
    *,
    spec: ModelSpec,
) -> LaplaceResult:
    """The Laplace / empirical-Bayes iteration with the dense ``P x P`` Hessian.

    Args:
        data: the (padded) rows, float64.
        design: their active columns and values.
        prior: the kernel's prior (scale groups resolved).
        settings: the stopping rule.
        attributes: ``(sum n_k, B)`` block-diagonal attribute design.
        spec: the model (static).

    Returns:
        A :class:`LaplaceResult`.
    """
    # Only the spec and array shapes are static, so a loop of fits over growing data,
    # other priors or other draw counts reuses one compile.
    TRACE_COUNTS["laplace"] += 1
    P, G = prior.group.shape[0], prior.size.shape[0]
    is_b0 = prior.group < 0
    gidx = jnp.maximum(prior.group, 0)
    loc = prior.loc
    cols, values = design.columns, design.values
    impressions, clicks = data.weighted()
    log_post = log_posterior(spec, data, attributes, loc)

    def precision(log_var):
        return jnp.where(is_b0, prior.intercept_scale**-2.0, jnp.exp(-log_var)[gidx])

    def newton_system(theta, log_var):
        params, _ = spec.unravel(theta, attributes)
        eta = logits(params, data.codes, data.segments)
        d1, w = loglik_eta_derivatives(eta, impressions, clicks, spec.link, data.exposure)
        prec = precision(log_var)
        grad = jnp.zeros(P, theta.dtype).at[cols].add(d1[:, None] * values)
        grad = grad - prec * (theta - loc)
        # X^T W X from the observed layouts' active columns without building X: each row
        # touches only C columns.
        hess = (
            jnp.zeros((P, P), theta.dtype)
            .at[cols[:, :, None], cols[:, None, :]]
            .add(w[:, None, None] * values[:, :, None] * values[:, None, :])
        )
        hess = hess + jnp.diag(prec)
        # Jacobi scaling: parameter blocks differ in precision by orders of magnitude
        # (prior-only levels vs. heavily observed ones); scaling removes that part of the
        # ill-conditioning before the Cholesky.
        d = jnp.sqrt(jnp.diag(hess))
        chol = jnp.linalg.cholesky(hess / d[:, None] / d[None, :])
        return eta, grad, chol, d, prec

    min_log_var = 2.0 * jnp.log(settings.scale_floor * prior.scale)

    def hyper_update(theta, log_var, chol, d):
        # diag(H^-1) = diag(Hs^-1) / d^2 with Hs^-1 = L^-T L^-1.
        linv = solve_triangular(chol, jnp.eye(P, dtype=chol.dtype), lower=True)
        var = jnp.sum(linv**2, axis=0) / d**2
        dev = theta - loc
        sq = jnp.zeros(G, theta.dtype).at[gidx].add(jnp.where(is_b0, 0.0, dev**2))
        tr = jnp.zeros(G, theta.dtype).at[gidx].add(jnp.where(is_b0, 0.0, var))
        new = steps.mackay_log_var(sq, tr, log_var, prior.size, prior.scale, min_log_var)
        # Fixed groups (attribute coefficients, meta-prior scales) keep their prior sd.
        return jnp.where(prior.learned, new, log_var)

    def body(state: LaplaceState) -> LaplaceState:
        # One traced copy of the Newton system serves all three phases (search, polish,
        # final curvature): XLA compile time on CPU grows with every copy.
        eta, grad, chol, d, prec = newton_system(state.theta, state.log_var)
        delta = cho_solve((chol, True), grad / d) / d
        # Cap the step (the first Newton step from zero effects can overshoot on sparse
        # data) and backtrack it until the log posterior rises; near the mode the full
        # step is taken, so quadratic convergence is kept.
        delta, newton = steps.damped_newton(partial(log_post, prec=prec), state.theta, delta, grad)
        moved = steps.advance(
            state,
            delta,
            newton,
            lambda theta: hyper_update(theta, state.log_var, chol, d),
            prior.scale,
            settings.tol,
            settings.max_iter,
        )
        return LaplaceState(*moved, eta=eta, grad=grad, chol=chol, d=d, prec=prec)

    init = _init(loc, prior.scale, data.codes.shape[0])
    state = jax.lax.while_loop(lambda s: s.phase < 3, body, init)
    return _result(state, data, spec, prior, settings.tol)


def _init(loc, hyper_scale, num_rows: int) -> LaplaceState:
    """Start at the prior mode with each scale at its hyperprior's scale (traced)."""
    dtype, P = loc.dtype, loc.shape[0]
    return LaplaceState(
        theta=loc,
        log_var=2.0 * jnp.log(hyper_scale),
        iteration=jnp.asarray(0),
        step=jnp.asarray(jnp.inf, dtype),
        phase=jnp.asarray(0),
        eta=jnp.zeros(num_rows, dtype),
        grad=jnp.zeros(P, dtype),
        chol=jnp.eye(P, dtype=dtype),
        d=jnp.ones(P, dtype),
        prec=jnp.ones(P, dtype),
    )


def _result(state: LaplaceState, data: FitData, spec, prior: KernelPrior, tol) -> LaplaceResult:
    """The evidence and the summary of the final Laplace state (traced)."""
    theta, chol, d, prec = state.theta, state.chol, state.d, state.prec
    impressions, clicks = data.weighted()
    loglik = jnp.sum(log_likelihood(state.eta, impressions, clicks, spec.link, data.exposure))
    log_det_h = 2.0 * jnp.sum(jnp.log(jnp.diag(chol))) + 2.0 * jnp.sum(jnp.log(d))
    scales = jnp.exp(0.5 * state.log_var)
    return LaplaceResult(
        mode=theta,
        chol=chol,
        d=d,
        scales=scales,
        iterations=state.iteration,
        converged=state.step <= tol,
        log_evidence=log_evidence(loglik, theta, prec, prior.loc, log_det_h, scales, prior),
        newton_decrement=jnp.sqrt(jnp.sum(solve_triangular(chol, state.grad / d, lower=True) ** 2)),
    )


@partial(jax.jit, static_argnames=("num_samples",))
def gaussian_draws(key, mode, chol, d, *, num_samples: int):
    """``num_samples`` draws of N(mode, H^-1) with ``H = D L L' D``, ``D = diag(d)``."""
    z = jax.random.normal(key, (num_samples, mode.shape[0]), dtype=mode.dtype)
    return mode + solve_triangular(chol.T, z.T, lower=False).T / d


def prior_precision(scales, group, intercept_scale) -> np.ndarray:
    """``(P,)`` prior precision of every flat parameter from the final hyper-scales."""
    scales = np.asarray(scales, np.float64)
    g = np.asarray(group)
    return np.where(g < 0, float(intercept_scale) ** -2.0, scales[np.maximum(g, 0)] ** -2.0)
