"""Storage of what AW answers: normalise one answer and store it, exactly once.

Every strategy (lifelog.ingest.livepoll, lifelog.ingest.history, lifelog.ingest.reconcile) fetches
through an `AWServer`, which turns AW's answer into `merge.Event`s at once, and
stores through `store_answer`: pure merge decisions from lifelog.ingest.merge,
applied in one transaction together with the progress they make, so a kill
at any moment loses nothing and doubles nothing. This module also owns the
rows that record progress per bucket (`buckets`, `sync_state`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from typing import Any

from lifelog.aw import buckets as buckets_mod
from lifelog.aw.client import AWBadAnswer, AWClient, AWError
from lifelog.core.devices import Device, copy_of, followed_map
from lifelog.core.settings import Settings
from lifelog.core.timeutil import now_iso, to_iso, utcnow
from lifelog.db.database import transaction
from lifelog.db.meta import device_meta
from lifelog.ingest import merge, servers
from lifelog.ingest.merge import Event, Stored, Window, WritePlan

# Bucket rows are rewritten when AW's listing changes, else at most this often.
BUCKET_ROW_REFRESH = timedelta(minutes=1)

ShouldStop = Callable[[], bool]


def never() -> bool:
    return False


@dataclass
class Counts:
    fetched: int = 0
    inserted: int = 0
    updated: int = 0
    replaced: int = 0
    marked_deleted: int = 0
    fetched_by_id: int = 0

    def add(self, other: Counts) -> Counts:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    @property
    def changed(self) -> int:
        return self.inserted + self.updated + self.replaced + self.marked_deleted


# -- what AW sends, as Events -----------------------------------------------------

def normalise(bucket_id: str, raw: Any) -> Event:
    """merge.normalise, with an event AW should never send (a field missing or
    of the wrong type) reported as a bad answer naming it, not a KeyError."""
    try:
        return merge.normalise(raw)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        what = f"field {e}" if isinstance(e, KeyError) else str(e)[:100]
        ident = raw.get("id", "?") if isinstance(raw, dict) else "?"
        raise AWBadAnswer(f"bucket {bucket_id} sent an unusable event (id {ident}): "
                          f"{type(e).__name__}: {what}") from None


@dataclass(frozen=True)
class AWServer:
    """One AW server as LifeLog keys it (rows are per device_id), and the
    one way events come from it: normalised as they arrive."""

    client: AWClient
    server: str
    is_rust: bool

    @classmethod
    def connect(cls, client: AWClient) -> AWServer:
        return cls.of(client, client.info())

    @classmethod
    def of(cls, client: AWClient, info: dict[str, Any]) -> AWServer:
        """The server as its `/api/0/info` answer names it."""
        return cls(client, servers.key_of(info), str(info.get("version", "")).endswith("(rust)"))

    def events(self, bucket_id: str, *, start: datetime | None = None, end: datetime | None = None,
               limit: int = -1) -> list[Event]:
        """AW's events for the window, newest first (clipped at its edges)."""
        raw = self.client.events(bucket_id, start=start, end=end, limit=limit)
        return [normalise(bucket_id, r) for r in raw]

    def page(self, bucket_id: str, *, end: datetime, limit: int) -> Page:
        """The `limit` newest events starting at or before `end`, as a Page."""
        raw = self.client.events(bucket_id, end=end, limit=limit)
        # Both servers answer newest first (ORDER BY start DESC): the last
        # event is the oldest, and says where the next page ends.
        oldest = normalise(bucket_id, raw[-1]) if raw else None
        return Page(bucket_id, raw, now_iso(), oldest)

    def fetch_one(self, bucket_id: str, event_id: int) -> Event | None:
        """One event whole (never clipped); None when AW no longer has it."""
        raw = self.client.event(bucket_id, event_id, missing_on_500=self.is_rust)
        return None if raw is None else normalise(bucket_id, raw)

    def count(self, bucket_id: str, *, start: datetime | None = None, end: datetime | None = None) -> int:
        return self.client.count(bucket_id, start=start, end=end)

    def clone(self) -> AWServer:
        """The same server through a client of its own (for another thread)."""
        return replace(self, client=self.client.clone())

    def close(self) -> None:
        self.client.close()


