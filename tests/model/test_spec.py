"""ModelSpec: every term counted, the flat layout, the design, against brute force."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from layoutopt.model.core import log_likelihood, logits
from layoutopt.model.priors import PriorConfig, attribute_design
from layoutopt.model.space import LayoutSpace
from layoutopt.model.spec import ModelSpec

CASES = [
    ModelSpec((3, 2, 4)),
    ModelSpec((3, 2, 4), pairwise=False),
    ModelSpec((3, 2, 4), num_segments=2),
    ModelSpec((3, 2, 4), num_segments=3, segment_pairs=True),
    ModelSpec((3, 2, 4), num_segments=2, attribute_counts=(2, 0, 1)),
]


def _attributes(spec, rng):
    A = np.zeros((sum(spec.cardinalities), spec.num_beta))
    row = col = 0
    for n, b in zip(spec.cardinalities, spec.attribute_counts or (0,) * 3, strict=True):
        A[row : row + n, col : col + b] = rng.normal(size=(n, b))
        row, col = row + n, col + b
    return A


def test_the_issue_model_has_4767_parameters():
    # 5 x 8 variants, 6 segments with segment pairs: 1 + 40 + 10*64 + 6 + 240 + 3840
    spec = ModelSpec((8,) * 5, num_segments=6, segment_pairs=True)
    assert spec.num_params == 4767
    assert ModelSpec((8,) * 5).num_params == 681
    assert ModelSpec((8,) * 5, attribute_counts=(2, 1, 0, 0, 3)).num_params == 681 + 6


@pytest.mark.parametrize("spec", CASES)
def test_design_rows_reproduce_logits_and_ravel_inverts_unravel(spec):
    """X theta from the design equals logits of the unravelled params on every layout and
    segment (brute force over the whole tiny space)."""
    rng = np.random.default_rng(0)
    A = _attributes(spec, rng)
    flat = rng.normal(size=spec.num_params)
    grids = np.meshgrid(*[np.arange(n) for n in spec.cardinalities], indexing="ij")
    codes = np.stack([g.ravel() for g in grids], axis=1)
    G = max(spec.num_segments, 1)
    codes = np.repeat(codes, G, axis=0)
    segs = np.tile(np.arange(G), len(codes) // G)
    cols, values = spec.design(codes, segs, A)
    assert cols.shape[1] == spec.num_slots()
    params, beta = spec.unravel(jnp.asarray(flat), jnp.asarray(A))
    want = np.asarray(logits(params, codes, segs))
    np.testing.assert_allclose(np.sum(values * flat[cols], axis=1), want, rtol=1e-5, atol=1e-5)
    residual, _ = spec.unravel(jnp.asarray(flat), jnp.zeros_like(jnp.asarray(A)))
    np.testing.assert_array_equal(np.asarray(spec.ravel(residual, beta)), flat.astype(np.float32))
    np.testing.assert_array_equal(ravel_pytree((residual, beta))[0], spec.ravel(residual, beta))


def test_scale_groups_pooled_and_per_group():
    spec = ModelSpec((3, 2, 4), num_segments=2, attribute_counts=(1, 0, 1))
    per = spec.scale_groups(pooled=False)
    # 3 main + 3 pair + segment intercept + 3 segment main + 2 coefficients
    assert len(per.size) == 12 and per.size.sum() == spec.num_params - 1
    pooled = spec.scale_groups(pooled=True)
    # main, pair, segment intercept, segment main, 2 coefficients
    np.testing.assert_array_equal(pooled.size, [9, 6 + 8 + 12, 2, 18, 1, 1])
    np.testing.assert_array_equal(pooled.first, [0, 3, 6, 7, 10, 11])


def test_prior_resolves_every_group():
    spec = ModelSpec((3, 2), num_segments=2, segment_pairs=True, attribute_counts=(1, 0))
    prior = PriorConfig(main_scale=0.7, pair_scale=0.3, segment_scale=0.2).resolve(spec)
    assert prior.loc.shape == (spec.num_params,)
    np.testing.assert_allclose(prior.scale, [0.7, 0.7, 0.3, 0.2, 0.2, 0.2, 0.3, 0.5])
    np.testing.assert_array_equal(prior.learned, [True] * 7 + [False])


def test_exposure_one_is_exactly_the_delay_free_likelihood():
    eta = jnp.linspace(-6.0, 2.0, 50)
    n, y = jnp.full(50, 1000.0), jnp.arange(50.0)
    got = log_likelihood(eta, n, y, "logit", jnp.ones(50))
    np.testing.assert_array_equal(got, log_likelihood(eta, n, y, "logit"))
    g1 = jax.grad(lambda e: log_likelihood(e, n, y, "logit", jnp.ones(50)).sum())(eta)
    g0 = jax.grad(lambda e: log_likelihood(e, n, y, "logit").sum())(eta)
    np.testing.assert_array_equal(g1, g0)


def test_shared_item_effects_are_columns_spanning_the_slots():
    """With shared_effects the design's coefficient values sum the item's entries over its
    slots, and still reproduce logits on every layout (brute force)."""
    items = ["a", "b", "c", "d"]
    space = LayoutSpace(
        {"x": ["p", "q"], "s1": items, "s2": items},
        distinct=[("s1", "s2")],
        shared_effects=True,
        attributes={"x": {"p": {"big": True}, "q": {"big": False}}},
    )
    spec = ModelSpec.from_space(space, PriorConfig())
    A, names = attribute_design(space)
    assert spec.attribute_counts == (1, 0, 0) and spec.shared_counts == (4,)
    assert names == ["x:big", "s1+s2:a", "s1+s2:b", "s1+s2:c", "s1+s2:d"]
    np.testing.assert_array_equal(A[2:6, 1:], np.eye(4))
    np.testing.assert_array_equal(A[6:10, 1:], np.eye(4))
    flat = np.random.default_rng(1).normal(size=spec.num_params)
    codes = space.codes_range(0, space.size)
    cols, values = spec.design(codes, np.zeros(len(codes)), A)
    params, _ = spec.unravel(jnp.asarray(flat), jnp.asarray(A))
    want = np.asarray(logits(params, codes))
    np.testing.assert_allclose(np.sum(values * flat[cols], axis=1), want, rtol=1e-5, atol=1e-5)
    # an item's shared coefficient is touched once per slot holding it
    shared = values[:, -4:]
    np.testing.assert_array_equal(shared.sum(axis=1), 2.0)
