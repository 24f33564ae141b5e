"""The store's guards: what a target is before it is opened, and what may be written to it.

Split from :mod:`layoutopt.campaign.store`. Every check here fails with one ``ValueError``
line that names the store (its URL with the password masked) and the fault:

- :func:`check_sqlite_file` looks at a SQLite target *without writing to it* (an empty file
  stays empty, another program's database keeps its journal mode): a directory, an empty
  file, a file that is not SQLite, another program's database, a damaged or newer schema;
- :func:`connect_message` turns a driver's connection error into one line (a timeout names
  the host and port; a password the driver quotes is masked);
- :func:`sqlite_read_only` and :func:`postgres_read_only` say why a store cannot be written;
- :func:`check_batch_counts` and :func:`check_layout_totals` keep every stored count exact:
  a batch's totals and every layout's stored totals stay within ``MAX_COUNT`` (2^53).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from layoutopt.campaign.schema import (
    BATCHES,
    META,
    METADATA,
    OBSERVATIONS,
    SPACE_VERSIONS,
    check_version,
)
from layoutopt.util.io import scrub_password
from layoutopt.util.limits import MAX_COUNT

__all__ = [
    "SQLITE_HEADER",
    "check_batch_counts",
    "check_layout_totals",
    "check_sqlite_file",
    "holds_store",
    "connect_message",
    "postgres_read_only",
    "sqlite_read_only",
]

#: The first 16 bytes of every SQLite 3 database file.
SQLITE_HEADER = b"SQLite format 3\x00"


def _what_file(head: bytes) -> str:
    """A few words on what a non-SQLite file looks like, from its first bytes."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "a binary file that is not a SQLite database"
    first = text.strip().splitlines()[0][:40] if text.strip() else ""
    return f"a text file (starting {first!r}), not a SQLite database"


def check_sqlite_file(path: Path, *, create: bool) -> None:
    """Refuse a SQLite target that is not (and cannot become) a layoutopt store.

    Reads the file (read-only, no journal-mode change); a missing file passes when
    ``create`` is True.

    Args:
        path: the SQLite file.
        create: whether the caller will create the store when missing.

    Raises:
        ValueError: one line naming ``path`` and what it is.
    """
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, not a campaign store; give a file path")
    if not path.exists():
        if create:
            return
        raise ValueError(f"{path}: no such campaign store (create it with `campaign init`)")
    try:
        with open(path, "rb") as fh:
            head = fh.read(100)
    except OSError as err:
        raise ValueError(f"{path}: cannot read the store ({err.strerror or err})") from None
    if not head:
        raise ValueError(
            f"{path}: is an empty file, not a campaign store; remove it or give another path "
            "(`campaign init` creates the store)"
        )
    if not head.startswith(SQLITE_HEADER):
        raise ValueError(f"{path}: is {_what_file(head)}; not a layoutopt campaign store")
    tables, meta = _sqlite_contents(path)
    if META.name not in tables:
        ours = {t.name for t in METADATA.sorted_tables}
        if tables & ours:
            raise ValueError(f"{path}: damaged campaign store: campaign tables but no {META.name}")
        if tables:
            shown = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
            raise ValueError(
                f"{path}: is a SQLite database of another program (tables: {shown}), not a "
                "layoutopt campaign store"
            )
        if not create:
            raise ValueError(
                f"{path}: is an empty SQLite database, not a layoutopt campaign store "
                "(create one with `campaign init`)"
            )
        return
    check_version(meta, str(path))


def holds_store(path: Path) -> bool:
    """Whether the SQLite file at ``path`` holds a committed ``layoutopt_meta`` table (False
    for a missing, empty or unreadable file)."""
    try:
        if path.stat().st_size == 0:
            return False
        return META.name in _sqlite_contents(path)[0]
    except (OSError, ValueError):
        return False


def _sqlite_contents(path: Path) -> tuple[set[str], dict[str, str]]:
    """Table names and ``layoutopt_meta`` rows of a SQLite file, read without writing."""
    uri = Path(path).resolve().as_uri() + "?mode=ro"
    try:
        con = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as err:
        raise ValueError(f"{path}: cannot read the store ({err})") from None
    try:
        rows = con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        tables = {r[0] for r in rows}
        meta = {}
        if META.name in tables:
            q = f"SELECT key, value FROM {META.name}"  # noqa: S608 (a constant table name)
            meta = {str(k): str(v) for k, v in con.execute(q).fetchall()}
        return tables, meta
    except sqlite3.OperationalError as err:
        # "disk I/O error", "database or disk is full": the device, not the file's content
        raise ValueError(f"{path}: cannot read the store ({err}; is the disk full?)") from None
    except sqlite3.DatabaseError as err:
        raise ValueError(
            f"{path}: is a damaged SQLite database, not a usable campaign store ({err})"
        ) from None
    finally:
        con.close()


def connect_message(err: BaseException, target: str, url: sa.URL, timeout: float) -> str:
    """One line for a failure to open a store: the driver's first line, password masked; a
    connect timeout names the host, the port and the timeout."""
    orig = getattr(err, "orig", None) or err
    first = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    first = scrub_password(first, url.render_as_string(hide_password=False))
    if "timeout expired" in first or "timed out" in first:
        host, port = url.host or "localhost", url.port or 5432
        return (
            f"{target}: cannot open the store: {host} port {port} accepted no connection "
            f"within {timeout:g}s (connect timeout; set it with ?connect_timeout=SECONDS)"
        )
    return f"{target}: cannot open the store ({first})"


