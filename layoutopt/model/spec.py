"""One static description of the model: its terms, the flat parameter layout, the design.

A :class:`ModelSpec` answers once every question a fitter used to ask with an ``if``: which
terms the model has (main effects, pair tables, segment blocks, attribute coefficients),
how large they are, in which order they sit in the flat parameter vector, which prior scale
group each belongs to, and which columns (with which values) an observed row touches. It is
frozen and hashable, so it is a ``jit`` static argument.

The flat order is ``[b0, main..., pair..., c, d..., q..., beta]``: the leaves of
:class:`~layoutopt.model.core.Params` in field order (what ``jax.flatten_util.ravel_pytree``
gives for the pair ``(params, beta)`` of residual effects and coefficients), followed by
the attribute coefficients.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from layoutopt.model.core import (
    Params,
    pair_list,
    unflatten_effects,
    unflatten_segment_effects,
)

__all__ = ["ModelSpec", "Block", "Design", "FitData", "ScaleGroups", "KINDS", "design_indices"]

#: Term kinds of the flat blocks, in flat order.
KINDS = (
    "intercept",
    "main",
    "pair",
    "segment_intercept",
    "segment_main",
    "segment_pair",
    "beta",
)


class FitData(NamedTuple):
    """The rows every fitter reads, whatever the model's terms.

    A row is a cohort of impressions of one layout in one segment. Without segments the
    segment codes are 0; without a (fixed) delay model the exposure is 1, where the
    likelihood is exactly the delay-free one; without drift discounting the weight is 1.

    Attributes:
        codes: ``(N, K)`` int32 variant codes.
        segments: ``(N,)`` int32 segment codes.
        impressions: ``(N,)`` impressions.
        clicks: ``(N,)`` clicks (``None``: sample them, prior predictive).
        exposure: ``(N,)`` ``F(age)``, the share of eventual clicks already observable.
        weight: ``(N,)`` power-prior weight of the row (``0.5 ** (older / half_life)``).
        age: ``(N,)`` hours since served (zeros without an ``age`` column); read only
            when the spec samples the delay (``learned_delay``).
        delay_counts: histogram of observed click delays (read with ``learned_delay``).
    """

    codes: np.ndarray
    segments: np.ndarray
    impressions: np.ndarray
    clicks: np.ndarray | None
    exposure: np.ndarray
    weight: np.ndarray
    age: np.ndarray
    delay_counts: np.ndarray

    def weighted(self):
        """``(impressions * weight, clicks * weight)``: the power prior's counts."""
        clicks = None if self.clicks is None else self.clicks * self.weight
        return self.impressions * self.weight, clicks


class Block(NamedTuple):
    """One block of the flat parameter vector.

    Attributes:
        kind: one of :data:`KINDS`.
        index: which component (main, segment_main), pair (pair, segment_pair) or
            coefficient (beta) of its kind; 0 for the intercept blocks.
        offset: first flat index.
        size: number of parameters.
    """

    kind: str
    index: int
    offset: int
    size: int


class Design(NamedTuple):
    """Active columns of observed rows and their values (the rows of X, never X itself).

    Attributes:
        columns: ``(N, C)`` int32 flat column of each slot of each row.
        values: ``(N, C)`` value of each slot: 1 for the one-hot terms, ``a_k(x_k)`` for
            an attribute coefficient.
    """

    columns: np.ndarray
    values: np.ndarray


class ScaleGroups(NamedTuple):
    """Prior scale groups of the flat parameters.

    Attributes:
        group: ``(P,)`` int32 group of every parameter, -1 for the intercept.
        size: ``(G,)`` float64 number of parameters in each group.
        first: ``(G,)`` int32: for each group, the per-group (unpooled) group of its first
            parameter; a pooled group takes that group's prior scale.
    """

    group: np.ndarray
    size: np.ndarray
    first: np.ndarray


