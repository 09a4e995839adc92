"""The command line as a person meets it (SPEC section 7, issue 22): the
reading commands print their answer and no log line, fit the terminal's
width (80 columns included), colour nothing without a terminal or with
NO_COLOR; `config show` says where each setting came from, `paths` where
things are. Real processes, and a real pseudo-terminal where it matters."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time

import pytest
from support.awserver import free_port
from support.coverage_history import local_iso, plant

from lifelog.db.database import open_db
from lifelog.db.meta import set_meta

LOG_LINE = re.compile(r"^\S+ \S+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) lifelog\.", re.M)


@pytest.fixture
def aw_down(db_path, isolated_env) -> dict:
    """An environment whose AW answers nothing, and a database."""
    env = dict(os.environ, LIFELOG_AW_URL=f"http://127.0.0.1:{free_port()}", LIFELOG_AW_TIMEOUT_SECONDS="1",
               LIFELOG_DB_PATH=str(db_path))
    open_db(db_path).close()
    return env


@pytest.fixture
def planted(db_path):
    """The coverage tests' planted history: buckets, events, sources; and a long meta value."""
    db = open_db(db_path)
    history = plant(db)
    set_meta(db, "watcher.last_error", "AW answered HTTP 500 from /api/0/buckets/aw-watcher-window_ada-laptop/"
                                       "events: Internal Server Error; the next poll tries again " * 2)
    db.close()
    return history


def log_file(home) -> str:
    path = home / "state" / "lifelog" / "log" / "lifelog.log"
    return path.read_text() if path.exists() else ""


# -- quiet answers ---------------------------------------------------------------------------


def test_status_with_aw_down_prints_the_verdict_and_no_log_line(lifelog, aw_down, isolated_env):
    r = lifelog("status", env=aw_down)
    assert r.code == 2 and r.out.startswith("CRITICAL: AW unhealthy"), r
    assert r.err == ""  # the health check's ERROR and the alert's WARNING are not here...
    logged = log_file(isolated_env)
    assert "ERROR lifelog.health" in logged and "WARNING lifelog.alerts" in logged  # ...but in the log file


def test_v_shows_the_log_on_stderr_too(lifelog, aw_down, isolated_env):
    r = lifelog("status", "-v", env=aw_down)
    assert r.code == 2 and r.out.startswith("CRITICAL: AW unhealthy")
    assert "ERROR lifelog.health" in r.err and "WARNING lifelog.alerts" in r.err
    assert "ERROR lifelog.health" in log_file(isolated_env)
    assert not LOG_LINE.search(r.out)  # stdout is the answer alone


@pytest.mark.parametrize("argv", [["meta", "show"], ["sources"], ["coverage"], ["config", "show"], ["paths"],
                                  ["status", "--json"]])
def test_no_reading_command_prints_a_log_line(lifelog, aw_down, argv):
    r = lifelog(*argv, env=dict(aw_down, LIFELOG_LOG_LEVEL="DEBUG"))
    assert r.code in (0, 2), r
    assert not LOG_LINE.search(r.err) and not LOG_LINE.search(r.out), r


def test_health_still_logs_on_stderr(lifelog, aw_down):
    r = lifelog("health", env=aw_down)
    assert r.code == 2
    assert "ERROR lifelog.health" in r.err


# -- the terminal's width --------------------------------------------------------------------


def _long_lines(text: str, width: int) -> list[str]:
    # A path may run longer (SPEC section 7).
    return [line for line in text.splitlines() if len(line) > width and not re.search(r"(^|\s)/\S{20,}", line)]


