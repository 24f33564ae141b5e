"""The tables of a campaign's settings and verdicts, apart from the code that computes them.

Two groups, each with its own :class:`sqlalchemy.MetaData` created idempotently on first
write (stores written before them need no migration), and read by
:mod:`layoutopt.campaign.view` without the numerical stages:

- :data:`DECIDING` (:mod:`layoutopt.campaign.deciding`): ``layoutopt_stop_rule`` and
  ``layoutopt_decisions``;
- :data:`METRICS` (:mod:`layoutopt.campaign.metrics`): ``layoutopt_objective``,
  ``layoutopt_metric_rows``, ``layoutopt_metric_fits`` and ``layoutopt_exclusions``.
"""

from __future__ import annotations

import sqlalchemy as sa

from layoutopt.campaign.store import Store

__all__ = [
    "DECIDING",
    "DECISIONS",
    "EXCLUSIONS",
    "METRICS",
    "METRIC_FITS",
    "METRIC_ROWS",
    "OBJECTIVE",
    "STOP_RULE",
    "deciding_exists",
    "ensure_deciding",
    "ensure_metrics",
    "metrics_exists",
]

DECIDING = sa.MetaData()

STOP_RULE = sa.Table(
    "layoutopt_stop_rule",
    DECIDING,
    sa.Column("campaign_id", sa.Integer, primary_key=True),
    sa.Column("rule", sa.Text, nullable=False),
)
DECISIONS = sa.Table(
    "layoutopt_decisions",
    DECIDING,
    sa.Column("campaign_id", sa.Integer, primary_key=True),
    sa.Column("fit_id", sa.Integer, primary_key=True),
    sa.Column("round", sa.Integer, nullable=False),
    sa.Column("rule", sa.Text, nullable=False),
    sa.Column("leader", sa.Text, nullable=False),  # the BestLayout as JSON
    sa.Column("p_best", sa.Float, nullable=False),
    sa.Column("expected_loss", sa.Float, nullable=False),
    sa.Column("relative_expected_loss", sa.Float, nullable=False),
    sa.Column("value_remaining", sa.Float, nullable=False),
    sa.Column("expected_loss_se", sa.Float, nullable=False),
    sa.Column("stop", sa.Boolean, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
)


def ensure_deciding(store: Store) -> None:
    """Create the stopping rule and decision tables, if missing."""
    store.ensure_tables(DECIDING, 7304)


def deciding_exists(store: Store) -> bool:
    """Whether the tables exist (reads create nothing: a read-only store stays readable)."""
    return sa.inspect(store.engine).has_table(DECISIONS.name)


METRICS = sa.MetaData()

OBJECTIVE = sa.Table(
    "layoutopt_objective",
    METRICS,
    sa.Column("campaign_id", sa.Integer, primary_key=True),
    sa.Column("objective", sa.Text, nullable=False),
    sa.Column("guardrails", sa.Text, nullable=False),
)
METRIC_ROWS = sa.Table(
    "layoutopt_metric_rows",
    METRICS,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("campaign_id", sa.Integer, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False, index=True),
    sa.Column("codes", sa.Text, nullable=False),
    sa.Column("segment", sa.Text, nullable=True),
    sa.Column("impressions", sa.BigInteger, nullable=False),
    sa.Column("metric", sa.String(200), nullable=False),
    sa.Column("count", sa.BigInteger, nullable=False),
)
METRIC_FITS = sa.Table(
    "layoutopt_metric_fits",
    METRICS,
    sa.Column("campaign_id", sa.Integer, primary_key=True),
    sa.Column("fit_id", sa.Integer, primary_key=True),
    sa.Column("metric", sa.String(200), primary_key=True),
    sa.Column("posterior", sa.LargeBinary, nullable=False),
)
EXCLUSIONS = sa.Table(
    "layoutopt_exclusions",
    METRICS,
    sa.Column("campaign_id", sa.Integer, primary_key=True),
    sa.Column("fit_id", sa.Integer, primary_key=True),
    sa.Column("note", sa.Text, nullable=False),
)


def ensure_metrics(store: Store) -> None:
    """Create the objective, metric and exclusion tables, if missing."""
    store.ensure_tables(METRICS, 7306)


def metrics_exists(store: Store) -> bool:
    """Whether the objective table exists (reads create nothing)."""
    return sa.inspect(store.engine).has_table(OBJECTIVE.name)
