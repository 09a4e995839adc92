"""The coverage summary (coverage_cells): equal to splitting the events in
Python, kept current as events change, and worked out in memory when the
database cannot be written. And the watcher's run history it reads."""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lifelog.core.timeutil import now_iso, to_iso
from lifelog.coverage.cells import CHANGED_SQL, Summary
from lifelog.coverage.model import cells_of_events, units_of_cells
from lifelog.db.database import SCHEMA_VERSION, open_db, transaction

DAY0 = datetime(2026, 5, 1, tzinfo=UTC)


def iso(t: float) -> str:
    return to_iso(datetime.fromtimestamp(t, UTC))


def insert(db, bucket: str, evs, first_id: int = 1, stamp: str | None = None) -> None:
    stamp = stamp or now_iso()
    with transaction(db):
        db.conn.executemany(
            "INSERT INTO events (server, bucket_id, event_id, timestamp, duration, data, ended_at, ingested_at,"
            " updated_at) VALUES ('s', ?, ?, ?, ?, ?, ?, ?, ?)",
            [(bucket, first_id + i, iso(t), d, json.dumps(data), iso(t + max(d, 0)), stamp, stamp)
             for i, (t, d, data) in enumerate(evs)])


def summary_cells(db, bucket: str, afk: bool, since: float, until: float):
    s = Summary(db)
    s.refresh([("s", bucket, afk)], since, until)
    return s, {k: v for k, v in s.units("s", bucket, since, until, 60).items()}


def as_units(cells, since, until):
    return units_of_cells(cells, since, until, 60)


def close(a: dict, b: dict) -> bool:
    return all(abs(x - y) <= 1e-3 for k in set(a) | set(b)
               for x, y in zip(a.get(k, [0.0] * 3), b.get(k, [0.0] * 3), strict=False))


base = DAY0.timestamp()
event_lists = st.lists(
    st.tuples(st.integers(0, 3 * 86400 * 1000).map(lambda ms: base + ms / 1000),
              st.one_of(st.floats(min_value=-5, max_value=90, allow_nan=False),
                        st.floats(min_value=0, max_value=30 * 3600, allow_nan=False)),
              st.sampled_from(["afk", "not-afk", "other"])),
    max_size=40)


@settings(max_examples=40, deadline=None)
@given(event_lists)
def test_the_sql_summary_equals_splitting_the_events_in_python(evs):
    with tempfile.TemporaryDirectory() as d:
        db = open_db(os.path.join(d, "c.db"))
        insert(db, "afk", [(t, dur, {"status": s}) for t, dur, s in evs])
        insert(db, "win", [(t, dur, {"app": "x", "title": s}) for t, dur, s in evs], first_id=1000)
        since, until = base + 86400, base + 3 * 86400  # events before the range reach into it
        _, afk = summary_cells(db, "afk", True, since, until)
        _, win = summary_cells(db, "win", False, since, until)
        want_afk = as_units(cells_of_events((t, dur, s) for t, dur, s in evs if s != "other"), since, until)
        want_win = as_units(cells_of_events((t, dur, "") for t, dur, s in evs), since, until)
        assert close(afk, want_afk) and close(win, want_win)
        # By quarter hours (read from coverage_blocks), up to an until that is not on one.
        s = Summary(db)
        until = base + 3 * 86400 - 7 * 60
        s.refresh([("s", "afk", True), ("s", "win", False)], since, until)
        ref = cells_of_events((t, dur, s) for t, dur, s in evs if s != "other")
        assert close(s.units("s", "afk", since, until, 900), units_of_cells(ref, since, until, 900))
        db.close()


def test_a_changed_event_is_summarised_again(db_path, monkeypatch):
    from lifelog.coverage import cells as coverage_cells

    monkeypatch.setattr(coverage_cells, "RESCAN_SECONDS", 0.0)  # only what changed after the last run
    db = open_db(db_path)
    t = base + 3600
    insert(db, "win", [(t, 30.0, {"app": "a"})])
    since, until = base, base + 86400
    _, before = summary_cells(db, "win", False, since, until)
    assert sum(r[2] for r in before.values()) == pytest.approx(30.0)
    # A heartbeat grows the event in place (sync stamps updated_at).
    with transaction(db):
        db.conn.execute("UPDATE events SET duration = 90, ended_at = ?, updated_at = ? WHERE event_id = 1",
                        (iso(t + 90), now_iso()))
    _, after = summary_cells(db, "win", False, since, until)
    assert sum(r[2] for r in after.values()) == pytest.approx(90.0)
    # Unchanged days are not summarised again.
    days = db.conn.execute("SELECT count(*) FROM coverage_days").fetchone()[0]
    s = Summary(db)
    calls = []
    s.summarise_day = lambda *a: calls.append(a) or {}  # type: ignore[method-assign]
    s.refresh([("s", "win", False)], since, until)
    assert calls == [] and db.conn.execute("SELECT count(*) FROM coverage_days").fetchone()[0] == days


