"""The serving options a round was proposed with (the traffic floor and burn-in).

One table of its own, ``layoutopt_proposal_options`` (its own :class:`sqlalchemy.MetaData`,
created idempotently on first use, so stores written before it need no migration): one row
per (campaign, round) with the options as JSON. A round proposed without options has no
row (its options are the defaults: no floor, no burn-in).
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from layoutopt.campaign.store import Store

__all__ = [
    "PROPOSAL_OPTIONS",
    "ensure_options_table",
    "options_writer",
    "proposal_options",
    "record_proposal_options",
]

METADATA = sa.MetaData()

PROPOSAL_OPTIONS = sa.Table(
    "layoutopt_proposal_options",
    METADATA,
    sa.Column("campaign_id", sa.Integer, primary_key=True),
    sa.Column("round", sa.Integer, primary_key=True),
    sa.Column("options", sa.Text, nullable=False),
)


def _ensure(store: Store) -> None:
    store.ensure_tables(METADATA, 7305)


def record_proposal_options(store: Store, cid: int, round_: int, options: dict[str, Any]) -> None:
    """Record round ``round_``'s options (one transaction; replaces an earlier row)."""
    _ensure(store)
    with store.transaction() as conn:
        options_writer(cid, options)(conn, round_)


def options_writer(cid: int, options: dict[str, Any]):
    """``(connection, round) -> None`` writing a round's options inside a transaction the
    caller holds (:meth:`Store.add_proposal`'s ``also``, so a proposal and its options land
    together). Call :func:`ensure_options_table` first."""

    def write(conn, round_: int) -> None:
        conn.execute(
            sa.delete(PROPOSAL_OPTIONS).where(
                PROPOSAL_OPTIONS.c.campaign_id == cid, PROPOSAL_OPTIONS.c.round == round_
            )
        )
        conn.execute(
            sa.insert(PROPOSAL_OPTIONS).values(
                campaign_id=cid, round=int(round_), options=json.dumps(options, sort_keys=True)
            )
        )

    return write


def ensure_options_table(store: Store) -> None:
    """Create the options table if missing (before a transaction that writes to it)."""
    _ensure(store)


def proposal_options(store: Store, cid: int) -> dict[int, dict[str, Any]]:
    """``{round: options}`` of every round proposed with options (reads create nothing)."""
    if not sa.inspect(store.engine).has_table(PROPOSAL_OPTIONS.name):
        return {}
    with store.engine.connect() as conn:
        q = sa.select(PROPOSAL_OPTIONS).where(PROPOSAL_OPTIONS.c.campaign_id == cid)
        return {int(r.round): json.loads(r.options) for r in conn.execute(q)}
