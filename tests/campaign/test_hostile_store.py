"""The store attacked: passwords in URLs, a server that never answers, counts past 2^53, files
that are not stores, read-only stores. Each refusal is one line naming the store and the
fault, and leaves the store (and every file) as it was."""

from __future__ import annotations

import hashlib
import socket
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from layoutopt.campaign.campaign import Campaign
from layoutopt.campaign.store import Store, engine_url, mask_url
from layoutopt.util.io import scrub_password
from layoutopt.util.limits import MAX_COUNT

SMALL_TOML = '[components]\na = ["a1", "a2"]\nb = ["b1", "b2"]\n'
SECRET = "s3cr@t/pw"


def _space():
    from layoutopt.model.space import LayoutSpace

    return LayoutSpace({"a": ["a1", "a2", "a3"], "b": ["b1", "b2"], "c": ["c1", "c2", "c3"]})


def _wide():
    from layoutopt.model.space import LayoutSpace

    return LayoutSpace({f"x{k}": [f"v{v}" for v in range(11)] for k in range(3)})  # 1,331


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text and "Traceback" not in text and "SELECT" not in text, text
    return text


def _totals(target: str) -> tuple[int, int, int]:
    engine = sa.create_engine(engine_url(target))
    try:
        with engine.connect() as conn:
            return tuple(
                conn.execute(sa.text(q)).scalar_one()
                for q in (
                    "SELECT count(*) FROM batches",
                    "SELECT count(*) FROM observations",
                    "SELECT coalesce(sum(impressions), 0) FROM batches",
                )
            )
    finally:
        engine.dispose()


# ---------------------------------------------------------------------- 1. passwords
@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://me:pw@db:5432/ab", "postgresql://me:***@db:5432/ab"),
        (f"postgresql://me:{SECRET}@db/ab", "postgresql://me:***@db/ab"),
        ("postgres://me@db/ab?password=pw&sslmode=x", "postgres://me@db/ab?password=***&sslmode=x"),
        ("postgresql://me@db/ab", "postgresql://me@db/ab"),
        ("/tmp/c:d@e.db", "/tmp/c:d@e.db"),
    ],
)
def test_mask_url_hides_every_password(url, shown):
    assert mask_url(url) == shown


def test_scrub_password_removes_raw_and_decoded_passwords():
    url = "postgresql://me:p%40ss@db/x?password=other"
    assert scrub_password("bad p@ss, p%40ss and other", url) == "bad ***, *** and ***"


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://postgres:{SECRET}@127.0.0.1:1/x",
        f"postgresql://postgres@127.0.0.1:1/x?password={SECRET}",
        f"postgresql://postgres:{SECRET}@127.0.0.1:abc/x",
    ],
)
def test_no_message_shows_the_password(url):
    with pytest.raises(ValueError) as err:
        Campaign.open(url)
    text = _one_line(err)
    assert SECRET not in text and "s3cr" not in text and "pw" not in text.split(":", 2)[-1]
    assert "***" in text


def test_non_numeric_port_is_named():
    with pytest.raises(ValueError, match=r"port 'abc' is not a number") as err:
        Campaign.open("postgresql://u:pw@127.0.0.1:abc/x")
    assert "pw" not in _one_line(err).replace("postgresql", "")


def test_store_repr_and_describe_mask_the_password(postgres_server):
    host = postgres_server.split("@", 1)[1]
    url = f"postgresql://postgres:{SECRET.replace('@', '%40').replace('/', '%2F')}@{host}/postgres"
    store = Store(url, create=True)
    try:
        for text in (repr(store), store.describe(), store.target):
            assert "s3cr" not in text and "***" in text
    finally:
        store.close()


