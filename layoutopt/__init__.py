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

import sys as _sys

from layoutopt import sim as simulate
from layoutopt.campaign import Campaign, store
from layoutopt.data import Observations, events
from layoutopt.decide import design as _design
from layoutopt.decide import driver, policies
from layoutopt.decide import proposals as _propose
from layoutopt.decide.design import UncoverablePairsWarning, initial_design
from layoutopt.decide.proposals import propose
from layoutopt.decide.stopping import Decision, StopRule, decision
from layoutopt.infer import (
    FitWarning,
    LaplaceOptions,
    MetaPrior,
    NutsOptions,
    Posterior,
    SviOptions,
    fit,
)
from layoutopt.infer import posterior as _posterior
from layoutopt.model import Exponential, LayoutSpace, Params, PriorConfig, Weibull, inv_link, logits
from layoutopt.model import delay as _delay
from layoutopt.model import space as _space
from layoutopt.score import (
    BestLayout,
    GridScores,
    argmax_codes,
    argmax_layout,
    best_by_segment,
    best_layout,
    certified_argmax,
    expected_loss,
    grid,
    merge_shards,
    optimize,
    score_grid,
    score_grid_to_parquet,
    score_layouts,
    scoring,
    shards,
)
from layoutopt.util import limits
from layoutopt.util.version import __version__

# The flat module paths of releases before the stage folders keep importing for one more
# release (``from layoutopt.simulate import SyntheticWorld``, ``layoutopt.inference``):
# each names the module or package that now holds what it held.
_LEGACY = {
    "simulate": simulate,
    "policies": policies,
    "driver": driver,
    "grid": grid,
    "inference": _sys.modules["layoutopt.infer"],
    "delay": _delay,
    "space": _space,
    "posterior": _posterior,
    "scoring": scoring,
    "optimize": optimize,
    "shards": shards,
    "design": _design,
    "propose": _propose,
    "store": store,
    "events": events,
    "limits": limits,
}
for _name, _module in _LEGACY.items():
    _sys.modules.setdefault(f"{__name__}.{_name}", _module)
del _name, _module

__all__ = [
    "BestLayout",
    "Campaign",
    "Decision",
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
    "LaplaceOptions",
    "NutsOptions",
    "StopRule",
    "SviOptions",
    "__version__",
    "argmax_codes",
    "argmax_layout",
    "best_by_segment",
    "certified_argmax",
    "best_layout",
    "decision",
    "expected_loss",
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
