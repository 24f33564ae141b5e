"""Deciding what to test: initial designs, proposals, policies and the one campaign driver."""

from layoutopt.util.lazy import lazy_exports

# Public name -> the module that defines it, imported when the name is first read.
_EXPORTS = {
    "Decision": "layoutopt.decide.verdict",
    "StopRule": "layoutopt.decide.stopping",
    "UncoverablePairsWarning": "layoutopt.decide.design",
    "decision": "layoutopt.decide.stopping",
    "initial_design": "layoutopt.decide.design",
    "propose": "layoutopt.decide.proposals",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "Decision",
    "StopRule",
    "UncoverablePairsWarning",
    "decision",
    "initial_design",
    "propose",
]
