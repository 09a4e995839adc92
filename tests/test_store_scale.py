"""Write transactions stay short however large a bucket grows.

A bucket of a few hundred thousand rows, written directly; then the writes
ingestion makes (a page of new events, a heartbeat growing the newest, a
replaced id, reconcile marking the newest row deleted, the progress rows,
the retention prune) each commit in milliseconds, and no statement run
inside a write transaction reads the bucket whole (EXPLAIN QUERY PLAN, and
the SQLite VM steps it takes, counted).
"""

from __future__ import annotations

import shutil
import sqlite3
import time
from datetime import datetime, timedelta, timezone

import pytest

from lifelog import coverage_cells, history, keys, pruning, store, watcher
from lifelog.db import apply_schema, open_db, set_meta, transaction
from lifelog.merge import Event, Window
from lifelog.timeutil import now_iso, to_iso

UTC = timezone.utc
SERVER, BUCKET = "device", "aw-watcher-window_big"
ROWS = 300_000
T0 = datetime(2020, 1, 1, tzinfo=UTC)
STEP = 10  # seconds between event starts; each lasts 5 s


def event(i: int, *, duration: float = 5.0, app: str = "editor") -> Event:
    ts = T0 + timedelta(seconds=STEP * i)  # already UTC: isoformat is to_iso's form, and quicker
    return Event(i, ts.isoformat(timespec="microseconds"), duration,
                 f'{{"app":"{app}","title":"file {i % 977}.py"}}',
                 (ts + timedelta(seconds=duration)).isoformat(timespec="microseconds"))


