"""The watcher as an OS process: stop it, start a new one.

Which process is the watcher is lifelog.identity's question; nothing here
signals a process whose PID, start time and command line do not all match
what was recorded.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from lifelog.db import read_meta
from lifelog.errors import LifelogError
from lifelog.identity import CREATED_TOLERANCE, live, watcher_facts
from lifelog.settings import Settings

log = logging.getLogger("lifelog.procs")

# After SIGUSR1, how long to let faulthandler write the stack before SIGTERM.
STACK_DUMP_PAUSE = 0.3
# After SIGKILL: how long to wait for the kernel to take the process away.
KILL_WAIT = 10.0


class StopFailed(LifelogError):
    """The recorded watcher is still alive after SIGKILL."""

    exit_code = 1


class StartFailed(LifelogError):
    """A new watcher could not be started."""

    exit_code = 1


# -- stopping ------------------------------------------------------------------


def _gone(pid: int) -> bool:
    return not live(pid).alive


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if _gone(pid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def stop_watcher(db, settings: Settings, *, dump_stack: bool = False) -> bool:
    """Stop the watcher of this database if (and only if) it is the recorded one.

    SIGCONT (it may be stopped) and, for a hung one, SIGUSR1 so faulthandler
    writes its Python stack to its log; then SIGTERM, and SIGKILL after
    stop_grace_seconds. Returns when the process is gone: True if one was
    stopped, False if there was nothing of ours to stop. Raises StopFailed if
    it survives SIGKILL (e.g. stuck in uninterruptible I/O).
    """
    facts = watcher_facts(read_meta(db))
    if not facts.running:
        return False
    pid = facts.pid
    assert pid is not None
    # Re-check right before signalling: the facts are milliseconds old, but
    # this is the one place that must never hit a stranger.
    again = live(pid)
    if not again.alive or again.created is None or abs(again.created - (facts.created or 0)) > CREATED_TOLERANCE:
        return False
    _signal(pid, signal.SIGCONT)
    if dump_stack and hasattr(signal, "SIGUSR1"):
        log.info("asking watcher pid %d for its Python stack (SIGUSR1)", pid)
        _signal(pid, signal.SIGUSR1)
        time.sleep(STACK_DUMP_PAUSE)  # let faulthandler write before the process goes
    _signal(pid, signal.SIGTERM)
    if _wait_gone(pid, settings.stop_grace_seconds):
        log.info("watcher pid %d stopped", pid)
        return True
    log.warning("watcher pid %d ignored SIGTERM for %g s; sending SIGKILL", pid, settings.stop_grace_seconds)
    _signal(pid, signal.SIGKILL)
    if _wait_gone(pid, KILL_WAIT):
        return True
    raise StopFailed(f"watcher pid {pid} is still alive {KILL_WAIT:g} s after SIGKILL")


# -- starting ------------------------------------------------------------------

# Run by a short-lived intermediate process: it starts the watcher in a new
# session, prints its PID and exits, so the watcher is reparented away from
# us. A long-running caller (the daemon) never accumulates zombies.
_DETACH = (
    "import subprocess, sys\n"
    "log = open(sys.argv[1], 'ab')\n"
    "p = subprocess.Popen(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=log, stderr=log,"
    " start_new_session=True, close_fds=True)\n"
    "print(p.pid, flush=True)\n"
)


def watcher_log_path(settings: Settings) -> Path:
    from lifelog.settings import log_dir

    return log_dir() / "watcher.log"


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
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
        except OSError as e:
            raise StartFailed(f"watcher_restart_command {argv[0]!r} could not run: {e.strerror or e}") from None
        try:
            out, _ = proc.communicate(timeout=max(30.0, settings.stop_grace_seconds * 2))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise StartFailed(f"watcher_restart_command {argv[0]!r} did not finish in time") from None
        if proc.returncode != 0:
            tail = (out or "").strip().splitlines()[-1:] or [""]
            raise StartFailed(f"watcher_restart_command exited {proc.returncode}: {tail[0][:200]}")
        return proc.pid
    log_path = watcher_log_path(settings)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        out = subprocess.run(
            [sys.executable, "-c", _DETACH, str(log_path), *watcher_argv(settings)],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise StartFailed(f"could not start lifelog watcher: {e}") from None
    try:
        return int(out.stdout.strip())
    except ValueError:
        raise StartFailed(
            f"could not start lifelog watcher: {(out.stderr or out.stdout).strip()[:200]}"
        ) from None
