"""The campaign store: every space version, ingested batch, fit and proposal, in SQL.

SQLAlchemy 2 Core over a single SQLite file (the default: WAL journal, ``synchronous=FULL``,
a busy timeout, write transactions taken with ``BEGIN IMMEDIATE``) or a PostgreSQL database
(``postgresql://`` URLs, driven by psycopg 3; ``pip install "layoutopt[postgres]"``). The same
code runs on both. The store only stores: no statistics are computed in SQL. The tables and
their migrations are :mod:`layoutopt.campaign.schema`.

Every public write is one transaction: a failure or a ``kill -9`` at any moment leaves either
all of it or none of it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from layoutopt.campaign.schema import (
    BATCHES,
    CAMPAIGNS,
    FITS,
    META,
    OBSERVATIONS,
    PROPOSALS,
    SCHEMA_VERSION,
    SPACE_VERSIONS,
    migrate,
)
from layoutopt.campaign.storecheck import (
    check_batch_counts,
    check_layout_totals,
    check_sqlite_file,
    connect_message,
    holds_store,
    postgres_read_only,
    sqlite_read_only,
)
from layoutopt.util.io import mask_url, scrub_password

__all__ = [
    "BUSY_TIMEOUT_S",
    "CONNECT_TIMEOUT_S",
    "SCHEMA_VERSION",
    "RoundConflict",
    "Store",
    "StoreBusyError",
    "connect",
    "engine_url",
    "mask_url",
]

_WRITE = "layoutopt_write"  # execution option marking a write transaction

#: Default seconds a SQLite writer waits for another writer's lock before giving up.
BUSY_TIMEOUT_S = 60.0
#: Default seconds to wait for a PostgreSQL server to answer a connection (a ``connect_timeout``
#: in the URL's query wins): a port that accepts and never answers fails instead of hanging.
CONNECT_TIMEOUT_S = 10.0


class RoundConflict(RuntimeError):
    """Another writer opened a round while a proposal was computed (nothing was written)."""


class StoreBusyError(OSError):
    """Another process held the store's write lock for longer than the busy timeout."""


def now() -> str:
    """The current UTC time as ISO 8601 text (what the store keeps in ``created_at``)."""
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds")


def engine_url(target: str | Path) -> str:
    """The SQLAlchemy URL for a store target: a file path (SQLite) or a PostgreSQL URL.

    ``postgresql://`` and ``postgres://`` URLs get the psycopg 3 driver; any other string is
    a path to a SQLite file.

    Raises:
        ValueError: for another URL scheme (``mysql://`` ...), naming what is accepted.
    """
    text = str(target)
    for scheme in ("postgresql://", "postgres://"):
        if text.startswith(scheme):
            return "postgresql+psycopg://" + text[len(scheme) :]
    if text.startswith("postgresql+"):
        return text
    if "://" in text:
        raise ValueError(
            f"{text.split('://')[0]}:// stores are not supported; give a file path (SQLite) "
            "or a postgresql:// URL"
        )
    return "sqlite:///" + str(Path(text))


def _sqlite_engine(url: str, busy_timeout: float) -> sa.Engine:
    engine = sa.create_engine(url, connect_args={"timeout": busy_timeout, "isolation_level": None})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn, _record):
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):
        # Writers take the lock up front: a deferred transaction that reads and then writes
        # can fail with "database is locked" without waiting; IMMEDIATE waits (busy timeout).
        write = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def connect(
    target: str | Path,
    busy_timeout: float = BUSY_TIMEOUT_S,
    connect_timeout: float = CONNECT_TIMEOUT_S,
) -> sa.Engine:
    """A SQLAlchemy engine for ``target`` (see :func:`engine_url`), configured for the store.

    Args:
        target: a SQLite file path or a PostgreSQL URL.
        busy_timeout: seconds a SQLite writer waits for another writer's lock.
        connect_timeout: seconds to wait for a PostgreSQL server to answer a connection
            (whole seconds, at least 1; a ``connect_timeout`` in the URL wins).

    Raises:
        ValueError: for an unsupported URL, a non-numeric port, a missing directory, or a
            missing driver.
    """
    url = engine_url(target)
    if url.startswith("sqlite"):
        path = Path(str(target))
        if not path.parent.is_dir():
            raise ValueError(f"{path}: directory {str(path.parent)!r} does not exist")
        return _sqlite_engine(url, busy_timeout)
    parsed = postgres_url(target)
    args = {}
    if "connect_timeout" not in parsed.query:
        args["connect_timeout"] = max(1, round(connect_timeout))
    try:
        return sa.create_engine(parsed, pool_pre_ping=True, connect_args=args)
    except ModuleNotFoundError:
        raise ValueError(
            'PostgreSQL stores need psycopg 3: pip install "layoutopt[postgres]"'
        ) from None


