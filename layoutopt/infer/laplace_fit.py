"""``fit(method="laplace")``: the dense or low-rank kernel, draws, the Gaussian factor.

Both solvers read the same problem: the padded :class:`FitData`, its :class:`Design` from
the spec, and the :class:`KernelPrior` (the resolved prior with its scale groups pooled or
not). Nothing here asks which terms the model has.
"""

from __future__ import annotations

import warnings
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from layoutopt.infer import iterative, lowrank
from layoutopt.infer.data import pad_data, pad_rows, time_outputs
from layoutopt.infer.laplace import (
    KernelPrior,
    KernelSettings,
    gaussian_draws,
    laplace_kernel,
    prior_precision,
)
from layoutopt.infer.options import LaplaceOptions, laplace_solver
from layoutopt.infer.posterior import GaussianPosterior, Posterior
from layoutopt.infer.problem import (
    FitProblem,
    FitRun,
    hyper_from_scales,
    params_from_flat,
    posterior_from_flat,
)
from layoutopt.model.core import loglik_eta_derivatives
from layoutopt.model.spec import Design, ScaleGroups

__all__ = [
    "FitWarning",
    "LaplaceGaussian",
    "fit_laplace",
    "kernel_prior",
    "laplace_factor",
    "laplace_gaussian",
    "laplace_solve",
    "scales_at_floor",
]


#: The likelihood's weights at the mode, jitted: called eagerly it re-traces its vmapped
#: second derivative on every fit (half the time of a small fit).
_eta_derivatives = jax.jit(loglik_eta_derivatives, static_argnames="link")


class FitWarning(UserWarning):
    """A fit finished but its diagnostics say the draws may not be trustworthy."""


def kernel_prior(problem: FitProblem, scales: str) -> tuple[KernelPrior, ScaleGroups]:
    """The kernels' prior: the resolved prior over pooled or per-group scale groups.

    A prior with fixed (not learned) effect scales, a meta-prior, keeps one scale per
    component and pair whatever ``scales`` says.
    """
    spec, prior = problem.spec, problem.prior
    effects = [k in ("main", "pair") for k in spec.group_kinds()]
    pooled = scales == "pooled" and bool(np.all(prior.learned[effects]))
    groups = spec.scale_groups(pooled)
    out = KernelPrior(
        loc=prior.loc,
        group=groups.group,
        size=groups.size,
        scale=prior.scale[groups.first],
        learned=prior.learned[groups.first],
        intercept_scale=prior.intercept_scale,
    )
    return out, groups


def scales_at_floor(scales, prior: KernelPrior, floor: float) -> bool:
    """Whether every learned scale ended at its floor (``floor`` times its hyperprior
    scale, within 1%): the data show no difference between variants that empirical Bayes
    could size, so the fit cannot tell layouts apart. False when no scale is learned."""
    learned = np.asarray(prior.learned, bool)
    if not learned.any():
        return False
    limit = 1.01 * floor * np.asarray(prior.scale, np.float64)
    return bool(np.all(np.asarray(scales, np.float64)[learned] <= limit[learned]))


#: The kernel of each solver (:data:`layoutopt.infer.options.LAPLACE_SOLVERS` but "auto").
KERNELS = {
    "dense": laplace_kernel,
    "lowrank": lowrank.lowrank_kernel,
    "cg": iterative.cg_kernel,
}


def laplace_solve(solver: str, data, design: Design, prior: KernelPrior, options, problem):
    """Run the solver's kernel (:data:`KERNELS`); its result as host (numpy) arrays."""
    # The one-hot design is collinear by construction (b0, a component's main effects and
    # every pair table containing it can trade a constant), so with large counts the
    # Hessian's condition number reaches 1e6-1e7 and float32 Cholesky breaks down. The
    # kernel therefore runs in float64 under a scoped switch; draws are returned as float32
    # like the other methods'.
    with jax.enable_x64(True):
        f64 = partial(jnp.asarray, dtype=jnp.float64)
        kernel = KERNELS[solver]
        settings = KernelSettings(
            f64(options.scale_floor), f64(options.tol), jnp.asarray(int(options.max_iter))
        )
        out = kernel(
            jax.tree.map(jnp.asarray, data),
            jax.tree.map(jnp.asarray, design),
            jax.tree.map(jnp.asarray, prior._replace(intercept_scale=f64(prior.intercept_scale))),
            settings,
            f64(problem.attributes),
            spec=problem.spec,
        )
        return jax.device_get(out)


