"""A secured ActivityWatch: `aw_api_key` (README "A secured ActivityWatch").

aw-server-rust with `[auth] api_key` answers 401 to every /api/ path but
/api/0/info unless the request carries `Authorization: Bearer <key>`. The
aw-server on PyPI has no such setting, so `AuthProxy` puts rust's check in
front of the real aw-server the tests use.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import subprocess
from pathlib import Path

import pytest
import requests
from support.fakeaw import INFO, FakeAW
from support.helpers import FAST, meta, processes_on, stored, wait_for
from support.localhttp import LocalHTTPServer, QuietHandler

from lifelog.checks.health import run_check
from lifelog.core import redact
from lifelog.core.errors import UsageError
from lifelog.core.settings import load_settings
from lifelog.core.timeutil import parse_iso, to_iso
from lifelog.core.verdicts import AWStatus
from lifelog.db.database import open_db

KEY = "llk-" + secrets.token_hex(16)  # distinctive: found anywhere, it is a leak
PING_TOKEN = "0b3c1a52-7d0f-4c2e-9a51-" + secrets.token_hex(6)
NEEDS_KEY = "ActivityWatch requires an API key; set aw_api_key"
REJECTED = "ActivityWatch rejected the API key set in aw_api_key"
RUST_401 = b'{"message": "Missing or invalid API key. Set \'Authorization: Bearer <key>\' header."}'


class AuthProxy(LocalHTTPServer):
    """aw-server-rust's API-key check (its endpoints/apikey.rs) in front of a
    real aw-server: /api/ paths other than /api/0/info need the Bearer key,
    else 401 with rust's JSON. Records, per request, whether the key was right."""

    def __init__(self, upstream: str, key: str):
        proxy = self
        self.checked: list[tuple[str, bool]] = []  # (path, carried the right key)

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as Rocket does

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                path = self.path.split("?")[0]
                right = self.headers.get("Authorization") == f"Bearer {key}"
                proxy.checked.append((path, right))
                if path.startswith("/api/") and path != "/api/0/info" and not right:
                    return self.answer(401, RUST_401)
                # The key is not passed on: upstream is behind the check.
                r = requests.request(self.command, upstream + self.path, data=body, timeout=30,
                                     headers={"Content-Type": self.headers.get("Content-Type", "")})
                self.answer(r.status_code, r.content, r.headers.get("Content-Type", ""))

            do_GET = do_POST = do_DELETE = _handle  # noqa: N815

        self.serve(Handler)


@pytest.fixture
def proxy(aw_server):
    p = AuthProxy(aw_server.url, KEY)
    yield p
    p.close()


@pytest.fixture
def bucket(aw_server, request):
    name = f"apikey-{request.node.name[:30]}-{secrets.token_hex(3)}".replace("[", "-").replace("]", "")
    aw_server.create_bucket(name)
    aw_server.insert(name, [{"timestamp": f"2026-11-20T10:{m:02d}:00+00:00", "duration": 30 + m,
                             "data": {"app": f"app{m}", "title": f"t{m}"}} for m in range(12)])
    return name


def truth(aw, bucket_id):
    return {e["id"]: (to_iso(parse_iso(e["timestamp"])), e["duration"], e["data"]) for e in aw.events(bucket_id)}


def write_config(path: Path, mode: int = 0o600, **settings) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items()))
    path.chmod(mode)
    return path


def fast_env(**extra) -> dict:
    return dict(os.environ, **FAST, **extra)


def start(spawn, *args, env) -> subprocess.Popen:
    return spawn.lifelog(*args, env=env, capture=True)


def stop(p: subprocess.Popen) -> tuple[int, str, str]:
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=30)
    return p.returncode, out, err


# -- with the key --------------------------------------------------------------------------


