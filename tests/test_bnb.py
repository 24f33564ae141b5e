"""The draw-batched branch and bound against enumeration and the per-draw loop."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from test_optimize import brute_force, eta_of, make_space, random_params

from layoutopt import _bnb
from layoutopt.grid import as_params as _as_params
from layoutopt.optimize import _argmax_exact, _argmax_exact_loop, certified_argmax

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
    t = _bnb.prepare(jax.tree.map(np.asarray, params), space.cardinalities, space.forbidden)
    # a poor incumbent (the lowest allowed eta) makes the search do the work itself
    worst = codes[np.argmin(np.where(np.isfinite(eta), eta, np.inf), axis=1)]
    x, val, ub, nodes = _bnb.branch_and_bound(t, _bnb.eta64(t, worst), 10**6, batch_elems)
    assert (x >= 0).all() and space.allowed_mask(x.astype(np.int32)).all()
    # both sum the float32 tables in float64, in different orders (rounding ~1e-15)
    np.testing.assert_allclose(val, want_eta, rtol=0, atol=1e-9)
    np.testing.assert_allclose(eta_of(params, x.astype(np.int32)), want_eta, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(ub, val)  # searched to the end: the bound is the optimum
    np.testing.assert_allclose(_bnb.eta64(t, x), val, rtol=0, atol=1e-12)
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