def postgres_url(target: str | Path) -> sa.URL:
    """The parsed SQLAlchemy URL of a PostgreSQL target.

    Raises:
        ValueError: for a URL that does not parse (a port that is not a number ...), naming
            the URL with its password masked.
    """
    try:
        url = sa.engine.make_url(engine_url(target))
        _ = url.port
    except (ValueError, sa.exc.ArgumentError) as err:
        shown = mask_url(target)
        rest = str(target).split("://", 1)[-1].split("?", 1)[0]
        host = rest.rpartition("@")[2].split("/", 1)[0]
        port = host.rpartition(":")[2] if ":" in host else ""
        if port and not port.isdigit():
            raise ValueError(
                f"{shown}: port {port!r} is not a number; give host:PORT with a numeric port "
                "(e.g. :5432)"
            ) from None
        why = scrub_password(str(err).splitlines()[0] if str(err) else "", target)
        raise ValueError(f"{shown}: not a valid PostgreSQL URL ({why})") from None
    return url


def _lock_campaign(conn: sa.Connection, cid: int) -> None:
    """Serialise writers of one campaign (PostgreSQL row lock; SQLite holds the whole file)."""
    conn.execute(sa.select(CAMPAIGNS.c.id).where(CAMPAIGNS.c.id == cid).with_for_update())


def _is_busy(err: Exception) -> bool:
    return "database is locked" in str(err) or "database is busy" in str(err)


