"""Sources against a real aw-server (README "When an ActivityWatch watcher goes quiet"): threads feed AW as
its own watchers do (aw-watcher-afk's heartbeats, aw-watcher-window's), a
`lifelog watchdog` loop judges every pass, with thresholds of seconds.

Each test selects only its own buckets (`buckets` = `*<tag>*`), so the
session's shared aw-server serves them all."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import uuid
from datetime import timedelta

import pytest
from support.helpers import log_rows, meta, running_watcher, wait_for
from test_status import alert_script, alerts_sent

from lifelog.core import keys
from lifelog.core.timeutil import parse_iso, to_iso, utcnow
from lifelog.db.database import open_db

SILENCE_MINUTES = 0.05  # 3 s
SILENCE = SILENCE_MINUTES * 60
INTERVAL = 0.3  # watchdog_interval_seconds (FAST)
POLL = 0.2  # poll_interval_seconds (FAST)
FEED = 0.2  # how often the feeder heartbeats


class Feeder:
    """Heartbeats into AW buckets every FEED seconds, as AW's watchers do
    (pulsetime a little over the period, so each state is one growing event).
    `data[bucket]` may be changed while it runs; a bucket left out goes quiet."""

    def __init__(self, aw, data: dict[str, dict]):
        self.aw = aw
        self.data = dict(data)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.errors: list[str] = []

    def beat(self) -> None:
        now = to_iso(utcnow())
        for bucket_id, data in list(self.data.items()):
            self.aw.heartbeat(bucket_id, {"timestamp": now, "duration": 0, "data": data}, pulsetime=FEED * 5)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.beat()
            except Exception as e:  # the test's own assertion reports the consequence
                self.errors.append(repr(e))
            self.stop.wait(FEED)

    def __enter__(self) -> Feeder:
        self.beat()
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(10)


@pytest.fixture
def src(monitor_env, aw_server, db_path, tmp_path, spawn):
    """This test's bucket names, AW's own host name, and a watchdog loop to start."""
    tag = uuid.uuid4().hex[:8]
    host = aw_server.api("GET", "/info").json()["hostname"]
    env = dict(monitor_env, LIFELOG_BUCKETS=f"*{tag}*", LIFELOG_SOURCE_SILENCE_MINUTES=str(SILENCE_MINUTES),
               LIFELOG_SOURCE_SILENCE_CRITICAL_MINUTES="5")
    class Src:
        afk = f"aw-watcher-afk_{tag}"
        window = f"aw-watcher-window_{tag}"
        firefox = f"aw-watcher-web-firefox_{tag}"

        def __init__(self):
            self.tag, self.host, self.env, self.aw = tag, host, env, aw_server

        def bucket(self, bucket_id, type_, hostname=None):
            aw_server.create_bucket(bucket_id, type_, hostname or host)
            return bucket_id

        def once(self, bucket_id, data, seconds_ago=0.0, duration=0.0):
            when = utcnow() - timedelta(seconds=seconds_ago)
            aw_server.insert(bucket_id, [{"timestamp": to_iso(when), "duration": duration, "data": data}])
            return when + timedelta(seconds=duration)

        def watchdog(self, **extra):
            return spawn.lifelog("watchdog", "--db", str(db_path), env=dict(env, **extra), log="watchdog")

        def state(self, bucket_id):
            return meta(db_path, keys.source_state(bucket_id))

        def log(self, bucket_id):
            db = open_db(db_path, create=False)
            try:
                return [r["state"] for r in db.query(
                    "SELECT state FROM source_log WHERE bucket_id = ? ORDER BY id", (bucket_id,))]
            finally:
                db.close()

    return Src()


def test_a_silent_window_watcher_while_you_are_active_warns_within_the_threshold_and_a_pass(
        src, db_path, lifelog, tmp_path):
    """The issue's scenario: afk heartbeating not-afk, the window bucket silent."""
    command, alerts = alert_script(tmp_path)
    src.bucket(src.afk, "afkstatus")
    src.bucket(src.window, "currentwindow")
    # Both fed until LifeLog watches them live, so that the bound below is the
    # detection's, not the start-up of the watchdog and of its watcher (two
    # Python starts: seconds on a loaded machine).
    with Feeder(src.aw, {src.afk: {"status": "not-afk"}, src.window: {"app": "code", "title": "sources.py"}}):
        src.watchdog(LIFELOG_ALERT_COMMAND=command)
        wait_for(lambda: src.state(src.window) == src.state(src.afk) == "live", timeout=30,
                 what="both sources live")
    # That feeder stopped (joined: no beat in flight), the window watcher is quiet from the end
    # of its newest event; you stay active.
    went_quiet = max(parse_iso(e["timestamp"]) + timedelta(seconds=e["duration"]) for e in src.aw.events(src.window))
    with Feeder(src.aw, {src.afk: {"status": "not-afk"}}):
        wait_for(lambda: src.state(src.window) == "silent", timeout=30, what="the window source silent")
        since = parse_iso(meta(db_path, keys.source_since(src.window)))
        # Judged silent within the threshold plus one pass (plus the feeder's and
        # the watcher's periods, which bound how new LifeLog's afk events are,
        # and a margin for a loaded machine).
        assert (since - went_quiet).total_seconds() <= SILENCE + INTERVAL + POLL + FEED + 1.5
        assert src.state(src.afk) == "live"
        assert src.log(src.window)[-1] == "silent" and "silent" not in src.log(src.window)[:-1]

        r = lifelog("status", "--json", env=src.env)
        doc = json.loads(r.out)
        assert r.code == 1 and doc["level"] == "WARNING", r.out
        assert doc["summary"].startswith(f"WARNING: {src.window} silent for ")
        assert "while you were active" in doc["summary"]
        c = {c["name"]: c for c in doc["components"]}["sources"]
        assert c["level"] == "WARNING" and c["reason"].startswith(f"{src.window} silent for")

        r = lifelog("sources", env=src.env)
        assert r.code == 1, r.err
        header = r.out.splitlines()[0]
        assert header.split() == ["BUCKET", "TYPE", "HOST", "STATE", "NEWEST", "END", "AGE", "REASON"], r.out
        line = next(x for x in r.out.splitlines() if x.startswith(src.window))
        assert " silent " in line and "while you were active (" in line and "not-afk since its newest event" in line
        assert line.index(" silent ") + 1 == header.index("STATE")  # one column under its heading
        r = lifelog("sources", "--json", env=src.env)
        docs = {d["bucket_id"]: d for d in json.loads(r.out)}
        assert r.code == 1
        w = docs[src.window]
        assert w["state"] == "silent" and w["type"] == "currentwindow" and w["hostname"] == src.host
        assert w["age_seconds"] > SILENCE and w["since"] == to_iso(since)
        assert set(w) == {"bucket_id", "type", "hostname", "state", "since", "newest_end", "age_seconds", "reason"}
        assert docs[src.afk]["state"] == "live"
    # The status change alerted once, through the existing path.
    sent = [a for a in alerts_sent(alerts) if a["LIFELOG_STATUS"] == "WARNING"]
    assert len(sent) == 1 and src.window in sent[0]["LIFELOG_SUMMARY"]


