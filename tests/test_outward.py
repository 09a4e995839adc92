"""Seen from outside: the ping (dead man's switch) and the Prometheus metrics file.

A local HTTP server in the test records every ping; the watchdog passes are
real (`lifelog watchdog --once` against a real aw-server and watcher)."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support.helpers import meta, one_pass, running_watcher, wait_for
from support.localhttp import LocalHTTPServer, QuietHandler

from lifelog.core.timeutil import to_iso
from lifelog.core.verdicts import Level
from lifelog.outward import metrics, ping

TOKEN = "5f2b9c1e-aaaa-bbbb-cccc-0123456789ab"


class Recorder(LocalHTTPServer):
    """An HTTP server that records (method, path, query, body) and answers 200."""

    def __init__(self):
        self.calls: list[dict] = []
        recorder = self

        class Handler(QuietHandler):
            def _record(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                parts = urlsplit(self.path)
                recorder.calls.append({"method": self.command, "path": parts.path,
                                       "query": parse_qs(parts.query), "body": body})
                self.answer(200, b"OK", "text/plain")

            do_GET = do_POST = _record

        self.serve(Handler)


@pytest.fixture
def recorder():
    r = Recorder()
    yield r
    r.close()


# -- pure: what is sent and when ------------------------------------------------------

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def test_ok_and_warning_post_the_summary_critical_and_unknown_post_to_fail():
    assert ping.ping_for("https://hc-ping.com/u", Level.OK, "OK: all fine") == ping.Ping(
        "POST", "https://hc-ping.com/u", b"OK: all fine", ping.Sent.OK)
    assert ping.ping_for("https://hc-ping.com/u", Level.WARNING, "WARNING: x\nmore").body == b"WARNING: x"
    assert ping.ping_for("https://hc-ping.com/u/", Level.CRITICAL, "CRITICAL: y").url == "https://hc-ping.com/u/fail"
    assert ping.ping_for("https://hc-ping.com/u", Level.UNKNOWN, "UNKNOWN: z").sent is ping.Sent.FAIL


def test_a_url_with_status_or_msg_is_an_uptime_kuma_template_sent_as_get():
    p = ping.ping_for("http://kuma/api/push/T?status={status}&msg={msg}&ping=", Level.CRITICAL, "CRITICAL: a b&c")
    assert p.method == "GET" and p.body is None and p.sent is ping.Sent.DOWN
    assert p.url == "http://kuma/api/push/T?status=down&msg=CRITICAL%3A%20a%20b%26c&ping="
    assert ping.ping_for("http://kuma/api/push/T?status={status}", Level.WARNING, "W").url.endswith("status=up")


def test_a_ping_is_due_first_on_a_level_change_and_once_per_interval():
    last = {"ping.last_at": to_iso(NOW - timedelta(seconds=60)), "ping.last_level": "OK"}
    assert ping.due({}, Level.OK, NOW, 60)
    assert ping.due(last, Level.OK, NOW, 60)  # exactly the interval
    assert not ping.due(last, Level.OK, NOW - timedelta(seconds=0.001), 60)
    assert ping.due(last, Level.WARNING, NOW - timedelta(seconds=30), 60)  # the level changed
    stepped_back = {"ping.last_at": to_iso(NOW + timedelta(hours=2)), "ping.last_level": "OK"}
    assert ping.due(stepped_back, Level.OK, NOW, 60)  # a clock step never silences the switch


def test_the_metrics_text_is_what_prometheus_parses():
    meta_ = {"watcher.heartbeat_at": to_iso(NOW), "watcher.last_event_ts": to_iso(NOW - timedelta(seconds=3)),
             "watchdog.checked_at": to_iso(NOW), "watchdog.restart_count": "4"}
    text = metrics.render(metrics.collect(meta_, Level.WARNING, True, False, [
        ({"bucket": 'aw-watcher-window_a"b', "type": "currentwindow", "host": "a"}, NOW.timestamp(), True)]))
    families = {f.name: f for f in text_string_to_metric_families(text)}
    value = {name: f.samples[0].value for name, f in families.items()}
    assert value["lifelog_status"] == 1 and value["lifelog_watcher_up"] == 1 and value["lifelog_aw_up"] == 0
    assert value["lifelog_watcher_heartbeat_timestamp_seconds"] == NOW.timestamp()
    assert value["lifelog_last_event_timestamp_seconds"] == (NOW - timedelta(seconds=3)).timestamp()
    assert value["lifelog_watchdog_last_pass_timestamp_seconds"] == NOW.timestamp()
    assert families["lifelog_watchdog_restarts"].samples[0].value == 4  # a counter: _total in the text
    [silent] = families["lifelog_source_silent"].samples
    assert silent.labels == {"bucket": 'aw-watcher-window_a"b', "type": "currentwindow", "host": "a"}
    assert "lifelog_backup_last_success_timestamp_seconds" not in families  # no backup yet


def test_the_metrics_text_has_the_newest_backup_once_one_exists():
    backed_up = NOW - timedelta(hours=5, microseconds=250000)
    meta_ = {"watchdog.checked_at": to_iso(NOW), "backup.last_ok_at": to_iso(backed_up)}
    text = metrics.render(metrics.collect(meta_, Level.OK, True, True))
    families = {f.name: f for f in text_string_to_metric_families(text)}
    [sample] = families["lifelog_backup_last_success_timestamp_seconds"].samples
    assert sample.value == backed_up.timestamp() and sample.labels == {}
    assert families["lifelog_aw_up"].samples[0].value == 1
    assert families["lifelog_status"].samples[0].value == 0


# -- end to end: real passes ----------------------------------------------------------------


def ping_env(monitor_env, url, **extra):
    return dict(monitor_env, LIFELOG_PING_URL=url, LIFELOG_PING_INTERVAL_SECONDS="3600", **extra)


def test_a_healthy_pass_posts_the_summary_once_per_interval(lifelog, db_path, monitor_env, recorder, fresh_aw):
    # An AW server of its own: other tests leave silent sources in the shared one.
    env = ping_env(dict(monitor_env, LIFELOG_AW_URL=fresh_aw.url), f"{recorder.url}/ping/{TOKEN}")
    one_pass(lifelog, env)
    wait_for(lambda: running_watcher(db_path), what="the watcher running")
    # Until the new watcher settles, the level may change (each change pings at once).
    wait_for(lambda: one_pass(lifelog, env)["status"] == "OK", what="a pass with status OK")
    pinged = len(recorder.calls)
    assert one_pass(lifelog, env)["status"] == "OK"  # same level, inside the interval: no new ping
    assert len(recorder.calls) == pinged
    assert (recorder.calls[-1]["method"], recorder.calls[-1]["path"]) == ("POST", f"/ping/{TOKEN}")
    assert recorder.calls[-1]["body"].startswith("OK: ")
    assert meta(db_path, "ping.last_sent") == "ok" and meta(db_path, "ping.last_result") == "200"
    assert meta(db_path, "ping.last_at")


def test_critical_pings_fail_at_once_and_a_template_gets_down(lifelog, db_path, monitor_env, recorder, tmp_path):
    env = ping_env(monitor_env, f"{recorder.url}/ping/{TOKEN}")
    one_pass(lifelog, env)
    wait_for(lambda: running_watcher(db_path), what="the watcher running")
    one_pass(lifelog, env)
    assert recorder.calls[-1]["path"] == f"/ping/{TOKEN}"
    closed = f"http://127.0.0.1:{_closed_port()}"
    down = dict(env, LIFELOG_AW_URL=closed)
    assert lifelog("health", env=down).code == 2  # AW unhealthy: CRITICAL
    doc = one_pass(lifelog, down)
    assert doc["status"] == "CRITICAL"
    assert recorder.calls[-1]["path"] == f"/ping/{TOKEN}/fail"  # the level changed: at once
    assert recorder.calls[-1]["body"].startswith("CRITICAL: AW unhealthy")
    kuma = dict(down, LIFELOG_PING_URL=f"{recorder.url}/api/push/{TOKEN}?status={{status}}&msg={{msg}}",
                LIFELOG_PING_INTERVAL_SECONDS="0.001")
    one_pass(lifelog, kuma)
    last = recorder.calls[-1]
    assert last["method"] == "GET" and last["path"] == f"/api/push/{TOKEN}"
    assert last["query"]["status"] == ["down"] and last["query"]["msg"][0].startswith("CRITICAL: ")
    assert meta(db_path, "ping.last_sent") == "down"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_ping_endpoint_that_never_answers_costs_one_timeout_and_changes_no_verdict(
        lifelog, db_path, monitor_env):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections (the kernel does), never answers
    try:
        env = ping_env(monitor_env, f"http://127.0.0.1:{silent.getsockname()[1]}/ping/{TOKEN}")
        one_pass(lifelog, env)
        wait_for(lambda: running_watcher(db_path), what="the watcher running")
        # The grace over, the verdict is ok pass after pass: the same without a ping and with one.
        wait_for(lambda: one_pass(lifelog, dict(monitor_env))["verdict"] == "ok", what="an ok pass without a ping")
        env = dict(env, LIFELOG_PING_INTERVAL_SECONDS="0.001")
        began = time.monotonic()
        doc = one_pass(lifelog, env)
        took = time.monotonic() - began
        assert doc["verdict"] == "ok"
        result = meta(db_path, "ping.last_result")
        assert result and not result.startswith("2") and TOKEN not in result, result
        assert "within 1 s" in result, result  # bounded by aw_timeout_seconds (FAST: 1 s)...
        # ...and so the pass is: not hung on it (the whole process, its start-up
        # 1-2 s on a loaded machine included; the `lifelog` fixture's own bound is 60 s).
        assert took < 1 + 14, took
    finally:
        silent.close()


def test_the_metrics_file_follows_the_watcher_and_is_never_seen_half_written(lifelog, db_path, monitor_env,
                                                                             tmp_path):
    path = tmp_path / "textfile" / "lifelog.prom"
    path.parent.mkdir()
    env = dict(monitor_env, LIFELOG_METRICS_FILE=str(path))
    one_pass(lifelog, env)
    pid = wait_for(lambda: running_watcher(db_path), what="the watcher running")
    wait_for(lambda: one_pass(lifelog, env)["verdict"] == "ok", what="an ok pass")

    def values():
        return {s.name: s.value for f in text_string_to_metric_families(path.read_text()) for s in f.samples}

    v = values()
    assert v["lifelog_watcher_up"] == 1 and v["lifelog_aw_up"] in (0, 1)
    assert abs(v["lifelog_watchdog_last_pass_timestamp_seconds"] - time.time()) < 60
    assert v["lifelog_watchdog_restarts_total"] >= 1

    seen, torn, stop = [], [], threading.Event()

    def hammer():
        while not stop.is_set():
            text = path.read_text()
            try:
                names = {f.name for f in text_string_to_metric_families(text)}
            except Exception:
                names = set()
            (seen if "lifelog_status" in names and text.endswith("\n") else torn).append(len(text))

    reader = threading.Thread(target=hammer)
    reader.start()
    try:
        os.kill(pid, signal.SIGKILL)
        # Nothing restarts it now: the restart command starts no watcher.
        dead = dict(env, LIFELOG_WATCHER_RESTART_COMMAND="true")
        for _ in range(3):
            one_pass(lifelog, dead)
    finally:
        stop.set()
        reader.join(10)
    assert values()["lifelog_watcher_up"] == 0
    assert seen and not torn, (len(seen), torn[:3])
    assert not [p for p in path.parent.iterdir() if p.name != path.name]  # no file left aside
    assert json.loads(lifelog("status", "--json", env=dead).out)["level"] == "CRITICAL"
    path.unlink()  # a health check rewrites it too
    assert lifelog("health", env=dead).code == 0  # the shared aw-server is healthy
    assert values()["lifelog_aw_up"] == 1


def test_the_metrics_file_has_each_recorded_source_with_its_labels(db_path, tmp_path):
    from lifelog.checks.status import StatusReport
    from lifelog.core import keys
    from lifelog.core.settings import load_settings
    from lifelog.db.database import open_db
    from lifelog.db.meta import set_meta

    path = tmp_path / "lifelog.prom"
    settings = load_settings(overrides={"db_path": str(db_path), "metrics_file": str(path)}, environ={})
    db = open_db(db_path)
    db.conn.execute("INSERT INTO buckets (server, bucket_id, type, hostname, first_seen_at, last_seen_at)"
                    " VALUES ('dev', 'aw-watcher-window_ada.lan', 'currentwindow', 'ada.lan', 'x', 'x')")
    end = NOW - timedelta(minutes=20)
    set_meta(db, keys.source_state("aw-watcher-window_ada.lan"), "silent")
    set_meta(db, keys.source_newest_end("aw-watcher-window_ada.lan"), to_iso(end))
    backed_up = NOW - timedelta(hours=3)
    set_meta(db, keys.BACKUP_LAST_OK_AT, to_iso(backed_up))
    metrics.write_metrics(db, settings, StatusReport(Level.WARNING, "WARNING: x"), "watchdog")
    samples = {(s.name, s.labels.get("bucket")): s for f in text_string_to_metric_families(path.read_text())
               for s in f.samples}
    silent = samples[("lifelog_source_silent", "aw-watcher-window_ada.lan")]
    assert silent.value == 1 and silent.labels == {"bucket": "aw-watcher-window_ada.lan",
                                                   "type": "currentwindow", "host": "ada.lan"}
    assert samples[("lifelog_source_newest_event_timestamp_seconds", "aw-watcher-window_ada.lan")].value \
        == end.timestamp()
    assert samples[("lifelog_status", None)].value == 1
    assert samples[("lifelog_backup_last_success_timestamp_seconds", None)].value == backed_up.timestamp()