def test_an_event_replaced_by_one_on_another_day_leaves_the_old_day(db_path):
    db = open_db(db_path)
    t = base + 3600
    insert(db, "win", [(t, 30.0, {"app": "a"})])
    since, until = base, base + 2 * 86400
    summary_cells(db, "win", False, since, until)
    stamp = now_iso()
    with transaction(db):  # what sync does when AW gives the id to another event
        db.conn.execute("INSERT INTO events_replaced SELECT server, bucket_id, event_id, timestamp, duration, data,"
                        " ended_at, ingested_at, updated_at, deleted_in_aw_at, ? FROM events", (stamp,))
        db.conn.execute("UPDATE events SET timestamp = ?, ended_at = ?, updated_at = ?",
                        (iso(t + 86400), iso(t + 86430), stamp))
    _, after = summary_cells(db, "win", False, since, until)
    cells = {k: r for k, r in after.items() if r[2]}
    assert list(cells) == [int((t + 86400 - since) // 60)]


def test_a_database_that_cannot_be_written_is_summarised_in_memory(db_path):
    db = open_db(db_path)
    insert(db, "win", [(base + 60, 120.0, {"app": "a"})])
    db.conn.execute("PRAGMA query_only = ON")
    s, units = summary_cells(db, "win", False, base, base + 86400)
    assert s.in_memory
    assert sum(r[2] for r in units.values()) == pytest.approx(120.0)
    assert db.conn.execute("SELECT count(*) FROM coverage_cells").fetchone()[0] == 0


def test_a_version_4_database_gets_the_coverage_tables(db_path):
    db = open_db(db_path)
    for table in ("watcher_runs", "coverage_cells", "coverage_days"):
        db.conn.execute(f"DROP TABLE {table}")
    db.conn.execute("DROP INDEX events_by_update")
    db.conn.execute("PRAGMA user_version = 4")
    db.close()
    db = open_db(db_path)
    assert {"watcher_runs", "coverage_cells", "coverage_days"} <= set(db.table_names())
    assert db.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    plan = " ".join(str(r) for r in db.conn.execute("EXPLAIN QUERY PLAN " + CHANGED_SQL, ("x",)))
    assert "USING INDEX events_by_update (updated_at>?)" in plan


def test_the_watcher_records_each_run_and_moves_its_end_with_every_heartbeat(db_path):
    from lifelog.ingest import watcher

    db = open_db(db_path)
    watcher.record_start(db, {})
    (rid, pid, started, last, boot), = db.conn.execute("SELECT * FROM watcher_runs").fetchall()
    assert pid == os.getpid() and last == started and boot < started
    watcher.record_heartbeat(db, watcher.PollOutcome(ok=True))
    watcher.record_heartbeat(db, watcher.PollOutcome(ok=False, error="AW down"))
    (rid2, _, started2, last2, _), = db.conn.execute("SELECT * FROM watcher_runs").fetchall()
    assert (rid2, started2) == (rid, started) and last2 > last
    assert last2 == db.conn.execute("SELECT value FROM meta WHERE key = 'watcher.heartbeat_at'").fetchone()[0]
    watcher.record_start(db, {})
    assert db.conn.execute("SELECT count(*) FROM watcher_runs").fetchone()[0] == 2


def test_a_real_watcher_process_records_its_run(db_path, aw_server, spawn):
    from support.helpers import meta, wait_for

    # Its own bucket: following `*` on the shared server, it would first catch
    # up on every other test's history, as long as the machine is slow.
    bucket = f"test-cells-watcher-run-{os.getpid()}"
    aw_server.create_bucket(bucket)
    aw_server.insert(bucket, [{"timestamp": datetime.now(UTC).isoformat(), "duration": 1.0,
                               "data": {"app": "x"}}])
    env = dict(os.environ, LIFELOG_AW_URL=aw_server.url, LIFELOG_POLL_INTERVAL_SECONDS="0.2",
               LIFELOG_BUCKETS=bucket)
    p = spawn.lifelog("watcher", "--db", str(db_path), env=env)
    wait_for(lambda: meta(db_path, "watcher.state") == "running", what="the watcher running")
    first = meta(db_path, "watcher.heartbeat_at")
    wait_for(lambda: meta(db_path, "watcher.heartbeat_at") != first, what="another heartbeat")
    with open_db(db_path) as db:
        rows = db.conn.execute("SELECT pid, started_at, last_heartbeat_at FROM watcher_runs").fetchall()
    assert len(rows) == 1 and rows[0][0] == p.pid
    assert rows[0][1] == meta(db_path, "watcher.started_at") and rows[0][2] > first
