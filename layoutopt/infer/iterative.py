"""Laplace / empirical-Bayes fit by conjugate gradients: no ``P x P`` nor ``N x N`` matrix.

The dense kernel factorises the ``P x P`` Hessian ``H = Lam + X' W X`` and the low-rank
one the ``N x N`` matrix of Woodbury's identity; both are cubic, in the parameters or in
the observed rows. A model with many parameters fitted on many rows (three slots of 80
items with their pair tables, 19,441 parameters, on the 6,580 layouts of their pairwise
design) is beyond both. This kernel touches ``H`` only through products ``H v = Lam v +
X' (w * X v)``, which read the design's active columns (``O(N C + P)``, C columns per row),
and solves with the preconditioned conjugate-gradient method (Jacobi preconditioner
``diag(H)``, exact and cheap for a one-hot design). Everything else is the dense kernel's:

* the mode: Newton steps ``H^-1 grad`` (damped, :func:`layoutopt.infer.steps.damped_newton`),
  the same three-phase loop (:func:`layoutopt.infer.steps.advance`);
* the scales: MacKay's fixed point, which needs each group's effective number of
  well-determined effects ``gamma_g = n_g - tr_g(H^-1) / s_g = tr_g(H^-1 X' W X)``. It is
  estimated with Hutchinson's estimator, ``gamma_g ~ mean_s sum_{i in g} z_si (H^-1 X' W X
  z_s)_i``, over ``PROBES`` fixed Rademacher probes (the same probes at every iteration and
  in every fit, so the fixed point is deterministic and the fit reproducible). Estimating
  ``tr_g(H^-1)`` instead and subtracting fails: ``gamma`` is a small difference of two
  numbers of the size of the group (19,200 pair effects, gamma in the tens), so a 0.5%
  error of the trace swamped it and sent the pair scale to its floor; the error of the
  direct estimate scales with ``gamma`` itself. Its standard error over the probes,
  relative to ``max(gamma_g, 1)``, is reported as ``gamma_rel_se``;
* the draws: perturb-and-solve, ``z = H^-1 (X' W^1/2 e1 + Lam^1/2 e2)`` (as the low-rank
  kernel's), exact in distribution up to the solver's tolerance;
* the evidence: ``log det H`` by stochastic Lanczos quadrature on the preconditioned
  operator (Ubaru, Chen & Saad 2017), an estimate whose standard error over the probes is
  reported beside it (``log_evidence_se``).

Every term the dense solver carries (segments, attributes, meta-priors, a delay's exposure,
drift weights) is carried here, since the kernel reads the same :class:`Design`.

References:
    Hutchinson, M. F. (1990). A stochastic estimator of the trace of the influence matrix.
    Ubaru, S., Chen, J. & Saad, Y. (2017). Fast estimation of tr(f(A)) via stochastic
    Lanczos quadrature. SIAM J. Matrix Anal. Appl.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from layoutopt.infer import steps
from layoutopt.infer.laplace import KernelPrior, KernelSettings, log_evidence, log_posterior
from layoutopt.infer.lowrank import design_times, design_transposed_times
from layoutopt.model.core import log_likelihood, logits, loglik_eta_derivatives
from layoutopt.model.spec import Design, FitData, ModelSpec

__all__ = [
    "PROBES",
    "LANCZOS_STEPS",
    "CG_TOL",
    "CG_MAX_ITER",
    "MATVEC_BYTES",
    "CgResult",
    "cg_kernel",
    "cg_draws",
    "pcg",
]

#: Rademacher probes of the trace and log-determinant estimates.
PROBES = 32
#: Lanczos steps of the log-determinant estimate (per probe).
LANCZOS_STEPS = 48
#: Relative residual at which a conjugate-gradient solve stops.
CG_TOL = 1e-9
#: Cap on the iterations of one conjugate-gradient solve.
CG_MAX_ITER = 4_000
#: Bytes the look-ups of one batched Hessian-vector product may take (a batch of
#: right-hand sides is mapped over in groups within it).
MATVEC_BYTES = 256 * 2**20
#: The probes' key: fixed, so that a fit does not depend on its seed but through its draws.
_PROBE_KEY = 20_101


class CgResult(NamedTuple):
    """What :func:`cg_kernel` returns.

    Attributes:
        mode: ``(P,)`` flat posterior mode.
        w: ``(N,)`` likelihood weights at the mode.
        prec: ``(P,)`` prior precisions ``Lam`` at the returned scales.
        scales: ``(G,)`` empirical-Bayes hyper-scales.
        iterations: Newton / empirical-Bayes iterations of the search.
        converged: whether the last step was below ``tol``.
        log_evidence: the Laplace evidence, its ``log det H`` estimated by stochastic
            Lanczos quadrature.
        log_evidence_se: standard error of that estimate over the probes.
        newton_decrement: ``sqrt(g' H^-1 g)`` at the returned mode.
        gamma_rel_se: largest standard error of a learned group's estimated effective
            number of parameters, relative to ``max(gamma_g, 1)``, at the mode.
        cg_iterations: most conjugate-gradient iterations one solve took.
        cg_converged: whether every solve reached ``CG_TOL``.
    """

    mode: jax.Array
    w: jax.Array
    prec: jax.Array
    scales: jax.Array
    iterations: jax.Array
    converged: jax.Array
    log_evidence: jax.Array
    log_evidence_se: jax.Array
    newton_decrement: jax.Array
    gamma_rel_se: jax.Array
    cg_iterations: jax.Array
    cg_converged: jax.Array


class _State(NamedTuple):
    theta: jax.Array
    log_var: jax.Array
    iteration: jax.Array
    step: jax.Array
    phase: jax.Array
    probe_solution: jax.Array  # (S, P) H^-1 X'WX z at the last scale update (warm start)
    cg_iterations: jax.Array
    cg_converged: jax.Array


def _hessian(design: Design, w, prec):
    """``v -> H v`` for ``v`` ``(P,)`` or ``(B, P)``, and the Jacobi preconditioner
    ``diag(H)``. A batch is mapped over in groups whose ``(group, N, C)`` look-ups fit in
    ``MATVEC_BYTES``, so memory does not grow with the number of right-hand sides."""
    P = prec.shape[0]
    N, C = design.columns.shape
    diag = prec + design_transposed_times(design._replace(values=design.values**2), w, P)

    def one(v):
        return prec * v + design_transposed_times(design, w * design_times(design, v), P)

    def matvec(v):
        if v.ndim == 1:
            return one(v)
        group = max(1, min(v.shape[0], MATVEC_BYTES // (16 * N * C)))
        return jax.lax.map(one, v, batch_size=group)

    return matvec, diag


def pcg(matvec, b, diag, x0=None, tol=CG_TOL, max_iter=CG_MAX_ITER):
    """Solve ``H x = b`` for every row of ``b`` ``(..., P)`` by Jacobi-preconditioned CG.

    Args:
        matvec: ``v -> H v`` (symmetric positive definite), batched over leading axes.
        b: right-hand sides.
        diag: ``(P,)`` the preconditioner (``diag(H)``).
        x0: starting point (None: zeros).
        tol: stop when every ``|r| <= tol |b|``.
        max_iter: cap on iterations.

    Returns:
        ``(x, iterations, converged)``.
    """
    x = jnp.zeros_like(b) if x0 is None else x0
    r = b - matvec(x)
    z = r / diag
    goal = tol * jnp.linalg.norm(b, axis=-1)

    def cond(st):
        it, _, r, _, _ = st
        return (it < max_iter) & jnp.any(jnp.linalg.norm(r, axis=-1) > goal)

    def body(st):
        it, x, r, p, rz = st
        hp = matvec(p)
        php = jnp.sum(p * hp, axis=-1, keepdims=True)
        alpha = jnp.where(php > 0, rz / jnp.where(php > 0, php, 1.0), 0.0)
        x = x + alpha * p
        r = r - alpha * hp
        z = r / diag
        rz_new = jnp.sum(r * z, axis=-1, keepdims=True)
        beta = jnp.where(rz > 0, rz_new / jnp.where(rz > 0, rz, 1.0), 0.0)
        return it + 1, x, r, z + beta * p, rz_new

    rz = jnp.sum(r * z, axis=-1, keepdims=True)
    it, x, r, _, _ = jax.lax.while_loop(cond, body, (jnp.asarray(0), x, r, z, rz))
    return x, it, jnp.all(jnp.linalg.norm(r, axis=-1) <= goal)


def _probes(P, dtype):
    key = jax.random.PRNGKey(_PROBE_KEY)
    return jax.random.rademacher(key, (PROBES, P), dtype)


def _group_sums(values, gidx, is_b0, G):
    """Sum the last axis of ``values`` by scale group (the intercept left out)."""
    v = jnp.where(is_b0, 0.0, values)
    return jnp.zeros(values.shape[:-1] + (G,), values.dtype).at[..., gidx].add(v)


def _log_det(matvec, diag, probes):
    """``log det H``: ``sum log diag`` plus stochastic Lanczos quadrature of ``tr log A``,
    ``A = M^-1/2 H M^-1/2``; returns ``(estimate, standard error)``."""
    root = jnp.sqrt(diag)

    def a_times(v):
        return matvec(v / root) / root

    S, P = probes.shape
    q = probes / jnp.sqrt(P)
    m = min(LANCZOS_STEPS, P)

    def step(carry, _):
        q_prev, q, beta = carry
        v = a_times(q) - beta[:, None] * q_prev
        alpha = jnp.sum(q * v, axis=-1)
        v = v - alpha[:, None] * q
        beta_new = jnp.linalg.norm(v, axis=-1)
        q_next = v / jnp.where(beta_new > 0, beta_new, 1.0)[:, None]
        return (q, q_next, beta_new), (alpha, beta_new)

    zero = jnp.zeros(S, probes.dtype)
    _, (alphas, betas) = jax.lax.scan(step, (jnp.zeros_like(q), q, zero), None, length=m)
    # T_s: the tridiagonal of each probe's Lanczos run; a breakdown (beta = 0) leaves the
    # rest of T decoupled from e1, so it does not enter e1' log(T) e1
    off = betas[:-1].T
    T = jax.vmap(jnp.diag)(alphas.T) + jax.vmap(lambda b: jnp.diag(b, 1) + jnp.diag(b, -1))(off)
    theta, vecs = jnp.linalg.eigh(T)
    quad = P * jnp.sum(vecs[:, 0, :] ** 2 * jnp.log(jnp.maximum(theta, 1e-300)), axis=-1)
    base = jnp.sum(jnp.log(diag))
    return base + jnp.mean(quad), jnp.std(quad) / jnp.sqrt(S)


@partial(jax.jit, static_argnames=("spec",))
def cg_kernel(
    data: FitData,
    design: Design,
    prior: KernelPrior,
    settings: KernelSettings,
    attributes,
    *,
    spec: ModelSpec,
) -> CgResult:
    """The Laplace / empirical-Bayes iteration of the dense kernel, by conjugate gradients.

    Same arguments, loop and stopping rule as
    :func:`~layoutopt.infer.laplace.laplace_kernel`; returns a :class:`CgResult`.
    """
    P, G = prior.group.shape[0], prior.size.shape[0]
    is_b0 = prior.group < 0
    gidx = jnp.maximum(prior.group, 0)
    loc = prior.loc
    impressions, clicks = data.weighted()
    log_post = log_posterior(spec, data, attributes, loc)
    probes = _probes(P, loc.dtype)
    min_log_var = 2.0 * jnp.log(settings.scale_floor * prior.scale)

    def precision(log_var):
        return jnp.where(is_b0, prior.intercept_scale**-2.0, jnp.exp(-log_var)[gidx])

    def system(theta, log_var):
        params, _ = spec.unravel(theta, attributes)
        eta = logits(params, data.codes, data.segments)
        d1, w = loglik_eta_derivatives(eta, impressions, clicks, spec.link, data.exposure)
        prec = precision(log_var)
        grad = design_transposed_times(design, d1, P) - prec * (theta - loc)
        return eta, w, prec, grad

    def gammas(matvec, diag, prec, warm):
        # H^-1 X'WX z = H^-1 (H z - Lam z)
        y, it, ok = pcg(matvec, matvec(probes) - prec * probes, diag, x0=warm)
        per_probe = _group_sums(probes * y, gidx, is_b0, G)  # (S, G)
        return per_probe, y, it, ok

    def body(st: _State) -> _State:
        _, w, prec, grad = system(st.theta, st.log_var)
        matvec, diag = _hessian(design, w, prec)
        delta, it, ok = pcg(matvec, grad, diag)
        delta, newton = steps.damped_newton(partial(log_post, prec=prec), st.theta, delta, grad)
        update = (st.phase == 0) & newton

        def hyper(theta):
            def move(_):
                per_probe, y, it2, ok2 = gammas(matvec, diag, prec, st.probe_solution)
                tr = jnp.exp(st.log_var) * (prior.size - jnp.mean(per_probe, axis=0))
                sq = _group_sums((theta - loc) ** 2, gidx, is_b0, G)
                new = steps.mackay_log_var(sq, tr, st.log_var, prior.size, prior.scale, min_log_var)
                return jnp.where(prior.learned, new, st.log_var), y, it2, ok2

            def keep(_):
                return st.log_var, st.probe_solution, jnp.asarray(0), jnp.asarray(True)

            return jax.lax.cond(update, move, keep, None)

        new_log_var, y, it2, ok2 = hyper(st.theta + delta)
        moved = steps.advance(
            st, delta, newton, lambda _: new_log_var, prior.scale, settings.tol, settings.max_iter
        )
        return _State(
            *moved,
            y,
            jnp.maximum(st.cg_iterations, jnp.maximum(it, it2)),
            st.cg_converged & ok & ok2,
        )

    dtype = loc.dtype
    init = _State(
        loc,
        2.0 * jnp.log(prior.scale),
        jnp.asarray(0),
        jnp.asarray(jnp.inf, dtype),
        jnp.asarray(0),
        jnp.zeros((PROBES, P), dtype),
        jnp.asarray(0),
        jnp.asarray(True),
    )
    st = jax.lax.while_loop(lambda s: s.phase < 3, body, init)
    eta, w, prec, grad = system(st.theta, st.log_var)
    matvec, diag = _hessian(design, w, prec)
    step, it, ok = pcg(matvec, grad, diag)
    per_probe, _, it2, ok2 = gammas(matvec, diag, prec, st.probe_solution)
    gamma = jnp.mean(per_probe, axis=0)
    gamma_se = jnp.std(per_probe, axis=0) / jnp.sqrt(PROBES)
    rel = jnp.where(prior.learned, gamma_se / jnp.maximum(gamma, 1.0), 0.0)
    log_det_h, log_det_se = _log_det(matvec, diag, probes)
    loglik = jnp.sum(log_likelihood(eta, impressions, clicks, spec.link, data.exposure))
    scales = jnp.exp(0.5 * st.log_var)
    return CgResult(
        mode=st.theta,
        w=w,
        prec=prec,
        scales=scales,
        iterations=st.iteration,
        converged=st.step <= settings.tol,
        log_evidence=log_evidence(loglik, st.theta, prec, loc, log_det_h, scales, prior),
        log_evidence_se=0.5 * log_det_se,
        newton_decrement=jnp.sqrt(jnp.maximum(jnp.dot(grad, step), 0.0)),
        gamma_rel_se=jnp.max(rel, initial=0.0),
        cg_iterations=jnp.maximum(st.cg_iterations, jnp.maximum(it, it2)),
        cg_converged=st.cg_converged & ok & ok2,
    )


@partial(jax.jit, static_argnames=("num_samples", "batch"))
def cg_draws(key, design: Design, mode, w, prec, *, num_samples: int, batch: int = 64):
    """``num_samples`` draws of ``N(mode, H^-1)`` by perturb-and-solve, ``batch`` at a time.

    Returns:
        ``(draws, converged)``: ``(num_samples, P)`` and whether every solve reached
        ``CG_TOL``.
    """
    N, P = w.shape[0], mode.shape[0]
    matvec, diag = _hessian(design, w, prec)
    n_batches = -(-num_samples // batch)
    keys = jax.random.split(key, n_batches)

    def one(k):
        k1, k2 = jax.random.split(k)
        e1 = jax.random.normal(k1, (batch, N), mode.dtype)
        e2 = jax.random.normal(k2, (batch, P), mode.dtype)
        r = design_transposed_times(design, jnp.sqrt(w) * e1, P) + jnp.sqrt(prec) * e2
        x, _, ok = pcg(matvec, r, diag)
        return mode + x, ok

    draws, ok = jax.lax.map(one, keys)
    return draws.reshape(-1, P)[:num_samples], jnp.all(ok)
