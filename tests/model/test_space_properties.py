"""Property-based tests (hypothesis) of the rules that shape a space: forbidden rules,
distinct groups and optional components, on random small spaces, against brute force over
the whole product: the exact count, enumeration, the design, the per-draw argmax (exact
branch and bound and enumeration) and the proposals never admit an excluded layout."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from conftest import random_draws  # noqa: E402
from hypothesis import HealthCheck, assume, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import layoutopt as lo  # noqa: E402
from layoutopt.infer.posterior import Posterior  # noqa: E402
from layoutopt.model.priors import PriorConfig  # noqa: E402
from layoutopt.score.optimize import argmax_codes  # noqa: E402

SETTINGS = settings(
    max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


@st.composite
def shaped_spaces(draw):
    """2-4 components of 1-4 variants; maybe a distinct group over 2-3 components sharing
    one pool, maybe optional components outside it, and 0-3 forbidden rules."""
    k = draw(st.integers(2, 4))
    sizes = [draw(st.integers(1, 4)) for _ in range(k)]
    distinct = None
    if draw(st.booleans()):
        m = draw(st.integers(2, min(3, k)))
        pool = draw(st.integers(max(1, m - 1), 4))  # a pool smaller than the group is refused
        for j in range(m):
            sizes[j] = pool
        distinct = [tuple(f"c{j}" for j in range(m))]
    components = {f"c{j}": [f"v{i}" for i in range(n)] for j, n in enumerate(sizes)}
    grouped = set(distinct[0]) if distinct else set()
    optional = [c for c in components if c not in grouped and draw(st.booleans())]
    rules = []
    for _ in range(draw(st.integers(0, 3))):
        names = draw(
            st.lists(st.sampled_from(list(components)), min_size=1, max_size=2, unique=True)
        )
        rules.append({c: draw(st.sampled_from(components[c])) for c in names})
    try:
        space = lo.LayoutSpace(
            components, forbidden=rules or None, distinct=distinct, optional=optional or None
        )
    except ValueError:
        assume(False)  # refused up front (e.g. every layout forbidden): nothing to check
    return space, rules


def _brute_allowed(space, rules) -> np.ndarray:
    """Every code tuple of the product that breaks no rule (given by labels), by loops."""
    product = np.array(list(itertools.product(*(range(n) for n in space.cardinalities))))
    keep = []
    for row in product:
        layout = space.decode(row)
        ok = not any(all(layout[c] == v for c, v in rule.items()) for rule in rules)
        for group in space.distinct:
            shown = [int(row[j]) for j in group]
            ok &= len(set(shown)) == len(shown)
        keep.append(ok)
    return product[np.array(keep, bool)]


@SETTINGS
@given(shaped_spaces())
def test_count_enumeration_and_design_agree_with_brute_force(case):
    space, rules = case
    allowed = _brute_allowed(space, rules)
    assert space.num_allowed == len(allowed)
    listed = np.concatenate([c for _, c in space.iter_chunks(7, allowed_only=True)])
    np.testing.assert_array_equal(np.sort(space.indices(listed)), np.sort(space.indices(allowed)))
    design = lo.initial_design(space, seed=0)
    codes = np.stack([design[c].cat.codes.to_numpy() for c in space.components], axis=1)
    assert space.allowed_mask(codes).all() and design["index"].is_unique


@pytest.mark.slow
@SETTINGS
@given(shaped_spaces(), st.integers(0, 2**16))
def test_the_optimisers_and_proposals_never_return_an_excluded_layout(case, seed):
    space, rules = case
    params = random_draws(space.cardinalities, 16, seed, -3.0, main_scale=1.0)
    allowed = _brute_allowed(space, rules)
    # brute-force per-draw best over the allowed layouts (ties to the lowest index)
    eta = np.stack([np.asarray(_eta(params, row)) for row in allowed], axis=1)
    order = np.argsort(space.indices(allowed), kind="stable")
    want = allowed[order][np.argmax(eta[:, order], axis=1)]
    for method in ("enumerate", "exact"):
        got = np.asarray(argmax_codes(params, space, method=method, seed=0))
        assert space.allowed_mask(got).all(), method
        got_eta = np.array([_eta(params, r)[s] for s, r in enumerate(got)])
        want_eta = np.array([_eta(params, r)[s] for s, r in enumerate(want)])
        np.testing.assert_allclose(got_eta, want_eta, rtol=0, atol=1e-5)
    post = Posterior(space=space, prior=PriorConfig(), params=params, method="nuts")
    batch = lo.propose(post, k=4, strategy="thompson", seed=1, explore=False)
    codes = np.stack([batch[c].cat.codes.to_numpy() for c in space.components], axis=1)
    assert space.allowed_mask(codes).all()


def _eta(params, row) -> np.ndarray:
    """Per-draw eta of one layout (float64, by hand: intercept, main effects, pair tables)."""
    K = len(row)
    out = np.asarray(params.intercept, np.float64).copy()
    for k in range(K):
        out += np.asarray(params.main[k], np.float64)[:, row[k]]
    pairs = [(a, b) for a in range(K) for b in range(a + 1, K)]
    for p, (a, b) in enumerate(pairs):
        out += np.asarray(params.pair[p], np.float64)[:, row[a], row[b]]
    return out