def test_with_the_key_health_is_healthy_and_the_watcher_ingests_exactly(
        lifelog, tmp_path, db_path, proxy, aw_server, bucket, spawn):
    config = write_config(tmp_path / "config.toml", aw_api_key=KEY, aw_url=proxy.url, buckets=bucket)
    r = lifelog("health", "--json", "--db", str(db_path), "--config", str(config), env=fast_env())
    assert r.code == 0, r.err
    assert json.loads(r.out)["status"] == "healthy"

    watcher = start(spawn, "watcher", "--db", str(db_path), "--config", str(config), env=fast_env())
    expected = truth(aw_server, bucket)
    assert len(expected) == 12
    wait_for(lambda: stored(db_path, bucket) == expected, what="LifeLog's events equal AW's")
    # The poll's events commit before its heartbeat (a transaction of its own):
    # wait for the heartbeat that records the poll good, not an error.
    wait_for(lambda: meta(db_path, "watcher.last_error") == "", what="a good poll recorded, no error")
    assert stop(watcher)[0] == 0
    api_calls = [right for path, right in proxy.checked if path != "/api/0/info"]
    assert api_calls and all(right for _, right in proxy.checked), "every request carries the key"


# -- without it, or a wrong one ------------------------------------------------------------------


@pytest.mark.parametrize("key, reason", [("", NEEDS_KEY), ("llk-wrong-" + secrets.token_hex(8), REJECTED)],
                         ids=["no-key", "wrong-key"])  # ids without the key: the same in every xdist worker
def test_without_the_key_or_with_a_wrong_one_aw_is_degraded_and_every_part_says_why(
        lifelog, tmp_path, db_path, proxy, bucket, spawn, key, reason):
    settings = {"aw_api_key": key} if key else {}
    config = write_config(tmp_path / "config.toml", aw_url=proxy.url, buckets=bucket, **settings)
    args = ("--db", str(db_path), "--config", str(config))

    r = lifelog("health", "--json", *args, env=fast_env())
    assert r.code == 1, r.err
    doc = json.loads(r.out)
    # /api/0/info is open on a secured AW: the bucket list is what says no.
    assert doc["status"] == "degraded"
    assert doc["error"].startswith(f"HTTP 401 from /api/0/buckets/: {reason}")
    assert doc["version"].startswith("v0.12")
    assert meta(db_path, "aw.error") == doc["error"]

    watcher = start(spawn, "watcher", *args, env=fast_env())
    wait_for(lambda: reason in (meta(db_path, "watcher.last_error") or ""), what="watcher.last_error")
    assert stored(db_path, bucket) == {}

    r = lifelog("status", *args, env=fast_env())
    assert r.code == 1, r.out + r.err
    assert r.out.splitlines()[0].startswith(f"WARNING: AW degraded: HTTP 401 from /api/0/buckets/: {reason}")
    code, out, err = stop(watcher)
    assert code == 0
    assert reason in err  # its log says so too
    if key:
        assert key not in r.out + r.err + out + err + doc["error"]


@pytest.mark.parametrize("key, reason", [("", NEEDS_KEY), ("some-key-" + secrets.token_hex(8), REJECTED)],
                         ids=["no-key", "wrong-key"])
def test_a_403_means_the_same_as_a_401(db_path, key, reason):
    fake = FakeAW({"/api/0/info": INFO, "/api/0/buckets/": (403, "application/json", b'{"message": "no"}')})
    try:
        settings = load_settings(overrides={"db_path": str(db_path), "aw_url": fake.url, "aw_api_key": key},
                                 environ={})
        result = run_check(open_db(db_path), settings)
    finally:
        fake.close()
    assert result.status is AWStatus.DEGRADED and result.exit_code == 1
    assert result.error.startswith(f"HTTP 403 from /api/0/buckets/: {reason}")


# -- the key stays secret ---------------------------------------------------------------------------


def files_holding(root: Path, needle: bytes) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file() and not p.is_symlink() and needle in p.read_bytes()}


