"""The files that let the operating system supervise LifeLog (scripts/os/)."""

import os
import plistlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LIFELOG = Path(sys.executable).with_name("lifelog")


def install(kind, dest=None):
    env = dict(os.environ, LIFELOG=str(LIFELOG), AW_SERVER=str(Path(sys.executable).with_name("aw-server")))
    args = [str(REPO / "scripts" / "install-os-files"), kind] + ([str(dest)] if dest else [])
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=30, check=True).stdout


@pytest.fixture
def units(tmp_path):
    install("systemd", tmp_path)
    return tmp_path


def unit_value(path, key):
    return [line.split("=", 1)[1] for line in path.read_text().splitlines() if line.startswith(key + "=")]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze (Debian's systemd) is not installed")
def test_every_systemd_unit_verifies(units):
    files = sorted(p.name for p in units.iterdir())
    assert files == ["aw-server-health.service", "aw-server-health.timer", "aw-server.service",
                     "lifelog-daemon.service", "lifelog-watchdog.service", "lifelog-watchdog.timer",
                     "lifelog-watcher.service"]
    r = subprocess.run(["systemd-analyze", "verify", *files], cwd=units, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    # verify only warns about unknown keys and bad values: no warning is allowed either
    assert "ignoring" not in r.stderr and "Unknown" not in r.stderr, r.stderr


def test_the_daemon_unit_restarts_on_failure_and_runs_the_installed_lifelog(units):
    unit = units / "lifelog-daemon.service"
    assert unit_value(unit, "Restart") == ["on-failure"]
    assert unit_value(unit, "ExecStart") == [f"{LIFELOG} daemon"]
    assert "@" not in unit.read_text().replace("@lifelog", "")


def test_the_watchdog_timer_runs_every_minute_and_catches_up(units):
    timer = units / "lifelog-watchdog.timer"
    assert unit_value(timer, "OnCalendar") == ["*-*-* *:*:00"]
    assert unit_value(timer, "Persistent") == ["true"]
    service = units / "lifelog-watchdog.service"
    assert unit_value(service, "ExecStart") == [f"{LIFELOG} watchdog --once"]
    # the watcher it restarts must outlive this oneshot unit: it goes through systemd
    assert any("systemctl --user restart lifelog-watcher.service" in v for v in unit_value(service, "Environment"))


def test_the_crontab_line_has_five_time_fields_and_a_command_that_exists():
    lines = [line for line in install("cron").splitlines() if line.strip()]
    assert len(lines) == 1
    fields = lines[0].split()
    assert fields[:5] == ["*"] * 5
    assert all(re.fullmatch(r"[\d*/,-]+", f) for f in fields[:5])
    command = Path(fields[5])
    assert command.is_absolute() and os.access(command, os.X_OK), command
    assert fields[6:8] == ["watchdog", "--once"]


def test_the_launchd_plist_parses_and_keeps_the_daemon_alive(tmp_path):
    install("launchd", tmp_path)
    with open(tmp_path / "org.lifelog.daemon.plist", "rb") as f:
        plist = plistlib.load(f)
    assert plist["Label"] == "org.lifelog.daemon"
    assert plist["ProgramArguments"] == [str(LIFELOG), "daemon"]
    assert plist["KeepAlive"] == {"SuccessfulExit": False}
    assert plist["RunAtLoad"] is True


def test_the_shipped_plist_template_is_valid_xml_plist():
    with open(REPO / "scripts/os/launchd/org.lifelog.daemon.plist", "rb") as f:
        assert plistlib.load(f)["ProgramArguments"][1] == "daemon"


def test_the_windows_script_registers_the_watchdog_and_the_aw_check():
    # No PowerShell on Linux to run it; check that it wires the right commands.
    text = (REPO / "scripts/os/windows/lifelog-tasks.ps1").read_text()
    assert text.count("Register-ScheduledTask") == 2
    assert "'watchdog --once'" in text
    assert "& $Lifelog health" in text and "aw.consecutive_failures" in text
    assert text.count("{") == text.count("}")


def test_the_install_script_refuses_an_unknown_kind():
    r = subprocess.run([str(REPO / "scripts" / "install-os-files"), "bogus"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "usage" in r.stderr


def test_the_aw_health_unit_restarts_aw_only_after_three_failed_checks(units, tmp_path, db_path):
    """Run the unit's own command line, as systemd would, against a dead AW."""
    from support.awserver import free_port

    [exec_start] = unit_value(units / "aw-server-health.service", "ExecStart")
    assert exec_start.startswith("/bin/sh -c '") and exec_start.endswith("'")
    script = exec_start[len("/bin/sh -c '"):-1].replace("$$", "$")  # systemd's escaping of $
    fakebin = tmp_path / "bin"
    fakebin.mkdir()
    calls = tmp_path / "systemctl-calls"
    (fakebin / "systemctl").write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    (fakebin / "systemctl").chmod(0o755)
    env = dict(os.environ, PATH=f"{fakebin}:{os.environ['PATH']}", LIFELOG_DB_PATH=str(db_path),
               LIFELOG_AW_URL=f"http://127.0.0.1:{free_port()}", LIFELOG_AW_TIMEOUT_SECONDS="1")
    seen = []
    for _ in range(4):
        subprocess.run(["/bin/sh", "-c", script], env=env, capture_output=True, timeout=60)
        seen.append(calls.read_text().count("restart aw-server.service") if calls.exists() else 0)
    assert seen == [0, 0, 1, 2]
    assert calls.read_text().splitlines()[0] == "--user restart aw-server.service"
