"""What serving a campaign adds to its store: the salt and holdout, the assignment log, and
the propensities of ingested rows.

Three tables of their own (their own :class:`sqlalchemy.MetaData`, created idempotently with
``checkfirst`` on the store's engine the first time a campaign serves, so stores written
before them need no migration):

- ``layoutopt_serving``: one row per campaign: its assignment ``salt`` (created at first use
  from :func:`secrets.token_hex` and fixed from then on), the ``holdout`` share and the
  ``control`` layout (labels as JSON, or null).
- ``layoutopt_assignment_log``: ``(campaign, unit) -> first_round``, the round in which each
  unit was first assigned (what makes assignment sticky across rounds). Idempotent: a unit
  already logged keeps its first round.
- ``layoutopt_logged_rows``: ingested rows aggregated per (batch content hash, layout codes,
  segment, round, propensity, holdout): what off-policy evaluation, the holdout lift and the
  sample-ratio checks read. Keyed by the batch's content hash and written *before* the
  batch: rows whose hash has no batch (an ingest that failed after them) are never read, and
  the next ingest of the same content writes them again.

Every write is one transaction (:meth:`Store.transaction`).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from layoutopt.campaign.schema import BATCHES
from layoutopt.campaign.store import Store

__all__ = [
    "ASSIGNMENT_LOG",
    "LOGGED_ROWS",
    "SERVING",
    "cohort_sizes",
    "ensure_tables",
    "first_rounds",
    "logged_rows",
    "record_logged_rows",
    "serving_settings",
    "set_serving",
]

METADATA = sa.MetaData()

SERVING = sa.Table(
    "layoutopt_serving",
    METADATA,
    sa.Column("campaign_id", sa.Integer, primary_key=True),
    sa.Column("salt", sa.String(64), nullable=False),
    sa.Column("holdout", sa.Float, nullable=False),
    sa.Column("control", sa.Text, nullable=True),  # JSON {component: label}
)
ASSIGNMENT_LOG = sa.Table(
    "layoutopt_assignment_log",
    METADATA,
    sa.Column("campaign_id", sa.Integer, primary_key=True),
    sa.Column("unit", sa.String(400), primary_key=True),
    sa.Column("first_round", sa.Integer, nullable=False),
)
LOGGED_ROWS = sa.Table(
    "layoutopt_logged_rows",
    METADATA,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("campaign_id", sa.Integer, nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False, index=True),
    sa.Column("codes", sa.Text, nullable=False),
    sa.Column("segment", sa.Text, nullable=True),
    sa.Column("round", sa.Integer, nullable=True),
    sa.Column("propensity", sa.Float, nullable=True),
    sa.Column("holdout", sa.Boolean, nullable=True),
    sa.Column("impressions", sa.BigInteger, nullable=False),
    sa.Column("clicks", sa.BigInteger, nullable=False),
)

_CHUNK = 5_000  # units per SELECT ... IN (...) (well under SQLite's variable limit)


def ensure_tables(store: Store) -> None:
    """Create the serving tables in the store when missing (idempotent)."""
    store.ensure_tables(METADATA, 7302)


def serving_settings(store: Store, cid: int) -> dict[str, Any]:
    """The campaign's ``salt``, ``holdout`` and ``control``; the row (with a fresh salt) is
    created at first use, in one transaction."""
    ensure_tables(store)
    with store.transaction() as conn:
        row = conn.execute(sa.select(SERVING).where(SERVING.c.campaign_id == cid)).first()
        if row is None:
            values = {"campaign_id": cid, "salt": secrets.token_hex(8), "holdout": 0.0}
            conn.execute(sa.insert(SERVING).values(control=None, **values))
            row = conn.execute(sa.select(SERVING).where(SERVING.c.campaign_id == cid)).first()
    control = None if row.control is None else json.loads(row.control)
    return {"salt": row.salt, "holdout": float(row.holdout), "control": control}


def set_serving(store: Store, cid: int, holdout: float, control: dict | None) -> None:
    """Record the holdout share and control layout (the salt is kept)."""
    serving_settings(store, cid)
    with store.transaction() as conn:
        conn.execute(
            sa.update(SERVING)
            .where(SERVING.c.campaign_id == cid)
            .values(
                holdout=float(holdout), control=None if control is None else json.dumps(control)
            )
        )


def first_rounds(store: Store, cid: int, units: Sequence[str], round_: int) -> dict[str, int]:
    """Each unit's first round, logging ``round_`` for units not seen before (one
    transaction; a unit already logged keeps its first round)."""
    ensure_tables(store)
    wanted = list(dict.fromkeys(str(u) for u in units))
    found: dict[str, int] = {}
    with store.transaction() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(7303, :c)"), {"c": cid})
        for start in range(0, len(wanted), _CHUNK):
            chunk = wanted[start : start + _CHUNK]
            q = sa.select(ASSIGNMENT_LOG.c.unit, ASSIGNMENT_LOG.c.first_round).where(
                ASSIGNMENT_LOG.c.campaign_id == cid, ASSIGNMENT_LOG.c.unit.in_(chunk)
            )
            found.update({r.unit: int(r.first_round) for r in conn.execute(q)})
        new = [{"campaign_id": cid, "unit": u, "first_round": int(round_)} for u in wanted
               if u not in found]  # fmt: skip
        for start in range(0, len(new), _CHUNK):
            conn.execute(sa.insert(ASSIGNMENT_LOG), new[start : start + _CHUNK])
    found.update({row["unit"]: int(round_) for row in new})
    return found


def cohort_sizes(store: Store, cid: int) -> dict[int, int]:
    """``{first round: units logged with it}`` (empty before the first assignment)."""
    ensure_tables(store)
    with store.engine.connect() as conn:
        q = (
            sa.select(ASSIGNMENT_LOG.c.first_round, sa.func.count())
            .where(ASSIGNMENT_LOG.c.campaign_id == cid)
            .group_by(ASSIGNMENT_LOG.c.first_round)
        )
        return {int(f): int(n) for f, n in conn.execute(q)}


def record_logged_rows(store: Store, cid: int, digest: str, rows: list[dict[str, Any]]) -> None:
    """Store a batch's logged rows under its content hash (replacing any earlier copy)."""
    ensure_tables(store)
    with store.transaction() as conn:
        conn.execute(
            sa.delete(LOGGED_ROWS).where(
                LOGGED_ROWS.c.campaign_id == cid, LOGGED_ROWS.c.content_hash == digest
            )
        )
        values = [dict(r, campaign_id=cid, content_hash=digest) for r in rows]
        for start in range(0, len(values), 10_000):
            conn.execute(sa.insert(LOGGED_ROWS), values[start : start + 10_000])


def logged_rows(store: Store, cid: int) -> list[dict[str, Any]]:
    """The logged rows of the campaign's stored batches (rows without a batch are left out)."""
    ensure_tables(store)
    with store.engine.connect() as conn:
        q = (
            sa.select(LOGGED_ROWS)
            .join(
                BATCHES,
                (BATCHES.c.content_hash == LOGGED_ROWS.c.content_hash)
                & (BATCHES.c.campaign_id == LOGGED_ROWS.c.campaign_id),
            )
            .where(LOGGED_ROWS.c.campaign_id == cid)
            .order_by(LOGGED_ROWS.c.id)
        )
        return [r._asdict() for r in conn.execute(q)]
