"""Reductions of the grid engine: pairs of pure functions folded over the blocks of a pass.

Each is a :class:`~layoutopt.score.blocks.Reduction` ``(init, update)`` (optax's shape): the
posterior mean CTR (:func:`mean_ctr`), the interval's order statistics
(:func:`order_statistics`, or :func:`eta_rows` for a sort on the host), the per-draw max and
argmax (:func:`per_draw_argmax`, or :func:`per_draw_max` + :func:`resolve_argmax`), the running
top-k by mean CTR (:func:`top_k`) and the closed-form Gaussian statistics
(:func:`gaussian_stats`). :func:`transformed` feeds any of them a transform of the block's
values instead of eta (the traffic mix's mixture CTR, :mod:`layoutopt.score.target`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from layoutopt.model.core import Params, inv_link
from layoutopt.model.space import LayoutSpace
from layoutopt.score.blocks import (
    DEFAULT_GRID,
    Block,
    GridOptions,
    Reduction,
    block_allowed,
    block_eta,
    leaf_codes,
    leaf_table,
    plan,
)
from layoutopt.score.covariance import quadratic_form

__all__ = [
    "IDENTITY",
    "ArgmaxState",
    "TopKState",
    "ctr_of",
    "eta_rows",
    "gaussian_mean_ctr",
    "gaussian_moments",
    "gaussian_stats",
    "mean_ctr",
    "order_statistics",
    "per_draw_argmax",
    "per_draw_max",
    "resolve_argmax",
    "top_k",
    "transformed",
]


class ArgmaxState(NamedTuple):
    """State of :func:`per_draw_argmax`.

    Attributes:
        best_eta: ``(S,)`` running max eta per draw (-inf before any allowed layout).
        best_codes: ``(S, K)`` its layout.
    """

    best_eta: jax.Array
    best_codes: jax.Array


class TopKState(NamedTuple):
    """State of :func:`top_k`.

    Attributes:
        top_mean: ``(k,)`` the k highest posterior mean CTRs so far, highest first.
        top_codes: ``(k, K)`` their layouts.
    """

    top_mean: jax.Array
    top_codes: jax.Array


#: The ``link`` of values that are click-through rates already (the traffic mix's mixture
#: CTR): the reductions take them as they are.
IDENTITY = "identity"


def ctr_of(values: jax.Array, link: str) -> jax.Array:
    """CTR of a block's values: ``inv_link(eta, link)``, or the values for :data:`IDENTITY`."""
    return values if link == IDENTITY else inv_link(values, link)


def _masked_mean(block: Block, link: str) -> jax.Array:
    return jnp.where(block.ok, jnp.mean(ctr_of(block.eta, link), axis=0), -jnp.inf)


@functools.cache
def per_draw_argmax() -> Reduction:
    """Per-draw max and argmax of eta over the allowed layouts (for P(best), Thompson).

    Exact ties go to the lowest index (lowest position within a step, strict ``>`` across
    steps).
    """

    def init(S, K):
        return ArgmaxState(jnp.full((S,), -jnp.inf, jnp.float32), jnp.zeros((S, K), jnp.int32))

    def update(state, block):
        C = block.eta.shape[1]
        v = jnp.max(jnp.where(block.ok, block.eta, -jnp.inf), axis=1)
        first = jnp.min(jnp.where(block.ok & (block.eta == v[:, None]), jnp.arange(C), C), axis=1)
        at = block.codes_at(jnp.minimum(first, C - 1))
        better = v > state.best_eta
        return ArgmaxState(
            jnp.where(better, v, state.best_eta),
            jnp.where(better[:, None], at, state.best_codes),
        ), None

    return Reduction(init, update)


