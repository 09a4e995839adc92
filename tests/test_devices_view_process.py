"""Several devices seen as a person sees them (SPEC section 14), through the
real commands: `status`, `sources` and the metrics file over two real
aw-servers followed by LifeLog's own watcher; `coverage` (JSON, `--device`,
the HTML page in headless Chromium) over a history planted into a database
made by `lifelog init` (the exact hours a picture needs cannot wait for real
days to pass; the per-device rows and meta are what the watcher writes)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from PIL import ImageColor
from prometheus_client.parser import text_string_to_metric_families
from support.helpers import FAST, meta, wait_for
from test_coverage_cli import rgb_rows, runs, screenshot

from lifelog.core.timeutil import to_iso, utcnow
from lifelog.coverage.html import CAUSE_COLOUR, CLASS_COLOUR
from lifelog.coverage.model import Cause, Kind, local_midnight


def env_for(db_path: Path, devices: dict, **extra: str) -> dict[str, str]:
    return dict(os.environ, **FAST, LIFELOG_DB_PATH=str(db_path), LIFELOG_DEVICES=json.dumps(devices), **extra)


def feed(aw, bucket_id: str, n: int, data: dict) -> None:
    start = utcnow() - timedelta(seconds=30 * (n + 1))
    aw.insert(bucket_id, [{"timestamp": to_iso(start + timedelta(seconds=30 * i)), "duration": 20.0, "data": data}
                          for i in range(n)])


def test_status_sources_and_metrics_show_each_device(aw_servers, db_path, spawn, lifelog, tmp_path):
    desk, lap = aw_servers(2)
    host = desk.api("GET", "/info").json()["hostname"]
    desk_id = desk.device_id()
    # Both servers run on this machine, so one host name: the buckets are named per device.
    for aw, name in ((desk, "desk"), (lap, "lap")):
        aw.create_bucket(f"aw-watcher-window_{name}", "currentwindow", host)
        aw.create_bucket(f"aw-watcher-afk_{name}", "afkstatus", host)
        feed(aw, f"aw-watcher-window_{name}", 5, {"app": "Terminal", "title": "vim"})
        feed(aw, f"aw-watcher-afk_{name}", 5, {"status": "not-afk"})
    # aw-sync's copy, on the laptop, of the desktop's window bucket (named after its device_id).
    copy = f"aw-watcher-window_desk-synced-from-{desk_id}"
    lap.create_bucket(copy, "currentwindow", "desk-elsewhere")
    feed(lap, copy, 3, {"app": "x", "title": "copied"})
    metrics_file = tmp_path / "lifelog.prom"
    env = env_for(db_path, {"desk": {"url": desk.url}, "lap": {"url": lap.url, "expect": "sometimes"}},
                  LIFELOG_METRICS_FILE=str(metrics_file))
    w = spawn.lifelog("watcher", env=env, log="watcher")
    wait_for(lambda: meta(db_path, "device.lap.last_poll_ok_at") and meta(db_path, "device.desk.last_poll_ok_at"),
             what="both devices polled")

    r = lifelog("status", "--json", env=env)
    doc = json.loads(r.out)
    (devices,) = [c for c in doc["components"] if c["name"] == "devices"]
    assert devices["level"] == "OK" and devices["reason"] == "desk answers; lap answers"
    assert [(d["name"], d["level"], d["reason"]) for d in devices["devices"]] == [
        ("desk", "OK", "desk answers"), ("lap", "OK", "lap answers")]

    r = lifelog("sources", "--json", env=env)
    rows = {s["bucket_id"]: s for s in json.loads(r.out)}
    assert {b: s["device"] for b, s in rows.items()} == {
        "aw-watcher-window_desk": "desk", "aw-watcher-afk_desk": "desk",
        "aw-watcher-window_lap": "lap", "aw-watcher-afk_lap": "lap", copy: "lap"}
    assert (rows[copy]["state"], rows[copy]["reason"]) == ("copy", "followed directly as desk")
    assert rows["aw-watcher-window_lap"]["state"] == "live"
    # Nothing of the copy is stored: the desktop's own bucket is.
    conn = sqlite3.connect(db_path, timeout=15)
    try:
        assert conn.execute("SELECT count(*) FROM events WHERE bucket_id = ?", (copy,)).fetchone() == (0,)
    finally:
        conn.close()
    r = lifelog("sources", env=dict(env, COLUMNS="200"))
    header = r.out.splitlines()[0].split()
    assert header[:2] == ["DEVICE", "BUCKET"], r.out
    assert any(line.startswith("lap ") and copy in line and "followed directly as desk" in line
               for line in r.out.splitlines()), r.out

    # The laptop goes away: a sometimes device, so OK, with its reason; its sources are not judged.
    lap.stop()
    wait_for(lambda: meta(db_path, "device.lap.reachable") == "no", what="the laptop seen away")
    # A watchdog pass records the sources (the metrics file labels what passes recorded).
    def recorded() -> bool:
        lifelog("watchdog", "--once", env=env)
        # The laptop is not the first device: its keys name it (lifelog.core.keys).
        return meta(db_path, "source.aw-watcher-window_lap@lap.state") is not None

    wait_for(recorded, what="a watchdog pass that records the sources")
    r = lifelog("status", "--json", env=env)
    (devices,) = [c for c in json.loads(r.out)["components"] if c["name"] == "devices"]
    assert devices["level"] == "OK"
    lap_line = devices["devices"][1]
    assert lap_line["name"] == "lap" and lap_line["reason"].startswith("lap not seen for ")
    assert lap_line["reason"].endswith(": off or away")
    r = lifelog("status", env=dict(env, COLUMNS="100"))
    lines = r.out.splitlines()
    assert any(line.startswith("  devices   OK       2 devices") for line in lines), r.out
    assert any(line.startswith("    desk    OK       desk answers") for line in lines), r.out
    assert any(line.startswith("    lap     OK       lap not seen for") for line in lines), r.out
    assert all(len(line) <= 100 for line in lines if "database" not in line)
    r = lifelog("sources", "--json", env=env)
    rows = {s["bucket_id"]: s for s in json.loads(r.out)}
    assert rows["aw-watcher-window_lap"]["state"] == "unjudged"
    assert "lap does not answer" in rows["aw-watcher-window_lap"]["reason"]
    assert rows["aw-watcher-window_desk"]["state"] == "live"

    # The metrics file (written by that status): a device up each, the source labels with the device.
    families = {f.name: f for f in text_string_to_metric_families(metrics_file.read_text())}
    assert {s.labels["device"]: s.value for s in families["lifelog_device_up"].samples} == {"desk": 1.0, "lap": 0.0}
    last = {s.labels["device"] for s in families["lifelog_device_last_event_timestamp_seconds"].samples}
    assert last == {"desk", "lap"}
    labelled = {s.labels["bucket"]: s.labels["device"] for s in families["lifelog_source_silent"].samples}
    assert labelled.get("aw-watcher-window_lap") == "lap" and labelled.get("aw-watcher-window_desk") == "desk"
    w.send_signal(signal.SIGTERM)
    assert w.wait(30) == 0


# -- coverage -----------------------------------------------------------------------------------------

DEVICES = {"desk": {"url": "http://127.0.0.1:5600"}, "lap": {"url": "http://lap.lan:5600", "expect": "sometimes"}}


def iso(t: float) -> str:
    return to_iso(datetime.fromtimestamp(t, UTC))


def local(t: float) -> str:
    return datetime.fromtimestamp(t).astimezone().isoformat(timespec="seconds")


def plant_devices(db_path: Path, lifelog) -> tuple[float, float]:
    """Day D, in local time:
    desk (always): 08-12 active, 12-13 present without window data (a gap on its own row);
    lap (sometimes): 12-14 active; did not answer 14-18 and reported nothing for it.
    So the all devices row is active 08-14, no data after with device_unreachable."""
    r = lifelog("init", "--db", str(db_path))
    assert r.code == 0, r.err
    day = date.today() - timedelta(days=3)
    d0 = local_midnight(day, None)

    def at(hour: float) -> float:
        return d0 + hour * 3600

    now = iso(at(20))
    conn = sqlite3.connect(db_path, timeout=15)
    try:
        with conn:
            n = 0
            for server, name in (("srv-desk", "desk"), ("srv-lap", "lap")):
                for type_, bucket in (("afkstatus", f"aw-watcher-afk_{name}"),
                                      ("currentwindow", f"aw-watcher-window_{name}")):
                    conn.execute("INSERT INTO buckets (server, bucket_id, type, client, hostname, first_seen_at,"
                                 " last_seen_at) VALUES (?, ?, ?, 'test', ?, ?, ?)",
                                 (server, bucket, type_, f"{name}-host", now, now))
                for key, value in (("device_id", server), ("hostname", f"{name}-host"), ("reachable", "yes"),
                                   ("last_poll_ok_at", now), ("unreachable_since", ""), ("last_error", "")):
                    conn.execute("INSERT OR REPLACE INTO meta (key, value, updated_at) VALUES (?, ?, ?)",
                                 (f"device.{name}.{key}", value, now))

            def event(server: str, bucket: str, start: float, seconds: float, data: dict) -> None:
                nonlocal n
                n += 1
                conn.execute("INSERT INTO events (server, bucket_id, event_id, timestamp, duration, data, ended_at,"
                             " ingested_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             (server, bucket, n, iso(start), seconds, json.dumps(data), iso(start + seconds), now, now))

            event("srv-desk", "aw-watcher-afk_desk", at(8), 5 * 3600, {"status": "not-afk"})
            event("srv-desk", "aw-watcher-window_desk", at(8), 4 * 3600, {"app": "Terminal", "title": "vim"})
            event("srv-lap", "aw-watcher-afk_lap", at(12), 2 * 3600, {"status": "not-afk"})
            event("srv-lap", "aw-watcher-window_lap", at(12), 2 * 3600, {"app": "Firefox", "title": "docs"})
            checks = [(at(8 + q / 4), "desk", "healthy") for q in range(40)]
            checks += [(at(12 + q / 4), "lap", "healthy") for q in range(8)]
            checks += [(at(14 + q / 4), "lap", "unreachable") for q in range(1, 16)]
            conn.executemany("INSERT INTO health_checks (checked_at, aw_url, status, error, device)"
                             " VALUES (?, 'http://aw', ?, '', ?)", [(iso(t), s, d) for t, d, s in checks])
    finally:
        conn.close()
    return at(0), at(24)


def test_coverage_has_a_row_per_device_and_the_merged_row(db_path, lifelog, tmp_path):
    since, until = plant_devices(db_path, lifelog)
    env = dict(os.environ, LIFELOG_DB_PATH=str(db_path), LIFELOG_DEVICES=json.dumps(DEVICES))
    span = ["--since", local(since), "--until", local(until)]
    r = lifelog("coverage", "--json", *span, env=env)
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert [(d["device"], d["host"]) for d in doc["days"]] == [("desk", "desk-host"), ("lap", "lap-host"),
                                                             (None, None)]
    by = {d["device"]: d for d in doc["days"]}
    assert by["desk"]["active_seconds"] == 4 * 3600 and by["desk"]["gap_seconds"] == 3600
    assert by["lap"]["active_seconds"] == 2 * 3600
    # Active when any device was: the desk's gap hour is covered by the laptop.
    assert by[None]["active_seconds"] == 6 * 3600 and by[None]["gap_seconds"] == 0

    def stretches(device):
        return [(s["start"][11:16], s["end"][11:16], s["class"], s["cause"])
                for s in doc["stretches"] if s["device"] == device]

    assert stretches("lap")[1:] == [("12:00", "14:00", "active", None),
                                    ("14:00", "18:00", "no_data", "device_unreachable"),
                                    ("18:00", "00:00", "no_data", "unknown")]
    assert ("12:00", "13:00", "gap", "unknown") in stretches("desk")
    assert stretches(None)[1:3] == [("08:00", "14:00", "active", None),
                                    ("14:00", "18:00", "no_data", "device_unreachable")]

    # --device: that device alone, no merged row.
    r = lifelog("coverage", "--json", "--device", "lap", *span, env=env)
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert {d["device"] for d in doc["days"]} == {"lap"} and {s["device"] for s in doc["stretches"]} == {"lap"}
    r = lifelog("coverage", "--device", "lap", *span, env=dict(env, COLUMNS="120"))
    assert r.code == 0 and "lap" in r.out and "all devices" not in r.out and "device_unreachable" in r.out
    # An unknown name: bad input, one line, exit 2.
    r = lifelog("coverage", "--device", "phone", *span, env=env)
    assert r.code == 2 and r.out == "" and len(r.err.strip().splitlines()) == 1, r
    assert "phone" in r.err and "desk, lap" in r.err
    r = lifelog("coverage", "--device", "lap", "--db", str(db_path), *span)  # no devices setting
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1 and "devices" in r.err

    # The terminal picture: a block per row, the merged one last.
    r = lifelog("coverage", *span, env=dict(env, COLUMNS="120"))
    assert r.code == 0, r.err
    titles = [line for line in r.out.splitlines() if line in ("desk", "lap", "all devices")]
    assert titles == ["desk", "lap", "all devices"], r.out


def test_the_html_page_shows_each_device_and_the_merged_row_in_a_browser(db_path, lifelog, tmp_path):
    since, until = plant_devices(db_path, lifelog)
    env = dict(os.environ, LIFELOG_DB_PATH=str(db_path), LIFELOG_DEVICES=json.dumps(DEVICES))
    page, png = tmp_path / "coverage.html", tmp_path / "shot.png"
    r = lifelog("coverage", "--since", local(since), "--until", local(until), "--html", str(page), env=env)
    assert r.code == 0, r.err
    text = page.read_text()
    assert "<h3>desk</h3>" in text and "<h3>lap</h3>" in text and "<h3>all devices</h3>" in text
    screenshot(page, png, height=1800)
    rows = rgb_rows(png)
    active, gap = ImageColor.getrgb(CLASS_COLOUR[Kind.ACTIVE]), ImageColor.getrgb(CLASS_COLOUR[Kind.GAP])
    away = ImageColor.getrgb(CAUSE_COLOUR[Cause.DEVICE_UNREACHABLE])

    def longest(y: int, colour) -> int:
        return max((b - a for a, b in runs(rows[y], colour)), default=0)

    # Three timelines, top to bottom: desk (4 h active, then the 1 h gap), lap (2 h), all devices (6 h).
    bars = []
    for y in range(len(rows)):
        width = longest(y, active)
        if width > 20 and (not bars or y - bars[-1][0] > 30):
            bars.append((y, width))
    assert len(bars) >= 3, bars
    (y_desk, desk), (y_lap, lap), (y_all, merged) = bars[:3]
    hour = desk / 4
    assert hour > 20
    assert abs(lap - 2 * hour) <= 3 and abs(merged - 6 * hour) <= 3
    assert longest(y_desk, gap) > 0.9 * hour and longest(y_all, gap) == 0
    # Under the laptop's bar, the device_unreachable strip: 14:00-18:00.
    strip = next(yy for yy in range(y_lap, y_lap + 40) if runs(rows[yy], away))
    assert abs(longest(strip, away) - 4 * hour) <= 3
