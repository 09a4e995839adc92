"""`lifelog status --watch`: the screen (components, sources, latest
verdicts), redrawn until Ctrl-C, exit 0."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from rich.console import Console
from support.helpers import wait_for

from lifelog import status_screen
from lifelog.checks.status import Component, StatusReport
from lifelog.core.timeutil import to_iso
from lifelog.core.verdicts import Level
from lifelog.db.database import open_db, transaction
from lifelog.db.meta import set_meta
from lifelog.sources import watch as source_watch

NOW = datetime(2026, 11, 28, 14, 0, tzinfo=UTC)


def text_of(renderable, width=160) -> str:
    console = Console(file=io.StringIO(), width=width, record=True)
    console.print(renderable)
    return console.export_text()


def test_sources_come_from_their_meta_keys_even_with_dots_in_the_bucket_id():
    meta = {"source.aw-watcher-window_ada.example.org.state": "silent",
            "source.aw-watcher-window_ada.example.org.since": to_iso(NOW - timedelta(minutes=12)),
            "source.aw-watcher-window_ada.example.org.newest_end": to_iso(NOW - timedelta(minutes=22)),
            "source.aw-watcher-window_ada.example.org.reason": "no window event for 22 min while not-afk",
            "source.aw-watcher-afk_ada.state": "live", "watcher.state": "running"}
    sources = source_watch.recorded(meta)
    assert [(s.bucket_id, s.state) for s in sources] == [("aw-watcher-afk_ada", "live"),
                                                          ("aw-watcher-window_ada.example.org", "silent")]
    assert sources[1].reason.startswith("no window event")


def test_the_screen_shows_the_verdict_components_sources_and_latest_verdicts():
    report = StatusReport(Level.CRITICAL, "CRITICAL: watcher not running (watcher pid 41 is gone)",
                          [Component("aw", Level.OK, "AW healthy (v0.12)", None, 3.0),
                           Component("watcher", Level.CRITICAL, "watcher not running (watcher pid 41 is gone)")],
                          db="/data/lifelog.db")
    screen = status_screen.Screen(
        report, NOW, 2.0,
        sources=[source_watch.Recorded("aw-watcher-window_ada", "silent", NOW - timedelta(minutes=12),
                                       NOW - timedelta(minutes=22), "quiet while not-afk")],
        verdicts=[status_screen.VerdictRow(to_iso(NOW - timedelta(seconds=5)), "restart:not_running",
                                           "watcher pid 41 is gone", "started lifelog watcher (pid 42)", "daemon")],
        watchdog_verdict="restart:not_running", watchdog_checked_at=to_iso(NOW - timedelta(seconds=5)))
    text = text_of(status_screen.render(screen))
    lines = text.splitlines()
    assert lines[1] == "CRITICAL: watcher not running (watcher pid 41 is gone)"
    assert any(line.split()[:2] == ["watcher", "CRITICAL"] for line in lines)
    assert any(line.split()[:3] == ["aw-watcher-window_ada", "silent", "12"] for line in lines)
    assert "restart:not_running" in text and "started lifelog watcher (pid 42)" in text
    assert "database /data/lifelog.db" in text


def test_watch_redraws_until_ctrl_c_and_exits_0(db_path, tmp_path):
    db = open_db(db_path)
    set_meta(db, "source.aw-watcher-afk_test.state", "live")
    with transaction(db):
        db.conn.execute("INSERT INTO watchdog_log (at, verdict, reason, action, actor) VALUES (?, ?, ?, ?, ?)",
                        (to_iso(datetime.now(UTC)), "restart:not_running", "watcher pid 7 is gone",
                         "started lifelog watcher (pid 8)", "cron"))
    db.close()
    out = tmp_path / "screen.txt"
    env = dict(os.environ, LIFELOG_AW_URL="http://127.0.0.1:9", LIFELOG_AW_TIMEOUT_SECONDS="1")
    with open(out, "w") as f:
        p = subprocess.Popen([sys.executable, "-m", "lifelog", "status", "--watch", "--interval", "0.2",
                              "--db", str(db_path)], stdout=f, stderr=subprocess.PIPE, text=True, env=env)
        try:
            wait_for(lambda: out.read_text().count("LifeLog status") >= 3, timeout=30, what="three screens")
            p.send_signal(signal.SIGINT)
            assert p.wait(10) == 0, p.stderr.read()
        finally:
            if p.poll() is None:
                p.kill()
                p.wait(10)
    text = out.read_text()
    assert "\x1b[" not in text  # not a terminal: plain screens, one after another
    first = text.split("LifeLog status")[1]
    assert "CRITICAL: AW unhealthy" in first and "aw-watcher-afk_test" in first and "live" in first
    assert "restart:not_running" in first and "watcher pid 7 is gone" in first
    # AW was checked once (recorded), not at every redraw.
    with open_db(db_path) as db:
        assert db.conn.execute("SELECT count(*) FROM health_checks").fetchone()[0] == 1


def test_watch_refuses_json_and_a_bad_interval(db_path, lifelog):
    open_db(db_path).close()
    r = lifelog("status", "--watch", "--json", "--db", str(db_path))
    assert r.code == 2 and "--json" in r.err
    r = lifelog("status", "--watch", "--interval", "0", "--db", str(db_path))
    assert r.code == 2 and "--interval" in r.err


def test_watch_before_the_database_exists_says_unknown_creates_nothing_and_picks_it_up(tmp_path):
    db_path = tmp_path / "later.db"
    out = tmp_path / "screen.txt"
    env = dict(os.environ, LIFELOG_AW_URL="http://127.0.0.1:9", LIFELOG_AW_TIMEOUT_SECONDS="1")
    with open(out, "w") as f:
        p = subprocess.Popen([sys.executable, "-m", "lifelog", "status", "--watch", "--interval", "0.2",
                              "--db", str(db_path)], stdout=f, stderr=subprocess.PIPE, text=True, env=env)
        try:
            wait_for(lambda: "UNKNOWN: no database at" in out.read_text(), timeout=30, what="an UNKNOWN screen")
            assert not db_path.exists()
            open_db(db_path).close()  # `lifelog init`, meanwhile
            wait_for(lambda: "CRITICAL: AW unhealthy" in out.read_text(), timeout=30, what="the database's status")
            p.send_signal(signal.SIGINT)
            assert p.wait(10) == 0, p.stderr.read()
        finally:
            if p.poll() is None:
                p.kill()
                p.wait(10)