class Store:
    """A campaign store: the tables above behind one SQLAlchemy engine.

    Methods that write run in one transaction each. Reads return plain Python values (dicts,
    lists, bytes); turning them into spaces, observations and posteriors is the caller's job
    (:mod:`layoutopt.campaign`).

    Attributes:
        target: the path or URL given.
        engine: the SQLAlchemy engine.
    """

    def __init__(
        self,
        target: str | Path,
        *,
        create: bool,
        busy_timeout: float = BUSY_TIMEOUT_S,
        connect_timeout: float = CONNECT_TIMEOUT_S,
    ) -> None:
        """Open (``create=False``: must exist) or create-or-open a store.

        A SQLite file is looked at before it is opened, without writing to it (see
        :func:`~layoutopt.campaign.storecheck.check_sqlite_file`).

        Args:
            target: a SQLite file path or a PostgreSQL URL.
            create: create the store (and its tables) when missing.
            busy_timeout: seconds a SQLite writer waits for another writer's lock.
            connect_timeout: seconds to wait for a PostgreSQL server to answer.

        Raises:
            ValueError: one line naming the store (password masked): it does not exist
                (``create=False``), is not a layoutopt store (an empty file, another file
                format, another program's database), is damaged, was written by a newer
                layoutopt (naming its version), or its server does not answer.
        """
        url = engine_url(target)
        self.target = mask_url(target)  # shown in messages: never a password
        self.busy_timeout = float(busy_timeout)
        self.connect_timeout = float(connect_timeout)
        self._sqlite = Path(str(target)) if url.startswith("sqlite") else None
        if self._sqlite is not None:
            check_sqlite_file(self._sqlite, create=create)
            parsed = sa.engine.make_url(url)
        else:
            parsed = postgres_url(target)
        self._secret_url = str(target)
        fresh = self._sqlite is not None and not self._sqlite.exists()
        self.engine = connect(target, busy_timeout, connect_timeout)
        try:
            self._prepare(create)
        except StoreBusyError:
            self._abandon(False)  # another process is creating it: leave it be
            raise
        except sa.exc.DBAPIError as err:
            self._abandon(fresh)
            raise ValueError(
                connect_message(err, self.target, parsed, self.connect_timeout)
            ) from None
        except Exception:
            self._abandon(fresh)
            raise

    def _abandon(self, fresh: bool) -> None:
        """Release the engine; a SQLite store this call began creating is removed whole
        (file, ``-wal``, ``-shm``, ``-journal``) unless it holds a committed store (another
        process's): a failed ``init`` leaves nothing behind."""
        self.engine.dispose()
        if fresh and self._sqlite is not None and not holds_store(self._sqlite):
            for suffix in ("", "-wal", "-shm", "-journal"):
                with contextlib.suppress(OSError):
                    os.unlink(f"{self._sqlite}{suffix}")

    def __repr__(self) -> str:
        return f"Store({self.target!r})"

    def describe(self) -> str:
        """The store as it may be shown: its path, or its URL with the password masked."""
        return self.target

    def check_writable(self, action: str = "write to the store") -> None:
        """Refuse, before any long computation, a store that cannot be written.

        Args:
            action: what the caller was about to do, for the message.

        Raises:
            ValueError: one line naming the store and why it is read-only.
        """
        if self._sqlite is not None:
            why = sqlite_read_only(self._sqlite, self.engine)
        else:
            with self.engine.connect() as conn:
                why = postgres_read_only(conn)
        if why is not None:
            raise ValueError(f"{self.target}: cannot {action}: the store is read-only ({why})")

    # ------------------------------------------------------------------ schema
    def _prepare(self, create: bool) -> None:
        # The common case, a current store, needs no write lock.
        with self.engine.connect() as conn:
            if META.name in sa.inspect(conn).get_table_names():
                q = sa.select(META.c.value).where(META.c.key == "schema_version")
                if conn.execute(q).scalar() == str(SCHEMA_VERSION):
                    return
        with self.transaction() as conn:
            migrate(conn, self.target, create=create)

    def schema_version(self) -> int:
        """The schema version recorded in the store."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(META.c.value).where(META.c.key == "schema_version"))
            return int(row.scalar_one())

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """One transaction: committed when the block succeeds, rolled back when it raises.

        Raises:
            StoreBusyError: if SQLite's write lock could not be taken within the busy timeout.
        """
        try:
            with self.engine.connect().execution_options(**{_WRITE: True}) as conn:
                with conn.begin():
                    yield conn
        except sa.exc.OperationalError as err:
            if _is_busy(err):
                raise StoreBusyError(
                    f"{self.target}: store is busy (another process held its write lock for "
                    f"over {self.busy_timeout:g}s); try again"
                ) from None
            raise ValueError(self._write_message(err)) from None
        except sa.exc.IntegrityError:
            raise
        except sa.exc.DBAPIError as err:
            raise ValueError(self._write_message(err)) from None

    def _write_message(self, err: sa.exc.DBAPIError) -> str:
        """One line for a failed write: the driver's first line, no SQL, no parameters."""
        orig = err.orig if err.orig is not None else err
        first = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
        first = scrub_password(first, self._secret_url)
        low = first.lower()
        if "readonly" in low or "read-only" in low:
            return f"{self.target}: cannot write to the store: it is read-only"
        return f"{self.target}: cannot write to the store ({first}); nothing was written"

    def ensure_tables(self, metadata: sa.MetaData, lock: int) -> None:
        """Create ``metadata``'s tables when missing, in one transaction (idempotent; on
        PostgreSQL under advisory lock ``lock``, so concurrent first uses do not race): how
        the campaign's optional tables (serving, decisions, proposal options) appear in
        stores written before them, without a migration."""
        with self.transaction() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock})
            metadata.create_all(conn, checkfirst=True)

    def close(self) -> None:
        """Release the engine's connections."""
        self.engine.dispose()

    # ------------------------------------------------------------------ campaigns
    def campaign_names(self) -> list[str]:
        """Names of the campaigns in the store, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(CAMPAIGNS.c.name).order_by(CAMPAIGNS.c.id))
            return [r[0] for r in rows]

    def create_campaign(self, name: str, space: dict[str, Any]) -> int:
        """Add a campaign with its first space version (version 1); return its id.

        Raises:
            ValueError: if a campaign of that name exists.
        """
        with self.transaction() as conn:
            exists = conn.execute(sa.select(CAMPAIGNS.c.id).where(CAMPAIGNS.c.name == name))
            if exists.first() is not None:
                raise ValueError(f"{self.target}: campaign {name!r} already exists")
            cid = conn.execute(
                sa.insert(CAMPAIGNS).values(name=name, created_at=now(), prior=None)
            ).inserted_primary_key[0]
            conn.execute(
                sa.insert(SPACE_VERSIONS).values(
                    campaign_id=cid, version=1, space=json.dumps(space), created_at=now()
                )
            )
            return int(cid)

    def campaign_id(self, name: str | None) -> tuple[int, str]:
        """``(id, name)`` of the named campaign, or of the only one when ``name`` is None.

        Raises:
            ValueError: if there is no such campaign, or several and no name was given.
        """
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(CAMPAIGNS.c.id, CAMPAIGNS.c.name).order_by(CAMPAIGNS.c.id)
            ).all()
        names = [r.name for r in rows]
        if name is None:
            if len(rows) == 1:
                return int(rows[0].id), rows[0].name
            if not rows:
                raise ValueError(f"{self.target}: the store holds no campaign")
            raise ValueError(
                f"{self.target}: the store holds {len(rows)} campaigns {names}; pick one with "
                "--name / name="
            )
        for r in rows:
            if r.name == name:
                return int(r.id), r.name
        raise ValueError(f"{self.target}: no campaign named {name!r}; campaigns: {names}")

    def prior(self, cid: int) -> str | None:
        """The campaign's prior slot (JSON text), or None."""
        with self.engine.connect() as conn:
            q = sa.select(CAMPAIGNS.c.prior).where(CAMPAIGNS.c.id == cid)
            return conn.execute(q).scalar_one()

    def set_prior(self, cid: int, prior_json: str | None) -> None:
        """Store (or clear, with None) the campaign's prior slot."""
        with self.transaction() as conn:
            conn.execute(sa.update(CAMPAIGNS).where(CAMPAIGNS.c.id == cid).values(prior=prior_json))

    # ------------------------------------------------------------------ spaces
    def spaces(self, cid: int) -> list[dict[str, Any]]:
        """Every space version: ``{"version", "space" (dict), "created_at"}``, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(SPACE_VERSIONS)
                .where(SPACE_VERSIONS.c.campaign_id == cid)
                .order_by(SPACE_VERSIONS.c.version)
            ).all()
        return [
            {"version": r.version, "space": json.loads(r.space), "created_at": r.created_at}
            for r in rows
        ]

    def add_space(self, cid: int, space: dict[str, Any], expected_version: int) -> int:
        """Record a new space version after ``expected_version``; return the new number.

        Raises:
            ValueError: if another process recorded a version in between.
        """
        with self.transaction() as conn:
            _lock_campaign(conn, cid)
            latest = conn.execute(
                sa.select(sa.func.max(SPACE_VERSIONS.c.version)).where(
                    SPACE_VERSIONS.c.campaign_id == cid
                )
            ).scalar_one()
            if latest != expected_version:
                raise ValueError(
                    f"{self.target}: the space changed meanwhile (now version {latest}); "
                    "reopen the campaign and retry"
                )
            conn.execute(
                sa.insert(SPACE_VERSIONS).values(
                    campaign_id=cid,
                    version=latest + 1,
                    space=json.dumps(space),
                    created_at=now(),
                )
            )
            return latest + 1

    # ------------------------------------------------------------------ batches
    def add_batch(
        self, cid: int, batch: dict[str, Any], rows: Sequence[dict[str, Any]]
    ) -> tuple[int, bool]:
        """Store a batch and its observation rows in one transaction.

        Args:
            cid: campaign id.
            batch: ``content_hash, source, rows, layouts, impressions, clicks,
                space_version`` and optionally ``delay_counts`` (JSON text) (``round`` is set
                here: the number of proposals so far).
            rows: ``codes, segment, age, round, impressions, clicks`` per row.

        Returns:
            ``(batch id, added)``; ``added`` is False when a batch with the same content hash
            was already stored (then nothing is written and the id is the earlier batch's).

        Raises:
            ValueError: before anything is written, for a count that is not a whole number
                in ``[0, 2**53]``, batch totals past 2**53, or a layout whose stored
                impressions would pass 2**53 with this batch.
        """
        check_batch_counts(self.target, batch, rows)
        try:
            with self.transaction() as conn:
                _lock_campaign(conn, cid)
                earlier = conn.execute(
                    sa.select(BATCHES.c.id).where(
                        BATCHES.c.campaign_id == cid,
                        BATCHES.c.content_hash == batch["content_hash"],
                    )
                ).first()
                if earlier is not None:
                    return int(earlier.id), False
                check_layout_totals(conn, self.target, cid, rows, batch.get("source", "batch"))
                round_ = conn.execute(
                    sa.select(sa.func.count()).where(PROPOSALS.c.campaign_id == cid)
                ).scalar_one()
                bid = conn.execute(
                    sa.insert(BATCHES).values(
                        campaign_id=cid, round=int(round_), created_at=now(), **batch
                    )
                ).inserted_primary_key[0]
                for start in range(0, len(rows), 10_000):
                    chunk = [dict(r, batch_id=bid) for r in rows[start : start + 10_000]]
                    conn.execute(sa.insert(OBSERVATIONS), chunk)
                return int(bid), True
        except sa.exc.IntegrityError:
            # PostgreSQL: a concurrent transaction stored the same content first.
            with self.engine.connect() as conn:
                earlier = conn.execute(
                    sa.select(BATCHES.c.id).where(
                        BATCHES.c.campaign_id == cid,
                        BATCHES.c.content_hash == batch["content_hash"],
                    )
                ).first()
            if earlier is None:
                raise
            return int(earlier.id), False

    def batches(self, cid: int) -> list[dict[str, Any]]:
        """Every batch of the campaign as a dict of its columns, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(BATCHES).where(BATCHES.c.campaign_id == cid).order_by(BATCHES.c.id)
            ).all()
        return [r._asdict() for r in rows]

    def observation_rows(self, cid: int) -> list[tuple]:
        """Every stored observation row ``(codes, segment, age, round, impressions, clicks,
        batch round)``; the last is the round the row's batch answered."""
        with self.engine.connect() as conn:
            q = (
                sa.select(
                    OBSERVATIONS.c.codes,
                    OBSERVATIONS.c.segment,
                    OBSERVATIONS.c.age,
                    OBSERVATIONS.c.round,
                    OBSERVATIONS.c.impressions,
                    OBSERVATIONS.c.clicks,
                    BATCHES.c.round,
                )
                .join(BATCHES, BATCHES.c.id == OBSERVATIONS.c.batch_id)
                .where(BATCHES.c.campaign_id == cid)
                .order_by(OBSERVATIONS.c.id)
            )
            return [tuple(r) for r in conn.execute(q)]

    def last_batch_id(self, cid: int) -> int:
        """Id of the newest batch (0 when none)."""
        with self.engine.connect() as conn:
            q = sa.select(sa.func.max(BATCHES.c.id)).where(BATCHES.c.campaign_id == cid)
            return int(conn.execute(q).scalar_one() or 0)

    # ------------------------------------------------------------------ fits
    def add_fit(self, cid: int, fit: dict[str, Any]) -> int:
        """Store a fit (``space_version, last_batch_id, method, seed, options, diagnostics,
        best`` as JSON-able values, ``posterior`` bytes); return its id."""
        values = dict(fit)
        for key in ("options", "diagnostics", "best"):
            values[key] = json.dumps(values[key])
        with self.transaction() as conn:
            q = sa.insert(FITS).values(campaign_id=cid, created_at=now(), **values)
            return int(conn.execute(q).inserted_primary_key[0])

    def fits(self, cid: int, with_posterior: bool = False) -> list[dict[str, Any]]:
        """Every fit, oldest first (the posterior bytes only when asked for)."""
        cols = [c for c in FITS.c if with_posterior or c.name != "posterior"]
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(*cols).where(FITS.c.campaign_id == cid).order_by(FITS.c.id)
            ).all()
        out = []
        for r in rows:
            d = r._asdict()
            for key in ("options", "diagnostics", "best"):
                d[key] = json.loads(d[key])
            out.append(d)
        return out

    def fit_posterior(self, fit_id: int) -> bytes:
        """The NetCDF bytes of one fit's posterior."""
        with self.engine.connect() as conn:
            return bytes(
                conn.execute(sa.select(FITS.c.posterior).where(FITS.c.id == fit_id)).scalar_one()
            )

    # ------------------------------------------------------------------ proposals
    def add_proposal(
        self,
        cid: int,
        proposal: dict[str, Any],
        *,
        expected_round: int | None = None,
        also=None,
    ) -> int:
        """Record a proposal as the next round (``fit_id, seed, strategy, k, rows``); return
        the round number (1 for the first proposal).

        Args:
            cid: the campaign id.
            proposal: the proposal's fields.
            expected_round: the round the caller computed the proposal for (its seed and
                data); when another writer opened a round meanwhile, nothing is written and
                :class:`RoundConflict` is raised, so the caller can look again.
            also: ``(connection, round) -> None`` writing more rows of the same proposal in
                the same transaction (its options).

        Raises:
            RoundConflict: when the next round is not ``expected_round``.
        """
        with self.transaction() as conn:
            _lock_campaign(conn, cid)
            count = conn.execute(
                sa.select(sa.func.count()).where(PROPOSALS.c.campaign_id == cid)
            ).scalar_one()
            round_ = int(count) + 1
            if expected_round is not None and round_ != int(expected_round):
                raise RoundConflict(
                    f"{self.target}: round {round_ - 1} was proposed by another process while "
                    f"this one computed round {int(expected_round)}"
                )
            values = dict(proposal, rows=json.dumps(proposal["rows"]))
            conn.execute(
                sa.insert(PROPOSALS).values(
                    campaign_id=cid, round=round_, created_at=now(), **values
                )
            )
            if also is not None:
                also(conn, round_)
            return round_

    def proposals(self, cid: int) -> list[dict[str, Any]]:
        """Every proposal, oldest first, with its rows decoded."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(PROPOSALS)
                .where(PROPOSALS.c.campaign_id == cid)
                .order_by(PROPOSALS.c.round)
            ).all()
        return [dict(r._asdict(), rows=json.loads(r.rows)) for r in rows]
