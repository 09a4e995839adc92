"""`lifelog daemon` end to end, against the real aw-server, with real processes."""

from __future__ import annotations

import os
import signal
import threading
import time
from datetime import UTC

import psutil
import pytest
from support.helpers import FAST as MONITOR_FAST
from support.helpers import log_rows, meta, processes_on, wait_for

from lifelog.core.timeutil import parse_iso

# The daemon's health job runs every 0.6 s here.
FAST = dict(MONITOR_FAST, LIFELOG_AW_HEALTH_CHECK_INTERVAL_MINUTES="0.01")


def processes_using(db_path):
    return [p.pid for p in processes_on(db_path)]


@pytest.fixture
def daemon(db_path, aw_server, spawn, own_buckets):
    # Its watcher follows only this test's buckets: on the shared aw-server a
    # watcher following `*` catches up on other tests' history and can miss
    # its 1.5 s heartbeat, which the watchdog would rightly call a hang.
    def start(**extra):
        env = dict(os.environ, LIFELOG_AW_URL=aw_server.url, LIFELOG_DB_PATH=str(db_path),
                   LIFELOG_BUCKETS=f"{own_buckets}*", **FAST)
        env.update(extra)
        return spawn.lifelog("daemon", "--db", str(db_path), env=env, log="daemon")

    return start


def watcher_pid(db_path):
    pid = meta(db_path, "watcher.pid")
    return int(pid) if pid and meta(db_path, "watcher.state") == "running" else None


def test_the_daemon_runs_a_watcher_process_health_and_watchdog(db_path, daemon):
    d = daemon()
    pid = wait_for(lambda: watcher_pid(db_path), what="a running watcher")
    assert pid != d.pid
    assert psutil.Process(pid).is_running()
    first = parse_iso(wait_for(lambda: meta(db_path, "watcher.heartbeat_at"), what="a heartbeat"))
    wait_for(lambda: parse_iso(meta(db_path, "watcher.heartbeat_at")) > first, what="a newer heartbeat")
    wait_for(lambda: meta(db_path, "aw.status") == "healthy", what="aw.status healthy")
    checked = wait_for(lambda: meta(db_path, "watchdog.checked_at"), what="a watchdog pass")
    wait_for(lambda: meta(db_path, "watchdog.checked_at") != checked, what="watchdog.checked_at to advance")
    assert meta(db_path, "watchdog.restart_count") in (None, "0")  # the launch start is not a restart


