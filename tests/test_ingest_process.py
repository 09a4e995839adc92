"""The watcher as a real process against a real aw-server: growth, kills, outages, locks."""

from __future__ import annotations

import itertools
import os
import random
import signal
import sqlite3
import time
from datetime import UTC, datetime, timedelta

import pytest
from support.helpers import meta, start_watcher, stored, wait_for

from lifelog.core.timeutil import parse_iso, to_iso

UTC = UTC
_names = itertools.count()


def new_bucket(aw, label):
    name = f"test-ingest-{label}-{os.getpid()}-{next(_names)}"
    aw.create_bucket(name)
    return name


def held(db_path, bucket_id):
    conn = sqlite3.connect(db_path, timeout=15)
    try:
        return conn.execute("SELECT count(*) FROM events WHERE bucket_id = ? AND deleted_in_aw_at IS NULL",
                            (bucket_id,)).fetchone()[0]
    except sqlite3.OperationalError:  # no schema yet: nothing held
        return 0
    finally:
        conn.close()



def truth(aw, bucket_id):
    return {e["id"]: (to_iso(parse_iso(e["timestamp"])), e["duration"], e["data"]) for e in aw.events(bucket_id)}


def watcher(spawn, db_path, aw, bucket_id):
    return start_watcher(spawn, db_path, aw.url, buckets=bucket_id)


def now():
    return datetime.now(UTC).replace(microsecond=0)


def test_it_stores_an_event_growing_through_heartbeats_once_with_its_final_duration(
        aw_server, db_path, spawn):
    bucket = new_bucket(aw_server, "grow")
    watcher(spawn, db_path, aw_server, bucket)
    wait_for(lambda: meta(db_path, "watcher.state") == "running", what="state running")
    t0 = now() - timedelta(minutes=2)
    for i in range(40):  # 4 s of heartbeats while the watcher polls every 0.2 s
        aw_server.heartbeat(bucket, {"timestamp": (t0 + timedelta(seconds=i)).isoformat(), "duration": 0,
                                     "data": {"app": "editor"}}, pulsetime=5)
        time.sleep(0.1)
    final = truth(aw_server, bucket)
    assert len(final) == 1 and list(final.values())[0][1] == 39.0
    wait_for(lambda: stored(db_path, bucket) == final, what="the final duration stored")
    # Recorded by the heartbeat that follows the poll's commit, a moment later.
    end = to_iso(t0 + timedelta(seconds=39))
    wait_for(lambda: meta(db_path, "watcher.last_event_ts") == end, what="the newest end recorded")


@pytest.mark.slow
def test_sigkill_at_random_moments_during_a_20000_event_ingest_loses_and_doubles_nothing(
        aw_server, db_path, spawn):
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    bucket = new_bucket(aw_server, "kill")
    t0 = now() - timedelta(hours=8)
    events = [{"timestamp": (t0 + timedelta(seconds=i)).isoformat(), "duration": 0.9 if i % 7 else 3.5,
               "data": {"app": f"a{i % 13}", "title": f"t{i}"}} for i in range(20000)]
    # A big history first, then new events keep arriving between the lives.
    for k in range(0, 19000, 4750):
        aw_server.insert(bucket, events[k:k + 4750])
    arriving = [events[k:k + 100] for k in range(19000, 20000, 100)]
    lives, mid_ingest = 0, 0
    while lives < 14 and (arriving or mid_ingest < 3):
        if arriving:
            aw_server.insert(bucket, arriving.pop(0))
        before = held(db_path, bucket)
        total = aw_server.api("GET", f"/buckets/{bucket}/events/count").json()
        p = watcher(spawn, db_path, aw_server, bucket)
        # Kill at a random moment once this life has made progress (so the kill
        # lands mid-ingest even on a loaded machine, where a fixed delay may
        # fall before the first page or after the last).
        wait_for(lambda: held(db_path, bucket) > before or before >= total or p.poll() is not None, timeout=60,
                 what=f"progress in life {lives} (seed {seed})")
        time.sleep(rng.uniform(0.0, 0.3))  # the random moment itself, not synchronisation
        if lives % 3 == 2:
            # SIGTERM mid-ingest: the current page is finished or abandoned, exit 0 at once.
            p.send_signal(signal.SIGTERM)
            assert p.wait(5) == 0, f"seed {seed}"
        else:
            p.kill()
            p.wait(10)
        lives += 1
        after = held(db_path, bucket)
        mid_ingest += 0 < after < aw_server.api("GET", f"/buckets/{bucket}/events/count").json()
    assert mid_ingest >= 3, f"only {mid_ingest} kills landed mid-ingest (seed {seed})"
    p = watcher(spawn, db_path, aw_server, bucket)
    expected = truth(aw_server, bucket)
    assert len(expected) == 20000
    wait_for(lambda: len(stored(db_path, bucket)) >= 20000, timeout=90, what=f"20000 rows (seed {seed})")
    p.send_signal(signal.SIGTERM)
    assert p.wait(10) == 0
    assert stored(db_path, bucket) == expected, f"seed {seed}"
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT count(*) FROM events WHERE bucket_id = ?", (bucket,)).fetchone()[0] == 20000
    assert conn.execute("SELECT count(*) FROM sync_gaps WHERE bucket_id = ?", (bucket,)).fetchone()[0] == 0
    conn.close()


