"""Options of the fitting methods: one frozen dataclass per method, validated on creation."""

from __future__ import annotations

from dataclasses import dataclass

from layoutopt.util.limits import (
    LAPLACE_LOWRANK_MAX_PARAMS,
    LAPLACE_LOWRANK_MAX_ROWS,
    LAPLACE_MAX_PARAMS,
)

__all__ = [
    "LaplaceOptions",
    "NutsOptions",
    "SviOptions",
    "OPTIONS",
    "LAPLACE_SCALES",
    "LAPLACE_SOLVERS",
    "LOWRANK_MIN_PARAMS",
    "NUTS_CHAIN_METHODS",
    "SVI_GUIDES",
    "laplace_solver",
]

LAPLACE_SCALES = ("pooled", "per_group")
LAPLACE_SOLVERS = ("auto", "dense", "lowrank", "cg")
#: ``solver="auto"`` picks the low-rank solver above this many parameters, where the dense
#: solver is refused (:func:`layoutopt.util.limits.check_fit_size`). Below it the low-rank
#: solver is often faster too (``benchmarks/README.md``), but the dense one is the
#: reference, so the low-rank one has to be asked for there.
LOWRANK_MIN_PARAMS = LAPLACE_MAX_PARAMS
#: ``SviOptions.guide`` values besides ``"auto"``.
SVI_GUIDES = ("lowrank", "full", "diag")


@dataclass(frozen=True)
class LaplaceOptions:
    """Options of ``fit(method="laplace")``.

    Attributes:
        max_iter: cap on Newton / empirical-Bayes iterations.
        tol: stop when the Newton step and the change of every hyper-scale, in units of its
            hyperprior scale, are below it; a final Newton step then polishes the mode.
        scale_floor: hyper-scales never fall below this fraction of their hyperprior scale.
        scales: ``"pooled"`` (one empirical-Bayes scale shared by all main effects and one
            by all pair effects) or ``"per_group"`` (one per component and per pair, as in
            the NumPyro model). Per-group point estimates from a small design collapse
            towards zero for many groups, which made 90% intervals on untested layouts cover
            only ~70% of true CTRs in the extrapolation study; pooled scales covered ~90%
            (``experiments/README.md``).
        solver: ``"auto"`` (``"dense"`` up to ``limits.LAPLACE_MAX_PARAMS`` parameters;
            beyond, ``"lowrank"`` when fewer rows were observed than there are parameters,
            at most ``limits.LAPLACE_LOWRANK_MAX_ROWS`` rows and
            ``limits.LAPLACE_LOWRANK_MAX_PARAMS`` parameters, else ``"cg"``),
            ``"dense"`` (the P x P Hessian and its Cholesky factor), ``"lowrank"``
            (Woodbury over the N observed rows, never forming the P x P Hessian: exact,
            O(N^3 + C N^2) per iteration instead of O(P^3); up to
            ``limits.LAPLACE_LOWRANK_MAX_PARAMS`` parameters and
            ``limits.LAPLACE_LOWRANK_MAX_ROWS`` rows; see ``layoutopt.infer.lowrank``) or
            ``"cg"`` (conjugate gradients on Hessian-vector products: no matrix of either
            size, O(N C + P) per solver iteration, the scales' traces and the evidence's
            log-determinant estimated from fixed random probes; no row limit; see
            ``layoutopt.infer.iterative``). Every solver carries every term of the model.
    """

    max_iter: int = 500
    tol: float = 1e-3
    scale_floor: float = 1e-3
    scales: str = "pooled"
    solver: str = "auto"

    def __post_init__(self):
        if self.solver not in LAPLACE_SOLVERS:
            raise ValueError(
                f"laplace option solver={self.solver!r} is not valid; valid: {LAPLACE_SOLVERS}"
            )
        if self.scales not in LAPLACE_SCALES:
            raise ValueError(
                f"laplace option scales={self.scales!r} is not valid; valid: {list(LAPLACE_SCALES)}"
            )
        if self.max_iter < 1 or not self.tol > 0 or not 0 < self.scale_floor < 1:
            raise ValueError(
                f"laplace options need max_iter >= 1, tol > 0, 0 < scale_floor < 1; got "
                f"max_iter={self.max_iter}, tol={self.tol}, scale_floor={self.scale_floor}"
            )


#: ``NutsOptions.chain_method`` values (as ``numpyro.infer.MCMC`` names them).
NUTS_CHAIN_METHODS = ("sequential", "vectorized", "parallel")


