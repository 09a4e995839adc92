"""`lifelog watcher` as a real process: heartbeat, single instance, clean stop."""

import os
import signal

import pytest
from support.helpers import meta, start_watcher, wait_for

from lifelog.core.timeutil import parse_iso


@pytest.fixture
def watcher_proc(db_path, aw_server, spawn, own_buckets):
    # Only this test's buckets (none): following `*` on the shared aw-server, the
    # watcher would first catch up on every other test's history.
    def start(**kw):
        kw.setdefault("buckets", f"{own_buckets}*")
        return start_watcher(spawn, db_path, kw.pop("aw_url", aw_server.url), **kw)

    return start


def test_the_watcher_heartbeats_into_meta(db_path, watcher_proc):
    p = watcher_proc()
    wait_for(lambda: meta(db_path, "watcher.state") == "running", what="state running")
    assert meta(db_path, "watcher.pid") == str(p.pid)
    first = parse_iso(meta(db_path, "watcher.heartbeat_at"))
    wait_for(lambda: parse_iso(meta(db_path, "watcher.heartbeat_at")) > first, what="a newer heartbeat")
    assert meta(db_path, "watcher.last_error") == ""
    assert meta(db_path, "watcher.last_poll_ok_at")
    assert parse_iso(meta(db_path, "watcher.started_at")) <= first


def test_a_second_watcher_exits_1_naming_the_first(db_path, watcher_proc, lifelog, aw_server):
    p = watcher_proc()
    wait_for(lambda: meta(db_path, "watcher.state") == "running", what="state running")
    r = lifelog("watcher", "--db", str(db_path), env=dict(os.environ, LIFELOG_AW_URL=aw_server.url,
                                                           LIFELOG_BUCKETS="none-of-these-*"), timeout=20)
    assert r.code == 1
    assert f"pid {p.pid}" in r.err and "Traceback" not in r.err
    assert meta(db_path, "watcher.pid") == str(p.pid)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_it_cleanly(db_path, watcher_proc, sig):
    p = watcher_proc()
    wait_for(lambda: meta(db_path, "watcher.state") == "running", what="state running")
    p.send_signal(sig)
    assert p.wait(10) == 0
    assert meta(db_path, "watcher.state") == "stopped"


def test_aw_down_keeps_the_heartbeat_and_reports_the_error(db_path, watcher_proc, tmp_path):
    from support.awserver import free_port

    watcher_proc(aw_url=f"http://127.0.0.1:{free_port()}")
    wait_for(lambda: meta(db_path, "watcher.last_error"), what="an error recorded")
    assert "connection refused" in meta(db_path, "watcher.last_error")
    first = parse_iso(meta(db_path, "watcher.heartbeat_at"))
    wait_for(lambda: parse_iso(meta(db_path, "watcher.heartbeat_at")) > first, what="heartbeat while AW is down")
    assert meta(db_path, "watcher.last_poll_ok_at") is None
