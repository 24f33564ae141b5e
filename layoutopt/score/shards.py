"""Fan-out of full-grid scoring over machines: score slices of the index range, merge exactly.

A grid too large for one machine is split into n contiguous slices of its index range
(leaf-block aligned, see :func:`layoutopt.score.grid.plan`); any batch scheduler (Slurm
arrays, Kubernetes jobs, Ray tasks) runs one :func:`write_shard` per slice, and
:func:`merge_shards` combines the n files. Each shard file holds its layouts' mean and
interval (per-layout statistics need no other slice) and, in the Parquet file's key-value
metadata, the slice's per-draw maximum of eta (of the mixture CTR, for the traffic mix) and
the index where it is attained. The
global per-draw best layout is the best of the n per-slice bests (ties to the lowest index,
as within a slice), so the merged ``p_best`` is exact: the merged file equals the one
:func:`layoutopt.score.grid_scores.score_grid_to_parquet` writes unsharded with the enumeration
argmax, row for row.

Example (one process per shard, then one merge)::

    layoutopt score -p post.nc -o part-3.parquet --shard 3/16
    layoutopt score --merge part-*.parquet -o grid.parquet
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import jax
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from layoutopt.infer.posterior import Posterior
from layoutopt.score.grid import DEFAULT_MEMORY_BUDGET, plan
from layoutopt.score.rows import arrow_rows
from layoutopt.score.stream import scan_space
from layoutopt.score.target import Target, check_level, scoring_target
from layoutopt.util.io import atomic_path

__all__ = ["merge_shards", "parse_shard", "write_shard"]

#: Key of the shard record in the Parquet key-value metadata.
META_KEY = b"layoutopt.shard"
FORMAT = 1


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)``, checked (``0 <= i < n``).

    Raises:
        ValueError: for anything but two integers ``i/n`` with ``0 <= i < n``.
    """
    parts = str(text).split("/")
    try:
        i, n = (int(p) for p in parts)
    except ValueError:
        raise ValueError(
            f"shard must be 'i/n' with integers 0 <= i < n (e.g. 0/4), got {text!r}"
        ) from None
    return check_shard((i, n))


def check_shard(shard) -> tuple[int, int]:
    """Validate ``(i, n)``: integers with ``n >= 1`` and ``0 <= i < n``."""
    try:
        i, n = shard
    except (TypeError, ValueError):
        raise ValueError(f"shard must be a pair (i, n), got {shard!r}") from None
    if not all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in (i, n)):
        raise ValueError(f"shard must be a pair of integers (i, n), got {shard!r}")
    if not 0 <= i < n:
        raise ValueError(f"shard (i, n) needs 0 <= i < n, got ({i}, {n})")
    return int(i), int(n)


def shard_range(space, shard) -> tuple[int, int]:
    """Leaf blocks ``(lo, hi)`` of shard ``(i, n)``: the i-th of n near-equal slices."""
    i, n = check_shard(shard)
    Np = plan(space.cardinalities).num_prefixes
    return i * Np // n, (i + 1) * Np // n