def test_aw_stopped_and_started_under_a_running_watcher_it_heartbeats_reports_and_catches_up(
        fresh_aw, db_path, spawn):
    bucket = new_bucket(fresh_aw, "outage")
    t0 = now() - timedelta(minutes=30)
    fresh_aw.insert(bucket, [{"timestamp": (t0 + timedelta(minutes=i)).isoformat(), "duration": 30,
                              "data": {"n": i}} for i in range(5)])
    p = watcher(spawn, db_path, fresh_aw, bucket)
    wait_for(lambda: len(stored(db_path, bucket)) == 5, what="first events")
    fresh_aw.stop()
    wait_for(lambda: meta(db_path, "watcher.last_error"), what="the outage reported")
    during = parse_iso(meta(db_path, "watcher.heartbeat_at"))
    wait_for(lambda: parse_iso(meta(db_path, "watcher.heartbeat_at")) > during, what="heartbeats while AW is down")
    fresh_aw.start()
    fresh_aw.insert(bucket, [{"timestamp": (t0 + timedelta(minutes=10 + i)).isoformat(), "duration": 30,
                              "data": {"n": 10 + i}} for i in range(5)])
    expected = truth(fresh_aw, bucket)
    wait_for(lambda: stored(db_path, bucket) == expected, what="caught up after the outage")
    wait_for(lambda: meta(db_path, "watcher.last_error") == "", what="the error cleared")
    assert p.poll() is None and meta(db_path, "watcher.pid") == str(p.pid)


def test_a_write_lock_held_for_3_s_makes_the_watcher_wait_not_crash(aw_server, db_path, spawn):
    bucket = new_bucket(aw_server, "lock")
    t0 = now() - timedelta(minutes=20)
    p = watcher(spawn, db_path, aw_server, bucket)
    wait_for(lambda: meta(db_path, "watcher.state") == "running", what="state running")
    user = sqlite3.connect(db_path, isolation_level=None)
    user.execute("BEGIN IMMEDIATE")  # a user's sqlite3 shell holding the write lock
    try:
        aw_server.insert(bucket, [{"timestamp": (t0 + timedelta(minutes=i)).isoformat(), "duration": 10,
                                   "data": {"n": i}} for i in range(3)])
        time.sleep(3)  # the lock is held for 3 s: that is the scenario, not a wait for a result
        assert stored(db_path, bucket) == {}
    finally:
        user.execute("COMMIT")
        user.close()
    expected = truth(aw_server, bucket)
    wait_for(lambda: stored(db_path, bucket) == expected, what="events after the lock")
    assert p.poll() is None
    assert meta(db_path, "watcher.pid") == str(p.pid)
    wait_for(lambda: meta(db_path, "watcher.last_error") == "", what="no error left")


def test_backfill_beside_a_running_watcher_doubles_nothing(aw_server, db_path, spawn, lifelog):
    bucket = new_bucket(aw_server, "beside")
    t0 = now() - timedelta(days=1)
    for k in range(0, 12000, 4000):
        aw_server.insert(bucket, [{"timestamp": (t0 + timedelta(seconds=i)).isoformat(), "duration": 0.5,
                                   "data": {"i": i}} for i in range(k, k + 4000)])
    p = watcher(spawn, db_path, aw_server, bucket)
    r = lifelog("backfill", "--db", str(db_path), env=dict(os.environ, LIFELOG_AW_URL=aw_server.url,
                                                             LIFELOG_BUCKETS=bucket))
    assert r.code == 0, r.err
    expected = truth(aw_server, bucket)
    wait_for(lambda: stored(db_path, bucket) == expected, timeout=60, what="both done")
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT count(*) FROM events WHERE bucket_id = ?", (bucket,)).fetchone()[0] == 12000
    conn.close()
    assert p.poll() is None
