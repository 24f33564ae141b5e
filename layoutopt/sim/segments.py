"""Synthetic worlds with audiences (segments).

A :class:`SegmentWorld` is the model with segment terms and *known* parameters::

    ctr(x, g) = inv_link(b0 + sum_k m_k[x_k] + sum_{k<l} p_kl[x_k, x_l] + c[g] + sum_k d_k[g, x_k])

computed by :func:`layoutopt.model.logits`, with a traffic share ``w_g`` per segment. Its
"one layout for everyone" is the layout of highest ``sum_g w_g ctr(x, g)``.

:func:`layoutopt.sim.run_campaign` plays any policy against it: each round's traffic
arrives split over the segments by their shares, and a segment-aware policy (the model
policies, ``per_segment=True``) proposes and picks per segment. Regret is measured against
each segment's own best. Re-exported from :mod:`layoutopt.simulate`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from layoutopt.decide.driver import Response
from layoutopt.model.core import LINKS, Params, inv_link, logits, pair_list
from layoutopt.model.priors import PriorConfig
from layoutopt.model.space import LayoutSpace
from layoutopt.sim.simulate import WorldBest
from layoutopt.util.arrays import pow2_at_least

__all__ = ["SegmentWorld"]

#: Largest space a :class:`SegmentWorld` enumerates for its true best layouts.
_ENUMERATE_LIMIT = 1 << 20


@functools.partial(jax.jit, static_argnames="link")
def _ctr_kernel(params: Params, codes: jax.Array, segments: jax.Array, link: str) -> jax.Array:
    return inv_link(logits(params, codes, segments), link)


@dataclass(frozen=True, eq=False)
class SegmentWorld:
    """A ground-truth world with segments: shared effects plus per-segment deviations.

    Args:
        space: a :class:`~layoutopt.model.space.LayoutSpace` with segments.
        params: true, unbatched :class:`~layoutopt.model.Params` with segment terms.
        shares: ``(G,)`` traffic share of each segment (positive, summing to 1).
        link: ``"logit"`` or ``"probit"``.

    Examples:
        >>> space = LayoutSpace({"a": ["a0", "a1"]}, segments={"member": ["p", "n"]})
        >>> world = SegmentWorld.random(space, seed=0, shares=[0.7, 0.3])
        >>> world.ctr(np.array([[0], [1]]), segment=1).shape
        (2,)
    """

    space: LayoutSpace
    params: Params
    shares: np.ndarray
    link: str = "logit"

    def __post_init__(self):
        G = self.space.num_segments
        if G == 0:
            raise ValueError("a SegmentWorld needs a space with segments")
        if self.link not in LINKS:
            raise ValueError(f"link must be one of {LINKS}, got {self.link!r}")
        if self.params.segment_intercept is None or np.shape(self.params.segment_intercept) != (G,):
            raise ValueError(f"params need segment terms for {G} segments (segment_intercept)")
        shares = np.asarray(self.shares, np.float64)
        if shares.shape != (G,) or np.any(shares <= 0) or not np.isclose(shares.sum(), 1.0):
            raise ValueError(f"shares must be {G} positive numbers summing to 1, got {shares}")
        object.__setattr__(self, "shares", shares)
        object.__setattr__(
            self, "params", jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), self.params)
        )

    @classmethod
    def random(
        cls,
        space: LayoutSpace,
        seed: int,
        shares=None,
        base_rate: float = 0.05,
        main_scale: float = 0.3,
        pair_scale: float = 0.15,
        segment_scale: float = 0.3,
        link: str = "logit",
    ) -> SegmentWorld:
        """Draw a world: ``m_k ~ N(0, main_scale)``, ``p_kl ~ N(0, pair_scale)``,
        ``c[g] ~ N(0, segment_scale)`` and ``d_k[g, v] ~ N(0, segment_scale)``.

        Args:
            space: a layout space with segments.
            seed: integer seed (NumPy ``default_rng``).
            shares: traffic share per segment; default equal shares.
            base_rate: CTR at zero effects.
            main_scale: sd of the shared main effects (link scale).
            pair_scale: sd of the shared pair effects.
            segment_scale: sd of the segment intercepts and segment deviations.
            link: ``"logit"`` or ``"probit"``.

        Returns:
            The :class:`SegmentWorld`.
        """
        rng = np.random.default_rng(seed)
        card, G = space.cardinalities, space.num_segments
        if G == 0:
            raise ValueError("a SegmentWorld needs a space with segments")
        intercept = PriorConfig(base_rate=base_rate, link=link).intercept_loc
        main = tuple(rng.normal(0.0, main_scale, n) for n in card)
        pair = tuple(
            rng.normal(0.0, pair_scale, (card[k], card[j])) for k, j in pair_list(len(card))
        )
        c = rng.normal(0.0, segment_scale, G)
        d = tuple(rng.normal(0.0, segment_scale, (G, n)) for n in card)
        params = Params(np.asarray(intercept), main, pair, c, d)
        return cls(space, params, np.full(G, 1.0 / G) if shares is None else shares, link)

    def ctr(self, codes, segment: int) -> np.ndarray:
        """True CTR of layouts ``(n, K)`` in segment ``segment`` (a code), float64."""
        codes = np.asarray(codes, np.int32).reshape(-1, self.space.num_components)
        n = len(codes)
        # Pad to a power-of-two bucket so varying n costs O(log n) compilations, not O(n).
        padded = np.zeros((pow2_at_least(n, minimum=16), codes.shape[1]), np.int32)
        padded[:n] = codes
        seg = np.full(len(padded), int(segment), np.int32)
        out = _ctr_kernel(self.params, jnp.asarray(padded), jnp.asarray(seg), self.link)
        return np.asarray(out, np.float64)[:n]

    def mix_ctr(self, codes) -> np.ndarray:
        """True CTR of layouts under the traffic mix: ``sum_g w_g ctr(x, g)``."""
        return sum(w * self.ctr(codes, g) for g, w in enumerate(self.shares))

    @functools.cached_property
    def _bests(self) -> dict:
        """True best layout of every segment code and of the mix (key ``None``)."""
        if self.space.num_allowed > _ENUMERATE_LIMIT:
            raise ValueError(
                f"true best layouts need enumeration (limit {_ENUMERATE_LIMIT} allowed "
                f"layouts); this space has {self.space.num_allowed}"
            )
        codes = np.concatenate([c for _, c in self.space.iter_chunks(65536, allowed_only=True)])
        out = {}
        for g in [None, *range(self.space.num_segments)]:
            ctr = self.mix_ctr(codes) if g is None else self.ctr(codes, g)
            i = int(np.argmax(ctr))
            best = codes[i]
            index = sum(int(x) * s for x, s in zip(best, self.space.strides, strict=True))
            out[g] = WorldBest(best, index, float(ctr[i]), self.space.decode(best))
        return out

    def best(self, segment: int | None = None) -> WorldBest:
        """The true best allowed layout of a segment (code), or for the mix (``None``)."""
        if segment is not None and not 0 <= int(segment) < self.space.num_segments:
            raise ValueError(f"segment code {segment} out of range [0, {self.space.num_segments})")
        return self._bests[None if segment is None else int(segment)]

    def serve(self, codes, impressions, segment: int, rng: np.random.Generator) -> np.ndarray:
        """Serve impressions of layouts to segment ``segment``; clicks ``~ Binomial``."""
        impressions = np.asarray(impressions, np.int64)
        if np.any(impressions < 0):
            raise ValueError("impressions must be non-negative")
        return rng.binomial(impressions, self.ctr(codes, segment)).astype(np.int64)

    # ---------------------------------------------------- the driver's World protocol
    @property
    def hours_per_round(self) -> None:
        """No time: clicks are seen at once and rounds are merged."""
        return None

    def respond(self, codes, impressions, *, segment, round, rng) -> Response:
        """Serve one round's rows to one segment (:class:`~layoutopt.decide.driver.World`)."""
        if segment is None:
            raise ValueError("a SegmentWorld serves one segment code at a time, got None")
        return Response(self.serve(codes, impressions, segment, rng), None)

    def truth(self, index, segments, round: int) -> np.ndarray:
        """True CTR of layouts (by index) in segment codes ``segments`` (same every round)."""
        codes = self.space.codes(np.asarray(index, np.int64))
        segments = np.broadcast_to(np.asarray(segments), (len(codes),))
        out = np.empty(len(codes))
        for g in np.unique(segments):
            at = segments == g
            out[at] = self.ctr(codes[at], int(g))
        return out

    def best_at(self, segment, round: int) -> WorldBest:
        """The true best layout of a segment code (None: the traffic mix), every round."""
        return self.best(segment)
