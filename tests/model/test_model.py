"""The model's pure functions against brute-force oracles on tiny spaces."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import numpy_eta, random_draws
from numpyro.handlers import seed, trace

from layoutopt.model.core import (
    Params,
    flatten_effects,
    inv_link,
    logits,
    unflatten_effects,
    zero_params,
)
from layoutopt.model.numpyro_model import numpyro_model
from layoutopt.model.priors import PriorConfig

CARDS = [(2,), (3, 2), (3, 2, 4), (2, 3, 2, 2)]


def random_params(card, seed_, pairwise=True) -> Params:
    return random_draws(card, None, seed_, 0.0, 1.0, 1.0, intercept_sd=1.0, pairwise=pairwise)


def all_codes(card) -> np.ndarray:
    return np.array(list(itertools.product(*[range(n) for n in card])), dtype=np.int32)


@pytest.mark.parametrize("card", CARDS)
def test_logits_matches_python_loop(card):
    params = random_params(card, 0)
    codes = all_codes(card)
    expected = numpy_eta(params, codes)
    # float32 sums of <= 11 O(1) terms: rounding is ~1e-6.
    np.testing.assert_allclose(np.asarray(logits(params, codes)), expected, atol=1e-5)


@pytest.mark.parametrize("card", CARDS)
@pytest.mark.parametrize("batch", [(), (5,), (2, 3)])
def test_flatten_unflatten_round_trip(card, batch):
    params = random_params(card, 1)
    batched = jax.tree.map(lambda a: jnp.broadcast_to(a, batch + np.shape(a)), params)
    main, pair = flatten_effects(batched)
    back = unflatten_effects(batched.intercept, main, pair, card)
    for a, b in zip(jax.tree.leaves(batched), jax.tree.leaves(back), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("card", CARDS[1:])
def test_additive_equals_zero_pair_tables(card):
    additive = random_params(card, 2, pairwise=False)
    zeros = zero_params(card, pairwise=True)
    with_pairs = additive._replace(pair=zeros.pair)
    codes = all_codes(card)
    np.testing.assert_array_equal(
        np.asarray(logits(additive, codes)), np.asarray(logits(with_pairs, codes))
    )


@pytest.mark.parametrize(
    ("link", "eta", "ctr"),
    [
        ("logit", 0.0, 0.5),
        ("logit", np.log(0.05 / 0.95), 0.05),
        ("probit", 0.0, 0.5),
        ("probit", -1.6448536, 0.05),  # Phi^-1(0.05)
        ("probit", 1.959964, 0.975),
    ],
)
def test_inv_link(link, eta, ctr):
    np.testing.assert_allclose(float(inv_link(jnp.float32(eta), link)), ctr, rtol=1e-5)


def test_links_differ_and_prior_loc_inverts_them():
    for link in ("logit", "probit"):
        prior = PriorConfig(base_rate=0.03, link=link)
        np.testing.assert_allclose(float(inv_link(prior.intercept_loc, link)), 0.03, rtol=1e-5)
    assert float(inv_link(1.0, "probit")) > float(inv_link(1.0, "logit"))


@pytest.mark.parametrize("pairwise", [True, False])
@pytest.mark.parametrize("observed", [True, False])
def test_numpyro_model_sites(pairwise, observed):
    card = (3, 2, 4)
    codes = all_codes(card)
    # Integer totals: numpyro 0.22's Binomial sampler fails on float total_count.
    n = jnp.full(len(codes), 100, dtype=jnp.int32)
    clicks = jnp.full(len(codes), 5.0) if observed else None
    prior = PriorConfig(pairwise=pairwise)
    tr = trace(seed(numpyro_model, 0)).get_trace(codes, n, clicks, card, prior)
    assert tr["intercept"]["value"].shape == ()
    assert tr["sigma_main"]["value"].shape == (3,)
    assert tr["main"]["type"] == "deterministic"
    assert tr["main"]["value"].shape == (9,)
    if pairwise:
        assert tr["pair"]["value"].shape == (3 * 2 + 3 * 4 + 2 * 4,)
        assert tr["tau_pair"]["value"].shape == (3,)
    else:
        assert "pair" not in tr and "tau_pair" not in tr
    if observed:
        assert tr["loglik"]["type"] == "sample" and "clicks" not in tr
    else:
        assert tr["clicks"]["value"].shape == (len(codes),)
