"""Full-grid scoring fanned out over a Dask cluster (the CPU-fleet engine; extra ``dask``).

:func:`score_grid_on` submits one :func:`layoutopt.score.shards.write_shard` task per
slice of the index range to a ``distributed.Client`` and merges the part files with
:func:`layoutopt.score.shards.merge_shards` (exact ``p_best``): the scheduling, the retries
and the recovery from lost workers are Dask's. A worker that dies mid-task has its task
rerun on another worker (the scheduler's ``allowed-failures``, 3 by default, bounds how many
workers one task may kill); an exception in a task is retried ``retries`` times. Each part
is written atomically, so a killed task leaves no half-written part, and a rerun writes the
same bytes.

The workers write the parts to ``<output>.parts/`` and the client reads them to merge, so
``output`` must be on storage that every worker and the client share (NFS, a parallel file
system; the usual setting of a Dask cluster on a batch system).

Dask is imported by nothing else in the package: this module needs the ``dask`` extra
(``pip install "layoutopt[dask]"``, i.e. ``dask[distributed]``) only when it is called.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from layoutopt.infer.posterior import Posterior
from layoutopt.score.grid import DEFAULT_MEMORY_BUDGET
from layoutopt.score.shards import merge_shards, write_shard
from layoutopt.score.target import check_level

__all__ = ["part_paths", "score_grid_on"]


def part_paths(output: str | Path, parts: int) -> list[Path]:
    """The part files of a cluster run writing ``output``: ``<output>.parts/part-i-of-n``."""
    output = Path(output)
    folder = output.with_name(output.name + ".parts")
    return [folder / f"part-{i:05d}-of-{parts:05d}.parquet" for i in range(parts)]


def _score_part(posterior: Posterior, path: str, i: int, n: int, options: dict) -> int:
    """One task: write shard i of n (what a worker runs)."""
    return write_shard(posterior, path, (i, n), **options)


def score_grid_on(
    client,
    posterior: Posterior,
    path: str | Path,
    *,
    parts: int,
    level: float = 0.9,
    top: int | None = None,
    method: str = "auto",
    segment: dict | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    retries: int = 2,
    keep_parts: bool = False,
) -> int:
    """Score every allowed layout on a Dask cluster into one Parquet file, exactly.

    The result equals ``score_grid_to_parquet(posterior, path, argmax_method="enumerate")``
    (``top=None``) row for row, as the merge of ``--shard i/n`` files does.

    Args:
        client: a connected ``distributed.Client``.
        posterior: the fitted posterior (sent once to the cluster, ``client.scatter``).
        path: the merged Parquet file (written atomically); the parts go to
            ``<path>.parts/`` (see :func:`part_paths`), on storage shared with the workers.
        parts: number of slices of the index range, one task each (e.g. a few per worker).
        level: credible level of the interval.
        top: keep only the ``top`` rows of highest mean in the merged file (as
            :func:`~layoutopt.score.shards.merge_shards`); ``None`` keeps every row.
        method: ``"auto"``, ``"gaussian"`` or ``"draws"`` (as in ``score_grid``).
        segment: one segment, or ``None`` for the traffic mix.
        memory_budget: bytes of memory one chunk of a task may use.
        retries: reruns of a task that raises (lost workers are rerun by the scheduler
            whatever this is).
        keep_parts: keep ``<path>.parts/`` after the merge (default: removed).

    Returns:
        The number of rows of the merged file.

    Raises:
        ValueError: for a bad ``parts`` or ``level`` (before anything is submitted), or what
            a task raised after its retries.
    """
    if isinstance(parts, bool) or not isinstance(parts, int) or parts < 1:
        raise ValueError(f"parts must be a positive integer, got {parts!r}")
    level = check_level(level)
    paths = part_paths(path, parts)
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    options = dict(level=level, memory_budget=memory_budget, method=method, segment=segment)
    # a fresh key per call (hash=False): a content-hashed key is shared by back-to-back calls
    # on the same posterior, and the release of the last call's copy then races this call's
    # scatter ("lost dependencies")
    [remote] = client.scatter([posterior], broadcast=True, hash=False)
    futures = [
        client.submit(_score_part, remote, str(p), i, parts, options, retries=retries, pure=False)
        for i, p in enumerate(paths)
    ]
    try:
        client.gather(futures)
        rows = merge_shards(paths, path, top=top)
    finally:
        client.cancel([*futures, remote])
    if not keep_parts:
        shutil.rmtree(paths[0].parent, ignore_errors=True)
    return rows
