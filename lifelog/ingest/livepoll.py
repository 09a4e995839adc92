"""The watcher's live poll: bring each chosen bucket's newest events in.

Per bucket, when AW's last_updated hint moved (or AW's count from the latest
lookback start did), ask for `start = head - LOOKBACK` with no `end`. The
head is the start of the newest event stored, so the event heartbeats are
growing is always returned whole; only events crossing `start` come back
clipped, and those are already stored whole (or are fetched by id). A bucket
seen for the first time, or an answer that fills a whole page (the watcher
was down for long), leaves a gap, and each poll then spends at most
GAP_BUDGET_SECONDS on gaps (lifelog.ingest.history), so a huge first ingest never
stalls the live buckets or the heartbeat.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from lifelog.aw.client import AWClient
from lifelog.core.settings import Settings
from lifelog.core.timeutil import now_iso, parse_iso, to_iso
from lifelog.ingest import history
from lifelog.ingest.merge import Window
from lifelog.ingest.store import (
    AWServer,
    BucketState,
    Counts,
    ShouldStop,
    connect,
    hint_text,
    last_event_ts,
    load_states,
    never,
    record_poll,
    store_answer,
)

# A poll asks again for what started this long before the newest stored
# event: covers aw-watcher-afk's back-dating (pulsetime 185 s) plus the
# client's commit lag (about 10 s). Older late arrivals: reconcile.
LOOKBACK = timedelta(minutes=5)
# Time one poll may spend on history, so live data and the heartbeat stay fresh.
GAP_BUDGET_SECONDS = 5.0


@dataclass(frozen=True)
class PollResult:
    last_event_ts: str | None
    counts: Counts = field(default_factory=Counts)
    gaps_left: int = 0


def nothing_new(src: AWServer, bucket_id: str, hint: str | None, state: BucketState | None) -> bool:
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
    return src.count(bucket_id, start=parse_iso(state.lookback_start)) == state.lookback_count


def poll_bucket(db, src: AWServer, bucket_id: str, bucket: dict[str, Any], state: BucketState | None) -> Counts:
    """Bring one bucket's newest events in; leave a gap for what one page cannot hold."""
    hint = hint_text(bucket)
    if nothing_new(src, bucket_id, hint, state):
        return Counts()  # an idle poll fetches no events
    if state is None or state.head_ts is None:
        return history.open_bucket(db, src, bucket_id, hint)
    # Clamped to now: one event stamped in the future must not hide the present.
    start = parse_iso(min(state.head_ts, now_iso())) - LOOKBACK
    window = Window(start, None)
    page = history.PAGE_SIZE
    events = src.events(bucket_id, start=window.start, limit=page)
    fetched_at = now_iso()
    floor = to_iso(start)
    starts = [e.timestamp for e in events]
    # Events starting at the floor may be clipped copies: they never move the head.
    new_head = max([state.head_ts, *(t for t in starts if t > floor)])
    full = len(events) >= page
    gap_hi = min(starts) if full else None
    if gap_hi is not None and gap_hi <= floor:
        gap_hi = None  # the page already reaches back to the window's start
    # What AW answered from this window's start, for the next idle poll to
    # compare (a full page is not a count: then the hint alone decides).
    lookback = (None, None) if full else (floor, len(events))

    def progress(db) -> None:
        record_poll(db, src.server, bucket_id, head=new_head, hint=hint, polled_at=fetched_at, lookback=lookback)
        if gap_hi is not None:
            history.add_gap(db, src.server, bucket_id, floor, gap_hi, fetched_at)

    return store_answer(db, src, bucket_id, events, window, fetched_at=fetched_at, then=progress)


def poll_live(db, src: AWServer, listing: dict[str, dict[str, Any]], chosen: list[str],
              should_stop: ShouldStop = never) -> Counts:
    """The live part of a poll: each chosen bucket's newest events, no history."""
    states = load_states(db, src.server)
    counts = Counts()
    for bucket_id in chosen:
        if should_stop():
            break
        counts.add(poll_bucket(db, src, bucket_id, listing[bucket_id], states.get(bucket_id)))
    return counts


def poll(db, client: AWClient, settings: Settings, should_stop: ShouldStop = never) -> PollResult:
    """One watcher poll: live buckets first, then up to GAP_BUDGET_SECONDS of history."""
    src, listing, chosen = connect(db, client, settings)
    counts = poll_live(db, src, listing, chosen, should_stop)
    if not should_stop():
        counts.add(history.fill_gaps(db, src, chosen, should_stop=should_stop,
                                     deadline=time.monotonic() + GAP_BUDGET_SECONDS))
    return PollResult(last_event_ts(db, src.server, chosen), counts,
                      history.gaps_left(db, src.server, chosen))