class LaplaceGaussian(NamedTuple):
    """A Laplace fit before its draws: the kernel's result and ``Sigma = D - U U'``.

    Attributes:
        out: the kernel's result (host arrays: ``mode``, ``scales``, ``converged``, ...).
        factor: ``(mode, D, U)`` of :func:`laplace_factor`; None for the ``"cg"`` solver,
            whose ``U`` (``P x N``) is what it exists to avoid.
        design: the padded rows' :class:`Design` (the first N rows are the data's).
        groups: the scale groups.
        solver: ``"dense"``, ``"lowrank"`` or ``"cg"``.
        data: the padded :class:`FitData`.
    """

    out: Any
    factor: tuple
    design: Design
    groups: ScaleGroups
    solver: str
    data: Any


def laplace_gaussian(problem: FitProblem, options: LaplaceOptions) -> LaplaceGaussian:
    """Mode, empirical-Bayes scales and the Gaussian factor of ``problem`` (no draws)."""
    spec = problem.spec
    data = pad_data(problem.data, pad_rows(len(problem.data.codes)))
    design = spec.design(data.codes, data.segments, problem.attributes)
    prior, groups = kernel_prior(problem, options.scales)
    solver = laplace_solver(options.solver, spec.num_params, len(data.codes))
    out = laplace_solve(solver, data, design, prior, options, problem)
    factor = None
    if solver != "cg":
        precision = prior_precision(out.scales, groups.group, prior.intercept_scale)
        factor = laplace_factor(out.mode, precision, design, data, spec.link)
    return LaplaceGaussian(out, factor, design, groups, solver, data)


def fit_laplace(problem: FitProblem, options: LaplaceOptions, run: FitRun) -> Posterior:
    """Laplace fit of ``problem``: mode, empirical-Bayes scales and Gaussian draws."""
    spec = problem.spec
    delay = problem.delay
    out, factor, design, groups, solver, _ = laplace_gaussian(problem, options)
    with jax.enable_x64(True):
        key = jax.random.PRNGKey(run.seed)
        draws, solved = _draws(solver, key, out, design, run.num_samples)
    hyper = hyper_from_scales(spec, groups, out.scales, run.num_samples)
    diagnostics = {
        "converged": bool(out.converged),
        "iterations": int(out.iterations),
        "log_evidence": float(out.log_evidence),
        "newton_decrement": float(out.newton_decrement),
        "scales_at_floor": scales_at_floor(
            out.scales, kernel_prior(problem, options.scales)[0], options.scale_floor
        ),
    }
    if solver == "cg":
        diagnostics.update(
            log_evidence_se=float(out.log_evidence_se),
            gamma_rel_se=float(out.gamma_rel_se),
            cg_iterations=int(out.cg_iterations),
            cg_converged=bool(out.cg_converged) and solved,
        )
        if not diagnostics["cg_converged"]:
            warnings.warn(
                f"a conjugate-gradient solve of the Laplace fit stopped at "
                f"{iterative.CG_MAX_ITER:,} iterations before reaching its tolerance; the "
                "draws may be off: check the data (e.g. a layout with clicks == impressions) "
                "or use method='svi'",
                FitWarning,
                stacklevel=3,
            )
    time_hyper, time_diagnostics = time_outputs(problem.time, delay, run.num_samples)
    hyper.update(time_hyper)
    diagnostics.update(time_diagnostics)
    if not diagnostics["converged"]:
        warnings.warn(
            f"Laplace fit did not converge in {int(options.max_iter)} iterations; raise "
            "max_iter, or check the data (e.g. a layout with clicks == impressions) or use "
            "method='nuts'",
            FitWarning,
            stacklevel=3,
        )
    return posterior_from_flat(
        problem,
        draws,
        hyper,
        method="laplace",
        num_chains=1,
        diagnostics=diagnostics,
        gaussian=None if factor is None else gaussian_params(problem, factor),
    )