@dataclass(frozen=True)
class NutsOptions:
    """Options of ``fit(method="nuts")``.

    Attributes:
        target_accept_prob: NUTS step-size adaptation target, in (0, 1).
        max_tree_depth: cap on the trajectory doubling (>= 1).
        chain_method: how ``numpyro.infer.MCMC`` runs the chains: ``"sequential"`` (one
            after another, no extra devices), ``"vectorized"`` (one ``vmap``-ed sampler:
            every step runs the longest tree among the chains) or ``"parallel"``
            (``pmap`` over devices; NumPyro falls back to sequential with a warning when
            there are fewer devices than chains). The chains start from the same keys in
            every mode, but the draws of different modes are not bit-identical.
            Vectorized is the default: with 4 chains on the demo model and 2 CPU cores it
            was 1.7x faster per fit (median over seeds; 0.8x on one seed whose chains
            differed in tree depth) and 1.4x in CPU time (``benchmarks/bench_fit.py``,
            ``benchmarks/README.md``).
    """

    target_accept_prob: float = 0.9
    max_tree_depth: int = 10
    chain_method: str = "vectorized"

    def __post_init__(self):
        if self.chain_method not in NUTS_CHAIN_METHODS:
            raise ValueError(
                f"nuts option chain_method={self.chain_method!r} is not valid; valid: "
                f"{NUTS_CHAIN_METHODS}"
            )
        if not 0 < self.target_accept_prob < 1 or self.max_tree_depth < 1:
            raise ValueError(
                f"nuts options need 0 < target_accept_prob < 1 and max_tree_depth >= 1; got "
                f"target_accept_prob={self.target_accept_prob}, "
                f"max_tree_depth={self.max_tree_depth}"
            )


@dataclass(frozen=True)
class SviOptions:
    """Options of ``fit(method="svi")``.

    Attributes:
        guide: ``"auto"`` (``"full"`` up to 2,000 latent dimensions, else ``"lowrank"``),
            ``"full"``, ``"lowrank"`` or ``"diag"``.
        num_steps: optimisation steps.
        learning_rate: Adam step size, cosine-decayed to 1% of it.
        rank: low-rank guide rank (None: NumPyro's default).
        num_particles: ELBO particles per step.
    """

    guide: str = "auto"
    num_steps: int = 5000
    learning_rate: float = 0.02
    rank: int | None = None
    num_particles: int = 1

    def __post_init__(self):
        if self.guide not in SVI_GUIDES + ("auto",):
            raise ValueError(
                f"unknown guide {self.guide!r}; valid guides: {list(SVI_GUIDES + ('auto',))}"
            )
        if self.num_steps < 1:
            raise ValueError(f"num_steps must be >= 1, got {self.num_steps}")


OPTIONS = {"laplace": LaplaceOptions, "nuts": NutsOptions, "svi": SviOptions}


def laplace_solver(solver: str, num_params: int, num_rows: int) -> str:
    """``"dense"``, ``"lowrank"`` (:mod:`layoutopt.infer.lowrank`) or ``"cg"``
    (:mod:`layoutopt.infer.iterative`) for the option.

    Args:
        solver: ``"auto"``, ``"dense"``, ``"lowrank"`` or ``"cg"`` (:class:`LaplaceOptions`).
        num_params: parameters P of the model (every term).
        num_rows: (padded) observed rows N.

    Returns:
        The solver: for ``"auto"``, ``"dense"`` up to ``LOWRANK_MIN_PARAMS`` parameters (the
        dense solver's limit); beyond, ``"lowrank"`` when ``N < P`` and both are within its
        limits (``limits.LAPLACE_LOWRANK_MAX_ROWS``, ``limits.LAPLACE_LOWRANK_MAX_PARAMS``:
        Woodbury is exact and cheap there), else ``"cg"``.

    Raises:
        ValueError: for an unknown solver, naming the valid ones.
    """
    if solver not in LAPLACE_SOLVERS:
        raise ValueError(f"laplace option solver={solver!r} is not valid; valid: {LAPLACE_SOLVERS}")
    if solver != "auto":
        return solver
    if num_params <= LOWRANK_MIN_PARAMS:
        return "dense"
    small = num_rows <= LAPLACE_LOWRANK_MAX_ROWS and num_params <= LAPLACE_LOWRANK_MAX_PARAMS
    if num_rows < num_params and small:
        return "lowrank"
    return "cg"
