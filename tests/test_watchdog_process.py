"""The watchdog with real processes, real signals and the real aw-server."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import timedelta

import psutil
import pytest
from support.helpers import (
    FAST,
    alive,
    log_rows,
    meta,
    one_pass,
    running_watcher,
    wait_for,
    watchers_on,
)

from lifelog.checks import procs
from lifelog.core import identity
from lifelog.core.settings import load_settings
from lifelog.core.timeutil import now_iso, to_iso, utcnow
from lifelog.db.database import open_db, transaction
from lifelog.db.meta import set_meta


def start_by_watchdog(lifelog, db_path) -> int:
    """A first pass starts the watcher; returns its PID once it has polled."""
    doc = one_pass(lifelog)
    assert doc["verdict"] == "restart:not_running" and "started lifelog watcher" in doc["action"]
    return wait_for(lambda: running_watcher(db_path), what="the watcher running")


def test_the_first_start_is_recorded_and_is_not_a_failure(lifelog, db_path, monitor_env):
    pid = start_by_watchdog(lifelog, db_path)
    assert meta(db_path, "watchdog.spawned_pid") == str(pid)
    assert meta(db_path, "watchdog.restart_count") == "1"
    row = log_rows(db_path)[0]
    assert row["verdict"] == "restart:not_running" and row["replaced"] == 0 and row["backoff_level"] == 1
    # Detached: reparented away from the pass that started it (no zombies in a daemon).
    assert psutil.Process(pid).ppid() != os.getpid()
    # Its output goes to the log file under the user's state directory.
    log_file = procs.watcher_log_path(load_settings(overrides={"db_path": str(db_path)}))
    wait_for(lambda: f"watcher started (pid {pid})" in log_file.read_text(), what="the watcher's log line")


def test_a_steady_ok_pass_never_loads_requests(lifelog, db_path, monitor_env):
    # The cron pass runs every minute for years; on a healthy machine it asks
    # AW nothing, so it must not pay for importing requests (~150 ms).
    start_by_watchdog(lifelog, db_path)
    env = dict(os.environ, PYTHONPROFILEIMPORTTIME="1")  # `python -X importtime`, to stderr

    def an_ok_pass():
        r = lifelog("watchdog", "--once", "--json", env=env)
        assert r.code == 0, r.err
        return r if json.loads(r.out)["verdict"] == "ok" else None

    r = wait_for(an_ok_pass, what="an ok pass")
    imported = {line.rsplit("|", 1)[-1].strip() for line in r.err.splitlines() if line.startswith("import time:")}
    assert "lifelog.checks.watchdog" in imported  # the profile is of the pass
    assert not {"requests", "urllib3", "lifelog.aw.transport", "lifelog.aw.client"} & imported


def test_a_killed_watcher_is_restarted(lifelog, db_path, monitor_env):
    old = start_by_watchdog(lifelog, db_path)
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: not alive(old), what="the old watcher gone")
    verdicts = []

    def restarted():
        doc = one_pass(lifelog)
        verdicts.append(doc["verdict"])
        return doc["verdict"] == "restart:not_running"

    wait_for(restarted, timeout=20, interval=0.1, what="a restart")
    assert set(verdicts) <= {"restart:not_running", "wait:backoff"}
    new = wait_for(lambda: running_watcher(db_path), what="the new watcher running")
    assert new != old
    row = log_rows(db_path, "verdict = 'restart:not_running'")[-1]
    assert row["old_pid"] == old and row["replaced"] == 1 and "gone" in row["reason"]
    assert row["old_uptime_seconds"] is not None and row["backoff_level"] >= 1
    assert meta(db_path, "watchdog.restart_count") == "2"
    assert meta(db_path, "watchdog.last_restart_reason") == "restart:not_running"
    assert meta(db_path, "watchdog.last_restart_at") == row["at"]


def test_a_hung_watcher_is_replaced_within_the_heartbeat_timeout_plus_one_interval(db_path, monitor_env):
    loop = subprocess.Popen([sys.executable, "-m", "lifelog", "watchdog", "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=monitor_env)
    try:
        old = wait_for(lambda: running_watcher(db_path), what="the watcher running")
        wait_for(lambda: meta(db_path, "watchdog.verdict") == "ok", what="an ok pass (grace over)")
        hung_at = time.time()
        os.kill(old, signal.SIGSTOP)
        new = wait_for(lambda: (p := running_watcher(db_path)) and p != old and p,
                       timeout=15, what="a replacement watcher")
        assert not alive(old)
        # (Under heavy load an earlier watcher may have been replaced too: take this one's row.)
        [row] = log_rows(db_path, f"verdict = 'restart:heartbeat_stale' AND old_pid = {old}")
        acted_at = time.mktime(time.strptime(row["at"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
        acted_at += float("0." + row["at"][20:26])
        budget = float(FAST["LIFELOG_HEARTBEAT_TIMEOUT_SECONDS"]) + float(FAST["LIFELOG_WATCHDOG_INTERVAL_SECONDS"])
        # Slack for the pass itself (a process start, an HTTP call) on a loaded 2-core machine.
        assert acted_at - hung_at <= budget + 1.5, (acted_at - hung_at, row)
        assert row["old_pid"] == old and row["old_uptime_seconds"] > 0
        assert row["action"].startswith(f"stopped pid {old}; started lifelog watcher (pid {new})")
        # Asked for its stack before it was stopped (SIGUSR1 -> faulthandler).
        log_file = procs.watcher_log_path(load_settings(overrides={"db_path": str(db_path)}))
        wait_for(lambda: "most recent call first" in log_file.read_text(), what="the hung watcher's stack")
    finally:
        loop.send_signal(signal.SIGTERM)
        out, err = loop.communicate(timeout=20)
    assert loop.returncode == 0, err
    docs = [json.loads(line) for line in out.splitlines()]
    assert {"verdict", "reason", "action", "status"} <= set(docs[0])
    assert "restart:heartbeat_stale" in [d["verdict"] for d in docs]


def test_a_watcher_hung_inside_a_transaction_is_replaced_all_the_same(db_path, monitor_env):
    # Stopped while it holds the database's write lock: a pass that wrote
    # anything before stopping it would wait behind it, pass after pass.
    loop = subprocess.Popen([sys.executable, "-m", "lifelog", "watchdog"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=monitor_env)
    probe = sqlite3.connect(db_path, timeout=0, isolation_level=None)
    try:
        old = wait_for(lambda: running_watcher(db_path), what="the watcher running")
        wait_for(lambda: meta(db_path, "watchdog.verdict") == "ok", what="an ok pass (grace over)")

        def locked() -> bool:
            try:
                probe.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError:
                return True
            probe.execute("ROLLBACK")
            return False

        def stopped_holding_the_lock() -> bool:
            os.kill(old, signal.SIGSTOP)
            # Still locked a moment later: the stopped watcher holds it, not a passing write.
            if locked() and not wait_for_false(locked, 0.2):
                return True
            os.kill(old, signal.SIGCONT)
            return False

        wait_for(stopped_holding_the_lock, timeout=60, interval=0.002, what="the watcher stopped mid-transaction")
        new = wait_for(lambda: (p := running_watcher(db_path)) and p != old and p,
                       timeout=10, what="a replacement watcher")
        assert not alive(old)
        [row] = log_rows(db_path, f"verdict = 'restart:heartbeat_stale' AND old_pid = {old}")
        assert row["action"].startswith(f"stopped pid {old}; started lifelog watcher (pid {new})")
    finally:
        probe.close()
        loop.send_signal(signal.SIGTERM)
        loop.wait(20)
    assert loop.returncode == 0


def wait_for_false(predicate, seconds: float) -> bool:
    """True as soon as `predicate` is false within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not predicate():
            return True
        time.sleep(0.01)
    return False


