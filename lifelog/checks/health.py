"""The AW health job: one bounded check of the server, recorded.

A check is GET /api/0/info then GET /api/0/buckets/ (README "Monitoring"). The
second call matters: an aw-server whose storage is broken (peewee 4 under
aw-server 0.12.0) answers /info with 200 and every bucket call with 500.
No answer at all is `unhealthy`; an answer that is not HTTP 200 with a JSON
object (a 500, a Werkzeug HTML page, garbage) is `degraded`.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from typing import NamedTuple

from lifelog.aw.buckets import AWView
from lifelog.core import keys
from lifelog.core.settings import Settings
from lifelog.core.timeutil import now_iso, utcnow
from lifelog.core.verdicts import AWStatus
from lifelog.db import pruning
from lifelog.db.database import transaction
from lifelog.db.meta import get_meta, set_meta
from lifelog.ingest import servers

log = logging.getLogger("lifelog.health")


class HealthResult(NamedTuple):
    status: AWStatus
    checked_at: str
    latency_ms: float
    version: str = ""
    error: str = ""
    aw_url: str = ""
    # What the bucket list said about the selected buckets (for the data check).
    aw_view: AWView | None = None
    # /api/0/info as AW answered it (its device_id and host name: lifelog.ingest.servers).
    info: dict | None = None

    @property
    def exit_code(self) -> int:
        return self.status.exit_code

    def to_json(self) -> dict:
        return {
            "status": str(self.status),
            "checked_at": self.checked_at,
            "aw_url": self.aw_url,
            "version": self.version,
            "latency_ms": self.latency_ms,
            "error": self.error,
            "exit_code": self.exit_code,
        }

    def line(self) -> str:
        if self.status is AWStatus.HEALTHY:
            return f"ActivityWatch server healthy (version {self.version or '?'}, {self.latency_ms:.0f} ms)"
        return f"ActivityWatch server {self.status}: {self.error}"


def check(settings: Settings) -> HealthResult:
    """Probe AW now; never raises for anything AW does."""
    from lifelog.aw.buckets import aw_view_of
    from lifelog.aw.client import AWBadAnswer, AWClient, AWUnreachable

    checked_at = now_iso()
    began = time.monotonic()
    version = ""
    status, error = AWStatus.HEALTHY, ""
    view = None
    info = None
    with AWClient.from_settings(settings) as client:
        try:
            info = client.info()
            version = str(info.get("version") or "")
            view = aw_view_of(client.buckets(), settings.bucket_patterns)
        except AWUnreachable as e:
            status, error = AWStatus.UNHEALTHY, str(e)
        except AWBadAnswer as e:
            status, error = AWStatus.DEGRADED, str(e)
        except Exception as e:  # an answer so odd the client chokes on it
            status, error = AWStatus.DEGRADED, f"{type(e).__name__}: {e}"
    latency_ms = round((time.monotonic() - began) * 1000.0, 1)
    if view is None:
        view = AWView(ok=False, error=error)
    return HealthResult(status, checked_at, latency_ms, version, error, settings.aw_url, view, info)


def record(db, result: HealthResult) -> int:
    """The health_checks row and the aw.* keys, in one transaction.

    Returns aw.consecutive_failures after this check."""
    with transaction(db):
        db.conn.execute(
            "INSERT INTO health_checks (checked_at, aw_url, status, latency_ms, version, error)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (result.checked_at, result.aw_url, str(result.status), result.latency_ms,
             result.version, result.error),
        )
        # Absent, or hand-edited garbage: start counting again.
        failures = keys.int_of(get_meta(db, keys.AW_CONSECUTIVE_FAILURES)) or 0
        failures = 0 if result.status is AWStatus.HEALTHY else max(failures, 0) + 1
        set_meta(db, keys.AW_STATUS, str(result.status))
        set_meta(db, keys.AW_CHECKED_AT, result.checked_at)
        set_meta(db, keys.AW_LATENCY_MS, result.latency_ms)
        set_meta(db, keys.AW_ERROR, result.error)
        set_meta(db, keys.AW_CONSECUTIVE_FAILURES, failures)
        if result.version:
            set_meta(db, keys.AW_VERSION, result.version)
        if result.status is AWStatus.HEALTHY:
            set_meta(db, keys.AW_LAST_HEALTHY_AT, result.checked_at)
        if result.info:
            servers.record(db, servers.key_of(result.info), result.info)
    return failures


def run_check(db, settings: Settings) -> HealthResult:
    """One check: probe, record, log its line. (lifelog.monitor.check_health
    adds the status refresh that every check is followed by.)"""
    result = check(settings)
    record(db, result)
    # Here, not in the daemon: every setup runs health checks (cron, timer,
    # daemon, `lifelog status`), and a steady check finds nothing to prune.
    try:
        pruning.prune(db, utcnow(), settings.history_retention_days)
    except sqlite3.Error as e:  # housekeeping; the next check tries again
        log.warning("could not prune LifeLog's history: %s", e)
    if result.status is AWStatus.HEALTHY:
        log.info("%s", result.line())
    elif result.status is AWStatus.DEGRADED:
        log.warning("%s", result.line())
    else:
        log.error("%s", result.line())
    return result
