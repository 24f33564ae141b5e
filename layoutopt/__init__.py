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

The public API is re-exported here by hand; everything else is private by default. The
names are loaded on first use (PEP 562 ``__getattr__``), so ``import layoutopt`` and the
command line's ``--help`` do not wait for JAX: ``lo.fit`` imports the inference stage the
first time it is read.
"""

import importlib as _importlib
import importlib.abc as _abc
import importlib.util as _iutil
import sys as _sys
import types as _types

from layoutopt.util.version import __version__

# Public name -> (module that defines it, attribute; None for the module itself).
_PUBLIC = {
    "simulate": ("layoutopt.sim", None),
    "policies": ("layoutopt.decide.policies", None),
    "driver": ("layoutopt.decide.driver", None),
    "grid": ("layoutopt.score.grid", None),
    "scoring": ("layoutopt.score.scoring", None),
    "optimize": ("layoutopt.score.optimize", None),
    "shards": ("layoutopt.score.shards", None),
    "store": ("layoutopt.campaign.store", None),
    "events": ("layoutopt.data.events", None),
    "limits": ("layoutopt.util.limits", None),
    "Campaign": ("layoutopt.campaign", "Campaign"),
    "Observations": ("layoutopt.data", "Observations"),
    "ExtraColumnsWarning": ("layoutopt.data", "ExtraColumnsWarning"),
    "read_space_toml": ("layoutopt.data.mapping", "read_space_toml"),
    "read_campaign_toml": ("layoutopt.data.mapping", "read_campaign_toml"),
    "UncoverablePairsWarning": ("layoutopt.decide.design", "UncoverablePairsWarning"),
    "initial_design": ("layoutopt.decide.design", "initial_design"),
    "propose": ("layoutopt.decide.proposals", "propose"),
    "Decision": ("layoutopt.decide.verdict", "Decision"),
    "StopRule": ("layoutopt.decide.stopping", "StopRule"),
    "decision": ("layoutopt.decide.stopping", "decision"),
    "fit_metrics": ("layoutopt.infer.metrics", "fit_metrics"),
    "GridOptions": ("layoutopt.score.grid", "GridOptions"),
    "Objective": ("layoutopt.score.types", "Objective"),
    "Guardrail": ("layoutopt.score.types", "Guardrail"),
    "ObjectivePosterior": ("layoutopt.score.objective", "ObjectivePosterior"),
    "guardrail_report": ("layoutopt.score.guardrails", "guardrail_report"),
    "count_excluded": ("layoutopt.score.guardrails", "count_excluded"),
    **{
        n: ("layoutopt.infer", n)
        for n in (
            "DelayWarning",
            "FitWarning",
            "LaplaceOptions",
            "MetaPrior",
            "NutsOptions",
            "Posterior",
            "SviOptions",
            "fit",
        )
    },
    **{
        n: ("layoutopt.model", n)
        for n in ("ABSENT", "Exponential", "LayoutSpace", "Params", "PriorConfig", "Weibull")
    },
    "inv_link": ("layoutopt.model", "inv_link"),
    "logits": ("layoutopt.model", "logits"),
    **{
        n: ("layoutopt.score", n)
        for n in (
            "BestLayout",
            "GridScores",
            "argmax_codes",
            "argmax_layout",
            "best_by_segment",
            "best_layout",
            "certified_argmax",
            "expected_loss",
            "merge_shards",
            "score_grid",
            "score_grid_to_parquet",
            "score_layouts",
        )
    },
}

# The stage packages, reachable as attributes (``lo.infer``) like any imported submodule.
_STAGES = ("util", "model", "data", "infer", "score", "decide", "campaign", "sim", "cli")

# The flat module paths of releases before the stage folders keep importing for one more
# release (``from layoutopt.simulate import SyntheticWorld``, ``layoutopt.inference``):
# each names the module or package that now holds what it held, imported when asked for.
_LEGACY = {
    "simulate": "layoutopt.sim",
    "policies": "layoutopt.decide.policies",
    "driver": "layoutopt.decide.driver",
    "grid": "layoutopt.score.grid",
    "inference": "layoutopt.infer",
    "delay": "layoutopt.model.delay",
    "space": "layoutopt.model.space",
    "posterior": "layoutopt.infer.posterior",
    "scoring": "layoutopt.score.scoring",
    "optimize": "layoutopt.score.optimize",
    "shards": "layoutopt.score.shards",
    "design": "layoutopt.decide.design",
    "propose": "layoutopt.decide.proposals",
    "store": "layoutopt.campaign.store",
    "events": "layoutopt.data.events",
    "limits": "layoutopt.util.limits",
}


class _LegacyFinder(_abc.MetaPathFinder, _abc.Loader):
    """Imports ``layoutopt.<old name>`` as the module that now holds it."""

    def find_spec(self, fullname, path=None, target=None):
        package, _, name = fullname.rpartition(".")
        if package != __name__ or name not in _LEGACY:
            return None
        return _iutil.spec_from_loader(fullname, self)

    def create_module(self, spec):
        return None  # a placeholder module, replaced in sys.modules by exec_module

    def exec_module(self, module):
        # The import system returns whatever sys.modules holds after exec_module.
        target = _importlib.import_module(_LEGACY[module.__name__.rpartition(".")[2]])
        _sys.modules[module.__name__] = target


class _Package(_types.ModuleType):
    # Importing a legacy module binds it on the package; a public name of the same spelling
    # (``lo.propose`` the function, ``layoutopt.propose`` the old module) keeps the function.
    def __setattr__(self, name, value):
        kept = _PUBLIC.get(name)
        if kept is not None and kept[1] is not None and isinstance(value, _types.ModuleType):
            return
        super().__setattr__(name, value)


def __getattr__(name):
    """Load a public name (or a stage package) on first use (PEP 562)."""
    if name in _PUBLIC:
        module, attr = _PUBLIC[name]
        value = _importlib.import_module(module)
        if attr is not None:
            value = getattr(value, attr)
        globals()[name] = value
        return value
    if name in _STAGES or name in _LEGACY:
        return _importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__) | set(_STAGES))


if not any(isinstance(f, _LegacyFinder) for f in _sys.meta_path):
    _sys.meta_path.append(_LegacyFinder())
_sys.modules[__name__].__class__ = _Package

__all__ = [
    "ABSENT",
    "BestLayout",
    "Campaign",
    "Decision",
    "DelayWarning",
    "Exponential",
    "ExtraColumnsWarning",
    "FitWarning",
    "GridOptions",
    "GridScores",
    "Guardrail",
    "LayoutSpace",
    "MetaPrior",
    "Objective",
    "ObjectivePosterior",
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
    "count_excluded",
    "best_layout",
    "decision",
    "expected_loss",
    "fit",
    "fit_metrics",
    "guardrail_report",
    "initial_design",
    "inv_link",
    "logits",
    "merge_shards",
    "propose",
    "read_campaign_toml",
    "read_space_toml",
    "score_grid",
    "score_grid_to_parquet",
    "score_layouts",
    "simulate",
    "policies",
    "driver",
    "grid",
]
