"""`lifelog health`: one bounded check of AW, recorded, with the exit code of its status."""

from __future__ import annotations

import json
import os
import re

import pytest
from support.awserver import free_port
from support.fakeaw import BUCKETS, HTML_500, INFO, FakeAW, RawServer, SilentSocket

from lifelog.checks.health import run_check
from lifelog.core.settings import load_settings
from lifelog.core.verdicts import AWStatus
from lifelog.db.database import open_db
from lifelog.db.meta import get_meta


@pytest.fixture
def fake_aw():
    fakes = []

    def make(routes):
        fake = FakeAW(routes)
        fakes.append(fake)
        return fake

    yield make
    for f in fakes:
        f.close()


def settings_for(db_path, url, timeout=1.0):
    return load_settings(overrides={"db_path": str(db_path), "aw_url": url, "aw_timeout_seconds": timeout},
                         environ={})


def env_for(url, timeout=1.0, **extra):
    return dict(os.environ, LIFELOG_AW_URL=url, LIFELOG_AW_TIMEOUT_SECONDS=str(timeout), **extra)


def test_a_real_aw_server_is_healthy_and_every_check_is_recorded(lifelog, db_path, aw_server):
    r = lifelog("health", "--json", "--db", str(db_path), env=env_for(aw_server.url))
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["status"] == "healthy" and doc["version"].startswith("v0.12") and doc["error"] == ""
    db = open_db(db_path)
    row = db.conn.execute("SELECT status, version, error, aw_url FROM health_checks").fetchone()
    assert row == ("healthy", doc["version"], "", aw_server.url)
    assert get_meta(db, "aw.status") == "healthy"
    assert get_meta(db, "aw.version") == doc["version"]
    assert get_meta(db, "aw.consecutive_failures") == "0"
    assert get_meta(db, "aw.error") == ""
    assert get_meta(db, "aw.last_healthy_at") == get_meta(db, "aw.checked_at")
    assert float(get_meta(db, "aw.latency_ms")) == doc["latency_ms"]


def test_the_human_form_is_the_log_line(lifelog, db_path, aw_server):
    r = lifelog("health", "--db", str(db_path), env=env_for(aw_server.url, LIFELOG_LOG_LEVEL="INFO"))
    assert r.code == 0
    assert r.out.startswith("ActivityWatch server healthy (version v0.12")
    assert "INFO lifelog.health" in r.err and "ActivityWatch server healthy (version" in r.err
    # `ActivityWatch server healthy (version …, N ms)`, on stdout and as the INFO log line.
    line = re.compile(r"ActivityWatch server healthy \(version v0\.12[^,()]*, \d+ ms\)$", re.M)
    assert line.match(r.out), r.out
    assert re.search(r" INFO lifelog\.health\[\d+\]: " + line.pattern, r.err, re.M), r.err


def test_a_socket_that_never_answers_is_unhealthy_within_the_timeout(lifelog, db_path):
    silent = SilentSocket()
    try:
        r = lifelog("health", "--json", "--db", str(db_path), env=env_for(silent.url, timeout=1.0), timeout=30)
    finally:
        silent.close()
    assert r.code == 2
    doc = json.loads(r.out)
    assert doc["status"] == "unhealthy" and "no answer within 1 s" in doc["error"]
    # The check's own time, measured in the process (its start-up, 1-2 s on a
    # loaded machine, is no part of it): one 1 s timeout, not the 5 s default
    # nor a retry, with room for a loaded machine.
    assert 1000 <= doc["latency_ms"] < 1000 * (1.0 + 2.5), doc
    assert "ActivityWatch server unhealthy: no answer within 1 s" in r.err


