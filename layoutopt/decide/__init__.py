"""Deciding what to test: initial designs, proposals, policies and the one campaign driver."""

from layoutopt.decide.design import UncoverablePairsWarning, initial_design
from layoutopt.decide.proposals import propose
from layoutopt.decide.stopping import Decision, StopRule, decision

__all__ = [
    "Decision",
    "StopRule",
    "UncoverablePairsWarning",
    "decision",
    "initial_design",
    "propose",
]
