"""layoutopt: find the best callout layout in a combinatorial space without testing them all.

Design a small covering subset of layouts, fit a Bayesian model with additive main effects
plus pairwise interactions, extrapolate to every layout, pick the best, and propose what to
test next::

    import layoutopt as lo

    space = lo.LayoutSpace.from_toml("space.toml")
    design = lo.initial_design(space, seed=0)
    obs = lo.Observations.from_csv("results.csv", space)
    post = lo.fit(space, obs, method="laplace", seed=0)
    best = lo.best_layout(post, space)
    batch = lo.propose(post, space, k=8, strategy="thompson", seed=1)

The public API is re-exported here by hand; everything else is private by default.
"""

from layoutopt import driver, grid, policies, simulate
from layoutopt.campaign import Campaign
from layoutopt.data import Observations
from layoutopt.delay import Exponential, Weibull
from layoutopt.design import UncoverablePairsWarning, initial_design
from layoutopt.inference import FitWarning, fit
from layoutopt.model import Params, PriorConfig, inv_link, logits
from layoutopt.optimize import argmax_codes, argmax_layout, certified_argmax
from layoutopt.posterior import Posterior
from layoutopt.priors import MetaPrior
from layoutopt.propose import propose
from layoutopt.scoring import (
    BestLayout,
    GridScores,
    best_layout,
    score_grid,
    score_grid_to_parquet,
    score_layouts,
)
from layoutopt.segments import best_by_segment
from layoutopt.shards import merge_shards
from layoutopt.space import LayoutSpace

__version__ = "0.1.0"

__all__ = [
    "BestLayout",
    "Campaign",
    "Exponential",
    "FitWarning",
    "GridScores",
    "LayoutSpace",
    "MetaPrior",
    "Observations",
    "Params",
    "Posterior",
    "PriorConfig",
    "UncoverablePairsWarning",
    "Weibull",
    "argmax_codes",
    "argmax_layout",
    "best_by_segment",
    "certified_argmax",
    "best_layout",
    "fit",
    "initial_design",
    "inv_link",
    "logits",
    "merge_shards",
    "propose",
    "score_grid",
    "score_grid_to_parquet",
    "score_layouts",
    "simulate",
    "policies",
    "driver",
    "grid",
]
