"""Priors: the default hierarchical prior (:class:`PriorConfig`) and empirical-Bayes meta-priors.

A fit needs, for one space, a prior mean and scale for every block of parameters; that
resolved form is a :class:`PriorSpec`. :class:`PriorConfig` gives zero means and HalfNormal
hyperpriors on the scales (learned by the fit); a :class:`MetaPrior` learned from past
campaigns' posteriors gives one mean and one variance per *group* of parameters and fixes
them::

    b0        ~ N(mu_0, s_0^2)
    e_k[v]    ~ N(mu_k, s_k^2)          every variant of component k (seen before or not)
    p_kl[a,b] ~ N(mu_kl, s_kl^2)        every cell of the pair table (k, l)
    beta_k,j  ~ N(mu_kj, s_kj^2)        every attribute coefficient

so a variant never seen before starts from its component's group prior plus what its
attributes predict (``a_k(v) . beta_k``), never from a bare zero. Groups match across spaces
by component name (pairs by the two names, coefficients by component and column name);
groups a meta-prior does not know fall back to :class:`PriorConfig`'s defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy.special import ndtri

from layoutopt.model.core import effect_sizes
from layoutopt.model.space import LayoutSpace
from layoutopt.model.spec import ModelSpec

__all__ = [
    "DEFAULT_BASE_RATE",
    "Prior",
    "PriorConfig",
    "PriorSpec",
    "LINKS",
    "attribute_design",
    "resolve_prior",
]

LINKS = ("logit", "probit")
#: Supported prior scales (sd on the link scale); beyond them the fit loses precision
#: (a scale of 1e12 lets eta reach CTRs of exactly 0 or 1, where the draws become NaN).
SCALE_RANGE = (1e-6, 100.0)
#: The base rate of a prior that no data have set (``PriorConfig(base_rate=None)`` outside
#: a fit, and a fit of data without impressions).
DEFAULT_BASE_RATE = 0.05
#: Supported prior base rates.
BASE_RATE_RANGE = (1e-6, 1.0 - 1e-6)


def _check_number(name: str, value, low: float, high: float) -> None:
    ok = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
    if not ok or not low <= float(value) <= high:
        raise ValueError(f"{name} must be a number in [{low:g}, {high:g}], got {value!r}")


@dataclass(frozen=True)
class PriorConfig:
    """Prior and likelihood settings (frozen and hashable: static configuration).

    Setting one field never changes another: ``PriorConfig(pairwise=False)`` is the default
    prior with the pairwise terms left out, base rate included.

    Attributes:
        base_rate: prior guess of a typical click-through rate; centres ``b0`` at
            ``link(base_rate)``. None (the default): the pooled observed click-through
            rate of the data being fitted, set by ``fit``
            (:func:`layoutopt.infer.default_prior`); where no data are at hand
            (:meth:`spec` of a bare space) :data:`DEFAULT_BASE_RATE`.
        intercept_scale: prior sd of ``b0`` on the link scale.
        main_scale: scale of the HalfNormal prior on each component's effect sd ``sigma_k``.
        pair_scale: scale of the HalfNormal prior on each pair's interaction sd ``tau_kl``;
            smaller than ``main_scale`` by default because interactions are rarer and weaker.
        link: ``"logit"`` (default) or ``"probit"``.
        pairwise: include the pairwise interaction terms; ``False`` gives the additive model.
        attribute_scale: prior sd of each variant-attribute coefficient ``beta_k,j``
            (``N(0, attribute_scale^2)``); only used when the space declares attributes.
        segment_scale: scale of the HalfNormal priors on the segment scales ``omega_c`` (of
            the segment intercepts) and ``omega_k`` (of the segment x component
            deviations); only used when the space has segments.
        segment_pairs: give every segment its own deviation from each pair table (scales
            ``upsilon_kl ~ HalfNormal(pair_scale)``); by default pair tables are shared.
    """

    base_rate: float | None = None
    intercept_scale: float = 1.5
    main_scale: float = 1.0
    pair_scale: float = 0.5
    link: str = "logit"
    pairwise: bool = True
    attribute_scale: float = 0.5
    segment_scale: float = 0.5
    segment_pairs: bool = False

    def __post_init__(self):
        if self.base_rate is not None:
            _check_number("base_rate", self.base_rate, *BASE_RATE_RANGE)
        scales = ("intercept_scale", "main_scale", "pair_scale", "attribute_scale")
        for name in scales + ("segment_scale",):
            _check_number(name, getattr(self, name), *SCALE_RANGE)
        if self.link not in LINKS:
            raise ValueError(f"link must be one of {LINKS}, got {self.link!r}")

    @property
    def intercept_loc(self) -> float:
        """Prior mean of ``b0``: the base rate on the link scale (:data:`DEFAULT_BASE_RATE`
        while ``base_rate`` is None, i.e. not yet set from data)."""
        rate = DEFAULT_BASE_RATE if self.base_rate is None else self.base_rate
        return _link(rate, self.link)

    def resolve(self, spec: ModelSpec) -> Prior:
        """This prior for the model ``spec``: zero means, learned HalfNormal scales, the
        attribute coefficients at ``N(0, attribute_scale^2)`` (see :func:`resolve_prior`)."""
        return resolve_prior(spec, self.blocks(spec.cardinalities, spec.num_beta), self)

    def spec(self, space: LayoutSpace) -> PriorSpec:
        """This prior resolved for ``space``: zero means, learned HalfNormal scales."""
        return self.blocks(space.cardinalities, len(attribute_design(space)[1]))

    def blocks(self, cardinalities: tuple[int, ...], num_beta: int) -> PriorSpec:
        """The :class:`PriorSpec` of a model with these cardinalities and B coefficients."""
        sizes_m, sizes_p = effect_sizes(tuple(cardinalities), self.pairwise)
        return PriorSpec(
            intercept_loc=self.intercept_loc,
            intercept_scale=self.intercept_scale,
            main_loc=np.zeros(sum(sizes_m)),
            main_scale=np.full(len(sizes_m), self.main_scale),
            pair_loc=np.zeros(sum(sizes_p)),
            pair_scale=np.full(len(sizes_p), self.pair_scale),
            beta_loc=np.zeros(int(num_beta)),
            beta_scale=np.full(int(num_beta), self.attribute_scale),
            learn_scales=True,
        )


class PriorSpec(NamedTuple):
    """A prior resolved for one space: a mean and a scale per parameter block.

    Attributes:
        intercept_loc, intercept_scale: ``b0 ~ N(loc, scale^2)``.
        main_loc: ``(sum n_k,)`` prior mean of each residual main effect ``e_k[v]``.
        main_scale: ``(K,)`` per component: the HalfNormal hyperprior scale of ``sigma_k``
            when ``learn_scales``, else the fixed prior sd.
        pair_loc: ``(sum n_k n_l,)`` prior mean of each pair cell.
        pair_scale: ``(K(K-1)/2,)`` like ``main_scale``, for the pair tables (empty for
            the additive model).
        beta_loc, beta_scale: ``(B,)`` mean and sd of the attribute coefficients in the
            order of :func:`attribute_design` (always fixed, never learned).
        learn_scales: learn the effect scales from the data (default prior) or keep them
            fixed at ``main_scale`` / ``pair_scale`` (a meta-prior).
    """

    intercept_loc: float
    intercept_scale: float
    main_loc: np.ndarray
    main_scale: np.ndarray
    pair_loc: np.ndarray
    pair_scale: np.ndarray
    beta_loc: np.ndarray
    beta_scale: np.ndarray
    learn_scales: bool


class Prior(NamedTuple):
    """The prior of every flat parameter of a :class:`~layoutopt.model.spec.ModelSpec`.

    Both :class:`PriorConfig` and a meta-prior resolve to it, so a fitter reads one form.
    ``loc`` is laid out like the flat parameters (``spec.unravel(loc, A)`` gives it shaped
    like ``Params``); ``scale`` and ``learned`` have one entry per (unpooled) scale group of
    ``spec.scale_groups(pooled=False)``: one per component, pair table, segment block and
    attribute coefficient.

    Attributes:
        loc: ``(P,)`` prior mean of every parameter; ``loc[0]`` is the intercept's.
        scale: ``(G,)`` the HalfNormal hyperprior scale of the group's sd where it is
            learned, else the group's fixed prior sd.
        learned: ``(G,)`` bool, whether the group's sd is learned from the data.
        intercept_scale: prior sd of the intercept.
    """

    loc: np.ndarray
    scale: np.ndarray
    learned: np.ndarray
    intercept_scale: float


def resolve_prior(spec: ModelSpec, blocks: PriorSpec, config: PriorConfig) -> Prior:
    """The :class:`Prior` of ``spec`` from a block-wise :class:`PriorSpec`.

    Main and pair groups take ``blocks``' scales (learned when ``blocks.learn_scales``);
    segment groups ``config.segment_scale`` (segment pairs ``config.pair_scale``), always
    learned; attribute coefficients ``blocks.beta_scale``, never learned.

    Args:
        spec: the model.
        blocks: means and scales per block (:meth:`PriorConfig.spec`, ``MetaPrior.spec``).
        config: the prior settings (segment scales).

    Returns:
        The :class:`Prior`.
    """
    num_seg = spec.span("segment_intercept", "segment_main", "segment_pair")
    loc = np.concatenate(
        [[blocks.intercept_loc], blocks.main_loc, blocks.pair_loc,
         np.zeros(num_seg[1] - num_seg[0]), blocks.beta_loc]
    ).astype(np.float64)  # fmt: skip
    learn = bool(blocks.learn_scales)
    table = {
        "main": (blocks.main_scale, learn),
        "pair": (blocks.pair_scale, learn),
        "segment_intercept": ([config.segment_scale], True),
        "segment_main": (np.full(spec.num_components, config.segment_scale), True),
        "segment_pair": (np.full(len(spec.pairs), config.pair_scale), True),
        "beta": (blocks.beta_scale, False),
    }
    scale, learned = [], []
    for block in spec.blocks[1:]:
        values, is_learned = table[block.kind]
        scale.append(float(values[block.index]))
        learned.append(is_learned)
    return Prior(
        loc,
        np.asarray(scale, np.float64),
        np.asarray(learned, bool),
        float(blocks.intercept_scale),
    )


def attribute_design(space: LayoutSpace) -> tuple[np.ndarray, list[str]]:
    """Attribute design of all components, and the coefficient names.

    The variant attributes of each component form a block of their own (block diagonal).
    With ``space.shared_effects``, every distinct group adds one column per item, 1 in the
    rows of that item in each of the group's slots: its coefficient is the item's effect
    shared by the slots, ``m_k[v] = s[v] + e_k[v]``.

    Returns:
        ``(A, names)``: ``A`` has shape ``(sum n_k, B)`` so that the flat main effects are
        ``A @ beta + e``; ``names[j]`` is ``"<component>:<column>"``, or
        ``"<slot>+<slot>...:<item>"`` for a shared item effect.
    """
    blocks, names = [], []
    for k, comp in enumerate(space.components):
        blocks.append(space.attribute_matrix(k))
        names += [f"{comp}:{c}" for c in space.attribute_columns(k)]
    groups = space.distinct if space.shared_effects else ()
    num_shared = sum(space.cardinalities[g[0]] for g in groups)
    A = np.zeros((sum(space.cardinalities), len(names) + num_shared))
    row = col = 0
    for b in blocks:
        A[row : row + b.shape[0], col : col + b.shape[1]] = b
        row, col = row + b.shape[0], col + b.shape[1]
    starts = np.concatenate([[0], np.cumsum(space.cardinalities)])
    for g in groups:
        n = space.cardinalities[g[0]]
        for k in g:
            A[starts[k] : starts[k] + n, col : col + n] = np.eye(n)
        label = "+".join(space.components[k] for k in g)
        names += [f"{label}:{item}" for item in space.variants[g[0]]]
        col += n
    return A, names


# ---------------------------------------------------------------------------------- helpers
def _link(rate: float, link: str) -> float:
    if link == "logit":
        return float(np.log(rate / (1.0 - rate)))
    return float(ndtri(rate))
