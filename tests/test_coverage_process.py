"""`lifelog coverage` from real ingestion: a real aw-server with afk and window
buckets as AW's own watchers fill them, a real watcher and watchdog, a real
AW outage recorded by `lifelog health`, and a window watcher gone quiet
recorded `silent` by the watchdog; the coverage then names both causes.

Coverage counts whole minutes (`--slot-minutes` is a whole number, 1 at
least), and a test has well under one, so the events are written with
timestamps in the recent past, laid out around what the records say, which
carry real times:

    a ............ y ........................ b ................ m (until)
    | afk not-afk, | afk not-afk, no window   |  the same        | now: afk heartbeats
    | window       | gap / source_silent      |  gap / aw_down   | every 0.2 s, live
    active

- The window watcher's last event ends at `y`, R - 15 s before the test's
  start (R = source_silence_minutes): its source is live at first, and once
  the afk events (one not-afk event, grown by heartbeats in real time) hold
  more than R of not-afk time after `y`, a watchdog pass records it silent,
  about 15 s into the test, after the outage. Coverage counts the silence
  from R before that row: back to about `y`, so every gap minute after `y`
  meets it.
- AW is stopped and `lifelog health` records it unhealthy: LifeLog's first
  check, so it speaks for the `aw_health_check_interval_minutes` before it
  (back to `b`) and up to the healthy check after the restart. aw_down comes
  first among the causes, so the gap minutes from `b` on are aw_down.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
import time
from datetime import UTC, datetime

from support.helpers import FAST, meta, stored, wait_for

from lifelog.core import keys
from lifelog.core.timeutil import epoch_of, to_iso

SILENCE = 300.0  # source_silence_minutes 5, in seconds
REACH = 120.0  # aw_health_check_interval_minutes 2, in seconds: how far a check speaks
BEAT = 0.2  # the afk feeder's period


def iso(t: float) -> str:
    return to_iso(datetime.fromtimestamp(t, UTC))


def local(t: float) -> str:
    """A time as `lifelog coverage` prints it with TZ=UTC."""
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


def minute_floor(t: float) -> float:
    return math.floor(t / 60) * 60


def minute_ceil(t: float) -> float:
    return math.ceil(t / 60) * 60


class AfkFeeder(threading.Thread):
    """aw-watcher-afk: a not-afk heartbeat every BEAT s, growing one event; its
    heartbeats fail while AW is down, and go on after."""

    def __init__(self, aw, bucket_id: str):
        super().__init__(daemon=True)
        self.aw, self.bucket_id, self.stop, self.failed = aw, bucket_id, threading.Event(), 0

    def run(self) -> None:
        while not self.stop.wait(BEAT):
            try:
                self.aw.heartbeat(self.bucket_id, {"timestamp": iso(time.time()), "duration": 0,
                                                   "data": {"status": "not-afk"}}, pulsetime=BEAT * 5)
            except Exception:  # AW is down: this beat is lost, as aw-watcher-afk's would be
                self.failed += 1


def source_log(db_path, bucket_id) -> list[tuple[str, str]]:
    conn = sqlite3.connect(db_path, timeout=15)
    try:
        return conn.execute("SELECT at, state FROM source_log WHERE bucket_id = ? ORDER BY id", (bucket_id,)).fetchall()
    except sqlite3.OperationalError:  # no schema yet
        return []
    finally:
        conn.close()


def health_rows(db_path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(db_path, timeout=15)
    try:
        return conn.execute("SELECT checked_at, status FROM health_checks ORDER BY id").fetchall()
    finally:
        conn.close()


def test_coverage_names_an_aw_outage_and_a_silent_window_watcher_from_real_records(
        fresh_aw, db_path, spawn, lifelog):
    start = time.time()
    host = fresh_aw.api("GET", "/info").json()["hostname"]
    afk, window = f"aw-watcher-afk_{host}", f"aw-watcher-window_{host}"
    fresh_aw.create_bucket(afk, "afkstatus", host)
    fresh_aw.create_bucket(window, "currentwindow", host)
    y = math.floor(start) + 15 - SILENCE  # whole seconds: the minute of y holds window data
    a = minute_floor(y) - 60
    until = minute_floor(start)
    # The window watcher's history: an event every 5 s, the last one ending at y.
    t, events = a, []
    while t < y:
        events.append({"timestamp": iso(t), "duration": round(min(5.0, y - t), 3),
                       "data": {"app": "Terminal", "title": f"vim {len(events)}"}})
        t += 5
    fresh_aw.insert(window, events)
    # The afk watcher's: not-afk from `a` on, grown by heartbeats from now on.
    fresh_aw.insert(afk, [{"timestamp": iso(a), "duration": round(time.time() - a, 3),
                           "data": {"status": "not-afk"}}])
    feeder = AfkFeeder(fresh_aw, afk)
    feeder.start()
    env = dict(os.environ, **FAST)
    env.update(LIFELOG_AW_URL=fresh_aw.url, LIFELOG_DB_PATH=str(db_path), LIFELOG_BUCKETS="aw-watcher-*",
               LIFELOG_SOURCE_SILENCE_MINUTES=str(SILENCE / 60),
               LIFELOG_AW_HEALTH_CHECK_INTERVAL_MINUTES=str(REACH / 60), TZ="UTC")
    try:
        spawn.lifelog("watchdog", "--db", str(db_path), env=env, log="watchdog")  # it starts the watcher
        history = {e["id"]: e for e in fresh_aw.events(window)}
        wait_for(lambda: len(stored(db_path, window)) == len(history) and source_log(db_path, window),
                 timeout=30, what="the window history stored and its source judged")

        fresh_aw.stop()
        r = lifelog("health", "--db", str(db_path), env=env)
        assert r.code == 2, (r.out, r.err)  # unhealthy
        wait_for(lambda: meta(db_path, keys.source_state(window)) == "unjudged", timeout=30,
                 what="the sources unjudged while AW is down")
        fresh_aw.start()
        r = lifelog("health", "--db", str(db_path), env=env)
        assert r.code == 0, (r.out, r.err)
        wait_for(lambda: meta(db_path, keys.source_state(window)) == "silent", timeout=60,
                 what="the window source recorded silent")
    finally:
        feeder.stop.set()
        feeder.join(10)
    assert feeder.failed > 0  # the outage cost the afk watcher some beats

    checks = health_rows(db_path)
    assert [s for _, s in checks] == ["unhealthy", "healthy"]
    outage = epoch_of(checks[0][0])
    b = minute_floor(outage - REACH)  # the first minute the failing check speaks for
    silent_at = [epoch_of(at) for at, state in source_log(db_path, window) if state == "silent"]
    assert silent_at and silent_at[0] - SILENCE < minute_ceil(y) + 60, "recorded silent too late to meet the gap"
    assert minute_ceil(y) < b < until, (y, b, until)  # both stretches are whole minutes in the range

    r = lifelog("coverage", "--db", str(db_path), "--json", "--slot-minutes", "1",
                "--since", local(a), "--until", local(until), env=env)
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["slot_minutes"] == 1 and doc["since"] == local(a) and doc["until"] == local(until)

    def stretch(lo, hi, kind, cause):
        return {"host": host, "start": local(lo), "end": local(hi), "class": kind, "cause": cause}

    assert doc["stretches"] == [stretch(a, minute_ceil(y), "active", None),
                                stretch(minute_ceil(y), b, "gap", "source_silent"),
                                stretch(b, until, "gap", "aw_down")]