def _digest(posterior: Posterior, target: Target) -> str:
    """Fingerprint of the space and what was scored (the draws, of one segment or of the
    mix with its shares), so shards of different fits or audiences never merge."""
    h = hashlib.sha256(repr((posterior.space, posterior.prior.link)).encode())
    for leaf in jax.tree.leaves((target.params, target.fingerprint)):
        a = np.ascontiguousarray(np.asarray(leaf, np.float32))
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def write_shard(
    posterior: Posterior,
    path: str | Path,
    shard: tuple[int, int],
    *,
    level: float = 0.9,
    chunk_size: int | None = None,
    devices=None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    method: str = "auto",
    segment: dict | None = None,
) -> int:
    """Score one contiguous slice of the grid to Parquet, with its per-draw best in metadata.

    Same columns as :func:`layoutopt.score.scoring.score_grid_to_parquet` (``p_best`` is NaN until
    :func:`merge_shards`); one pass over the slice, memory independent of its size. Usually
    called as ``score_grid_to_parquet(post, path, shard=(i, n))``.

    Args:
        posterior: the fitted posterior (its own space is scored).
        path: output Parquet file (written atomically).
        shard: ``(i, n)``, 0-based slice i of n.
        level: credible level of the interval.
        chunk_size: layouts per kernel call.
        devices: devices to shard each chunk over (default: all visible).
        memory_budget: bytes of device memory one chunk may use.
        method: ``"auto"``, ``"gaussian"`` or ``"draws"``: how mean and interval are
            computed (see :func:`layoutopt.score.scoring.score_grid`); the per-draw best always
            comes from the draws.
        segment: one segment, or ``None`` for the traffic mix of a posterior with segments
            (its slice's per-draw best is that of the mixture CTR; see
            :mod:`layoutopt.score.target`).

    Returns:
        The number of rows written (the allowed layouts of the slice).
    """
    space, target = scoring_target(posterior, None, segment, method)
    level = check_level(level)
    i, n = check_shard(shard)
    if space.size > 2**63 - 1:
        raise ValueError("spaces beyond 2^63 layouts cannot be written with int64 indices")
    lo, hi = shard_range(space, (i, n))
    Lf = plan(space.cardinalities).leaf_size
    schema, to_table = arrow_rows(space)
    rows = 0
    state = None

    def on_chunk(start, n_valid, out):
        nonlocal rows
        m, lo_, hi_ = (np.asarray(a)[:n_valid] for a in out)
        keep = np.isfinite(m)
        if keep.any():
            idx = start + np.flatnonzero(keep).astype(np.int64)
            nan = np.full(len(idx), np.nan)
            writer.write_table(
                to_table(idx, space.codes(idx), (m[keep], lo_[keep], hi_[keep], nan))
            )
            rows += len(idx)

    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        if hi > lo:
            state, _ = scan_space(
                target, space, level=level, on_chunk=on_chunk, chunk_size=chunk_size,
                memory_budget=memory_budget, devices=devices, prefixes=(lo, hi),
            )  # fmt: skip
        S = target.num_draws
        if state is None:
            best_eta, best_index = np.full(S, -np.inf), np.zeros(S, np.int64)
        else:
            best_eta = np.asarray(state.best_eta, np.float64)
            best_index = space.indices(np.asarray(state.best_codes))
        record = {
            "format": FORMAT,
            "shard": i,
            "num_shards": n,
            "index_start": lo * Lf,
            "index_stop": hi * Lf,
            "rows": rows,
            "num_draws": S,
            "level": level,
            "posterior": _digest(posterior, target),
            # float32 values, exact in JSON's float64; -inf (nothing allowed) as null
            "best_eta": [None if not np.isfinite(v) else float(v) for v in best_eta],
            "best_index": [int(v) for v in best_index],
        }
        writer.add_key_value_metadata({META_KEY: json.dumps(record).encode()})
    return rows


def _read_record(path: Path) -> dict:
    try:
        meta = pq.read_metadata(path).metadata or {}
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such shard file") from None
    except OSError as err:
        raise ValueError(f"{path}: not a Parquet file ({err})") from None
    if META_KEY not in meta:
        raise ValueError(
            f"{path}: not a shard file (no {META_KEY.decode()!r} metadata); write shards with "
            "score_grid_to_parquet(..., shard=(i, n)) or `layoutopt score --shard i/n`"
        )
    return json.loads(meta[META_KEY])


