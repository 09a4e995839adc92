"""Write transactions stay short however large a bucket grows.

A bucket of a few hundred thousand rows, written directly; then the writes
ingestion makes (a page of new events, a heartbeat growing the newest, a
replaced id, reconcile marking the newest row deleted, the progress rows,
the retention prune) cost no more than in a bucket a hundred times smaller,
and no statement run inside a write transaction reads the bucket whole
(EXPLAIN QUERY PLAN, and the SQLite VM steps it takes, counted).

Cost is counted in SQLite VM steps, not measured in seconds: the count is the
same on every run, however loaded the machine, and a scan of the bucket
shows in it as a hundredfold growth.
"""

from __future__ import annotations

import shutil
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from lifelog.core import keys
from lifelog.core.timeutil import now_iso, to_iso
from lifelog.coverage import cells as coverage_cells
from lifelog.db import pruning
from lifelog.db.database import apply_schema, open_db, transaction
from lifelog.db.meta import set_meta
from lifelog.ingest import history, store, watcher
from lifelog.ingest.merge import Event, Window

UTC = UTC
SERVER, BUCKET = "device", "aw-watcher-window_big"
ROWS = 300_000
SMALL_ROWS = ROWS // 100
T0 = datetime(2020, 1, 1, tzinfo=UTC)
STEP = 10  # seconds between event starts; each lasts 5 s


def event(i: int, *, duration: float = 5.0, app: str = "editor") -> Event:
    ts = T0 + timedelta(seconds=STEP * i)  # already UTC: isoformat is to_iso's form, and quicker
    return Event(i, ts.isoformat(timespec="microseconds"), duration,
                 f'{{"app":"{app}","title":"file {i % 977}.py"}}',
                 (ts + timedelta(seconds=duration)).isoformat(timespec="microseconds"))


def build(path, rows: int):
    """A database holding one bucket of `rows` events, STEP s apart."""
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
            ((SERVER, BUCKET, *event(i), now, now) for i in range(rows)))
        db.conn.executemany("INSERT INTO health_checks (checked_at, aw_url, status) VALUES (?, 'u', 'healthy')",
                            ((to_iso(T0 + timedelta(minutes=15 * i)),) for i in range(3000)))
    apply_schema(db)
    with transaction(db):
        store.recompute_newest_end(db, SERVER, BUCKET)
    db.conn.close()
    return path


@pytest.fixture(scope="module")
def big_db_file(tmp_path_factory):
    return build(tmp_path_factory.mktemp("big") / "lifelog.db", ROWS)


@pytest.fixture(scope="module")
def small_db_file(tmp_path_factory):
    return build(tmp_path_factory.mktemp("small") / "lifelog.db", SMALL_ROWS)


def copy_of(db_file, tmp_path, name):
    path = tmp_path / name
    shutil.copy(db_file, path)
    return open_db(path)


@pytest.fixture
def big(big_db_file, tmp_path):
    db = copy_of(big_db_file, tmp_path, "big.db")
    yield db
    db.conn.close()


@pytest.fixture
def small(small_db_file, tmp_path):
    db = copy_of(small_db_file, tmp_path, "small.db")
    yield db
    db.conn.close()


# No fetch by id happens in these tests (no event touches a window's edge):
# the source is only the server's name.
SRC = store.AWServer(client=None, server=SERVER, is_rust=False)  # type: ignore[arg-type]


def newest_end(db) -> str:
    return db.conn.execute("SELECT newest_end FROM sync_state WHERE server = ? AND bucket_id = ?",
                           (SERVER, BUCKET)).fetchone()[0]


def vm_steps(db, action):
    """`action(db)`'s result, and the SQLite VM steps it took, every statement
    in it counted (SQLite's progress handler, every step): the same on
    every run, unlike its time on a loaded machine."""
    steps = 0

    def step() -> int:
        nonlocal steps
        steps += 1
        return 0

    db.conn.set_progress_handler(step, 1)
    try:
        return action(db), steps
    finally:
        db.conn.set_progress_handler(None, 0)


def costs_alike(small_steps: int, big_steps: int, what: str) -> None:
    """The big bucket's cost is the small one's, give or take: a read of the
    bucket whole, or of any share of it, would grow a hundredfold with it."""
    assert 0 < big_steps <= 2 * small_steps, (
        f"{what} took {big_steps} VM steps on a bucket of {ROWS} rows, {small_steps} on one of {SMALL_ROWS}")


def replace_newest(db, rows: int):
    last = rows - 1
    assert newest_end(db) == event(last).ended_at
    # aw-server-python gave the newest id to another, shorter event: the
    # bucket's newest end must be worked out again, inside the transaction.
    other = event(last, duration=1.0, app="browser")
    counts, steps = vm_steps(db, lambda db: store.store_answer(
        db, SRC, BUCKET, [other], Window(T0 + timedelta(seconds=STEP * (last - 30)), None)))
    assert counts.replaced == 1
    assert newest_end(db) == other.ended_at
    return steps


def test_replacing_the_newest_event_costs_no_more_in_a_big_bucket_than_in_a_small_one(small, big):
    costs_alike(replace_newest(small, SMALL_ROWS), replace_newest(big, ROWS), "a replacement")


def mark_newest_deleted(db, rows: int):
    last = rows - 1
    # A window starting between two events, so none is clipped at its start.
    first = last - 5
    window = Window(T0 + timedelta(seconds=STEP * first - 3), T0 + timedelta(seconds=STEP * last + 3600))
    # AW answered for it without the bucket's newest event (deleted in AW).
    answer = [event(i) for i in range(first, last)]
    counts, steps = vm_steps(db, lambda db: store.store_answer(
        db, SRC, BUCKET, answer, window, trust_covering=False, mark_missing=True, fetched_at=now_iso()))
    assert counts.marked_deleted == 1
    assert newest_end(db) == event(last - 1).ended_at
    return steps


def test_marking_the_newest_event_deleted_costs_no_more_in_a_big_bucket_than_in_a_small_one(small, big):
    costs_alike(mark_newest_deleted(small, SMALL_ROWS), mark_newest_deleted(big, ROWS), "marking a row deleted")


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
        watcher.record_heartbeat(big, watcher.PollOutcome(ok=True, last_event_ts=newest_end(big)))
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
