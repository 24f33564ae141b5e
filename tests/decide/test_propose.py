"""Tests of layoutopt.propose against exact oracles built from explicit posterior draws.

Posteriors are made directly from random parameter draws (no fit), so P(best) can be computed
by brute force over an explicit S x N array of eta: with the same draws the Thompson estimate
is exact, and must match to float precision. Such draws are independent, so they carry no
evidence about the best layout (layoutopt.score.evidence): every call passes
``explore=False`` to test the strategy's own arithmetic rather than the exploration that
replaces it then (tests/score/test_evidence.py).
"""

import itertools

import jax
import numpy as np
import pandas as pd
import pytest
from conftest import numpy_eta

from layoutopt.decide.proposals import STRATEGIES, propose
from layoutopt.infer.posterior import Posterior
from layoutopt.model.core import Params, pair_list
from layoutopt.model.priors import PriorConfig
from layoutopt.model.space import LayoutSpace


def make_space(card, forbidden=None):
    comps = {f"c{k}": [f"v{i}" for i in range(n)] for k, n in enumerate(card)}
    return LayoutSpace(comps, forbidden=forbidden)


def random_posterior(space, num_draws, seed, main_scale=1.0, pair_scale=0.5):
    rng = np.random.default_rng(seed)
    card = space.cardinalities
    params = Params(
        (rng.normal(size=num_draws) - 3.0).astype(np.float32),
        tuple((main_scale * rng.normal(size=(num_draws, n))).astype(np.float32) for n in card),
        tuple(
            (pair_scale * rng.normal(size=(num_draws, card[k], card[m]))).astype(np.float32)
            for k, m in pair_list(len(card))
        ),
    )
    return Posterior(space=space, prior=PriorConfig(), params=params, method="laplace")


def brute_eta(post):
    """``(S, N)`` eta over every allowed layout (float64 numpy, independent of the library)."""
    space = post.space
    codes = np.concatenate([c for _, c in space.iter_chunks()], axis=0)
    return codes, numpy_eta(post.params, codes)


def brute_p_best(post, excluded=()):
    codes, eta = brute_eta(post)
    idx = post.space.indices(codes)
    eta = np.where(np.isin(idx, list(excluded)), -np.inf, eta)
    wins = np.bincount(np.argmax(eta, axis=1), minlength=len(idx)) / eta.shape[0]
    return {int(i): w for i, w in zip(idx, wins, strict=True) if w > 0}


def as_dict(df):
    return dict(zip(df["index"].astype(int), df["weight"], strict=True))


def check_batch(space, df, k):
    assert list(df.columns) == ["index", *space.components, "weight"]
    assert 1 <= len(df) <= k
    codes = np.stack([df[c].cat.codes.to_numpy() for c in space.components], axis=1)
    assert space.allowed_mask(codes).all()
    assert df["index"].is_unique
    w = df["weight"].to_numpy()
    assert (w >= 0).all() and abs(w.sum() - 1.0) < 1e-12
    assert (np.diff(w) <= 0).all(), "sorted by weight descending"


# One draw count for most tests, so jitted kernels compiled by one test serve the next.
S = 400
SMALL = [
    ((3, 2, 3), None),
    ((3, 2, 3), [{"c0": "v0", "c2": "v1"}, {"c1": "v1"}]),
    ((4, 3, 2, 2), [{"c0": "v3", "c1": "v0", "c3": "v1"}]),
]


@pytest.mark.parametrize("card, forbidden", SMALL)
def test_thompson_matches_brute_force_p_best(card, forbidden):
    space = make_space(card, forbidden)
    post = random_posterior(space, num_draws=S, seed=1)
    # k = size: no top-k restriction, so the weights are the P(best) estimate itself.
    # Tolerance: both sides are counts / S; 1e-12 only absorbs the renormalisation.
    got = as_dict(propose(post, explore=False, k=space.size, strategy="thompson", seed=0))
    want = brute_p_best(post)
    assert got.keys() == want.keys()
    np.testing.assert_allclose([got[i] for i in want], list(want.values()), rtol=0, atol=1e-12)


def test_thompson_top_k_is_renormalised_restriction():
    space = make_space((3, 2, 3))
    post = random_posterior(space, num_draws=S, seed=2, main_scale=0.3)
    full = brute_p_best(post)
    got = propose(post, explore=False, k=3, strategy="thompson", seed=0)
    top = sorted(full.values(), reverse=True)[:3]
    np.testing.assert_allclose(got["weight"], np.array(top) / sum(top), rtol=0, atol=1e-12)
    assert set(got["index"]) <= set(full)