def test_a_stopped_watcher_is_replaced_by_the_daemons_watchdog(db_path, daemon):
    daemon()
    old = wait_for(lambda: watcher_pid(db_path), what="a running watcher")
    wait_for(lambda: meta(db_path, "watchdog.checked_at"), what="a watchdog pass")
    os.kill(old, signal.SIGSTOP)
    try:
        new = wait_for(lambda: (p := watcher_pid(db_path)) and p != old and p, timeout=30,
                       what="a replacement watcher")
        assert new != old
        assert not psutil.pid_exists(old) or psutil.Process(old).status() == psutil.STATUS_ZOMBIE
        # The stopped watcher was replaced for its stale heartbeat (whatever came after).
        replaced = log_rows(db_path, f"old_pid = {old} AND verdict LIKE 'restart:%'")
        assert [r["verdict"] for r in replaced][:1] == ["restart:heartbeat_stale"], replaced
    finally:
        try:
            os.kill(old, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_daemon_and_its_watcher_leaving_nothing(db_path, daemon, sig):
    d = daemon()
    pid = wait_for(lambda: watcher_pid(db_path), what="a running watcher")
    t0 = time.monotonic()
    d.send_signal(sig)
    assert d.wait(10) == 0
    assert time.monotonic() - t0 < 10
    wait_for(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE,
             timeout=5, what="the watcher to be gone")
    assert processes_using(db_path) == []
    assert meta(db_path, "watcher.state") == "stopped"
    assert meta(db_path, "daemon.state") == "stopped"


def test_a_second_daemon_refuses_naming_the_first(db_path, daemon, lifelog, aw_server, own_buckets):
    first = daemon()
    wait_for(lambda: meta(db_path, "daemon.state") == "running", what="the first daemon")
    env = dict(os.environ, LIFELOG_AW_URL=aw_server.url, LIFELOG_BUCKETS=f"{own_buckets}*", **FAST)
    r = lifelog("daemon", "--db", str(db_path), env=env, timeout=20)
    assert r.code == 1
    assert f"pid {first.pid}" in r.err and "Traceback" not in r.err
    assert first.poll() is None


def test_a_job_that_raises_does_not_stop_the_daemon(db_path, aw_server, monkeypatch, own_buckets):
    from lifelog import daemon as daemon_mod
    from lifelog.core.settings import load_settings

    for k, v in FAST.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("LIFELOG_BUCKETS", f"{own_buckets}*")  # the watcher it starts inherits it
    settings = load_settings(overrides={"db_path": str(db_path), "aw_url": aw_server.url})

    def boom(settings, stop):
        raise RuntimeError("this job always fails")

    jobs = daemon_mod.default_jobs()
    jobs["health"] = daemon_mod.Job("health", boom)
    stop = threading.Event()
    t = threading.Thread(target=daemon_mod.run, args=(settings, stop, jobs))
    t.start()
    try:
        wait_for(lambda: jobs["health"].failures >= 3, what="the failing job to run three times")
        runs = jobs["watchdog"].runs
        wait_for(lambda: jobs["watchdog"].runs > runs + 2, what="the watchdog to keep running")
        assert "this job always fails" in jobs["health"].last_error
        assert t.is_alive()
    finally:
        stop.set()
        t.join(20)
    assert not t.is_alive()
    assert processes_using(db_path) == []


# -- the timetable and what is due at launch (pure: settings and a fixed `now`) ----------------


def test_the_daemons_timetable_under_default_settings(db_path):
    from lifelog import daemon as daemon_mod
    from lifelog.core.settings import load_settings

    defaults = load_settings(overrides={"db_path": str(db_path)}, environ={})
    intervals = {e.name: e.interval(defaults) for e in daemon_mod.JOBS}
    assert intervals == {"health": 15 * 60, "watchdog": 30, "reconcile": 4 * 3600, "backup": 24 * 3600}
    # The timetable the daemon builds from them, in seconds, one entry per job.
    scheduler = daemon_mod.build_scheduler(defaults, daemon_mod.default_jobs(), threading.Event())
    assert {(next(iter(j.tags)), j.interval, j.unit) for j in scheduler.get_jobs()} == {
        ("health", 900, "seconds"), ("watchdog", 30, "seconds"),
        ("reconcile", 14400, "seconds"), ("backup", 86400, "seconds")}
    # backup_interval_hours = 0 turns scheduled backups off.
    off = defaults._replace(backup_interval_hours=0)
    scheduler = daemon_mod.build_scheduler(off, daemon_mod.default_jobs(), threading.Event())
    assert sorted(next(iter(j.tags)) for j in scheduler.get_jobs()) == ["health", "reconcile", "watchdog"]


def test_a_reconcile_is_due_at_launch_once_the_interval_has_passed_since_the_last(db_path, monkeypatch):
    from datetime import datetime, timedelta

    from lifelog import daemon as daemon_mod
    from lifelog.core.settings import load_settings
    from lifelog.core.timeutil import to_iso
    from lifelog.db.database import open_db
    from lifelog.db.meta import set_meta

    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    monkeypatch.setattr(daemon_mod, "utcnow", lambda: now)
    settings = load_settings(overrides={"db_path": str(db_path)}, environ={})
    interval = timedelta(hours=settings.reconcile_interval_hours)
    assert interval == timedelta(hours=4)
    db = open_db(db_path)

    def started_at_launch() -> bool:
        """What the daemon's launch starts, of a reconcile job that records its run."""
        ran = []
        jobs = {"reconcile": daemon_mod.Job("reconcile", lambda settings, stop: ran.append(1))}
        started = daemon_mod.start_due_jobs(db, settings, jobs, threading.Event())
        if started:
            jobs["reconcile"].thread.join(10)
        assert started == (["reconcile"] if ran else []), (started, ran)
        return bool(ran)

    try:
        assert started_at_launch()  # never reconciled
        set_meta(db, "reconcile.finished_at", to_iso(now - interval + timedelta(microseconds=1)))
        assert not started_at_launch()  # just inside the interval
        set_meta(db, "reconcile.finished_at", to_iso(now - interval))
        assert started_at_launch()  # exactly the interval
        set_meta(db, "reconcile.finished_at", to_iso(now - interval - timedelta(seconds=1)))
        assert started_at_launch()  # just outside
        set_meta(db, "reconcile.finished_at", to_iso(now - timedelta(minutes=1)))
        assert not started_at_launch()  # a minute ago
        set_meta(db, "reconcile.finished_at", "not a time")
        assert started_at_launch()  # unreadable: run it rather than never
    finally:
        db.conn.close()
