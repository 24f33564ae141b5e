"""Distinct groups in the grid engine, the exact optimisers and the public scoring calls.

Checked against brute-force enumeration on small spaces; the 80-item, 3-slot space of the
issue (492,960 layouts without repeats) is streamed, optimised exactly and scored.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from conftest import numpy_eta, random_draws

import layoutopt as lo
from layoutopt.model.space import LayoutSpace
from layoutopt.score import grid
from layoutopt.score.optimize import _argmax_exact_loop, certified_argmax

ITEMS = [f"i{j}" for j in range(6)]
EIGHTY = [f"item{j}" for j in range(80)]
SLOTS80 = LayoutSpace({"s1": EIGHTY, "s2": EIGHTY, "s3": EIGHTY}, distinct=[("s1", "s2", "s3")])
SPACES = [
    LayoutSpace({"s1": ITEMS, "s2": ITEMS, "s3": ITEMS}, distinct=[("s1", "s2", "s3")]),
    LayoutSpace(
        {"s1": ITEMS, "x": ["a", "b", "c"], "s2": ITEMS, "s3": ITEMS},
        distinct=[("s1", "s2", "s3")],
        forbidden=[{"s1": "i0", "x": "a"}, {"s3": "i2", "x": "b"}],
    ),
    LayoutSpace(
        {"t1": ["u", "v", "w"], "s1": ITEMS, "t2": ["u", "v", "w"], "s2": ITEMS},
        distinct=[("s1", "s2"), ("t1", "t2")],
    ),
]
S_DRAWS = 8


def repeats(space: LayoutSpace, codes: np.ndarray) -> bool:
    codes = np.asarray(codes)
    return any(
        (codes[:, k] == codes[:, l]).any() for g in space.distinct for k in g for l in g if k < l
    )


@pytest.mark.parametrize("space", SPACES, ids=["slots", "slots+rules", "two-groups"])
def test_argmax_methods_match_brute_force(space):
    # large main effects on one item in every slot: the unconstrained best repeats it
    params = random_draws(space.cardinalities, S_DRAWS, seed=3, base=-3.0, pair_scale=0.3)
    params = params._replace(main=tuple(m.at[:, 0].add(2.0) for m in params.main))
    codes = space.codes_range(0, space.size)
    eta = numpy_eta(params, codes)
    eta[:, ~space.allowed_mask(codes)] = -np.inf
    want = eta.max(axis=1)
    runs = {
        "enumerate": certified_argmax(params, space, method="enumerate")[0],
        "exact": certified_argmax(params, space, method="exact", seed=0)[0],
        "loop": _argmax_exact_loop(params, space, seed=0, num_restarts=4, max_nodes=10**6)[0],
        "hill": certified_argmax(params, space, method="hill", seed=0)[0],
    }
    for name, got in runs.items():
        assert space.allowed_mask(got).all() and not repeats(space, got), name
        got_eta = np.diagonal(numpy_eta(params, got))
        if name != "hill":  # a local optimum only
            np.testing.assert_allclose(got_eta, want, rtol=0, atol=1e-5, err_msg=name)


def count_ok() -> grid.Reduction:
    """A reduction counting the layouts the engine lets through (``block.ok``)."""
    return grid.Reduction(lambda S, K: jnp.int32(0), lambda n, b: (n + b.ok.sum(), None))


def test_grid_streams_exactly_the_layouts_without_repeats():
    params = random_draws(SLOTS80.cardinalities, 1, seed=0, base=-3.0)
    assert int(grid.scan_grid(params, SLOTS80, count_ok())) == 492_960
    small = SPACES[1]
    params = random_draws(small.cardinalities, 1, seed=0, base=-3.0)
    assert int(grid.scan_grid(params, small, count_ok())) == small.num_allowed


def test_exact_branch_and_bound_on_eighty_items():
    params = random_draws(SLOTS80.cardinalities, 3, seed=1, base=-3.0, pair_scale=0.3)
    params = params._replace(main=tuple(m.at[:, 7].add(3.0) for m in params.main))
    exact, certs = certified_argmax(params, SLOTS80, method="exact", seed=0)
    enum, _ = certified_argmax(params, SLOTS80, method="enumerate")
    assert all(c.optimal for c in certs) and not repeats(SLOTS80, exact)
    np.testing.assert_allclose(
        np.diagonal(numpy_eta(params, exact)), np.diagonal(numpy_eta(params, enum)), atol=1e-5
    )


@pytest.mark.slow  # the first Laplace fit of a session compiles (~15 s on 2 busy cores)
def test_fit_score_best_and_propose_never_repeat_an_item():
    # item0 is clearly the best item in every slot, so an unconstrained answer would repeat it
    design = lo.initial_design(SLOTS80, seed=0, kind="random", size=300)
    labels = design[list(SLOTS80.components)].astype(str)
    rng = np.random.default_rng(0)
    rate = 0.02 + 0.04 * (labels == "item0").sum(axis=1)
    frame = labels.assign(impressions=400, clicks=rng.binomial(400, rate))
    obs = lo.Observations.from_frame(frame, SLOTS80)
    prior = lo.PriorConfig(pairwise=False)
    post = lo.fit(SLOTS80, obs, method="laplace", prior=prior, seed=0, num_samples=64)
    best = lo.best_layout(post, SLOTS80)
    assert "item0" in best.layout.values() and len(set(best.layout.values())) == 3
    scores = lo.score_grid(post, SLOTS80, top=20)
    assert scores.num_scored == 492_960
    top = scores.top(20)[list(SLOTS80.components)].astype(str)
    assert (top.nunique(axis=1) == 3).all()
    batch = lo.propose(post, SLOTS80, k=4, strategy="thompson", seed=1)
    chosen = batch[list(SLOTS80.components)].astype(str)
    assert isinstance(chosen, pd.DataFrame) and (chosen.nunique(axis=1) == 3).all()
