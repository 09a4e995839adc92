"""Stopping and starting the watcher portably: real child processes stopped
through psutil here, the Windows options checked with the platform stood in
for, and no POSIX-only signal named unguarded anywhere in lifelog/."""

from __future__ import annotations

import ast
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from support.helpers import processes_on, wait_for

from lifelog.checks import procs
from lifelog.core import keys
from lifelog.core.settings import load_settings
from lifelog.db.database import open_db, transaction
from lifelog.db.meta import set_meta

# Stands in for a watcher: stops on SIGTERM saying so, and (with `stack`)
# lets faulthandler write its stack on SIGUSR1, as the watcher does.
CHILD = (
    "import faulthandler, os, signal, sys, time\n"
    "def stop(*_):\n"
    "    sys.stderr.write('terminated\\n'); sys.stderr.flush(); os._exit(0)\n"
    "signal.signal(signal.SIGTERM, stop)\n"
    "if sys.argv[1] == 'stack':\n"
    "    faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)\n"
    "print('ready', flush=True)\n"
    "while True:\n"
    "    time.sleep(1)\n"
)
GRACE = 5.0


@pytest.fixture
def recorded_child(db_path, tmp_path, monkeypatch, spawn):
    """Start a real child recorded as this database's watcher (its own start
    time and argv); returns (process, its stderr file); stopped by `spawn`."""
    monkeypatch.setenv("LIFELOG_DB_PATH", str(db_path))
    monkeypatch.setenv("LIFELOG_STOP_GRACE_SECONDS", str(GRACE))

    def start(mode: str = "plain"):
        err = tmp_path / f"child-{len(spawn.started)}.err"
        with open(err, "wb") as sink:
            child = spawn([sys.executable, "-c", CHILD, mode], stdout=subprocess.PIPE, stderr=sink, text=True)
        assert child.stdout.readline().strip() == "ready"
        identity = psutil.Process(child.pid)
        db = open_db(db_path)
        with transaction(db):
            set_meta(db, keys.WATCHER_PID, child.pid)
            set_meta(db, keys.WATCHER_PROCESS_CREATED, repr(identity.create_time()))
            set_meta(db, keys.WATCHER_CMDLINE, json.dumps(identity.cmdline()))
        return db, child, err

    return start


def test_a_stopped_watcher_is_resumed_and_terminated_without_waiting_for_the_kill(recorded_child, caplog):
    db, child, err = recorded_child()
    child.send_signal(signal.SIGSTOP)
    wait_for(lambda: psutil.Process(child.pid).status() == psutil.STATUS_STOPPED, what="the child stopped")
    began = time.monotonic()
    assert procs.stop_watcher(db, load_settings()) is True
    assert time.monotonic() - began < GRACE
    assert not psutil.pid_exists(child.pid)
    assert err.read_text() == "terminated\n"  # its SIGTERM handler ran: resumed, then terminated
    assert "killing it" not in caplog.text


def test_a_hung_watcher_is_asked_for_its_stack_before_it_is_terminated(recorded_child, caplog):
    db, child, err = recorded_child("stack")
    caplog.set_level("INFO", logger="lifelog.procs")
    assert procs.stop_watcher(db, load_settings(), dump_stack=True) is True
    text = err.read_text()
    assert "most recent call first" in text and text.endswith("terminated\n")
    assert f"asking watcher pid {child.pid} for its Python stack" in caplog.text


def test_where_the_platform_has_no_sigusr1_no_stack_is_asked_for_and_the_stop_goes_on(recorded_child, monkeypatch,
                                                                                       caplog):
    db, child, err = recorded_child("plain")  # SIGUSR1 would kill it before its SIGTERM handler runs
    monkeypatch.delattr(signal, "SIGUSR1")  # as on Windows
    caplog.set_level("INFO", logger="lifelog.procs")
    assert procs.stack_dump_signal() is None
    assert procs.stop_watcher(db, load_settings(), dump_stack=True) is True
    assert err.read_text() == "terminated\n"
    assert "asking" not in caplog.text


