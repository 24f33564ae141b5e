"""The model: the layout space, parameters, the one ``logits``, priors, delays, NumPyro model.

Nothing here fits or scores; every later stage (data, infer, score, decide, campaign, sim)
builds on these definitions.
"""

from layoutopt.model.core import (
    LINKS,
    Params,
    effect_sizes,
    flatten_effects,
    fold_segment,
    has_segments,
    inv_link,
    log_likelihood,
    logits,
    pair_list,
    unflatten_effects,
    zero_params,
)
from layoutopt.model.delay import Exponential, Weibull
from layoutopt.model.priors import Prior, PriorConfig, PriorSpec
from layoutopt.model.space import LayoutSpace
from layoutopt.model.space_optional import ABSENT
from layoutopt.model.spec import FitData, ModelSpec

__all__ = [
    "ABSENT",
    "LINKS",
    "Exponential",
    "FitData",
    "LayoutSpace",
    "ModelSpec",
    "Params",
    "Prior",
    "PriorConfig",
    "PriorSpec",
    "Weibull",
    "effect_sizes",
    "flatten_effects",
    "fold_segment",
    "has_segments",
    "inv_link",
    "log_likelihood",
    "logits",
    "pair_list",
    "unflatten_effects",
    "zero_params",
]