def test_top_two_matches_formula_from_brute_force():
    space = make_space((3, 2, 3))
    post = random_posterior(space, num_draws=S, seed=3, main_scale=0.4)
    p = brute_p_best(post)
    beta = 0.3
    # Oracle: explicit double sum over leader i and challenger j != i, P(j | i) = p_j/(1-p_i).
    want = {j: beta * pj for j, pj in p.items()}
    for i, j in itertools.permutations(p, 2):
        want[j] += (1 - beta) * p[i] * p[j] / (1 - p[i])
    got = as_dict(propose(post, explore=False, k=space.size, strategy="top_two", beta=beta, seed=0))
    assert got.keys() == want.keys()
    np.testing.assert_allclose([got[i] for i in want], list(want.values()), rtol=0, atol=1e-12)


def two_layout_posterior(share_a=0.9, num_draws=100):
    """Layout A = (v0, v0) is best in share_a of the draws, B = (v1, v0) in the rest."""
    space = make_space((2, 2))
    n_a = int(round(share_a * num_draws))
    m0 = np.where(np.arange(num_draws)[:, None] < n_a, [1.0, 0.0], [0.0, 1.0])
    m1 = np.tile([1.0, -1.0], (num_draws, 1))
    params = Params(
        np.zeros(num_draws, np.float32),
        (m0.astype(np.float32), m1.astype(np.float32)),
        (np.zeros((num_draws, 2, 2), np.float32),),
    )
    return Posterior(space=space, prior=PriorConfig(), params=params, method="laplace")


def test_top_two_moves_traffic_to_the_challenger():
    post = two_layout_posterior(0.9)
    a, b = post.space.index({"c0": "v0", "c1": "v0"}), post.space.index({"c0": "v1", "c1": "v0"})
    ts = as_dict(propose(post, explore=False, seed=0, k=4, strategy="thompson"))
    tt = as_dict(propose(post, explore=False, seed=0, k=4, strategy="top_two"))
    np.testing.assert_allclose([ts[a], ts[b]], [0.9, 0.1], atol=1e-12)
    # beta * 0.9 + (1 - beta) * 0.1 * 0.9 / 0.9 = 0.5: two arms split evenly.
    np.testing.assert_allclose([tt[a], tt[b]], [0.5, 0.5], atol=1e-12)


def test_top_two_with_a_unanimous_posterior_uses_runner_up():
    space = make_space((3,))
    S = 10
    main = np.tile([2.0, 0.0, -1.0], (S, 1)).astype(np.float32)
    main[:3, 2] = 1.0  # runner-up is v2 in 3 of 10 draws, v1 in 7
    params = Params(np.zeros(S, np.float32), (main,), ())
    post = Posterior(space=space, prior=PriorConfig(), params=params, method="laplace")
    assert (
        len(propose(post, explore=False, seed=0, k=3, strategy="thompson")) == 1
    )  # documented: fewer than k rows
    got = as_dict(propose(post, explore=False, seed=0, k=3, strategy="top_two", beta=0.5))
    np.testing.assert_allclose([got[0], got[1], got[2]], [0.5, 0.35, 0.15], atol=1e-12)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("card, forbidden", SMALL[:2])
@pytest.mark.parametrize("k", [1, 5])
def test_batches_are_valid_and_reproducible(strategy, card, forbidden, k):
    space = make_space(card, forbidden)
    post = random_posterior(space, num_draws=S, seed=4, main_scale=0.3)
    a = propose(post, explore=False, k=k, strategy=strategy, seed=5)
    check_batch(space, a, k)
    pd.testing.assert_frame_equal(a, propose(post, explore=False, k=k, strategy=strategy, seed=5))
    if strategy in ("greedy", "ucb"):
        assert len(a) == min(k, space.num_allowed)
        np.testing.assert_allclose(a["weight"], 1.0 / len(a), atol=1e-12)


EXCLUDE_FORMS = [
    lambda space, idx: idx,
    lambda space, idx: np.asarray(idx),
    lambda space, idx: [space.layout(i) for i in idx],
    lambda space, idx: space.frame(space.codes(np.asarray(idx))),
    lambda space, idx: space.frame(space.codes(np.asarray(idx)))[["index"]],
]


