"""Observations: aggregated impressions and clicks per distinct tested layout."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from layoutopt.space import LayoutSpace

__all__ = ["Observations"]


@dataclass(frozen=True, eq=False)
class Observations:
    """Click data aggregated to one row per distinct allowed layout.

    Attributes:
        space: the :class:`LayoutSpace` the layouts belong to.
        codes: ``(N, K)`` int32 variant codes of the distinct layouts, sorted by index.
        impressions: ``(N,)`` int64 impressions per layout.
        clicks: ``(N,)`` int64 clicks per layout (``0 <= clicks <= impressions``).
    """

    space: LayoutSpace
    codes: np.ndarray
    impressions: np.ndarray
    clicks: np.ndarray

    @classmethod
    def from_codes(
        cls, space: LayoutSpace, codes, impressions, clicks, source: str = "observations"
    ) -> Observations:
        """Build from integer codes; repeated layouts are summed.

        Raises:
            ValueError: for out-of-range codes, forbidden layouts, bad counts or no rows.
        """
        codes = np.asarray(codes)
        impressions = np.asarray(impressions)
        clicks = np.asarray(clicks)
        if codes.ndim != 2 or codes.shape[1] != space.num_components:
            raise ValueError(
                f"{source}: codes must have shape (N, {space.num_components}), got {codes.shape}"
            )
        n = codes.shape[0]
        if n == 0:
            raise ValueError(f"{source}: no rows; at least one observed layout is needed")
        if impressions.shape != (n,) or clicks.shape != (n,):
            raise ValueError(f"{source}: impressions and clicks need shape ({n},)")
        for k, card in enumerate(space.cardinalities):
            bad = np.flatnonzero((codes[:, k] < 0) | (codes[:, k] >= card))
            if bad.size:
                raise ValueError(
                    f"{source}: row {bad[0]}: code {codes[bad[0], k]} out of range "
                    f"[0, {card}) for component {space.components[k]!r}"
                )
        codes = codes.astype(np.int32)
        for name, arr in (("impressions", impressions), ("clicks", clicks)):
            if not np.issubdtype(arr.dtype, np.number) or np.any(~np.isfinite(arr)):
                raise ValueError(f"{source}: column {name!r} must hold finite numbers")
            bad = np.flatnonzero((arr < 0) | (arr != np.round(arr)))
            if bad.size:
                raise ValueError(
                    f"{source}: row {bad[0]}: {name} = {arr[bad[0]]!r}; "
                    "counts must be non-negative integers"
                )
        impressions = impressions.astype(np.int64)
        clicks = clicks.astype(np.int64)
        bad = np.flatnonzero(clicks > impressions)
        if bad.size:
            raise ValueError(
                f"{source}: row {bad[0]}: clicks ({clicks[bad[0]]}) exceed impressions "
                f"({impressions[bad[0]]})"
            )
        allowed = space.allowed_mask(codes)
        if not allowed.all():
            r = int(np.flatnonzero(~allowed)[0])
            raise ValueError(
                f"{source}: row {r}: layout {space.decode(codes[r])} is forbidden by rule "
                f"{space.violated_rule(codes[r])}"
            )
        uniq, inverse = np.unique(codes, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        imp = np.bincount(inverse, weights=impressions, minlength=len(uniq)).astype(np.int64)
        clk = np.bincount(inverse, weights=clicks, minlength=len(uniq)).astype(np.int64)
        return cls(space, uniq.astype(np.int32), imp, clk)

    @property
    def num_layouts(self) -> int:
        """Number of distinct observed layouts."""
        return int(self.codes.shape[0])

    def __len__(self) -> int:
        return self.num_layouts