@pytest.mark.parametrize("argv", [["status"], ["sources"], ["meta", "show"], ["coverage"], ["config", "show"]])
def test_at_columns_80_no_line_is_longer_than_80(lifelog, aw_down, planted, argv):
    extra = ["--since", planted.day.isoformat(), "--until", local_iso(planted.until)] if argv == ["coverage"] else []
    wide = lifelog(*argv, *extra, env=aw_down)
    r = lifelog(*argv, *extra, env=dict(aw_down, COLUMNS="80"))
    assert r.code == wide.code and r.code in (0, 1, 2), r
    assert _long_lines(r.out, 80) == [], r.out
    assert any(len(line) > 80 for line in wide.out.splitlines()), wide.out  # the width did something
    json_args = [] if argv == ["coverage"] else ["--json"]
    if argv != ["status"]:  # (status's JSON holds times of its own run)
        a = lifelog(*argv, *extra, *json_args, env=dict(aw_down, COLUMNS="80"))
        b = lifelog(*argv, *extra, *json_args, env=aw_down)
        if json_args:
            assert _without_ages(json.loads(a.out)) == _without_ages(json.loads(b.out))  # --json ignores the width


def _without_ages(doc):
    if isinstance(doc, dict):
        return {k: _without_ages(v) for k, v in doc.items() if "age" not in k and k not in ("at", "since")}
    if isinstance(doc, list):
        return [_without_ages(v) for v in doc]
    return doc


def test_sources_at_80_wraps_each_reason_whole_inside_its_column(lifelog, aw_down, planted):
    r = lifelog("sources", env=dict(aw_down, COLUMNS="80"))
    lines = r.out.splitlines()
    at = lines[0].index("REASON")
    reason = "AW's own host name is not known yet (LifeLog's watcher records it when it reads AW)"
    first = next(i for i, line in enumerate(lines) if line.startswith("aw-watcher-afk_ada-laptop"))
    following = [line for line in lines[first + 1:] if not line[:at].strip()]
    assert " ".join([lines[first][at:]] + [line[at:] for line in following[:reason.count(" ")]]).startswith(reason)


