"""The AW servers LifeLog reads from: their host name and version, by device_id.

AW's `/api/0/info` names the host it runs on; a bucket whose `hostname`
differs belongs to another machine: `remote`, never judged (README "When an
ActivityWatch watcher goes quiet"). The watcher records it each time it
connects to AW, and so does the health check; the row is rewritten only when it changed or is a minute
old, so a poll every few seconds costs one indexed read.
"""

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from lifelog.core.timeutil import to_iso, utcnow
from lifelog.db.database import transaction

REFRESH = timedelta(minutes=1)


class Server(NamedTuple):
    device_id: str  # the `server` column of events, buckets and sync_state
    hostname: str | None
    version: str | None
    seen_at: str


def key_of(info: Mapping[str, Any]) -> str:
    """How LifeLog names a server in its tables (lifelog.ingest.store.AWServer uses it too)."""
    return str(info.get("device_id") or info.get("hostname") or "unknown")


def identity_of(info: Mapping[str, Any]) -> tuple[str, str | None]:
    """(key_of, host name) of an `/api/0/info` answer: who a device answers as."""
    host = info.get("hostname")
    return key_of(info), str(host) if host else None


def record(db, device_id: str, info: Mapping[str, Any] | None, now: datetime | None = None) -> None:
    """Remember what `/api/0/info` said about the server `device_id`."""
    if not info:
        return
    hostname = info.get("hostname")
    version = info.get("version")
    hostname = str(hostname) if hostname is not None else None
    version = str(version) if version is not None else None
    now = now or utcnow()
    row = db.conn.execute("SELECT hostname, version, seen_at FROM servers WHERE device_id = ?",
                          (device_id,)).fetchone()
    if row is not None and row[0] == hostname and row[1] == version and row[2] >= to_iso(now - REFRESH):
        return
    with transaction(db):
        db.conn.execute(
            "INSERT INTO servers (device_id, hostname, version, seen_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (device_id) DO UPDATE SET hostname = excluded.hostname,"
            " version = excluded.version, seen_at = excluded.seen_at",
            (device_id, hostname, version, to_iso(now)),
        )


def current(db) -> Server | None:
    """The server seen most recently: the one `aw_url` points at now."""
    row = db.conn.execute(
        "SELECT device_id, hostname, version, seen_at FROM servers ORDER BY seen_at DESC LIMIT 1"
    ).fetchone()
    return None if row is None else Server(*row)


def remember_device(db, name: str, device_id: str, before: str | None, at: str) -> None:
    """A device of the `devices` setting answered with `device_id` (never
    called for a refused clone); `before` is the id meta holds for it
    (device.<name>.device_id). Coverage reads a device's rows on every id it
    has answered with (table device_ids, and meta's). Nothing is written
    while the id stays the one meta holds: a poll costs nothing here. When it
    changes (AW reinstalled) and this is the device's first row, meta's id is
    written too: it was the device's before this table existed."""
    if before == device_id:
        return
    with transaction(db):
        insert = "INSERT OR IGNORE INTO device_ids (device, device_id, first_seen_at) VALUES (?, ?, ?)"
        if before and db.conn.execute("SELECT 1 FROM device_ids WHERE device = ? LIMIT 1", (name,)).fetchone() is None:
            db.conn.execute(insert, (name, before, at))
        db.conn.execute(insert, (name, device_id, at))