@dataclass(frozen=True)
class Page:
    """One page of a bucket's history, fetched ahead: its oldest event is
    normalised at once (the next page is asked for from there before this
    one is looked at); `events()` normalises the rest, every field read
    through `normalise` as for any answer."""

    bucket_id: str
    raw: list[Any] = field(repr=False)
    fetched_at: str
    oldest: Event | None

    def __len__(self) -> int:
        return len(self.raw)

    def events(self) -> list[Event]:
        return [normalise(self.bucket_id, r) for r in self.raw]


def connect(db, client: AWClient, settings: Settings, info: dict[str, Any] | None = None,
            skip: Callable[[str], bool] | None = None) -> tuple[AWServer, dict[str, dict], list[str]]:
    """The server, its bucket listing (recorded) and the buckets chosen by the settings.

    `info` is /api/0/info when the caller already asked (the watcher asks
    every device first, to tell clones apart); `skip` leaves buckets out of
    the chosen ones (aw-sync copies of a device followed directly). The
    listing is recorded whole either way: `lifelog sources` shows the copies."""
    if info is None:
        info = client.info()
    if skip is None:
        skip = copies_of_followed(db, settings)
    src = AWServer.of(client, info)
    servers.record(db, src.server, info)  # AW's host name: lifelog.sources.judge tells remote buckets by it
    listing = client.buckets()
    record_buckets(db, src.server, listing)
    chosen = buckets_mod.selected(listing.keys(), settings.bucket_patterns)
    if skip is not None:
        chosen = [b for b in chosen if not skip(b)]
    return src, listing, chosen


def copies_of_followed(db, settings: Settings) -> Callable[[str], bool] | None:
    """With the `devices` setting: a test for aw-sync copies of a device
    followed directly (by the device_ids and host names the watcher recorded),
    so that a backfill or a reconciliation never stores one either.

    A device the watcher has not recorded yet (a `backfill --aw-url` before
    any watcher ran) is asked for its `/api/0/info` now, bounded by
    aw_timeout_seconds: from meta alone its copies would be stored. One that
    does not answer either adds nothing: there is nothing to tell its copies by."""
    if not settings.devices:
        return None
    identities: list[tuple[str, str | None, str | None]] = []
    for device in settings.devices:
        m = device_meta(db, device.name)
        device_id, hostname = ((m.get("device_id"), m.get("hostname")) if m.get("device_id")
                               else _asked_identity(device, settings))
        identities.append((device.name, device_id, hostname))
    followed = followed_map(identities)
    return lambda bucket_id: copy_of(bucket_id, followed) is not None


def _asked_identity(device: Device, settings: Settings) -> tuple[str | None, str | None]:
    """(device_id, host name) from the device's AW now; (None, None) when it does not answer."""
    with AWClient(device.url, settings.aw_timeout_seconds, api_key=device.api_key) as client:
        try:
            info = client.info()
        except AWError:
            return None, None
    return servers.identity_of(info)


# -- reading what is stored ---------------------------------------------------

_STORED_COLS = "event_id, timestamp, duration, data, ended_at, deleted_in_aw_at IS NOT NULL"