def run_in_terminal(argv: list[str], env: dict, columns: int, timeout: float = 60,
                    until: str | None = None) -> tuple[int, str]:
    """Run `argv` with a pseudo-terminal of `columns` as its stdout and stderr;
    its exit code and output. With `until`: Ctrl-C (SIGINT) once that has
    been printed twice."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    env = {k: v for k, v in env.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower, env=env)
    os.close(follower)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
                if until is not None and out.count(until.encode()) >= 2 and proc.poll() is None:
                    proc.send_signal(signal.SIGINT)
                    until = None
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=max(deadline - time.monotonic(), 1))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        os.close(leader)
    return code, out.decode("utf-8", "replace").replace("\r\n", "\n")


LIFELOG = [sys.executable, "-m", "lifelog"]


def test_in_an_80_column_terminal_status_fits_it_and_prints_no_log_line(aw_down, planted):
    code, out = run_in_terminal([*LIFELOG, "status"], dict(aw_down, COLUMNS="200"), 80)
    assert code == 2 and out.startswith("CRITICAL: AW unhealthy"), out
    assert _long_lines(out, 80) == [], out  # the terminal's width, not COLUMNS
    assert not LOG_LINE.search(out)


def test_in_a_terminal_the_coverage_picture_is_coloured_unless_no_color(aw_down, planted):
    args = [*LIFELOG, "coverage", "--since", planted.day.isoformat(), "--until", local_iso(planted.until)]
    code, coloured = run_in_terminal(args, aw_down, 120)
    assert code == 0 and "\x1b[" in coloured
    code, plain = run_in_terminal(args, dict(aw_down, NO_COLOR="1"), 120)
    assert code == 0 and "\x1b[" not in plain and "active 4:00" in plain
    assert _long_lines(plain, 120) == [], plain


def test_with_no_color_the_status_screen_is_plain_text_with_no_cursor_movement(aw_down):
    argv = [*LIFELOG, "status", "--watch", "--interval", "0.2"]
    code, drawn = run_in_terminal(argv, aw_down, 100, until="LifeLog status")
    assert code == 0 and "\x1b[" in drawn  # a terminal: colour, the cursor moved and hidden
    code, plain = run_in_terminal(argv, dict(aw_down, NO_COLOR="1"), 100, until="LifeLog status")
    assert code == 0 and "\x1b" not in plain and plain.count("LifeLog status") >= 2, plain
    assert "CRITICAL: AW unhealthy" in plain


# -- config show and paths -------------------------------------------------------------------


def test_config_show_hides_each_devices_api_key(lifelog, tmp_path, db_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[devices.desk]\nurl = "http://127.0.0.1:5600"\napi_key = "dev1ce-k3y-77"\n'
                   '[devices.lap]\nurl = "http://lap.lan:5600"\n')
    cfg.chmod(0o600)
    r = lifelog("config", "show", "--json", "--db", str(db_path), "--config", str(cfg))
    assert r.code == 0, r.err
    assert json.loads(r.out)["settings"]["devices"] == {"value": {
        "desk": {"url": "http://127.0.0.1:5600", "api_key": "(set)", "expect": "always"},
        "lap": {"url": "http://lap.lan:5600", "api_key": "", "expect": "sometimes"}}, "source": "file"}
    human = lifelog("config", "show", "--db", str(db_path), "--config", str(cfg))
    assert human.code == 0, human.err
    for out in (r.out + r.err, human.out + human.err):
        assert "dev1ce-k3y-77" not in out
    assert "(set)" in human.out


def test_config_show_names_each_settings_source_and_hides_secrets(lifelog, tmp_path, db_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('poll_interval_seconds = 3\nstop_grace_seconds = 1.5\naw_api_key = "s3cr3t-key-99"\n')
    cfg.chmod(0o600)
    env = dict(os.environ, LIFELOG_POLL_INTERVAL_SECONDS="4")
    r = lifelog("config", "show", "--json", "--db", str(db_path), "--config", str(cfg), env=env)
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    s = doc["settings"]
    assert s["db_path"] == {"value": str(db_path), "source": "option"}
    assert s["poll_interval_seconds"] == {"value": 4, "source": "environment"}
    assert s["stop_grace_seconds"] == {"value": 1.5, "source": "file"}
    assert s["aw_url"] == {"value": "http://127.0.0.1:5600", "source": "default"}
    assert s["aw_api_key"] == {"value": "(set)", "source": "file"}
    assert doc["config_file"] == {"path": str(cfg), "source": "option", "exists": True}
    human = lifelog("config", "show", "--db", str(db_path), "--config", str(cfg), env=env)
    assert human.code == 0
    assert "s3cr3t-key-99" not in r.out + r.err + human.out + human.err
    row = next(line.split() for line in human.out.splitlines() if line.startswith("aw_api_key "))
    assert row == ["aw_api_key", "file", "(set)"]
    assert next(line.split() for line in human.out.splitlines()
                if line.startswith("poll_interval_seconds ")) == ["poll_interval_seconds", "environment", "4"]


def test_config_show_refuses_a_bad_setting_in_one_line_exit_2(lifelog, db_path):
    r = lifelog("config", "show", "--db", str(db_path), env=dict(os.environ, LIFELOG_POLL_INTERVAL_SECONDS="soon"))
    assert r.code == 2 and r.err.count("\n") == 1 and "LIFELOG_POLL_INTERVAL_SECONDS" in r.err
    assert not db_path.exists()


def test_paths_says_where_things_are(lifelog, isolated_env, db_path):
    r = lifelog("paths", "--json", "--db", str(db_path))
    assert r.code == 0, r.err
    log = isolated_env / "state" / "lifelog" / "log"
    assert json.loads(r.out) == {"database": str(db_path),
                                 "config_file": str(isolated_env / "config" / "lifelog" / "config.toml"),
                                 "log_dir": str(log), "log_file": str(log / "lifelog.log"),
                                 "backup_dir": str(isolated_env / "data" / "lifelog" / "backups"),
                                 "metrics_file": None}
    human = lifelog("paths", "--db", str(db_path))
    assert human.out.splitlines()[0] == f"database       {db_path}"
    assert not db_path.exists()  # paths creates nothing