def test_a_process_whose_command_line_no_longer_matches_is_not_signalled(recorded_child, db_path):
    db, child, err = recorded_child()
    set_meta(db, keys.WATCHER_CMDLINE, json.dumps([sys.executable, "-m", "lifelog", "watcher"]))
    assert procs.stop_watcher(db, load_settings()) is False
    assert child.poll() is None and err.read_text() == ""


def test_detaching_uses_a_new_session_on_posix_and_creation_flags_on_windows():
    assert procs.detach_options("linux") == ({}, {"start_new_session": True})
    assert procs.detach_options("darwin") == ({}, {"start_new_session": True})
    starter, watcher = procs.detach_options("win32")
    # The documented Win32 values (subprocess defines them only on Windows).
    assert starter == {"creationflags": 0x08000000}  # CREATE_NO_WINDOW
    assert watcher == {"creationflags": 0x00000008 | 0x00000200}  # DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP


def test_on_windows_the_starter_runs_windowless_and_passes_the_watchers_flags(db_path, monkeypatch):
    monkeypatch.setenv("LIFELOG_DB_PATH", str(db_path))
    settings = load_settings()
    # Windows' own folders (LOCALAPPDATA) are not there to ask on this OS.
    monkeypatch.setattr(procs, "watcher_log_path", lambda s: db_path.parent / "watcher.log")
    monkeypatch.setattr(sys, "platform", "win32")
    runs = []

    def run(argv, **kwargs):  # Windows creation flags cannot be used on this OS: record them
        runs.append((argv, kwargs))
        return subprocess.CompletedProcess(argv, 0, stdout="4242\n", stderr="")

    monkeypatch.setattr(subprocess, "run", run)
    assert procs.start_watcher(settings) == 4242
    [(argv, kwargs)] = runs
    assert kwargs["creationflags"] == procs.CREATE_NO_WINDOW and kwargs["timeout"] == 30
    assert json.loads(argv[4]) == {"creationflags": procs.DETACHED_PROCESS | procs.CREATE_NEW_PROCESS_GROUP}
    assert argv[5:] == procs.watcher_argv(settings)


# -- the watcher's log -------------------------------------------------------------


def test_the_default_databases_watcher_log_is_watcher_log_in_the_log_folder(monkeypatch):
    from lifelog.core.settings import default_db_path, log_dir

    assert procs.watcher_log_path(load_settings(environ={})) == log_dir() / "watcher.log"
    # The same file by another name (relative to the folder we are in) is the same log.
    default_db_path().parent.mkdir(parents=True)
    monkeypatch.chdir(default_db_path().parent)
    assert procs.watcher_log_path(load_settings(overrides={"db_path": default_db_path().name}, environ={})) \
        == log_dir() / "watcher.log"


def test_each_database_has_its_own_watcher_log_and_its_detached_watcher_writes_there(db_path, tmp_path, spawn,
                                                                                        monkeypatch):
    from lifelog.core.settings import log_dir

    other = tmp_path / "other" / "lifelog.db"  # the same file name: only the folder tells them apart
    monkeypatch.setenv("LIFELOG_AW_URL", "http://127.0.0.1:9")  # nothing there: the watchers just retry
    settings = [load_settings(overrides={"db_path": str(p)}) for p in (db_path, other)]
    logs = [procs.watcher_log_path(s) for s in settings]
    assert logs[0] != logs[1]
    for log in logs:  # beside each other, named for the database
        assert log.parent == log_dir() and re.fullmatch(r"watcher-lifelog-[0-9a-f]{8}\.log", log.name), log
    try:
        pids = [procs.start_watcher(s) for s in settings]
        for pid, log, db in zip(pids, logs, (db_path, other), strict=True):
            line = f"watcher started (pid {pid}) on {db}"
            wait_for(lambda: log.exists() and line in log.read_text(), what=f"{line!r} in {log}")
        assert f"(pid {pids[1]})" not in logs[0].read_text() and f"(pid {pids[0]})" not in logs[1].read_text()
    finally:  # `spawn` reaps what runs on db_path; the other database's watcher is reaped here
        leftovers = processes_on(other)
        for proc in leftovers:
            proc.terminate()
        gone, alive = psutil.wait_procs(leftovers, timeout=10)
        for proc in alive:
            proc.kill()
        psutil.wait_procs(alive, timeout=10)