def test_every_command_with_the_key_leaves_it_only_in_the_config_file(
        lifelog, tmp_path, db_path, proxy, aw_server, bucket, spawn):
    ping_url = f"https://hc-ping.com/{PING_TOKEN}"
    config = write_config(tmp_path / "config" / "lifelog.toml", aw_api_key=KEY, aw_url=proxy.url,
                          buckets=bucket, ping_url=ping_url)
    # As loud as LifeLog gets: debug logs, and tracebacks on.
    env = fast_env(LIFELOG_DEBUG="1", LIFELOG_LOG_LEVEL="DEBUG", LIFELOG_CONFIG=str(config),
                   LIFELOG_DB_PATH=str(db_path))
    outputs = []

    def run(*args, codes=(0,)):
        r = lifelog(*args, env=env)
        assert r.code in codes, (args, r.code, r.err)
        outputs.append(r.out + r.err)
        return r

    run("init")
    run("health")
    run("health", "--json")
    run("backfill")
    run("backfill", "--since", "2026-11-01")
    run("reconcile", "--since", "2026-11-01")
    run("meta", "show")
    run("meta", "show", "--json")
    run("meta", "get", "aw.status")
    run("meta", "get", "no.such.key", codes=(1,))
    run("backfill", "--since", "not-a-date", codes=(2,))
    run("watchdog", "--once")  # the cron fast path; it starts a watcher, detached, with a log file
    wait_for(lambda: meta(db_path, "watcher.state") == "running", what="the watchdog's watcher")
    run("watchdog", "--once", "--json")
    run("watchdog", "pause")
    run("watchdog", "resume")
    run("status", codes=(0, 1))
    run("status", "--json", codes=(0, 1))
    for p in processes_on(db_path, "watcher"):  # the daemon brings its own
        p.terminate()
        p.wait(10)
    daemon = start(spawn, "daemon", env=env)
    wait_for(lambda: meta(db_path, "watcher.state") == "running" and meta(db_path, "aw.status") == "healthy",
             what="the daemon's watcher and health check")
    code, out, err = stop(daemon)
    assert code == 0, err
    outputs.append(out + err)

    assert stored(db_path, bucket) == truth(aw_server, bucket)
    assert all(right for _, right in proxy.checked)
    for text in outputs:
        assert KEY not in text and PING_TOKEN not in text
    assert db_path.exists() and (tmp_path / "home" / "state").exists()  # the logs were written
    assert files_holding(tmp_path, KEY.encode()) == {config}
    assert files_holding(tmp_path, PING_TOKEN.encode()) == {config}


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
@pytest.mark.parametrize("secret", ["aw_api_key", "ping_url"])
def test_a_config_holding_a_secret_that_others_can_read_is_refused_and_nothing_written(
        lifelog, tmp_path, db_path, mode, secret):
    value = KEY if secret == "aw_api_key" else f"https://hc-ping.com/{PING_TOKEN}"
    config = write_config(tmp_path / "shared.toml", mode=mode, **{secret: value})
    before = sorted(tmp_path.rglob("*"))
    env = dict(os.environ, LIFELOG_CONFIG=str(config))
    for args in (("init",), ("health",), ("status",), ("meta", "show"), ("watchdog", "--once"),
                 ("backfill",), ("watcher",), ("daemon",)):
        r = lifelog(*args, "--db", str(db_path), env=env, timeout=30)
        assert r.code == 2, (args, r.code, r.err)
        assert r.err.count("\n") == 1 and r.out == ""
        assert str(config) in r.err and r.err.rstrip().endswith(f"chmod 600 {config}")
        assert secret in r.err and KEY not in r.err and PING_TOKEN not in r.err
    assert sorted(tmp_path.rglob("*")) == before  # no database, no log, nothing


def test_a_private_config_and_one_without_secrets_are_fine(tmp_path):
    private = write_config(tmp_path / "private.toml", mode=0o600, aw_api_key=KEY)
    assert load_settings(config=private, environ={}).aw_api_key == KEY
    shared = write_config(tmp_path / "shared.toml", mode=0o644, aw_timeout_seconds=2, aw_api_key="")
    assert load_settings(config=shared, environ={}).aw_timeout_seconds == 2