def _draws(solver: str, key, out, design: Design, num_samples: int):
    """``(draws, solved)``: the posterior draws of a kernel's result (host float64) and
    whether their solves converged (always for the direct solvers)."""
    if solver == "dense":
        return np.asarray(
            gaussian_draws(key, out.mode, out.chol, out.d, num_samples=num_samples)
        ), True
    design = jax.tree.map(jnp.asarray, design)
    if solver == "lowrank":
        args = (jnp.asarray(a) for a in (out.mode, out.chol, out.s, out.prec))
        return np.asarray(lowrank.lowrank_draws(key, design, *args, num_samples=num_samples)), True
    args = (jnp.asarray(a) for a in (out.mode, out.w, out.prec))
    draws, ok = iterative.cg_draws(key, design, *args, num_samples=num_samples)
    return np.asarray(draws), bool(ok)


def laplace_factor(mode, prec, design: Design, data, link: str):
    """``Sigma = H^-1 = D - U U'`` of a Laplace fit, from the Woodbury identity (float64).

    ``H = Lam + X' W X`` with ``Lam = diag(prec)`` the prior precision and X the N observed
    rows (``design``'s active columns and values; W the likelihood weights at the mode, as
    the Laplace kernel takes them). With ``D = Lam^-1`` and ``B = W^1/2 X D^1/2``::

        Sigma = D - D X' W^1/2 (I + B B')^-1 W^1/2 X D = D - U U',   U = D X' W^1/2 C^-T

    where ``C C' = I + B B'`` (eigenvalues >= 1: a well-conditioned N x N Cholesky, unlike
    ``W^-1 + X D X'`` whose W^-1 is infinite for an empty row). Rows with the same layout
    (age cohorts) are merged by adding their weights, and rows of weight 0 dropped, so U
    has one column per distinct observed layout; zero columns pad it to the N padded rows,
    so that scoring compiles once per N, like the kernel (a loop adding layouts each round).

    Args:
        mode: ``(P,)`` flat mode.
        prec: ``(P,)`` prior precisions.
        design: the rows' :class:`Design`.
        data: the rows' :class:`FitData` (counts, weights, exposure).
        link: the link function.

    Returns:
        ``(mode, D, U)``: ``(P,)``, ``(P,)`` and ``(P, N)`` float64.
    """
    mode = np.asarray(mode, np.float64)
    columns, values = np.asarray(design.columns), np.asarray(design.values, np.float64)
    eta = np.sum(values * mode[columns], axis=1)
    impressions, clicks = data.weighted()
    with jax.enable_x64(True):
        _, w = _eta_derivatives(
            jnp.asarray(eta), jnp.asarray(impressions, jnp.float64),
            jnp.asarray(clicks, jnp.float64), link, jnp.asarray(data.exposure, jnp.float64),
        )  # fmt: skip
    w = np.asarray(w, np.float64)
    uniq, inverse = np.unique(columns, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    w_u = np.bincount(inverse, weights=w, minlength=len(uniq))
    first = np.zeros(len(uniq), np.int64)
    first[inverse[::-1]] = np.arange(len(columns))[::-1]
    keep = w_u > 0
    rows, vals, w_u = uniq[keep], values[first[keep]], w_u[keep]
    P, r = mode.shape[0], len(rows)
    X = np.zeros((r, P))
    np.add.at(X, (np.repeat(np.arange(r), rows.shape[1]), rows.reshape(-1)), vals.reshape(-1))
    d = 1.0 / np.asarray(prec, np.float64)
    B = np.sqrt(w_u)[:, None] * X * np.sqrt(d)[None, :]
    C = np.linalg.cholesky(np.eye(r) + B @ B.T)
    # U' = C^-1 W^1/2 X D
    U = np.zeros((P, len(columns)))
    if r:
        U[:, :r] = np.linalg.solve(C, np.sqrt(w_u)[:, None] * X * d[None, :]).T
    return mode, d, U


def gaussian_params(problem: FitProblem, factor) -> GaussianPosterior:
    """:class:`GaussianPosterior` tables from the flat ``(mode, D, U)`` of
    :func:`laplace_factor`: composed like the draws, except that an attribute coefficient's
    variance enters its component's table with weight ``a^2``."""
    mode, var, U = factor
    spec, A = problem.spec, np.asarray(problem.attributes, np.float64)
    # float64: v = x'Dx - |U'x|^2 cancels where the data determine eta far better than the
    # prior does; float32 tables would lose ~1e-7 x'Dx (30% of the sd at 10^7 impressions)
    return GaussianPosterior(
        params_from_flat(spec, mode[None], A, np.float64),
        params_from_flat(spec, var[None], A**2, np.float64),
        params_from_flat(spec, np.ascontiguousarray(U.T), A, np.float64),
    )
