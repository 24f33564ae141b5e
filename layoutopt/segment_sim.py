"""Synthetic worlds with audiences (segments), and a campaign that serves each audience.

A :class:`SegmentWorld` is the model with segment terms and *known* parameters::

    ctr(x, g) = inv_link(b0 + sum_k m_k[x_k] + sum_{k<l} p_kl[x_k, x_l] + c[g] + sum_k d_k[g, x_k])

computed by :func:`layoutopt.model.logits`, with a traffic share ``w_g`` per segment. Its
"one layout for everyone" is the layout of highest ``sum_g w_g ctr(x, g)``.

:func:`run_segment_campaign` plays rounds of *propose -> serve -> refit* in which each round's
traffic arrives split over the segments by their shares, and either every segment gets its
own proposal (``per_segment=True``: ``propose(post, segment=g)``) or all get the one proposal
for the traffic mix (``segment=None``). Regret is measured against each segment's own best.
Both are re-exported from :mod:`layoutopt.simulate`.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from layoutopt.data import Observations
from layoutopt.design import initial_design
from layoutopt.inference import FitWarning, fit
from layoutopt.model import LINKS, Params, PriorConfig, inv_link, logits, pair_list
from layoutopt.propose import propose
from layoutopt.scoring import best_layout
from layoutopt.simulate import WorldBest
from layoutopt.space import LayoutSpace

__all__ = ["SegmentWorld", "run_segment_campaign"]

#: Largest space a :class:`SegmentWorld` enumerates for its true best layouts.
_ENUMERATE_LIMIT = 1 << 20


@functools.partial(jax.jit, static_argnames="link")
def _ctr_kernel(params: Params, codes: jax.Array, segments: jax.Array, link: str) -> jax.Array:
    return inv_link(logits(params, codes, segments), link)


@dataclass(frozen=True, eq=False)
class SegmentWorld:
    """A ground-truth world with segments: shared effects plus per-segment deviations.

    Args:
        space: a :class:`~layoutopt.space.LayoutSpace` with segments.
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
        seg = np.full(len(codes), int(segment), np.int32)
        return np.asarray(
            _ctr_kernel(self.params, jnp.asarray(codes), jnp.asarray(seg), self.link), np.float64
        )

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


def run_segment_campaign(
    world: SegmentWorld,
    per_segment: bool,
    budget: int,
    batch_size: int,
    seed: int,
    k: int = 8,
    strategy: str = "thompson",
    num_samples: int = 300,
    prior: PriorConfig | None = None,
    callback: Callable[[int, dict], None] | None = None,
) -> pd.DataFrame:
    """Play a campaign against a :class:`SegmentWorld`; regret against each segment's best.

    Every round ``batch_size`` impressions arrive, split over segments multinomially by the
    world's shares. Round 0 serves the pairwise initial design to every segment (equal
    split). Later rounds serve ``propose(post, k=k, strategy=strategy, segment=g)`` to
    segment ``g`` (``per_segment=True``) or the one proposal for the mix
    (``segment=None``) to everyone, with impressions split by the proposal weights
    (multinomial). After each round the segment model is refitted (Laplace) on all
    (layout, segment) rows.

    Args:
        world: the ground truth.
        per_segment: one proposal and one pick per segment, or one for everyone.
        budget: total impressions.
        batch_size: impressions per round.
        seed: integer seed of every random choice.
        k: layouts per proposal.
        strategy: a :func:`~layoutopt.propose.propose` strategy.
        num_samples: posterior draws per fit.
        prior: fit prior; default ``PriorConfig(base_rate=<round-0 CTR>, link=world.link)``.
        callback: called as ``callback(round, record)`` after every round.

    Returns:
        DataFrame, one row per round: ``impressions`` (cumulative), ``local_regret``
        (traffic-weighted mean of ``best_g - ctr(x, g)`` over the round's impressions),
        ``simple_regret`` (``sum_g w_g (best_g - ctr(pick_g, g))`` of the layouts that would
        be shipped now) and ``pick_ctr`` (``sum_g w_g ctr(pick_g, g)``).
    """
    space, G = world.space, world.space.num_segments
    rng = np.random.default_rng(seed)
    best = np.array([world.best(g).ctr for g in range(G)])
    ledger: dict[tuple, list] = {}
    design = initial_design(space, seed=int(rng.integers(2**31)))
    design_codes = space.codes(np.asarray(design["index"], np.int64))
    post, rows = None, []
    for r in range(math.ceil(budget / batch_size)):
        n_batch = min(batch_size, budget - r * batch_size)
        per_seg = rng.multinomial(n_batch, world.shares)
        served_regret = 0.0
        mix_batch = None
        for g in range(G):
            if r == 0:
                codes, weight = design_codes, np.ones(len(design_codes))
            else:
                if per_segment or mix_batch is None:
                    seg = space.segment_of(g) if per_segment else None
                    s = int(rng.integers(2**31))
                    mix_batch = propose(post, k=k, strategy=strategy, seed=s, segment=seg)
                codes = space.codes(np.asarray(mix_batch["index"], np.int64))
                weight = np.asarray(mix_batch["weight"])
            n = rng.multinomial(per_seg[g], weight / weight.sum())
            clicks = world.serve(codes, n, g, rng)
            served_regret += float(np.sum(n * (best[g] - world.ctr(codes, g))))
            for c, ni, yi in zip(codes, n, clicks, strict=True):
                if ni:
                    entry = ledger.setdefault((*c.tolist(), g), [0, 0])
                    entry[0] += int(ni)
                    entry[1] += int(yi)
        keys = np.array(list(ledger), np.int32)
        counts = np.array(list(ledger.values()), np.int64)
        obs = Observations.from_codes(
            space, keys[:, :-1], counts[:, 0], counts[:, 1], source="campaign", segments=keys[:, -1]
        )
        if prior is None:
            rate = float(
                np.clip((counts[:, 1].sum() + 0.5) / (counts[:, 0].sum() + 1.0), 1e-4, 0.5)
            )
            prior = PriorConfig(base_rate=float(f"{rate:.3g}"), link=world.link)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FitWarning)
            post = fit(
                space, obs, seed=int(rng.integers(2**31)), num_samples=num_samples, prior=prior
            )
        if per_segment:
            picks = [best_layout(post, segment=space.segment_of(g)).index for g in range(G)]
        else:
            picks = [best_layout(post, segment=None).index] * G
        pick_ctr = np.array([world.ctr(space.codes_of(i), g)[0] for g, i in enumerate(picks)])
        record = {
            "round": r,
            "impressions": int(counts[:, 0].sum()),
            "local_regret": served_regret / max(n_batch, 1),
            "simple_regret": float(world.shares @ (best - pick_ctr)),
            "pick_ctr": float(world.shares @ pick_ctr),
        }
        rows.append(record)
        if callback is not None:
            callback(r, record)
    return pd.DataFrame(rows)
