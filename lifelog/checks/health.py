"""The AW health job: one bounded check of the server, recorded.

A check is GET /api/0/info then GET /api/0/buckets/ (README "Monitoring"). The
second call matters: an aw-server whose storage is broken (peewee 4 under
aw-server 0.12.0) answers /info with 200 and every bucket call with 500.
No answer at all is `unhealthy`; an answer that is not HTTP 200 with a JSON
object (a 500, a Werkzeug HTML page, garbage) is `degraded`.

With the `devices` setting (SPEC section 14) every device is checked, in the
table's order, and has its `health_checks` row with its name: a `sometimes`
device that does not answer is `unreachable` (normal), a device answering
with the `device_id` of one listed before it is `degraded` (a clone, nothing
of it stored). The exit code is the worst over the `always` devices; the
`aw.*` keys describe the first device, as `aw_url`'s server with `devices`
empty.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from typing import NamedTuple

from lifelog.aw.buckets import AWView
from lifelog.core import keys, redact
from lifelog.core.devices import Device, Expect, duplicate_ids, refused_reason
from lifelog.core.settings import Settings
from lifelog.core.timeutil import now_iso, utcnow
from lifelog.core.verdicts import AWStatus
from lifelog.db import pruning
from lifelog.db.database import transaction
from lifelog.db.meta import get_meta, recorded_identity, set_meta
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
    # With the `devices` setting: the device's name and expect, and on the
    # first device's result (the one returned) every device's, in order.
    device: str | None = None
    expect: Expect | None = None
    devices: tuple[HealthResult, ...] = ()

    @property
    def exit_code(self) -> int:
        if self.devices:
            return max((d.status.exit_code for d in self.devices if d.expect is Expect.ALWAYS), default=0)
        return self.status.exit_code

    def to_json(self) -> dict:
        doc = {
            "status": str(self.status),
            "checked_at": self.checked_at,
            "aw_url": self.aw_url,
            "version": self.version,
            "latency_ms": self.latency_ms,
            "error": self.error,
            "exit_code": self.exit_code,
        }
        if self.devices:
            doc["devices"] = [
                {"device": d.device, "expect": str(d.expect), "status": str(d.status), "aw_url": d.aw_url,
                 "version": d.version, "latency_ms": d.latency_ms, "error": d.error,
                 "device_id": d.device_id}
                for d in self.devices
            ]
        return doc

    @property
    def device_id(self) -> str | None:
        return servers.key_of(self.info) if self.info else None

    def own_line(self) -> str:
        if self.status is AWStatus.HEALTHY:
            return f"ActivityWatch server healthy (version {self.version or '?'}, {self.latency_ms:.0f} ms)"
        return f"ActivityWatch server {self.status}: {self.error}"

    def line(self) -> str:
        """One line; with `devices`, one per device, named."""
        if self.devices:
            return "\n".join(f"{d.device}: {d.own_line()}" for d in self.devices)
        return self.own_line()


def check(settings: Settings) -> HealthResult:
    """Probe AW now; never raises for anything AW does. With `devices`, only
    the first device (run_check checks them all)."""
    return probe(settings, settings.device_list[0])


def probe(settings: Settings, device: Device) -> HealthResult:
    """Probe one device's AW now; never raises for anything it does."""
    from lifelog.aw.buckets import aw_view_of
    from lifelog.aw.client import AWBadAnswer, AWClient, AWUnreachable

    checked_at = now_iso()
    began = time.monotonic()
    version = ""
    status, error = AWStatus.HEALTHY, ""
    view = None
    info = None
    with AWClient(device.url, settings.aw_timeout_seconds, api_key=device.api_key) as client:
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
    named = bool(settings.devices)
    return HealthResult(status, checked_at, latency_ms, version, error, device.url, view, info,
                        device=device.name if named else None, expect=device.expect if named else None)


def check_devices(db, settings: Settings) -> HealthResult:
    """Every device of the `devices` setting, in order; the first one's
    result, carrying all of them. A clone (the `device_id` of a device listed
    before it; one not answering now counts with its recorded id) is
    degraded with the reason naming both; a `sometimes` device that does not
    answer is unreachable."""
    results = [probe(settings, d) for d in settings.devices]
    ids = [(r.device or "", r.device_id if r.info else recorded_identity(db, r.device or "")[0])
           for r in results]
    refused = duplicate_ids(ids)
    named = []
    for r, (name, device_id) in zip(results, ids, strict=True):
        if name in refused:
            r = r._replace(status=AWStatus.DEGRADED, error=refused_reason(name, refused[name], device_id))
        elif r.status is AWStatus.UNHEALTHY and r.expect is Expect.SOMETIMES and r.info is None:
            # Away (off, asleep, elsewhere) only when not even /info answered: an AW
            # that answered it and then not its bucket list is there, and broken.
            r = r._replace(status=AWStatus.UNREACHABLE)
        named.append(r)
    return named[0]._replace(devices=tuple(named))


def record(db, result: HealthResult) -> int:
    """The health_checks row (one per device with `devices`) and the aw.*
    keys (the first device's), in one transaction.

    Returns aw.consecutive_failures after this check."""
    first = result.devices[0] if result.devices else result
    # The aw.* keys keep their three values: `unreachable` is a device's, in its row.
    aw_status = AWStatus.UNHEALTHY if first.status is AWStatus.UNREACHABLE else first.status
    with transaction(db):
        for r in result.devices or (result,):
            db.conn.execute(
                "INSERT INTO health_checks (checked_at, aw_url, status, latency_ms, version, error, device)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (r.checked_at, redact.redact_url(r.aw_url) if r.device else r.aw_url, str(r.status),
                 r.latency_ms, r.version, r.error, r.device),
            )
            if r.info:
                servers.record(db, servers.key_of(r.info), r.info)
        # Absent, or hand-edited garbage: start counting again.
        failures = keys.int_of(get_meta(db, keys.AW_CONSECUTIVE_FAILURES)) or 0
        failures = 0 if aw_status is AWStatus.HEALTHY else max(failures, 0) + 1
        set_meta(db, keys.AW_STATUS, str(aw_status))
        set_meta(db, keys.AW_CHECKED_AT, first.checked_at)
        set_meta(db, keys.AW_LATENCY_MS, first.latency_ms)
        set_meta(db, keys.AW_ERROR, first.error)
        set_meta(db, keys.AW_CONSECUTIVE_FAILURES, failures)
        if first.version:
            set_meta(db, keys.AW_VERSION, first.version)
        if aw_status is AWStatus.HEALTHY:
            set_meta(db, keys.AW_LAST_HEALTHY_AT, first.checked_at)
    return failures


def run_check(db, settings: Settings) -> HealthResult:
    """One check: probe, record, log its line. (lifelog.monitor.check_health
    adds the status refresh that every check is followed by.)"""
    result = check_devices(db, settings) if settings.devices else check(settings)
    record(db, result)
    # Here, not in the daemon: every setup runs health checks (cron, timer,
    # daemon, `lifelog status`), and a steady check finds nothing to prune.
    try:
        pruning.prune(db, utcnow(), settings.history_retention_days)
    except sqlite3.Error as e:  # housekeeping; the next check tries again
        log.warning("could not prune LifeLog's history: %s", e)
    for r in result.devices or (result,):
        line = f"{r.device}: {r.own_line()}" if r.device else r.own_line()
        if r.status in (AWStatus.HEALTHY, AWStatus.UNREACHABLE):
            log.info("%s", line)
        elif r.status is AWStatus.DEGRADED:
            log.warning("%s", line)
        else:
            log.error("%s", line)
    return result
