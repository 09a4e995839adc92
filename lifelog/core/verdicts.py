"""Named values the monitoring parts share: watchdog verdicts, AW health,
status levels, the states of sources, of the watcher and of the daemon. No
dependencies, so the cron path imports it for free.

The verdicts' values are the strings README "How the watchdog decides"
lists; they are stored in `watchdog.verdict` and `watchdog_log.verdict` as
they are.
"""

from __future__ import annotations

import enum


class Verdict(enum.StrEnum):
    OK = "ok"
    RESTART_NOT_RUNNING = "restart:not_running"
    RESTART_HEARTBEAT_STALE = "restart:heartbeat_stale"
    RESTART_DATA_STALE = "restart:data_stale"
    HOLD_AW_UNHEALTHY = "hold:aw_unhealthy"
    HOLD_SOURCE_STALE = "hold:source_stale"
    WAIT_STARTUP_GRACE = "wait:startup_grace"
    WAIT_BACKOFF = "wait:backoff"
    WAIT_RESUMED = "wait:resumed"
    PAUSED = "paused"
    # A silent source's restart command was run (README "When an ActivityWatch watcher goes quiet").
    # Not a replacement of LifeLog's watcher: not in RESTART_VERDICTS.
    RESTART_SOURCE_SILENT = "restart:source_silent"


# Groups, so callers test membership rather than chains of ==.
RESTART_VERDICTS = frozenset(
    {Verdict.RESTART_NOT_RUNNING, Verdict.RESTART_HEARTBEAT_STALE, Verdict.RESTART_DATA_STALE}
)
# Restarts that stop a live (but failing) process first.
STOP_FIRST_VERDICTS = frozenset({Verdict.RESTART_HEARTBEAT_STALE, Verdict.RESTART_DATA_STALE})


class SourceState(enum.StrEnum):
    """The state of one source, an AW bucket (README "When an ActivityWatch watcher goes quiet")."""

    LIVE = "live"  # expected to record now, and it has, within source_silence_minutes
    IDLE = "idle"  # nothing expected from it now (you were away, the browser not in focus)
    SILENT = "silent"  # expected to record, and has not for longer than source_silence_minutes
    COPY = "copy"  # copied from another device by aw-sync: never judged
    REMOTE = "remote"  # a bucket of another host: never judged
    UNJUDGED = "unjudged"  # no rule applies, or the evidence is missing


# States a source may serve as evidence in (its events are there to read).
EVIDENCE_STATES = frozenset({SourceState.LIVE, SourceState.IDLE})


class WatcherState(enum.StrEnum):
    """`watcher.state` in meta, as the watcher writes it."""

    STARTING = "starting"  # started, before its first poll
    RUNNING = "running"
    STOPPED = "stopped"  # stopped cleanly (a signal); a crash leaves its last state


class DaemonState(enum.StrEnum):
    """`daemon.state` in meta: `running` left behind by a daemon that holds no
    lock any more means it died without stopping."""

    RUNNING = "running"
    STOPPED = "stopped"


class AWStatus(enum.StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"
    # A `sometimes` device that does not answer (SPEC section 14): normal.
    UNREACHABLE = "unreachable"

    @property
    def exit_code(self) -> int:
        return {"healthy": 0, "degraded": 1, "unhealthy": 2, "unreachable": 0}[self.value]


class Level(enum.IntEnum):
    """Nagios levels; the int is the exit code of `lifelog status`."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3

    @classmethod
    def parse(cls, text: str | None) -> Level | None:
        try:
            return cls[text] if text else None
        except KeyError:
            return None


# Worst first, for combining component levels: CRITICAL beats UNKNOWN beats
# WARNING beats OK (an unreadable part is worse than a known warning).
SEVERITY = {Level.OK: 0, Level.WARNING: 1, Level.UNKNOWN: 2, Level.CRITICAL: 3}