@pytest.mark.parametrize("form", EXCLUDE_FORMS)
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_exclude(form, strategy):
    space = make_space((3, 2, 3), [{"c0": "v0", "c2": "v1"}])
    post = random_posterior(space, num_draws=S, seed=6, main_scale=0.5)
    full = brute_p_best(post)
    excluded = sorted(full, key=full.get, reverse=True)[:2]  # the two likeliest best
    got = propose(
        post, explore=False, seed=0, k=space.size, strategy=strategy, exclude=form(space, excluded)
    )
    assert not set(got["index"]) & set(excluded)
    check_batch(space, got, space.size)
    if strategy == "thompson":  # P(best) among the remaining layouts, exactly
        want = brute_p_best(post, excluded)
        got_d = as_dict(got)
        assert got_d.keys() == want.keys()
        np.testing.assert_allclose([got_d[i] for i in want], list(want.values()), atol=1e-12)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(strategy="eps"), r"unknown strategy 'eps'; valid strategies: \['thompson'"),
        (dict(k=0), "k must be an integer >= 1"),
        (dict(k=2.0), "k must be an integer >= 1"),
        (dict(num_draws=0), r"num_draws must lie in \[1, 16\]"),
        (dict(num_draws=17), r"num_draws must lie in \[1, 16\]"),
        (dict(beta=1.0), "beta must lie in"),
        (dict(quantile=0.5), r"quantile must lie in \(0.5, 1\)"),
        (dict(variance_scale=0.0), "variance_scale must be a finite number > 0, got 0.0"),
        (dict(variance_scale=float("nan")), "variance_scale must be a finite number > 0"),
        (dict(variance_scale="half"), "variance_scale must be a number > 0, got 'half'"),
        (dict(space=make_space((3, 3))), "not the space the posterior was fitted on"),
        (dict(exclude=[{"c0": "v9", "c1": "v0"}]), r"exclude entry #0: unknown variant 'v9'"),
        (dict(exclude=[{"c0": "v0"}]), r"exclude entry #0: .* lacks component 'c1'"),
        (dict(exclude=[0, 99]), r"exclude entry #1: layout index 99 is out of range"),
        (dict(exclude=[0, {"c0": "v0", "c1": "v0"}]), "all .* dicts or all integer"),
        (dict(exclude="v0"), "exclude must be a DataFrame"),
        (dict(exclude=pd.DataFrame({"c0": ["v0"]})), r"lacks component column\(s\) \['c1'\]"),
        (dict(exclude=list(range(6))), "exclude removes every one of the 6 allowed layouts"),
    ],
)
def test_propose_errors(kwargs, match):
    post = random_posterior(make_space((3, 2)), num_draws=16, seed=0)
    with pytest.raises(ValueError, match=match):
        propose(post, explore=False, seed=0, **kwargs)


def reshaped_by_hand(post, scale):
    """The posterior with every draw at ``mean + sqrt(scale) * (draw - mean)`` (float64)."""

    def move(a):
        a = np.asarray(a, np.float64)
        return a.mean(axis=0) + np.sqrt(scale) * (a - a.mean(axis=0))

    return Posterior(
        space=post.space,
        prior=post.prior,
        params=jax.tree.map(move, post.params),
        method=post.method,
    )


@pytest.mark.parametrize("scale", [0.25, 0.5, 2.0])
def test_variance_scale_is_thompson_on_the_reshaped_draws(scale):
    space = make_space((3, 2, 3), [{"c0": "v0", "c2": "v1"}])
    post = random_posterior(space, num_draws=S, seed=4, main_scale=0.3)
    got = as_dict(
        propose(
            post, explore=False, k=space.size, strategy="thompson", seed=0, variance_scale=scale
        )
    )
    want = brute_p_best(reshaped_by_hand(post, scale))
    assert got.keys() == want.keys()
    np.testing.assert_allclose([got[i] for i in want], list(want.values()), rtol=0, atol=1e-12)


def test_variance_scale_one_is_the_posterior_and_below_one_concentrates():
    space = make_space((3, 2, 3))
    post = random_posterior(space, num_draws=S, seed=5, main_scale=0.3)
    # a posterior that knows something: c0's variants differ in mean by 0.3
    main = (post.params.main[0] + np.float32([0.3, 0.0, -0.3]),) + post.params.main[1:]
    post = Posterior(
        space=space, prior=post.prior, params=post.params._replace(main=main), method="laplace"
    )
    plain = propose(post, explore=False, k=space.size, strategy="thompson", seed=0)
    one = propose(post, explore=False, k=space.size, strategy="thompson", seed=0, variance_scale=1)
    pd.testing.assert_frame_equal(plain, one)
    # a narrower posterior gives the leader more of the traffic and spreads less of it
    sharp = propose(
        post, explore=False, k=space.size, strategy="thompson", seed=0, variance_scale=0.1
    )
    assert sharp["weight"].iloc[0] > plain["weight"].iloc[0]
    assert len(sharp) < len(plain)