@pytest.fixture(scope="module")
def big_db_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("big") / "lifelog.db"
    db = open_db(path)
    now = to_iso(T0 + timedelta(days=400))  # written long ago, as history is
    # Rows first, indexes after (as schema.sql makes them): much faster to build.
    indexes = [r[0] for r in db.conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' AND sql IS NOT NULL")]
    for name in indexes:
        db.conn.execute(f"DROP INDEX {name}")
    with transaction(db):
        db.conn.executemany(
            "INSERT INTO events (server, bucket_id, event_id, timestamp, duration, data, ended_at, ingested_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ((SERVER, BUCKET, *event(i), now, now) for i in range(ROWS)))
        db.conn.executemany("INSERT INTO health_checks (checked_at, aw_url, status) VALUES (?, 'u', 'healthy')",
                            ((to_iso(T0 + timedelta(minutes=15 * i)),) for i in range(3000)))
    apply_schema(db.conn)
    with transaction(db):
        store.recompute_newest_end(db, SERVER, BUCKET)
    db.conn.close()
    return path


@pytest.fixture
def big(big_db_file, tmp_path):
    path = tmp_path / "lifelog.db"
    shutil.copy(big_db_file, path)
    db = open_db(path)
    yield db
    db.conn.close()


# No fetch by id happens in these tests (no event touches a window's edge):
# the source is only the server's name.
SRC = store.Source(client=None, server=SERVER, is_rust=False)  # type: ignore[arg-type]


def newest_end(db) -> str:
    return db.conn.execute("SELECT newest_end FROM sync_state WHERE server = ? AND bucket_id = ?",
                           (SERVER, BUCKET)).fetchone()[0]


def test_replacing_the_newest_event_of_a_big_bucket_commits_in_milliseconds(big):
    last = ROWS - 1
    assert newest_end(big) == event(last).ended_at
    # aw-server-python gave the newest id to another, shorter event: the
    # bucket's newest end must be worked out again, inside the transaction.
    other = event(last, duration=1.0, app="browser")
    began = time.perf_counter()
    counts = store.store_answer(big, SRC, BUCKET, [other], Window(T0 + timedelta(seconds=STEP * (last - 30)), None))
    elapsed = time.perf_counter() - began
    assert counts.replaced == 1
    assert newest_end(big) == other.ended_at
    assert elapsed < 0.1, f"a replacement took {elapsed * 1000:.0f} ms on a bucket of {ROWS} rows"


def test_marking_the_newest_event_deleted_commits_in_milliseconds(big):
    last = ROWS - 1
    # A window starting between two events, so none is clipped at its start.
    first = last - 5
    window = Window(T0 + timedelta(seconds=STEP * first - 3), T0 + timedelta(seconds=STEP * last + 3600))
    # AW answered for it without the bucket's newest event (deleted in AW).
    answer = [event(i) for i in range(first, last)]
    began = time.perf_counter()
    counts = store.store_answer(big, SRC, BUCKET, answer, window, trust_covering=False, mark_missing=True,
                                fetched_at=now_iso())
    elapsed = time.perf_counter() - began
    assert counts.marked_deleted == 1
    assert newest_end(big) == event(last - 1).ended_at
    assert elapsed < 0.1, f"marking a row deleted took {elapsed * 1000:.0f} ms on a bucket of {ROWS} rows"


class WriteAudit:
    """Every statement run inside a write transaction, and the VM steps each
    transaction took (SQLite's progress handler, called every STEPS steps)."""

    STEPS = 1000

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self.statements: list[str] = []
        self.transactions: list[tuple[int, list[str]]] = []
        self._steps = 0
        self._current: list[str] | None = None
        conn.set_trace_callback(self._trace)
        conn.set_progress_handler(self._progress, self.STEPS)

    def _progress(self) -> int:
        self._steps += self.STEPS
        return 0

    def _trace(self, sql: str) -> None:
        verb = sql.strip().split(None, 1)[0].upper()
        if verb == "BEGIN":
            self._current, self._steps = [], 0
        elif verb in ("COMMIT", "ROLLBACK") and self._current is not None:
            self.transactions.append((self._steps, self._current))
            self._current = None
        elif self._current is not None:
            self._current.append(sql)
            self.statements.append(sql)

    def close(self) -> None:
        self.conn.set_trace_callback(None)
        self.conn.set_progress_handler(None, 0)


def test_no_statement_inside_a_write_transaction_reads_the_bucket_whole(big):
    set_meta(big, keys.COVERAGE_CELLS_AS_OF, now_iso())
    audit = WriteAudit(big.conn)
    last = ROWS - 1
    head = T0 + timedelta(seconds=STEP * last)
    live = Window(head - timedelta(minutes=5), None)
    try:
        # The live poll: new events, the newest growing, an id reused, progress.
        fresh = [event(i) for i in range(ROWS, ROWS + 50)]
        store.store_answer(big, SRC, BUCKET, fresh, live, then=lambda db: store.record_poll(
            db, SERVER, BUCKET, head=fresh[-1].timestamp, hint=fresh[-1].ended_at, polled_at=now_iso(),
            lookback=(to_iso(live.start), len(fresh))))
        store.store_answer(big, SRC, BUCKET, [event(ROWS + 49, duration=60.0)], live)
        store.store_answer(big, SRC, BUCKET, [event(ROWS + 49, duration=2.0, app="other")], live)
        # History: a page below a gap, with the gap's progress.
        with transaction(big):
            history.add_gap(big, SERVER, BUCKET, None, event(1000).timestamp, now_iso())
        gap = history.load_gaps(big, SERVER, [BUCKET])[0]
        page = [event(i) for i in range(900, 1001)]
        store.store_answer(big, SRC, BUCKET, page, Window(None, datetime.fromisoformat(gap.hi)),
                           then=lambda db: db.conn.execute("UPDATE sync_gaps SET hi = ? WHERE id = ?",
                                                           (page[0].timestamp, gap.id)))
        # Reconcile: a day whose newest event AW no longer has; its summary.
        day = datetime.fromisoformat(event(ROWS + 49).timestamp).replace(hour=0, minute=0, second=0, microsecond=0)
        in_day = [event(i) for i in range(ROWS - 8000, ROWS + 49)
                  if event(i).timestamp > to_iso(day) and event(i).ended_at < to_iso(day + timedelta(days=1))]
        store.store_answer(big, SRC, BUCKET, in_day, Window(day, day + timedelta(days=1)), trust_covering=False,
                           mark_missing=True, fetched_at=now_iso())
        store.record_reconciled(big, SERVER, BUCKET, now_iso())
        set_meta(big, "reconcile.summary", "x")
        # Retention of LifeLog's own history; the watcher's heartbeat; what
        # coverage's refresh forgets of its summary after these writes.
        assert pruning.prune(big, T0 + timedelta(days=400), 365) > 0
        watcher.record_poll(big, watcher.PollOutcome(ok=True, last_event_ts=newest_end(big)))
        coverage_cells.Summary(big)._forget_changed()
    finally:
        audit.close()

    assert audit.transactions and len(audit.statements) >= 10
    for steps, statements in audit.transactions:
        # A whole-bucket read is millions of steps here; a page of 100 rows is
        # a few tens of thousands.
        assert steps < 200_000, (steps, statements)
    tables = ("events", "sync_", "buckets", "health_checks", "watchdog_log", "watcher_runs", "coverage_")
    for sql in (s for s in audit.statements if any(t in s for t in tables)):
        plan = [row[3] for row in big.conn.execute("EXPLAIN QUERY PLAN " + sql)]
        scans = [p for p in plan if p.startswith("SCAN ") and p.split()[1] not in ("json_each", "CONSTANT", "sqlite_master")]
        assert not scans, (sql, plan)