# ---------------------------------------------------------------------- 2. connect timeout
@pytest.fixture
def silent_port():
    """A local port that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for s in held:
        s.close()
    server.close()


def _open_in_thread(fn) -> tuple[threading.Thread, list]:
    out: list = []

    def run():
        try:
            fn()
            out.append(None)
        except Exception as err:  # the test inspects it
            out.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(60)  # far beyond the 2 s timeouts below: a hang fails the test
    return thread, out


def test_a_port_that_never_answers_times_out_naming_host_and_port(silent_port):
    url = f"postgresql://postgres:pw@127.0.0.1:{silent_port}/x"
    thread, out = _open_in_thread(lambda: Store(url, create=False, connect_timeout=2))
    assert not thread.is_alive(), "Store() hung on a port that never answers"
    assert isinstance(out[0], ValueError)
    text = str(out[0])
    assert f"127.0.0.1 port {silent_port} accepted no connection within 2s" in text
    assert "\n" not in text and ":pw@" not in text


def test_connect_timeout_from_the_url(silent_port):
    url = f"postgresql://postgres@127.0.0.1:{silent_port}/x?connect_timeout=2"
    thread, out = _open_in_thread(lambda: Campaign.open(url))
    assert not thread.is_alive(), "Campaign.open hung on a port that never answers"
    assert isinstance(out[0], ValueError)
    assert f"port {silent_port} accepted no connection" in str(out[0])


# ---------------------------------------------------------------------- 3. counts
@pytest.mark.parametrize("cell", ["9007199254740993", "9007199254740993.0", "9007199254740992.5"])
def test_a_count_past_2_53_is_refused_not_rounded(tmp_path, cell):
    db = tmp_path / "c.db"
    Campaign.create(db, _space()).close()
    file = tmp_path / "r.csv"
    file.write_text(f"a,b,c,impressions,clicks\na1,b1,c1,3,0\na1,b1,c2,{cell},0\n")
    with Campaign.open(db) as camp, pytest.raises(ValueError) as err:
        camp.ingest(file)
    what = "is not a whole number" if cell.endswith(".5") else "is too large (limit 2**53"
    assert f"r.csv: row 2, column 'impressions': '{cell}' {what}" in _one_line(err)
    assert _totals(str(db)) == (0, 0, 0)


def test_a_batch_whose_total_passes_2_53_is_refused(store_target):
    space = _wide()
    Campaign.create(store_target, space).close()
    codes = np.array(np.unravel_index(np.arange(1100), space.cardinalities)).T
    frame = pd.DataFrame(
        {c: np.asarray(space.variants[k])[codes[:, k]] for k, c in enumerate(space.components)}
    )
    frame["impressions"] = MAX_COUNT  # each row within the limit; 1,100 of them are not
    frame["clicks"] = 0
    with Campaign.open(store_target) as camp, pytest.raises(ValueError) as err:
        camp.ingest(frame)
    text = _one_line(err)
    assert f"impressions add up to {1100 * MAX_COUNT}, more than 2**53" in text
    assert _totals(store_target) == (0, 0, 0)


def test_a_second_batch_past_a_layouts_limit_is_refused_before_writing(store_target):
    Campaign.create(store_target, _space()).close()
    row = {"a": ["a2"], "b": ["b1"], "c": ["c3"], "impressions": [MAX_COUNT], "clicks": [5]}
    with Campaign.open(store_target) as camp:
        assert camp.ingest(pd.DataFrame(row)).added
        before = _totals(store_target)
        assert before == (1, 1, MAX_COUNT)
        with pytest.raises(ValueError) as err:
            camp.ingest(pd.DataFrame(row | {"impressions": [1], "clicks": [0]}))
        text = _one_line(err)
        assert "layout {'a': 'a2', 'b': 'b1', 'c': 'c3'} holds " in text
        assert f"holds {MAX_COUNT} stored impressions; this batch's 1 would bring it" in text
        assert _totals(store_target) == before
        # the campaign is not stuck: another layout still lands
        assert camp.ingest(pd.DataFrame(row | {"a": ["a1"], "impressions": [7]})).added


# ---------------------------------------------------------------------- 4. not a store
def _sqlite_of_another_program(path: Path) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    con.execute("INSERT INTO notes (body) VALUES ('keep me')")
    con.commit()
    con.close()


@pytest.mark.parametrize("create", [False, True])
@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("toml", r"is a text file \(starting '\[components\]'\), not a SQLite database"),
        ("empty", r"is an empty file, not a campaign store"),
        ("binary", r"is a binary file that is not a SQLite database"),
        ("other", r"is a SQLite database of another program \(tables: notes\)"),
        ("directory", r"is a directory, not a campaign store"),
    ],
)
def test_a_file_that_is_not_a_store_is_named_and_left_alone(tmp_path, kind, message, create):
    path = tmp_path / "c.db"
    if kind == "toml":
        path.write_text(SMALL_TOML)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "binary":
        path.write_bytes(bytes(range(128, 256)) * 8)
    elif kind == "other":
        _sqlite_of_another_program(path)
    else:
        path.mkdir()
    before = None if path.is_dir() else _digest(path)
    with pytest.raises(ValueError, match=message) as err:
        if create:
            Campaign.create(path, _space())
        else:
            Campaign.open(path)
    assert _one_line(err).startswith(f"{path}: ")
    if before is not None:
        assert _digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.db"]  # no -wal, -shm


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("UPDATE layoutopt_meta SET value = 'three' WHERE key = 'schema_version'",
         r"damaged campaign store: schema_version is 'three', not a schema version"),
        ("DELETE FROM layoutopt_meta WHERE key = 'schema_version'",
         r"damaged campaign store: its layoutopt_meta table has no schema_version row"),
        ("UPDATE layoutopt_meta SET value = '4' WHERE key = 'schema_version'",
         r"store schema version 4 was written by layoutopt .*; upgrade layoutopt"),
        ("DROP TABLE layoutopt_meta",
         r"damaged campaign store: campaign tables but no layoutopt_meta"),
    ],
)  # fmt: skip
def test_a_damaged_or_newer_schema_is_one_line(tmp_path, statement, message):
    db = tmp_path / "c.db"
    Campaign.create(db, _space()).close()
    con = sqlite3.connect(db)
    con.execute(statement)
    con.commit()
    con.close()
    before = _digest(db)
    for call in (lambda: Campaign.open(db), lambda: Campaign.create(db, _space(), name="x")):
        with pytest.raises(ValueError, match=message) as err:
            call()
        assert _one_line(err).startswith(f"{db}: ")
    assert _digest(db) == before


def test_a_damaged_postgres_schema_is_one_line(postgres_db):
    Campaign.create(postgres_db, _space()).close()
    engine = sa.create_engine(engine_url(postgres_db))
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE layoutopt_meta SET value = 'x1' WHERE key = 'schema_version'"))
    engine.dispose()
    with pytest.raises(ValueError, match=r"schema_version is 'x1', not a schema version") as err:
        Campaign.open(postgres_db)
    _one_line(err)


# ---------------------------------------------------------------------- 5. read-only
def _results(n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    space = _space()
    pairs = zip(space.components, space.variants, strict=True)
    cols = {c: rng.choice(np.asarray(v), n) for c, v in pairs}
    imp = rng.integers(50, 500, n)
    return pd.DataFrame(cols | {"impressions": imp, "clicks": rng.binomial(imp, 0.1)})


def test_a_read_only_postgres_store_is_refused_before_the_fit(postgres_db):
    with Campaign.create(postgres_db, _space()) as camp:
        camp.ingest(_results())
    name = postgres_db.rsplit("/", 1)[1]
    engine = sa.create_engine(engine_url(postgres_db), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'))
    engine.dispose()
    before = _totals(postgres_db)
    with Campaign.open(postgres_db) as camp:
        assert len(camp.history()) == 1  # reads still work
        with pytest.raises(ValueError, match=r"cannot record a fit: the store is read-only") as e:
            camp.fit(seed=0)
        _one_line(e)
        with pytest.raises(ValueError, match=r"cannot write to the store: it is read-only") as e:
            camp.ingest(_results(41))
        assert len(_one_line(e)) < 300
    assert _totals(postgres_db) == before


def test_a_read_only_sqlite_store_is_refused_before_the_fit(tmp_path):
    db = tmp_path / "c.db"
    with Campaign.create(db, _space()) as camp:
        camp.ingest(_results())
    if subprocess.run(["chattr", "+i", str(db)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here (needs CAP_LINUX_IMMUTABLE)")
    try:
        with Campaign.open(db) as camp:
            with pytest.raises(ValueError, match=r"cannot record a fit: the store is read-only"):
                camp.fit(seed=0)
            with pytest.raises(ValueError, match=r"cannot write to the store") as e:
                camp.ingest(_results(41))
            assert len(_one_line(e)) < 300
    finally:
        subprocess.run(["chattr", "-i", str(db)], check=True)
    assert _totals(str(db))[0] == 1


# ---------------------------------------------------------------------- 7. report and exports
HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(2)>',
    "$x$",
    "a$b\\",
    "=1+2",
    "-cmd",
    "@SUM(A1)",
    "+x",
]


def test_report_escapes_hostile_labels_and_names(tmp_path):
    from layoutopt.model.space import LayoutSpace

    space = LayoutSpace({"<b>comp</b>": HOSTILE[:5], "c2&<i>": ["x", "y"]})
    rng = np.random.default_rng(0)
    codes = np.array([[i % 5, i % 2] for i in range(40)])
    imp = np.full(40, 1000)
    frame = pd.DataFrame(
        {
            "<b>comp</b>": np.asarray(HOSTILE[:5])[codes[:, 0]],
            "c2&<i>": np.asarray(["x", "y"])[codes[:, 1]],
            "impressions": imp,
            "clicks": rng.binomial(imp, 0.05),
        }
    )
    db = tmp_path / "c.db"
    with Campaign.create(db, space, name="<script>alert('n')</script>") as camp:
        camp.ingest(frame)
        camp.fit(seed=0, num_samples=200)
        out = camp.report(tmp_path / "r.html")
    text = out.read_text()
    for raw in ("<script>", "<b>comp", "<i>", '"><img', "alert('n')"):
        assert raw not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&lt;b&gt;comp&lt;/b&gt;" in text


def test_csv_safe_neutralises_formula_prefixes_and_labels_read_back(tmp_path):
    from layoutopt.data.observations import Observations
    from layoutopt.model.space import LayoutSpace
    from layoutopt.util.io import csv_safe, unformula, write_csv

    # (a carriage return inside a cell is not quoted by pandas' CSV writer, so "\rr" is
    # checked by csv_safe only, not read back)
    labels = ["=1+2", "-cmd", "@SUM(A1)", "+x", "\tt", "'a", "ok", "'=q"]
    assert csv_safe(pd.DataFrame({"h": ["\rr"]}))["h"][0] == "'\rr"
    space = LayoutSpace({"h": labels, "b": ["b1", "=b2"]})
    frame = pd.DataFrame(
        {
            "h": labels,
            "b": ["b1", "=b2"] * 4,
            "impressions": [10] * 8,
            "clicks": [1] * 8,
            "weight": [-0.5] * 8,
        }
    )
    safe = csv_safe(frame)
    for cell in [*safe["h"], *safe["b"]]:
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
    assert list(safe["weight"]) == [-0.5] * 8  # numbers stay numbers
    assert [unformula(c) for c in safe["h"]] == labels
    file = write_csv(frame, tmp_path / "d.csv")
    lines = file.read_text().splitlines()
    assert lines[1].startswith("'=1+2,b1,")
    obs = Observations.from_csv(file, space)  # the quoted labels read back as the labels
    np.testing.assert_array_equal(obs.codes[np.argsort(obs.codes[:, 0])][:, 0], np.arange(8))


def test_atomic_dir_replaces_a_folder_whole_or_not_at_all(tmp_path):
    from layoutopt.util.io import atomic_dir

    out = tmp_path / "export"
    out.mkdir()
    (out / "history.parquet").write_text("old history")
    (out / "stale.parquet").write_text("old")
    with pytest.raises(RuntimeError, match="midway"):
        with atomic_dir(out) as tmp:
            (tmp / "observations.parquet").write_text("new")
            raise RuntimeError("failed midway")
    assert sorted(p.name for p in out.iterdir()) == ["history.parquet", "stale.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]  # no temporary left
    with atomic_dir(out) as tmp:
        (tmp / "observations.parquet").write_text("new")
        (tmp / "history.parquet").write_text("new history")
    assert sorted(p.name for p in out.iterdir()) == ["history.parquet", "observations.parquet"]
    assert (out / "history.parquet").read_text() == "new history"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="exists and is not a directory"):
        with atomic_dir(tmp_path / "file"):
            pass


_CREATE_WITH_SMALL_FILES = r"""
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
from layoutopt.campaign.campaign import Campaign
from layoutopt.model.space import LayoutSpace
resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))  # like a disk with 8 KiB left
try:
    Campaign.create(sys.argv[1], LayoutSpace({"a": ["x", "y"]}))