@pytest.mark.parametrize("same_start_time", [False, True])
def test_an_unrelated_process_whose_pid_is_recorded_is_never_signalled(lifelog, db_path, monitor_env,
                                                                       same_start_time, spawn):
    sleeper = spawn(["sleep", "60"])
    db = open_db(db_path)
    cmdline = [sys.executable, "-m", "lifelog", "watcher", "--db", str(db_path)]
    created = psutil.Process(sleeper.pid).create_time() if same_start_time else 12345.0
    with transaction(db):
        set_meta(db, "watcher.pid", sleeper.pid)
        set_meta(db, "watcher.process_created", repr(created))
        set_meta(db, "watcher.cmdline", json.dumps(cmdline))
        set_meta(db, "watcher.started_at", "2026-01-01T00:00:00.000000+00:00")
        set_meta(db, "watcher.heartbeat_at", "2026-01-01T00:00:00.000000+00:00")
    settings = load_settings()
    assert procs.stop_watcher(db, settings) is False
    doc = one_pass(lifelog)
    assert doc["verdict"] == "restart:not_running" and "another process" in doc["reason"]
    wait_for(lambda: running_watcher(db_path), what="a real watcher")
    assert sleeper.poll() is None
    assert psutil.Process(sleeper.pid).status() != psutil.STATUS_STOPPED


