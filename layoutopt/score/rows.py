"""Rows of scored layouts: exact indices, the P(best) lookup, and the Arrow rows of the files.

Shared by the in-memory scores, the streamed Parquet output and the shards, so that every
output names, orders and credits layouts the same way.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa

from layoutopt.model.space import LayoutSpace

__all__ = [
    "STAT_COLUMNS",
    "arrow_rows",
    "index_of",
    "p_best_lookup",
    "p_best_of",
    "sortable_index",
]

#: The statistic columns of every scored row, after ``index`` and the component labels.
STAT_COLUMNS = ("mean", "lower", "upper", "p_best")


def index_of(space: LayoutSpace, codes: np.ndarray) -> list[int]:
    """Exact Python-int indices of a code array (any space size)."""
    return [space.index_of_codes(row) for row in codes]


def p_best_lookup(space: LayoutSpace, best_codes: np.ndarray) -> dict:
    """``{index: share of draws}`` of the per-draw argmax layouts ``(S, K)``."""
    counts = Counter(index_of(space, best_codes))
    S = len(best_codes)
    return {i: c / S for i, c in counts.items()}


def p_best_of(space: LayoutSpace, codes: np.ndarray, lookup: dict) -> np.ndarray:
    """``p_best`` of each row of ``codes`` from :func:`p_best_lookup` (vectorised)."""
    if space.size > 2**63 - 1:
        return np.array([lookup.get(i, 0.0) for i in index_of(space, codes)], np.float64)
    out = np.zeros(len(codes), np.float64)
    if not lookup or not len(codes):
        return out
    keys = np.array(sorted(lookup), np.int64)
    vals = np.array([lookup[i] for i in sorted(lookup)], np.float64)
    idx = space.indices(codes)
    pos = np.minimum(np.searchsorted(keys, idx), len(keys) - 1)
    hit = keys[pos] == idx
    out[hit] = vals[pos[hit]]
    return out


def sortable_index(space: LayoutSpace, codes: np.ndarray) -> np.ndarray:
    """Ranks of the rows of ``codes`` in index order (any space size)."""
    # lexicographic order of codes == index order (mixed radix, last component fastest)
    if len(codes) == 0:
        return np.zeros(0, np.int64)
    return np.lexsort(codes.T[::-1]).argsort()


def arrow_rows(space: LayoutSpace):
    """``(schema, to_table)`` of the streamed grid files: ``to_table(idx, codes, stats)``.

    Columns: ``index`` (int64), one dictionary-encoded label column per component, then
    :data:`STAT_COLUMNS` (float64).
    """
    schema = pa.schema(
        [("index", pa.int64())]
        + [(c, pa.dictionary(pa.int32(), pa.string())) for c in space.components]
        + [(name, pa.float64()) for name in STAT_COLUMNS]
    )
    dictionaries = [pa.array(list(v), pa.string()) for v in space.variants]

    def to_table(idx, codes, stats):
        cols = [pa.array(idx, pa.int64())]
        for k in range(space.num_components):
            cols.append(
                pa.DictionaryArray.from_arrays(pa.array(codes[:, k], pa.int32()), dictionaries[k])
            )
        cols += [pa.array(np.asarray(a, np.float64)) for a in stats]
        return pa.Table.from_arrays(cols, schema=schema)

    return schema, to_table