def test_a_silent_window_watcher_while_you_are_away_is_idle(src, db_path, lifelog):
    src.bucket(src.afk, "afkstatus")
    src.bucket(src.window, "currentwindow")
    with Feeder(src.aw, {src.afk: {"status": "afk"}}):
        src.once(src.window, {"app": "code", "title": "x"})
        src.watchdog()
        wait_for(lambda: src.state(src.window) == "idle", timeout=30, what="the window source idle")
        # Another full threshold away: still idle, never silent.
        deadline = parse_iso(meta(db_path, keys.source_since(src.window))) + timedelta(seconds=SILENCE)
        wait_for(lambda: parse_iso(meta(db_path, keys.WATCHDOG_CHECKED_AT)) > deadline, timeout=30,
                 what="a pass a threshold later")
        assert src.state(src.window) == "idle"
        assert "silent" not in src.log(src.window)
        assert "you were away" in meta(db_path, keys.source_reason(src.window))
        r = lifelog("sources", "--json", env=src.env)
        assert r.code == 0, r.out  # none silent
        assert {d["bucket_id"]: d["state"] for d in json.loads(r.out)}[src.window] == "idle"


def test_a_browser_bucket_is_idle_while_a_terminal_has_focus_and_silent_while_its_browser_has(src, db_path):
    src.bucket(src.afk, "afkstatus")
    src.bucket(src.window, "currentwindow")
    src.bucket(src.firefox, "web.tab.current")
    src.once(src.firefox, {"url": "https://example.org/", "title": "Example", "audible": False,
                           "incognito": False, "tabCount": 1})
    feeder = Feeder(src.aw, {src.afk: {"status": "not-afk"}, src.window: {"app": "gnome-terminal", "title": "sh"}})
    with feeder:
        src.watchdog()
        wait_for(lambda: src.state(src.firefox) == "idle", timeout=30, what="the firefox source idle")
        assert src.state(src.window) == "live"
        assert "firefox in focus only" in meta(db_path, keys.source_reason(src.firefox))
        feeder.data[src.window] = {"app": "Firefox", "title": "Example - Mozilla Firefox"}
        wait_for(lambda: src.state(src.firefox) == "silent", timeout=30, what="the firefox source silent")
        assert meta(db_path, keys.source_reason(src.firefox)).startswith("while firefox was in focus")
        assert src.log(src.firefox) == ["unjudged", "idle", "silent"] or src.log(src.firefox)[-2:] == ["idle", "silent"]


