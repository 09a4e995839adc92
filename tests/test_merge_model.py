"""Model-based test of the merge: random AW histories seen through random,
clipped query windows; what is stored is never a clipped copy, always equals
AW for what a query showed, and equals AW exactly after a full look.

The model is aw-server-python's behaviour, as its sources and our experiments show it:
overlap filter with the 24 h cut, clipping at both edges with `end` rounded
up a millisecond, newest first, ids reused after the highest is deleted,
in-place rewrites, by-id lookups that never clip. LifeLog's own code runs for
real: merge.plan_writes and store.store_answer on a real SQLite database.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from lifelog.core.timeutil import to_iso
from lifelog.db.database import upgrade, wrap
from lifelog.ingest import merge, store
from lifelog.ingest.merge import Window

T0 = datetime(2026, 11, 20, tzinfo=UTC)
MINUTE = 60_000  # the model counts milliseconds
DAY = 1440 * MINUTE
BUCKET = "b"


def at(ms: int) -> datetime:
    return T0 + timedelta(milliseconds=ms)


class ModelAW:
    """One bucket of aw-server-python, reduced to what ingestion meets."""

    def __init__(self) -> None:
        self.events: dict[int, tuple[int, int, str]] = {}  # id -> (start ms, duration ms, data)
        self.versions: set[tuple[int, str, float, str]] = set()

    def _record(self, event_id: int) -> None:
        ts, dur, data = self.events[event_id]
        self.versions.add((event_id, to_iso(at(ts)), dur / 1000, merge.compact_json({"v": data})))

    def insert(self, ts: int, dur: int, data: str) -> None:
        event_id = max(self.events, default=0) + 1  # peewee without AUTOINCREMENT
        self.events[event_id] = (ts, dur, data)
        self._record(event_id)

    def grow_newest(self, by: int) -> None:
        event_id = max(self.events, key=lambda i: (self.events[i][0], i))
        ts, dur, data = self.events[event_id]
        self.events[event_id] = (ts, dur + by, data)
        self._record(event_id)

    def rewrite(self, event_id: int, ts: int, data: str) -> None:
        self.events[event_id] = (ts, self.events[event_id][1], data)
        self._record(event_id)

    def delete(self, event_id: int) -> None:
        del self.events[event_id]

    def wire(self, event_id: int, ts: int, dur: int, data: str) -> dict:
        return {"id": event_id, "timestamp": at(ts).isoformat(), "duration": dur / 1000, "data": {"v": data}}

    def query(self, start: int | None, end: int | None) -> list[dict]:
        if end is not None:
            end += 1  # aw-server-python rounds `end` up to the next millisecond
        out = []
        for event_id, (ts, dur, data) in self.events.items():
            if start is not None and (ts + dur < start or ts < start - DAY):
                continue  # the overlap filter and the "no event is longer than 24 h" cut
            if end is not None and ts > end:
                continue
            if start is not None and ts < start:
                ts, dur = start, ts + dur - start
            if end is not None and ts + dur > end:
                dur = end - ts
            out.append(self.wire(event_id, ts, dur, data))
        return sorted(out, key=lambda e: e["timestamp"], reverse=True)

    # what store.AWServer calls
    def event(self, bucket_id: str, event_id: int, *, missing_on_500: bool = False):
        if event_id not in self.events:
            return None
        return self.wire(event_id, *self.events[event_id])


def events(answer):
    """An answer as LifeLog's AWServer hands it on: normalised as it arrives."""
    return [store.normalise(BUCKET, r) for r in answer]


def memory_db():
    conn = sqlite3.connect(":memory:", isolation_level=None)
    db = wrap(conn)
    upgrade(db)
    return db


def stored_rows(db, *, deleted=False):
    return {r[0]: (r[1], r[2], r[3]) for r in db.conn.execute(
        "SELECT event_id, timestamp, duration, data FROM events WHERE deleted_in_aw_at IS "
        + ("NOT NULL" if deleted else "NULL"))}


