"""Validation rules and size limits shared by the API and the command line.

Everything a user can hit before a long computation starts lives here, so that the rules are
stated once (and documented once, in ``docs/errors.md``):

* seeds: integers in ``[0, SEED_MAX]``, the same rule for every function and command;
* counts: impressions and clicks up to ``MAX_COUNT`` (2^53, exact in float64) per row and per
  aggregated layout;
* fit sizes: :func:`fit_size` estimates the parameter count, memory and the dominant cost of a
  fit before it starts, and :func:`check_fit_size` refuses, naming the parameter count and
  what would work, when a method cannot do it (instead of aborting inside XLA);
* grid work: :func:`check_grid_work` refuses to enumerate a space whose ``draws x layouts``
  exceeds ``MAX_GRID_WORK`` (instead of running for hours).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = [
    "SEED_MAX",
    "MAX_COUNT",
    "FIT_MEMORY_LIMIT",
    "LAPLACE_MAX_PARAMS",
    "LAPLACE_LOWRANK_MAX_PARAMS",
    "LAPLACE_LOWRANK_MAX_ROWS",
    "LAPLACE_CG_MAX_PARAMS",
    "NUTS_MAX_PARAMS",
    "SVI_FULL_MAX_PARAMS",
    "MAX_GRID_WORK",
    "MAX_NODES_PER_DRAW",
    "MAX_DESIGN_PAIRS",
    "FitSize",
    "check_seed",
    "fit_size",
    "check_fit_size",
    "check_grid_work",
    "check_design_pairs",
    "big_number",
]

#: Largest accepted seed; seeds are integers in ``[0, SEED_MAX]`` everywhere.
SEED_MAX = 2**32 - 1
#: Largest impressions/clicks count of one row or one aggregated layout (exact in float64).
MAX_COUNT = 2**53
#: Memory a fit may plan to use (bytes) before it is refused.
FIT_MEMORY_LIMIT = 4 * 2**30
#: The dense Laplace solver factorises and inverts a P x P Hessian at every iteration
#: (about 2.3 P^3 flops: ~10^11 and 0.8 GB of float64 arrays at 4,000 parameters).
LAPLACE_MAX_PARAMS = 4_000
#: The low-rank Laplace solver (Woodbury over the N observed rows) costs O(P + N C) per
#: iteration in the parameters; it was measured to ~21,000 (``benchmarks/README.md``) and
#: every draw holds all P effects, so beyond this use SVI.
LAPLACE_LOWRANK_MAX_PARAMS = 50_000
#: The low-rank solver factorises an N x N matrix over the (padded) observed rows at every
#: iteration (about 2.3 N^3 + 2 C N^2 flops: ~10^11 at 4,096 rows, seconds per iteration).
LAPLACE_LOWRANK_MAX_ROWS = 4_096
#: The conjugate-gradient Laplace solver has no row limit; it was measured to 19,441
#: parameters (3 slots x 80 items on 6,580 rows: 14 s, 1 GB) and, like the low-rank one,
#: holds every effect in every draw, so beyond this use SVI.
LAPLACE_CG_MAX_PARAMS = 50_000
#: NUTS beyond this many parameters needs hours of gradient evaluations to mix.
NUTS_MAX_PARAMS = 20_000
#: The full-rank SVI guide holds a P x P scale matrix and factorises it every step.
SVI_FULL_MAX_PARAMS = 5_000
#: Largest ``posterior draws x layouts`` a grid enumeration may take on (about 10^8 per
#: second on one CPU core; a GPU is 10-100x faster).
MAX_GRID_WORK = 10**12
#: Branch-and-bound nodes one draw may need for the exact per-draw argmax to be attempted
#: (about a second; a thousand draws then take minutes at most).
MAX_NODES_PER_DRAW = 50_000
#: Variant pairs a pairwise covering array may have to cover (60 components x 15 variants,
#: ~400,000 pairs, take seconds; 100 x 20, ~2,000,000, ran for minutes without finishing).
MAX_DESIGN_PAIRS = 1_000_000


def check_seed(seed, name: str = "seed") -> int:
    """Validate a seed: an integer in ``[0, SEED_MAX]`` (``2**32 - 1``).

    Args:
        seed: the value given.
        name: the argument's name, for the message.

    Returns:
        The seed as a Python int.

    Raises:
        ValueError: for a bool, a non-integer, a negative or a too large value.

    Examples:
        >>> check_seed(7)
        7
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ValueError(
            f"{name} must be an integer in [0, {SEED_MAX}], got {seed!r} ({type(seed).__name__})"
        )
    if not 0 <= int(seed) <= SEED_MAX:
        raise ValueError(f"{name} must be an integer in [0, {SEED_MAX}], got {int(seed)}")
    return int(seed)


