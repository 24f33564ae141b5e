"""The closed-form variance of eta from covariance tables: a cost independent of r.

A Laplace posterior's eta is ``N(m(x), v(x))`` with ``v(x) = x' D x - |U' x|^2``
(:class:`~layoutopt.infer.posterior.GaussianPosterior`), U holding one column per distinct
observed layout. Scored row by row, ``|U' x|^2`` costs r table sums per layout, and r grows
with every round of a campaign. But x activates only the terms ``t`` of one layout (the
intercept, one entry of each main table, one of each pair table), so::

    |U' x|^2 = sum_{t, t'} G_{t t'}[x_t, x_t'],   G_{t t'} = sum_j U_j,t (x) U_j,t'

a sum over pairs of active terms of tables indexed by the codes of the components the two
terms touch: at most four with pairs (two pairs), two in the additive model. Each such table
is added (broadcast) into one table over a set of ``min(K, 4)`` components that contains
it, so the whole quadratic form is ``sum_S H_S[x_S]`` over the C(K, 4) four-component sets:
C(K, 4) look-ups per layout whatever r is, and tables of ``sum_S prod_{k in S} n_k`` floats
built once by matrix products over r. Exact (float64 sums in another order).

:func:`covariance_tables` builds them, :func:`quadratic_form` evaluates them at codes inside
a kernel, :func:`prefer_tables` chooses between them and the r factor rows, and
:func:`closed_form` hands a pass what it streams.
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from threadpoolctl import threadpool_limits

from layoutopt.infer.posterior import GaussianPosterior
from layoutopt.model.core import Params, pair_list

__all__ = [
    "CLOSED_FORMS",
    "TABLES_MAX_BYTES",
    "TABLES_MAX_SETS",
    "CovarianceTables",
    "closed_form",
    "covariance_tables",
    "prefer_tables",
    "quadratic_form",
    "table_bytes",
    "table_sets",
]

#: How a pass evaluates ``|U' x|^2``: chosen by cost, the r factor rows, or the tables.
CLOSED_FORMS = ("auto", "factor", "tables")

#: Largest total size of the covariance tables (float64 bytes) the closed form may build.
TABLES_MAX_BYTES = 64 * 2**20

#: Most tables (component sets) a pass may look up: each is one gather in the compiled
#: kernel, unrolled (C(14, 4) = 1,001 sets for 14 components with pairs).
TABLES_MAX_SETS = 1000


class CovarianceTables(NamedTuple):
    """``|U' x|^2`` as a sum of look-ups: ``sum_i tables[i][x[components[i]]]``.

    Attributes:
        components: static: the component indices (increasing) each table is indexed by.
        tables: float64 arrays, ``tables[i]`` of shape ``(n_k for k in components[i])``.
    """

    components: tuple[tuple[int, ...], ...]
    tables: tuple[np.ndarray, ...]


def _terms(num_components: int, pairs: bool) -> list[tuple[int, ...]]:
    """The model's terms by the components they read: (), (k,), then (k, l) pairs."""
    terms = [()] + [(k,) for k in range(num_components)]
    return terms + (list(pair_list(num_components)) if pairs else [])


def _set_size(num_components: int, pairs: bool) -> int:
    return min(num_components, 4 if pairs else 2)


def table_sets(num_components: int, pairs: bool) -> list[tuple[int, ...]]:
    """The component sets of the tables: every ``min(K, 2 x term order)``-subset."""
    return list(itertools.combinations(range(num_components), _set_size(num_components, pairs)))


def table_bytes(cardinalities: tuple[int, ...], pairs: bool) -> int:
    """float64 bytes of the tables of a space (:func:`table_sets`), without listing them:
    ``8 e_m(n_1, ..., n_K)``, the elementary symmetric polynomial of the cardinalities."""
    m = _set_size(len(cardinalities), pairs)
    e = [1] + [0] * m  # e[j]: sum over j-subsets of the components seen so far
    for n in cardinalities:
        for j in range(m, 0, -1):
            e[j] += e[j - 1] * int(n)
    return 8 * e[m]


def prefer_tables(cardinalities: tuple[int, ...], pairs: bool, rank: int) -> bool:
    """Whether the tables are the cheaper exact path for factor rank ``rank``.

    Per layout the factor rows cost ``rank`` table sums and squares, the tables one
    look-up per set; measured on 2 cores (``benchmarks/bench_scoring.py``), 70 tables cost
    about what 32 factor rows do, so the tables are taken when there are fewer than twice
    as many as factor rows. They must also fit :data:`TABLES_MAX_BYTES` and
    :data:`TABLES_MAX_SETS`.
    """
    sets, nbytes = _size(cardinalities, pairs)
    return sets < 2 * rank and sets <= TABLES_MAX_SETS and nbytes <= TABLES_MAX_BYTES


def _size(cardinalities: tuple[int, ...], pairs: bool) -> tuple[int, int]:
    """``(number of tables, their float64 bytes)`` of a space, without building them."""
    num_sets = math.comb(len(cardinalities), _set_size(len(cardinalities), pairs))
    return num_sets, table_bytes(cardinalities, pairs)


def _factor_terms(factor: Params, pairs: bool) -> list[np.ndarray]:
    """The factor's tables per term (:func:`_terms` order), each ``(n..., r)`` float64 and
    C-contiguous (the r axis last: every Gram below is a matrix product over it)."""
    parts = [factor.intercept] + list(factor.main) + (list(factor.pair) if pairs else [])
    return [np.ascontiguousarray(np.moveaxis(np.asarray(p, np.float64), 0, -1)) for p in parts]


