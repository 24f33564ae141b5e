"""Expected loss and value remaining against a float64 brute force over every (draw, layout).

The oracle evaluates every allowed layout in every draw with explicit numpy sums, takes each
draw's maximum, and averages the loss; the engine sums eta in float32, so CTRs of a few
percent agree to ~1e-8 absolute (1e-6 relative is ~10 float32 ulps): the tolerances below.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from layoutopt.infer.posterior import Posterior
from layoutopt.model.core import Params, pair_list
from layoutopt.model.priors import PriorConfig
from layoutopt.model.space import LayoutSpace
from layoutopt.score.loss import expected_loss, per_draw_best

CARD = (3, 4, 2)
SHARES = np.array([0.7, 0.3])


def _posterior(S, seed, *, segments=False, rules=()) -> Posterior:
    rng = np.random.default_rng(seed)
    space = LayoutSpace(
        {f"c{k}": [f"v{i}" for i in range(n)] for k, n in enumerate(CARD)},
        forbidden=list(rules),
        segments={"member": ["prime", "guest"]} if segments else None,
    )
    seg = ()
    if segments:
        seg = (
            jnp.asarray(rng.normal(0, 0.3, (S, 2)), jnp.float32),
            tuple(jnp.asarray(rng.normal(0, 0.3, (S, 2, n)), jnp.float32) for n in CARD),
        )
    params = Params(
        jnp.asarray(rng.normal(-3.0, 0.2, S), jnp.float32),
        tuple(jnp.asarray(rng.normal(0, 0.3, (S, n)), jnp.float32) for n in CARD),
        tuple(
            jnp.asarray(rng.normal(0, 0.15, (S, CARD[k], CARD[j])), jnp.float32)
            for k, j in pair_list(len(CARD))
        ),
        *seg,
    )
    extra = {"segment_shares": SHARES} if segments else {}
    return Posterior(space=space, prior=PriorConfig(), params=params, method="nuts", **extra)


def _codes(space):
    return np.concatenate([c for _, c in space.iter_chunks(4096, allowed_only=True)])


def _ctr(post: Posterior, codes, segment: int | None) -> np.ndarray:
    """``(S, n)`` float64 CTR (segment ``g``, or the mix for None) by explicit sums."""
    p = post.params
    groups = [(segment, 1.0)] if segment is not None else list(enumerate(SHARES))
    if p.segment_intercept is None:
        groups = [(None, 1.0)]
    out = 0.0
    for g, w in groups:
        eta = np.asarray(p.intercept, np.float64)[:, None]
        if g is not None:
            eta = eta + np.asarray(p.segment_intercept, np.float64)[:, g, None]
        for k in range(codes.shape[1]):
            eta = eta + np.asarray(p.main[k], np.float64)[:, codes[:, k]]
            if g is not None:
                eta = eta + np.asarray(p.segment_main[k], np.float64)[:, g, codes[:, k]]
        for i, (k, j) in enumerate(pair_list(codes.shape[1])):
            eta = eta + np.asarray(p.pair[i], np.float64)[:, codes[:, k], codes[:, j]]
        out = out + w / (1.0 + np.exp(-eta))
    return out


def _oracle(post, codes, segment, q):
    v = _ctr(post, codes, segment)
    loss = v.max(axis=1, keepdims=True) - v
    rel = loss / v
    best = np.argmax(v, axis=1)
    p_best = np.bincount(best, minlength=len(codes)) / len(v)
    return loss.mean(axis=0), rel, p_best, v.mean(axis=0)


@pytest.mark.parametrize(
    ("segments", "segment", "rules"),
    [
        (False, None, ()),
        (False, None, [{"c0": "v1", "c1": "v2"}]),
        (True, {"member": "guest"}, ()),
        (True, None, ()),  # the traffic mix
    ],
)
def test_expected_loss_matches_brute_force(segments, segment, rules):
    post = _posterior(300, 3, segments=segments, rules=rules)
    codes = _codes(post.space)
    g = None if segment is None else ["prime", "guest"].index(segment["member"])
    el, rel, p_best, mean = _oracle(post, codes, g, 0.95)
    got = expected_loss(post, codes, segment=segment)
    np.testing.assert_allclose(got.mean, mean, rtol=1e-6)
    np.testing.assert_allclose(got.expected_loss, el, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(got.relative_expected_loss, el / mean, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got.p_best, p_best, atol=0)
    # the value remaining is an order statistic of the relative loss: the same draw's value
    want = np.quantile(rel, 0.95, axis=0, method="higher")
    np.testing.assert_allclose(got.value_remaining, want, rtol=1e-4, atol=1e-7)
    assert got.best_mean == pytest.approx(float(_ctr(post, codes, g).max(axis=1).mean()), 1e-6)
    # the leader by mean has the smallest expected loss: E[max] - mean(x) is monotone in mean
    assert int(np.argmin(got.expected_loss)) == int(np.argmax(got.mean))
    assert (got.expected_loss >= 0).all() and (got.value_remaining >= 0).all()
    se = got.expected_loss_se
    assert (se >= 0).all() and se[np.argmax(got.mean)] < got.expected_loss.max()


def test_layouts_as_labels_and_given_best_codes():
    post = _posterior(200, 5)
    best = per_draw_best(post)
    assert best.shape == (200, len(CARD))
    lead = {"c0": "v2", "c1": "v0", "c2": "v1"}
    a = expected_loss(post, [lead], best_codes=best)
    b = expected_loss(post, np.asarray([post.space.encode(lead)]))
    np.testing.assert_array_equal(a.expected_loss, b.expected_loss)
    np.testing.assert_array_equal(a.value_remaining, b.value_remaining)


def test_above_the_enumeration_limit_uses_the_exact_argmax():
    post = _posterior(100, 7)
    codes = _codes(post.space)
    enumerated = per_draw_best(post)
    exact = per_draw_best(post, enumerate_limit=4, seed=0)
    np.testing.assert_array_equal(exact, enumerated)
    with pytest.raises(ValueError, match="pass seed="):
        per_draw_best(post, enumerate_limit=4)
    a = expected_loss(post, codes, enumerate_limit=4, seed=0)
    b = expected_loss(post, codes)
    np.testing.assert_array_equal(a.expected_loss, b.expected_loss)


def test_bad_layouts_are_refused_by_name():
    post = _posterior(50, 1, rules=[{"c0": "v1", "c1": "v2"}])
    with pytest.raises(ValueError, match="forbidden"):
        expected_loss(post, [{"c0": "v1", "c1": "v2", "c2": "v0"}])
    with pytest.raises(ValueError, match="outside the space"):
        expected_loss(post, np.asarray([[0, 9, 0]]))
    with pytest.raises(ValueError, match="quantile|level"):
        expected_loss(post, np.asarray([[0, 0, 0]]), quantile=1.5)
    with pytest.raises(ValueError, match="best_codes has shape"):
        expected_loss(post, np.asarray([[0, 0, 0]]), best_codes=np.zeros((3, 3), np.int32))
