"""Which process is the watcher: its identity, written and read here only.

A PID alone names nothing: after the watcher dies the kernel may hand its PID
to any process. So the watcher records its start time and command line
(`watcher.process_created`, `watcher.cmdline`), the watchdog records the same
for a process it spawns (`watchdog.spawned_*`, covering the moment before the
new watcher has registered itself), and a process is the watcher only when
PID, start time and command line all match. Both sides read a process through
`live()`, so what is recorded and what is checked are measured the same way.

On Linux `live()` reads /proc directly: psutil costs ~45 ms to import, and the
watchdog's cron pass runs every minute. Elsewhere it asks psutil.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from typing import NamedTuple

from lifelog.core import clocks, keys

# Two reads of one process's start time agree exactly; a reused PID differs
# by far more than this.
CREATED_TOLERANCE = 0.01


class LiveProc(NamedTuple):
    """What the OS says about one PID right now."""

    pid: int
    alive: bool  # exists and is not a zombie
    created: float | None = None  # start time, seconds since the epoch
    cmdline: tuple[str, ...] | None = None


class WatcherFacts(NamedTuple):
    """Which process, if any, is the watcher of this database."""

    pid: int | None  # the matching process, or None
    source: str  # "recorded" (watcher.pid), "spawned" (not yet registered) or ""
    reason: str  # why no process matches, when pid is None
    created: float | None = None

    @property
    def running(self) -> bool:
        return self.pid is not None


def _pid(text: str | None) -> int | None:
    """A PID as meta holds it; None when absent, malformed or not positive."""
    value = keys.int_of(text)
    return value if value is not None and value > 0 else None


# -- reading a process ----------------------------------------------------------------

_boot_time: float | None = None


def _linux_boot_time() -> float:
    # Read once: every start time this process reads has the same base.
    global _boot_time
    if _boot_time is None:
        _boot_time = clocks.kernel_boot_time()
    return _boot_time


def _live_linux(pid: int) -> LiveProc:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return LiveProc(pid, False)
    # The command name (field 2) is in parentheses and may hold spaces.
    fields = stat[stat.rfind(b")") + 2:].split()
    if fields[0] == b"Z":
        _reap(pid)
        return LiveProc(pid, False)
    created = _linux_boot_time() + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return LiveProc(pid, False)
    except PermissionError:
        return LiveProc(pid, True, None, None)
    if not raw:  # a kernel thread, or a process exiting right now
        return LiveProc(pid, True, round(created, 2), ())
    cmdline = tuple(a.decode(errors="surrogateescape") for a in raw.rstrip(b"\0").split(b"\0"))
    return LiveProc(pid, True, round(created, 2), cmdline)


def _live_psutil(pid: int) -> LiveProc:
    import psutil

    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            if proc.status() == psutil.STATUS_ZOMBIE:
                _reap(pid)
                return LiveProc(pid, False)
            created = proc.create_time()
            cmdline = tuple(proc.cmdline())
        return LiveProc(pid, True, round(created, 2), cmdline)
    except psutil.ZombieProcess:
        _reap(pid)
        return LiveProc(pid, False)
    except psutil.NoSuchProcess:
        return LiveProc(pid, False)
    except psutil.AccessDenied:
        # Someone else's process: alive, but it cannot be ours.
        return LiveProc(pid, True, None, None)


def live(pid: int) -> LiveProc:
    """Facts about `pid` now; a zombie is not alive (and is reaped if ours)."""
    if sys.platform.startswith("linux") and os.path.isdir("/proc/self"):
        try:
            return _live_linux(pid)
        except (OSError, ValueError, IndexError):
            pass  # an odd /proc: ask psutil
    return _live_psutil(pid)


def _reap(pid: int) -> None:
    if not hasattr(os, "WNOHANG"):
        return  # Windows has no zombies to collect
    try:
        os.waitpid(pid, os.WNOHANG)
    except (ChildProcessError, OSError):
        pass


# -- recording ------------------------------------------------------------------------


def identity_meta(pid: int) -> dict[str, str]:
    """The watcher's own identity, as its meta keys: what the watchdog checks
    before it signals that PID."""
    me = live(pid)
    return {
        keys.WATCHER_PID: str(pid),
        keys.WATCHER_PROCESS_CREATED: repr(me.created),
        keys.WATCHER_CMDLINE: json.dumps(list(me.cmdline or ())),
    }


def spawned_meta(pid: int) -> dict[str, str]:
    """The identity of a watcher just started (by the watchdog or the daemon),
    so that until it registers itself it counts as the watcher and gets its
    startup grace rather than a second start."""
    started = live(pid)
    known = started.alive and started.created is not None and started.cmdline is not None
    return {
        keys.WATCHDOG_SPAWNED_PID: str(pid),
        keys.WATCHDOG_SPAWNED_CREATED: repr(started.created) if known else "",
        keys.WATCHDOG_SPAWNED_CMDLINE: json.dumps(list(started.cmdline or ())) if known else "",
    }


# -- checking -------------------------------------------------------------------------


def identity_matches(recorded_created: str | None, recorded_cmdline: str | None, proc: LiveProc) -> bool:
    """Pure: is the live process the one recorded (start time AND command line)?"""
    if not proc.alive or proc.created is None or proc.cmdline is None:
        return False
    try:
        created = float(str(recorded_created))
        cmdline = json.loads(str(recorded_cmdline))
    except (TypeError, ValueError):
        return False
    if not isinstance(cmdline, list) or not all(isinstance(a, str) for a in cmdline):
        return False
    return abs(created - proc.created) <= CREATED_TOLERANCE and tuple(cmdline) == proc.cmdline


def which_watcher(meta: Mapping[str, str | None], recorded: LiveProc | None,
                  spawned: LiveProc | None) -> WatcherFacts:
    """Pure: given meta and the live facts of its two PIDs, which one is the watcher."""
    pid = _pid(meta.get(keys.WATCHER_PID))
    if recorded is not None and pid == recorded.pid and identity_matches(
        meta.get(keys.WATCHER_PROCESS_CREATED), meta.get(keys.WATCHER_CMDLINE), recorded
    ):
        return WatcherFacts(pid, "recorded", "", recorded.created)
    spawned_pid = _pid(meta.get(keys.WATCHDOG_SPAWNED_PID))
    if spawned is not None and spawned_pid == spawned.pid and spawned_pid != pid and identity_matches(
        meta.get(keys.WATCHDOG_SPAWNED_CREATED), meta.get(keys.WATCHDOG_SPAWNED_CMDLINE), spawned
    ):
        return WatcherFacts(spawned_pid, "spawned", "", spawned.created)
    if pid is None:
        reason = "no watcher recorded" if meta.get(keys.WATCHER_PID) is None else "watcher.pid is malformed"
    elif recorded is None or not recorded.alive:
        reason = f"watcher pid {pid} is gone"
    else:
        reason = f"pid {pid} is another process (start time or command line differ)"
    return WatcherFacts(None, "", reason)


def live_facts_for(meta: Mapping[str, str | None]) -> tuple[LiveProc | None, LiveProc | None]:
    """The OS's facts about the two PIDs meta names (the watcher's, the spawned one's)."""
    pid = _pid(meta.get(keys.WATCHER_PID))
    spawned_pid = _pid(meta.get(keys.WATCHDOG_SPAWNED_PID))
    recorded = live(pid) if pid else None
    spawned = live(spawned_pid) if spawned_pid and spawned_pid != pid else None
    return recorded, spawned


def watcher_facts(meta: Mapping[str, str | None]) -> WatcherFacts:
    """Is the watcher meta names alive and really ours?"""
    return which_watcher(meta, *live_facts_for(meta))
