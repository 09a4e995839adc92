"""`lifelog status` (Nagios levels) and alert_command, once per change."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from support.helpers import meta, one_pass, running_watcher, wait_for

from lifelog import monitor, wiring
from lifelog.aw.buckets import AWView
from lifelog.checks import alerts, status
from lifelog.core.identity import WatcherFacts
from lifelog.core.settings import Settings, load_settings
from lifelog.core.timeutil import to_iso, utcnow
from lifelog.core.verdicts import Level
from lifelog.db.database import open_db
from lifelog.db.meta import get_meta


def alert_script(tmp_path):
    """An alert_command that appends its environment to a file, one JSON line per run."""
    out = tmp_path / "alerts.jsonl"
    script = tmp_path / "alert.py"
    script.write_text(
        "import json, os, sys\n"
        f"with open({str(out)!r}, 'a') as f:\n"
        "    f.write(json.dumps({k: os.environ.get(k) for k in"
        " ('LIFELOG_STATUS', 'LIFELOG_PREVIOUS_STATUS', 'LIFELOG_SUMMARY')}) + '\\n')\n"
    )
    return f"{sys.executable} {script}", out


def alerts_sent(out):
    return [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []


def test_with_no_database_it_is_unknown_and_creates_nothing(lifelog, tmp_path):
    target = tmp_path / "sub" / "none.db"
    r = lifelog("status", "--db", str(target))
    assert r.code == 3
    assert r.out.startswith("UNKNOWN: no database at")
    r = lifelog("status", "--json", "--db", str(target))
    assert r.code == 3 and json.loads(r.out)["level"] == "UNKNOWN"
    assert not target.exists() and not target.parent.exists()


def test_a_file_that_is_not_a_database_is_unknown(lifelog, tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_text("not sqlite at all, just text " * 100)
    r = lifelog("status", "--db", str(bad))
    assert r.code == 3 and r.out.startswith("UNKNOWN:")


def test_ok_on_a_healthy_setup_and_critical_naming_aw_when_aw_stops(lifelog, db_path, monitor_env, fresh_aw):
    env = dict(monitor_env, LIFELOG_AW_URL=fresh_aw.url)
    one_pass(lifelog, env)
    wait_for(lambda: running_watcher(db_path), what="the watcher running")
    r = lifelog("status", env=env)
    assert r.code == 0, r.out + r.err
    lines = r.out.splitlines()
    assert lines[0].startswith("OK: AW healthy")
    assert [line.split()[0] for line in lines[1:]] == ["aw", "watcher", "data", "restarts", "watchdog", "sources",
                                                       "backup", "database"]
    fresh_aw.stop()
    r = lifelog("status", env=env)
    assert r.code == 2
    assert r.out.splitlines()[0].startswith("CRITICAL: AW unhealthy: connection refused")
    doc = json.loads(lifelog("status", "--json", env=env).out)
    assert doc["level"] == "CRITICAL" and doc["exit_code"] == 2
    assert comps(doc)["aw"]["level"] == "CRITICAL"
    assert comps(doc)["watcher"]["level"] == "OK"


def test_alert_command_runs_once_when_aw_goes_down_and_once_when_it_comes_back(lifelog, db_path, monitor_env,
                                                                               fresh_aw, tmp_path):
    command, out = alert_script(tmp_path)
    env = dict(monitor_env, LIFELOG_AW_URL=fresh_aw.url, LIFELOG_ALERT_COMMAND=command)
    one_pass(lifelog, env)
    wait_for(lambda: running_watcher(db_path), what="the watcher running")
    assert lifelog("health", env=env).code == 0
    assert alerts_sent(out) == []  # the first level recorded, OK, is a baseline
    fresh_aw.stop()
    for args in (("health",), ("watchdog", "--once"), ("status",), ("health",)):
        lifelog(*args, env=env)
    sent = alerts_sent(out)
    assert len(sent) == 1, sent
    assert sent[0]["LIFELOG_STATUS"] == "CRITICAL" and sent[0]["LIFELOG_PREVIOUS_STATUS"] == "OK"
    assert sent[0]["LIFELOG_SUMMARY"].startswith("CRITICAL: AW unhealthy")
    fresh_aw.start()
    for args in (("health",), ("watchdog", "--once"), ("status",)):
        lifelog(*args, env=env)
    sent = alerts_sent(out)
    assert len(sent) == 2, sent
    assert sent[1]["LIFELOG_STATUS"] == "OK" and sent[1]["LIFELOG_PREVIOUS_STATUS"] == "CRITICAL"
    db = open_db(db_path)
    assert get_meta(db, "status.level") == "OK" and get_meta(db, "status.previous") == "CRITICAL"
    assert get_meta(db, "status.alert_result") == "exit 0"


def report(level: Level, summary: str = "x") -> status.StatusReport:
    return status.StatusReport(level, f"{level.name}: {summary}", [], "db", to_iso(utcnow()))


def test_two_processes_noticing_the_same_change_alert_once(db_path, tmp_path):
    command, out = alert_script(tmp_path)
    settings = load_settings(overrides={"db_path": str(db_path), "alert_command": command}, environ={})
    open_db(db_path).conn.close()
    barrier = threading.Barrier(4)

    def notice():
        db = open_db(db_path)
        barrier.wait(10)
        alerts.notify_if_changed(db, settings, report(Level.CRITICAL))
        db.conn.close()

    threads = [threading.Thread(target=notice) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(alerts_sent(out)) == 1


def test_the_first_level_alerts_only_when_it_is_not_ok(db_path, tmp_path):
    command, out = alert_script(tmp_path)
    settings = load_settings(overrides={"db_path": str(db_path), "alert_command": command}, environ={})
    db = open_db(db_path)
    assert alerts.notify_if_changed(db, settings, report(Level.OK)) is True
    assert alerts_sent(out) == []
    assert alerts.notify_if_changed(db, settings, report(Level.OK)) is False
    assert alerts.notify_if_changed(db, settings, report(Level.WARNING, "watchdog paused")) is True
    assert alerts_sent(out)[0]["LIFELOG_SUMMARY"] == "WARNING: watchdog paused"
    other = tmp_path / "other.db"
    assert alerts.notify_if_changed(open_db(other), settings, report(Level.CRITICAL)) is True
    assert alerts_sent(out)[-1]["LIFELOG_PREVIOUS_STATUS"] == "UNKNOWN"


def test_a_steady_level_takes_no_write_lock(db_path):
    settings = load_settings(overrides={"db_path": str(db_path)}, environ={})
    db = open_db(db_path)
    assert alerts.notify_if_changed(db, settings, report(Level.WARNING)) is True
    other = sqlite3.connect(db_path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # someone holds the write lock for long
    try:
        db.conn.execute("PRAGMA busy_timeout = 100")  # waiting would fail fast, not pass slowly
        assert alerts.notify_if_changed(db, settings, report(Level.WARNING)) is False
    finally:
        other.execute("ROLLBACK")
        other.close()


def test_a_failing_alert_command_is_recorded_not_raised(db_path):
    settings = load_settings(overrides={"db_path": str(db_path), "alert_command": "/nonexistent/alert"},
                             environ={})
    db = open_db(db_path)
    alerts.notify_if_changed(db, settings, report(Level.CRITICAL))
    assert "could not run" in get_meta(db, "status.alert_result")


def comps(doc) -> dict:
    return {c["name"]: c for c in doc["components"]}


def _log(db, minutes_ago: float, replaced: int, verdict="restart:heartbeat_stale"):
    db.conn.execute("INSERT INTO watchdog_log (at, verdict, reason, replaced) VALUES (?, ?, 'r', ?)",
                    (to_iso(utcnow() - timedelta(minutes=minutes_ago)), verdict, replaced))


def test_recent_replacements_warn_and_three_in_an_hour_are_critical(db_path):
    db = open_db(db_path)
    now = utcnow()

    def component():
        snap = status.Snapshot(now, {}, GONE, restarts=monitor.recent_restarts(db, now))
        return status.restarts_component(snap, S)

    _log(db, 5, replaced=0, verdict="restart:not_running")  # the very first start: not a failure
    _log(db, 90, replaced=1)  # over an hour ago
    _log(db, 2, replaced=1, verdict="wait:backoff")  # not a restart
    assert component().level is Level.OK
    _log(db, 30, replaced=1)
    c = component()
    assert c.level is Level.WARNING and "1 time in the last hour" in c.reason
    _log(db, 20, replaced=1)
    _log(db, 10, replaced=1, verdict="restart:not_running")
    c = component()
    assert c.level is Level.CRITICAL and "3 times in the last hour (latest: restart:not_running)" in c.reason


def test_levels_combine_worst_first_and_name_every_cause_at_that_level():
    C = status.Component
    now = utcnow()
    r = status.combine([C("aw", Level.WARNING, "AW degraded: x"),
                        C("watchdog", Level.WARNING, "watchdog paused"),
                        C("data", Level.OK, "data fresh")], "db", now)
    assert r.level is Level.WARNING and r.summary == "WARNING: AW degraded: x; watchdog paused"
    r = status.combine([C("aw", Level.WARNING, "AW degraded"),
                        C("watcher", Level.CRITICAL, "watcher not running")], "db", now)
    assert r.exit_code == 2 and r.summary == "CRITICAL: watcher not running"


# -- components worked out from timestamps, at their boundaries (no database, no waiting) --------

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
S = Settings(db_path=Path("x.db"), heartbeat_timeout_seconds=120, watcher_timestamp_threshold_minutes=10,
             watchdog_stale_minutes=5)
RUNNING = WatcherFacts(pid=4242, source="recorded", reason="", created=1.0)
GONE = WatcherFacts(pid=None, source="", reason="watcher pid 4242 is gone")


def ago(seconds: float) -> str:
    return to_iso(NOW - timedelta(seconds=seconds))


def snap(meta, facts=RUNNING, aw=None) -> status.Snapshot:
    base = {"watcher.pid": "4242", "watcher.started_at": ago(3600), "watcher.heartbeat_at": ago(5),
            "watcher.last_event_ts": ago(30), "watchdog.checked_at": ago(20), "watchdog.verdict": "ok"}
    return status.Snapshot(NOW, {**base, **meta}, facts, aw=aw)


def level_of(component, meta, **kw):
    return component(snap(meta, **kw), S).level


def test_a_watcher_with_no_watchdog_pass_for_watchdog_stale_minutes_warns_and_names_the_fix():
    at_limit = {"watchdog.checked_at": ago(300)}
    assert level_of(status.watchdog_component, at_limit) is Level.OK
    c = status.watchdog_component(snap({"watchdog.checked_at": ago(301)}), S)
    assert c.level is Level.WARNING
    assert "lifelog daemon" in c.reason and "install-os-files cron" in c.reason


def test_with_no_pass_ever_the_watchdog_is_counted_from_the_watchers_start():
    never = {"watchdog.checked_at": None, "watchdog.verdict": None}
    assert level_of(status.watchdog_component, {**never, "watcher.started_at": ago(299)}) is Level.OK
    c = status.watchdog_component(snap({**never, "watcher.started_at": ago(301)}), S)
    assert c.level is Level.WARNING and "no watchdog pass ever" in c.reason
    # No watcher running: the watcher component is CRITICAL; the watchdog has nothing to miss.
    assert level_of(status.watchdog_component, never, facts=GONE) is Level.OK


def test_a_stale_heartbeat_is_critical_whatever_the_stored_verdict_says():
    assert level_of(status.watcher_component, {"watcher.heartbeat_at": ago(120)}) is Level.OK
    c = status.watcher_component(snap({"watcher.heartbeat_at": ago(121), "watchdog.verdict": "ok"}), S)
    assert c.level is Level.CRITICAL and "heartbeat stale" in c.reason


def test_data_is_judged_from_the_newest_event_not_from_the_stored_verdict():
    fresh_but_stored_hold = {"watchdog.verdict": "hold:source_stale", "watcher.last_event_ts": ago(600)}
    assert level_of(status.data_component, fresh_but_stored_hold) is Level.OK
    stale = {"watchdog.verdict": "ok", "watcher.last_event_ts": ago(601)}
    nothing_newer = AWView(ok=True, newest_end=NOW - timedelta(seconds=601), has_events=True)
    c = status.data_component(snap(stale, aw=nothing_newer), S)
    assert c.level is Level.WARNING and "hold:source_stale" in c.reason
    newer = AWView(ok=True, newest_end=NOW - timedelta(seconds=5), has_events=True)
    assert "the watchdog restarts the watcher" in status.data_component(snap(stale, aw=newer), S).reason
    down = AWView(ok=False, error="connection refused")
    assert "hold:aw_unhealthy" in status.data_component(snap(stale, aw=down), S).reason


def test_pause_and_a_degraded_aw_warn():
    assert level_of(status.watchdog_component, {"watchdog.paused": "1"}) is Level.WARNING
    assert level_of(status.aw_component, {"aw.status": "degraded", "aw.error": "HTTP 500"}) is Level.WARNING
    assert level_of(status.aw_component, {}) is Level.OK


def test_the_json_form_lists_every_component_with_name_level_and_reason():
    report = status.evaluate(snap({}), S, wiring.COMPONENTS)
    doc = report.to_json()
    names = [c["name"] for c in doc["components"]]
    assert names == ["aw", "watcher", "data", "restarts", "watchdog", "sources", "backup"]
    assert all({"name", "level", "reason"} <= set(c) for c in doc["components"])
    assert doc["level"] == "OK" and doc["summary"].startswith("OK: ")


def test_a_sigstopped_watcher_is_critical_in_status_while_the_stored_verdict_is_still_ok(
        lifelog, db_path, monitor_env):
    one_pass(lifelog, monitor_env)
    pid = wait_for(lambda: running_watcher(db_path), what="the watcher running")
    wait_for(lambda: one_pass(lifelog, monitor_env)["verdict"] == "ok", what="an ok pass")
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(lambda: lifelog("status", env=monitor_env).code == 2, what="status CRITICAL")
        r = lifelog("status", "--json", env=monitor_env)
        doc = json.loads(r.out)
        assert comps(doc)["watcher"]["level"] == "CRITICAL"
        assert "heartbeat stale" in doc["summary"]
        assert meta(db_path, "watchdog.verdict") == "ok"  # no pass ran since: the stored verdict is old
    finally:
        os.kill(pid, signal.SIGCONT)


def test_a_running_watcher_with_no_watchdog_warns_in_status_naming_the_fix(lifelog, db_path, monitor_env,
                                                                             spawn):
    env = dict(monitor_env, LIFELOG_WATCHDOG_STALE_MINUTES="0.02")  # 1.2 s
    spawn.lifelog("watcher", env=env)
    wait_for(lambda: running_watcher(db_path), what="the watcher running")
    r = wait_for(lambda: (lambda r: r if r.code == 1 else None)(lifelog("status", env=env)),
                 what="status WARNING")
    first = r.out.splitlines()[0]
    assert first.startswith("WARNING: no watchdog pass ever") and "lifelog daemon" in first, r.out


def test_an_alert_that_prints_leaves_json_output_pure(lifelog, db_path):
    # --json prints one JSON document on stdout and nothing else there: what
    # the alert command prints goes to stderr.
    from support.awserver import free_port

    env = dict(os.environ, LIFELOG_AW_URL=f"http://127.0.0.1:{free_port()}", LIFELOG_AW_TIMEOUT_SECONDS="1",
               LIFELOG_ALERT_COMMAND=f"{sys.executable} -c \"print('noise from the alert')\"")
    assert lifelog("init", "--db", str(db_path), env=env).code == 0
    r = lifelog("status", "--json", "--db", str(db_path), env=env)
    assert r.code == 2
    assert json.loads(r.out)["level"] == "CRITICAL"
    assert "noise from the alert" in r.err
    with open_db(db_path) as db:
        assert get_meta(db, "status.alert_result") == "exit 0"


# -- the human form fitted to the terminal (SPEC section 7) ---------------------------------------

LONG = status.StatusReport(
    Level.CRITICAL,
    "CRITICAL: AW unhealthy: cannot connect to http://127.0.0.1:5600 (connection refused) (3 checks in a row); "
    "watcher not running (watcher pid 4488 is gone)",
    [status.Component("aw", Level.CRITICAL, "AW unhealthy: cannot connect to http://127.0.0.1:5600 "
                      "(connection refused) (3 checks in a row)", None, 4.0),
     status.Component("watcher", Level.CRITICAL, "watcher not running (watcher pid 4488 is gone)"),
     status.Component("watchdog", Level.WARNING, "no watchdog pass ever for 7 min while the watcher runs: nothing "
                      "would restart it; run 'lifelog daemon', or add the cron line that "
                      "'scripts/install-os-files cron' prints")],
    db="/home/ada-lovelace/.local/share/lifelog/a-database-with-a-rather-long-name/lifelog.db")


def test_at_80_columns_every_status_line_fits_and_reasons_wrap_under_their_column():
    lines = LONG.render(80).splitlines()
    assert all(len(line) <= 80 for line in lines if not line.startswith("  database")), lines
    assert lines[0].startswith("CRITICAL: AW unhealthy:")  # the cause on the first line
    assert lines[-1] == f"  database  {LONG.db}"  # a path runs on
    at = lines.index(next(line for line in lines if line.startswith("  watchdog")))
    reason = [lines[at][21:]] + [line[21:] for line in lines[at + 1:-1]]
    assert all(line[:21].strip() == "" for line in lines[at + 1:-1])
    assert " ".join(reason) == LONG.components[2].reason  # whole words, in order
    summary = [lines[0][10:]] + [line[10:] for line in lines[1:] if line.startswith(" " * 10)][:1]
    assert " ".join(summary).startswith(LONG.summary[10:60])


def test_with_no_width_the_status_is_one_line_each_as_always():
    assert LONG.render() == "\n".join(
        [LONG.summary]
        + [f"  {c.name:<9} {c.level.name:<8} {c.reason}" + (" (4 s ago)" if c.name == "aw" else "")
           for c in LONG.components]
        + [f"  database  {LONG.db}"])