def test_a_server_that_trickles_is_unhealthy_within_the_timeout(lifelog, db_path):
    # Each byte comes well inside the read timeout: only the bound on the
    # whole answer ends the check.
    def handle(server, conn):
        server.read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        while not server.stopping.wait(0.1):
            conn.sendall(b"X")

    trickle = RawServer(handle)
    try:
        r = lifelog("health", "--json", "--db", str(db_path), env=env_for(trickle.url, timeout=1.0), timeout=30)
    finally:
        trickle.close()
    assert r.code == 2
    doc = json.loads(r.out)
    assert doc["status"] == "unhealthy" and doc["error"].startswith("no whole answer within the 1 s allowed")
    # Measured in the process, as above: the trickle never ends on its own.
    assert 1000 <= doc["latency_ms"] < 1000 * (1.0 + 2.5), doc


def test_refused_connections_are_unhealthy_and_failures_count_until_a_healthy_check(db_path, aw_server):
    db = open_db(db_path)
    down = settings_for(db_path, f"http://127.0.0.1:{free_port()}")
    for n in (1, 2, 3):
        result = run_check(db, down)
        assert result.status is AWStatus.UNHEALTHY and result.exit_code == 2
        assert "connection refused" in result.error
        assert get_meta(db, "aw.consecutive_failures") == str(n)
    assert get_meta(db, "aw.last_healthy_at") is None
    result = run_check(db, settings_for(db_path, aw_server.url))
    assert result.status is AWStatus.HEALTHY and result.exit_code == 0
    assert get_meta(db, "aw.consecutive_failures") == "0"
    assert db.conn.execute("SELECT count(*) FROM health_checks").fetchone()[0] == 4


@pytest.mark.parametrize("routes, needle", [
    # aw-server 0.12.0 under peewee 4: /info fine, every bucket call 500.
    ({"/api/0/info": INFO, "/api/0/buckets/": (500, "application/json", b'{"message": "boom"}')},
     "HTTP 500 from /api/0/buckets/"),
    ({"/api/0/info": HTML_500}, "HTTP 500 from /api/0/info"),
    ({"/api/0/info": (200, "text/html", b"<html><body>a proxy page</body></html>")},
     "/api/0/info answered an HTML page"),
    ({"/api/0/info": (200, "application/json", b'{"version": "v1", trunc')}, "/api/0/info answered not JSON"),
    ({"/api/0/info": (200, "application/json", b"[1, 2]")}, "answered JSON list, expected dict"),
    ({"/api/0/info": INFO, "/api/0/buckets/": (401, "application/json", b'{"message": "api key"}')},
     "HTTP 401 from /api/0/buckets/"),
])
def test_an_answer_that_is_not_200_with_a_json_object_is_degraded(db_path, fake_aw, routes, needle):
    fake = fake_aw(routes)
    db = open_db(db_path)
    result = run_check(db, settings_for(db_path, fake.url))
    assert result.status is AWStatus.DEGRADED and result.exit_code == 1
    assert needle in result.error
    assert get_meta(db, "aw.status") == "degraded" and get_meta(db, "aw.error") == result.error
    assert get_meta(db, "aw.consecutive_failures") == "1"


def test_degraded_exits_1_from_the_command_line(lifelog, db_path, fake_aw):
    fake = fake_aw({"/api/0/info": INFO, "/api/0/buckets/": HTML_500})
    r = lifelog("health", "--db", str(db_path), env=env_for(fake.url))
    assert r.code == 1
    assert r.out.strip() == "ActivityWatch server degraded: HTTP 500 from /api/0/buckets/"
    assert "WARNING lifelog.health" in r.err


def test_a_healthy_fake_is_healthy(db_path, fake_aw):
    fake = fake_aw({"/api/0/info": INFO, "/api/0/buckets/": BUCKETS})
    result = run_check(open_db(db_path), settings_for(db_path, fake.url))
    assert result.status is AWStatus.HEALTHY and result.version == "v0.12.0-fake"


def test_a_bad_setting_is_one_line_exit_2_and_creates_nothing(lifelog, db_path):
    r = lifelog("health", "--db", str(db_path), env=dict(os.environ, LIFELOG_AW_TIMEOUT_SECONDS="soon"))
    assert r.code == 2
    assert r.err.count("\n") == 1 and "LIFELOG_AW_TIMEOUT_SECONDS" in r.err
    assert not db_path.exists()
