"""Reconciliation: compare LifeLog with AW and repair what differs.

This is how events that reach AW with old timestamps (aw-sync, imports,
queued heartbeats) reach LifeLog, and how rows AW no longer has are found
(marked `deleted_in_aw_at`, never deleted).

It costs what differs, not what exists (README "Ingestion"): per bucket, AW's
`/events/count` is compared with the same count here over calendar years,
descending into months and then UTC days only where the counts differ; a day
that differs is fetched whole and merged. A reconcile where nothing differs
asks one count per year and bucket; one after a back-dated insert fetches
that day only. The newest minutes, which the watcher's live poll still
covers (from its head minus the lookback), are one window of their own, so
live data arriving meanwhile never makes the years above them differ.

Counts compare only when both sides count alike: `local_count` is
aw-server-python's predicate exactly, down to the millisecond at which it
rounds an event's end, and its 24 h cut (an event that started more than a
day before a window's start is counted by neither side: it is counted in the
window where it starts). Two differences inside one window can cancel out in
its count; per-day counting had the same blind spot, within a day.

aw-server-rust's count ignores the window: there each day is fetched, and a
reconcile without `--since` covers only the last `reconcile_rust_days`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from lifelog.aw.client import AWClient
from lifelog.core import keys
from lifelog.core.settings import Settings
from lifelog.core.timeutil import UTC, now_iso, to_iso, try_parse_iso, utcnow
from lifelog.db.database import transaction
from lifelog.db.meta import set_meta
from lifelog.ingest import merge
from lifelog.ingest.livepoll import LOOKBACK
from lifelog.ingest.merge import Window
from lifelog.ingest.store import (
    AWServer,
    Counts,
    ShouldStop,
    connect,
    load_states,
    never,
    record_reconciled,
    store_answer,
)

# aw-server-python's count cut: "we'll assume events aren't >24h".
AW_CUT = timedelta(hours=24)
# Within this of a window's start, whether AW counts an event depends on its
# end rounded as AW's SQLite rounds it; further away the stored end decides.
_ROUNDING = timedelta(milliseconds=1)
# The end of an event as aw-server-python computes it in SQL (peewee.py,
# dt_plus_duration): milliseconds, and 59.999 at most within a minute.
_AW_END = ("strftime('%Y-%m-%d %H:%M:%f', (julianday(timestamp) - 2440587.5) * 86400.0 + duration, "
           "'unixepoch')")


class Unit(enum.StrEnum):
    YEAR = "year"
    MONTH = "month"
    DAY = "day"


# Windows are compared at each unit in turn; a DAY window is fetched.
FINER = {Unit.YEAR: Unit.MONTH, Unit.MONTH: Unit.DAY}


def next_boundary(dt: datetime, unit: Unit) -> datetime:
    """The first start of a UTC year, month or day after `dt`."""
    day = merge.utc_midnight(dt)
    if unit is Unit.DAY:
        return day + timedelta(days=1)
    if unit is Unit.MONTH:
        return day.replace(day=1, year=day.year + day.month // 12, month=day.month % 12 + 1)
    return day.replace(year=day.year + 1, month=1, day=1)


def split(start: datetime, end: datetime, unit: Unit) -> list[Window]:
    """[start, end] cut at each boundary of `unit`: consecutive windows, the
    first starting at `start`, the last ending at `end`."""
    out = []
    while start < end:
        stop = min(next_boundary(start, unit), end)
        out.append(Window(start, stop))
        start = stop
    return out


def whole_seconds(dt: datetime) -> datetime:
    # aw-server-python compares times as text; with whole seconds its text
    # order is time order (see local_count).
    return dt.astimezone(UTC).replace(microsecond=0)


def local_count(db, server: str, bucket_id: str, window: Window) -> int:
    """What aw-server-python's /events/count says for `window`, counted here.

    AW counts an event when it overlaps the window (its end, computed in SQL
    and rounded to the millisecond, at or after `start`; its start at or
    before `end`) and started at most 24 h before `start`. Far from `start`
    the stored end decides; near it, AW's own computation is repeated. The
    window's edges must be whole seconds.
    """
    sql = "SELECT count(*) FROM events WHERE server = ? AND bucket_id = ? AND deleted_in_aw_at IS NULL"
    args: list[Any] = [server, bucket_id]
    if window.start is not None:
        assert window.start.microsecond == 0, window.start
        sql += (f" AND timestamp >= ? AND (ended_at >= ? OR (ended_at >= ? AND {_AW_END} >= ?))")
        args += [to_iso(window.start - AW_CUT), to_iso(window.start + _ROUNDING),
                 to_iso(window.start - _ROUNDING), window.start.strftime("%Y-%m-%d %H:%M:%S.000")]
    if window.end is not None:
        sql += " AND timestamp <= ?"
        args.append(to_iso(window.end))
    return db.conn.execute(sql, args).fetchone()[0]


def _changes(c: Counts) -> str:
    """What a reconcile wrote, as its summaries word it."""
    return (f"{c.inserted} inserted, {c.updated} updated, {c.replaced} replaced, "
            f"{c.marked_deleted} marked deleted in AW")


@dataclass
class BucketReconcile:
    bucket_id: str
    days_checked: int = 0     # days the compared range covers
    days_differing: int = 0   # windows fetched whole (days, or the newest minutes)
    counts: Counts = field(default_factory=Counts)

    def summary(self) -> str:
        return (f"{self.bucket_id}: {self.days_checked} days checked, {self.days_differing} differed; "
                f"{_changes(self.counts)}")


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

    def summary(self) -> str:
        """One line: the meta key reconcile.summary, the command's last line, the daemon's log."""
        return f"{len(self.buckets)} buckets, {self.days_differing} days differed; {_changes(self.totals)}"


def _first_day(db, server: str, bucket_id: str, bucket: dict[str, Any]) -> datetime:
    row = db.conn.execute(
        "SELECT min(timestamp) FROM events WHERE server = ? AND bucket_id = ?", (server, bucket_id)
    ).fetchone()
    candidates = [t for t in (try_parse_iso(row[0]), try_parse_iso(bucket.get("created"))) if t]
    return merge.utc_midnight(min(candidates) if candidates else utcnow())


def start_of_range(since: datetime | None, first_day: Callable[[], datetime], now: datetime, is_rust: bool,
                   rust_days: float) -> datetime:
    """Where a bucket's reconcile begins: `since` when given; else its first
    day, or on aw-server-rust only the last `rust_days` (never the whole
    history again, every few hours)."""
    if since is not None:
        return whole_seconds(since)
    if is_rust:
        return merge.utc_midnight(now - timedelta(days=rust_days))
    return first_day()


def live_edge(head_ts: str | None, now: datetime) -> datetime:
    """Where the live poll's territory begins: it asks AW again, every poll,
    for what started after the newest stored start minus the lookback."""
    head = try_parse_iso(head_ts)
    return whole_seconds(now if head is None else min(now, head - LOOKBACK))


class _BucketRun:
    """One bucket's reconcile: compare, descend, fetch."""

    def __init__(self, db, src: AWServer, bucket_id: str, report: BucketReconcile, should_stop: ShouldStop):
        self.db, self.src, self.bucket_id, self.report, self.should_stop = db, src, bucket_id, report, should_stop

    def differs(self, window: Window) -> bool:
        if self.src.is_rust:
            return True  # its count ignores the window: only fetching tells
        return (self.src.count(self.bucket_id, start=window.start, end=window.end)
                != local_count(self.db, self.src.server, self.bucket_id, window))

    def fetch(self, window: Window) -> None:
        """The window whole, merged; stored rows AW did not return are marked."""
        self.report.days_differing += 1
        fetched_at = now_iso()
        events = self.src.events(self.bucket_id, start=window.start, end=window.end)
        self.report.counts.add(store_answer(self.db, self.src, self.bucket_id, events, window,
                                            trust_covering=False, mark_missing=True, fetched_at=fetched_at))

    def compare(self, windows: list[Window], unit: Unit, *, differing: bool = False) -> None:
        """Depth first: a window whose counts agree is done; one that differs
        is split into the next finer unit, down to days, which are fetched.
        `differing`: already known to differ (its parent spans just it)."""
        for window in windows:
            if self.should_stop():
                return
            if not differing and not self.differs(window):
                continue
            finer = FINER.get(unit)
            if finer is None:
                self.fetch(window)
                continue
            assert window.start is not None and window.end is not None  # split() makes only closed windows
            parts = split(window.start, window.end, finer)
            self.compare(parts, finer, differing=len(parts) == 1)


