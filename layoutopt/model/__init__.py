"""The model: the layout space, parameters, the one ``logits``, priors, delays, NumPyro model.

Nothing here fits or scores; every later stage (data, infer, score, decide, campaign, sim)
builds on these definitions.
"""

from layoutopt.util.lazy import lazy_exports

# Public name -> the module that defines it, imported when the name is first read.
_EXPORTS = {
    "ABSENT": "layoutopt.model.space_optional",
    "LINKS": "layoutopt.model.core",
    "Exponential": "layoutopt.model.delay",
    "FitData": "layoutopt.model.spec",
    "LayoutSpace": "layoutopt.model.space",
    "ModelSpec": "layoutopt.model.spec",
    "Params": "layoutopt.model.core",
    "Prior": "layoutopt.model.priors",
    "PriorConfig": "layoutopt.model.priors",
    "PriorSpec": "layoutopt.model.priors",
    "Weibull": "layoutopt.model.delay",
    "effect_sizes": "layoutopt.model.core",
    "flatten_effects": "layoutopt.model.core",
    "fold_segment": "layoutopt.model.core",
    "has_segments": "layoutopt.model.core",
    "inv_link": "layoutopt.model.core",
    "log_likelihood": "layoutopt.model.core",
    "logits": "layoutopt.model.core",
    "pair_list": "layoutopt.model.core",
    "unflatten_effects": "layoutopt.model.core",
    "zero_params": "layoutopt.model.core",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

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