class _Terms:
    """The factor's term tables, reordered with given components first on demand (cached:
    a pair term is reordered at most once per choice of its shared component)."""

    def __init__(self, terms, parts):
        self.terms, self.parts, self.cache = terms, parts, {}

    def ordered(self, i: int, first: tuple[int, ...]) -> np.ndarray:
        """Term ``i``'s table with the components ``first`` leading, then the others."""
        t = self.terms[i]
        order = list(first) + [k for k in t if k not in first]
        if order == list(t):
            return self.parts[i]
        key = (i, tuple(order))
        if key not in self.cache:
            perm = [t.index(k) for k in order] + [len(t)]
            self.cache[key] = np.ascontiguousarray(self.parts[i].transpose(perm))
        return self.cache[key]


def _gram(terms: _Terms, i: int, j: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """``sum_r a_r (x) b_r`` of terms i and j over the union of their components (shared
    ones on the diagonal), as an array over the sorted union: a matrix product over r,
    batched over the shared components (BLAS)."""
    ta, tb = terms.terms[i], terms.terms[j]
    shared = tuple(k for k in ta if k in tb)
    a, b = terms.ordered(i, shared), terms.ordered(j, shared)
    r = a.shape[-1]
    ns = a.shape[: len(shared)]
    s = math.prod(ns)
    g = np.matmul(a.reshape(s, -1, r), np.swapaxes(b.reshape(s, -1, r), 1, 2))
    order = list(shared) + [k for k in ta if k not in shared] + [k for k in tb if k not in shared]
    g = g.reshape(ns + a.shape[len(shared) : -1] + b.shape[len(shared) : -1])
    union = tuple(sorted(order))
    return g.transpose([order.index(k) for k in union]), union


def covariance_tables(factor: Params, cardinalities: tuple[int, ...]) -> CovarianceTables:
    """The tables of ``|U' x|^2`` from the factor tables of a Gaussian posterior.

    Args:
        factor: :class:`Params` with a leading axis of length r: the columns of U as tables
            (``GaussianPosterior.factor``, segments folded in).
        cardinalities: the space's variants per component.

    Returns:
        :class:`CovarianceTables` over :func:`table_sets`.
    """
    K = len(cardinalities)
    pairs = bool(factor.pair)
    terms = _Terms(_terms(K, pairs), _factor_terms(factor, pairs))
    sets = table_sets(K, pairs)
    tables = [np.zeros([cardinalities[k] for k in s]) for s in sets]
    home = {}
    for i, j in itertools.combinations_with_replacement(range(len(terms.terms)), 2):
        g, union = _gram(terms, i, j)
        if union not in home:  # the first set holding the union (lexicographic order)
            q = next(q for q, s in enumerate(sets) if set(union) <= set(s))
            home[union] = q, [cardinalities[k] if k in union else 1 for k in sets[q]]
        q, shape = home[union]
        tables[q] += (g if i == j else 2.0 * g).reshape(shape)
    return CovarianceTables(tuple(sets), tuple(tables))


def quadratic_form(components: tuple[tuple[int, ...], ...], tables, codes):
    """``sum_i tables[i][codes[..., components[i]]]`` (traced; ``codes`` ``(..., K)`` int).

    Args:
        components: static: :attr:`CovarianceTables.components`.
        tables: the tables (arrays, traced).
        codes: layouts' variant codes.

    Returns:
        ``(...)`` float in the tables' dtype.
    """
    total = None
    for comps, t in zip(components, tables, strict=True):
        idx = jnp.zeros(codes.shape[:-1], jnp.int32)
        for pos, k in enumerate(comps):
            idx = idx * t.shape[pos] + codes[..., k]
        v = jnp.reshape(t, (-1,))[idx]
        total = v if total is None else total + v
    return total


def closed_form(gauss: GaussianPosterior, cardinalities: tuple[int, ...], how: str = "auto"):
    """What a closed-form pass streams: ``(rows, components, tables)``.

    Args:
        gauss: the Laplace Gaussian (a segment folded in).
        cardinalities: the space's variants per component.
        how: one of :data:`CLOSED_FORMS`: ``"auto"`` takes the tables where
            :func:`prefer_tables` says they are cheaper; ``"factor"`` and ``"tables"``
            insist (the answers agree to float64 rounding; only the speed differs).

    Returns:
        ``rows``: float64 :class:`Params` ``[mode; var]``, followed by the r factor columns
        when the tables are not used; ``components`` and ``tables``: the
        :class:`CovarianceTables` fields (``()`` and ``()`` without them).
    """
    if how not in CLOSED_FORMS:
        raise ValueError(f"closed_form={how!r} is not valid; valid: {CLOSED_FORMS}")
    pairs = bool(gauss.factor.pair)
    use = how == "tables" or (how == "auto" and prefer_tables(cardinalities, pairs, gauss.rank))
    if not use:
        return gauss.stacked(), (), ()
    sets, nbytes = _size(cardinalities, pairs)
    if nbytes > TABLES_MAX_BYTES or sets > TABLES_MAX_SETS:
        raise ValueError(
            f"the covariance tables of this space would be {sets:,} tables of "
            f"{nbytes / 2**20:,.1f} MiB in all, above the {TABLES_MAX_SETS:,} tables and "
            f"{TABLES_MAX_BYTES / 2**20:,.0f} MiB a pass may use: use "
            "GridOptions(closed_form='factor') or 'auto'"
        )
    rows = gauss.stacked(factor=False)
    # one BLAS thread: OpenBLAS's idle threads spin after each product and took the cores
    # from XLA's passes that follow (the draws' pass ran 1.8x slower, measured)
    with threadpool_limits(1, user_api="blas"):
        tables = covariance_tables(gauss.factor, cardinalities)
    return rows, tables.components, tables.tables
