"""Shared fixtures: a tiny layout space with a known ground truth and data drawn from it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from layoutopt.data import Observations
from layoutopt.inference import NutsOptions, SviOptions
from layoutopt.model import Params, inv_link, logits, pair_list
from layoutopt.space import LayoutSpace


def make_truth(cardinalities, seed, base_rate=0.05, main_sd=0.3, pair_sd=0.15) -> Params:
    """Known effects: b0 at ``logit(base_rate)``, Gaussian main and pair tables."""
    rng = np.random.default_rng(seed)
    return Params(
        np.float32(np.log(base_rate / (1.0 - base_rate))),
        tuple(rng.normal(0.0, main_sd, n).astype(np.float32) for n in cardinalities),
        tuple(
            rng.normal(0.0, pair_sd, (cardinalities[k], cardinalities[j])).astype(np.float32)
            for k, j in pair_list(len(cardinalities))
        ),
    )


def random_draws(
    card, S, seed, base, main_scale=0.5, pair_scale=0.2, intercept_sd=0.3, pairwise=True
) -> Params:
    """The tests' one random-``Params`` generator (float32 JAX arrays).

    ``S`` draws on a leading axis, or unbatched parameters (scalar intercept) for
    ``S=None``; intercepts ~ N(base, intercept_sd), main effects ~ N(0, main_scale), pair
    effects ~ N(0, pair_scale) (none when ``pairwise`` is False).
    """
    rng = np.random.default_rng(seed)
    lead = () if S is None else (S,)
    return Params(
        jnp.asarray(rng.normal(base, intercept_sd, lead), jnp.float32),
        tuple(jnp.asarray(rng.normal(0, main_scale, lead + (n,)), jnp.float32) for n in card),
        tuple(
            jnp.asarray(rng.normal(0, pair_scale, lead + (card[k], card[j])), jnp.float32)
            for k, j in pair_list(len(card))
        )
        if pairwise
        else (),
    )


def numpy_eta(params, codes) -> np.ndarray:
    """The tests' one eta oracle: the model equation in float64 numpy, independent of JAX.

    Returns ``(S, N)`` for batched ``params`` (leading draw axis), ``(N,)`` for unbatched.
    """
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    codes = np.asarray(codes)
    eta = np.zeros(np.shape(p.intercept) + (len(codes),)) + np.asarray(p.intercept)[..., None]
    for k, m in enumerate(p.main):
        eta += m[..., codes[:, k]]
    pairs = pair_list(len(p.main)) if p.pair else []  # additive: no pair tables
    for (k, j), t in zip(pairs, p.pair, strict=True):
        eta += t[..., codes[:, k], codes[:, j]]
    return eta


def simulate_observations(space, truth, codes, impressions, seed, link="logit") -> Observations:
    """Binomial clicks at the true CTR of each layout in ``codes``."""
    rng = np.random.default_rng(seed)
    codes = np.asarray(codes, np.int32)
    ctr = np.asarray(inv_link(logits(truth, codes), link), np.float64)
    imps = np.broadcast_to(np.asarray(impressions, np.int64), (len(codes),))
    return Observations.from_codes(space, codes, imps, rng.binomial(imps, ctr))


@pytest.fixture(scope="session")
def tiny_space() -> LayoutSpace:
    """18 layouts; labels with a space and punctuation exercise name handling."""
    return LayoutSpace(
        {
            "headline": ["h1", "h2", "h3"],
            "hero image": ["cat photo", "dog/photo"],
            "reviews": ["none", "stars", "quote"],
        }
    )


@pytest.fixture(scope="session")
def tiny_truth(tiny_space) -> Params:
    """Ground-truth effects on ``tiny_space`` (seed 1)."""
    return make_truth(tiny_space.cardinalities, seed=1)


@pytest.fixture(scope="session")
def tiny_obs(tiny_space, tiny_truth) -> Observations:
    """14 of the 18 layouts observed, 4000 impressions each (~200 clicks)."""
    rng = np.random.default_rng(2)
    idx = np.sort(rng.choice(tiny_space.size, 14, replace=False))
    return simulate_observations(tiny_space, tiny_truth, tiny_space.codes(idx), 4000, seed=3)


# Settings shared by the tests that compare methods; NUTS is kept small (2 x 200 warm-up
# x 200 draws on the 30-parameter tiny model) so the whole comparison runs in seconds.
FIT_SETTINGS = {
    "laplace": {"num_samples": 2000},
    "nuts": {
        "num_samples": 400,
        "num_chains": 2,
        "num_warmup": 200,
        "options": NutsOptions(target_accept_prob=0.95),
    },
    "svi": {"num_samples": 2000, "options": SviOptions(num_steps=2000)},
}


@pytest.fixture(scope="session")
def tiny_fits(tiny_space, tiny_obs):
    """``tiny_fits(method)``: the posterior of ``tiny_obs`` by ``method`` (computed once).

    FitWarnings (e.g. a few divergences of the short NUTS run) are recorded in
    ``posterior.diagnostics["warnings"]`` rather than raised, so tests can judge them.
    """
    import warnings

    from layoutopt.inference import FitWarning, fit

    cache = {}

    def get(method):
        if method not in cache:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", FitWarning)
                post = fit(tiny_space, tiny_obs, method=method, seed=0, **FIT_SETTINGS[method])
            post.diagnostics["warnings"] = [str(w.message) for w in caught]
            cache[method] = post
        return cache[method]

    return get
