"""Scoring: the grid engine and its reductions, scores of every layout, the best layout, the
traffic mix of audiences, shards, and the exact optimiser.

Modules, bottom up: ``blocks`` (the leaf-block kernel), ``reductions``, ``grid`` (the pass;
re-exports both), ``bnb`` and ``optimize`` (the exact argmax), ``target`` (what a pass scores:
one segment or the traffic mix), ``intervals``, ``rows``, ``stream`` (the streamed pass over
a target), ``shards``, ``grid_scores`` (``score_grid`` and Parquet output), ``scoring``
(given layouts, the best layout; re-exports the scoring API), ``mix`` and ``segments``.
"""

from layoutopt.score.optimize import argmax_codes, argmax_layout, certified_argmax
from layoutopt.score.scoring import (
    BestLayout,
    GridScores,
    best_layout,
    score_grid,
    score_grid_to_parquet,
    score_layouts,
)
from layoutopt.score.segments import best_by_segment
from layoutopt.score.shards import merge_shards

__all__ = [
    "BestLayout",
    "GridScores",
    "argmax_codes",
    "argmax_layout",
    "best_by_segment",
    "best_layout",
    "certified_argmax",
    "merge_shards",
    "score_grid",
    "score_grid_to_parquet",
    "score_layouts",
]
