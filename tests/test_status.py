"""`lifelog status` (Nagios levels) and alert_command, once per change."""

from __future__ import annotations

import json
import sys
import threading
from datetime import timedelta

from lifelog import alerts, status
from lifelog.db import get_meta, open_db, set_meta
from lifelog.settings import load_settings
from lifelog.timeutil import to_iso, utcnow
from lifelog.verdicts import Level
from monitor_helpers import one_pass, running_watcher, wait_for


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
    assert [line.split()[0] for line in lines[1:]] == ["aw", "watcher", "data", "restarts", "watchdog", "database"]
    fresh_aw.stop()
    r = lifelog("status", env=env)
    assert r.code == 2
    assert r.out.splitlines()[0].startswith("CRITICAL: AW unhealthy: connection refused")
    doc = json.loads(lifelog("status", "--json", env=env).out)
    assert doc["level"] == "CRITICAL" and doc["exit_code"] == 2
    assert doc["components"]["aw"]["level"] == "CRITICAL"
    assert doc["components"]["watcher"]["level"] == "OK"


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


def test_a_failing_alert_command_is_recorded_not_raised(db_path):
    settings = load_settings(overrides={"db_path": str(db_path), "alert_command": "/nonexistent/alert"},
                             environ={})
    db = open_db(db_path)
    alerts.notify_if_changed(db, settings, report(Level.CRITICAL))
    assert "could not run" in get_meta(db, "status.alert_result")


def _log(db, minutes_ago: float, replaced: int, verdict="restart:heartbeat_stale"):
    db.conn.execute("INSERT INTO watchdog_log (at, verdict, reason, replaced) VALUES (?, ?, 'r', ?)",
                    (to_iso(utcnow() - timedelta(minutes=minutes_ago)), verdict, replaced))


def test_recent_replacements_warn_and_three_in_an_hour_are_critical(db_path):
    db = open_db(db_path)
    now = utcnow()
    _log(db, 5, replaced=0, verdict="restart:not_running")  # the very first start: not a failure
    _log(db, 90, replaced=1)  # over an hour ago
    _log(db, 2, replaced=1, verdict="wait:backoff")  # not a restart
    assert status._restarts(db, now).level is Level.OK
    _log(db, 30, replaced=1)
    c = status._restarts(db, now)
    assert c.level is Level.WARNING and "1 time in the last hour" in c.cause
    _log(db, 20, replaced=1)
    _log(db, 10, replaced=1, verdict="restart:not_running")
    c = status._restarts(db, now)
    assert c.level is Level.CRITICAL and "3 times in the last hour (latest: restart:not_running)" in c.cause


def test_levels_combine_worst_first_and_name_every_cause_at_that_level():
    C = status.Component
    now = utcnow()
    r = status.combine([C("aw", Level.WARNING, "AW degraded: x", cause="AW degraded: x"),
                        C("watchdog", Level.WARNING, "paused", cause="watchdog paused"),
                        C("data", Level.OK, "data fresh")], "db", now)
    assert r.level is Level.WARNING and r.summary == "WARNING: AW degraded: x; watchdog paused"
    r = status.combine([C("aw", Level.WARNING, "d", cause="AW degraded"),
                        C("watcher", Level.CRITICAL, "w", cause="watcher not running")], "db", now)
    assert r.exit_code == 2 and r.summary == "CRITICAL: watcher not running"


def test_held_data_and_pause_warn(db_path):
    db = open_db(db_path)
    set_meta(db, "watchdog.verdict", "hold:source_stale")
    set_meta(db, "watchdog.reason", "AW has nothing newer")
    now = utcnow()
    assert status._data({"watchdog.verdict": "hold:source_stale", "watchdog.reason": "r"}, now).level is Level.WARNING
    assert status._watchdog({"watchdog.paused": "1"}, now).level is Level.WARNING
    assert status._aw({"aw.status": "degraded", "aw.error": "HTTP 500"}, now).level is Level.WARNING
    assert status._aw({}, now).level is Level.OK
