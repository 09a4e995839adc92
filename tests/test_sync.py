"""Ingestion against the real aw-server, in process: poll, gaps, backfill, reconcile."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta

import pytest

from lifelog.aw.client import AWClient
from lifelog.core.settings import Settings
from lifelog.core.timeutil import parse_iso, to_iso
from lifelog.db.database import open_db
from lifelog.db.meta import get_meta
from lifelog.ingest import history, livepoll, reconcile

UTC = UTC
_names = itertools.count()


@pytest.fixture
def bucket(aw_server, request):
    name = f"test-sync-{request.node.name[:40]}-{next(_names)}".replace("[", "-").replace("]", "")
    aw_server.create_bucket(name)
    return name


def ev(ts: datetime, dur: float, **data) -> dict:
    return {"timestamp": ts.isoformat(), "duration": dur, "data": data or {"app": "x"}}


def rows(db, bucket_id, *, include_deleted=False):
    sql = "SELECT event_id, timestamp, duration, data FROM events WHERE bucket_id = ?"
    if not include_deleted:
        sql += " AND deleted_in_aw_at IS NULL"
    return {r[0]: (r[1], r[2], json.loads(r[3])) for r in db.conn.execute(sql + " ORDER BY event_id", (bucket_id,))}


def truth(aw, bucket_id):
    return {e["id"]: (to_iso(parse_iso(e["timestamp"])), e["duration"], e["data"]) for e in aw.events(bucket_id)}


@pytest.fixture
def env(aw_server, db_path, bucket):
    db = open_db(db_path)
    client = AWClient(aw_server.url, 10)
    settings = Settings(db_path=db_path, aw_url=aw_server.url, buckets=bucket)
    yield db, client, settings
    client.close()
    db.conn.close()


def now():
    return datetime.now(UTC).replace(microsecond=0)


def test_it_ingests_the_chosen_buckets_only_and_records_progress(aw_server, bucket, env):
    db, client, settings = env
    t0 = now() - timedelta(hours=1)
    aw_server.insert(bucket, [ev(t0 + timedelta(minutes=i), 30, app=f"a{i}") for i in range(10)])
    aw_server.create_bucket(bucket + "-not-chosen")
    aw_server.insert(bucket + "-not-chosen", [ev(t0, 1)])
    result = livepoll.poll(db, client, settings)
    assert rows(db, bucket) == truth(aw_server, bucket)
    assert [r[0] for r in db.conn.execute("SELECT DISTINCT bucket_id FROM events")] == [bucket]
    assert result.last_event_ts == to_iso(t0 + timedelta(minutes=9, seconds=30))
    server = aw_server.device_id()
    assert db.conn.execute("SELECT head_ts FROM sync_state WHERE server = ? AND bucket_id = ?",
                           (server, bucket)).fetchone()[0] == to_iso(t0 + timedelta(minutes=9))
    assert db.conn.execute("SELECT count(*) FROM buckets WHERE server = ? AND bucket_id = ?",
                           (server, bucket)).fetchone()[0] == 1


def test_it_fetches_nothing_when_the_hint_has_not_moved(aw_server, bucket, env):
    db, client, settings = env
    aw_server.insert(bucket, [ev(now() - timedelta(minutes=3), 10)])
    livepoll.poll(db, client, settings)
    again = livepoll.poll(db, client, settings)
    assert again.counts.fetched == 0


def test_an_older_event_inserted_inside_the_lookback_is_picked_up_by_the_next_poll(aw_server, bucket, env):
    # AW's hint is the end of the newest-*starting* event: inserting an event
    # that starts earlier leaves it unchanged. The lookback count does not.
    db, client, settings = env
    t0 = now() - timedelta(minutes=2)
    aw_server.insert(bucket, [ev(t0 - timedelta(hours=1), 10, app="old"), ev(t0, 10, app="newest")])
    livepoll.poll(db, client, settings)  # the first poll reads the bucket whole
    aw_server.insert(bucket, [ev(t0 + timedelta(seconds=30), 10, app="newer")])
    livepoll.poll(db, client, settings)  # the hint moved: a lookback fetch, and its count
    hint = aw_server.api("GET", "/buckets/").json()[bucket]["last_updated"]
    aw_server.insert(bucket, [ev(t0 + timedelta(seconds=15), 5, app="late")])
    assert aw_server.api("GET", "/buckets/").json()[bucket]["last_updated"] == hint
    result = livepoll.poll(db, client, settings)
    assert result.counts.fetched > 0
    assert rows(db, bucket) == truth(aw_server, bucket)
    assert livepoll.poll(db, client, settings).counts.fetched == 0  # and then idle again


def test_it_never_stores_a_copy_clipped_at_the_window_start(aw_server, bucket, env):
    db, client, settings = env
    t0 = now() - timedelta(hours=2)
    # A long event, then a newer one: the next poll asks from head - lookback,
    # which cuts through the long one.
    aw_server.insert(bucket, [ev(t0, 3600, app="long")])
    livepoll.poll(db, client, settings)
    aw_server.insert(bucket, [ev(t0 + timedelta(minutes=58), 60, app="new")])
    livepoll.poll(db, client, settings)
    aw_server.insert(bucket, [ev(t0 + timedelta(minutes=59, seconds=30), 60, app="newer")])
    livepoll.poll(db, client, settings)
    assert rows(db, bucket) == truth(aw_server, bucket)
    assert {v[0] for v in rows(db, bucket).values()} >= {to_iso(t0)}


def test_a_heartbeat_grown_event_is_stored_once_with_its_true_start(aw_server, bucket, env):
    db, client, settings = env
    t0 = now() - timedelta(minutes=20)
    for i in range(6):
        aw_server.heartbeat(bucket, ev(t0 + timedelta(seconds=5 * i), 0, app="grow"), pulsetime=10)
        livepoll.poll(db, client, settings)
    stored = rows(db, bucket)
    assert len(stored) == 1
    (ts, dur, data), = stored.values()
    assert (ts, dur) == (to_iso(t0), 25.0)


def test_a_reused_id_keeps_the_old_event_in_events_replaced(aw_server, bucket, env):
    db, client, settings = env
    t0 = now() - timedelta(minutes=30)
    aw_server.insert(bucket, [ev(t0, 10, app="first"), ev(t0 + timedelta(minutes=1), 10, app="last")])
    livepoll.poll(db, client, settings)
    last_id = max(rows(db, bucket))
    assert aw_server.api("DELETE", f"/buckets/{bucket}/events/{last_id}").json()["success"] == 1
    aw_server.insert(bucket, [ev(t0 + timedelta(minutes=2), 10, app="reused")])
    assert last_id in truth(aw_server, bucket)  # aw-server-python gave the id again
    livepoll.poll(db, client, settings)
    assert rows(db, bucket) == truth(aw_server, bucket)
    old = db.conn.execute("SELECT timestamp, data FROM events_replaced WHERE bucket_id = ? AND event_id = ?",
                          (bucket, last_id)).fetchall()
    assert old == [(to_iso(t0 + timedelta(minutes=1)), '{"app":"last"}')]


def test_a_new_device_id_never_overwrites_the_old_servers_rows(aw_server, bucket, env):
    db, client, settings = env
    aw_server.insert(bucket, [ev(now() - timedelta(minutes=5), 10)])
    livepoll.poll(db, client, settings)
    # Pretend the stored rows came from another (since reinstalled) server.
    with db.conn:
        db.conn.execute("UPDATE events SET server = 'old-device' WHERE bucket_id = ?", (bucket,))
        db.conn.execute("UPDATE sync_state SET server = 'old-device' WHERE bucket_id = ?", (bucket,))
    livepoll.poll(db, client, settings)
    servers = db.conn.execute("SELECT server, count(*) FROM events WHERE bucket_id = ? GROUP BY server "
                              "ORDER BY server", (bucket,)).fetchall()
    assert sorted(servers) == sorted([("old-device", 1), (aw_server.device_id(), 1)])


def test_history_larger_than_a_page_is_filled_through_gaps(aw_server, bucket, env, monkeypatch):
    db, client, settings = env
    monkeypatch.setattr(history, "PAGE_SIZE", 7)
    # A poll's time for history is wall-clock (5 s): not this test's subject,
    # and a loaded machine may need longer for the nine pages.
    monkeypatch.setattr(livepoll, "GAP_BUDGET_SECONDS", 300.0)
    t0 = now() - timedelta(days=3)
    # Ties at page boundaries and events crossing them, as in real buckets.
    events = [ev(t0 + timedelta(minutes=i // 2), 90 if i % 5 == 0 else 20, n=i) for i in range(60)]
    aw_server.insert(bucket, events)
    result = livepoll.poll(db, client, settings)
    assert result.gaps_left == 0
    assert rows(db, bucket) == truth(aw_server, bucket)


def test_backfill_since_stops_at_the_date_and_resumes_later(aw_server, bucket, env, monkeypatch):
    db, client, settings = env
    monkeypatch.setattr(history, "PAGE_SIZE", 5)
    t0 = now() - timedelta(days=10)
    aw_server.insert(bucket, [ev(t0 + timedelta(days=i), 60, n=i) for i in range(10)])
    report = history.backfill(db, client, settings, since=t0 + timedelta(days=7))
    stored = rows(db, bucket)
    assert report.complete and 0 < len(stored) < 10
    assert min(parse_iso(v[0]) for v in stored.values()) < t0 + timedelta(days=7)
    assert history.backfill(db, client, settings).complete
    assert rows(db, bucket) == truth(aw_server, bucket)


def test_reconcile_picks_up_a_back_dated_event_and_marks_a_deleted_one(aw_server, bucket, env):
    db, client, settings = env
    t0 = now() - timedelta(hours=1)
    aw_server.insert(bucket, [ev(t0 + timedelta(minutes=i), 30, n=i) for i in range(5)])
    livepoll.poll(db, client, settings)
    victim = min(rows(db, bucket))
    aw_server.api("DELETE", f"/buckets/{bucket}/events/{victim}")
    back_dated = now() - timedelta(days=2, hours=3)
    aw_server.insert(bucket, [ev(back_dated, 45, n="late")])
    livepoll.poll(db, client, settings)
    assert to_iso(back_dated) not in {v[0] for v in rows(db, bucket).values()}  # beyond the lookback

    report = reconcile.reconcile(db, client, settings, since=now() - timedelta(days=3))
    assert rows(db, bucket) == truth(aw_server, bucket)
    assert report.totals.inserted == 1 and report.totals.marked_deleted == 1
    kept = db.conn.execute("SELECT deleted_in_aw_at FROM events WHERE bucket_id = ? AND event_id = ?",
                           (bucket, victim)).fetchone()
    assert kept is not None and kept[0] is not None
    assert "1 inserted" in get_meta(db, "reconcile.summary")
    finished = get_meta(db, "reconcile.finished_at")
    assert finished
    # Stopped (the daemon's SIGTERM): not finished, so the next launch runs it again.
    reconcile.reconcile(db, client, settings, since=now() - timedelta(days=3), should_stop=lambda: True)
    assert get_meta(db, "reconcile.finished_at") == finished
    again = reconcile.reconcile(db, client, settings, since=now() - timedelta(days=3))
    assert again.days_differing == 0 and again.totals.changed == 0


def test_reconcile_resolves_events_crossing_midnight_by_id(aw_server, bucket, env):
    db, client, settings = env
    midnight = (now() - timedelta(days=1)).replace(hour=0, minute=0, second=0)
    crossing = ev(midnight - timedelta(minutes=10), 1200, n="crossing")
    aw_server.insert(bucket, [crossing])
    report = reconcile.reconcile(db, client, settings, since=midnight - timedelta(days=1))
    assert rows(db, bucket) == truth(aw_server, bucket)
    (ts, dur, _), = rows(db, bucket).values()
    assert (ts, dur) == (to_iso(midnight - timedelta(minutes=10)), 1200.0)
    assert report.totals.inserted == 1


def test_the_heartbeat_cache_rewrite_keeps_the_overwritten_event(aw_server, bucket, env):
    """aw-server-python's heartbeat cache rewrites the newest row (its api.py heartbeat, a known FIXME)."""
    db, client, settings = env
    t0 = now() - timedelta(minutes=3)
    aw_server.heartbeat(bucket, ev(t0, 5, app="a"), pulsetime=1)
    aw_server.heartbeat(bucket, ev(t0 + timedelta(seconds=10), 5, app="b"), pulsetime=1)
    livepoll.poll(db, client, settings)
    b_id = max(rows(db, bucket))
    aw_server.heartbeat(bucket, ev(t0 - timedelta(seconds=100), 0, app="c"), pulsetime=10)
    aw_server.heartbeat(bucket, ev(t0 - timedelta(seconds=95), 0, app="c"), pulsetime=10)
    rewritten = truth(aw_server, bucket)[b_id]
    assert rewritten[2] == {"app": "c"}  # the server bug, as documented
    livepoll.poll(db, client, settings)
    assert rows(db, bucket) == truth(aw_server, bucket)
    kept = db.conn.execute("SELECT timestamp, data FROM events_replaced WHERE bucket_id = ? AND event_id = ?",
                           (bucket, b_id)).fetchall()
    assert kept == [(to_iso(t0 + timedelta(seconds=10)), '{"app":"b"}')]


def test_events_longer_than_24_h_are_stored_whole_by_polls_and_reconcile(aw_server, bucket, env):
    db, client, settings = env
    t0 = now() - timedelta(hours=40)
    aw_server.insert(bucket, [ev(t0, 30 * 3600, app="long")])
    livepoll.poll(db, client, settings)
    aw_server.insert(bucket, [ev(now() - timedelta(minutes=2), 60, app="new")])
    livepoll.poll(db, client, settings)
    # Back-dated and longer than a day: invisible to any window starting a day after it.
    aw_server.insert(bucket, [ev(t0 - timedelta(days=2), 26 * 3600, app="late-long")])
    report = reconcile.reconcile(db, client, settings, since=t0 - timedelta(days=3))
    assert rows(db, bucket) == truth(aw_server, bucket)
    assert report.totals.inserted == 1 and report.totals.marked_deleted == 0