def reconcile(
    db,
    client: AWClient,
    settings: Settings,
    *,
    since: datetime | None = None,
    should_stop: ShouldStop = never,
    info: dict[str, Any] | None = None,
    skip: Callable[[str], bool] | None = None,
) -> ReconcileReport:
    """Compare LifeLog with AW over each chosen bucket's history and repair what differs.

    The range runs from `since` (default: the bucket's oldest stored event or
    its creation, whichever is older; on aw-server-rust the last
    `reconcile_rust_days`) to now. `info` and `skip` as for
    lifelog.ingest.store.connect.
    """
    src, listing, chosen = connect(db, client, settings, info, skip)
    states = load_states(db, src.server)
    report = ReconcileReport(src.server, [])
    now = utcnow()
    for bucket_id in chosen:
        if should_stop():
            break
        br = BucketReconcile(bucket_id)
        report.buckets.append(br)
        run = _BucketRun(db, src, bucket_id, br, should_stop)
        # partial: this bucket is bound now (chosen comes from listing's keys); run only when needed.
        start = start_of_range(since, partial(_first_day, db, src.server, bucket_id, listing[bucket_id]), now,
                               src.is_rust, settings.reconcile_rust_days)
        state = states.get(bucket_id)
        edge = max(start, live_edge(state.head_ts if state else None, now))
        end = whole_seconds(now)
        br.days_checked = len(split(start, end, Unit.DAY))
        run.compare(split(start, edge, Unit.YEAR), Unit.YEAR)
        # The newest minutes on their own: live data arriving there must not
        # make every year, month and day before them differ.
        run.compare(split(edge, end, Unit.YEAR), Unit.YEAR)
        if not should_stop():
            record_reconciled(db, src.server, bucket_id, now_iso())
    if should_stop():
        # Cut short: not finished, so the daemon's next launch runs it again.
        return report
    with transaction(db):
        set_meta(db, keys.RECONCILE_FINISHED_AT, now_iso())
        set_meta(db, keys.RECONCILE_SUMMARY, report.summary())
    return report
