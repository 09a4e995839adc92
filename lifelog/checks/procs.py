"""The watcher as an OS process: stop it, start a new one.

Which process is the watcher is lifelog.core.identity's question; nothing here
signals a process whose PID, start time and command line do not all match
what was recorded.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from lifelog.core import commands, keys
from lifelog.core.errors import LifelogError
from lifelog.core.identity import LiveProc, WatcherFacts, identity_matches, live, watcher_facts
from lifelog.core.settings import Settings
from lifelog.db.meta import read_meta

log = logging.getLogger("lifelog.procs")

# After SIGUSR1, how long to let faulthandler write the stack before terminating.
STACK_DUMP_PAUSE = 0.3
# After the kill: how long to wait for the kernel to take the process away.
KILL_WAIT = 10.0


class StopFailed(LifelogError):
    """The recorded watcher is still alive after the kill."""

    exit_code = 1


class StartFailed(LifelogError):
    """A new watcher could not be started."""

    exit_code = 1


# -- stopping ------------------------------------------------------------------


def stack_dump_signal() -> int | None:
    """The signal that makes the watcher's faulthandler write its stack, where
    the platform has one (SIGUSR1; Windows has none)."""
    import signal

    return getattr(signal, "SIGUSR1", None)


def _gone(pid: int) -> bool:
    return not live(pid).alive


def _wait_gone(pid: int, timeout: float) -> bool:
    # Polled through live() rather than psutil's wait(): a zombie counts as
    # gone, whoever its parent is.
    deadline = time.monotonic() + timeout
    while True:
        if _gone(pid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def _identity_keys(source: str) -> tuple[str, str]:
    if source == "recorded":
        return keys.WATCHER_PROCESS_CREATED, keys.WATCHER_CMDLINE
    return keys.WATCHDOG_SPAWNED_CREATED, keys.WATCHDOG_SPAWNED_CMDLINE


def _target(meta: Mapping[str, str | None], facts: WatcherFacts):
    """The psutil handle of the watcher, only if PID, start time and command
    line still match what was recorded; else None.

    The facts are milliseconds old, but this is the one place that must never
    hit a stranger. psutil remembers the start time it read here and checks
    it again before each signal it sends, so a PID reused meanwhile raises
    NoSuchProcess instead of being signalled."""
    import psutil

    assert facts.pid is not None
    try:
        proc = psutil.Process(facts.pid)
        with proc.oneshot():
            again = LiveProc(facts.pid, True, proc.create_time(), tuple(proc.cmdline()))
    except psutil.Error:  # gone, a zombie, or not ours to look at
        return None
    created_key, cmdline_key = _identity_keys(facts.source)
    if not identity_matches(meta.get(created_key), meta.get(cmdline_key), again):
        return None
    return proc


def stop_watcher(db, settings: Settings, *, dump_stack: bool = False) -> bool:
    """Stop the watcher of this database if (and only if) it is the recorded one.

    Through psutil: resume it (it may be stopped: SIGCONT, or NtResumeProcess
    on Windows) and, for a hung one where the platform has SIGUSR1, ask
    faulthandler for its Python stack in its log; then terminate (SIGTERM;
    on Windows TerminateProcess, which ends it at once), and kill after
    stop_grace_seconds. Returns when the process is gone: True if one was
    stopped, False if there was nothing of ours to stop. Raises StopFailed if
    it survives the kill (e.g. stuck in uninterruptible I/O) or may not be
    signalled.
    """
    import psutil

    meta = read_meta(db)
    facts = watcher_facts(meta)
    if not facts.running:
        return False
    pid = facts.pid
    assert pid is not None
    proc = _target(meta, facts)
    if proc is None:
        return False
    try:
        proc.resume()
        dump = stack_dump_signal()
        if dump_stack and dump is not None:
            log.info("asking watcher pid %d for its Python stack (SIGUSR1)", pid)
            proc.send_signal(dump)
            time.sleep(STACK_DUMP_PAUSE)  # let faulthandler write before the process goes
        proc.terminate()
        if _wait_gone(pid, settings.stop_grace_seconds):
            log.info("watcher pid %d stopped", pid)
            return True
        log.warning("watcher pid %d still running %g s after terminate; killing it", pid, settings.stop_grace_seconds)
        proc.kill()
    except psutil.NoSuchProcess:  # it ended (or was reaped) on its own meanwhile
        return True
    except psutil.AccessDenied:
        raise StopFailed(f"not allowed to stop watcher pid {pid}; stop it as the user that runs it") from None
    if _wait_gone(pid, KILL_WAIT):
        return True
    raise StopFailed(f"watcher pid {pid} is still alive {KILL_WAIT:g} s after kill")


# -- starting ------------------------------------------------------------------

# Win32 process creation flags (subprocess has them only on Windows). The
# short-lived starter gets a console with no window (nothing flashes up when a
# scheduled task runs it); the watcher gets no console at all and a process
# group of its own, so it outlives the starter and Ctrl+C in the caller's
# console does not reach it. (CREATE_NO_WINDOW is ignored beside
# DETACHED_PROCESS, so the watcher's flags do not repeat it.)
DETACHED_PROCESS = 0x00000008
CREATE_NEW_PROCESS_GROUP = 0x00000200
CREATE_NO_WINDOW = 0x08000000


def detach_options(platform: str) -> tuple[dict, dict]:
    """Pure: Popen options for the starter and for the watcher it starts."""
    if platform == "win32":
        return {"creationflags": CREATE_NO_WINDOW}, {"creationflags": DETACHED_PROCESS | CREATE_NEW_PROCESS_GROUP}
    return {}, {"start_new_session": True}


# Run by a short-lived intermediate process: it starts the watcher detached
# (the watcher's options from detach_options, as JSON), prints its PID and
# exits, so the watcher is reparented away from us. A long-running caller
# (the daemon) never accumulates zombies.
_DETACH = (
    "import json, subprocess, sys\n"
    "log = open(sys.argv[1], 'ab')\n"
    "p = subprocess.Popen(sys.argv[3:], stdin=subprocess.DEVNULL, stdout=log, stderr=log,"
    " close_fds=True, **json.loads(sys.argv[2]))\n"
    "print(p.pid, flush=True)\n"
)


def watcher_log_path(settings: Settings) -> Path:
    """Where the detached watcher of this database appends its output: one
    log per database, so two databases' watchers never share one.

    The default database's is `watcher.log`; another's is named for it,
    `watcher-<file stem>-<8 hex of its absolute path>.log` (the stem alone
    would join two `lifelog.db` in different folders), in the same folder."""
    import hashlib
    import re

    from lifelog.core.settings import default_db_path, log_dir

    db = os.path.normcase(Path(settings.db_path).expanduser().resolve())
    if db == os.path.normcase(default_db_path().resolve()):
        return log_dir() / "watcher.log"
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(db).stem)[:40] or "db"
    digest = hashlib.sha256(db.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return log_dir() / f"watcher-{stem}-{digest}.log"


def watcher_argv(settings: Settings) -> list[str]:
    # Absolute paths: the watcher outlives us and must not depend on our cwd.
    argv = [sys.executable, "-m", "lifelog", "watcher", "--db", os.path.abspath(settings.db_path)]
    if settings.config_path is not None:
        argv += ["--config", os.path.abspath(settings.config_path)]
    return argv


def start_watcher(settings: Settings) -> int:
    """Start a watcher; returns the PID of what was started.

    With `watcher_restart_command` set, runs it (no shell; bounded) and
    returns the command's PID. Otherwise starts `lifelog watcher` detached,
    its output appended to the log file, and returns the watcher's PID.
    """
    argv = settings.restart_command_argv
    if argv:
        ran = commands.run(argv, max(30.0, settings.stop_grace_seconds * 2))
        if ran.code != 0 or ran.pid is None:
            raise StartFailed(f"watcher_restart_command: {ran.text}")
        return ran.pid
    log_path = watcher_log_path(settings)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    starter, watcher = detach_options(sys.platform)
    try:
        out = subprocess.run(
            [sys.executable, "-c", _DETACH, str(log_path), json.dumps(watcher), *watcher_argv(settings)],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30, **starter,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise StartFailed(f"could not start lifelog watcher: {e}") from None
    try:
        return int(out.stdout.strip())
    except ValueError:
        raise StartFailed(
            f"could not start lifelog watcher: {(out.stderr or out.stdout).strip()[:200]}"
        ) from None