def test_propose_needs_an_explicit_seed():
    post = random_posterior(make_space((3, 2)), num_draws=16, seed=0)
    with pytest.raises(ValueError, match="pass seed="):
        propose(post, explore=False, k=2)


def test_num_draws_subsamples_reproducibly():
    space = make_space((3, 2, 3))
    post = random_posterior(space, num_draws=300, seed=7, main_scale=0.3)
    a = propose(post, explore=False, k=space.size, num_draws=50, seed=1)
    pd.testing.assert_frame_equal(
        a, propose(post, explore=False, k=space.size, num_draws=50, seed=1)
    )
    # every weight is a multiple of 1/50: the estimate used exactly 50 draws
    np.testing.assert_allclose(a["weight"] * 50, np.round(a["weight"] * 50), atol=1e-9)


def test_thompson_on_a_space_too_large_to_enumerate():
    # 33 * 32^3 = 1.08M layouts: above the optimiser's enumeration limit (2^20), so "auto" uses
    # the exact branch and bound; brute force over an explicit 4 x 1.08M eta array is the oracle.
    space = make_space((33, 32, 32, 32), [{"c0": "v0", "c1": "v0"}])
    post = random_posterior(space, num_draws=4, seed=8)
    got = as_dict(propose(post, explore=False, k=8, strategy="thompson", seed=0))
    want = brute_p_best(post)
    assert got.keys() == want.keys()
    np.testing.assert_allclose([got[i] for i in want], list(want.values()), atol=1e-12)


@pytest.mark.parametrize("strategy", ["greedy", "ucb"])
def test_greedy_and_ucb_order_matches_brute_force(strategy):
    space = make_space(*SMALL[1])
    post = random_posterior(space, num_draws=S, seed=9, main_scale=0.4)
    codes, eta = brute_eta(post)
    ctr = 1.0 / (1.0 + np.exp(-eta))
    key = ctr.mean(axis=0) if strategy == "greedy" else np.quantile(ctr, 0.9, axis=0)
    want = space.indices(codes)[np.argsort(-key)][:5]
    # the scorer works in float32: the ranking is only comparable where the gaps exceed that
    assert np.min(-np.diff(np.sort(key)[::-1][:6])) > 1e-5
    got = propose(post, explore=False, seed=0, k=5, strategy=strategy, quantile=0.9)
    np.testing.assert_array_equal(got["index"].to_numpy(), want)
    np.testing.assert_allclose(got["weight"], 1 / 5, atol=1e-12)


def test_repeated_rounds_do_not_recompile():
    space = make_space(*SMALL[1])
    compiles = []

    def listener(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(event)

    for strategy in STRATEGIES:
        first = random_posterior(space, num_draws=S, seed=10)
        second = random_posterior(space, num_draws=S, seed=11)  # same shapes, new values
        propose(first, explore=False, k=5, strategy=strategy, seed=0)
        jax.monitoring.register_event_duration_secs_listener(listener)
        try:
            propose(second, explore=False, k=5, strategy=strategy, seed=1)
        finally:
            jax.monitoring.unregister_event_duration_listener(listener)
        assert compiles == [], f"{strategy}: second round compiled {len(compiles)} time(s)"


def test_exclude_keeps_distinct_groups_and_retired_variants():
    items = ["a", "b", "c", "d"]
    space = LayoutSpace(
        {"s1": items, "s2": items, "x": ["p", "q"]},
        distinct=[("s1", "s2")],
        retired={"x": ["q"]},
    )
    params = random_posterior(space, S, seed=5).params
    # the best layout of most draws would repeat "a" or use the retired "q" if allowed
    boost = (np.float32([3, 0, 0, 0]), np.float32([3, 0, 0, 0]), np.float32([0, 3]))
    params = params._replace(main=tuple(m + b for m, b in zip(params.main, boost, strict=True)))
    post = Posterior(space=space, prior=PriorConfig(), params=params, method="laplace")
    first = propose(post, space, k=2, strategy="thompson", seed=0)
    batch = propose(post, space, k=3, strategy="thompson", seed=1, exclude=first)
    check_batch(space, batch, 3)
    assert not set(batch["index"]) & set(first["index"])
    assert (batch["s1"].astype(str) != batch["s2"].astype(str)).all()
    assert (batch["x"].astype(str) == "p").all()
    assert set(brute_p_best(post, excluded=first["index"])) >= set(batch["index"])
