"""Mixed-radix indexing of layouts: index <-> variant codes, one at a time or as arrays.

A layout's index is ``sum_k x_k * strides[k]`` with the *last* component varying fastest.
Single layouts use Python ints (exact for any size); the array forms use int64 and are
limited to spaces below 2^63 layouts, except :func:`codes_range`, which only ever makes the
rows asked for.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "INT64_LIMIT",
    "codes_of_index",
    "codes_of_indices",
    "codes_range",
    "index_of_codes",
    "indices_of_codes",
    "require_int64",
    "strides_of",
]

#: Largest index the int64 array forms can hold.
INT64_LIMIT = 2**63 - 1


def strides_of(cardinalities: Sequence[int]) -> tuple[int, ...]:
    """Mixed-radix place values of ``cardinalities`` (Python ints, last component 1)."""
    return tuple(math.prod(cardinalities[k + 1 :]) for k in range(len(cardinalities)))


def require_int64(size: int) -> None:
    """Refuse the int64 array forms for a space of ``size`` layouts beyond int64.

    Raises:
        ValueError: naming the size and the Python-int alternatives.
    """
    if size > INT64_LIMIT:
        raise ValueError(
            f"space of {size} layouts exceeds int64 indices; use index()/layout() "
            "with Python ints or chunk via codes_range()"
        )


def index_of_codes(codes: Sequence[int], strides: Sequence[int]) -> int:
    """Index of one code tuple, an exact Python int."""
    return sum(int(x) * s for x, s in zip(codes, strides, strict=True))


def codes_of_index(i: int, cardinalities: Sequence[int]) -> tuple[int, ...]:
    """Variant codes of index ``i`` (Python ints).

    Raises:
        ValueError: when ``i`` is outside ``[0, prod(cardinalities))``.
    """
    i = int(i)
    size = math.prod(cardinalities)
    if not 0 <= i < size:
        raise ValueError(f"layout index {i} is out of range [0, {size})")
    out = []
    for n in reversed(cardinalities):
        i, r = divmod(i, n)
        out.append(r)
    return tuple(reversed(out))


def indices_of_codes(codes: np.ndarray, strides: Sequence[int]) -> np.ndarray:
    """int64 indices of an ``(n, K)`` code array (the caller checks :func:`require_int64`)."""
    codes = np.asarray(codes, dtype=np.int64)
    return codes @ np.asarray(strides, dtype=np.int64)


def codes_of_indices(indices: np.ndarray, cardinalities: Sequence[int]) -> np.ndarray:
    """``(..., K)`` int32 codes of an int64 index array (the caller checks int64).

    Raises:
        ValueError: for an index outside the space.
    """
    size = math.prod(cardinalities)
    idx = np.asarray(indices, dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= size):
        raise ValueError(f"layout indices must lie in [0, {size})")
    out = np.empty(idx.shape + (len(cardinalities),), dtype=np.int32)
    rest = idx.copy()
    for k in range(len(cardinalities) - 1, -1, -1):
        n = cardinalities[k]
        out[..., k] = rest % n
        rest //= n
    return out


def codes_range(start: int, n: int, cardinalities: Sequence[int]) -> np.ndarray:
    """Codes of the consecutive indices ``start, ..., start + n - 1`` as ``(n, K)`` int32.

    ``n`` is cut at the end of the space. Works for spaces of any size: ``start`` is a
    Python int, and the carry runs in int64 over the ``n`` offsets only.

    Raises:
        ValueError: when ``start`` is outside the space.
    """
    size = math.prod(cardinalities)
    start = int(start)
    n = int(min(n, size - start))
    if start < 0 or n < 0:
        raise ValueError(f"range start {start} is outside [0, {size})")
    K = len(cardinalities)
    digits = codes_of_index(start, cardinalities) if n > 0 else (0,) * K
    out = np.empty((n, K), dtype=np.int32)
    carry = np.arange(n, dtype=np.int64)
    for k in range(K - 1, -1, -1):
        card = cardinalities[k]
        total = carry + digits[k]
        out[:, k] = total % card
        carry = total // card
    return out
