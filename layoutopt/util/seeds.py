"""Explicit randomness: integer seeds split once per use, and seeds drawn from JAX keys.

Every random function of the package takes an explicit ``seed`` (or a JAX PRNG ``key``);
nothing falls back to a default. A function that needs randomness for two purposes splits
its seed with :func:`split_seed` rather than reusing it.
"""

from __future__ import annotations

import jax
import numpy as np

__all__ = ["seed_of", "split_seed"]


def split_seed(seed: int, n: int) -> tuple[int, ...]:
    """``n`` independent 31-bit seeds derived from ``seed`` (NumPy ``SeedSequence.spawn``)."""
    children = np.random.SeedSequence(int(seed)).spawn(n)
    return tuple(int(c.generate_state(1)[0] >> 1) for c in children)


def seed_of(key: jax.Array) -> int:
    """A 31-bit integer seed drawn from a JAX PRNG key (for NumPy and the seeded API)."""
    return int(jax.random.randint(key, (), 0, 2**31 - 1))
