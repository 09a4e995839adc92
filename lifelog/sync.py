"""Ingestion: keep `events` and `buckets` equal to what AW holds.

Three ways in, one way to store (`store_answer`: pure merge decisions from
lifelog.merge, applied in one transaction together with the progress they
make, so a kill at any moment loses nothing and doubles nothing):

- `poll` (the watcher, every poll_interval): per bucket, when AW's
  last_updated hint moved, ask for `start = head - LOOKBACK` with no `end`.
  The head is the start of the newest event stored, so the event heartbeats
  are growing is always returned whole; only events crossing `start` come
  back clipped, and those are already stored whole (or are fetched by id).
  A bucket seen for the first time, or an answer that fills a whole page
  (the watcher was down for long), leaves a gap to fetch.
- Gaps (`fill_gaps`): history fetched newest first in pages with `end` only
  (no `start`: no start clipping and no 24 h cut), each page committed with
  its gap moved down; the next page is fetched while this one is stored.
  Each poll spends at most GAP_BUDGET_SECONDS on them, so a huge first
  ingest never stalls the live buckets or the heartbeat; `lifelog backfill`
  fills them to the end with a progress report.
- `reconcile`: per bucket and UTC day, AW's `/events/count` against the
  same count here; a day that differs is fetched whole and merged, and rows
  AW no longer has are marked `deleted_in_aw_at`, never deleted.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable, Sequence

from lifelog import buckets as buckets_mod
from lifelog import keys, merge, servers
from lifelog.aw import AWClient
from lifelog.db import set_meta, transaction
from lifelog.merge import Event, Plan, Stored, Window
from lifelog.settings import Settings
from lifelog.timeutil import now_iso, parse_iso, to_iso, try_parse_iso, utcnow

log = logging.getLogger("lifelog.sync")

PAGE_SIZE = 5000
# A poll asks again for what started this long before the newest stored
# event: covers aw-watcher-afk's back-dating (pulsetime 185 s) plus the
# client's commit lag (AW-FACTS pitfall 4). Older late arrivals: reconcile.
LOOKBACK = timedelta(minutes=5)
# Time one poll may spend on history, so live data and the heartbeat stay fresh.
GAP_BUDGET_SECONDS = 5.0
# Bucket rows are rewritten when AW's listing changes, else at most this often.
BUCKET_ROW_REFRESH = timedelta(minutes=1)

ShouldStop = Callable[[], bool]


def _never() -> bool:
    return False


@dataclass
class Counts:
    fetched: int = 0
    inserted: int = 0
    updated: int = 0
    replaced: int = 0
    marked_deleted: int = 0
    fetched_by_id: int = 0

    def add(self, other: "Counts") -> "Counts":
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    @property
    def changed(self) -> int:
        return self.inserted + self.updated + self.replaced + self.marked_deleted


@dataclass(frozen=True)
class PollResult:
    last_event_ts: str | None
    counts: Counts = field(default_factory=Counts)
    gaps_left: int = 0


@dataclass(frozen=True)
class Source:
    """One AW server as LifeLog keys it: rows are per device_id."""

    client: AWClient
    server: str
    is_rust: bool

    @classmethod
    def connect(cls, client: AWClient) -> "Source":
        info = client.info()
        server = str(info.get("device_id") or info.get("hostname") or "unknown")
        return cls(client, server, str(info.get("version", "")).endswith("(rust)"))

    def fetch_one(self, bucket_id: str, event_id: int) -> dict[str, Any] | None:
        return self.client.event(bucket_id, event_id, missing_on_500=self.is_rust)


# -- reading what is stored ---------------------------------------------------

_STORED_COLS = "event_id, timestamp, duration, data, ended_at, deleted_in_aw_at IS NOT NULL"


def load_stored(db, server: str, bucket_id: str, ids: Iterable[int]) -> dict[int, Stored]:
    wanted = set(ids)
    if not wanted:
        return {}
    if len(wanted) <= 500:
        marks = ",".join("?" * len(wanted))
        rows = db.conn.execute(
            f"SELECT {_STORED_COLS} FROM events WHERE server = ? AND bucket_id = ? AND event_id IN ({marks})",
            (server, bucket_id, *wanted),
        )
    else:  # a page: ids are roughly contiguous, a range scan beats 5000 parameters
        rows = db.conn.execute(
            f"SELECT {_STORED_COLS} FROM events WHERE server = ? AND bucket_id = ? "
            "AND event_id BETWEEN ? AND ?",
            (server, bucket_id, min(wanted), max(wanted)),
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


def last_event_ts(db, server: str, bucket_ids: Sequence[str]) -> str | None:
    """End of the newest stored event over the buckets (kept per bucket on write)."""
    if not bucket_ids:
        return None
    marks = ",".join("?" * len(bucket_ids))
    row = db.conn.execute(
        f"SELECT max(newest_end) FROM sync_state WHERE server = ? AND bucket_id IN ({marks})",
        (server, *bucket_ids),
    ).fetchone()
    return row[0]


def recompute_newest_end(db, server: str, bucket_id: str) -> None:
    row = db.conn.execute(
        "SELECT max(ended_at) FROM events WHERE server = ? AND bucket_id = ? AND deleted_in_aw_at IS NULL",
        (server, bucket_id),
    ).fetchone()
    _ensure_state(db, server, bucket_id)
    db.conn.execute("UPDATE sync_state SET newest_end = ? WHERE server = ? AND bucket_id = ?",
                    (row[0], server, bucket_id))


def _ensure_state(db, server: str, bucket_id: str) -> None:
    db.conn.execute("INSERT OR IGNORE INTO sync_state (server, bucket_id) VALUES (?, ?)", (server, bucket_id))


# -- storing one answer of AW -------------------------------------------------

def _apply(db, server: str, bucket_id: str, p: Plan, now: str) -> Counts:
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
        _ensure_state(db, server, bucket_id)
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
    rows = db.conn.execute(
        "SELECT event_id FROM events WHERE server = ? AND bucket_id = ? AND deleted_in_aw_at IS NULL "
        f"AND updated_at < ?{sql}",
        (server, bucket_id, fetched_at, *args),
    ).fetchall()
    gone = [(now, server, bucket_id, r[0]) for r in rows if r[0] not in present]
    db.conn.executemany(
        "UPDATE events SET deleted_in_aw_at = ? WHERE server = ? AND bucket_id = ? AND event_id = ?", gone
    )
    return len(gone)


def _normalise(bucket_id: str, raw: Any) -> Event:
    """merge.normalise, with an event AW should never send (a field missing or
    of the wrong type) reported as a bad answer naming it, not a KeyError."""
    from lifelog.aw import AWBadAnswer

    try:
        return merge.normalise(raw)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        what = f"field {e}" if isinstance(e, KeyError) else str(e)[:100]
        ident = raw.get("id", "?") if isinstance(raw, dict) else "?"
        raise AWBadAnswer(f"bucket {bucket_id} sent an unusable event (id {ident}): "
                          f"{type(e).__name__}: {what}") from None


def store_answer(
    db,
    src: Source,
    bucket_id: str,
    raw_events: list[dict[str, Any]],
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
    events = [_normalise(bucket_id, r) for r in raw_events]
    ids = [e.event_id for e in events]
    # Only suspects can need a fetch by id; a page has a handful at its edges.
    suspects = [e for e in events if merge.suspect(e, window)]
    first = merge.plan(load_stored(db, src.server, bucket_id, [e.event_id for e in suspects]), suspects,
                       window, trust_covering=trust_covering)
    whole: list[Event] = []
    gone: list[int] = []
    for event_id in first.fetch_ids:
        raw = src.fetch_one(bucket_id, event_id)
        if raw is None:
            gone.append(event_id)
        else:
            whole.append(_normalise(bucket_id, raw))
    now = now_iso()
    with transaction(db):
        # Read again under the write lock: another process may have written.
        stored = load_stored(db, src.server, bucket_id, ids)
        p = merge.plan(stored, events, window, whole=whole, trust_covering=trust_covering)
        counts = _apply(db, src.server, bucket_id, p, now)
        counts.fetched = len(events)
        counts.fetched_by_id = len(first.fetch_ids)
        if mark_missing:
            present = {e.event_id for e in events} - set(gone)
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
    """Upsert the bucket rows that changed; mark the ones AW no longer lists."""
    now = now_iso()
    stale_before = to_iso(utcnow() - BUCKET_ROW_REFRESH)
    known = {r[0]: r[1:] for r in db.conn.execute(
        "SELECT bucket_id, created, name, type, client, hostname, data, last_updated, last_seen_at, "
        "deleted_in_aw_at FROM buckets WHERE server = ?", (server,))}
    rows = []
    for bucket_id, b in listing.items():
        row = (b.get("created"), b.get("name"), b.get("type"), b.get("client"), b.get("hostname"),
               merge.compact_json(b.get("data") or {}), hint_text(b))
        old = known.get(bucket_id)
        if old is None or old[:7] != row or old[7] < stale_before or old[8] is not None:
            rows.append((server, bucket_id, *row, now, now))
    gone = [(now, server, b) for b, old in known.items() if b not in listing and old[8] is None]
    if not rows and not gone:
        return
    with transaction(db):
        db.conn.executemany(
            """INSERT INTO buckets (server, bucket_id, created, name, type, client, hostname,
                                    data, last_updated, first_seen_at, last_seen_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (server, bucket_id) DO UPDATE SET
                 created = excluded.created, name = excluded.name, type = excluded.type,
                 client = excluded.client, hostname = excluded.hostname, data = excluded.data,
                 last_updated = excluded.last_updated, last_seen_at = excluded.last_seen_at,
                 deleted_in_aw_at = NULL""",
            rows,
        )
        db.conn.executemany(
            "UPDATE buckets SET deleted_in_aw_at = ? WHERE server = ? AND bucket_id = ?", gone
        )


@dataclass(frozen=True)
class BucketState:
    head_ts: str | None
    hint: str | None
    polled_at: str | None
    lookback_start: str | None = None
    lookback_count: int | None = None


def load_states(db, server: str) -> dict[str, BucketState]:
    return {r[0]: BucketState(*r[1:]) for r in db.conn.execute(
        "SELECT bucket_id, head_ts, hint, polled_at, lookback_start, lookback_count FROM sync_state "
        "WHERE server = ?", (server,))}


def nothing_new(src: Source, bucket_id: str, hint: str | None, state: BucketState | None) -> bool:
    """True when an idle poll may skip this bucket: AW's hint has not moved,
    and neither has AW's count of events from the latest lookback start.

    The hint is the end of the newest-*starting* event, so an event inserted
    with an older start (back-dated, a client replaying its queue) leaves it
    as it was; the count catches those inside the lookback (older ones are
    reconciliation's). aw-server-rust's count ignores `start`, so there the
    hint alone decides."""
    if state is None or state.polled_at is None or state.hint != hint:
        return False
    if src.is_rust or state.lookback_start is None or state.lookback_count is None:
        return True
    return src.client.count(bucket_id, start=parse_iso(state.lookback_start)) == state.lookback_count


# -- the live poll --------------------------------------------------------------

def poll_bucket(db, src: Source, bucket_id: str, bucket: dict[str, Any], state: BucketState | None) -> Counts:
    """Bring one bucket's newest events in; leave a gap for what one page cannot hold."""
    hint = hint_text(bucket)
    if nothing_new(src, bucket_id, hint, state):
        return Counts()  # an idle poll fetches no events
    if state is None or state.head_ts is None:
        window = merge.OPEN
        raw = src.client.events(bucket_id, limit=PAGE_SIZE)
    else:
        # Clamped to now: one event stamped in the future must not hide the present.
        head = min(parse_iso(state.head_ts), utcnow())
        window = Window(head - LOOKBACK, None)
        raw = src.client.events(bucket_id, start=window.start, limit=PAGE_SIZE)
    fetched_at = now_iso()
    starts = [merge.canonical_ts(r["timestamp"]) for r in raw]
    floor = None if window.start is None else to_iso(window.start)
    whole_starts = [t for t in starts if floor is None or t > floor]
    new_head = max([t for t in (state.head_ts if state else None, *whole_starts) if t], default=None)
    gap_hi = min(starts) if len(raw) >= PAGE_SIZE and starts else None
    if gap_hi is not None and window.start is not None and parse_iso(gap_hi) <= window.start:
        gap_hi = None  # the page already reaches back to the window's start

    # What AW answered from this window's start, for the next idle poll to
    # compare (a full page is not a count: then the hint alone decides).
    lookback = (None, None) if window.start is None or len(raw) >= PAGE_SIZE else (to_iso(window.start), len(raw))

    def progress(db) -> None:
        _ensure_state(db, src.server, bucket_id)
        db.conn.execute(
            "UPDATE sync_state SET head_ts = CASE WHEN ?1 IS NOT NULL AND (head_ts IS NULL OR ?1 > head_ts) "
            "THEN ?1 ELSE head_ts END, hint = ?2, polled_at = ?3, lookback_start = ?6, lookback_count = ?7 "
            "WHERE server = ?4 AND bucket_id = ?5",
            (new_head, hint, fetched_at, src.server, bucket_id, *lookback),
        )
        if gap_hi is not None:
            # A watcher and a backfill meeting a new bucket together would
            # both leave this gap: one that already spans it is enough.
            lo = None if window.start is None else to_iso(window.start)
            db.conn.execute(
                "INSERT INTO sync_gaps (server, bucket_id, lo, hi, created_at) SELECT ?1, ?2, ?3, ?4, ?5 "
                "WHERE NOT EXISTS (SELECT 1 FROM sync_gaps WHERE server = ?1 AND bucket_id = ?2 "
                "AND (lo IS NULL OR (?3 IS NOT NULL AND lo <= ?3)) AND hi >= ?4)",
                (src.server, bucket_id, lo, gap_hi, fetched_at),
            )

    return store_answer(db, src, bucket_id, raw, window, fetched_at=fetched_at, then=progress)


# -- history: gaps ----------------------------------------------------------------

@dataclass(frozen=True)
class Gap:
    id: int
    bucket_id: str
    lo: str | None
    hi: str


def load_gaps(db, server: str, bucket_ids: Sequence[str]) -> list[Gap]:
    chosen = set(bucket_ids)
    return [Gap(*r) for r in db.conn.execute(
        "SELECT id, bucket_id, lo, hi FROM sync_gaps WHERE server = ? ORDER BY bucket_id, hi DESC",
        (server,)) if r[1] in chosen]


PageCallback = Callable[[str, Counts, str | None], None]


def fill_gap(
    db,
    src: Source,
    gap: Gap,
    *,
    should_stop: ShouldStop = _never,
    deadline: float | None = None,
    since: datetime | None = None,
    on_page: PageCallback | None = None,
) -> tuple[bool, Counts]:
    """Fetch a gap newest first, one committed page at a time, until it is
    done, `since` is reached, a stop is asked or the deadline passes.
    Returns (gap done, counts). The next page is fetched while one is stored.
    """
    total = Counts()
    lo = try_parse_iso(gap.lo)
    hi = gap.hi
    limit = PAGE_SIZE
    prefetch = src.client.clone()
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lifelog-prefetch")

    def fetch(end: str, n: int) -> tuple[list[dict[str, Any]], str]:
        raw = prefetch.events(gap.bucket_id, end=parse_iso(end), limit=n)
        return raw, now_iso()

    def out_of_time() -> bool:
        return should_stop() or (deadline is not None and time.monotonic() >= deadline)

    pending: Future | None = pool.submit(fetch, hi, limit)
    done = False
    try:
        while pending is not None:
            raw, fetched_at = pending.result()
            pending = None
            window = Window(None, parse_iso(hi))
            oldest = min((merge.canonical_ts(r["timestamp"]) for r in raw), default=None)
            done = len(raw) < limit or (lo is not None and oldest is not None and parse_iso(oldest) < lo)
            stalled = not done and oldest == hi  # a page all at one timestamp: ask for more at once
            next_hi, next_limit = (hi, limit * 2) if stalled else (oldest, PAGE_SIZE)
            reached_since = (since is not None and oldest is not None and parse_iso(oldest) < since)
            if not done and not reached_since and not out_of_time():
                pending = pool.submit(fetch, next_hi, next_limit)

            def progress(db, done=done, next_hi=next_hi) -> None:
                row = db.conn.execute("SELECT hi FROM sync_gaps WHERE id = ?", (gap.id,)).fetchone()
                if row is None:
                    return  # another process finished it
                if done:
                    db.conn.execute("DELETE FROM sync_gaps WHERE id = ?", (gap.id,))
                elif next_hi < row[0]:  # gaps only shrink, whoever commits first
                    db.conn.execute("UPDATE sync_gaps SET hi = ? WHERE id = ?", (next_hi, gap.id))

            counts = store_answer(db, src, gap.bucket_id, raw, window, fetched_at=fetched_at, then=progress)
            total.add(counts)
            if on_page is not None:
                on_page(gap.bucket_id, counts, oldest)
            hi, limit = next_hi, next_limit
    finally:
        # A page still in flight is abandoned, not awaited (a stop must be
        # quick); its session closes when that bounded request ends.
        if pending is not None and not pending.cancel():
            pending.add_done_callback(lambda _: prefetch.close())
        else:
            prefetch.close()
        pool.shutdown(wait=False, cancel_futures=True)
    return done, total


def fill_gaps(
    db,
    src: Source,
    bucket_ids: Sequence[str],
    *,
    should_stop: ShouldStop = _never,
    deadline: float | None = None,
    since: datetime | None = None,
    on_page: PageCallback | None = None,
) -> Counts:
    total = Counts()
    for gap in load_gaps(db, src.server, bucket_ids):
        if should_stop() or (deadline is not None and time.monotonic() >= deadline):
            break
        if since is not None and parse_iso(gap.hi) < since:
            continue
        _, counts = fill_gap(db, src, gap, should_stop=should_stop, deadline=deadline, since=since,
                             on_page=on_page)
        total.add(counts)
    return total


def gaps_left(db, server: str, bucket_ids: Sequence[str]) -> int:
    return len(load_gaps(db, server, bucket_ids))


# -- the entry points -------------------------------------------------------------

def parse_since(text: str | None) -> datetime | None:
    """`--since`: a date (UTC midnight) or an ISO time; UsageError otherwise."""
    from lifelog.errors import UsageError

    if text is None:
        return None
    try:
        return parse_iso(text)
    except (ValueError, TypeError, OverflowError):
        raise UsageError(
            f"--since {text!r} is not a date; give e.g. 2026-11-01 or 2026-11-01T08:00:00Z"
        ) from None


def stop_on_signals():
    """A threading.Event set by SIGTERM/SIGINT, so a long run stops between pages."""
    import signal
    import threading

    stop = threading.Event()

    def on_signal(signum, frame):  # only record it; the loop acts
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    return stop


def _connect(db, client: AWClient, settings: Settings) -> tuple[Source, dict[str, dict], list[str]]:
    src = Source.connect(client)
    servers.record(db, src.server, client.last_info)  # AW's host name: lifelog.sources tells remote buckets by it
    listing = client.buckets()
    record_buckets(db, src.server, listing)
    return src, listing, buckets_mod.selected(listing.keys(), settings.bucket_patterns)


def poll(db, client: AWClient, settings: Settings, should_stop: ShouldStop = _never) -> PollResult:
    """One watcher poll: live buckets first, then up to GAP_BUDGET_SECONDS of history."""
    src, listing, chosen = _connect(db, client, settings)
    states = load_states(db, src.server)
    counts = Counts()
    for bucket_id in chosen:
        if should_stop():
            break
        counts.add(poll_bucket(db, src, bucket_id, listing[bucket_id], states.get(bucket_id)))
    if not should_stop():
        counts.add(fill_gaps(db, src, chosen, should_stop=should_stop,
                             deadline=time.monotonic() + GAP_BUDGET_SECONDS))
    return PollResult(last_event_ts(db, src.server, chosen), counts, gaps_left(db, src.server, chosen))


@dataclass
class BackfillReport:
    server: str
    buckets: list[str]
    counts: Counts
    gaps_left: int
    complete: bool


def backfill(
    db,
    client: AWClient,
    settings: Settings,
    *,
    since: datetime | None = None,
    should_stop: ShouldStop = _never,
    on_page: PageCallback | None = None,
    on_start: Callable[[dict[str, int]], None] | None = None,
) -> BackfillReport:
    """Fetch the selected buckets' history (down to `since`), page by page.

    Uses the watcher's own progress rows, so it resumes after a kill and may
    run beside the watcher: both merge idempotently, and a gap only shrinks.
    """
    src, listing, chosen = _connect(db, client, settings)
    states = load_states(db, src.server)
    if on_start is not None:
        totals = {}
        for b in chosen:
            try:
                totals[b] = client.count(b, start=since) if since is not None and not src.is_rust else client.count(b)
            except Exception:  # only a progress estimate
                totals[b] = 0
        on_start(totals)
    counts = Counts()
    for bucket_id in chosen:
        if should_stop():
            break
        state = states.get(bucket_id)
        if state is None or state.head_ts is None:
            c = poll_bucket(db, src, bucket_id, listing[bucket_id], None)
            counts.add(c)
            if on_page is not None:
                on_page(bucket_id, c, None)
    counts.add(fill_gaps(db, src, chosen, should_stop=should_stop, since=since, on_page=on_page))
    left = [g for g in load_gaps(db, src.server, chosen)
            if since is None or parse_iso(g.hi) >= since]
    return BackfillReport(src.server, chosen, counts, len(left), complete=not left and not should_stop())


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
    should_stop: ShouldStop = _never,
    on_day: Callable[[str, datetime, bool], None] | None = None,
) -> ReconcileReport:
    """Compare LifeLog with AW per bucket and UTC day, and repair what differs.

    Days run from `since` (default: the bucket's oldest stored event or its
    creation, whichever is older) to today. A day whose counts differ is
    fetched whole (clipped edges resolved by id) and merged; stored rows
    that AW no longer has are marked deleted_in_aw_at. aw-server-rust's
    count ignores the window, so there every day is fetched.
    """
    src, listing, chosen = _connect(db, client, settings)
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
                client.count(bucket_id, start=window.start, end=window.end)
                != local_count(db, src.server, bucket_id, window)
            )
            if differs:
                br.days_differing += 1
                fetched_at = now_iso()
                raw = client.events(bucket_id, start=window.start, end=window.end)
                br.counts.add(store_answer(db, src, bucket_id, raw, window, trust_covering=False,
                                           mark_missing=True, fetched_at=fetched_at))
            if on_day is not None:
                on_day(bucket_id, day, differs)
            day += timedelta(days=1)
        if not should_stop():
            with transaction(db):
                _ensure_state(db, src.server, bucket_id)
                db.conn.execute("UPDATE sync_state SET reconciled_at = ? WHERE server = ? AND bucket_id = ?",
                                (now_iso(), src.server, bucket_id))
    totals = report.totals
    with transaction(db):
        set_meta(db, keys.RECONCILE_FINISHED_AT, now_iso())
        set_meta(db, keys.RECONCILE_SUMMARY,
                 f"{len(report.buckets)} buckets, {report.days_differing} days differed; "
                 f"{totals.inserted} inserted, {totals.updated} updated, {totals.replaced} replaced, "
                 f"{totals.marked_deleted} marked deleted")
    return report
