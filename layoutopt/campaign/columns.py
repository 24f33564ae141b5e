"""A campaign's column mapping: layoutopt's column names -> the names in its logs.

Kept in a table of its own, ``layoutopt_columns`` (its own :class:`sqlalchemy.MetaData`,
created idempotently on first write, so stores written before it need no migration): one
row per campaign with the mapping as JSON. :meth:`Campaign.ingest` and
:meth:`Campaign.ingest_events` read files through it, a ``columns=`` given to them winning
name by name. ``campaign init -s space.toml`` stores the space file's ``[columns]`` table
(:mod:`layoutopt.data.mapping`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import sqlalchemy as sa

from layoutopt.data.mapping import merge_columns

__all__ = ["COLUMNS", "Columns"]

METADATA = sa.MetaData()

COLUMNS = sa.Table(
    "layoutopt_columns",
    METADATA,
    sa.Column("campaign_id", sa.Integer, primary_key=True),
    sa.Column("columns", sa.Text, nullable=False),
)


class Columns:
    """The stored column mapping of a campaign (mixed into :class:`~layoutopt.Campaign`)."""

    @property
    def columns(self) -> dict[str, str] | None:
        """The stored mapping ``{layoutopt name: your column}``, or None (reads create
        nothing)."""
        if not sa.inspect(self.store.engine).has_table(COLUMNS.name):
            return None
        with self.store.engine.connect() as conn:
            q = sa.select(COLUMNS.c.columns).where(COLUMNS.c.campaign_id == self.campaign_id)
            row = conn.execute(q).first()
        return None if row is None else json.loads(row.columns)

    def set_columns(self, columns: Mapping[str, str] | None) -> None:
        """Store the mapping every later ingest reads files through (None: clear it).

        Raises:
            ValueError: for a mapping that is not ``{str: str}``.
        """
        if columns is not None and (
            not isinstance(columns, Mapping)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in columns.items())
        ):
            raise ValueError(
                f"columns must map layoutopt's column names to yours, e.g. {{'clicks': "
                f"'click'}}; got {columns!r}"
            )
        self.store.check_writable("store the column mapping")
        self.store.ensure_tables(METADATA, 7306)
        with self.store.transaction() as conn:
            conn.execute(sa.delete(COLUMNS).where(COLUMNS.c.campaign_id == self.campaign_id))
            if columns:
                text = json.dumps(dict(columns), sort_keys=True)
                conn.execute(sa.insert(COLUMNS).values(campaign_id=self.campaign_id, columns=text))

    def _columns(self, given: Mapping[str, str] | None) -> dict[str, str] | None:
        """The stored mapping with ``given`` names winning."""
        return merge_columns(self.columns, given)
