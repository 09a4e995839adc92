"""The monitoring core: one refresh of the overall status, and the three
things that end in one (a health check, a watchdog pass, `lifelog status`).

`refresh()` gathers a status snapshot from the database and the OS, works out
every component (lifelog.checks.status), runs the alert once if the overall level
changed (lifelog.checks.alerts), then each output (a metrics file, a ping:
lifelog.wiring.OUTPUTS). Health, the watchdog pass, `status` and the daemon
all come through here, so the level is computed, and an alert run, once per
event, never twice.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from lifelog import wiring
from lifelog.aw.buckets import AWView
from lifelog.checks import alerts, health, status, watchdog
from lifelog.checks.health import HealthResult
from lifelog.checks.liveness import Freshness, judge_data
from lifelog.checks.status import StatusReport
from lifelog.checks.watchdog import PassResult
from lifelog.core import clocks
from lifelog.core.errors import LifelogError
from lifelog.core.identity import watcher_facts
from lifelog.core.settings import Settings
from lifelog.core.timeutil import to_iso, utcnow
from lifelog.core.verdicts import RESTART_VERDICTS
from lifelog.db.database import lock_wait
from lifelog.db.meta import read_meta

log = logging.getLogger("lifelog.monitor")


def recent_restarts(db, now: datetime) -> tuple[tuple[str, str], ...]:
    """Replacements of a failed watcher in the last hour, newest first."""
    since = to_iso(now - status.RECENT)
    verdicts = sorted(str(v) for v in RESTART_VERDICTS)
    rows = db.conn.execute(
        f"SELECT at, verdict FROM watchdog_log WHERE replaced = 1 AND at >= ?"
        f" AND verdict IN ({','.join('?' * len(verdicts))}) ORDER BY at DESC",
        (since, *verdicts),
    ).fetchall()
    return tuple((at, verdict) for at, verdict in rows)


def gather(db, settings: Settings, *, now: datetime | None = None, aw: AWView | None = None) -> status.Snapshot:
    """Read everything the status components judge, at one moment."""
    now = now or utcnow()
    meta = read_meta(db)
    return status.Snapshot(now=now, meta=meta, watcher=watcher_facts(meta), now_clocks=clocks.readings(),
                           restarts=recent_restarts(db, now), aw=aw, db_path=str(settings.db_path))


def refresh(db, settings: Settings, trigger: str, *, aw: AWView | None = None,
            context: Any = None) -> StatusReport:
    """The overall status now; then the alert (once per change) and the outputs.

    `trigger` says who asks ("health", "watchdog", "status"); outputs use it
    (a ping follows watchdog passes only). AW's bucket list is asked for only
    when LifeLog's data looks stale and the caller has no fresh answer."""
    snap = gather(db, settings, aw=aw)
    if snap.aw is None:
        threshold = settings.watcher_timestamp_threshold_minutes * 60.0
        if judge_data(snap.meta, snap.now, threshold, None).freshness is Freshness.UNJUDGED:
            snap = snap._replace(aw=watchdog.aw_view(settings))
    report = status.evaluate(snap, settings, wiring.COMPONENTS)
    try:
        alerts.notify_if_changed(db, settings, report)
    except sqlite3.Error as e:  # a read-only or locked moment must not hide the status itself
        log.warning("could not record the status level: %s", e)
    for output in wiring.OUTPUTS:
        try:
            output(db, settings, report, trigger, context, meta=snap.meta)
        except Exception:  # an output's trouble (a full disk, a dead monitor) changes no verdict
            log.exception("status output %s.%s failed", output.__module__, output.__qualname__)
    return report


def check_health(db, settings: Settings, trigger: str = "health") -> tuple[HealthResult, StatusReport]:
    """`lifelog health` and the daemon's health job: one check, recorded, then a refresh."""
    result = health.run_check(db, settings)
    return result, refresh(db, settings, trigger, aw=result.aw_view, context=result)


def watchdog_pass(db, settings: Settings, *, actor: str = "cron", now: datetime | None = None) -> PassResult:
    """One watchdog pass, then a refresh; the result carries the overall level.

    Its writes wait for the lock no longer than watchdog.write_wait: a
    watcher hung inside a transaction holds the lock, and a pass that waited
    the full busy timeout behind it, pass after pass, would never get to the
    pass that stops it (that one stops it before writing)."""
    with lock_wait(db, watchdog.write_wait(settings)):
        result = watchdog.run_pass(db, settings, steps=wiring.PASS_STEPS, now=now, actor=actor)
        report = refresh(db, settings, "watchdog", aw=result.aw, context=result)
    return result._replace(status=report.level.name, status_summary=report.summary)


def status_now(db, settings: Settings) -> StatusReport:
    """`lifelog status`: a fresh AW check (so a stopped AW shows now, not at
    the next scheduled check), then the refresh. UNKNOWN, never an exception,
    when the database cannot be read or written."""
    try:
        return check_health(db, settings, "status")[1]
    except sqlite3.Error as e:
        return status.unknown(f"cannot use the database {settings.db_path}: {e}", str(settings.db_path))


def loop(db, settings: Settings, on_pass: Callable[[PassResult], None],
         stop: threading.Event | None = None, actor: str = "loop") -> None:
    """A pass every watchdog_interval_seconds until `stop` is set.

    A pass that raises is logged and the loop goes on: the watchdog must not
    die of the very trouble it is there to report."""
    stop = stop or threading.Event()
    while not stop.is_set():
        began = time.monotonic()
        try:
            on_pass(watchdog_pass(db, settings, actor=actor))
        except LifelogError as e:
            log.error("watchdog pass failed: %s; trying again next interval", e)
        except Exception:
            log.exception("watchdog pass failed; trying again next interval")
        stop.wait(max(0.0, settings.watchdog_interval_seconds - (time.monotonic() - began)))
