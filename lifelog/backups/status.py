"""When a backup is due, and what `lifelog status` says of backups; the
daemon's backup job.

Apart from lifelog.backups.backup, which makes and checks the copies, because every
command that works out the status (the cron pass every minute) imports this,
and only the job and `lifelog backup` need the rest.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from lifelog.checks.liveness import CLOCK_SKEW, age, ts
from lifelog.checks.status import Component, Snapshot, component_at
from lifelog.core import keys
from lifelog.core.settings import Settings
from lifelog.core.timeutil import format_span, utcnow
from lifelog.core.verdicts import Level
from lifelog.db.meta import read_meta

if TYPE_CHECKING:
    from sqlite_utils import Database

log = logging.getLogger("lifelog.backup")


# -- when a backup is due, and the status component (pure) -----------------------------------


def interval_seconds(settings: Settings) -> float | None:
    """Seconds between scheduled backups; None when they are off (0)."""
    hours = settings.backup_interval_hours
    return hours * 3600.0 if hours > 0 else None


def due(meta: Mapping[str, str | None], now: datetime, settings: Settings) -> bool:
    """True when a scheduled backup is due: the newest good one (or, with
    none, the database's creation) is an interval old or more, unknown, or
    in the future beyond the clock skew (the clock stepped back)."""
    interval = interval_seconds(settings)
    if interval is None:
        return False
    since = age(ts(meta, keys.BACKUP_LAST_OK_AT) or ts(meta, keys.DB_CREATED_AT), now)
    return since is None or since >= interval or since < -CLOCK_SKEW


def backup_component(snap: Snapshot, settings: Settings) -> Component:
    """WARNING when backups are on and the newest verified one is older than
    twice backup_interval_hours, or there is none once the database is that old."""
    meta, now = snap.meta, snap.now
    last_ok = meta.get(keys.BACKUP_LAST_OK_AT)
    last_age = age(ts(meta, keys.BACKUP_LAST_OK_AT), now)
    error = meta.get(keys.BACKUP_LAST_ERROR) or ""
    failed = f"; the latest attempt failed: {error}" if error else ""
    interval = interval_seconds(settings)
    newest = Path(meta.get(keys.BACKUP_LAST_PATH) or "?").name
    if interval is None:
        reason = "scheduled backups off (backup_interval_hours = 0)"
        return component_at("backup", Level.OK, reason + (f"; newest {newest}" if last_ok else ""), snap, last_ok)
    limit = 2 * interval
    fix = "run 'lifelog backup', and keep 'lifelog daemon' running (or add 'lifelog backup' to cron)"
    if last_ok is None:
        created_age = age(ts(meta, keys.DB_CREATED_AT), now)
        if created_age is not None and created_age > limit:
            return component_at("backup", Level.WARNING,
                                f"no verified backup yet, and the database is {format_span(created_age)} old"
                                f"{failed}; {fix}", snap)
        return component_at("backup", Level.OK, f"no backup yet{failed}", snap)
    if last_age is None or last_age > limit or last_age < -CLOCK_SKEW:
        if last_age is None:
            when = f"of unknown age (backup.last_ok_at is {last_ok!r})"
        elif last_age < 0:
            when = "in the future (the clock stepped back?)"
        else:
            when = f"{format_span(last_age)} old"
        return component_at("backup", Level.WARNING,
                            f"backup overdue: the newest verified backup is {when}, over twice "
                            f"backup_interval_hours ({settings.backup_interval_hours:g} h){failed}; {fix}",
                            snap, last_ok)
    return component_at("backup", Level.OK, f"newest verified backup {newest}{failed}", snap, last_ok)


# -- the daemon's job --------------------------------------------------------------------------


def due_at_launch(db: Database, settings: Settings) -> bool:
    return due(read_meta(db, ("backup.", "db.")), utcnow(), settings)


def backup_job(settings: Settings, stop: threading.Event) -> None:
    from lifelog.backups.backup import BackupFailed, run

    if stop.is_set():
        return
    try:
        result = run(settings)
    except BackupFailed as e:  # recorded in backup.last_error; the status shows it
        log.warning("backup failed: %s", e)
        return
    log.info("backup verified: %s (%d bytes, %d events, %.1f s); retention removed %d",
             result.path, result.bytes, result.events, result.seconds, len(result.removed))
    for error in result.retention_errors:
        log.warning("retention: %s", error)