def sqlite_read_only(path: Path, engine=None) -> str | None:
    """Why the SQLite store at ``path`` cannot be written (None when it can).

    Tries what a write needs: a write through ``engine`` (a table created in a transaction
    that is rolled back: SQLite opens a file it cannot open for writing read-only, and
    refuses the write) and creating a file in its directory (the journal);
    permission bits alone do not stop root, a read-only file system or an immutable file do.

    The database file itself is never opened here: closing any descriptor of it releases
    every POSIX lock this process holds on it, SQLite's included, and a concurrent writer
    could then corrupt the store (it did: "database disk image is malformed" with five
    writers at once, ``tests/campaign/test_store_attacks.py``).
    """
    if engine is not None:
        with engine.connect() as conn:
            raw = conn.connection.driver_connection
            try:
                # a write SQLite must make to the file (BEGIN IMMEDIATE alone succeeds on an
                # immutable file), rolled back: nothing is left
                raw.execute("BEGIN IMMEDIATE")
                raw.execute("CREATE TABLE main.layoutopt_write_probe (x)")
            except Exception as err:  # sqlite3.OperationalError: the driver's own words
                text = str(err)
                if "readonly" not in text and "read-only" not in text:
                    raise
                return f"the file is read-only ({text})"
            finally:
                if raw.in_transaction:
                    raw.execute("ROLLBACK")
    probe = path.with_name(f".{path.name}.write-probe-{os.getpid()}")
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return None
    except OSError as err:
        return f"its directory {str(path.parent)!r} is read-only ({err.strerror})"
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return None


def postgres_read_only(conn: sa.Connection) -> str | None:
    """Why the PostgreSQL store behind ``conn`` cannot be written (None when it can): a
    read-only transaction default, a hot standby, or no INSERT right on the tables."""
    if conn.exec_driver_sql("SHOW transaction_read_only").scalar() == "on":
        return "the database is read-only (transaction_read_only is on)"
    q = sa.text("SELECT has_table_privilege(:t, 'INSERT') AND has_table_privilege(:o, 'INSERT')")
    if not conn.execute(q, {"t": BATCHES.name, "o": OBSERVATIONS.name}).scalar():
        return "this user may not insert into its tables"
    return None


def check_batch_counts(target: str, batch: dict[str, Any], rows: Sequence[dict]) -> None:
    """Refuse a batch whose counts are not exact: a row's count outside ``[0, MAX_COUNT]``
    or not an integer, or batch totals past ``MAX_COUNT`` (summed in Python integers, which
    never wrap). Sets ``batch["impressions"]`` and ``batch["clicks"]`` to the exact sums.

    Raises:
        ValueError: naming the store, the batch's source and the row or total.
    """
    source = batch.get("source", "batch")
    totals = {"impressions": 0, "clicks": 0}
    for i, row in enumerate(rows):
        for name in totals:
            value = row[name]
            exact = int(value)
            if exact != value or not 0 <= exact <= MAX_COUNT:
                raise ValueError(
                    f"{target}: {source}: row {i + 1}, column {name!r}: {value!r} is not a "
                    f"whole number in [0, 2**53 = {MAX_COUNT}]"
                )
            totals[name] += exact
    for name, total in totals.items():
        if total > MAX_COUNT:
            raise ValueError(
                f"{target}: {source}: the batch's {name} add up to {total}, more than 2**53 = "
                f"{MAX_COUNT} (the largest exact count); split the batch or scale the counts "
                "down"
            )
        batch[name] = total


def check_layout_totals(
    conn: sa.Connection, target: str, cid: int, rows: Sequence[dict], source: str
) -> None:
    """Refuse rows that would bring a layout's stored impressions past ``MAX_COUNT``.

    Stored totals are read per layout (``codes``) inside the caller's transaction; each is at
    most ``MAX_COUNT`` (this check ran on every earlier batch), so the SQL sums cannot
    overflow a 64-bit integer. The rows' own sums are Python integers.

    Raises:
        ValueError: naming the store, ``source``, the layout's codes and the totals.
    """
    new: dict[str, int] = {}
    for row in rows:
        new[row["codes"]] = new.get(row["codes"], 0) + int(row["impressions"])
    if not new:
        return
    stored = (
        sa.select(OBSERVATIONS.c.codes, sa.func.sum(OBSERVATIONS.c.impressions).label("n"))
        .join(BATCHES, BATCHES.c.id == OBSERVATIONS.c.batch_id)
        .where(BATCHES.c.campaign_id == cid)
        .group_by(OBSERVATIONS.c.codes)
    )
    top = conn.execute(sa.select(sa.func.max(stored.subquery().c.n))).scalar()
    if top is None or int(top) + max(new.values()) <= MAX_COUNT:
        return
    for codes, n in conn.execute(stored):
        total = int(n) + new.get(codes, 0)
        if codes in new and total > MAX_COUNT:
            raise ValueError(
                f"{target}: {source}: layout {_labels(conn, cid, codes)} holds {int(n)} stored "
                f"impressions; this batch's {new[codes]} would bring it to {total}, more than "
                f"2**53 = {MAX_COUNT} (the largest exact count); nothing was stored"
            )


def _labels(conn: sa.Connection, cid: int, codes: str) -> str:
    """A stored layout's codes as ``{component: label}`` text, from the latest space."""
    q = (
        sa.select(SPACE_VERSIONS.c.space)
        .where(SPACE_VERSIONS.c.campaign_id == cid)
        .order_by(SPACE_VERSIONS.c.version.desc())
        .limit(1)
    )
    try:
        components = json.loads(conn.execute(q).scalar_one())["components"]
        pairs = zip(components.items(), codes.split(","), strict=True)
        return str({name: labels[int(c)] for (name, labels), c in pairs})
    except (KeyError, IndexError, ValueError, TypeError, sa.exc.NoResultFound):
        return f"with codes [{codes}]"
