"""Deciding what to test: initial designs, proposals, policies and the one campaign driver."""

from layoutopt.decide.design import UncoverablePairsWarning, initial_design
from layoutopt.decide.proposals import propose

__all__ = ["UncoverablePairsWarning", "initial_design", "propose"]
