"""Laplace / empirical-Bayes fit without a P x P Hessian: a low-rank update of the prior.

The Hessian of the negative log posterior is ``H = Lam + X' W X``: the diagonal prior
precision ``Lam`` plus one rank-one term per observed layout (``X`` the ``N x P`` one-hot
design, ``W`` the likelihood weights). With ``s = sqrt(w)`` and ``B = I + S X Lam^-1 X' S``
(``N x N``, eigenvalues >= 1), Woodbury's identity and the determinant lemma give, exactly::

    H^-1 = Lam^-1 - Lam^-1 X' S B^-1 S X Lam^-1,     log det H = log det Lam + log det B

so the Newton step, the group traces of ``H^-1`` that the hyper-scale fixed point needs,
the evidence and the posterior draws cost ``O(N^3 + C N^2)`` (C columns
per layout) instead of ``O(P^3)``, and memory is ``O(N^2 + N C)`` instead of ``O(P^2)``.
``X Lam^-1 X'`` never needs ``X``: rows n and m share a column of slot c exactly when they
have the same code(s) there (an attribute slot: always, with values ``a(x_n) a(x_m)``), and
every column of a slot has the same prior precision. So the solver reads the same
:class:`~layoutopt.model.spec.Design` as the dense one and carries every term it does
(segments, attributes, meta-priors, a delay's exposure, drift weights). For
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

from layoutopt.infer import steps
from layoutopt.infer.laplace import KernelPrior, KernelSettings, log_evidence, log_posterior
from layoutopt.model.core import log_likelihood, logits, loglik_eta_derivatives
from layoutopt.model.spec import Design, FitData, ModelSpec

__all__ = [
    "LowRankState",
    "LowRankResult",
    "design_times",
    "design_transposed_times",
    "lowrank_kernel",
    "lowrank_draws",
    "solve",
]


class LowRankState(NamedTuple):
    """Loop state of the low-rank Laplace iteration (as the dense kernel's ``LaplaceState``).

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
    """What :func:`lowrank_kernel` returns (the fields of the dense
    :class:`~layoutopt.infer.laplace.LaplaceResult`, with the factor of ``B`` in place of
    the dense one).

    Attributes:
        mode: ``(P,)`` flat posterior mode.
        chol: ``(N, N)`` lower Cholesky factor of ``B = I + S X Lam^-1 X' S`` at the mode.
        s: ``(N,)`` square roots of the likelihood weights at the mode.
        prec: ``(P,)`` prior precisions ``Lam``.
        scales: ``(G,)`` empirical-Bayes hyper-scales.
        iterations: iterations of the search.
        converged: whether the last step was below ``tol``.
        log_evidence: as the dense kernel's (determinant lemma).
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


def design_transposed_times(design: Design, y, P):
    """``X' y`` for ``y`` ``(..., N)``: scatter-add into the active columns."""
    vals = y[..., :, None] * design.values
    return jnp.zeros(y.shape[:-1] + (P,), y.dtype).at[..., design.columns].add(vals)


def design_times(design: Design, a):
    """``X a`` for ``a`` ``(..., P)``: the values times the active columns, ``(..., N)``."""
    return (a[..., design.columns] * design.values).sum(axis=-1)


def _slot_gram(design: Design, slot_scale):
    """``sum_c slot_scale[c] v_nc v_mc [col_nc == col_mc]``, ``(N, N)``."""
    N, C = design.columns.shape

    def add(c, acc):
        col, v = design.columns[:, c], design.values[:, c]
        same = col[:, None] == col[None, :]
        return acc + jnp.where(same, slot_scale[c] * v[:, None] * v[None, :], 0.0)

    return jax.lax.fori_loop(0, C, add, jnp.zeros((N, N), slot_scale.dtype))


def _slot_traces(design: Design, Q):
    """``t_c = sum_nm Q_nm v_nc v_mc [col_nc == col_mc]`` for every slot c, ``(C,)``."""

    def one(args):
        col, v = args
        return jnp.sum(jnp.where(col[:, None] == col[None, :], Q * v[:, None] * v[None, :], 0.0))

    return jax.lax.map(one, (design.columns.T, design.values.T))


def solve(design: Design, chol, s, prec, g):
    """``H^-1 g`` by Woodbury, for ``g`` ``(..., P)``."""
    a = g / prec
    u = s * design_times(design, a)
    v = cho_solve((chol, True), u.reshape(-1, u.shape[-1]).T).T.reshape(u.shape)
    return a - design_transposed_times(design, s * v, g.shape[-1]) / prec


@partial(jax.jit, static_argnames=("spec",))
def lowrank_kernel(
    data: FitData,
    design: Design,
    prior: KernelPrior,
    settings: KernelSettings,
    attributes,
    *,
    spec: ModelSpec,
) -> LowRankResult:
    """The Laplace / empirical-Bayes iteration of the dense kernel, by Woodbury.

    Same arguments, loop and stopping rule as
    :func:`~layoutopt.infer.laplace.laplace_kernel`; returns a :class:`LowRankResult`.
    """
    P, G, N = prior.group.shape[0], prior.size.shape[0], data.codes.shape[0]
    is_b0 = prior.group < 0
    gidx = jnp.maximum(prior.group, 0)
    loc = prior.loc
    slot_group = prior.group[design.columns[0]]  # every column of a slot is in one group
    slot_is_b0 = slot_group < 0
    slot_gidx = jnp.maximum(slot_group, 0)
    impressions, clicks = data.weighted()
    log_post = log_posterior(spec, data, attributes, loc)

    def slot_prec(log_var):
        return jnp.where(slot_is_b0, prior.intercept_scale**-2.0, jnp.exp(-log_var)[slot_gidx])

    def system(theta, log_var):
        params, _ = spec.unravel(theta, attributes)
        eta = logits(params, data.codes, data.segments)
        d1, w = loglik_eta_derivatives(eta, impressions, clicks, spec.link, data.exposure)
        prec = jnp.where(is_b0, prior.intercept_scale**-2.0, jnp.exp(-log_var)[gidx])
        grad = design_transposed_times(design, d1, P) - prec * (theta - loc)
        s = jnp.sqrt(w)
        gram = _slot_gram(design, 1.0 / slot_prec(log_var))
        chol = jnp.linalg.cholesky(jnp.eye(N, dtype=theta.dtype) + s[:, None] * gram * s)
        return eta, grad, chol, s, prec

    min_log_var = 2.0 * jnp.log(settings.scale_floor * prior.scale)

    def hyper_update(theta, log_var, chol, s):
        # sum over group g of diag(H^-1) = n_g / lam_g - sum_{slots c in g} t_c / lam_g^2
        q = cho_solve((chol, True), jnp.eye(N, dtype=chol.dtype)) * s[:, None] * s[None, :]
        t = _slot_traces(design, q)
        lam = slot_prec(log_var)
        corr = jnp.zeros(G, theta.dtype).at[slot_gidx].add(jnp.where(slot_is_b0, 0.0, t / lam**2))
        tr = prior.size * jnp.exp(log_var) - corr
        sq = jnp.zeros(G, theta.dtype).at[gidx].add(jnp.where(is_b0, 0.0, (theta - loc) ** 2))
        new = steps.mackay_log_var(sq, tr, log_var, prior.size, prior.scale, min_log_var)
        return jnp.where(prior.learned, new, log_var)

    def body(state: LowRankState) -> LowRankState:
        eta, grad, chol, s, prec = system(state.theta, state.log_var)
        delta = solve(design, chol, s, prec, grad)
        delta, newton = steps.damped_newton(partial(log_post, prec=prec), state.theta, delta, grad)
        moved = steps.advance(
            state,
            delta,
            newton,
            lambda theta: hyper_update(theta, state.log_var, chol, s),
            prior.scale,
            settings.tol,
            settings.max_iter,
        )
        return LowRankState(*moved, eta, grad, chol, s, prec)

    dtype = loc.dtype
    init = LowRankState(
        loc,
        2.0 * jnp.log(prior.scale),
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
    loglik = jnp.sum(log_likelihood(st.eta, impressions, clicks, spec.link, data.exposure))
    log_det_h = jnp.sum(jnp.log(st.prec)) + 2.0 * jnp.sum(jnp.log(jnp.diag(st.chol)))
    scales = jnp.exp(0.5 * st.log_var)
    step = solve(design, st.chol, st.s, st.prec, st.grad)
    return LowRankResult(
        mode=st.theta,
        chol=st.chol,
        s=st.s,
        prec=st.prec,
        scales=scales,
        iterations=st.iteration,
        converged=st.step <= settings.tol,
        log_evidence=log_evidence(loglik, st.theta, st.prec, loc, log_det_h, scales, prior),
        newton_decrement=jnp.sqrt(jnp.maximum(jnp.dot(st.grad, step), 0.0)),
    )


@partial(jax.jit, static_argnames=("num_samples", "batch"))
def lowrank_draws(key, design: Design, mode, chol, s, prec, *, num_samples: int, batch: int = 32):
    """``num_samples`` draws of ``N(mode, H^-1)`` by perturb-and-solve, ``batch`` at a time."""
    N, P = chol.shape[0], mode.shape[0]
    n_batches = -(-num_samples // batch)
    keys = jax.random.split(key, n_batches)

    def one(k):
        k1, k2 = jax.random.split(k)
        e1 = jax.random.normal(k1, (batch, N), mode.dtype)
        e2 = jax.random.normal(k2, (batch, P), mode.dtype)
        r = design_transposed_times(design, s * e1, P) + jnp.sqrt(prec) * e2
        return mode + solve(design, chol, s, prec, r)

    return jax.lax.map(one, keys).reshape(-1, P)[:num_samples]
