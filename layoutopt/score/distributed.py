"""Scoring as one program on N processes of JAX's multi-process runtime.

After ``jax.distributed.initialize()`` (which configures itself under Slurm, Open MPI and on
TPU pods, or takes ``coordinator_address``, ``num_processes`` and ``process_id``), every
process calls the same function with the same posterior. Process i of n streams the i-th of
n contiguous slices of the index range (the leaf-block aligned slices of
:func:`layoutopt.score.shards.shard_range`) on its own devices, and the reductions are
combined across processes with JAX's collectives
(:func:`jax.experimental.multihost_utils.process_allgather`), not through files:

* the per-draw best layout: the best of the n slices' bests, exactly equal values to the
  lowest slice (hence the lowest index, as within a slice), so ``p_best`` is exact;
* the running top-k: the n slices' top-k rows ranked again (highest mean, ties to the lowest
  index);
* the per-layout rows: the n slices' rows concatenated in process order, i.e. index order.

Every process returns the same answer, equal to the single-process one row for row (each
layout's figures do not depend on the slice it is scored in). The exchanged arrays travel as
raw bytes, so nothing is rounded on the way (JAX without x64 would narrow int64 and
float64). On CPU, JAX's collectives need ``jax.config.update(
"jax_cpu_collectives_implementation", "gloo")`` before ``jax.distributed.initialize``.

:func:`score_grid_to_parquet_distributed` writes one Parquet part per process and merges
them on process 0 (``--shard i/n`` files, written and merged by the runtime).

Example (two processes on one host)::

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize("127.0.0.1:7777", num_processes=2, process_id=i)
    grid = score_grid_distributed(post, top=10)
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

import jax
import numpy as np
from jax.experimental import multihost_utils

from layoutopt.infer.posterior import Posterior
from layoutopt.model.space import LayoutSpace
from layoutopt.score.cluster import part_paths
from layoutopt.score.grid import DEFAULT_GRID, DEFAULT_MEMORY_BUDGET, GridOptions
from layoutopt.score.grid_scores import GridScores, check_top, score_rows
from layoutopt.score.rows import p_best_lookup, p_best_of, sortable_index
from layoutopt.score.scoring import BestLayout, best_of_grid
from layoutopt.score.shards import merge_shards, shard_range, write_shard
from layoutopt.score.stream import scan_space
from layoutopt.score.target import Target, check_level, scoring_target
from layoutopt.util.io import one_line
from layoutopt.util.limits import MAX_GRID_WORK, check_grid_work

__all__ = [
    "allgather_arrays",
    "argmax_codes_distributed",
    "best_layout_distributed",
    "combine_best",
    "ENV_VARIABLES",
    "decision_inputs_distributed",
    "initialize_from_env",
    "process_slice",
    "score_grid_distributed",
    "score_grid_to_parquet_distributed",
]


def process_slice() -> tuple[int, int]:
    """``(process index, process count)`` of this process in JAX's runtime (``(0, 1)``
    without ``jax.distributed.initialize``)."""
    return jax.process_index(), jax.process_count()


def allgather_arrays(arrays: tuple[np.ndarray, ...]) -> list[tuple[np.ndarray, ...]]:
    """Every process's ``arrays``, in process order, exactly (dtypes and shapes may differ).

    A collective: every process must call it, with the same number of arrays. The arrays go
    as ``.npy`` bytes, padded to the longest, through one
    :func:`~jax.experimental.multihost_utils.process_allgather` of the lengths and one of the
    bytes.

    Returns:
        One tuple per process, that process's arrays.
    """
    if jax.process_count() == 1:
        return [tuple(np.asarray(a) for a in arrays)]
    buf = io.BytesIO()
    np.savez(buf, *[np.asarray(a) for a in arrays])
    data = np.frombuffer(buf.getvalue(), np.uint8)
    sizes = np.asarray(multihost_utils.process_allgather(np.array([len(data)], np.int32)))
    sizes = sizes.reshape(-1)
    padded = np.zeros(int(sizes.max()), np.uint8)
    padded[: len(data)] = data
    gathered = np.asarray(multihost_utils.process_allgather(padded))
    out = []
    for row, size in zip(gathered, sizes, strict=True):
        with np.load(io.BytesIO(row[:size].tobytes())) as z:
            out.append(tuple(z[f"arr_{j}"] for j in range(len(arrays))))
    return out


def combine_best(best_eta: np.ndarray, best_codes: np.ndarray) -> np.ndarray:
    """The per-draw best of slices in index order: ``(n, S)`` values, ``(n, S, K)`` codes
    -> ``(S, K)`` codes; exactly equal values go to the lowest slice (the lowest index)."""
    win = np.argmax(np.asarray(best_eta), axis=0)  # the first maximum
    return np.asarray(best_codes)[win, np.arange(best_eta.shape[1])]


def _global_best(space: LayoutSpace, target: Target, argmax) -> np.ndarray:
    """Combine the processes' per-draw bests into the ``(S, K)`` best of the whole space
    (``argmax`` None for an empty slice: nothing allowed)."""
    S, K = target.num_draws, space.num_components
    if argmax is None:
        eta, codes = np.full(S, -np.inf, np.float32), np.zeros((S, K), np.int32)
    else:
        eta = np.asarray(argmax.best_eta, np.float32)
        codes = np.asarray(argmax.best_codes, np.int32)
    parts = allgather_arrays((eta, codes))
    return combine_best(np.stack([p[0] for p in parts]), np.stack([p[1] for p in parts]))


def _my_prefixes(space: LayoutSpace) -> tuple[int, int]:
    return shard_range(space, process_slice())


def _share(space: LayoutSpace) -> int:
    """About the allowed layouts one process enumerates (its share of the space)."""
    return -(-space.num_allowed // jax.process_count())


def score_grid_distributed(
    posterior: Posterior,
    space: LayoutSpace | None = None,
    top: int | None = None,
    level: float = 0.9,
    *,
    chunk_size: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    grid_options: GridOptions = DEFAULT_GRID,
    segment: dict | None = None,
    method: str = "auto",
    max_work: int = MAX_GRID_WORK,
) -> GridScores:
    """:func:`layoutopt.score.scoring.score_grid` as one program on every JAX process.

    Every process must call it with the same posterior and arguments; each streams its
    slice of the index range on its local devices (``jax.local_devices()``), and every
    process returns the whole answer, equal row for row to a single-process
    ``score_grid`` (``p_best`` and ``best_codes`` included). With one process it is
    ``score_grid``.

    Args:
        posterior: the fitted posterior (the same on every process).
        space: defaults to (and must equal) ``posterior.space``.
        top: keep the ``top`` rows of highest mean (each process keeps its slice's top
            rows, and they are ranked again); ``None`` keeps every allowed layout.
        level: credible level of the interval.
        chunk_size: layouts per kernel call.
        memory_budget: bytes of device memory one chunk may use.
        grid_options: tunables of the grid engine.
        segment: one segment, or ``None`` for the traffic mix (as in ``score_grid``).
        method: ``"auto"``, ``"gaussian"`` or ``"draws"`` (as in ``score_grid``).
        max_work: largest ``layouts x draws`` one process may enumerate (its share of the
            space; ``limits.MAX_GRID_WORK`` by default): raise it for a big job.

    Returns:
        :class:`~layoutopt.score.grid_scores.GridScores` of the whole space.

    Raises:
        ValueError: as ``score_grid`` (on every process alike, before any collective).
    """
    space, target = scoring_target(posterior, space, segment, method)
    level = check_level(level)
    top = check_top(space, top)
    check_grid_work(
        _share(space),
        target.num_draws * target.rows_per_draw,
        "scoring (one process's share)",
        "use more processes, pass max_work=, or best_layout() (the optimiser)",
        max_work,
    )
    lo, hi = _my_prefixes(space)
    K = space.num_components
    if hi > lo:
        codes, mean, lower, upper, argmax = score_rows(
            target, space, top, level, chunk_size=chunk_size, memory_budget=memory_budget,
            devices=jax.local_devices(), grid_options=grid_options, prefixes=(lo, hi),
        )  # fmt: skip
    else:
        codes, argmax = np.zeros((0, K), np.int32), None
        mean = lower = upper = np.zeros(0, np.float32)
    best_codes = _global_best(space, target, argmax)
    parts = allgather_arrays((codes, mean, lower, upper))
    parts = [p for p in parts if len(p[1])] or parts[:1]  # empty slices add nothing
    codes, mean, lower, upper = (np.concatenate([p[j] for p in parts]) for j in range(4))
    if top is not None:  # the slices' top rows ranked again: highest mean, lowest index
        order = np.lexsort((sortable_index(space, codes), -mean))[:top]
        codes, mean, lower, upper = codes[order], mean[order], lower[order], upper[order]
    return GridScores(
        space=space,
        codes=codes,
        mean=mean,
        lower=lower,
        upper=upper,
        p_best=p_best_of(space, codes, p_best_lookup(space, best_codes)),
        level=level,
        num_draws=target.num_draws,
        num_scored=space.num_allowed,
        best_codes=best_codes,
    )


def argmax_codes_distributed(
    posterior: Posterior,
    space: LayoutSpace | None = None,
    *,
    chunk_size: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    grid_options: GridOptions = DEFAULT_GRID,
    segment: dict | None = None,
    max_work: int = MAX_GRID_WORK,
) -> np.ndarray:
    """The per-draw best allowed layout of the whole space, enumerated on every process.

    Each process enumerates its slice (the engine's per-draw max), and the slices' bests
    are combined exactly (ties to the lowest index), as ``argmax_codes(...,
    method="enumerate")`` on one process. Every process returns the same array.

    Args:
        posterior: the fitted posterior (the same on every process).
        space: defaults to (and must equal) ``posterior.space``.
        chunk_size: layouts per kernel call.
        memory_budget: bytes of device memory one chunk may use.
        grid_options: tunables of the grid engine.
        segment: one segment, or ``None`` for the traffic mix (its mixture CTR is ranked).
        max_work: largest ``layouts x draws`` one process may enumerate.

    Returns:
        ``(S, K)`` int32 codes.
    """
    space, target = scoring_target(posterior, space, segment, "draws")
    check_grid_work(
        _share(space), target.num_draws * target.rows_per_draw,
        "the per-draw argmax (one process's share)",
        "use more processes, pass max_work=, or argmax_codes(method='exact')", max_work,
    )  # fmt: skip
    lo, hi = _my_prefixes(space)
    argmax = None
    if hi > lo:
        argmax, _ = scan_space(
            target, space, level=0.9, chunk_size=chunk_size, memory_budget=memory_budget,
            devices=jax.local_devices(), options=grid_options, prefixes=(lo, hi),
        )  # fmt: skip
    return _global_best(space, target, argmax)


def best_layout_distributed(
    posterior: Posterior,
    space: LayoutSpace | None = None,
    level: float = 0.9,
    *,
    chunk_size: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    segment: dict | None = None,
    method: str = "auto",
    max_work: int = MAX_GRID_WORK,
) -> BestLayout:
    """The layout of highest posterior mean CTR, by an enumeration spread over the processes.

    The distributed ``score_grid(top=1)``: exact (``exact=True``), with the exact
    ``p_best``; equal to :func:`layoutopt.score.scoring.best_layout` on an enumerated space.

    Args:
        posterior: the fitted posterior (the same on every process).
        space: defaults to (and must equal) ``posterior.space``.
        level: credible level of the interval.
        chunk_size: layouts per kernel call.
        memory_budget: bytes of device memory one chunk may use.
        segment: one segment, or ``None`` for the traffic mix.
        method: ``"auto"``, ``"gaussian"`` or ``"draws"`` (as in ``best_layout``).
        max_work: largest ``layouts x draws`` one process may enumerate.

    Returns:
        :class:`~layoutopt.score.scoring.BestLayout`.
    """
    grid = score_grid_distributed(
        posterior, space, top=1, level=level, chunk_size=chunk_size,
        memory_budget=memory_budget, segment=segment, method=method, max_work=max_work,
    )  # fmt: skip
    return best_of_grid(grid, posterior.diagnostics)


def score_grid_to_parquet_distributed(
    posterior: Posterior,
    path: str | Path,
    *,
    level: float = 0.9,
    top: int | None = None,
    method: str = "auto",
    segment: dict | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    keep_parts: bool = False,
) -> int:
    """Score every allowed layout on N processes into one Parquet dataset, exactly.

    Process i of n writes the i-th slice of the index range as its own part file
    (``<path>.parts/part-i-of-n.parquet``, :func:`layoutopt.score.cluster.part_paths`; the
    format of ``--shard i/n``, with its slice's per-draw best) on its local devices; after
    a barrier, process 0 merges the parts into ``path`` (exact ``p_best``, as
    :func:`~layoutopt.score.shards.merge_shards`) and, unless ``keep_parts``, removes them.
    The result equals ``score_grid_to_parquet(posterior, path, argmax_method="enumerate")``
    row for row. ``path`` must be on storage every process sees (the usual shared file
    system of a cluster).

    A collective: every process calls it with the same arguments.

    Args:
        posterior: the fitted posterior (the same on every process).
        path: the merged Parquet file (written atomically by process 0).
        level: credible level of the interval.
        top: keep only the ``top`` rows of highest mean in the merged file.
        method: ``"auto"``, ``"gaussian"`` or ``"draws"``.
        segment: one segment, or ``None`` for the traffic mix.
        memory_budget: bytes of device memory one chunk may use.
        keep_parts: keep the part files after the merge.

    Returns:
        The number of rows of the merged file (on every process).
    """
    level = check_level(level)
    i, n = process_slice()
    paths = part_paths(path, n)
    paths[i].parent.mkdir(parents=True, exist_ok=True)
    write_shard(
        posterior, paths[i], (i, n), level=level, devices=jax.local_devices(),
        memory_budget=memory_budget, method=method, segment=segment,
    )  # fmt: skip
    multihost_utils.sync_global_devices("layoutopt: parts written")
    rows = merge_shards(paths, path, top=top) if i == 0 else 0
    if i == 0 and not keep_parts:
        shutil.rmtree(paths[0].parent, ignore_errors=True)
    counts = allgather_arrays((np.array([rows], np.int64),))
    return int(counts[0][0][0])


def decision_inputs_distributed(
    posterior: Posterior,
    space: LayoutSpace | None = None,
    *,
    segment: dict | None = None,
    max_work: int = MAX_GRID_WORK,
) -> tuple[BestLayout, np.ndarray]:
    """The leader (:func:`best_layout_distributed`) and the exact ``(S, K)`` per-draw best
    of the whole space, from one distributed pass: what the expected loss and value
    remaining of shipping the leader need (:func:`layoutopt.score.loss.expected_loss` with
    ``best_codes=``). A collective."""
    grid = score_grid_distributed(posterior, space, top=1, segment=segment, max_work=max_work)
    return best_of_grid(grid, posterior.diagnostics), np.asarray(grid.best_codes, np.int32)


#: Environment variables :func:`initialize_from_env` reads (all three, or none).
ENV_VARIABLES = ("LAYOUTOPT_COORDINATOR", "LAYOUTOPT_NUM_PROCESSES", "LAYOUTOPT_PROCESS_ID")


def initialize_from_env(env: Mapping[str, str] | None = None) -> tuple[int, int]:
    """Join JAX's multi-process runtime the way ``layoutopt score --distributed`` does.

    With ``LAYOUTOPT_COORDINATOR`` (``host:port`` of process 0), ``LAYOUTOPT_NUM_PROCESSES``
    and ``LAYOUTOPT_PROCESS_ID`` set, those; otherwise ``jax.distributed.initialize()``
    finds the cluster itself (Slurm's ``SLURM_*`` variables, Open MPI's, TPU pods). On CPU
    hosts JAX's collectives use gloo. Call it before any JAX computation.

    Args:
        env: the environment (default ``os.environ``).

    Returns:
        ``(process index, process count)``.

    Raises:
        ValueError: when only some of the three variables are set, a value is not a whole
            number, or no cluster can be found.
    """
    env = os.environ if env is None else env
    given = {k: env[k] for k in ENV_VARIABLES if env.get(k)}
    if given and len(given) < len(ENV_VARIABLES):
        missing = [k for k in ENV_VARIABLES if k not in given]
        raise ValueError(f"--distributed: {sorted(given)} set but {missing} not; set all three")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        if given:
            try:
                n, i = int(given[ENV_VARIABLES[1]]), int(given[ENV_VARIABLES[2]])
            except ValueError:
                raise ValueError(
                    f"--distributed: {ENV_VARIABLES[1]} and {ENV_VARIABLES[2]} must be whole "
                    f"numbers, got {given[ENV_VARIABLES[1]]!r} and {given[ENV_VARIABLES[2]]!r}"
                ) from None
            if not 0 <= i < n:
                raise ValueError(f"--distributed: process id {i} is not in 0..{n - 1}")
            jax.distributed.initialize(given[ENV_VARIABLES[0]], num_processes=n, process_id=i)
        else:
            jax.distributed.initialize()
    except (RuntimeError, ValueError) as err:
        if str(err).startswith("--distributed"):
            raise
        raise ValueError(
            f"--distributed: JAX's runtime could not start ({one_line(err)}); run under "
            f"Slurm or Open MPI, or set {', '.join(ENV_VARIABLES)}"
        ) from None
    return process_slice()
