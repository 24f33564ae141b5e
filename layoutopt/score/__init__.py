"""Scoring: the grid engine and its reductions, scores of every layout, the best layout, the
traffic mix of audiences, shards, and the exact optimiser."""

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
