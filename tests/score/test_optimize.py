"""Tests of layoutopt.score.optimize against brute-force enumeration of small spaces."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from conftest import numpy_eta, random_draws

from layoutopt.model.space import LayoutSpace
from layoutopt.score.optimize import argmax_codes, argmax_layout, certified_argmax, hill_climb


def random_params(card, S, seed, main_scale=0.5, pair_scale=0.2):
    return random_draws(card, S, seed, base=-3.0, main_scale=main_scale, pair_scale=pair_scale)


def make_space(card, forbidden=()):
    comps = {f"c{k}": [f"v{i}" for i in range(n)] for k, n in enumerate(card)}
    return LayoutSpace(comps, forbidden=[dict(r) for r in forbidden] or None)


def brute_force(params, space):
    """Oracle: eta of every layout for every draw (float64), forbidden set to -inf."""
    codes = space.codes_range(0, space.size)
    eta = numpy_eta(params, codes)
    eta[:, ~space.allowed_mask(codes)] = -np.inf
    return codes, eta


def eta_of(params, codes):
    """eta of one layout per draw: ``codes`` is ``(S, K)``."""
    full = numpy_eta(params, np.asarray(codes))
    return np.diagonal(full).copy()


RULES = [{"c0": "v1", "c2": "v3"}, {"c1": "v0"}, {"c3": "v1", "c4": "v5", "c0": "v0"}]

S_DRAWS = 6  # one S everywhere: the jitted kernels compile once per space shape
CASES = [
    # (cardinalities, forbidden rules, main scale, pair scale, seed)
    ((4, 3, 5, 2, 6), (), 0.5, 0.2, 0),
    ((4, 3, 5, 2, 6), RULES, 0.5, 0.2, 1),
    ((10, 10, 10, 10, 10, 10), (), 0.4, 0.15, 3),  # 10^6 layouts
    ((10, 10, 10, 10, 10, 10), ({"c0": "v3", "c5": "v7"}, {"c2": "v1"}), 0.2, 0.3, 4),
    ((3, 3), ({"c0": "v0"},), 0.1, 1.0, 6),  # pair-dominated
]


@pytest.mark.parametrize("card, rules, ms, ps, seed", CASES)
def test_exact_and_enumerate_match_brute_force(card, rules, ms, ps, seed):
    space = make_space(card, rules)
    params = random_params(card, S_DRAWS, seed, ms, ps)
    codes, eta = brute_force(params, space)
    want = codes[np.argmax(eta, axis=1)]
    want_eta = eta.max(axis=1)
    enum = argmax_codes(params, space, method="enumerate", chunk_size=4099)
    np.testing.assert_array_equal(enum, want)
    exact, certs = certified_argmax(params, space, method="exact", seed=0)
    assert space.allowed_mask(exact).all()
    # float32 eta: B&B works in float64, so near-ties (< 1e-5) may resolve differently
    np.testing.assert_allclose(eta_of(params, exact), want_eta, atol=1e-5)
    for c in certs:
        assert c.optimal and c.gap <= 1e-9 * max(1.0, abs(c.upper_bound))
    np.testing.assert_allclose([c.upper_bound for c in certs], want_eta, atol=1e-5)


@pytest.mark.parametrize("card, rules, ms, ps, seed", CASES)
def test_hill_climbing_gives_allowed_local_optimum(card, rules, ms, ps, seed):
    space = make_space(card, rules)
    params = random_params(card, S_DRAWS, seed, ms, ps)
    x, eta = hill_climb(params, space, seed=seed)
    assert space.allowed_mask(x).all()
    np.testing.assert_allclose(eta, eta_of(params, x), rtol=0, atol=1e-6)
    # no single-component move to an allowed layout improves eta
    for k, n in enumerate(card):
        for v in range(n):
            y = x.copy()
            y[:, k] = v
            e = np.where(space.allowed_mask(y), eta_of(params, y), -np.inf)
            assert np.all(e <= eta + 1e-6)


def test_auto_uses_enumeration_on_small_spaces_and_exact_on_large():
    small = make_space((3, 4))
    params = random_params((3, 4), 3, 0)
    np.testing.assert_array_equal(
        argmax_codes(params, small), argmax_codes(params, small, method="enumerate")
    )
    card = (10,) * 7  # 10^7 > AUTO_ENUMERATE_LIMIT: branch and bound
    big = make_space(card)
    params = random_params(card, 2, 1)
    x, certs = certified_argmax(params, big, seed=0)
    assert all(c.nodes > 0 and c.optimal for c in certs)


def test_node_limit_reports_a_gap():
    card = (10,) * 7
    space = make_space(card)
    params = random_params(card, 2, 7, 0.1, 0.3)  # weak mains, strong pairs: hard
    _, cert = certified_argmax(params, space, "exact", seed=0, max_nodes=3)
    for c in cert:
        assert c.nodes <= 4
        assert c.gap >= 0
        assert c.optimal == (c.gap <= 1e-9 * max(1.0, abs(c.upper_bound)))


def test_argmax_layout_unbatched():
    card = (4, 3, 5)
    space = make_space(card, [{"c0": "v1"}])
    params = jax.tree.map(lambda a: a[0], random_params(card, 1, 3))
    codes, eta, cert = argmax_layout(params, space, seed=0)
    batched = jax.tree.map(lambda a: a[None], params)
    _, all_eta = brute_force(batched, space)
    assert eta == pytest.approx(all_eta.max(), abs=1e-5)
    assert cert.optimal and space.is_allowed(codes)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"method": "nope"}, "method must be one of"),
        ({"method": "hill"}, "explicit seed"),
    ],
)
def test_errors(kwargs, match):
    space = make_space((2, 3))
    with pytest.raises(ValueError, match=match):
        argmax_codes(random_params((2, 3), 2, 0), space, **kwargs)


def test_params_must_fit_space():
    with pytest.raises(ValueError, match="components"):
        argmax_codes(random_params((2, 3), 2, 0), make_space((2, 3, 4)))
    with pytest.raises(ValueError, match="variants"):
        argmax_codes(random_params((2, 3), 2, 0), make_space((2, 4)))
