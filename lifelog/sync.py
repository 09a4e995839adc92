"""Ingestion: keep `events` and `buckets` equal to what AW holds.

(Foundation stub: lists the buckets and records them. The full incremental,
clip-safe ingestion arrives with the watcher issue.)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable

from lifelog.aw import AWClient
from lifelog.db import transaction
from lifelog.settings import Settings
from lifelog.timeutil import now_iso


@dataclass(frozen=True)
class PollResult:
    last_event_ts: str | None


def poll(db, client: AWClient, settings: Settings, should_stop: Callable[[], bool]) -> PollResult:
    info = client.info()
    server = str(info.get("device_id") or info.get("hostname") or "unknown")
    buckets = client.buckets()
    now = now_iso()
    with transaction(db):
        for bucket_id, b in buckets.items():
            db.conn.execute(
                """INSERT INTO buckets (server, bucket_id, created, name, type, client, hostname,
                                        data, last_updated, first_seen_at, last_seen_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (server, bucket_id) DO UPDATE SET
                     last_updated = excluded.last_updated, last_seen_at = excluded.last_seen_at""",
                (server, bucket_id, b.get("created"), b.get("name"), b.get("type"), b.get("client"),
                 b.get("hostname"), json.dumps(b.get("data") or {}), b.get("last_updated"), now, now),
            )
    row = db.conn.execute(
        "SELECT max(ended_at) FROM events WHERE deleted_in_aw_at IS NULL"
    ).fetchone()
    return PollResult(last_event_ts=row[0])
