"""Scoring: the grid engine and its reductions, scores of every layout, the best layout, the
traffic mix of audiences, shards, and the exact optimiser.

Modules, bottom up: ``blocks`` (the leaf-block kernel), ``reductions``, ``grid`` (the pass;
re-exports both), ``bnb`` and ``optimize`` (the exact argmax), ``target`` (what a pass scores:
one segment or the traffic mix), ``intervals``, ``rows``, ``stream`` (the streamed pass over
a target), ``shards``, ``grid_scores`` (``score_grid`` and Parquet output), ``scoring``
(given layouts, the best layout; re-exports the scoring API), ``mix``, ``segments`` and
``loss`` (expected loss and value remaining).
"""

from layoutopt.util.lazy import lazy_exports

# Public name -> the module that defines it, imported when the name is first read.
_EXPORTS = {
    "BestLayout": "layoutopt.score.types",
    "GridScores": "layoutopt.score.scoring",
    "Loss": "layoutopt.score.loss",
    "argmax_codes": "layoutopt.score.optimize",
    "argmax_layout": "layoutopt.score.optimize",
    "best_by_segment": "layoutopt.score.segments",
    "best_layout": "layoutopt.score.scoring",
    "certified_argmax": "layoutopt.score.optimize",
    "expected_loss": "layoutopt.score.loss",
    "merge_shards": "layoutopt.score.shards",
    "per_draw_best": "layoutopt.score.loss",
    "score_grid": "layoutopt.score.scoring",
    "score_grid_to_parquet": "layoutopt.score.scoring",
    "score_layouts": "layoutopt.score.scoring",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "BestLayout",
    "GridScores",
    "Loss",
    "argmax_codes",
    "argmax_layout",
    "best_by_segment",
    "best_layout",
    "certified_argmax",
    "expected_loss",
    "merge_shards",
    "per_draw_best",
    "score_grid",
    "score_grid_to_parquet",
    "score_layouts",
]
