"""NutsOptions: validation and the chain_method passed to numpyro.infer.MCMC."""

from __future__ import annotations

import warnings

import jax
import numpy as np
import pytest

from layoutopt.infer.fitting import NUTS_CHAIN_METHODS, FitWarning, NutsOptions, fit
from layoutopt.model.core import logits

RUN = {
    "method": "nuts",
    "num_chains": 2,
    "num_warmup": 200,
    "num_samples": 600,
}  # target_accept_prob 0.95 as in conftest: no divergences


# long-running (multi-process, sampling or compile-heavy): `pytest -m slow`, run by .ci/run
pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"chain_method": "pmap"}, "chain_method='pmap' is not valid; valid: "),
        ({"chain_method": "Vectorized"}, "chain_method='Vectorized' is not valid"),
        ({"target_accept_prob": 1.0}, "0 < target_accept_prob < 1"),
        ({"target_accept_prob": 0.0}, "target_accept_prob=0.0"),
        ({"max_tree_depth": 0}, "max_tree_depth=0"),
    ],
)
def test_options_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        NutsOptions(**kwargs)


def test_chain_methods_are_numpyros():
    assert NUTS_CHAIN_METHODS == ("sequential", "vectorized", "parallel")
    assert NutsOptions().chain_method == "vectorized"  # measured faster on CPU


@pytest.fixture(scope="module")
def runs(tiny_space, tiny_obs):
    """Vectorized twice with one seed, sequential once with the same seed.

    A divergent transition or two of these short runs raises a FitWarning; it is kept out
    of the way here and judged in the test.
    """
    out = {}
    for name, method in [("vec", "vectorized"), ("vec2", "vectorized"), ("seq", "sequential")]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FitWarning)
            out[name] = fit(
                tiny_space, tiny_obs, seed=11, options=NutsOptions(0.95, chain_method=method), **RUN
            )
    return out


def test_vectorized_chains_give_valid_draws_of_the_right_shape(runs):
    post = runs["vec"]
    assert post.num_chains == 2
    assert post.params.intercept.shape == (600,)
    for leaf in jax.tree.leaves(post.params):
        assert leaf.shape[0] == 600 and np.all(np.isfinite(leaf))
    d = post.diagnostics
    # as the sequential chains of this short run: a few divergences at most (< 1%)
    assert d["max_r_hat"] < 1.05 and d["min_ess"] > 100 and d["num_divergences"] <= 6


def test_vectorized_chains_are_reproducible_from_the_seed(runs):
    for a, b in zip(
        jax.tree.leaves(runs["vec"].params), jax.tree.leaves(runs["vec2"].params), strict=True
    ):
        np.testing.assert_array_equal(a, b)


def test_vectorized_and_sequential_chains_sample_the_same_posterior(runs, tiny_space):
    codes = tiny_space.codes(np.arange(tiny_space.size))
    eta = {k: np.asarray(jax.vmap(lambda p: logits(p, codes))(runs[k].params)) for k in runs}
    m_v, m_s, sd = eta["vec"].mean(0), eta["seq"].mean(0), eta["seq"].std(0)
    # Different draws (vmap changes the rounding, so trajectories part ways). With ESS > 100
    # per run the Monte Carlo sd of each mean is < 0.1 posterior sd, of their difference
    # < 0.14 sd; 0.6 sd over 18 layouts is more than 4 of those.
    assert np.max(np.abs(m_v - m_s) / sd) < 0.6
    np.testing.assert_allclose(eta["vec"].std(0) / sd, 1.0, atol=0.3)  # sd: rel. MC error