def load_stored(db, server: str, bucket_id: str, ids: Iterable[int]) -> dict[int, Stored]:
    wanted = set(ids)
    if not wanted:
        return {}
    if len(wanted) <= 500:
        marks = ",".join("?" * len(wanted))
        rows = db.execute(
            f"SELECT {_STORED_COLS} FROM events WHERE server = ? AND bucket_id = ? AND event_id IN ({marks})",
            (server, bucket_id, *wanted),
        )
    elif max(wanted) - min(wanted) <= 4 * len(wanted):
        # A page of a live bucket: its ids are nearly contiguous (AW numbers
        # events across buckets as they arrive), a range scan beats thousands of lookups.
        rows = db.execute(
            f"SELECT {_STORED_COLS} FROM events WHERE server = ? AND bucket_id = ? "
            "AND event_id BETWEEN ? AND ?",
            (server, bucket_id, min(wanted), max(wanted)),
        )
    else:  # ids far apart (imported or synced history): look each up, never scan the range between
        rows = db.execute(
            f"SELECT {_STORED_COLS} FROM events WHERE server = ? AND bucket_id = ? "
            "AND event_id IN (SELECT value FROM json_each(?))",
            (server, bucket_id, json.dumps(sorted(wanted))),
        )
    return {r[0]: Stored(r[0], r[1], r[2], r[3], r[4], bool(r[5])) for r in rows if r[0] in wanted}


def _window_sql(window: Window) -> tuple[str, list[str]]:
    sql, args = "", []
    if window.start is not None:
        sql += " AND timestamp >= ?"
        args.append(to_iso(window.start))
    if window.end is not None:
        sql += " AND timestamp <= ?"
        args.append(to_iso(window.end))
    return sql, args


# -- sync_state: progress per bucket --------------------------------------------

@dataclass(frozen=True)
class BucketState:
    head_ts: str | None
    hint: str | None
    polled_at: str | None
    lookback_start: str | None = None
    lookback_count: int | None = None


def load_states(db, server: str) -> dict[str, BucketState]:
    return {r[0]: BucketState(*r[1:]) for r in db.execute(
        "SELECT bucket_id, head_ts, hint, polled_at, lookback_start, lookback_count FROM sync_state "
        "WHERE server = ?", (server,))}


def last_event_ts(db, server: str, bucket_ids: Sequence[str]) -> str | None:
    """End of the newest stored event over the buckets (kept per bucket on write)."""
    if not bucket_ids:
        return None
    marks = ",".join("?" * len(bucket_ids))
    row = db.execute(
        f"SELECT max(newest_end) FROM sync_state WHERE server = ? AND bucket_id IN ({marks})",
        (server, *bucket_ids),
    ).fetchone()
    return row[0]


def ensure_state(db, server: str, bucket_id: str) -> None:
    db.execute("INSERT OR IGNORE INTO sync_state (server, bucket_id) VALUES (?, ?)", (server, bucket_id))


def recompute_newest_end(db, server: str, bucket_id: str) -> None:
    """Inside a write transaction: index events_by_bucket_end answers it by
    reading the newest rows only, whatever the bucket's size."""
    row = db.execute(
        "SELECT max(ended_at) FROM events WHERE server = ? AND bucket_id = ? AND deleted_in_aw_at IS NULL",
        (server, bucket_id),
    ).fetchone()
    ensure_state(db, server, bucket_id)
    db.execute("UPDATE sync_state SET newest_end = ? WHERE server = ? AND bucket_id = ?",
                    (row[0], server, bucket_id))


def record_poll(db, server: str, bucket_id: str, *, head: str | None, hint: str | None, polled_at: str,
                lookback: tuple[str | None, int | None]) -> None:
    """A poll's progress: the head only moves forward; hint and lookback are this poll's."""
    ensure_state(db, server, bucket_id)
    db.execute(
        "UPDATE sync_state SET head_ts = CASE WHEN ?1 IS NOT NULL AND (head_ts IS NULL OR ?1 > head_ts) "
        "THEN ?1 ELSE head_ts END, hint = ?2, polled_at = ?3, lookback_start = ?6, lookback_count = ?7 "
        "WHERE server = ?4 AND bucket_id = ?5",
        (head, hint, polled_at, server, bucket_id, *lookback),
    )


def record_reconciled(db, server: str, bucket_id: str, at: str) -> None:
    with transaction(db):
        ensure_state(db, server, bucket_id)
        db.execute("UPDATE sync_state SET reconciled_at = ? WHERE server = ? AND bucket_id = ?",
                        (at, server, bucket_id))