def test_the_permission_message_names_the_file_and_the_fix(tmp_path):
    config = write_config(tmp_path / "a b.toml", mode=0o644, aw_api_key=KEY)
    with pytest.raises(UsageError) as e:
        load_settings(config=config, environ={})
    assert str(e.value) == (f"config file {config} holds aw_api_key but others can read or change it "
                            f"(mode 0644); make it private: chmod 600 '{config}'")


@pytest.mark.parametrize("raw, source", [
    ({"LIFELOG_AW_API_KEY": f"{KEY} tail"}, "environment variable LIFELOG_AW_API_KEY"),
    ({"LIFELOG_AW_API_KEY": f"{KEY}\u00e9"}, "environment variable LIFELOG_AW_API_KEY"),
])
def test_a_bad_key_is_refused_without_showing_it(tmp_path, raw, source):
    with pytest.raises(UsageError) as e:
        load_settings(overrides={"db_path": str(tmp_path / "x.db")}, environ=raw)
    assert str(e.value).startswith(f"{source}: setting aw_api_key must") and KEY not in str(e.value)


def test_a_key_that_is_not_text_is_refused_without_showing_it(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("aw_api_key = 918273645546372819\n")
    config.chmod(0o600)
    with pytest.raises(UsageError) as e:
        load_settings(config=config, environ={})
    assert str(e.value).endswith("setting aw_api_key must be text, got a value of type int")
    assert "918273645546372819" not in str(e.value)


# -- the net under it: scrubbing ------------------------------------------------------------------------


def test_errors_and_log_lines_are_scrubbed_on_the_way_out(tmp_path):
    secret_url = f"https://user:pa55word-{KEY[-6:]}@hc-ping.com/{PING_TOKEN}/fail?rid=abcdefgh12345"
    redact.remember(KEY)
    redact.remember_url(secret_url)
    try:
        try:
            raise ValueError(f"inner {secret_url}")
        except ValueError as inner:
            raise RuntimeError(f"outer holds {KEY}") from inner
    except RuntimeError as e:
        shown = redact.scrubbed_traceback(e)
    assert "Traceback" in shown and "outer holds ***" in shown
    assert "inner https://***@hc-ping.com/***/fail?rid=***" in shown
    for secret in (KEY, PING_TOKEN, "pa55word", "abcdefgh12345"):
        assert secret not in shown

    record = logging.LogRecord("lifelog.x", logging.WARNING, __file__, 1, "poll failed: %s", (KEY,), None)
    line = redact.ScrubbingFormatter("%(message)s").format(record)
    assert line == "poll failed: ***"


def test_the_debug_traceback_of_the_command_line_is_scrubbed(tmp_path, db_path, monkeypatch, capsys):
    from lifelog import cli
    from lifelog.checks import health

    def boom(db, settings):
        raise RuntimeError(f"something held {settings.aw_api_key}")

    monkeypatch.setattr(health, "run_check", boom)
    monkeypatch.setenv("LIFELOG_AW_API_KEY", KEY)
    for debug in ("1", ""):
        monkeypatch.setenv("LIFELOG_DEBUG", debug)
        with pytest.raises(SystemExit) as e:
            cli.main(["health", "--db", str(db_path)])
        assert e.value.code == 1
        err = capsys.readouterr().err
        assert "RuntimeError: something held ***" in err and KEY not in err
        assert ("Traceback" in err) == bool(debug)


def test_a_ping_url_is_shown_redacted_and_its_token_scrubbed_but_common_words_are_not():
    url = "https://kuma.example/api/push/Xk3PqR7aZbQ2?status=up&msg=OK&ping="
    redact.remember_url(url)
    assert redact.scrub(f"OK: sent {url}; token Xk3PqR7aZbQ2 again") == (
        "OK: sent https://kuma.example/api/push/***?status=***&msg=***&ping=***; token *** again")
