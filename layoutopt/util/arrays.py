"""Array-shape helpers shared by every stage."""

from __future__ import annotations

__all__ = ["pow2_at_least"]


def pow2_at_least(n: int, minimum: int = 1) -> int:
    """Smallest power of two >= max(n, minimum): few distinct shapes, so few compilations."""
    n = max(int(n), int(minimum), 1)
    return 1 << (n - 1).bit_length()