# -- storing one answer of AW -------------------------------------------------

def _apply(db, server: str, bucket_id: str, p: WritePlan, now: str) -> Counts:
    # Plain SQL, prepared once and run per row by executemany (sqlite3's: the
    # Table API has no such path): this is every poll's write, and its cost in
    # SQLite steps is held by tests/test_store_scale.py.
    conn = db.conn
    if p.inserts:
        conn.executemany(
            "INSERT INTO events (server, bucket_id, event_id, timestamp, duration, data, ended_at, "
            "ingested_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(server, bucket_id, e.event_id, e.timestamp, e.duration, e.data, e.ended_at, now, now)
             for e in p.inserts],
        )
    if p.updates:
        conn.executemany(
            "UPDATE events SET duration = ?, data = ?, ended_at = ?, updated_at = ?, deleted_in_aw_at = NULL "
            "WHERE server = ? AND bucket_id = ? AND event_id = ?",
            [(e.duration, e.data, e.ended_at, now, server, bucket_id, e.event_id) for e in p.updates],
        )
    if p.replaces:
        keys = [(server, bucket_id, e.event_id) for e in p.replaces]
        conn.executemany(
            "INSERT INTO events_replaced (server, bucket_id, event_id, timestamp, duration, data, ended_at, "
            "ingested_at, updated_at, deleted_in_aw_at, replaced_at) "
            "SELECT server, bucket_id, event_id, timestamp, duration, data, ended_at, ingested_at, "
            "updated_at, deleted_in_aw_at, ? FROM events WHERE server = ? AND bucket_id = ? AND event_id = ?",
            [(now, *k) for k in keys],
        )
        conn.executemany(
            "UPDATE events SET timestamp = ?, duration = ?, data = ?, ended_at = ?, ingested_at = ?, "
            "updated_at = ?, deleted_in_aw_at = NULL WHERE server = ? AND bucket_id = ? AND event_id = ?",
            [(e.timestamp, e.duration, e.data, e.ended_at, now, now, server, bucket_id, e.event_id)
             for e in p.replaces],
        )
    written = p.inserts + p.updates + p.replaces
    if p.replaces:  # the replaced version may have ended later: recompute, rare
        recompute_newest_end(db, server, bucket_id)
    elif written:
        ensure_state(db, server, bucket_id)
        newest = max(e.ended_at for e in written)
        conn.execute(
            "UPDATE sync_state SET newest_end = max(coalesce(newest_end, ''), ?) "
            "WHERE server = ? AND bucket_id = ?",
            (newest, server, bucket_id),
        )
    return Counts(inserted=len(p.inserts), updated=len(p.updates), replaced=len(p.replaces))


def _mark_missing(db, server: str, bucket_id: str, window: Window, present: set[int],
                  fetched_at: str, now: str) -> int:
    """Rows AW surely would have returned for `window` but did not: mark them.

    Rows written after the query began are left alone: another process may
    have stored an event AW created after our answer was made.
    """
    sql, args = _window_sql(window)
    rows = db.execute(
        "SELECT event_id FROM events WHERE server = ? AND bucket_id = ? AND deleted_in_aw_at IS NULL "
        f"AND updated_at < ?{sql}",
        (server, bucket_id, fetched_at, *args),
    ).fetchall()
    gone = [(now, server, bucket_id, r[0]) for r in rows if r[0] not in present]
    db.conn.executemany(
        "UPDATE events SET deleted_in_aw_at = ? WHERE server = ? AND bucket_id = ? AND event_id = ?", gone
    )
    return len(gone)


