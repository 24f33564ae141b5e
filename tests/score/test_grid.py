"""The grid engine: leaf-block kernel vs model.logits, each reduction vs brute force."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import numpy_eta, random_draws

from layoutopt.model.core import inv_link, logits
from layoutopt.model.space import LayoutSpace
from layoutopt.score import grid
from layoutopt.util.arrays import pow2_at_least

CARD = (4, 3, 5, 2)
RULES = [{"c0": "v1", "c2": "v3"}, {"c1": "v0", "c3": "v1"}]


def make_space(card, forbidden=None):
    comps = {f"c{k}": [f"v{i}" for i in range(n)] for k, n in enumerate(card)}
    return LayoutSpace(comps, forbidden=forbidden)


def brute_eta(params, space):
    """eta (S, N) of every layout by the float64 oracle, and the allowed mask (N,)."""
    codes = space.codes_range(0, space.size)
    return codes, numpy_eta(params, codes), space.allowed_mask(codes)


@pytest.mark.parametrize("card, max_leaf", [(CARD, 10), (CARD, 1024), ((3, 4, 2, 5, 3), 6)])
@pytest.mark.parametrize("pairwise", [True, False])
def test_block_kernel_eta_agrees_with_logits(card, max_leaf, pairwise):
    """The leaf-block kernel sums exactly the terms of model.logits (in another order)."""
    params = random_draws(card, 7, 13, base=-2.5)
    if not pairwise:
        params = params._replace(pair=())
    plan = grid.plan(card, max_leaf)
    assert plan.prefix + plan.leaf == card
    codes = make_space(card).codes_range(0, int(np.prod(card)))
    want = np.asarray(jax.vmap(logits, in_axes=(0, None))(params, jnp.asarray(codes)))
    table = grid.leaf_table(params, plan, grid.leaf_codes(plan))
    start = jnp.zeros(len(plan.prefix), jnp.int32)
    pre = jax.jit(grid.prefix_codes, static_argnums=(1, 2))(start, plan, plan.num_prefixes)
    got = np.asarray(jax.jit(grid.block_eta, static_argnums=3)(params, pre, table, plan))
    # float32 sums of the same terms in another order: a few ulp of |eta| ~ 3
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)
    # explicit-codes path: bit-identical to the block kernel
    np.testing.assert_array_equal(
        np.asarray(jax.jit(grid.codes_eta, static_argnums=3)(params, codes, table, plan)), got
    )


# small leaves and steps: many calls, several steps per call, a partial last call
OPTIONS = [grid.GridOptions(), grid.GridOptions(max_leaf=2, step_elems=40)]


@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize("chunk_size", [None, 9])
def test_reductions_match_brute_force(options, chunk_size):
    """One composed pass: argmax, top-k, mean CTR and order statistics equal brute force."""
    S, k = 24, 5
    space = make_space(CARD, RULES)
    params = random_draws(CARD, S, 3, base=-2.5)
    codes, eta, ok = brute_eta(params, space)
    chunks = []
    ranks = (0, 3, S - 4, S - 1)
    reduction = grid.compose(
        grid.per_draw_argmax(),
        grid.top_k(k, "logit"),
        grid.mean_ctr("logit"),
        grid.order_statistics(ranks),
        grid.eta_rows(),
    )
    state = grid.scan_grid(
        params,
        space,
        reduction,
        chunk_size=chunk_size,
        options=options,
        on_chunk=lambda first, n, out: chunks.append((first, n, out)),
    )
    argmax, top, *_ = state
    # per-draw argmax: the lowest index of the max over allowed layouts
    masked = np.where(ok, eta, -np.inf)
    best = masked.argmax(axis=1)
    np.testing.assert_array_equal(np.asarray(argmax.best_codes), codes[best])
    np.testing.assert_allclose(np.asarray(argmax.best_eta), masked.max(axis=1), atol=2e-6)
    # top-k by mean CTR, ties to the lower index
    mean = np.where(ok, np.asarray(inv_link(eta, "logit")).mean(axis=0), -np.inf)
    order = np.lexsort((np.arange(len(mean)), -mean))[:k]
    np.testing.assert_array_equal(np.asarray(top.top_codes), codes[order])
    np.testing.assert_allclose(np.asarray(top.top_mean), mean[order], rtol=0, atol=1e-7)
    # per-layout outputs, stacked per call and covering the space in order
    assert [c[0] for c in chunks] == list(np.cumsum([0] + [c[1] for c in chunks])[:-1])
    assert sum(c[1] for c in chunks) == space.size
    got_mean = np.concatenate([np.asarray(o[2]).reshape(-1)[:n] for _, n, o in chunks])
    np.testing.assert_allclose(got_mean, mean, rtol=0, atol=1e-7)
    got_order = np.concatenate(
        [np.moveaxis(np.asarray(o[3]), 1, 0).reshape(len(ranks), -1)[:, :n] for _, n, o in chunks],
        axis=1,
    )
    np.testing.assert_allclose(got_order, np.sort(eta, axis=0)[list(ranks)], atol=2e-6)
    rows = np.concatenate([np.asarray(o[4]).reshape(-1, S)[:n] for _, n, o in chunks])
    np.testing.assert_allclose(rows, eta.T, atol=2e-6)


def test_reduction_factories_are_cached():
    """The same arguments give the same Reduction object, so a pass reuses its compilation."""
    assert grid.top_k(3, "logit") is grid.top_k(3, "logit")
    assert grid.compose(grid.per_draw_argmax(), grid.mean_ctr("probit")) is grid.compose(
        grid.per_draw_argmax(), grid.mean_ctr("probit")
    )
    assert grid.top_k(3, "logit") is not grid.top_k(4, "logit")


@pytest.mark.parametrize("n, want", [(1, 1), (2, 2), (3, 4), (64, 64), (65, 128), (0, 1)])
def test_pow2_at_least(n, want):
    assert pow2_at_least(n) == want
    assert pow2_at_least(n, minimum=16) == max(16, want)
