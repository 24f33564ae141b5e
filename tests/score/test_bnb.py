"""The draw-batched branch and bound against enumeration and the per-draw loop."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from conftest import numpy_eta
from test_optimize import brute_force, eta_of, make_space, random_params

from layoutopt.model.core import Params, pair_list
from layoutopt.score import bnb
from layoutopt.score.grid import as_params as _as_params
from layoutopt.score.optimize import _argmax_exact, _argmax_exact_loop, certified_argmax

RULES = ({"c0": "v1", "c2": "v3"}, {"c1": "v0"}, {"c3": "v1", "c4": "v0", "c0": "v2"})

SMALL = [
    ((7,), (), 0.5, 0.0, 0),  # one component: the last level alone
    ((4, 6), ({"c0": "v1", "c1": "v2"},), 0.3, 0.5, 1),  # two: the exact completion alone
    ((3, 5, 4, 2, 3), RULES, 0.2, 0.4, 2),  # unequal sizes (reduceat), rules at every depth
    ((6, 6, 6, 6, 6), (), 0.1, 0.4, 3),  # equal sizes, per-draw orders, pair-dominated
]


@pytest.mark.parametrize("card, rules, ms, ps, seed", SMALL)
@pytest.mark.parametrize("batch_elems", [1, None])
def test_batched_matches_brute_force(card, rules, ms, ps, seed, batch_elems):
    space = make_space(card, rules)
    params = _as_params(random_params(card, 24, seed, ms, ps))
    codes, eta = brute_force(params, space)
    want_eta = eta.max(axis=1)
    t = bnb.prepare(jax.tree.map(np.asarray, params), space.cardinalities, space.forbidden)
    # a poor incumbent (the lowest allowed eta) makes the search do the work itself
    worst = codes[np.argmin(np.where(np.isfinite(eta), eta, np.inf), axis=1)]
    x, val, ub, nodes = bnb.branch_and_bound(t, bnb.eta64(t, worst), 10**6, batch_elems)
    assert (x >= 0).all() and space.allowed_mask(x.astype(np.int32)).all()
    # both sum the float32 tables in float64, in different orders (rounding ~1e-15)
    np.testing.assert_allclose(val, want_eta, rtol=0, atol=1e-9)
    np.testing.assert_allclose(eta_of(params, x.astype(np.int32)), want_eta, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(ub, val)  # searched to the end: the bound is the optimum
    np.testing.assert_allclose(bnb.eta64(t, x), val, rtol=0, atol=1e-12)
    assert (nodes > 0).all()


@pytest.mark.parametrize(
    "card, rules", [((10,) * 7, ()), ((6, 9, 7, 8, 6, 9, 7), RULES), ((5, 4, 6, 3, 5, 4), ())]
)
def test_batched_equals_per_draw_loop(card, rules):
    space = make_space(card, rules)
    params = _as_params(random_params(card, 16, 5, 0.3, 0.15))
    x_loop, c_loop = _argmax_exact_loop(params, space, 0, 16, 10**6)
    x_batch, c_batch = _argmax_exact(params, space, 0, 16, 10**6)
    np.testing.assert_array_equal(x_batch, x_loop)  # continuous draws: no exact ties
    assert all(c.optimal for c in c_loop) and all(c.optimal for c in c_batch)
    np.testing.assert_allclose(
        [c.upper_bound for c in c_batch], [c.upper_bound for c in c_loop], rtol=0, atol=1e-12
    )
    assert all(c.gap == 0.0 for c in c_batch)


@pytest.mark.parametrize("max_nodes", [1, 3, 40])
def test_node_limit_bounds_the_optimum(max_nodes):
    card = (6,) * 6
    space = make_space(card, ({"c1": "v2", "c4": "v0"},))
    params = random_params(card, 12, 7, 0.1, 0.3)  # weak mains, strong pairs: hard
    codes, eta = brute_force(_as_params(params), space)
    want = eta.max(axis=1)
    x, certs = certified_argmax(params, space, "exact", seed=0, max_nodes=max_nodes)
    got = eta_of(params, x)
    for c, g, w in zip(certs, got, want, strict=True):
        assert 0 < c.nodes <= max_nodes
        assert c.upper_bound >= w - 1e-5  # the bound holds whether the limit was hit or not
        assert c.gap == pytest.approx(max(0.0, c.upper_bound - g), abs=1e-5)
        assert c.optimal == (c.gap <= 1e-9 * max(1.0, abs(c.upper_bound)))
    # a limit of one node cannot prove anything here (the root has many open children)
    assert max_nodes > 1 or not any(c.optimal for c in certs)


def near_tie_params(card, S, seed, big, delta):
    """float64 tables on which float32 bounds without a margin prune the optimum.

    Constant pair tables of magnitude ~``big`` make the bound exact at the optimum (each
    maximum is attained there) while float32 rounds it by ~``big`` x 2^-24; every component's
    runner-up is ``delta`` below its best, so the second-best layout (the incumbent) is within
    ``delta`` of the optimum.
    """
    rng = np.random.default_rng(seed)
    main = [rng.normal(0, 1, (S, n)) for n in card]
    rows = np.arange(S)
    for m in main:
        o = np.argsort(-m, axis=1)
        m[rows, o[:, 1]] = m[rows, o[:, 0]] - delta
    pairs = tuple(
        big * (1 + rng.uniform(0, 1, (S, 1, 1))) + np.zeros((S, card[k], card[j]))
        for k, j in pair_list(len(card))
    )
    return Params(rng.normal(0, 1, S), tuple(main), pairs)


def search_from_runner_up(t, params, space):
    """Branch and bound from the second-best layout; (codes found, brute-force argmax)."""
    codes = space.codes_range(0, space.size)
    eta = numpy_eta(params, codes)  # float64 oracle
    order = np.argsort(-eta, axis=1)
    x, val, ub, nodes = bnb.branch_and_bound(t, bnb.eta64(t, codes[order[:, 1]]), 10**6)
    return x, val, ub, codes[order[:, 0]]


@pytest.mark.parametrize(
    "card, big, delta",
    [((3, 4, 3, 4, 3), 1e5, 1e-3), ((4, 4, 4, 4, 4), 1e6, 1e-3), ((5,) * 6, 1e3, 1e-6)],
)
def test_float32_bounds_with_margin_stay_exact_on_near_ties(card, big, delta):
    space = make_space(card)
    params = near_tie_params(card, 64, 11, big, delta)
    t = bnb.prepare(params, space.cardinalities, space.forbidden)
    assert t.pair_rowmax[0].dtype == np.float32
    x, val, ub, want = search_from_runner_up(t, params, space)
    np.testing.assert_array_equal(x, want)  # every draw: the optimum, not the runner-up
    np.testing.assert_array_equal(ub, val)  # searched to the end: certified optimal
    # the same float32 search without the margin prunes the optimum of most draws
    # (measured: 50-61 of 64 in each case), so this test can fail
    no_margin = t._replace(margin=[np.zeros_like(m) for m in t.margin])
    x0, _, _, _ = search_from_runner_up(no_margin, params, space)
    assert np.any(x0 != want, axis=1).sum() > len(want) // 2


@pytest.mark.parametrize("depth", [0, 2, 4])
def test_margin_bounds_the_float32_rounding(depth):
    # random prefixes of large-magnitude tables: each child's float32 bound plus its margin
    # must lie above the same bound computed in float64, by no more than twice the margin
    card = (5, 4, 6, 5, 3, 4, 5)
    space = make_space(card)
    rng = np.random.default_rng(depth)
    params = near_tie_params(card, 32, depth, 1e5, 1e-2)  # plus varying pair tables
    params = params._replace(pair=tuple(p + rng.normal(0, 30, p.shape) for p in params.pair))
    t = bnb.prepare(params, space.cardinalities, space.forbidden)
    S, K, B = 32, len(card), 200
    draw = rng.integers(0, S, B)
    x = rng.integers(0, np.array(t.sizes[:depth], np.int64)[None, :], (B, depth))
    F = np.zeros(B)
    A = t.main[draw].copy()
    for j in range(depth):  # fix position j: its value, its pair rows into the free tables
        F += A[np.arange(B), x[:, j]]
        A = A[:, t.sizes[j] :] + t.pair_cat[j][draw, x[:, j]]
    b = bnb._Batch(depth, draw, x, F, A, np.full(B, np.inf))
    st = bnb._State(np.full(S, -np.inf), np.full((S, K), -1), np.zeros(S, int), np.full(S, -np.inf))
    child = bnb._expand(t, st, b)
    assert len(child.draw) == B * t.sizes[depth]  # nothing pruned below -inf
    # the float64 bound of each child, from the float64 tables
    n_d = t.sizes[depth]
    Ad, Arest = A[:, :n_d], A[:, n_d:]
    M = t.pair_cat[depth][draw] + t.rowmax[depth + 1][draw][:, None, :] + Arest[:, None, :]
    seg_max = np.maximum.reduceat(M, t.seg[depth], axis=2).sum(axis=2)
    want = (F[:, None] + Ad + seg_max).ravel()  # children in (node, code) order
    margin = t.margin[depth][child.draw]
    assert np.all(margin > 0)
    assert np.all(child.bound >= want)  # admissible
    assert np.all(child.bound <= want + 2 * margin)  # and not loose beyond the rounding
    # the rounding is real: without the margin some bounds fall below the float64 ones
    assert np.any(child.bound - margin < want)


def test_huge_tables_keep_float64_bounds():
    # past 2^100 the bound tables stay float64 (no float32 overflow) with zero margins
    card = (3, 4, 3, 4)
    space = make_space(card)
    small = near_tie_params(card, 8, 3, 1.0, 1e-3)
    params = Params(*(jax.tree.map(lambda a: a * 2.0**101, f) for f in small))
    t = bnb.prepare(params, space.cardinalities, space.forbidden)
    assert t.pair_rowmax[0].dtype == np.float64
    assert all(np.all(m == 0) for m in t.margin)
    x, val, ub, want = search_from_runner_up(t, params, space)
    np.testing.assert_array_equal(x, want)
    np.testing.assert_array_equal(ub, val)