@dataclass(frozen=True)
class ModelSpec:
    """The terms of a model (frozen and hashable: a ``jit`` static argument).

    Attributes:
        cardinalities: variants per component ``(n_1, ..., n_K)``.
        pairwise: whether pair tables are in the model.
        link: ``"logit"`` or ``"probit"``.
        num_segments: segments G (0: no segment terms).
        segment_pairs: whether every segment has its own pair deviations ``q_kl``.
        attribute_counts: attribute coefficients per component (``()``: none).
        shared_counts: coefficients shared by the slots of each distinct group with shared
            item effects (one per item; ``()``: none), after the attribute coefficients.
        learned_delay: whether a Weibull click delay is sampled with the effects (NUTS and
            SVI with ``delay="auto"``); a fixed delay is data (the fit's exposure).
    """

    cardinalities: tuple[int, ...]
    pairwise: bool = True
    link: str = "logit"
    num_segments: int = 0
    segment_pairs: bool = False
    attribute_counts: tuple[int, ...] = ()
    learned_delay: bool = False
    shared_counts: tuple[int, ...] = ()

    @classmethod
    def from_space(cls, space, prior, *, learned_delay: bool = False) -> ModelSpec:
        """The spec of fitting ``space`` under ``prior`` (a :class:`PriorConfig`).

        Args:
            space: the :class:`~layoutopt.model.space.LayoutSpace` (its segments and
                variant attributes).
            prior: the prior settings (``pairwise``, ``link``, ``segment_pairs``).
            learned_delay: sample the click delay with the effects.

        Returns:
            The :class:`ModelSpec`.
        """
        G = int(space.num_segments)
        counts = tuple(len(space.attribute_columns(k)) for k in range(space.num_components))
        return cls(
            cardinalities=tuple(int(n) for n in space.cardinalities),
            pairwise=bool(prior.pairwise),
            link=prior.link,
            num_segments=G,
            segment_pairs=bool(prior.segment_pairs and prior.pairwise and G > 0),
            attribute_counts=counts if any(counts) else (),
            learned_delay=bool(learned_delay),
            shared_counts=tuple(
                int(space.cardinalities[g[0]]) for g in space.distinct if space.shared_effects
            ),
        )

    # ------------------------------------------------------------------------ the layout
    @property
    def num_components(self) -> int:
        """Components K."""
        return len(self.cardinalities)

    @property
    def pairs(self) -> list[tuple[int, int]]:
        """The pair tables ``(k, l)`` of the model (none for the additive model)."""
        return pair_list(self.num_components) if self.pairwise else []

    @property
    def num_beta(self) -> int:
        """Attribute coefficients B (shared item effects included)."""
        return int(sum(self.attribute_counts) + sum(self.shared_counts))

    @property
    def blocks(self) -> tuple[Block, ...]:
        """The flat blocks in order, every term counted."""
        card, G = self.cardinalities, self.num_segments
        sizes = [("intercept", 0, 1)]
        sizes += [("main", k, n) for k, n in enumerate(card)]
        sizes += [("pair", i, card[k] * card[j]) for i, (k, j) in enumerate(self.pairs)]
        if G:
            sizes.append(("segment_intercept", 0, G))
            sizes += [("segment_main", k, G * n) for k, n in enumerate(card)]
            if self.segment_pairs:
                sizes += [
                    ("segment_pair", i, G * card[k] * card[j])
                    for i, (k, j) in enumerate(self.pairs)
                ]
        sizes += [("beta", j, 1) for j in range(self.num_beta)]
        out, offset = [], 0
        for kind, index, size in sizes:
            out.append(Block(kind, index, offset, size))
            offset += size
        return tuple(out)

    @property
    def additive_num_params(self) -> int:
        """Parameters of the same model without pair tables (a size guard's alternative)."""
        return ModelSpec(
            self.cardinalities, False, self.link, self.num_segments, False,
            self.attribute_counts, shared_counts=self.shared_counts,
        ).num_params  # fmt: skip

    @property
    def num_params(self) -> int:
        """Parameters P of the model: intercept, main, pair, segment and attribute terms."""
        last = self.blocks[-1]
        return last.offset + last.size

    def span(self, *kinds: str) -> tuple[int, int]:
        """``(start, stop)`` of the contiguous flat range of the blocks of ``kinds``."""
        chosen = [b for b in self.blocks if b.kind in kinds]
        if not chosen:
            start = next((b.offset for b in self.blocks if KINDS.index(b.kind) > _last(kinds)),
                         self.num_params)  # fmt: skip
            return start, start
        return chosen[0].offset, chosen[-1].offset + chosen[-1].size

    def num_slots(self) -> int:
        """Design columns C touched by every row (the width of :meth:`design`)."""
        G = self.num_segments
        K, num_pairs = self.num_components, len(self.pairs)
        seg = (1 + K + (num_pairs if self.segment_pairs else 0)) if G else 0
        return 1 + K + num_pairs + seg + self.num_beta

    # --------------------------------------------------------------------- ravel/unravel
    def unravel(self, flat, attributes) -> tuple[Params, jax.Array]:
        """:class:`Params` (main effects composed with the attributes) and ``beta``.

        ``m_k = e_k + A_k beta_k``: the flat vector holds the residuals ``e`` and the
        coefficients; ``attributes`` is the ``(sum n_k, B)`` block-diagonal design
        (:func:`~layoutopt.model.priors.attribute_design`; zero columns without
        attributes, where the sum adds exact zeros).

        Args:
            flat: ``(..., P)`` flat parameters (numpy or jax; leading axes are draws).
            attributes: ``(sum n_k, B)``.

        Returns:
            ``(params, beta)`` with the leading axes of ``flat``.
        """
        b0, m0 = self.span("intercept")[0], self.span("main")
        p0, s0, t0 = self.span("pair"), self.span(*KINDS[3:6]), self.span("beta")
        beta = flat[..., t0[0] : t0[1]]
        main = flat[..., m0[0] : m0[1]] + beta @ attributes.T
        params = unflatten_effects(
            flat[..., b0], main, flat[..., p0[0] : p0[1]], self.cardinalities
        )
        if self.num_segments:
            seg = flat[..., s0[0] : s0[1]]
            G, num_d = self.num_segments, self.num_segments * sum(self.cardinalities)
            params = unflatten_segment_effects(
                params, seg[..., :G], seg[..., G : G + num_d], seg[..., G + num_d :],
                self.cardinalities, G,
            )  # fmt: skip
        return params, beta

    def ravel(self, params: Params, beta) -> jax.Array:
        """The flat vector of residual ``params`` (main effects without ``A beta``) and
        ``beta``: :meth:`unravel`'s inverse for unbatched parameters."""
        flat, _ = ravel_pytree((params, jnp.asarray(beta)))
        return flat

    # --------------------------------------------------------------------------- design
    def design(self, codes, segments, attributes) -> Design:
        """The active columns and values of rows ``codes`` in ``segments``.

        Args:
            codes: ``(N, K)`` variant codes.
            segments: ``(N,)`` segment codes (ignored without segment terms).
            attributes: ``(sum n_k, B)`` attribute design (block diagonal, except the
                shared item effects' columns, which span their group's slots).

        Returns:
            A :class:`Design` whose columns follow the flat order, so that a Hessian built
            from it matches the gradient autodiff takes through ``logits``.
        """
        codes = np.asarray(codes, np.int64)
        seg = np.asarray(segments, np.int64).reshape(len(codes))
        card = self.cardinalities
        starts = np.concatenate([[0], np.cumsum(card)[:-1]]).astype(np.int64)
        cols, values = [], []
        # the components whose rows of A have entries in each column (one, unless shared)
        touches = [
            [c for c in range(len(card)) if np.any(attributes[starts[c] : starts[c] + card[c], j])]
            for j in range(self.num_beta)
        ]
        for block in self.blocks:
            k = block.index
            if block.kind == "intercept":
                col = np.zeros(len(codes), np.int64)
            elif block.kind == "main":
                col = block.offset + codes[:, k]
            elif block.kind == "pair":
                a, b = self.pairs[k]
                col = block.offset + codes[:, a] * card[b] + codes[:, b]
            elif block.kind == "segment_intercept":
                col = block.offset + seg
            elif block.kind == "segment_main":
                col = block.offset + seg * card[k] + codes[:, k]
            elif block.kind == "segment_pair":
                a, b = self.pairs[k]
                col = block.offset + (seg * card[a] + codes[:, a]) * card[b] + codes[:, b]
            else:  # beta: every row touches the coefficient with value sum_c A[x_c, j]
                col = np.full(len(codes), block.offset, np.int64)
                value = np.zeros(len(codes))
                for c in touches[k]:
                    value = value + attributes[starts[c] + codes[:, c], k]
                values.append((len(cols), value))
            cols.append(col)
        value = np.ones((len(codes), len(cols)), np.float64)
        for slot, v in values:
            value[:, slot] = v
        return Design(np.stack(cols, axis=1).astype(np.int32), value)

    # --------------------------------------------------------------------- scale groups
    def scale_groups(self, pooled: bool) -> ScaleGroups:
        """Prior scale groups: one per component, pair table, segment block and attribute
        coefficient, or (``pooled``) one for all main effects, one for all pair tables, one
        for all segment deviations and one for all segment pair deviations (the segment
        intercepts and the coefficients keep a group each).

        Args:
            pooled: pool the groups of one kind (``LaplaceOptions(scales="pooled")``).

        Returns:
            The :class:`ScaleGroups`.
        """
        shared = ("main", "pair", "segment_main", "segment_pair") if pooled else ()
        group = np.full(self.num_params, -1, np.int32)
        keys, first, per_group = {}, [], -1
        for block in self.blocks[1:]:
            per_group += 1
            key = (block.kind,) if block.kind in shared else (block.kind, block.index)
            if key not in keys:
                keys[key] = len(keys)
                first.append(per_group)
            group[block.offset : block.offset + block.size] = keys[key]
        size = np.bincount(group[group >= 0], minlength=len(keys)).astype(np.float64)
        return ScaleGroups(group, size, np.asarray(first, np.int32))

    def group_kinds(self) -> tuple[str, ...]:
        """The kind of each per-group (unpooled) scale group, in group order."""
        return tuple(b.kind for b in self.blocks[1:])


def design_indices(
    codes,
    cardinalities: tuple[int, ...],
    pairwise: bool,
    segments=None,
    num_segments: int = 0,
    segment_pairs: bool = False,
) -> np.ndarray:
    """Active flat column of each one-hot term per row, ``(N, C)`` int32 (no attributes).

    The columns of :meth:`ModelSpec.design` for a model without attribute coefficients.
    """
    G = int(num_segments)
    card = tuple(int(n) for n in cardinalities)
    spec = ModelSpec(card, bool(pairwise), "logit", G, bool(segment_pairs and pairwise and G))
    codes = np.asarray(codes)
    segs = np.zeros(len(codes)) if segments is None else segments
    return spec.design(codes, segs, np.zeros((sum(spec.cardinalities), 0))).columns


def _last(kinds) -> int:
    return max(KINDS.index(k) for k in kinds)