def _check_records(paths: list[Path], records: list[dict]) -> list[int]:
    """Order of the files by shard; every shard of one fit exactly once."""
    first = records[0]
    for p, r in zip(paths, records, strict=True):
        for key in ("format", "num_shards", "num_draws", "level", "posterior"):
            if r[key] != first[key]:
                raise ValueError(
                    f"{p}: {key}={r[key]!r} differs from {paths[0]}'s {first[key]!r}; "
                    "merge only the shards of one scoring run"
                )
    n = first["num_shards"]
    by_shard = {}
    for p, r in zip(paths, records, strict=True):
        if r["shard"] in by_shard:
            raise ValueError(
                f"{p}: shard {r['shard']}/{n} given twice (also {by_shard[r['shard']]})"
            )
        by_shard[r["shard"]] = p
    missing = sorted(set(range(n)) - set(by_shard))
    if missing:
        raise ValueError(f"shards {missing} of {n} are missing; got {len(paths)} files")
    return sorted(range(len(paths)), key=lambda j: records[j]["shard"])


def merge_shards(paths, output: str | Path, top: int | None = None) -> int:
    """Combine the n shard files of one grid into one Parquet file, with exact ``p_best``.

    Per draw, the global best layout is the best of the shards' bests (exactly equal eta:
    the lowest index, as in an unsharded scan); ``p_best`` counts those over the draws. The
    rows are streamed shard by shard (memory independent of the grid size).

    Args:
        paths: the n shard files, in any order.
        output: the merged Parquet file (written atomically).
        top: keep only the ``top`` layouts with the highest mean (ties: lowest index), highest
            first; ``None`` keeps every row, in index order.

    Returns:
        The number of rows written.

    Raises:
        ValueError: for files that are not shards, shards of different runs, a shard given
            twice or missing, or a bad ``top``.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("merge_shards needs at least one shard file")
    if top is not None and (isinstance(top, bool) or int(top) != top or top <= 0):
        raise ValueError(f"top must be a positive integer or None, got {top!r}")
    records = [_read_record(p) for p in paths]
    order = _check_records(paths, records)
    eta = np.array(
        [[-np.inf if v is None else v for v in records[j]["best_eta"]] for j in order]
    )  # (n, S)
    index = np.array([records[j]["best_index"] for j in order], np.int64)
    win = np.argmax(eta, axis=0)  # first maximum: the lowest shard, hence the lowest index
    best = index[win, np.arange(eta.shape[1])]
    counts = Counter(best.tolist())
    keys = np.array(sorted(counts), np.int64)
    share = np.array([counts[k] / len(best) for k in keys])
    kept = None
    rows = 0
    with atomic_path(output) as tmp:
        writer = None
        for j in order:
            f = pq.ParquetFile(paths[j])
            for g in range(f.num_row_groups):
                t = f.read_row_group(g)
                idx = t.column("index").to_numpy()
                pos = np.minimum(np.searchsorted(keys, idx), len(keys) - 1)
                p = np.where(keys[pos] == idx, share[pos], 0.0)
                t = t.set_column(t.schema.get_field_index("p_best"), "p_best", pa.array(p))
                t = t.replace_schema_metadata(None)  # the shard record is not the merge's
                if top is None:
                    if writer is None:
                        writer = pq.ParquetWriter(tmp, t.schema)
                    writer.write_table(t)
                    rows += len(t)
                else:
                    kept = _top_rows(t if kept is None else pa.concat_tables([kept, t]), top)
        if top is not None:
            if kept is None:
                kept = pq.read_schema(paths[order[0]]).empty_table()
            kept = kept.replace_schema_metadata(None)
            pq.write_table(kept, tmp)
            rows = len(kept)
        elif writer is None:
            empty = pq.read_schema(paths[order[0]]).empty_table()
            pq.write_table(empty.replace_schema_metadata(None), tmp)
        else:
            writer.close()
    return rows


def _top_rows(t, k: int):
    """The k rows of highest mean (ties: lowest index), highest first."""
    mean = t.column("mean").to_numpy()
    idx = t.column("index").to_numpy()
    sel = np.lexsort((idx, -mean))[:k]
    return t.take(sel)