def store_answer(
    db,
    src: AWServer,
    bucket_id: str,
    events: list[Event],
    window: Window,
    *,
    trust_covering: bool = True,
    mark_missing: bool = False,
    fetched_at: str | None = None,
    then: Callable[[Any], None] | None = None,
) -> Counts:
    """Merge one answer of AW for `window` into `events`, in one transaction.

    Suspect (possibly clipped) events are fetched whole by id first, outside
    the transaction; `then(db)` runs inside it, so progress (a cursor, a
    gap) commits with the events it covers. With mark_missing, stored rows
    the window surely contains that AW did not return are marked deleted.
    """
    fetched_at = fetched_at or now_iso()
    ids = [e.event_id for e in events]
    # Only suspects can need a fetch by id; a page has a handful at its edges.
    suspects = [e for e in events if merge.suspect(e, window)]
    first = merge.plan_writes(load_stored(db, src.server, bucket_id, [e.event_id for e in suspects]), suspects,
                              window, trust_covering=trust_covering)
    whole: list[Event] = []
    gone: list[int] = []
    for event_id in first.fetch_ids:
        event = src.fetch_one(bucket_id, event_id)
        if event is None:
            gone.append(event_id)
        else:
            whole.append(event)
    now = now_iso()
    with transaction(db):
        # Read again under the write lock: another process may have written.
        stored = load_stored(db, src.server, bucket_id, ids)
        p = merge.plan_writes(stored, events, window, whole=whole, trust_covering=trust_covering)
        counts = _apply(db, src.server, bucket_id, p, now)
        counts.fetched = len(events)
        counts.fetched_by_id = len(first.fetch_ids)
        if mark_missing:
            present = set(ids) - set(gone)
            counts.marked_deleted = _mark_missing(db, src.server, bucket_id, window, present, fetched_at, now)
            if counts.marked_deleted:
                recompute_newest_end(db, src.server, bucket_id)
        if then is not None:
            then(db)
    return counts


# -- buckets ------------------------------------------------------------------

def hint_text(bucket: dict[str, Any]) -> str | None:
    hint = buckets_mod.newest_end_hint(bucket)
    return None if hint is None else to_iso(hint)


def record_buckets(db, server: str, listing: dict[str, dict[str, Any]]) -> None:
    """Upsert the bucket rows that changed; mark the ones AW no longer lists.

    Through sqlite-utils' Table API: a few rows at most once a minute, where
    its cost does not matter (the events, every poll, are plain SQL)."""
    now = now_iso()
    stale_before = to_iso(utcnow() - BUCKET_ROW_REFRESH)
    known = {r[0]: r[1:] for r in db.execute(
        "SELECT bucket_id, created, name, type, client, hostname, data, last_updated, last_seen_at, "
        "deleted_in_aw_at, first_seen_at FROM buckets WHERE server = ?", (server,))}
    new: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    for bucket_id, b in listing.items():
        row = (b.get("created"), b.get("name"), b.get("type"), b.get("client"), b.get("hostname"),
               merge.compact_json(b.get("data") or {}), hint_text(b))
        old = known.get(bucket_id)
        if old is None or old[:7] != row or old[7] < stale_before or old[8] is not None:
            first_seen = now if old is None else old[9]
            record = dict(zip(_BUCKET_COLUMNS, (server, bucket_id, *row, first_seen, now, None), strict=True))
            (new if old is None else changed).append(record)
    gone = [b for b, old in known.items() if b not in listing and old[8] is None]
    if not new and not changed and not gone:
        return
    table = db.table("buckets")
    with transaction(db):
        # A new row is inserted, unless another process inserted it first:
        # first_seen_at is the first sighting's. A known row keeps its own.
        table.insert_all(new, ignore=True)
        table.upsert_all(changed, pk=("server", "bucket_id"))
        for bucket_id in gone:
            table.update((server, bucket_id), {"deleted_in_aw_at": now})


# A bucket row as written; a bucket AW lists again is no longer deleted in AW.
_BUCKET_COLUMNS = ("server", "bucket_id", "created", "name", "type", "client", "hostname", "data",
                   "last_updated", "first_seen_at", "last_seen_at", "deleted_in_aw_at")
