"""Helpers for the end-to-end tests: sub-second settings, bounded waits, and
reads of what a database holds (meta, events, the watchdog's log, the
processes that name it)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import psutil

from lifelog.db.database import open_db
from lifelog.db.meta import get_meta


def stop_process(proc: subprocess.Popen | None, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; reaped either way."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


class HeartbeatSampler(threading.Thread):
    """Notes (monotonic time) each new `watcher.heartbeat_at` value, every
    `interval` s: how long a writer (a backup, a reconcile) kept the watcher
    from heartbeating. Used by the tests and the backup benchmark."""

    def __init__(self, db_path, interval: float = 0.01):
        super().__init__(daemon=True)
        self.db_path, self.interval, self.stop, self.changes = db_path, interval, threading.Event(), []

    def run(self):
        conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=30)
        last = None
        try:
            while not self.stop.wait(self.interval):
                row = conn.execute("SELECT value FROM meta WHERE key = 'watcher.heartbeat_at'").fetchone()
                if row and row[0] != last:
                    last = row[0]
                    self.changes.append(time.monotonic())
        finally:
            conn.close()

    def largest_gap(self, start: float, end: float) -> float:
        """The longest stretch within [start, end] without a new heartbeat."""
        marks = [start] + [t for t in self.changes if start < t < end] + [end]
        return max(b - a for a, b in zip(marks, marks[1:], strict=False))


FAST = {
    "LIFELOG_POLL_INTERVAL_SECONDS": "0.2",
    "LIFELOG_AW_TIMEOUT_SECONDS": "1",
    "LIFELOG_HEARTBEAT_TIMEOUT_SECONDS": "1.5",
    "LIFELOG_WATCHDOG_INTERVAL_SECONDS": "0.3",
    "LIFELOG_STARTUP_GRACE_SECONDS": "1",
    "LIFELOG_RESTART_BACKOFF_INITIAL_SECONDS": "0.2",
    "LIFELOG_RESTART_BACKOFF_MAX_SECONDS": "1",
    "LIFELOG_STOP_GRACE_SECONDS": "1",
}


def wait_for(predicate, timeout=20.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def meta(db_path, key):
    try:
        db = open_db(db_path, create=False)
        try:
            return get_meta(db, key)
        finally:
            db.conn.close()
    except Exception:
        return None


def stored(db_path, bucket_id):
    """What LifeLog holds for a bucket (rows not marked deleted): id -> (timestamp, duration, data)."""
    conn = sqlite3.connect(db_path, timeout=15)
    try:
        return {r[0]: (r[1], r[2], json.loads(r[3])) for r in conn.execute(
            "SELECT event_id, timestamp, duration, data FROM events "
            "WHERE bucket_id = ? AND deleted_in_aw_at IS NULL", (bucket_id,))}
    except sqlite3.OperationalError:  # no schema yet: nothing stored
        return {}
    finally:
        conn.close()


def processes_on(db_path: Path, role: str = "") -> list[psutil.Process]:
    """Live (non-zombie) processes whose command line names this database."""
    found = []
    for p in psutil.process_iter(["cmdline", "status"]):
        try:
            cmd = p.info["cmdline"] or []
            if p.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if str(db_path) in cmd and (not role or role in cmd) and "-c" not in cmd[:2]:
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return found


def watchers_on(db_path: Path) -> list[psutil.Process]:
    return processes_on(db_path, "watcher")


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def running_watcher(db_path) -> int | None:
    """The registered watcher's PID once it has polled (state running), else None."""
    pid = meta(db_path, "watcher.pid")
    if pid and meta(db_path, "watcher.state") == "running" and alive(int(pid)):
        return int(pid)
    return None


def log_rows(db_path, where="1=1"):
    db = open_db(db_path, create=False)
    try:
        return [dict(r) for r in db.query(f"SELECT * FROM watchdog_log WHERE {where} ORDER BY id")]
    finally:
        db.conn.close()


def one_pass(lifelog, env=None, *args) -> dict:
    r = lifelog("watchdog", "--once", "--json", *args, env=env)
    assert r.code == 0, r.err
    assert len(r.out.splitlines()) == 1, r.out
    return json.loads(r.out)


def start_watcher(spawn, db_path, aw_url, **settings):
    """`lifelog watcher` on the database, polling every 0.2 s, settings by name; output captured."""
    env = dict(os.environ, LIFELOG_AW_URL=aw_url, LIFELOG_POLL_INTERVAL_SECONDS="0.2",
               LIFELOG_AW_TIMEOUT_SECONDS="2")
    env.update({f"LIFELOG_{k.upper()}": str(v) for k, v in settings.items()})
    return spawn.lifelog("watcher", "--db", str(db_path), env=env, capture=True)
