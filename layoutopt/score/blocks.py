"""The leaf-block kernel of the grid engine: the space as a run of dense blocks of eta.

In mixed-radix order (last component fastest) the space is a run of *leaf blocks*: the
leading P components (the prefix) are fixed and the trailing L components (the leaf) run over
their full product of Lf layouts. For a fixed prefix ``x_pre`` and draw s::

    eta_s(x_pre, y) = c_s(x_pre) + T_s[y] + sum_{j in leaf} U_s,j(x_pre)[y_j]

(see :mod:`layoutopt.score.grid`). This module holds the static split (:class:`Plan`), the
tables and the block's eta (:func:`block_eta`, :func:`codes_eta` for explicit layouts), the
rule masks (forbidden rules and distinct groups), the :class:`Block` a reduction sees and
the :class:`Reduction` type with :func:`compose`. The pass itself is
:func:`layoutopt.score.grid.scan_grid`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from layoutopt.model.core import Params, logits, pair_list
from layoutopt.model.space import LayoutSpace
from layoutopt.model.space_rules import RuleArrays

__all__ = [
    "DEFAULT_GRID",
    "DEFAULT_MEMORY_BUDGET",
    "Block",
    "GridOptions",
    "Plan",
    "Reduction",
    "allowed",
    "as_params",
    "block_allowed",
    "block_eta",
    "check_params",
    "chunk_codes",
    "codes_eta",
    "compose",
    "leaf_codes",
    "leaf_table",
    "mesh_sharding",
    "plan",
    "platform_of",
    "prefix_codes",
]

#: Default device-memory budget of one enumeration chunk (bytes).
DEFAULT_MEMORY_BUDGET = 256 * 2**20


class GridOptions(NamedTuple):
    """Tunables of a pass (hashable; results never depend on them, only speed does).

    Attributes:
        max_leaf: largest leaf block (product of the trailing components' cardinalities).
        step_elems: eta floats (S x layouts) per scan step on CPU: in practice one leaf block
            per step (fastest measured on the 2-core machine, benchmarks/README.md).
        host_sort_platforms: platforms whose per-layout order statistics are sorted on the
            host (numpy), not on the device.
        closed_form: how the closed-form pass evaluates the variance's ``|U' x|^2``:
            ``"auto"``, ``"factor"`` or ``"tables"`` (:func:`layoutopt.score.covariance.
            closed_form`).
    """

    max_leaf: int = 1024
    step_elems: int = 2**16
    host_sort_platforms: tuple[str, ...] = ("cpu",)
    closed_form: str = "auto"


#: The default tunables.
DEFAULT_GRID = GridOptions()


# ------------------------------------------------------------------------------ helpers
def chunk_codes(start_digits: jax.Array, cardinalities: tuple[int, ...], chunk: int):
    """Codes of the ``chunk`` consecutive layouts from the one with digits ``start_digits``.

    Mixed-radix addition of a local int32 offset to exact start digits: no global index is
    ever formed on the device, so spaces beyond 2^31 (or 2^63) layouts are fine. Positions
    past the end of the space wrap around; callers mask them with a valid count.
    """
    carry = jnp.arange(chunk, dtype=jnp.int32)
    cols = [None] * len(cardinalities)
    for k in range(len(cardinalities) - 1, -1, -1):
        total = carry + start_digits[k]
        n = cardinalities[k]
        cols[k] = total % n
        carry = total // n
    return jnp.stack(cols, axis=-1)


def allowed(codes: jax.Array, rules: RuleArrays) -> jax.Array:
    """True where a ``(..., K)`` code array matches no rule of the space (traced).

    ``rules`` is :meth:`LayoutSpace.forbidden_arrays`: forbidden rules and distinct groups.
    """
    wanted, active, pairs = rules
    ok = jnp.ones(codes.shape[:-1], dtype=bool)
    if wanted.shape[0]:
        match = (codes[..., None, :] == wanted) | ~active  # (..., R, K)
        ok = ~jnp.any(jnp.all(match, axis=-1), axis=-1)
    if pairs.shape[0]:
        ok &= ~jnp.any(codes[..., pairs[:, 0]] == codes[..., pairs[:, 1]], axis=-1)
    return ok


def as_params(params: Params, batched: bool = True) -> Params:
    """``params`` as float32 arrays; with ``batched``, checks the leading draw axis."""
    p = jax.tree.map(lambda a: jnp.asarray(a, dtype=jnp.float32), params)
    if batched and jnp.ndim(p.intercept) != 1:
        raise ValueError(
            "params must carry one leading draw axis (intercept of shape (S,)), "
            f"got intercept shape {jnp.shape(p.intercept)}"
        )
    return p


def check_params(params: Params, space: LayoutSpace) -> None:
    """Raise a ValueError when the tables of ``params`` do not fit ``space``."""
    card = space.cardinalities
    if len(params.main) != len(card):
        raise ValueError(
            f"params have {len(params.main)} main-effect tables but the space has "
            f"{len(card)} components"
        )
    for k, (m, n) in enumerate(zip(params.main, card, strict=True)):
        if jnp.shape(m)[-1] != n:
            raise ValueError(
                f"main-effect table of component {space.components[k]!r} has "
                f"{jnp.shape(m)[-1]} entries, the space has {n} variants"
            )
    if params.pair and len(params.pair) != len(pair_list(len(card))):
        raise ValueError(
            f"params have {len(params.pair)} pair tables, expected {len(pair_list(len(card)))}"
        )


def mesh_sharding(devices):
    """A 1-D NamedSharding over ``devices`` for the layout axis (None for one device)."""
    devices = list(jax.devices() if devices is None else devices)
    if len(devices) <= 1:
        return None, 1
    mesh = jax.sharding.Mesh(np.asarray(devices), ("layouts",))
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("layouts")), len(devices)


def platform_of(devices) -> str:
    """Platform (``"cpu"``, ``"gpu"``, ...) of the first of ``devices`` (default: visible)."""
    return (jax.devices() if devices is None else list(devices))[0].platform


# --------------------------------------------------------------------------- leaf blocks
class Plan(NamedTuple):
    """Static split of the components into prefix and leaf (hashable: a jit static arg).

    Attributes:
        prefix: cardinalities of the leading components.
        leaf: cardinalities of the trailing components (at least one).
    """

    prefix: tuple[int, ...]
    leaf: tuple[int, ...]

    @property
    def leaf_size(self) -> int:
        """Layouts per leaf block."""
        return math.prod(self.leaf)

    @property
    def num_prefixes(self) -> int:
        """Leaf blocks in the space."""
        return math.prod(self.prefix)


def plan(cardinalities: tuple[int, ...], max_leaf: int = DEFAULT_GRID.max_leaf) -> Plan:
    """The longest run of trailing components whose product is at most ``max_leaf``."""
    K = len(cardinalities)
    L = 1
    while L < K and math.prod(cardinalities[K - L - 1 :]) <= max_leaf:
        L += 1
    return Plan(tuple(cardinalities[: K - L]), tuple(cardinalities[K - L :]))


def _split_params(params: Params, P: int):
    """(prefix Params, leaf Params with zero intercept, cross pairs [(k, j, table)])."""
    K = len(params.main)
    pre_pairs, leaf_pairs, cross = [], [], []
    pairs = pair_list(K) if params.pair else []
    for (k, j), t in zip(pairs, params.pair, strict=True):
        if j < P:
            pre_pairs.append(t)
        elif k >= P:
            leaf_pairs.append(t)
        else:
            cross.append((k, j, t))
    pre = Params(params.intercept, tuple(params.main[:P]), tuple(pre_pairs))
    leaf = Params(jnp.zeros_like(params.intercept), tuple(params.main[P:]), tuple(leaf_pairs))
    return pre, leaf, cross


def leaf_codes(plan: Plan) -> np.ndarray:
    """All ``Lf`` leaf code tuples in mixed-radix order, ``(Lf, L)`` int32."""
    return np.indices(plan.leaf, dtype=np.int32).reshape(len(plan.leaf), -1).T.copy()


@functools.partial(jax.jit, static_argnames=("plan",))
def leaf_table(params: Params, plan: Plan, codes: np.ndarray):
    """eta ``(S, Lf)`` of the leaf model (leaf mains and pairs, zero intercept)."""
    _, leaf, _ = _split_params(params, len(plan.prefix))
    return jax.vmap(logits, in_axes=(0, None))(leaf, jnp.asarray(codes))


def block_eta(params: Params, pre_codes, table, plan: Plan):
    """eta ``(S, Pc * Lf)`` of ``Pc`` whole leaf blocks with prefixes ``pre_codes`` (Pc, P)."""
    P, L = len(plan.prefix), len(plan.leaf)
    S, Pc = params.intercept.shape[0], pre_codes.shape[0]
    pre, _, cross = _split_params(params, P)
    c = jax.vmap(logits, in_axes=(0, None))(pre, pre_codes)  # (S, Pc)
    eta = c.reshape((S, Pc) + (1,) * L) + table.reshape((S, 1) + plan.leaf)
    for j in range(P, P + L):
        u = None
        for k, jj, t in cross:
            if jj == j:
                g = t[:, pre_codes[:, k], :]  # (S, Pc, n_j)
                u = g if u is None else u + g
        if u is not None:
            shape = [S, Pc] + [1] * L
            shape[2 + j - P] = plan.leaf[j - P]
            eta = eta + u.reshape(shape)
    return eta.reshape(S, Pc * plan.leaf_size)


def codes_eta(params: Params, codes, table, plan: Plan):
    """eta ``(S, n)`` of explicit layouts ``codes`` (n, K), summed as :func:`block_eta` does.

    The same float32 additions in the same order as the block kernel, so a layout's eta (and
    its interval) is bit-identical whether it is scored in a grid or on its own.
    """
    P, L = len(plan.prefix), len(plan.leaf)
    pre, _, cross = _split_params(params, P)
    c = jax.vmap(logits, in_axes=(0, None))(pre, codes[:, :P])  # (S, n)
    leaf_idx = jnp.zeros(codes.shape[0], jnp.int32)
    for j in range(P, P + L):
        leaf_idx = leaf_idx * plan.leaf[j - P] + codes[:, j]
    eta = c + table[:, leaf_idx]
    for j in range(P, P + L):
        u = None
        for k, jj, t in cross:
            if jj == j:
                g = t[:, codes[:, k], codes[:, j]]  # (S, n)
                u = g if u is None else u + g
        if u is not None:
            eta = eta + u
    return eta


def prefix_codes(start_digits, plan: Plan, n: int):
    """Codes ``(n, P)`` of ``n`` consecutive prefixes from ``start_digits``."""
    if not plan.prefix:
        return jnp.zeros((n, 0), jnp.int32)
    return chunk_codes(start_digits, plan.prefix, n)


def block_allowed(pre_codes, leaf, rules: RuleArrays, plan: Plan):
    """``(Pc * Lf,)`` True where the layout (prefix, leaf) matches no rule of the space.

    A forbidden rule is matched on the prefix and on the leaf apart, then combined (never
    a ``(Pc, Lf, R, K)`` array); a distinct group compares each of its pairs of slots as
    one ``(Pc, Lf)`` array, small next to eta's ``(S, Pc * Lf)``.
    """
    wanted, active, pairs = rules
    Pc, Lf = pre_codes.shape[0], leaf.shape[0]
    ok = jnp.ones((Pc, Lf), bool)
    P = len(plan.prefix)
    if wanted.shape[0]:
        pre_hit = jnp.all((pre_codes[:, None, :] == wanted[:, :P]) | ~active[:, :P], axis=-1)
        leaf_hit = jnp.all((leaf[:, None, :] == wanted[:, P:]) | ~active[:, P:], axis=-1)
        ok = ~jnp.any(pre_hit[:, None, :] & leaf_hit[None, :, :], axis=-1)  # (Pc, Lf)
    for q in range(pairs.shape[0]):  # a few pairs of slots; each a (Pc, Lf) comparison
        k, l = pairs[q, 0], pairs[q, 1]
        ok &= _block_column(pre_codes, leaf, k, P) != _block_column(pre_codes, leaf, l, P)
    return ok.reshape(-1)


def _block_column(pre_codes, leaf, k, P: int):
    """Codes ``(Pc, Lf)`` of component ``k`` (traced) over a block: a prefix column
    broadcast along the leaf, or a leaf column broadcast along the prefixes."""
    from_leaf = leaf[:, jnp.maximum(k - P, 0)][None, :]
    if P == 0:
        return jnp.broadcast_to(from_leaf, (pre_codes.shape[0], leaf.shape[0]))
    return jnp.where(k < P, pre_codes[:, jnp.minimum(k, P - 1)][:, None], from_leaf)


# ----------------------------------------------------------------------------- reductions
class Block(NamedTuple):
    """One scan step's layouts, as a reduction's ``update`` sees them.

    Attributes:
        eta: ``(S, C)`` float32 linear predictor of the step's C layouts (consecutive indices).
        ok: ``(C,)`` True where the layout is allowed and inside the space.
        pre_codes: ``(Pc, P)`` codes of the step's prefixes.
        leaf_codes: ``(Lf, L)`` codes of the leaf block (C = Pc * Lf).
        aux: the pass's traced operands beyond the parameters (a pytree; ``()`` unless a
            :func:`~layoutopt.score.reductions.transformed` reduction reads them, e.g. the
            traffic mix's segment shares). Traced, so new values never recompile the pass.
    """

    eta: jax.Array
    ok: jax.Array
    pre_codes: jax.Array
    leaf_codes: jax.Array
    aux: Any = ()

    def codes_at(self, i: jax.Array) -> jax.Array:
        """``(..., K)`` codes of the step's layouts at positions ``i``."""
        Lf = self.leaf_codes.shape[0]
        return jnp.concatenate([self.pre_codes[i // Lf], self.leaf_codes[i % Lf]], axis=-1)


class Reduction(NamedTuple):
    """A reduction over the grid: a pair of pure functions (optax-style).

    Attributes:
        init: ``init(num_draws, num_components) -> state`` (a pytree of arrays, or None).
        update: ``update(state, block) -> (state, output)``: folds one :class:`Block` into the
            state; ``output`` (a pytree or None) is stacked over the steps of a call and
            handed to :func:`scan_grid`'s ``on_chunk``.
    """

    init: Callable[[int, int], Any]
    update: Callable[[Any, Block], tuple[Any, Any]]


@functools.cache
def compose(*reductions: Reduction) -> Reduction:
    """Run several reductions in one pass: the state and output are tuples, one per part."""

    def init(S, K):
        return tuple(r.init(S, K) for r in reductions)

    def update(state, block):
        pairs = [r.update(s, block) for r, s in zip(reductions, state, strict=True)]
        return tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)

    return Reduction(init, update)
