"""LifeLog's own history (health_checks, watchdog_log) is kept for
history_retention_days, pruned in small batches by every health check."""

from __future__ import annotations

import os
import sqlite3
import threading
from datetime import UTC, datetime, timedelta

from lifelog import daemon
from lifelog.core.settings import Settings
from lifelog.core.timeutil import to_iso
from lifelog.db import pruning
from lifelog.db.database import open_db, transaction

UTC = UTC
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def add_history(db, stamps):
    with transaction(db):
        for at in stamps:
            db.conn.execute("INSERT INTO health_checks (checked_at, aw_url, status) VALUES (?, 'u', 'healthy')",
                            (at,))
            db.conn.execute("INSERT INTO watchdog_log (at, verdict, reason) VALUES (?, 'paused', 'r')", (at,))


def kept(db, table="health_checks", column="checked_at"):
    return [r[0] for r in db.conn.execute(f"SELECT {column} FROM {table} ORDER BY {column}")]


def test_the_cutoff_is_retention_days_before_now():
    assert pruning.cutoff(NOW, 365) == to_iso(NOW - timedelta(days=365))
    assert pruning.cutoff(NOW, 0.5) == to_iso(NOW - timedelta(hours=12))


def test_rows_older_than_the_retention_go_in_batches_and_one_at_the_cutoff_stays(db_path):
    db = open_db(db_path)
    cut = NOW - timedelta(days=30)
    old = [to_iso(cut - timedelta(minutes=i + 1)) for i in range(25)]
    young = [to_iso(cut), to_iso(cut + timedelta(seconds=1)), to_iso(NOW)]
    add_history(db, old + young)
    # Batches of 4, at most 3 per call and table: 12 of each table's 25 go now.
    assert pruning.prune(db, NOW, 30, batch=4, max_batches=3) == 24
    assert len(kept(db)) == 13 + 3 and len(kept(db, "watchdog_log", "at")) == 13 + 3
    assert pruning.prune(db, NOW, 30, batch=4, max_batches=10) == 26
    assert kept(db) == sorted(young) and kept(db, "watchdog_log", "at") == sorted(young)
    assert pruning.prune(db, NOW, 30) == 0


def test_with_nothing_expired_it_takes_no_write_lock(db_path):
    db = open_db(db_path)
    add_history(db, [to_iso(NOW)])
    other = sqlite3.connect(db_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # someone holds the write lock for long
    try:
        db.conn.execute("PRAGMA busy_timeout = 100")  # waiting would fail fast, not pass slowly
        assert pruning.prune(db, NOW, 365) == 0
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_the_daemons_health_job_prunes_what_is_past_retention(db_path, aw_server):
    db = open_db(db_path)
    now = datetime.now(UTC)
    add_history(db, [to_iso(now - timedelta(days=400)), to_iso(now - timedelta(days=10))])
    settings = Settings(db_path=db_path, aw_url=aw_server.url, history_retention_days=365)
    daemon._health_job(settings, threading.Event())
    assert kept(db, "watchdog_log", "at") == [to_iso(now - timedelta(days=10))]
    checks = kept(db)
    assert len(checks) == 2 and checks[0] == to_iso(now - timedelta(days=10))  # and the one just made


def test_a_health_check_from_the_command_line_prunes_too(lifelog, db_path, aw_server):
    # Cron and timer setups run no daemon: their health checks prune.
    db = open_db(db_path)
    now = datetime.now(UTC)
    add_history(db, [to_iso(now - timedelta(days=400)), to_iso(now - timedelta(days=10))])
    r = lifelog("health", "--db", str(db_path), env=dict(os.environ, LIFELOG_AW_URL=aw_server.url))
    assert r.code == 0, r.err
    assert kept(db, "watchdog_log", "at") == [to_iso(now - timedelta(days=10))]
    assert len(kept(db)) == 2
