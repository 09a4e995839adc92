"""History: what is older than the newest page, fetched as gaps.

AW has no cursor, so a bucket's history is fetched newest first in pages with
`end` only (no `start`: no start clipping and no 24 h cut), each page
committed with its gap (`sync_gaps`) moved down; the next page is fetched
while this one is stored. A bucket seen for the first time gets its newest
page and, when that page is full, a gap for the rest (`open_bucket`). The
watcher spends a bounded time per poll on gaps (lifelog.ingest.livepoll);
`backfill` fills them to the end, resumable and safe beside the watcher.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lifelog.aw.client import AWClient
from lifelog.core.settings import Settings
from lifelog.core.timeutil import now_iso, parse_iso, try_parse_iso
from lifelog.ingest.merge import OPEN, Window
from lifelog.ingest.store import (
    AWServer,
    Counts,
    Page,
    ShouldStop,
    connect,
    hint_text,
    load_states,
    never,
    record_poll,
    store_answer,
)

# Events per page. AW serves 2,500 per request as fast per event as 5,000
# (aw-sync's size), and a page decoded in flight plus one being stored stay a
# few MB: a backfill's peak RSS keeps under 60 MB (scripts/bench_ingest.py).
PAGE_SIZE = 2500

PageCallback = Callable[[str, Counts, str | None], None]


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


def gaps_left(db, server: str, bucket_ids: Sequence[str]) -> int:
    return len(load_gaps(db, server, bucket_ids))


def add_gap(db, server: str, bucket_id: str, lo: str | None, hi: str, created_at: str) -> None:
    """Leave [lo, hi] to fetch; inside the caller's transaction.

    A watcher and a backfill meeting a new bucket together would both leave
    this gap: one that already spans it is enough."""
    db.conn.execute(
        "INSERT INTO sync_gaps (server, bucket_id, lo, hi, created_at) SELECT ?1, ?2, ?3, ?4, ?5 "
        "WHERE NOT EXISTS (SELECT 1 FROM sync_gaps WHERE server = ?1 AND bucket_id = ?2 "
        "AND (lo IS NULL OR (?3 IS NOT NULL AND lo <= ?3)) AND hi >= ?4)",
        (server, bucket_id, lo, hi, created_at),
    )


def open_bucket(db, src: AWServer, bucket_id: str, hint: str | None) -> Counts:
    """A bucket never read: its newest page (no window, nothing clipped), and
    a gap below it when the page is full."""
    events = src.events(bucket_id, limit=PAGE_SIZE)
    fetched_at = now_iso()
    starts = [e.timestamp for e in events]
    gap_hi = min(starts) if len(events) >= PAGE_SIZE else None

    def progress(db) -> None:
        # No lookback count: the next poll with the hint unmoved fetches from the head.
        record_poll(db, src.server, bucket_id, head=max(starts, default=None), hint=hint,
                    polled_at=fetched_at, lookback=(None, None))
        if gap_hi is not None:
            add_gap(db, src.server, bucket_id, None, gap_hi, fetched_at)

    return store_answer(db, src, bucket_id, events, OPEN, fetched_at=fetched_at, then=progress)


def fill_gap(
    db,
    src: AWServer,
    gap: Gap,
    *,
    should_stop: ShouldStop = never,
    deadline: float | None = None,
    since: datetime | None = None,
    on_page: PageCallback | None = None,
) -> tuple[bool, Counts]:
    """Fetch a gap newest first, one committed page at a time, until it is
    done, `since` is reached, a stop is asked or the deadline passes.
    Returns (gap done, counts).

    The next page is asked for as soon as a page's oldest event is known,
    before the page is normalised and stored, so AW prepares the next answer
    while LifeLog works on this one (on two cores, a backfill then runs at
    the speed of the fetch).
    """
    total = Counts()
    lo = try_parse_iso(gap.lo)
    hi = gap.hi
    limit = PAGE_SIZE
    prefetch = src.clone()
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lifelog-prefetch")

    def fetch(end: str, n: int) -> Page:
        return prefetch.page(gap.bucket_id, end=parse_iso(end), limit=n)

    def out_of_time() -> bool:
        return should_stop() or (deadline is not None and time.monotonic() >= deadline)

    pending: Future | None = pool.submit(fetch, hi, limit)
    done = False
    try:
        while pending is not None:
            page = pending.result()
            pending = None
            oldest = None if page.oldest is None else page.oldest.timestamp
            done = len(page) < limit or (lo is not None and oldest is not None and parse_iso(oldest) < lo)
            stalled = not done and oldest == hi  # a page all at one timestamp: ask for more at once
            next_hi, next_limit = (hi, limit * 2) if stalled else (oldest, PAGE_SIZE)
            reached_since = (since is not None and oldest is not None and parse_iso(oldest) < since)
            if not done and not reached_since and not out_of_time():
                assert next_hi is not None  # not done: the page was full, so it has an oldest event
                pending = pool.submit(fetch, next_hi, next_limit)

            def progress(db, done=done, next_hi=next_hi) -> None:
                row = db.conn.execute("SELECT hi FROM sync_gaps WHERE id = ?", (gap.id,)).fetchone()
                if row is None:
                    return  # another process finished it
                if done:
                    db.conn.execute("DELETE FROM sync_gaps WHERE id = ?", (gap.id,))
                elif next_hi < row[0]:  # gaps only shrink, whoever commits first
                    db.conn.execute("UPDATE sync_gaps SET hi = ? WHERE id = ?", (next_hi, gap.id))

            events, fetched_at = page.events(), page.fetched_at
            del page  # AW's raw answer: only the events are kept while they are stored
            counts = store_answer(db, src, gap.bucket_id, events, Window(None, parse_iso(hi)),
                                  fetched_at=fetched_at, then=progress)
            del events
            total.add(counts)
            if on_page is not None:
                on_page(gap.bucket_id, counts, oldest)
            if next_hi is not None:  # None only for an empty page, the last
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
    src: AWServer,
    bucket_ids: Sequence[str],
    *,
    should_stop: ShouldStop = never,
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
    should_stop: ShouldStop = never,
    on_page: PageCallback | None = None,
    on_start: Callable[[dict[str, int]], None] | None = None,
    info: dict[str, Any] | None = None,
    skip: Callable[[str], bool] | None = None,
) -> BackfillReport:
    """Fetch the selected buckets' history (down to `since`), page by page.

    Uses the watcher's own progress rows, so it resumes after a kill and may
    run beside the watcher: both merge idempotently, and a gap only shrinks.
    `info` and `skip` as for lifelog.ingest.store.connect (a backfill of
    every device asks each device's info first, to tell clones apart).
    """
    src, listing, chosen = connect(db, client, settings, info, skip)
    states = load_states(db, src.server)
    if on_start is not None:
        totals = {}
        for b in chosen:
            try:
                totals[b] = src.count(b, start=since) if since is not None and not src.is_rust else src.count(b)
            except Exception:  # only a progress estimate
                totals[b] = 0
        on_start(totals)
    counts = Counts()
    for bucket_id in chosen:
        if should_stop():
            break
        state = states.get(bucket_id)
        if state is None or state.head_ts is None:
            c = open_bucket(db, src, bucket_id, hint_text(listing[bucket_id]))
            counts.add(c)
            if on_page is not None:
                on_page(bucket_id, c, None)
    counts.add(fill_gaps(db, src, chosen, should_stop=should_stop, since=since, on_page=on_page))
    left = [g for g in load_gaps(db, src.server, chosen)
            if since is None or parse_iso(g.hi) >= since]
    return BackfillReport(src.server, chosen, counts, len(left), complete=not left and not should_stop())
