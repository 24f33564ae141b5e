"""The library modules the commands call, imported the first time a command reads them.

The typer application is built at import time from the option declarations alone, so
``layoutopt --help`` and ``layoutopt <cmd> --help`` print without importing JAX; a command
body reaches the numerical stages through the names below (``library.fitting.fit(...)``),
and the first attribute read imports that module. Nothing here imports a layoutopt module
at import time, and no command imports one inside its body.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

__all__ = [
    "LazyModule",
    "campaign",
    "delay",
    "design",
    "distributed",
    "fitting",
    "objective",
    "mapping",
    "observations",
    "pandas",
    "policies",
    "posterior",
    "priors",
    "proposals",
    "report",
    "scoring",
    "segments",
    "shards",
    "simulate",
    "space",
    "view",
]


class LazyModule:
    """A module imported on first attribute access.

    Args:
        name: the module's dotted name, e.g. ``"layoutopt.infer.fitting"``.

    Examples:
        >>> fitting = LazyModule("layoutopt.infer.fitting")  # nothing imported yet
        >>> fitting.METHODS  # imports layoutopt.infer.fitting (and JAX) now  # doctest: +SKIP
    """

    def __init__(self, name: str) -> None:
        self._name = name

    def module(self) -> ModuleType:
        """The module itself, imported if it is not yet (``sys.modules`` caches it)."""
        return importlib.import_module(self._name)

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):  # copy, pickle and introspection probe dunders
            raise AttributeError(attr)
        return getattr(self.module(), attr)

    def __repr__(self) -> str:
        return f"LazyModule({self._name!r})"


campaign = LazyModule("layoutopt.campaign.campaign")
report = LazyModule("layoutopt.campaign.report")
delay = LazyModule("layoutopt.model.delay")
design = LazyModule("layoutopt.decide.design")
distributed = LazyModule("layoutopt.score.distributed")
fitting = LazyModule("layoutopt.infer.fitting")
objective = LazyModule("layoutopt.score.objective")
mapping = LazyModule("layoutopt.data.mapping")
observations = LazyModule("layoutopt.data.observations")
policies = LazyModule("layoutopt.decide.policies")
posterior = LazyModule("layoutopt.infer.posterior")
priors = LazyModule("layoutopt.model.priors")
proposals = LazyModule("layoutopt.decide.proposals")
scoring = LazyModule("layoutopt.score.scoring")
segments = LazyModule("layoutopt.score.segments")
shards = LazyModule("layoutopt.score.shards")
simulate = LazyModule("layoutopt.sim.simulate")
space = LazyModule("layoutopt.model.space")
pandas = LazyModule("pandas")
# the store read without JAX: campaign status, best and export
view = LazyModule("layoutopt.campaign.view")
