"""`lifelog status --watch`: the screen (components, sources, latest
verdicts), redrawn until Ctrl-C, exit 0."""

from __future__ import annotations

import io
import os
import shlex
import shutil
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
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


# -- the screen in a real terminal, 80 and 120 columns wide (tmux) ---------------------------------


def _tmux(*args: str, socket: str) -> str:
    r = subprocess.run(["tmux", "-L", socket, "-f", "/dev/null", *args], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.parametrize("columns", [80, 120])
def test_the_screen_fits_a_real_terminal_80_and_120_columns_wide(db_path, tmp_path, columns, spawn):
    # The screen as a person sees it: `status --watch` in a tmux window of the
    # width, read back with capture-pane (-J joins what the terminal wrapped,
    # so a line too long for the window shows whole). AW is down, a source
    # silent and a verdict logged, each with a long reason.
    if shutil.which("tmux") is None:  # a missing tool fails, never skips: .ci/run installs it
        pytest.fail("tmux is not installed: apt-get install tmux (.ci/run does it as root)")
    db = open_db(db_path)
    bucket = "aw-watcher-window_ada-lovelace-thinkpad"
    for key, value in (("state", "silent"), ("since", to_iso(datetime.now(UTC) - timedelta(minutes=12))),
                       ("newest_end", to_iso(datetime.now(UTC) - timedelta(minutes=22))),
                       ("reason", "no window event for 22 min while you were active and the machine awake; "
                                  "restart it with 'systemctl --user restart aw-watcher-window'")):
        set_meta(db, f"source.{bucket}.{key}", value)
    with transaction(db):
        db.conn.execute("INSERT INTO watchdog_log (at, verdict, reason, action, actor) VALUES (?, ?, ?, ?, ?)",
                        (to_iso(datetime.now(UTC)), "restart:heartbeat_stale",
                         "heartbeat 312 s old, more than heartbeat_timeout_seconds (120 s), while AW answers",
                         "stopped watcher pid 4488 (SIGTERM), started lifelog watcher (pid 4490)", "daemon"))
    db.close()
    socket = f"lifelog-test-{os.getpid()}-{columns}"
    # (Unset: the test process may carry a LINES and COLUMNS that rich would take over the window's size.)
    argv = ["env", "-u", "LINES", "-u", "COLUMNS", f"PATH={os.environ['PATH']}", f"HOME={os.environ['HOME']}", "TERM=xterm-256color",
            "LIFELOG_AW_URL=http://127.0.0.1:9", "LIFELOG_AW_TIMEOUT_SECONDS=1",
            *(f"{k}={v}" for k, v in os.environ.items() if k.startswith("XDG_")),
            sys.executable, "-m", "lifelog", "status", "--watch", "--interval", "0.5", "--db", str(db_path)]
    _tmux("new-session", "-d", "-s", "screen", "-x", str(columns), "-y", "100", shlex.join(argv) + "; sleep 60",
          socket=socket)
    try:
        shown = [""]

        def screen() -> str | None:
            shown[0] = _tmux("capture-pane", "-p", "-J", "-t", "screen", socket=socket)
            return shown[0] if "CRITICAL: AW unhealthy" in shown[0] and "database " in shown[0] else None

        try:
            text = wait_for(screen, timeout=60, what="the status screen drawn")
        except AssertionError as e:
            (tmp_path / f"screen-{columns}.txt").write_text(shown[0])
            raise AssertionError(f"{e}; the window shows:\n{shown[0]}") from None
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, timeout=30)
    (tmp_path / f"screen-{columns}.txt").write_text(text)  # the screenshot, to look at
    lines = [line.rstrip() for line in text.splitlines()]
    too_long = [line for line in lines if len(line) > columns and not line.startswith("database ")]
    assert too_long == [], text
    assert lines[0].startswith("LifeLog status")
    words = " ".join(text.split())
    assert "CRITICAL: AW unhealthy" in words and "silent" in words and "restart:heartbeat_stale" in words
    # Reasons wrap at words inside their column: every word of them is there, whole.
    assert "restart it with 'systemctl --user restart aw-watcher-window'" in words  # the source's, in order
    said = {word.strip(";,") for word in text.split()}  # (at 80 columns the action follows the reason after a ;)
    reason = "heartbeat 312 s old, more than heartbeat_timeout_seconds (120 s), while AW answers"
    assert {word.strip(";,") for word in reason.split()} <= said