except ValueError as err:
    print(err)
"""


def test_a_failed_init_leaves_no_store_files_behind(tmp_path):
    db = tmp_path / "c.db"
    run = subprocess.run(
        [sys.executable, "-c", _CREATE_WITH_SMALL_FILES, str(db)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"{db}: cannot open the store ("), run.stdout
    assert len(run.stdout.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # no c.db, -wal, -shm


_INGEST_WITH_SMALL_FILES = r"""
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
from layoutopt.cli.app import main
# the write-ahead log may grow to 16 KiB: a disk with a few pages left
resource.setrlimit(resource.RLIMIT_FSIZE, (16384, 16384))
sys.exit(main(["campaign", "ingest", "--db", sys.argv[1], sys.argv[2]]))
"""


@pytest.mark.slow
def test_a_full_disk_during_ingest_is_one_line_and_changes_nothing(tmp_path):
    db = tmp_path / "c.db"
    with Campaign.create(db, _wide()) as camp:
        camp.ingest(_wide_results(0, 50))
    before = _totals(str(db))
    big = tmp_path / "big.csv"
    _wide_results(1, 1331).to_csv(big, index=False)  # every layout: far more than 4 KiB
    run = subprocess.run(
        [sys.executable, "-c", _INGEST_WITH_SMALL_FILES, str(db), str(big)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode != 0
    lines = [line for line in run.stderr.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith(f"error: {db}: "), run.stderr
    assert "damaged" not in lines[0] and ("full" in lines[0] or "disk" in lines[0]), lines[0]
    assert "Traceback" not in run.stderr and "INSERT" not in run.stderr
    assert _totals(str(db)) == before
    with Campaign.open(db) as camp:  # the store is whole, and the file ingests afterwards
        assert camp.ingest(big).added


def _wide_results(seed: int, n: int) -> pd.DataFrame:
    space = _wide()
    frame = space.frame(space.codes(np.arange(n))).drop(columns="index")
    rng = np.random.default_rng(seed)
    return frame.assign(impressions=1000, clicks=rng.binomial(1000, 0.05, n))
