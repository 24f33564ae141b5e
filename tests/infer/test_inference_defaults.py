"""Defaults of fit(): pooled Laplace scales (and their calibration), the SVI guide choice."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from layoutopt.data.observations import Observations
from layoutopt.decide.design import UncoverablePairsWarning, initial_design
from layoutopt.infer.fitting import LaplaceOptions, fit
from layoutopt.model.space import LayoutSpace
from layoutopt.score.scoring import score_grid
from layoutopt.sim.simulate import SyntheticWorld

DEMO_LIKE = LayoutSpace(
    {
        "headline": [f"h{i}" for i in range(6)],
        "body": [f"b{i}" for i in range(5)],
        "image": [f"i{i}" for i in range(6)],
        "personalization": ["none", "first_name"],
        "reviews": ["none", "stars", "quote"],
    }
)


def _design_fit_coverage(scales: str, seed: int) -> tuple[float, object]:
    """Coverage of the 90% interval over all layouts after fitting a pairwise design."""
    world = SyntheticWorld.random(DEMO_LIKE, seed, base_rate=0.04, main_scale=0.2, pair_scale=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UncoverablePairsWarning)
        design = initial_design(DEMO_LIKE, seed=seed)
    codes = DEMO_LIKE.codes(design["index"].to_numpy())
    n = np.full(len(codes), 2000)
    clicks = world.serve(codes, n, rng=np.random.default_rng(seed))
    obs = Observations.from_codes(DEMO_LIKE, codes, n, clicks)
    post = fit(
        DEMO_LIKE,
        obs,
        method="laplace",
        seed=0,
        num_samples=500,
        options=LaplaceOptions(scales=scales),
    )
    grid = score_grid(post, DEMO_LIKE)
    truth = world.ctr_of_index(DEMO_LIKE.indices(grid.codes))
    return float(np.mean((grid.lower <= truth) & (truth <= grid.upper))), post


def test_pooled_scales_are_shared_and_per_group_are_not(tiny_space, tiny_obs):
    pooled = fit(tiny_space, tiny_obs, seed=0, num_samples=50)
    per = fit(
        tiny_space, tiny_obs, seed=0, num_samples=50, options=LaplaceOptions(scales="per_group")
    )
    assert np.ptp(pooled.hyper["sigma_main"]) == 0.0
    assert np.ptp(pooled.hyper["tau_pair"]) == 0.0
    assert pooled.hyper["sigma_main"].shape == per.hyper["sigma_main"].shape == (50, 3)
    assert pooled.hyper["tau_pair"].shape == per.hyper["tau_pair"].shape == (50, 3)
    assert np.ptp(per.hyper["sigma_main"][0]) > 0.0


def test_unknown_scales_option_is_rejected(tiny_space, tiny_obs):
    with pytest.raises(ValueError, match="scales='shared'.*valid: \\['pooled', 'per_group'\\]"):
        fit(tiny_space, tiny_obs, seed=0, num_samples=10, options=LaplaceOptions(scales="shared"))


@pytest.mark.slow
def test_pooled_scales_calibrate_better_than_per_group():
    # Regression guard for the default. Four worlds like the extrapolation study's: 36
    # tested layouts of 1,080, true sd 0.2 (main) and 0.1 (pairs). Per-group empirical Bayes
    # shrinks many scales to ~0; measured coverage of the 90% intervals over all 1,080
    # layouts: per-group 0.56 / 0.80 / 0.76 / 0.48 (mean 0.65), pooled 0.63 / 0.98 / 0.88 /
    # 0.81 (mean 0.83). Coverage is a deterministic function of the seeds; the 500 Gaussian
    # draws move a world's coverage by ~1-2%, so the thresholds below leave >5 points of
    # room on each side. Pooled still under-covers: Laplace ignores the scales' own
    # uncertainty (NUTS covered 0.96 on worlds 0-1; see experiments/README.md).
    pooled, per_group = [], []
    for seed in range(4):
        cov, post = _design_fit_coverage("pooled", seed)
        pooled.append(cov)
        per_group.append(_design_fit_coverage("per_group", seed)[0])
        assert 0.03 <= float(post.hyper["tau_pair"][0, 0]) <= 0.25
    assert np.mean(pooled) >= 0.77
    assert np.mean(per_group) <= 0.72
    assert np.mean(pooled) - np.mean(per_group) >= 0.1


@pytest.mark.slow
def test_svi_default_guide_is_full_rank_for_small_models(tiny_fits):
    # The shared fixture fits SVI with the default guide ("auto").
    assert tiny_fits("svi").diagnostics["guide"] == "full"