class FitSize(NamedTuple):
    """What a fit will need, estimated before it starts.

    Attributes:
        num_params: parameters P (every term of the model: intercept, main effects, pair
            tables, segment blocks, attribute coefficients).
        num_rows: distinct observed rows N the likelihood visits.
        memory_bytes: estimated peak memory of the method (bytes).
        flops: estimated floating-point operations of the dominant step (one Newton step
            for Laplace, one gradient for NUTS/SVI).
    """

    num_params: int
    num_rows: int
    memory_bytes: int
    flops: float


def _model_counts(model, pairwise: bool) -> tuple[int, int, int]:
    """``(P, additive P, look-ups per row)`` of a model: a ``ModelSpec`` (every term
    counted: ``num_params``, ``additive_num_params``, ``num_slots()``) or bare cardinalities
    (intercept, main effects and pair tables only)."""
    if hasattr(model, "num_params"):
        return int(model.num_params), int(model.additive_num_params), int(model.num_slots())
    card = tuple(int(n) for n in model)
    P, _, D = _counts(card, pairwise)
    return P, _counts(card, False)[0], D


def _counts(cardinalities, pairwise: bool) -> tuple[int, int, int]:
    K = len(cardinalities)
    main = sum(cardinalities)
    pair = 0
    if pairwise:
        pair = sum(cardinalities[k] * cardinalities[j] for k in range(K) for j in range(k + 1, K))
    terms = 1 + K + (K * (K - 1) // 2 if pairwise else 0)  # look-ups per layout
    return 1 + main + pair, main, terms


def fit_size(model, num_rows: int, method: str, num_samples: int, pairwise: bool = True) -> FitSize:
    """Estimate parameters, memory and the dominant cost of a fit.

    Laplace: dense Hessian and its Cholesky factor and inverse (about six ``P x P`` float64
    arrays), the scattered one-hot products ``N x D^2`` (D look-ups per layout, padded
    rows), and the draws. Low-rank Laplace: about six ``N x N`` float64 arrays, the line
    search's 16 trial points, the draws (``N x D`` per batch of 32) and the ``N x P``
    arrays of the posterior's Gaussian factor. NUTS/SVI: the draws
    (float32, a few copies) and, for a full-rank SVI guide, ``P x P`` scale matrices.

    Args:
        model: the model's ``ModelSpec`` (every term counted: segments and attribute
            coefficients too), or bare cardinalities (intercept, main and pair terms).
        num_rows: distinct observed rows.
        method: ``"laplace"``, ``"laplace-lowrank"``, ``"laplace-cg"``, ``"nuts"``, ``"svi"``
            or ``"svi-full"``.
        num_samples: posterior draws requested.
        pairwise: whether pair tables are in the model (bare cardinalities only).

    Returns:
        A :class:`FitSize`.
    """
    P, _, D = _model_counts(model, pairwise)
    N = max(8, 1 << max(0, int(num_rows) - 1).bit_length())
    draws = 3 * 4 * int(num_samples) * P
    if method == "laplace":
        memory = 6 * 8 * P * P + 16 * N * D * D + 2 * 8 * int(num_samples) * P
        flops = 1.33 * float(P) ** 3 + float(N) * D * D
    elif method == "laplace-lowrank":
        # Woodbury over the N rows (layoutopt.infer.lowrank): N x N systems, no P x P;
        # Cholesky (N^3 / 3), the inverse for the scale traces (N^3) and the slot Gram
        # matrix and traces (2 C N^2) per iteration
        # plus the posterior's Gaussian factor (laplace_fit.laplace_factor: X, W^1/2 X D and
        # U, N x P float64 each)
        memory = (
            6 * 8 * N * N
            + 8 * (32 + 16) * (N * D + P)
            + 4 * 8 * N * P
            + 2 * 8 * int(num_samples) * P
        )
        flops = 2.33 * float(N) ** 3 + 2.0 * float(N) * N * D
    elif method == "laplace-cg":
        # conjugate gradients (layoutopt.infer.iterative): the probes' solves (32 right-hand
        # sides, about six P-vectors each, float64), a batch of 64 draws' solves, the rows'
        # N x D look-ups, and the draws; per solver iteration one product with H for each
        # right-hand side, O(N D + P)
        # (the look-ups of a batch of products are mapped over within 256 MiB,
        # iterative.MATVEC_BYTES)
        look_ups = min(16 * 64 * N * D, 2**28 + 16 * N * D)
        memory = 6 * 8 * (32 + 64) * P + look_ups + 2 * 8 * int(num_samples) * P
        flops = 33.0 * (2.0 * float(N) * D + P)
    elif method == "svi-full":
        memory = draws + 8 * 4 * P * P
        flops = float(P) ** 3 / 3 + float(N) * D
    else:
        memory = draws + 16 * N * D
        flops = float(N) * D + P
    return FitSize(P, int(num_rows), int(memory), flops)


def _gib(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB"


def check_fit_size(
    model,
    num_rows: int,
    method: str,
    num_samples: int,
    pairwise: bool = True,
    guide: str = "auto",
    memory_limit: int = FIT_MEMORY_LIMIT,
) -> FitSize:
    """Refuse, before it starts, a fit that a method cannot do.

    Limits: dense Laplace (``"laplace"``) up to ``LAPLACE_MAX_PARAMS`` parameters, low-rank
    Laplace (``"laplace-lowrank"``) up to ``LAPLACE_LOWRANK_MAX_PARAMS`` parameters on up
    to ``LAPLACE_LOWRANK_MAX_ROWS`` distinct rows, conjugate-gradient Laplace
    (``"laplace-cg"``) up to ``LAPLACE_CG_MAX_PARAMS`` parameters on any number of rows,
    NUTS up to ``NUTS_MAX_PARAMS``, SVI with a full-rank guide up to
    ``SVI_FULL_MAX_PARAMS`` (the low-rank and diagonal guides have no parameter limit), and
    every method within ``memory_limit`` bytes.

    Args:
        model: the model's ``ModelSpec`` (every term counted), or bare cardinalities.
        num_rows: distinct observed rows.
        method: ``"laplace"`` (the dense solver), ``"laplace-lowrank"``, ``"laplace-cg"``,
            ``"nuts"`` or ``"svi"``.
        num_samples: posterior draws requested.
        pairwise: whether pair tables are in the model (bare cardinalities only).
        guide: the SVI guide (``"auto"`` picks full rank up to 2,000 parameters).
        memory_limit: bytes the fit may plan to use.

    Returns:
        The :class:`FitSize` estimate.

    Raises:
        ValueError: naming the parameter (or row) count, the limit hit and what would work
            (another solver or method, the additive model, fewer draws).
    """
    full = method == "svi" and guide == "full"
    size = fit_size(model, num_rows, "svi-full" if full else method, num_samples, pairwise)
    P = size.num_params
    _, additive, _ = _model_counts(model, pairwise)
    alt = []
    if getattr(model, "pairwise", pairwise):
        alt.append(f"the additive model (PriorConfig(pairwise=False): {additive:,} parameters)")
    if method == "laplace-lowrank" and int(num_rows) > LAPLACE_LOWRANK_MAX_ROWS:
        dense = ["LaplaceOptions(solver='dense')"] if P <= LAPLACE_MAX_PARAMS else []
        raise ValueError(
            f"the low-rank Laplace solver factorises an N x N matrix over the "
            f"{int(num_rows):,} distinct observed rows, more than it handles "
            f"({LAPLACE_LOWRANK_MAX_ROWS:,}); use "
            + " or ".join(
                dense
                + [
                    "LaplaceOptions(solver='cg') (no row limit)"
                    if P <= LAPLACE_CG_MAX_PARAMS
                    else "method 'svi' (low-rank guide, no parameter cap)"
                ]
            )
        )
    cap = {
        "laplace": LAPLACE_MAX_PARAMS,
        "laplace-lowrank": LAPLACE_LOWRANK_MAX_PARAMS,
        "laplace-cg": LAPLACE_CG_MAX_PARAMS,
        "nuts": NUTS_MAX_PARAMS,
    }.get(method)
    if full:
        cap = SVI_FULL_MAX_PARAMS
    if cap is not None and P > cap:
        what = {
            "laplace": "method 'laplace' with the dense solver",
            "laplace-lowrank": "method 'laplace' with the low-rank solver",
            "laplace-cg": "method 'laplace' with the conjugate-gradient solver",
        }.get(method, "guide='full'" if full else f"method {method!r}")
        better = ["guide='lowrank'" if full else "method 'svi' (low-rank guide, no parameter cap)"]
        if method in ("laplace", "laplace-lowrank") and P <= LAPLACE_CG_MAX_PARAMS:
            better.insert(
                0, f"LaplaceOptions(solver='cg') (up to {LAPLACE_CG_MAX_PARAMS:,} parameters)"
            )
        if method == "laplace" and P <= LAPLACE_LOWRANK_MAX_PARAMS:
            better.insert(
                0,
                f"LaplaceOptions(solver='lowrank') (up to {LAPLACE_LOWRANK_MAX_PARAMS:,} "
                "parameters)",
            )
        raise ValueError(
            f"the model has {P:,} parameters, more than {what} handles ({cap:,}); use "
            + " or ".join(better + alt)
        )
    if size.memory_bytes > memory_limit:
        fewer = max(1, int(num_samples * memory_limit / size.memory_bytes))
        raise ValueError(
            f"a {method} fit of {P:,} parameters on {num_rows:,} rows with {num_samples:,} "
            f"draws needs about {_gib(size.memory_bytes)}, more than the "
            f"{_gib(memory_limit)} limit; use fewer draws (e.g. {fewer:,}), method 'svi', or "
            + (" or ".join(alt) if alt else "fewer distinct rows")
        )
    return size


def check_grid_work(
    num_layouts: int, num_draws: int, what: str, instead: str, max_work: int = MAX_GRID_WORK
) -> None:
    """Refuse to enumerate ``num_layouts`` layouts over ``num_draws`` draws beyond ``max_work``.

    Args:
        num_layouts: layouts the enumeration would visit.
        num_draws: posterior draws evaluated at every layout.
        what: what is being done, for the message (e.g. ``"scoring"``).
        instead: what would work, for the message.
        max_work: largest ``num_layouts * num_draws`` accepted.

    Raises:
        ValueError: naming the space size, the draws and the alternative.
    """
    if int(num_layouts) * int(num_draws) > max_work:
        raise ValueError(
            f"{what} enumerates all {big_number(num_layouts)} allowed layouts over {num_draws:,} "
            f"draws, beyond the limit of {big_number(max_work)} draw-layouts (hours or more); "
            f"{instead}"
        )


def big_number(n: int) -> str:
    """``n`` with thousands separators, or ``about 10^e`` beyond 10^15 (for messages)."""
    n = int(n)
    return f"{n:,}" if n < 10**15 else f"about 10^{len(str(n)) - 1}"


def check_design_pairs(cardinalities, max_pairs: int = MAX_DESIGN_PAIRS) -> None:
    """Refuse a pairwise covering array over more than ``max_pairs`` variant pairs.

    Args:
        cardinalities: variants per component.
        max_pairs: largest ``sum_{k<l} n_k n_l`` accepted.

    Raises:
        ValueError: naming the pair count and what would work.
    """
    card = [int(n) for n in cardinalities]
    total, pairs = sum(card), 0
    for n in card:
        total -= n
        pairs += n * total
    if pairs > max_pairs:
        raise ValueError(
            f"a pairwise design must cover {pairs:,} variant pairs, more than the "
            f"{max_pairs:,} it can build in reasonable time; use kind='random' with a size "
            "(e.g. a few hundred layouts)"
        )