def test_copies_and_other_hosts_buckets_are_never_judged(src, db_path):
    copy = src.bucket(f"aw-watcher-window_{src.tag}-synced-from-desk", "currentwindow", "desk")
    remote = src.bucket(f"aw-watcher-window_desk{src.tag}", "currentwindow", "desk")
    src.bucket(src.afk, "afkstatus")
    for b in (copy, remote):
        src.once(b, {"app": "x", "title": "y"}, seconds_ago=3600)
    with Feeder(src.aw, {src.afk: {"status": "not-afk"}}):
        src.watchdog()
        wait_for(lambda: src.state(src.afk) == "live", timeout=30, what="the afk source judged")
        start = utcnow()
        wait_for(lambda: parse_iso(meta(db_path, keys.WATCHDOG_CHECKED_AT)) > start + timedelta(seconds=SILENCE),
                 timeout=30, what="passes for a threshold more")
    assert src.log(copy) == ["copy"] and src.state(copy) == "copy"
    assert src.log(remote) == ["remote"] and src.state(remote) == "remote"
    assert "'desk'" in meta(db_path, keys.source_reason(remote))


def test_a_restart_command_runs_once_then_backs_off_per_source(src, db_path, tmp_path):
    runs = tmp_path / "runs.txt"
    script = tmp_path / "restart.py"
    script.write_text("import sys, time\n"
                      f"open({str(runs)!r}, 'a').write(repr(time.time()) + ' ' + sys.argv[1] + '\\n')\n")
    # `$HOME;x` reaches it as one word, untouched: split as a shell would, run with none.
    command = f"{sys.executable} {script} '$HOME;x'"
    src.bucket(src.afk, "afkstatus")
    src.bucket(src.window, "currentwindow")
    with Feeder(src.aw, {src.afk: {"status": "not-afk"}}):
        src.once(src.window, {"app": "code", "title": "x"})
        src.watchdog(LIFELOG_SOURCE_RESTART_COMMANDS=json.dumps({"aw-watcher-window": command}),
                     LIFELOG_RESTART_BACKOFF_INITIAL_SECONDS="1.5", LIFELOG_RESTART_BACKOFF_MAX_SECONDS="3")
        wait_for(lambda: db_path.exists() and len(log_rows(db_path, "verdict = 'restart:source_silent'")) >= 2,
                 timeout=40, what="a second restart of the window watcher")
    rows = log_rows(db_path, "verdict = 'restart:source_silent'")
    lines = runs.read_text().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["$HOME;x"] * len(rows)
    first, second = rows[0], rows[1]
    assert first["reason"].startswith(f"{src.window} silent: while you were active")
    assert "ran the restart command of aw-watcher-window: exit 0" == first["action"]
    assert [first["backoff_level"], second["backoff_level"]] == [1, 2]
    gap = (parse_iso(second["at"]) - parse_iso(first["at"])).total_seconds()
    assert gap >= 1.5  # the first backoff, as for the watcher
    assert int(meta(db_path, keys.source_restart_level(src.window))) >= 2
    # A source restart is not a replacement of LifeLog's watcher.
    assert all(r["replaced"] == 0 for r in rows)


def test_with_lifelogs_own_watcher_down_sources_are_unjudged_not_silent(src, db_path, lifelog):
    src.bucket(src.afk, "afkstatus")
    src.bucket(src.window, "currentwindow")
    with Feeder(src.aw, {src.afk: {"status": "not-afk"}, src.window: {"app": "code", "title": "x"}}) as feeder:
        src.watchdog()
        wait_for(lambda: src.state(src.window) == "live", timeout=30, what="the window source live")
        assert lifelog("watchdog", "pause", "--db", str(db_path), env=src.env).code == 0
        pid = running_watcher(db_path)
        assert pid
        os.kill(pid, signal.SIGKILL)
        # The window watcher goes quiet while you stay active: silent, were LifeLog watching.
        feeder.data.pop(src.window)
        wait_for(lambda: src.state(src.window) == "unjudged", timeout=30, what="the window source unjudged")
        start = utcnow()
        wait_for(lambda: parse_iso(meta(db_path, keys.WATCHDOG_CHECKED_AT)) > start + timedelta(seconds=SILENCE + 1),
                 timeout=30, what="passes for a threshold and more")
    assert "silent" not in src.log(src.window) and "silent" not in src.log(src.afk)
    assert src.state(src.window) == src.state(src.afk) == "unjudged"
    assert meta(db_path, keys.source_reason(src.window)).startswith("not judged while LifeLog's watcher is not running")
    assert log_rows(db_path, "verdict = 'restart:source_silent'") == []


def test_the_health_check_records_aws_own_host_name(aw_server, db_path, lifelog, monitor_env):
    from lifelog.ingest import servers

    assert lifelog("health", "--db", str(db_path), env=monitor_env).code == 0
    info = aw_server.api("GET", "/info").json()
    db = open_db(db_path, create=False)
    try:
        server = servers.current(db)
        assert server is not None
        assert (server.device_id, server.hostname, server.version) == (info["device_id"], info["hostname"],
                                                                       info["version"])
        # Unchanged and fresh: not rewritten (a poll every few seconds costs a read).
        servers.record(db, server.device_id, info)
        assert servers.current(db).seen_at == server.seen_at
    finally:
        db.close()
