"""The campaign store's schema: its tables, their version, and the migrations between versions.

Tables (see ``docs/campaigns.md``):

- ``layoutopt_meta``: ``schema_version`` and the layoutopt version that last wrote the schema.
- ``campaigns``: one row per campaign (``name`` unique), with a nullable ``prior`` slot (JSON
  text) for a meta-prior.
- ``space_versions``: every version of a campaign's space as ``LayoutSpace.to_dict()`` JSON,
  kept as an opaque document.
- ``batches``: one row per ingested file or frame: content hash (unique per campaign, so the
  same content is never stored twice), source name, row count, totals, the round it answers,
  the space version it was read with, time, and for an event log the histogram of its
  observed click delays (``delay_counts``, JSON; schema version 3).
- ``observations``: the batch aggregated to one row per distinct layout (and, when the data
  carry them, per segment / age cohort / round): variant codes as text, nullable ``segment``
  (JSON), ``age`` (hours) and ``round``, impressions, clicks.
- ``fits``: method, seed, options, diagnostics, the pick (JSON), the posterior as ArviZ NetCDF
  bytes, and the last batch it saw.
- ``proposals``: round number, seed, strategy, k, the fit used and the proposed rows (JSON).

:func:`migrate` brings a store of an older version up to :data:`SCHEMA_VERSION` inside the
caller's transaction; a store of a newer version is refused.
"""

from __future__ import annotations

import sqlalchemy as sa

from layoutopt.util.version import __version__

__all__ = [
    "BATCHES",
    "CAMPAIGNS",
    "FITS",
    "META",
    "MIGRATIONS",
    "OBSERVATIONS",
    "PROPOSALS",
    "SCHEMA_VERSION",
    "SPACE_VERSIONS",
    "migrate",
    "write_version",
]

#: Version of the table layout written by this code. History: 1 = first layout; 2 = adds
#: ``campaigns.prior`` (a slot for a meta-prior); 3 = adds ``batches.delay_counts``. Older
#: stores are migrated on open.
SCHEMA_VERSION = 3

METADATA = sa.MetaData()

META = sa.Table(
    "layoutopt_meta",
    METADATA,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
CAMPAIGNS = sa.Table(
    "campaigns",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("prior", sa.Text, nullable=True),
)
SPACE_VERSIONS = sa.Table(
    "space_versions",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("campaign_id", sa.Integer, sa.ForeignKey("campaigns.id"), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("space", sa.Text, nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.UniqueConstraint("campaign_id", "version"),
)
BATCHES = sa.Table(
    "batches",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("campaign_id", sa.Integer, sa.ForeignKey("campaigns.id"), nullable=False),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("layouts", sa.BigInteger, nullable=False),
    sa.Column("impressions", sa.BigInteger, nullable=False),
    sa.Column("clicks", sa.BigInteger, nullable=False),
    sa.Column("round", sa.Integer, nullable=False),
    sa.Column("space_version", sa.Integer, nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
    # event-log batches: JSON histogram of the observed click delays (delay.DELAY_EDGES)
    sa.Column("delay_counts", sa.Text, nullable=True),
    sa.UniqueConstraint("campaign_id", "content_hash"),
)
OBSERVATIONS = sa.Table(
    "observations",
    METADATA,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("batch_id", sa.Integer, sa.ForeignKey("batches.id"), nullable=False, index=True),
    # comma-separated variant codes, one per component, valid in every later space version
    # (update_space only appends variants)
    sa.Column("codes", sa.Text, nullable=False),
    sa.Column("segment", sa.Text, nullable=True),  # JSON {context variable: value}
    sa.Column("age", sa.Float, nullable=True),  # hours since served
    sa.Column("round", sa.Integer, nullable=True),  # the data's own round column, if any
    sa.Column("impressions", sa.BigInteger, nullable=False),
    sa.Column("clicks", sa.BigInteger, nullable=False),
)
FITS = sa.Table(
    "fits",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("campaign_id", sa.Integer, sa.ForeignKey("campaigns.id"), nullable=False),
    sa.Column("space_version", sa.Integer, nullable=False),
    sa.Column("last_batch_id", sa.Integer, nullable=False),
    sa.Column("method", sa.String(20), nullable=False),
    sa.Column("seed", sa.BigInteger, nullable=False),
    sa.Column("options", sa.Text, nullable=False),
    sa.Column("diagnostics", sa.Text, nullable=False),
    sa.Column("best", sa.Text, nullable=False),
    sa.Column("posterior", sa.LargeBinary, nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
)
PROPOSALS = sa.Table(
    "proposals",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("campaign_id", sa.Integer, sa.ForeignKey("campaigns.id"), nullable=False),
    sa.Column("round", sa.Integer, nullable=False),
    sa.Column("fit_id", sa.Integer, sa.ForeignKey("fits.id"), nullable=False),
    sa.Column("seed", sa.BigInteger, nullable=False),
    sa.Column("strategy", sa.String(40), nullable=False),
    sa.Column("k", sa.Integer, nullable=False),
    sa.Column("rows", sa.Text, nullable=False),
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.UniqueConstraint("campaign_id", "round"),
)


def write_version(conn: sa.Connection) -> None:
    """Record :data:`SCHEMA_VERSION` and this layoutopt's version in ``layoutopt_meta``."""
    conn.execute(sa.delete(META))
    conn.execute(
        sa.insert(META),
        [
            {"key": "schema_version", "value": str(SCHEMA_VERSION)},
            {"key": "layoutopt_version", "value": __version__},
        ],
    )


def _migrate_1_to_2(conn: sa.Connection) -> None:
    conn.execute(sa.text("ALTER TABLE campaigns ADD COLUMN prior TEXT"))


def _migrate_2_to_3(conn: sa.Connection) -> None:
    conn.execute(sa.text("ALTER TABLE batches ADD COLUMN delay_counts TEXT"))


#: ``MIGRATIONS[v]`` turns a store of schema version ``v`` into one of version ``v + 1``.
MIGRATIONS = {1: _migrate_1_to_2, 2: _migrate_2_to_3}


def migrate(conn: sa.Connection, target: str, *, create: bool) -> None:
    """Create the tables of a new store, or migrate an older one, in ``conn``'s transaction.

    Args:
        conn: a connection inside a write transaction.
        target: the store's name in messages.
        create: create the tables when the database has none.

    Raises:
        ValueError: if the database has campaign tables but no version, is not a store and
            ``create`` is False, or was written by a newer layoutopt (naming its version).
    """
    if conn.dialect.name == "postgresql":
        # serialise schema creation/migration between processes
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(7301)"))
    tables = set(sa.inspect(conn).get_table_names())
    if META.name not in tables:
        if tables & {t.name for t in METADATA.sorted_tables}:
            raise ValueError(f"{target}: has campaign tables but no layoutopt_meta")
        if not create:
            raise ValueError(
                f"{target}: not a layoutopt campaign store (create one with `campaign init`)"
            )
        METADATA.create_all(conn)
        write_version(conn)
        return
    meta = dict(conn.execute(sa.select(META.c.key, META.c.value)).all())
    version = int(meta.get("schema_version", "0"))
    if version > SCHEMA_VERSION:
        raise ValueError(
            f"{target}: store schema version {version} was written by layoutopt "
            f"{meta.get('layoutopt_version', '?')}; this layoutopt {__version__} reads "
            f"schema versions up to {SCHEMA_VERSION}; upgrade layoutopt"
        )
    for v in range(version, SCHEMA_VERSION):
        MIGRATIONS[v](conn)
    if version < SCHEMA_VERSION:
        write_version(conn)