@functools.cache
def per_draw_max() -> Reduction:
    """Per-draw max of eta and the leaf block holding it: :func:`per_draw_argmax` in two steps.

    The pass keeps only the max and its leaf block (a max over the block's layouts, then a
    first-max over the step's few blocks); :func:`resolve_argmax` then finds the layout
    inside that one block per draw. One read of eta per step instead of two (the position
    search), for the same result (same float32 eta, same ties: lowest index). The state is an
    :class:`ArgmaxState` whose ``best_codes`` hold the block's prefix and leaf code 0.
    """

    def init(S, K):
        return ArgmaxState(jnp.full((S,), -jnp.inf, jnp.float32), jnp.zeros((S, K), jnp.int32))

    def update(state, block):
        Lf = block.leaf_codes.shape[0]
        S, C = block.eta.shape
        e = jnp.where(block.ok, block.eta, -jnp.inf).reshape(S, C // Lf, Lf)
        per_block = jnp.max(e, axis=2)  # (S, Pc)
        first = jnp.argmax(per_block, axis=1)  # first block with the max
        v = jnp.max(per_block, axis=1)
        better = v > state.best_eta
        at = block.codes_at(first * Lf)
        return ArgmaxState(
            jnp.where(better, v, state.best_eta),
            jnp.where(better[:, None], at, state.best_codes),
        ), None

    return Reduction(init, update)


@functools.partial(jax.jit, static_argnames=("plan",))
def _resolve_blocks(params, leaf, state, rules, *, plan):
    table = leaf_table(params, plan, leaf)
    best_pre = state.best_codes[:, : len(plan.prefix)]

    def one(p, t, pre, v):
        p1 = jax.tree.map(lambda a: a[None], p)
        eta = block_eta(p1, pre[None], t[None], plan)[0]  # (Lf,)
        ok = block_allowed(pre[None], leaf, rules, plan)
        hit = ok & (eta == v)
        # the same kernel gives the same float32 eta, so the max is found exactly; the
        # argmax is only a guard should a compiler ever sum in another order
        pos = jnp.where(jnp.any(hit), jnp.argmax(hit), jnp.argmax(jnp.where(ok, eta, -jnp.inf)))
        return jnp.concatenate([pre, leaf[pos]])

    codes = jax.vmap(one)(params, table, best_pre, state.best_eta)
    found = jnp.isfinite(state.best_eta)[:, None]
    return ArgmaxState(state.best_eta, jnp.where(found, codes, 0).astype(jnp.int32))


def resolve_argmax(
    params: Params, space: LayoutSpace, state: ArgmaxState, options: GridOptions = DEFAULT_GRID
) -> ArgmaxState:
    """The per-draw argmax from a :func:`per_draw_max` state (same ``params``, ``options``).

    Evaluates one leaf block per draw (S x Lf layouts): negligible next to the pass.
    Draws with no allowed layout (max -inf) keep codes 0, as :func:`per_draw_argmax` does.
    """
    pl = plan(space.cardinalities, options.max_leaf)
    rules = space.forbidden_arrays()
    return _resolve_blocks(params, leaf_codes(pl), state, rules, plan=pl)


@functools.cache
def mean_ctr(link: str) -> Reduction:
    """Stateless: outputs each layout's posterior mean CTR ``(C,)`` (-inf where not allowed)."""

    def update(state, block):
        return state, _masked_mean(block, link)

    return Reduction(lambda S, K: None, update)


@functools.cache
def order_statistics(ranks: tuple[int, ...]) -> Reduction:
    """Stateless: outputs the order statistics ``ranks`` of eta over the draws, ``(R, C)``.

    Sorted on the device (the path for accelerators).
    """
    idx = np.asarray(ranks)

    def update(state, block):
        return state, jnp.sort(block.eta, axis=0)[idx]

    return Reduction(lambda S, K: None, update)


@functools.cache
def eta_rows() -> Reduction:
    """Stateless: outputs eta layout-major, ``(C, S)``, for row-wise sorts on the host."""

    def update(state, block):
        return state, block.eta.T

    return Reduction(lambda S, K: None, update)


@functools.cache
def top_k(k: int, link: str) -> Reduction:
    """Running top-k of the allowed layouts by posterior mean CTR (earlier layouts win ties)."""

    def init(S, K):
        return TopKState(jnp.full((k,), -jnp.inf, jnp.float32), jnp.zeros((k, K), jnp.int32))

    def update(state, block):
        mean = _masked_mean(block, link)
        # the running rows come first, so earlier layouts win ties
        cm = jnp.concatenate([state.top_mean, mean])
        _, sel = jax.lax.top_k(cm, k)
        step = block.codes_at(jnp.maximum(sel - k, 0))
        codes = jnp.where((sel < k)[:, None], state.top_codes[jnp.minimum(sel, k - 1)], step)
        return TopKState(cm[sel], codes), None

    return Reduction(init, update)


def gaussian_mean_ctr(m: jax.Array, sd: jax.Array, link: str, nodes: int) -> jax.Array:
    """``E[inv_link(eta)]`` for ``eta ~ N(m, sd^2)`` (elementwise, in the dtype of ``m``).

    Probit: exactly ``Phi(m / sqrt(1 + sd^2))``. Logit: ``nodes``-point Gauss-Hermite
    quadrature, ``pi^-1/2 sum_i w_i sigmoid(m + sqrt(2) sd t_i)`` (accuracy: see
    ``layoutopt.score.scoring.GAUSS_HERMITE_NODES``).
    """
    if link == "probit":
        return jax.scipy.special.ndtr(m / jnp.sqrt(1.0 + sd**2))
    t, w = np.polynomial.hermite.hermgauss(nodes)
    t = jnp.asarray(np.sqrt(2.0) * t, m.dtype)
    w = jnp.asarray(w / np.sqrt(np.pi), m.dtype)
    return jnp.sum(w * inv_link(m[..., None] + sd[..., None] * t, link), axis=-1)


def gaussian_moments(eta: jax.Array, quad: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """``(m, sd)`` of eta from the rows of a stacked Gaussian batch.

    Rows 0 (eta under the mode), 1 (``x' D x``: tables holding prior variances) and 2...
    (the factor columns ``U_j``) give ``v = x' D x - sum_j (x . U_j)^2``, clamped at 0
    against rounding. With ``quad`` (``|U' x|^2`` from the covariance tables,
    :func:`layoutopt.score.covariance.quadratic_form`) the batch holds rows 0 and 1 only and
    ``v = x' D x - quad``. Run it in float64: the difference cancels for well-observed
    layouts.
    """
    if quad is None:
        u = eta[2:]
        quad = jnp.sum(u * u, axis=0)
    v = eta[1] - quad
    return eta[0], jnp.sqrt(jnp.maximum(v, 0.0))


@functools.cache
def gaussian_stats(link: str, nodes: int, components: tuple = ()) -> Reduction:
    """Stateless, over a stacked Gaussian batch (:func:`gaussian_moments`): outputs
    ``(3, C)``: mean CTR (-inf where not allowed), m and sd of eta.

    With ``components`` (static, :attr:`~layoutopt.score.covariance.CovarianceTables.
    components`) the batch holds the mode and variance rows only, and the covariance tables
    arrive as the pass's ``aux``: ``|U' x|^2`` is their sum at each layout's codes.
    """

    def update(state, block):
        quad = None
        if components:
            codes = block.codes_at(jnp.arange(block.eta.shape[1]))
            quad = quadratic_form(components, block.aux, codes)
        m, sd = gaussian_moments(block.eta, quad)
        mean = jnp.where(block.ok, gaussian_mean_ctr(m, sd, link, nodes), -jnp.inf)
        return state, jnp.stack([mean, m, sd])

    return Reduction(lambda S, K: None, update)


@functools.cache
def transformed(
    reduction: Reduction,
    values: Callable[[jax.Array, Any], jax.Array],
    rows_per_draw: int,
    admits: Callable[[jax.Array, Any], jax.Array] | None = None,
) -> Reduction:
    """``reduction`` fed ``values(block.eta, block.aux)`` in place of eta.

    ``values`` is static (hashable; one compilation per function); what varies between
    calls (the mix's shares) comes in as the pass's traced ``aux`` (``scan_grid(aux=...)``).

    The pass streams R = S x ``rows_per_draw`` parameter rows; ``values`` maps a block's
    ``(R, C)`` eta to the ``(S, C)`` values the reduction reduces (and :func:`ctr_of` reads),
    e.g. the mixture CTR of the traffic mix from its segment-folded rows. With
    ``rows_per_draw=1`` and the identity it is ``reduction`` itself, step for step.

    Args:
        reduction: any reduction of this module (or a :func:`compose` of them).
        values: ``(eta (R, C), aux) -> (S, C)``, traced inside the pass.
        rows_per_draw: R / S.
        admits: optional static ``(eta (R, C), aux) -> (C,)`` bool: layouts it rejects are
            treated as forbidden (``block.ok`` False), e.g. those failing a guardrail
            (:func:`layoutopt.score.objective.guardrail_admits`), judged from all of a
            layout's draws in the block.

    Returns:
        The wrapped :class:`Reduction`.
    """

    def init(R, K):
        return reduction.init(R // rows_per_draw, K)

    def update(state, block):
        ok = block.ok if admits is None else block.ok & admits(block.eta, block.aux)
        return reduction.update(state, block._replace(eta=values(block.eta, block.aux), ok=ok))

    return Reduction(init, update)
