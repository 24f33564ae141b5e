"""The campaign store: SQLite and a real PostgreSQL server, all-or-nothing and idempotent
ingests, kill -9 mid-ingest, two concurrent ingests, schema versions."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from layoutopt.campaign.campaign import Campaign
from layoutopt.campaign.store import SCHEMA_VERSION, Store, StoreBusyError, engine_url
from layoutopt.model.space import LayoutSpace

SMALL = LayoutSpace({"a": ["a1", "a2", "a3"], "b": ["b1", "b2"], "c": ["c1", "c2", "c3"]})
# 10^6 layouts: a results file can hold ~10^5 distinct ones, so an ingest writes many rows
LARGE = LayoutSpace({f"x{k}": [f"v{v}" for v in range(10)] for k in range(6)})


def results(space: LayoutSpace, n: int, seed: int) -> pd.DataFrame:
    """``n`` random result rows on ``space`` (labels, impressions, clicks)."""
    rng = np.random.default_rng(seed)
    cols = {
        c: rng.choice(np.asarray(v), n)
        for c, v in zip(space.components, space.variants, strict=True)
    }
    imp = rng.integers(50, 500, n)
    return pd.DataFrame(cols | {"impressions": imp, "clicks": rng.binomial(imp, 0.1)})


def counts(target: str) -> dict[str, int]:
    """Rows per table, read with plain SQLAlchemy (not through the code under test)."""
    engine = sa.create_engine(engine_url(target))
    try:
        with engine.connect() as conn:
            return {
                t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
                for t in ("campaigns", "batches", "observations", "fits", "proposals")
            }
    finally:
        engine.dispose()


def test_engine_url_accepts_paths_and_postgres_only(tmp_path):
    assert engine_url(tmp_path / "c.db") == f"sqlite:///{tmp_path / 'c.db'}"
    assert engine_url("postgresql://u@h:5/db") == "postgresql+psycopg://u@h:5/db"
    assert engine_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    with pytest.raises(ValueError, match=r"mysql:// stores are not supported"):
        engine_url("mysql://u@h/db")


def test_sqlite_pragmas(tmp_path):
    Campaign.create(tmp_path / "c.db", SMALL).close()
    store = Store(tmp_path / "c.db", create=False)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
    store.close()


def test_several_campaigns_picked_by_name(store_target):
    Campaign.create(store_target, SMALL, name="one").close()
    with Campaign.open(store_target) as camp:  # the only one: no name needed
        assert camp.name == "one"
    Campaign.create(store_target, LARGE, name="two").close()
    with pytest.raises(ValueError, match=r"holds 2 campaigns \['one', 'two'\]; pick one"):
        Campaign.open(store_target)
    with Campaign.open(store_target, name="two") as camp:
        assert camp.space == LARGE and camp.space_version == 1
    with pytest.raises(ValueError, match=r"no campaign named 'three'; campaigns: \['one', 'two'\]"):
        Campaign.open(store_target, name="three")
    with pytest.raises(ValueError, match=r"campaign 'one' already exists"):
        Campaign.create(store_target, SMALL, name="one")


def test_open_missing_store_is_an_error(tmp_path):
    with pytest.raises(ValueError, match=r"no such campaign store"):
        Campaign.open(tmp_path / "missing.db")
    sqlite3.connect(tmp_path / "other.db").execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(ValueError, match=r"not a layoutopt campaign store"):
        Campaign.open(tmp_path / "other.db")


def test_ingest_is_idempotent(store_target, tmp_path):
    file = tmp_path / "r0.csv"
    results(SMALL, 40, seed=0).to_csv(file, index=False)
    with Campaign.create(store_target, SMALL) as camp:
        first = camp.ingest(file)
        before = counts(store_target)
        again = camp.ingest(file)
        assert first.added and not again.added
        assert again.batch_id == first.batch_id and again.rows == 40
        assert "already ingested (batch 1); nothing added" in again.message()
        assert counts(store_target) == before
        # the same content as a frame is a different source; the same frame twice is one batch
        frame = results(SMALL, 10, seed=1)
        assert camp.ingest(frame).added and not camp.ingest(frame.copy()).added
        obs = camp.observations()
    want = pd.concat([results(SMALL, 40, seed=0), results(SMALL, 10, seed=1)])
    assert int(obs.impressions.sum()) == int(want["impressions"].sum())
    assert int(obs.clicks.sum()) == int(want["clicks"].sum())


def test_one_bad_row_stores_nothing_and_names_row_column_value(store_target, tmp_path):
    frame = results(SMALL, 25, seed=2)
    frame["clicks"] = frame["clicks"].astype(object)
    frame.loc[22, "clicks"] = "seven"  # row 23 of the table, line 24 of the file
    file = tmp_path / "bad.csv"
    frame.to_csv(file, index=False)
    with Campaign.create(store_target, SMALL) as camp:
        before = counts(store_target)
        # chunks of 10 rows: the bad row is in the third chunk, numbered from the file start
        with pytest.raises(ValueError, match=rf"{file}: row 23, column 'clicks': 'seven'"):
            camp.ingest(file, chunk_rows=10)
        with pytest.raises(ValueError, match=rf"{file}: row 23, column 'clicks': 'seven'"):
            camp.ingest(file)
        assert counts(store_target) == before
        frame.loc[22, "clicks"] = 3
        frame.to_csv(file, index=False)
        assert camp.ingest(file).added


def test_chunked_ingest_equals_whole_file(tmp_path):
    file = tmp_path / "r.parquet"
    results(SMALL, 1000, seed=3).to_parquet(file)
    with (
        Campaign.create(tmp_path / "a.db", SMALL) as a,
        Campaign.create(tmp_path / "b.db", SMALL) as b,
    ):
        a.ingest(file, chunk_rows=64)
        b.ingest(file)
        oa, ob = a.observations(), b.observations()
    np.testing.assert_array_equal(oa.codes, ob.codes)
    np.testing.assert_array_equal(oa.impressions, ob.impressions)
    np.testing.assert_array_equal(oa.clicks, ob.clicks)


def test_newer_schema_is_refused_older_is_migrated(tmp_path):
    db = tmp_path / "c.db"
    Campaign.create(db, SMALL).close()
    con = sqlite3.connect(db)
    con.execute("UPDATE layoutopt_meta SET value = '99' WHERE key = 'schema_version'")
    con.execute("UPDATE layoutopt_meta SET value = '7.1.0' WHERE key = 'layoutopt_version'")
    con.commit()
    con.close()
    with pytest.raises(
        ValueError, match=r"schema version 99 was written by layoutopt 7\.1\.0; .* upgrade"
    ):
        Campaign.open(db)
    # schema 1 had no prior slot on campaigns, schemas 1 and 2 no delay histogram on batches
    con = sqlite3.connect(db)
    con.execute("ALTER TABLE campaigns DROP COLUMN prior")
    con.execute("ALTER TABLE batches DROP COLUMN delay_counts")
    con.execute("UPDATE layoutopt_meta SET value = '1' WHERE key = 'schema_version'")
    con.commit()
    con.close()
    with Campaign.open(db) as camp:
        assert camp.store.schema_version() == SCHEMA_VERSION == 3
        camp.store.set_prior(camp.campaign_id, '{"kind": "meta"}')
        assert camp.store.prior(camp.campaign_id) == '{"kind": "meta"}'
        columns = {c["name"] for c in sa.inspect(camp.store.engine).get_columns("batches")}
        assert "delay_counts" in columns


def test_a_held_write_lock_gives_a_clear_busy_error(tmp_path):
    db = tmp_path / "c.db"
    Campaign.create(db, SMALL).close()
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    store = Store(db, create=False, busy_timeout=0.2)
    try:
        with pytest.raises(StoreBusyError, match=r"store is busy .* over 0.2s\); try again"):
            store.add_space(1, SMALL.to_dict(), expected_version=1)
        other.execute("ROLLBACK")
        assert store.add_space(1, SMALL.to_dict(), expected_version=1) == 2
    finally:
        other.close()
        store.close()


def test_unreachable_postgres_is_one_clear_error():
    with pytest.raises(
        ValueError, match=r"postgres:\*\*\*@127\.0\.0\.1:1/x: cannot open the store"
    ):
        Campaign.open("postgresql://postgres:secret@127.0.0.1:1/x")


_INGEST = """
import sys
from layoutopt.campaign import Campaign
camp = Campaign.open(sys.argv[1])
print("ingesting", flush=True)
print(camp.ingest(sys.argv[2]).message(), flush=True)
"""


def _ingest_process(target: str, file: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", _INGEST, target, str(file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_two_concurrent_ingests_both_land(store_target, tmp_path):
    files = []
    for i in range(2):
        files.append(tmp_path / f"part{i}.csv")
        results(LARGE, 20_000, seed=10 + i).to_csv(files[-1], index=False)
    Campaign.create(store_target, LARGE).close()
    # a third process races with the first one on the same file: stored once
    procs = [_ingest_process(store_target, f) for f in files + files[:1]]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    said = sorted("nothing added" in out for out, _ in outs)
    assert said == [False, False, True]
    with Campaign.open(store_target) as camp:
        assert sorted(Path(b["source"]).name for b in camp.store.batches(camp.campaign_id)) == [
            "part0.csv",
            "part1.csv",
        ]
        obs = camp.observations()
    total = sum(int(pd.read_csv(f)["impressions"].sum()) for f in files)
    assert int(obs.impressions.sum()) == total


def _sqlite_writing(db: Path):
    """True once the write-ahead log has grown by 1 MB: a transaction is being written."""
    wal = Path(f"{db}-wal")
    size0 = wal.stat().st_size if wal.exists() else 0
    return lambda: (wal.stat().st_size if wal.exists() else 0) > size0 + 1_000_000


def _postgres_writing(url: str):
    """True once a backend is inside a transaction inserting observation rows."""
    engine = sa.create_engine(engine_url(url))

    def check() -> bool:
        with engine.connect() as conn:
            q = sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE xact_start IS NOT NULL "
                "AND query ILIKE 'INSERT INTO observations%'"
            )
            return conn.execute(q).scalar_one() > 0

    check.dispose = engine.dispose
    return check


@pytest.mark.slow
def test_kill_9_mid_ingest_leaves_a_consistent_store(store_target, tmp_path):
    file = tmp_path / "big.csv"
    frame = results(LARGE, 150_000, seed=20)
    frame.to_csv(file, index=False)
    Campaign.create(store_target, LARGE).close()
    sqlite = "://" not in store_target
    writing = _sqlite_writing(Path(store_target)) if sqlite else _postgres_writing(store_target)
    proc = _ingest_process(store_target, file)
    assert proc.stdout.readline().strip() == "ingesting"
    # kill while the batch's transaction is being written
    deadline = time.monotonic() + 300
    while not writing():
        assert proc.poll() is None, "the ingest finished before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    if sqlite:
        con = sqlite3.connect(store_target)
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        con.close()
    else:
        # the server notices the dead client and rolls its transaction back
        while writing():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        writing.dispose()
    # all or nothing: no batch, or one batch with every one of its observation rows
    after = counts(store_target)
    if after["batches"]:
        with Campaign.open(store_target) as camp:
            (batch,) = camp.store.batches(camp.campaign_id)
        assert after["observations"] == batch["layouts"]
    else:
        assert after["observations"] == 0
    with Campaign.open(store_target) as camp:  # opens, and the same file ingests in full
        result = camp.ingest(file)
        assert result.added == (after["batches"] == 0) and result.rows == 150_000
        assert int(camp.observations().impressions.sum()) == int(frame["impressions"].sum())


def test_a_row_with_extra_fields_is_refused(tmp_path):
    file = tmp_path / "extra.csv"
    file.write_text("a,b,c,impressions,clicks\na1,b1,c1,10,1\na2,b1,c1,10,1,99\n")
    with Campaign.create(tmp_path / "c.db", SMALL) as camp:
        with pytest.raises(ValueError, match=r"extra\.csv: not a readable CSV file .*line 3"):
            camp.ingest(file)
        assert camp.store.batches(camp.campaign_id) == []