def truth_rows(aw: ModelAW):
    return {i: (to_iso(at(ts)), dur / 1000, merge.compact_json({"v": data})) for i, (ts, dur, data) in aw.events.items()}


times = st.integers(0, 4 * 1440).map(lambda m: m * MINUTE)
durations = st.one_of(st.integers(0, 30).map(lambda m: m * MINUTE), st.integers(0, 2000).map(lambda m: m * MINUTE),
                      st.integers(0, 90_000))
labels = st.sampled_from("abc")


class IngestMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.aw = ModelAW()
        self.db = memory_db()
        self.src = store.AWServer(self.aw, "server", is_rust=False)

    @rule(ts=times, dur=durations, data=labels)
    def insert(self, ts, dur, data):
        self.aw.insert(ts, dur, data)

    @precondition(lambda self: self.aw.events)
    @rule(by=st.integers(1, 120_000))
    def heartbeat_grows_the_newest(self, by):
        self.aw.grow_newest(by)

    @precondition(lambda self: self.aw.events)
    @rule(data=st.data())
    def delete(self, data):
        self.aw.delete(data.draw(st.sampled_from(sorted(self.aw.events))))

    @precondition(lambda self: self.aw.events)
    @rule(data=st.data(), ts=times, label=labels)
    def rewrite_in_place(self, data, ts, label):
        self.aw.rewrite(data.draw(st.sampled_from(sorted(self.aw.events))), ts, label)

    @rule(start=st.none() | times, length=st.none() | st.integers(0, 3 * DAY), trust=st.booleans(),
          mark=st.booleans())
    def look(self, start, length, trust, mark):
        end = None if length is None else (start or 0) + length
        window = Window(None if start is None else at(start), None if end is None else at(end))
        answer = self.aw.query(start, end)
        store.store_answer(self.db, self.src, BUCKET, events(answer), window, trust_covering=trust,
                          mark_missing=mark, fetched_at="9999")
        truth = truth_rows(self.aw)
        stored = stored_rows(self.db)
        returned = {e["id"] for e in answer}
        for event_id in returned:
            original = self.aw.event(BUCKET, event_id)
            clipped = next(e for e in answer if e["id"] == event_id) != original
            if not trust or not clipped:
                # What a query showed is stored as AW holds it, clipped or not.
                assert stored.get(event_id) == truth[event_id]
        if mark:
            for event_id, (ts, _, _) in stored.items():
                inside = (start is None or ts >= to_iso(at(start))) and (end is None or ts <= to_iso(at(end)))
                if inside:
                    assert event_id in truth

    @invariant()
    def never_a_clipped_copy(self):
        for event_id, row in stored_rows(self.db).items():
            assert (event_id, *row) in self.aw.versions

    def teardown(self):
        store.store_answer(self.db, self.src, BUCKET, events(self.aw.query(None, None)), merge.OPEN,
                          mark_missing=True, fetched_at="9999")
        assert stored_rows(self.db) == truth_rows(self.aw)
        # Nothing ever deleted: every event once stored is still somewhere.
        for event_id in stored_rows(self.db, deleted=True):
            assert event_id not in self.aw.events or stored_rows(self.db).get(event_id) is None
        self.db.conn.close()


IngestMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=30, deadline=None,
                                           suppress_health_check=[HealthCheck.too_slow])
test_it_stores_what_aw_holds_through_any_clipped_windows = IngestMachine.TestCase


@settings(deadline=None)  # each example opens a database: a loaded machine can take longer than 200 ms
@given(ts=times, dur=st.integers(1, 10 * MINUTE), cut=st.integers(1, 10 * MINUTE - 1))
def test_it_fetches_an_event_clipped_at_a_window_start_by_id(ts, dur, cut):
    aw = ModelAW()
    aw.insert(ts, dur, "a")
    db = memory_db()
    start = ts + min(cut, dur)
    store.store_answer(db, store.AWServer(aw, "s", False), BUCKET, events(aw.query(start, None)),
                       Window(at(start), None))
    assert stored_rows(db) == truth_rows(aw)