# -- no POSIX-only signal named unguarded ------------------------------------------

# The signal module's names that Windows has too (the rest exist on POSIX only,
# or, like SIGBREAK and CTRL_*_EVENT, on Windows only).
EVERYWHERE = {"SIGABRT", "SIGFPE", "SIGILL", "SIGINT", "SIGSEGV", "SIGTERM", "SIG_DFL", "SIG_IGN",
              "signal", "getsignal", "default_int_handler", "raise_signal", "set_wakeup_fd", "strsignal",
              "valid_signals", "Signals", "Handlers"}


def _hasattr_signal(test: ast.AST) -> set[str]:
    """Names NAME for which `test` (alone or and-ed) is `hasattr(signal, "NAME")`."""
    tests = test.values if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And) else [test]
    return {t.args[1].value for t in tests
            if isinstance(t, ast.Call) and getattr(t.func, "id", "") == "hasattr" and len(t.args) == 2
            and getattr(t.args[0], "id", "") == "signal" and isinstance(t.args[1], ast.Constant)}


def _guarded_names(tree: ast.AST) -> dict[int, set[str]]:
    """Line numbers inside `if hasattr(signal, "NAME"):` bodies, with the names guarded there."""
    guarded: dict[int, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and (names := _hasattr_signal(node.test)):
            for inner in node.body:
                for line in range(inner.lineno, (inner.end_lineno or inner.lineno) + 1):
                    guarded.setdefault(line, set()).update(names)
    return guarded


def unguarded_signal_names(source: str) -> list[tuple[int, str]]:
    tree = ast.parse(source)
    guarded = _guarded_names(tree)
    return [(node.lineno, node.attr) for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and getattr(node.value, "id", "") == "signal"
            and node.attr not in EVERYWHERE and node.attr not in guarded.get(node.lineno, set())]


def test_the_scan_finds_an_unguarded_name_and_accepts_a_guarded_one():
    assert unguarded_signal_names("import signal\nos.kill(1, signal.SIGKILL)\n") == [(2, "SIGKILL")]
    assert unguarded_signal_names("import signal\nif hasattr(signal, 'SIGUSR1'):\n    x = signal.SIGUSR1\n") == []
    assert unguarded_signal_names("import signal\nif x and hasattr(signal, 'SIGUSR1'):\n    signal.SIGUSR1\n") == []
    assert unguarded_signal_names("import signal\nif hasattr(signal, 'SIGHUP'):\n    x = signal.SIGUSR1\n") \
        == [(3, "SIGUSR1")]


def test_no_module_names_a_posix_only_signal_unguarded():
    package = Path(procs.__file__).parent
    found = {path.name: bad for path in sorted(package.glob("*.py"))
             if (bad := unguarded_signal_names(path.read_text()))}
    assert found == {}


def test_a_failing_watcher_restart_command_is_a_start_failure_saying_how_it_ended(db_path):
    settings = load_settings(overrides={"db_path": str(db_path), "watcher_restart_command":
                                        f"{sys.executable} -c 'print(\"unit not found\"); raise SystemExit(3)'"},
                             environ={})
    with pytest.raises(procs.StartFailed, match=r"watcher_restart_command: exit 3: unit not found"):
        procs.start_watcher(settings)
    settings = load_settings(overrides={"db_path": str(db_path), "watcher_restart_command": "/nonexistent/x"},
                             environ={})
    with pytest.raises(procs.StartFailed, match=r"could not run '/nonexistent/x'"):
        procs.start_watcher(settings)
