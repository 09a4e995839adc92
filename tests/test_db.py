"""The SQLite file: creation, schema, WAL, permissions, and the meta store."""

import multiprocessing
import sqlite3
import stat
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from lifelog.core.errors import UsageError
from lifelog.core.timeutil import utcnow
from lifelog.db.database import (
    SCHEMA_VERSION,
    DatabaseMissing,
    DatabaseUnusable,
    open_db,
    schema_sql,
    transaction,
)
from lifelog.db.meta import (
    device_meta,
    get_meta,
    meta_rows,
    recorded_identity,
    set_meta,
)
from lifelog.db.migrations import MIGRATIONS

TABLES = {"meta", "events", "buckets", "health_checks", "watchdog_log", "source_log", "servers"}


def test_it_creates_the_folder_and_a_private_file(tmp_path):
    path = tmp_path / "a" / "b" / "lifelog.db"
    open_db(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_it_applies_the_schema_with_wal(db_path):
    db = open_db(db_path)
    assert TABLES <= set(db.table_names())
    assert "meta_ages" in {r[0] for r in db.conn.execute("SELECT name FROM sqlite_master WHERE type = 'view'")}
    assert db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_applying_the_schema_again_changes_nothing(db_path):
    db = open_db(db_path)
    set_meta(db, "k", "v")
    before = db.conn.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
    db.conn.executescript(schema_sql())
    db2 = open_db(db_path)
    assert db2.conn.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall() == before
    assert get_meta(db2, "k") == "v"


def test_it_does_not_create_when_asked_not_to(db_path):
    with pytest.raises(DatabaseMissing):
        open_db(db_path, create=False)
    assert not db_path.exists()


def test_a_file_that_is_not_sqlite_is_refused_and_left_alone(db_path):
    db_path.write_bytes(b"hello, this is not a database" * 100)
    before = db_path.read_bytes()
    with pytest.raises(DatabaseUnusable, match="not a usable SQLite database"):
        open_db(db_path)
    assert db_path.read_bytes() == before


def test_a_path_under_a_file_is_a_usage_error_and_creates_nothing(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="cannot create the database"):
        open_db(tmp_path / "file" / "sub" / "lifelog.db")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_a_failed_create_removes_the_folders_it_made(tmp_path):
    # The folders can be made but the file cannot: its name is too long.
    with pytest.raises(UsageError, match="cannot create the database"):
        open_db(tmp_path / "x" / "y" / ("n" * 300 + ".db"))
    assert list(tmp_path.iterdir()) == []


def test_meta_stamps_updated_at_in_utc(db_path):
    db = open_db(db_path)
    set_meta(db, "watcher.pid", 42)
    [row] = meta_rows(db, ["watcher."])
    assert row["key"] == "watcher.pid" and row["value"] == "42"
    assert row["updated_at"].endswith("+00:00")
    assert datetime.fromisoformat(row["updated_at"]).utcoffset().total_seconds() == 0
    assert 0 <= row["age_seconds"] < 60


def test_a_new_database_records_when_it_was_created(db_path):
    db = open_db(db_path)
    created = datetime.fromisoformat(get_meta(db, "db.created_at"))
    assert created.utcoffset().total_seconds() == 0 and abs((utcnow() - created).total_seconds()) < 60
    assert len(get_meta(db, "db.created_at")) == len("2026-11-28T14:55:03.752000+00:00")
    db.conn.executescript(schema_sql())  # applying the schema again keeps the first time
    assert datetime.fromisoformat(get_meta(db, "db.created_at")) == created


def test_get_meta_of_an_absent_key_is_none(db_path):
    assert get_meta(open_db(db_path), "nope") is None


def test_meta_rows_filters_by_prefix(db_path):
    db = open_db(db_path)
    for key in ("watcher.pid", "watcher.state", "aw.status", "watchdog.verdict"):
        set_meta(db, key, "x")
    assert [r["key"] for r in meta_rows(db, ["watcher."])] == ["watcher.pid", "watcher.state"]
    assert [r["key"] for r in meta_rows(db, ["aw", "watchdog"])] == ["aw.status", "watchdog.verdict"]


def test_device_meta_reads_one_devices_keys_by_field(db_path):
    db = open_db(db_path)
    # Neighbours a LIKE 'device.a_b.%' would also match, or a prefix without its dot.
    for key, value in (("device.a_b.reachable", "yes"), ("device.a_b.last_error", ""),
                       ("device.axb.reachable", "no"), ("device.a_bc.reachable", "no"),
                       ("device.a_b", "x"), ("device.a-b.hostname", "h")):
        set_meta(db, key, value)
    assert device_meta(db, "a_b") == {"reachable": "yes", "last_error": ""}
    assert device_meta(db, "a-b") == {"hostname": "h"}
    assert device_meta(db, "gone") == {}
    # The identity a silent device counts with: an empty value is none.
    assert recorded_identity(db, "a-b") == (None, "h")
    assert recorded_identity(db, "gone") == (None, None)


def test_meta_values_must_be_text_or_numbers(db_path):
    db = open_db(db_path)
    with pytest.raises(TypeError):
        set_meta(db, "k", None)


def test_a_transaction_is_all_or_nothing(db_path):
    db = open_db(db_path)
    with pytest.raises(RuntimeError):
        with transaction(db):
            set_meta(db, "a", "1")
            raise RuntimeError("boom")
    assert get_meta(db, "a") is None


@hsettings(max_examples=200, deadline=None)
@given(key=st.text(min_size=1, max_size=50), value=st.text(max_size=2000))
def test_any_text_round_trips_through_meta(tmp_path_factory, key, value):
    db = open_db(tmp_path_factory.getbasetemp() / "roundtrip.db")
    set_meta(db, key, value)
    assert get_meta(db, key) == value


def _writer(path, worker, n):
    db = open_db(path)
    for i in range(n):
        set_meta(db, f"worker.{worker}", str(i))
        set_meta(db, "shared.last", f"{worker}:{i}")
    db.conn.close()


def test_four_processes_writing_meta_at_once_all_succeed(db_path):
    open_db(db_path).conn.close()
    n = 500
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(db_path, w, n)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    db = open_db(db_path)
    assert [get_meta(db, f"worker.{w}") for w in range(4)] == [str(n - 1)] * 4
    assert get_meta(db, "shared.last").endswith(f":{n - 1}")


def test_a_writer_waits_for_a_lock_held_by_another_connection(db_path):
    db = open_db(db_path)
    other = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    import threading
    import time

    release = threading.Timer(1.0, lambda: other.execute("COMMIT"))
    release.start()
    t0 = time.monotonic()
    set_meta(db, "k", "v")  # must wait for the lock, not raise "database is locked"
    assert time.monotonic() - t0 >= 0.5
    assert get_meta(db, "k") == "v"
    release.join()


def _opener(path, barrier):
    barrier.wait(10)
    open_db(path).conn.close()


def test_processes_creating_the_database_at_once_all_succeed(db_path):
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_opener, args=(db_path, barrier)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600
    assert TABLES <= set(open_db(db_path).table_names())


def test_an_error_after_sqlite_rolled_back_by_itself_is_raised_not_hidden_by_rollback(db_path):
    # SQLITE_FULL (a full disk) can end the transaction inside SQLite; the
    # error the caller sees must be that one, not "no transaction is active".
    db = open_db(db_path)
    with pytest.raises(sqlite3.OperationalError, match="database or disk is full"):
        with transaction(db):
            db.conn.execute("ROLLBACK")  # what SQLite did by itself
            raise sqlite3.OperationalError("database or disk is full")
    set_meta(db, "after", "1")
    assert get_meta(db, "after") == "1"


def test_a_commit_that_fails_rolls_back_and_releases_the_write_lock(db_path):
    # A deferred foreign key is checked at COMMIT: the COMMIT fails and SQLite
    # keeps the transaction open. Left open, the next transaction() would join
    # it, nothing after would ever commit, and the write lock would stay held.
    db = open_db(db_path)
    db.conn.executescript(
        "CREATE TABLE scratch_parent (id INTEGER PRIMARY KEY);"
        "CREATE TABLE scratch_child (parent INTEGER REFERENCES scratch_parent (id)"
        " DEFERRABLE INITIALLY DEFERRED);")
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY constraint failed"):
        with transaction(db):
            set_meta(db, "before", "1")
            db.conn.execute("INSERT INTO scratch_child (parent) VALUES (99)")
    assert not db.conn.in_transaction
    set_meta(db, "after", "1")
    other = sqlite3.connect(db_path, isolation_level=None, timeout=0)
    try:
        assert other.execute("SELECT key FROM meta WHERE key IN ('before', 'after')").fetchall() == [("after",)]
        assert other.execute("SELECT count(*) FROM scratch_child").fetchone()[0] == 0
        other.execute("BEGIN IMMEDIATE")  # timeout 0: raises "database is locked" if still held
        other.execute("ROLLBACK")
    finally:
        other.close()


def columns(db, table):
    return [c.name for c in db.table(table).columns]


def as_version(db, version):
    """Make a new database look like one an earlier LifeLog made: before
    version 8 upgrades were recorded in user_version alone."""
    db.conn.execute("DROP TABLE _sqlite_migrations")
    db.conn.execute(f"PRAGMA user_version = {version}")
    db.conn.close()


def applied(db):
    return [m.name for m in MIGRATIONS.applied(db)]


def test_a_new_database_goes_through_every_migration(db_path):
    db = open_db(db_path)
    assert applied(db) == ["sync_state_lookback", "drop_events_by_bucket_time", "health_checks_device",
                           "source_log_device"]
    assert MIGRATIONS.pending(db) == []
    assert db.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 10
    db.close()
    db = open_db(db_path)  # opening again records nothing more
    assert applied(db) == ["sync_state_lookback", "drop_events_by_bucket_time", "health_checks_device",
                           "source_log_device"]


def test_an_older_database_gets_the_columns_added_since(db_path):
    db = open_db(db_path)
    set_meta(db, "kept", "yes")
    # Make it look like a version-2 database, made before sync_state had these.
    db.conn.execute("ALTER TABLE sync_state DROP COLUMN lookback_count")
    db.conn.execute("ALTER TABLE sync_state DROP COLUMN lookback_start")
    as_version(db, 2)
    db = open_db(db_path)
    assert {"lookback_start", "lookback_count"} <= set(columns(db, "sync_state"))
    assert db.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert get_meta(db, "kept") == "yes"
    assert applied(db) == ["sync_state_lookback", "drop_events_by_bucket_time", "health_checks_device",
                           "source_log_device"]


def test_a_version_4_database_gets_the_servers_and_coverage_tables(db_path):
    db = open_db(db_path)
    for table in ("servers", "watcher_runs", "coverage_cells", "coverage_blocks", "coverage_days"):
        db.conn.execute(f"DROP TABLE {table}")
    as_version(db, 4)
    db = open_db(db_path)
    assert {"servers", "watcher_runs", "coverage_cells", "coverage_blocks", "coverage_days"} <= set(db.table_names())
    assert columns(db, "servers") == ["device_id", "hostname", "version", "seen_at"]
    assert db.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_version_3_database_gets_the_indexes_that_keep_writes_short(db_path):
    db = open_db(db_path)
    # As version 3 made it: one (server, bucket_id, timestamp) index, no end index.
    db.conn.execute("DROP INDEX events_by_bucket_span")
    db.conn.execute("DROP INDEX events_by_bucket_end")
    db.conn.execute("DROP INDEX events_replaced_by_time")
    db.conn.execute("CREATE INDEX events_by_bucket_time ON events (server, bucket_id, timestamp)")
    as_version(db, 3)
    db = open_db(db_path)
    names = {r[0] for r in db.conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"events_by_bucket_span", "events_by_bucket_end", "events_replaced_by_time"} <= names
    assert "events_by_bucket_time" not in names
    # Version 3 had the lookback columns: that migration is recorded as done,
    # not run; the index's is run.
    assert applied(db) == ["sync_state_lookback", "drop_events_by_bucket_time", "health_checks_device",
                           "source_log_device"]


V7_SCHEMA = Path(__file__).parent / "data" / "schema-v7.sql"


def make_v7_database(path):
    """A database as LifeLog made it up to version 7 (WAL, 0600), with rows."""
    path.touch(mode=0o600)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.executescript(V7_SCHEMA.read_text())
    now = "2026-11-30T10:00:00.000000+00:00"
    conn.execute("INSERT INTO meta (key, value, updated_at) VALUES ('watcher.state', 'running', ?)", (now,))
    conn.execute("INSERT INTO buckets (server, bucket_id, first_seen_at, last_seen_at) VALUES ('d', 'b', ?, ?)",
                 (now, now))
    conn.executemany(
        "INSERT INTO events (server, bucket_id, event_id, timestamp, duration, data, ended_at, ingested_at,"
        " updated_at) VALUES ('d', 'b', ?, ?, 1.0, '{}', ?, ?, ?)", [(i, now, now, now, now) for i in range(50)])
    conn.execute("INSERT INTO sync_state (server, bucket_id, head_ts, lookback_start, lookback_count)"
                 " VALUES ('d', 'b', ?, ?, 3)", (now, now))
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 7
    conn.close()


def schema_rows(db):
    return db.conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master"
                           " WHERE name NOT LIKE '%sqlite_migrations%' ORDER BY name").fetchall()


