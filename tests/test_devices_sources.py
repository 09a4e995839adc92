"""Two devices that list the same bucket ids (SPEC sections 10 and 14): two
real aw-servers on this machine, so one host name, so `aw-watcher-window_<host>`
on both. The desktop's window watcher records, the laptop's went quiet while
its user was active. LifeLog's own watcher follows both, real `watchdog
--once` passes judge them, and each device keeps its own state, its own
source_log history, its own `sources` row, metrics label and coverage cause;
a bucket gone from one device takes only that device's keys with it."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from datetime import timedelta
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from support.helpers import FAST, meta, wait_for

from lifelog.core import keys
from lifelog.core.timeutil import to_iso, utcnow

SILENCE_MINUTES = 4  # the live sources stay live through the test, even on a loaded machine
LONG = 90.0  # wait bound for the watcher and the passes on a loaded 2-core machine


def source_log(db_path: Path, bucket_id: str) -> list[tuple]:
    conn = sqlite3.connect(db_path, timeout=15)
    try:
        return conn.execute("SELECT device, server, state FROM source_log WHERE bucket_id = ? ORDER BY id",
                            (bucket_id,)).fetchall()
    finally:
        conn.close()


def deleted_in_aw(db_path: Path, server: str, bucket_id: str) -> bool:
    conn = sqlite3.connect(db_path, timeout=15)
    try:
        row = conn.execute("SELECT deleted_in_aw_at FROM buckets WHERE server = ? AND bucket_id = ?",
                           (server, bucket_id)).fetchone()
        return row is not None and row[0] is not None
    finally:
        conn.close()


def test_two_devices_with_one_bucket_id_are_two_sources(aw_servers, db_path, spawn, lifelog, tmp_path):
    desk, lap = aw_servers(2)
    host = desk.api("GET", "/info").json()["hostname"]
    assert lap.api("GET", "/info").json()["hostname"] == host  # the collision this test is about
    afk, window = f"aw-watcher-afk_{host}", f"aw-watcher-window_{host}"
    t0 = utcnow()
    start = to_iso(t0 - timedelta(minutes=10))
    for aw in (desk, lap):
        aw.create_bucket(afk, "afkstatus", host)
        aw.create_bucket(window, "currentwindow", host)
        # Active for the last 10 minutes on both machines.
        aw.insert(afk, [{"timestamp": start, "duration": 600.0, "data": {"status": "not-afk"}}])
    desk.insert(window, [{"timestamp": start, "duration": 600.0, "data": {"app": "code", "title": "a"}}])
    # The laptop's window watcher stopped 9 minutes ago: silent (9 min > SILENCE_MINUTES of not-afk).
    lap.insert(window, [{"timestamp": start, "duration": 60.0, "data": {"app": "code", "title": "b"}}])
    desk_id, lap_id = desk.device_id(), lap.device_id()
    metrics_file = tmp_path / "lifelog.prom"
    env = dict(os.environ, **FAST, LIFELOG_DB_PATH=str(db_path),
               LIFELOG_DEVICES=json.dumps({"desk": {"url": desk.url}, "lap": {"url": lap.url}}),
               LIFELOG_SOURCE_SILENCE_MINUTES=str(SILENCE_MINUTES), LIFELOG_METRICS_FILE=str(metrics_file))
    w = spawn.lifelog("watcher", env=env, log="watcher")
    wait_for(lambda: meta(db_path, "device.lap.last_poll_ok_at") and meta(db_path, "device.desk.last_poll_ok_at"),
             timeout=LONG, what="both devices polled")

    # The desktop is the first device: the plain keys. The laptop's name theirs.
    desk_state, lap_state = keys.source_state(window), keys.source_state(window, "lap")

    def judged() -> bool:
        lifelog("watchdog", "--once", env=env)
        return meta(db_path, desk_state) == "live" and meta(db_path, lap_state) == "silent"

    wait_for(judged, timeout=LONG, interval=0.2, what="the desktop's window live and the laptop's silent")
    lap_since = meta(db_path, keys.source_since(window, "lap"))
    desk_since = meta(db_path, keys.source_since(window))
    # More passes change nothing: each device keeps its own state (before, the
    # second device's judgement overwrote the first's, which then logged a change every pass).
    for _ in range(2):
        assert lifelog("watchdog", "--once", env=env).code == 0
    assert (meta(db_path, desk_state), meta(db_path, lap_state)) == ("live", "silent")
    assert meta(db_path, keys.source_since(window, "lap")) == lap_since
    assert meta(db_path, keys.source_since(window)) == desk_since
    assert meta(db_path, keys.source_state(afk)) == meta(db_path, keys.source_state(afk, "lap")) == "live"
    # Two histories, one row each (the first judgement), each with its own device and server.
    assert source_log(db_path, window) == [("desk", desk_id, "live"), ("lap", lap_id, "silent")]
    assert sorted(source_log(db_path, afk)) == [("desk", desk_id, "live"), ("lap", lap_id, "live")]

    # `lifelog sources`: a row per (device, bucket), each with its own state and since; exit 1 (one silent).
    r = lifelog("sources", "--json", env=env)
    assert r.code == 1, r.err
    rows = {(s["device"], s["bucket_id"]): s for s in json.loads(r.out)}
    assert {k: s["state"] for k, s in rows.items()} == {
        ("desk", afk): "live", ("desk", window): "live", ("lap", afk): "live", ("lap", window): "silent"}
    assert rows[("lap", window)]["since"] == lap_since and rows[("desk", window)]["since"] == desk_since

    # Status names the silent one's device; the metrics file labels each source with its own.
    r = lifelog("status", "--json", env=env)
    (component,) = [c for c in json.loads(r.out)["components"] if c["name"] == "sources"]
    assert component["level"] == "WARNING" and component["reason"].startswith(f"{window} of lap silent for ")
    families = {f.name: f for f in text_string_to_metric_families(metrics_file.read_text())}
    silent = {(s.labels["device"], s.labels["bucket"]): s.value for s in families["lifelog_source_silent"].samples}
    assert silent == {("desk", afk): 0.0, ("desk", window): 0.0, ("lap", afk): 0.0, ("lap", window): 1.0}

    # Coverage per device from its own history: the laptop's gap is the silent
    # window watcher's; the desktop, recording, has no gap at all.
    since = (t0 - timedelta(minutes=12)).astimezone().isoformat(timespec="minutes")
    r = lifelog("coverage", "--json", "--since", since, "--slot-minutes", "1", env=env)
    assert r.code == 0, r.err
    stretches = json.loads(r.out)["stretches"]
    lap_gaps = [s["cause"] for s in stretches if s["device"] == "lap" and s["class"] == "gap"]
    assert "source_silent" in lap_gaps, stretches
    assert not [s for s in stretches if s["device"] == "desk" and s["class"] == "gap"], stretches
    assert not [s for s in stretches if s["device"] == "desk" and s["cause"] == "source_silent"], stretches

    # The laptop's window bucket is deleted in its AW: its keys go, the desktop's stay.
    r = lap.api("DELETE", f"/buckets/{window}", params={"force": "1"})
    assert r.status_code == 200, r.text
    wait_for(lambda: deleted_in_aw(db_path, lap_id, window), timeout=LONG, what="the deletion seen by the watcher")

    def dropped() -> bool:
        lifelog("watchdog", "--once", env=env)
        return meta(db_path, lap_state) is None

    wait_for(dropped, timeout=LONG, interval=0.2, what="the laptop's window source dropped")
    assert all(meta(db_path, keys.source_key(window, field, "lap")) is None for field in keys.SOURCE_FIELDS)
    assert meta(db_path, desk_state) == "live" and meta(db_path, keys.source_since(window)) == desk_since
    assert meta(db_path, keys.source_state(afk, "lap")) == "live"
    w.send_signal(signal.SIGTERM)
    assert w.wait(30) == 0
