"""Reconciliation: compare LifeLog with AW and repair what differs.

Per bucket and UTC day, AW's `/events/count` against the same count here; a
day that differs is fetched whole and merged, and rows AW no longer has are
marked `deleted_in_aw_at`, never deleted. This is how events that arrive in
AW with old timestamps (aw-sync, imports, queued heartbeats) reach LifeLog.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable

from lifelog import keys, merge
from lifelog.aw import AWClient
from lifelog.db import set_meta, transaction
from lifelog.merge import Window
from lifelog.settings import Settings
from lifelog.store import Counts, ShouldStop, connect, never, record_reconciled, store_answer
from lifelog.timeutil import now_iso, to_iso, try_parse_iso, utcnow


def local_count(db, server: str, bucket_id: str, window: Window) -> int:
    """What AW's /events/count would say for `window`, counted here.

    Same predicate as aw-server-python: overlaps the window, and started at
    most 24 h before its start.
    """
    sql = "SELECT count(*) FROM events WHERE server = ? AND bucket_id = ? AND deleted_in_aw_at IS NULL"
    args: list[Any] = [server, bucket_id]
    if window.start is not None:
        sql += " AND ended_at >= ? AND timestamp >= ?"
        args += [to_iso(window.start), to_iso(window.start - timedelta(hours=24))]
    if window.end is not None:
        sql += " AND timestamp <= ?"
        args.append(to_iso(window.end))
    return db.conn.execute(sql, args).fetchone()[0]


@dataclass
class BucketReconcile:
    bucket_id: str
    days_checked: int = 0
    days_differing: int = 0
    counts: Counts = field(default_factory=Counts)


@dataclass
class ReconcileReport:
    server: str
    buckets: list[BucketReconcile]

    @property
    def totals(self) -> Counts:
        total = Counts()
        for b in self.buckets:
            total.add(b.counts)
        return total

    @property
    def days_differing(self) -> int:
        return sum(b.days_differing for b in self.buckets)


def _first_day(db, server: str, bucket_id: str, bucket: dict[str, Any]) -> datetime:
    row = db.conn.execute(
        "SELECT min(timestamp) FROM events WHERE server = ? AND bucket_id = ?", (server, bucket_id)
    ).fetchone()
    candidates = [t for t in (try_parse_iso(row[0]), try_parse_iso(bucket.get("created"))) if t]
    return merge.utc_midnight(min(candidates) if candidates else utcnow())


def reconcile(
    db,
    client: AWClient,
    settings: Settings,
    *,
    since: datetime | None = None,
    should_stop: ShouldStop = never,
    on_day: Callable[[str, datetime, bool], None] | None = None,
) -> ReconcileReport:
    """Compare LifeLog with AW per bucket and UTC day, and repair what differs.

    Days run from `since` (default: the bucket's oldest stored event or its
    creation, whichever is older) to today. A day whose counts differ is
    fetched whole (clipped edges resolved by id) and merged; stored rows
    that AW no longer has are marked deleted_in_aw_at. aw-server-rust's
    count ignores the window, so there every day is fetched.
    """
    src, listing, chosen = connect(db, client, settings)
    report = ReconcileReport(src.server, [])
    today = merge.utc_midnight(utcnow())
    for bucket_id in chosen:
        if should_stop():
            break
        br = BucketReconcile(bucket_id)
        report.buckets.append(br)
        day = merge.utc_midnight(since) if since is not None else _first_day(db, src.server, bucket_id,
                                                                              listing[bucket_id])
        while day <= today and not should_stop():
            window = merge.day_bounds(day)
            br.days_checked += 1
            differs = src.is_rust or (
                src.count(bucket_id, start=window.start, end=window.end)
                != local_count(db, src.server, bucket_id, window)
            )
            if differs:
                br.days_differing += 1
                fetched_at = now_iso()
                events = src.events(bucket_id, start=window.start, end=window.end)
                br.counts.add(store_answer(db, src, bucket_id, events, window, trust_covering=False,
                                           mark_missing=True, fetched_at=fetched_at))
            if on_day is not None:
                on_day(bucket_id, day, differs)
            day += timedelta(days=1)
        if not should_stop():
            record_reconciled(db, src.server, bucket_id, now_iso())
    totals = report.totals
    with transaction(db):
        set_meta(db, keys.RECONCILE_FINISHED_AT, now_iso())
        set_meta(db, keys.RECONCILE_SUMMARY,
                 f"{len(report.buckets)} buckets, {report.days_differing} days differed; "
                 f"{totals.inserted} inserted, {totals.updated} updated, {totals.replaced} replaced, "
                 f"{totals.marked_deleted} marked deleted")
    return report