def test_a_version_7_database_is_upgraded_in_place_its_migrations_adopted(tmp_path):
    path = tmp_path / "v7.db"
    make_v7_database(path)
    db = open_db(path)
    assert db.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    # Its upgrades were made before they were recorded: adopted, not run again.
    assert applied(db) == ["sync_state_lookback", "drop_events_by_bucket_time", "health_checks_device",
                           "source_log_device"]
    assert MIGRATIONS.pending(db) == []
    assert get_meta(db, "watcher.state") == "running"
    assert db.table("events").count == 50
    assert db.conn.execute("SELECT lookback_count FROM sync_state").fetchone()[0] == 3
    assert schema_rows(db) == schema_rows(open_db(tmp_path / "new.db"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_processes_opening_a_version_7_database_at_once_upgrade_it_once(db_path):
    make_v7_database(db_path)
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_opener, args=(db_path, barrier)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    db = open_db(db_path)
    assert applied(db) == ["sync_state_lookback", "drop_events_by_bucket_time", "health_checks_device",
                           "source_log_device"]
    assert db.table("events").count == 50


def test_an_upgrade_that_fails_leaves_the_database_as_it_was(db_path):
    db = open_db(db_path)
    db.conn.execute("ALTER TABLE sync_state DROP COLUMN lookback_count")
    db.conn.execute("ALTER TABLE sync_state DROP COLUMN lookback_start")
    # schema.sql, applied after the migrations, fails: its insert into meta meets this.
    db.conn.execute("CREATE TRIGGER no_meta BEFORE INSERT ON meta BEGIN SELECT RAISE(ABORT, 'boom'); END")
    as_version(db, 2)
    with pytest.raises(DatabaseUnusable, match="boom"):
        open_db(db_path)
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
        assert "lookback_start" not in [r[1] for r in conn.execute("PRAGMA table_info(sync_state)")]
        assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = '_sqlite_migrations'").fetchone()[0] == 0
    finally:
        conn.close()


def test_schema_sql_sets_the_schema_version_this_lifelog_knows():
    # An open upgrades only a database older than SCHEMA_VERSION: schema.sql
    # must leave exactly it, or every open would upgrade again (or never).
    assert schema_sql().rstrip().endswith(f"PRAGMA user_version = {SCHEMA_VERSION};")


def test_a_version_8_database_keeps_its_health_checks_which_gain_the_device(tmp_path, db_path):
    db = open_db(db_path)
    # health_checks as version 8 made it: no device, no `unreachable`.
    db.conn.execute("DROP TABLE health_checks")
    db.conn.execute("CREATE TABLE health_checks (id INTEGER PRIMARY KEY, checked_at TEXT NOT NULL, "
                    "aw_url TEXT NOT NULL, status TEXT NOT NULL CHECK (status IN ('healthy', 'degraded', "
                    "'unhealthy')), latency_ms REAL, version TEXT, error TEXT NOT NULL DEFAULT '')")
    row = ("2026-11-30T10:00:00.000000+00:00", "http://127.0.0.1:5600", "unhealthy", 3.5, "", "refused")
    db.conn.execute("INSERT INTO health_checks (checked_at, aw_url, status, latency_ms, version, error)"
                    " VALUES (?, ?, ?, ?, ?, ?)", row)
    db.conn.execute("DELETE FROM _sqlite_migrations WHERE name = 'health_checks_device'")
    db.conn.execute("PRAGMA user_version = 8")
    db.conn.close()
    db = open_db(db_path)
    assert db.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert "health_checks_device" in applied(db)
    assert db.conn.execute("SELECT checked_at, aw_url, status, latency_ms, version, error, device"
                           " FROM health_checks").fetchall() == [(*row, None)]
    db.conn.execute("INSERT INTO health_checks (checked_at, aw_url, status, device)"
                    " VALUES ('2026-11-30T11:00:00+00:00', 'http://laptop:5600', 'unreachable', 'laptop')")
    assert schema_rows(db) == schema_rows(open_db(tmp_path / "new.db"))


def test_a_version_9_database_keeps_its_source_log_which_gains_the_device(tmp_path, db_path):
    db = open_db(db_path)
    # source_log as version 9 made it: no device.
    db.conn.execute("DROP TABLE source_log")
    db.conn.execute("CREATE TABLE source_log (id INTEGER PRIMARY KEY, at TEXT NOT NULL, server TEXT NOT NULL "
                    "DEFAULT '', bucket_id TEXT NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '')")
    row = ("2026-11-30T10:00:00.000000+00:00", "dev-a", "aw-watcher-window_box", "silent", "quiet while active")
    db.conn.execute("INSERT INTO source_log (at, server, bucket_id, state, reason) VALUES (?, ?, ?, ?, ?)", row)
    db.conn.execute("DELETE FROM _sqlite_migrations WHERE name = 'source_log_device'")
    db.conn.execute("PRAGMA user_version = 9")
    db.conn.close()
    db = open_db(db_path)
    assert db.conn.execute("PRAGMA user_version").fetchone()[0] == 10
    assert "source_log_device" in applied(db)
    assert db.conn.execute("SELECT at, server, bucket_id, state, reason, device"
                           " FROM source_log").fetchall() == [(*row, None)]
    # Its indexes made again, and the table as a new database's, to the letter.
    assert schema_rows(db) == schema_rows(open_db(tmp_path / "new.db"))
