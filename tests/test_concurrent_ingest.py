"""Every writer of events at once, as real processes against a real aw-server:
a live `lifelog watcher`, `lifelog backfill` and `lifelog reconcile`, while a
feeder keeps inserting events and heartbeating (growing the newest event in
place), and history keeps turning up with old timestamps. Afterwards LifeLog
holds what AW holds, each event once (SPEC section 6)."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import threading
import uuid
from datetime import timedelta

from support.helpers import FAST, stored, wait_for

from lifelog.core.timeutil import parse_iso, to_iso, utcnow


def truth(aw, bucket_id) -> dict:
    """What AW holds for a bucket, as `stored` gives LifeLog's copy."""
    return {e["id"]: (to_iso(parse_iso(e["timestamp"])), e["duration"], e["data"]) for e in aw.events(bucket_id)}


def history(start, count: int, step: float, label: str) -> list[dict]:
    return [{"timestamp": to_iso(start + timedelta(seconds=i * step)), "duration": round(step * 0.6, 3),
             "data": {"app": label, "title": f"{label} {i}"}} for i in range(count)]


def plant(aw, bucket_id: str, events: list[dict]) -> None:
    for k in range(0, len(events), 2000):
        aw.insert(bucket_id, events[k:k + 2000])


class Feeder(threading.Thread):
    """Until stopped, every 30 ms: a new event in one bucket, and a heartbeat in
    another (the same status for 40 beats, so it grows one event in place,
    then the other status: a new event), as AW's watchers send them."""

    def __init__(self, aw, inserted: str, heartbeated: str):
        super().__init__(daemon=True)
        self.aw, self.inserted, self.heartbeated = aw, inserted, heartbeated
        self.stop = threading.Event()
        self.beats = 0
        self.errors: list[str] = []

    def run(self) -> None:
        while not self.stop.wait(0.03):
            try:
                now = utcnow()
                self.aw.insert(self.inserted, [{"timestamp": to_iso(now), "duration": 0.02,
                                                "data": {"app": "live", "title": f"live {self.beats}"}}])
                status = "not-afk" if self.beats // 40 % 2 == 0 else "afk"
                self.aw.heartbeat(self.heartbeated, {"timestamp": to_iso(now), "duration": 0,
                                                     "data": {"status": status}}, pulsetime=1)
                self.beats += 1
            except Exception as e:  # the final comparison reports what it cost
                self.errors.append(repr(e))


def rows(db_path, bucket_id) -> tuple[int, int]:
    """(rows, distinct event ids) of a bucket, rows marked deleted included."""
    conn = sqlite3.connect(db_path, timeout=15)
    try:
        return conn.execute("SELECT count(*), count(DISTINCT event_id) FROM events WHERE bucket_id = ?",
                            (bucket_id,)).fetchone()
    finally:
        conn.close()


def gaps(db_path, buckets) -> int:
    conn = sqlite3.connect(db_path, timeout=15)
    try:
        return conn.execute(f"SELECT count(*) FROM sync_gaps WHERE bucket_id IN ({','.join('?' * len(buckets))})",
                            buckets).fetchone()[0]
    finally:
        conn.close()


def test_backfill_and_reconcile_beside_a_live_watcher_while_events_keep_arriving_lose_and_double_nothing(
        aw_server, db_path, spawn):
    tag = uuid.uuid4().hex[:8]
    live = f"test-conc-window-{tag}"  # events inserted live, history planted late
    afk = f"test-conc-afk-{tag}"  # heartbeats live, history planted late
    big = f"test-conc-big-{tag}"  # a long history the watcher is still working through
    aw_server.create_bucket(live)
    aw_server.create_bucket(afk, "afkstatus")
    now = utcnow()
    plant(aw_server, live, history(now - timedelta(days=3), 1500, 97.3, "old"))
    plant(aw_server, afk, [dict(e, data={"status": "afk" if i % 3 else "not-afk"})
                           for i, e in enumerate(history(now - timedelta(days=3, hours=5), 1500, 113.1, "x"))])
    # AW answers a whole page of a long history slowly on a loaded machine: FAST's 1 s would fail a fetch.
    env = dict(os.environ, **FAST)
    env.update(LIFELOG_AW_URL=aw_server.url, LIFELOG_DB_PATH=str(db_path), LIFELOG_BUCKETS=f"test-conc-*-{tag}",
               LIFELOG_AW_TIMEOUT_SECONDS="10")
    watcher = spawn.lifelog("watcher", "--db", str(db_path), env=env, log="watcher")
    wait_for(lambda: len(stored(db_path, live)) == 1500 and len(stored(db_path, afk)) == 1500
             and gaps(db_path, [live, afk]) == 0, timeout=60, what="the first two buckets' history stored")
    # History with old timestamps (aw-sync, an import), older than each bucket's
    # newest event: behind the watcher's lookback, so the reconcile brings it in.
    plant(aw_server, live, history(now - timedelta(days=2, hours=12), 400, 61.1, "late"))
    plant(aw_server, afk, [dict(e, data={"status": "not-afk"})
                           for e in history(now - timedelta(days=2, hours=2), 300, 37.9, "late")])
    feeder = Feeder(aw_server, live, afk)
    feeder.start()
    try:
        wait_for(lambda: feeder.beats >= 20, what="the feeder under way")
        # A new bucket with a long history appears while the watcher is held up
        # (stopped, as by a busy machine), so that it, the backfill and the
        # reconcile all start on it together when it goes on.
        watcher.send_signal(signal.SIGSTOP)
        aw_server.create_bucket(big)
        plant(aw_server, big, history(now - timedelta(days=6), 12000, 41.7, "big"))
        backfill = spawn.lifelog("backfill", "--db", str(db_path), env=env, capture=True)
        reconcile = spawn.lifelog("reconcile", "--db", str(db_path), env=env, capture=True)
        watcher.send_signal(signal.SIGCONT)
        outs = {}
        for p in (backfill, reconcile):
            outs[p.args[3]], err = p.communicate(timeout=60)
            assert p.returncode == 0, (p.args, outs[p.args[3]], err)
        done = feeder.beats
        wait_for(lambda: feeder.beats >= done + 30, timeout=30, what="events arriving after both finished")
    finally:
        feeder.stop.set()
        feeder.join(10)
    assert feeder.errors == []
    for bucket in (live, afk, big):
        expected = truth(aw_server, bucket)
        wait_for(lambda: stored(db_path, bucket) == expected, timeout=60, what=f"{bucket} caught up")
        assert rows(db_path, bucket) == (len(expected), len(expected))  # none doubled, none marked deleted
    assert len(truth(aw_server, live)) == 1500 + 400 + feeder.beats
    # The late history was the reconcile's to bring in (the watcher's lookback is minutes).
    # At least the planted events: the reconcile may also store a live event
    # the watcher has not polled yet (it then reports one more inserted, or an
    # event grown since as updated); what is stored was compared exactly above.
    said = {line.split(":")[0]: line for line in outs["reconcile"].splitlines()}
    inserted = {b: int(re.search(r"; (\d+) inserted,", said[b]).group(1)) for b in (live, afk)}
    assert inserted[live] >= 400 and inserted[afk] >= 300, outs["reconcile"]
    assert gaps(db_path, [live, afk, big]) == 0
    assert watcher.poll() is None