def test_two_passes_started_together_make_one_restart(db_path, monitor_env):
    open_db(db_path).conn.close()  # (creating the file is not what races here)
    passes = [subprocess.Popen([sys.executable, "-m", "lifelog", "watchdog", "--once", "--json"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=monitor_env)
              for _ in range(3)]
    verdicts = []
    for p in passes:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        verdicts.append(json.loads(out)["verdict"])
    assert verdicts.count("restart:not_running") == 1, verdicts
    assert set(verdicts) - {"restart:not_running"} <= {"wait:startup_grace", "wait:backoff"}
    assert meta(db_path, "watchdog.restart_count") == "1"
    wait_for(lambda: running_watcher(db_path), what="the watcher running")
    assert len(watchers_on(db_path)) == 1


def test_the_old_watcher_is_gone_before_the_new_one_starts_even_if_it_ignores_sigterm(db_path, monitor_env,
                                                                                      caplog):
    # A real process recorded as the watcher (its own start time and argv) that ignores SIGTERM.
    stubborn = subprocess.Popen([sys.executable, "-c",
                                 "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
                                 " print('ready', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert stubborn.stdout.readline().strip() == "ready"
        db = open_db(db_path)
        identity = psutil.Process(stubborn.pid)
        with transaction(db):
            set_meta(db, "watcher.pid", stubborn.pid)
            set_meta(db, "watcher.process_created", repr(identity.create_time()))
            set_meta(db, "watcher.cmdline", json.dumps(identity.cmdline()))
        settings = load_settings()
        began = time.monotonic()
        assert procs.stop_watcher(db, settings) is True
        took = time.monotonic() - began
        assert not psutil.pid_exists(stubborn.pid)  # gone, and reaped (it was our child)
        assert "still running 1 s after terminate; killing it" in caplog.text
        # Killed after the grace, not waited for (it sleeps 60 s): the margin is for a loaded machine.
        assert settings.stop_grace_seconds <= took < settings.stop_grace_seconds + 20
    finally:
        if stubborn.poll() is None:
            stubborn.kill()
        stubborn.wait(10)


def test_a_zombie_is_not_running(tmp_path):
    child = subprocess.Popen(["true"])
    wait_for(lambda: psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE, what="a zombie")
    assert identity.live(child.pid).alive is False
    wait_for(lambda: not psutil.pid_exists(child.pid) or
             psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE, what="reaped")
    child.returncode = 0  # reaped by identity.live; keep Popen from waiting on it


def test_aw_down_is_a_hold_not_a_restart_storm_and_aw_newer_means_a_data_restart(lifelog, db_path, monitor_env,
                                                                                   fresh_aw):
    # Data is stale 1.2 s after LifeLog's newest event ends.
    # Its own aw-server: every bucket there (`*`) is this test's.
    env = dict(monitor_env, LIFELOG_AW_URL=fresh_aw.url, LIFELOG_WATCHER_TIMESTAMP_THRESHOLD_MINUTES="0.02",
               LIFELOG_BUCKETS="*")
    fresh_aw.create_bucket("hold-window_host")
    fresh_aw.insert("hold-window_host", [{"timestamp": now_iso(), "duration": 1.0, "data": {"app": "x"}}])
    # A watcher that heartbeats but ingests nothing (it follows no bucket):
    # stuck ingestion, as the watchdog must see it.
    stuck = subprocess.Popen([sys.executable, "-m", "lifelog", "watcher", "--db", str(db_path)],
                             env=dict(env, LIFELOG_BUCKETS="nothing-matches-*"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pid = wait_for(lambda: running_watcher(db_path), what="the stuck watcher running")
    assert pid == stuck.pid
    passes = []  # every pass of this test, in order

    def verdict():
        passes.append(one_pass(lifelog, env))
        return passes[-1]["verdict"]

    wait_for(lambda: verdict() == "restart:data_stale", what="a data restart")
    assert stuck.wait(10) == 0  # stopped by the watchdog with SIGTERM
    pid = wait_for(lambda: (p := running_watcher(db_path)) != stuck.pid and p, what="the restarted watcher")
    wait_for(lambda: meta(db_path, "watcher.last_event_ts"), what="the new watcher to ingest")
    fresh_aw.stop()
    count = meta(db_path, "watchdog.restart_count")
    wait_for(lambda: verdict() != "wait:startup_grace", what="the grace over")
    seen = [verdict() for _ in range(5)]
    assert seen == ["hold:aw_unhealthy"] * 5
    assert meta(db_path, "watchdog.restart_count") == count
    assert running_watcher(db_path) == pid
    assert "connection refused" in meta(db_path, "watchdog.reason")
    # watchdog_log: one row per decision other than ok, the holds included.
    rows = log_rows(db_path)
    assert [(r["at"], r["verdict"]) for r in rows] == [(d["at"], d["verdict"]) for d in passes
                                                        if d["verdict"] != "ok"]
    assert [r["verdict"] for r in rows[-5:]] == ["hold:aw_unhealthy"] * 5
    assert all("connection refused" in r["reason"] and r["action"] == "" for r in rows[-5:])


def test_aw_with_nothing_newer_is_held_as_source_stale(lifelog, db_path, monitor_env, fresh_aw):
    env = dict(monitor_env, LIFELOG_AW_URL=fresh_aw.url, LIFELOG_BUCKETS="*")  # its own server: all its own
    fresh_aw.create_bucket("quiet-window_host")
    fresh_aw.insert("quiet-window_host", [{"timestamp": "2001-01-01T00:00:00Z", "duration": 1.0, "data": {}}])
    one_pass(lifelog, env)
    pid = wait_for(lambda: running_watcher(db_path), what="the watcher running")
    set_meta(open_db(db_path), "watcher.last_event_ts", "2001-01-01T00:00:01.000000+00:00")
    doc = wait_for(lambda: (d := one_pass(lifelog, env))["verdict"] != "wait:startup_grace" and d,
                   what="a verdict after the grace")
    assert doc["verdict"] == "hold:source_stale" and "nothing newer" in doc["reason"]
    assert doc["status"] == "WARNING"
    assert running_watcher(db_path) == pid


def test_pause_stops_acting_until_resume(lifelog, db_path, monitor_env):
    pid = start_by_watchdog(lifelog, db_path)
    assert lifelog("watchdog", "pause").code == 0
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not alive(pid), what="the watcher gone")
    doc = one_pass(lifelog)
    assert doc["verdict"] == "paused" and doc["action"] == ""
    assert not watchers_on(db_path)
    r = lifelog("status")
    assert "watchdog paused" in r.out
    assert lifelog("watchdog", "resume").code == 0
    wait_for(lambda: one_pass(lifelog)["verdict"] == "restart:not_running", what="a restart after resume")


def test_watcher_restart_command_is_used_when_set(lifelog, db_path, monitor_env, tmp_path):
    marker = tmp_path / "restarted"
    cmd = f"{sys.executable} -c \"open('{marker}', 'a').write('x')\""
    env = dict(monitor_env, LIFELOG_WATCHER_RESTART_COMMAND=cmd)
    doc = one_pass(lifelog, env)
    assert doc["verdict"] == "restart:not_running" and "ran watcher_restart_command" in doc["action"]
    assert marker.read_text() == "x"
    assert not watchers_on(db_path)


def test_a_failing_restart_command_is_retried_at_the_backoff_and_reported(lifelog, db_path, monitor_env):
    env = dict(monitor_env, LIFELOG_WATCHER_RESTART_COMMAND="false")
    docs = [one_pass(lifelog, env) for _ in range(3)]
    assert "start failed" in docs[0]["action"]
    assert docs[0]["status"] == "CRITICAL"
    assert {d["verdict"] for d in docs} <= {"restart:not_running", "wait:backoff"}


def test_watchdog_pause_without_a_database_is_an_error_and_creates_nothing(lifelog, tmp_path):
    target = tmp_path / "none.db"
    r = lifelog("watchdog", "pause", "--db", str(target))
    assert r.code == 2 and "no database" in r.err and not target.exists()


def test_after_the_machine_slept_the_first_pass_waits_and_the_next_judges(lifelog, db_path, monitor_env):
    # The heartbeat planted below must stay the newest, however slowly the
    # passes run on a loaded machine. With FAST's 1.5 s heartbeat timeout and
    # a slow poll, a pass that came late found the watcher stale and started
    # another, which counts as fresh for its first timeout (lifelog.checks.liveness.
    # heartbeat_age) and could write its first heartbeat after the plant. So:
    # a 10 s timeout (the planted 20 s of awake time still exceeds it), a poll
    # every 60 s (after its first poll the watcher is idle, not inside a
    # transaction), and the watcher stopped (SIGSTOP) across the plant.
    env = dict(monitor_env, LIFELOG_POLL_INTERVAL_SECONDS="60", LIFELOG_HEARTBEAT_TIMEOUT_SECONDS="10")
    one_pass(lifelog, env)
    pid = wait_for(lambda: running_watcher(db_path), what="the watcher running")
    wait_for(lambda: one_pass(lifelog, env)["verdict"] == "ok", what="the grace over")
    assert running_watcher(db_path) == pid  # the one watcher, polled once
    # The ok passes (one at least) added no watchdog_log row; the start did.
    assert "ok" not in [r["verdict"] for r in log_rows(db_path)]
    assert log_rows(db_path)[0]["verdict"] == "restart:not_running"
    # Still the watcher by pid and identity; the watchdog's stop resumes it (SIGCONT) to end it.
    os.kill(pid, signal.SIGSTOP)
    awake, since_boot = time.clock_gettime(time.CLOCK_MONOTONIC), time.clock_gettime(time.CLOCK_BOOTTIME)
    # As if the watchdog started the watcher 700 s ago and it heartbeated 20 s
    # of awake time and 600 s of sleep ago.
    db = open_db(db_path)
    with transaction(db):
        set_meta(db, "watcher.heartbeat_clocks", f"{awake - 20!r} {since_boot - 620!r}")
        set_meta(db, "watcher.heartbeat_at", to_iso(utcnow() - timedelta(seconds=620)))
        set_meta(db, "watcher.started_at", to_iso(utcnow() - timedelta(seconds=700)))
        set_meta(db, "watchdog.last_start_at", to_iso(utcnow() - timedelta(seconds=700)))
    db.conn.close()
    first = one_pass(lifelog, env)
    assert first["verdict"] == "wait:resumed" and "slept 600 s" in first["reason"]
    second = one_pass(lifelog, env)
    # Judged by awake time (20 s > the 10 s timeout), not by the sleep, and only once waited.
    assert second["verdict"] == "restart:heartbeat_stale" and "awake time" in second["reason"]
    try:
        wait_for(lambda: (p := running_watcher(db_path)) != pid and p, timeout=30, what="a new watcher")
    except AssertionError as e:  # say why, should it ever happen
        raise AssertionError(f"{e}; meta watcher.*: {[(k, meta(db_path, k)) for k in ('watcher.pid', 'watcher.state')]};"
                             f" log: {procs.watcher_log_path(load_settings(overrides={'db_path': str(db_path)})).read_text()[-3000:]}") from None


def test_a_restart_meeting_a_users_lock_after_the_stop_still_records_its_watcher_and_starts_one(
        lifelog, db_path, monitor_env, monkeypatch):
    """The old watcher gone, a user's sqlite3 shell takes the write lock just
    as the pass acts, for longer than a pass's writes wait before acting
    (watchdog.write_wait): the pass waits it out, records the watcher it
    started, and the next pass gives that one its grace instead of starting
    a second beside it (a chaos run met this: a suspend, then a lock)."""
    import threading

    from lifelog import monitor
    from lifelog.checks import watchdog

    old = start_by_watchdog(lifelog, db_path)
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: not alive(old), what="the old watcher gone")
    settings = load_settings()
    hold = watchdog.write_wait(settings) + 1.0
    taken = threading.Event()

    def users_shell() -> None:
        conn = sqlite3.connect(db_path, isolation_level=None, timeout=15)
        try:
            conn.execute("BEGIN IMMEDIATE")
            taken.set()
            time.sleep(hold)  # the lock held that long: the fault itself, not a wait for anything
            conn.execute("COMMIT")
        finally:
            conn.close()

    stop_old = watchdog._stop_old

    def stop_then_lock(*args, **kw):
        done = stop_old(*args, **kw)
        threading.Thread(target=users_shell, daemon=True).start()
        assert taken.wait(10), "the user's lock taken"
        return done

    monkeypatch.setattr(watchdog, "_stop_old", stop_then_lock)
    with open_db(db_path) as db:
        result = monitor.watchdog_pass(db, settings, actor="test")
    assert result.verdict == "restart:not_running", result
    started = result.action.split("started lifelog watcher (pid ")[1]
    new = int(started.split(")")[0])
    assert meta(db_path, "watchdog.spawned_pid") == str(new)
    assert one_pass(lifelog)["verdict"] in ("wait:startup_grace", "ok")
    assert wait_for(lambda: running_watcher(db_path), what="the new watcher running") == new
    assert [p.pid for p in watchers_on(db_path)] == [new]
