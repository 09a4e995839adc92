"""Bad input, tried: garbage in meta, a config that is not TOML, AW answering
nonsense, odd events, a file that is not SQLite, a read-only folder, a full
disk. Each gets a clear one-line message and the right exit code or status;
what is already stored survives intact; LifeLog recovers by itself once the
cause is gone."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.fakeaw import BUCKETS, INFO, FakeAW
from support.helpers import (
    alive,
    log_rows,
    meta,
    one_pass,
    running_watcher,
    stored,
    wait_for,
    watchers_on,
)

from lifelog.core.timeutil import parse_iso, to_iso, utcnow
from lifelog.db.database import SCHEMA_VERSION, open_db, transaction
from lifelog.db.meta import set_meta

pytestmark = pytest.mark.chaos
UTC = UTC



def truth(aw, bucket_id):
    return {e["id"]: (to_iso(parse_iso(e["timestamp"])), e["duration"], e["data"]) for e in aw.events(bucket_id)}


def integrity(db_path) -> str:
    conn = sqlite3.connect(db_path, timeout=15)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def one_line_error(r, code, needle):
    assert r.code == code, (r.code, r.out, r.err)
    assert "Traceback" not in r.err
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lifelog: error:") and needle in lines[0], r.err


_n = iter(range(10**6))


def bucket_with_events(aw, n=3, **extra_events):
    name = f"test-bad-{os.getpid()}-{next(_n)}"
    aw.create_bucket(name)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)  # fresh: no hold:source_stale
    aw.insert(name, [{"timestamp": (t0 + timedelta(minutes=i)).isoformat(), "duration": 20, "data": {"n": i}}
                     for i in range(n)])
    return name


# -- meta edited by hand ------------------------------------------------------------

GARBAGE = {
    "watcher.pid": "not-a-pid",
    "watcher.started_at": "last tuesday",
    "watcher.heartbeat_at": "2999-01-01T00:00:00+00:00",  # far in the future
    "watcher.heartbeat_clocks": "tick tock",
    "watcher.last_event_ts": "soon",
    "watchdog.last_restart_at": "9999-12-31T23:59:59+00:00",
    "watchdog.last_start_at": "yesterday",
    "watchdog.restart_count": "many",
    "watchdog.backoff_level": "-7x",
    "aw.consecutive_failures": "lots",
    "status.level": "PURPLE",
}


def set_all(db_path, values):
    db = open_db(db_path)
    with transaction(db):
        for key, value in values.items():
            set_meta(db, key, value)
    db.conn.close()


def test_a_garbage_watcher_pid_is_recorded_again_by_the_running_watcher_without_a_second_one(
        lifelog, db_path, monitor_env, aw_server):
    bucket = bucket_with_events(aw_server)
    env = dict(monitor_env, LIFELOG_BUCKETS=bucket)
    one_pass(lifelog, env)
    pid = wait_for(lambda: running_watcher(db_path), what="the watcher running")
    set_all(db_path, {"watcher.pid": "not-a-pid", "watchdog.spawned_pid": "12x"})
    one_pass(lifelog, env)  # may try a start: that one finds the watcher lock held and exits 1
    wait_for(lambda: meta(db_path, "watcher.pid") == str(pid), what="the watcher to record its pid again")
    passes = []
    try:
        wait_for(lambda: passes.append(one_pass(lifelog, env)) or passes[-1]["verdict"] == "ok", what="an ok pass")
    except AssertionError as e:
        raise AssertionError(passes[-3:]) from e
    assert alive(pid) and [p.pid for p in watchers_on(db_path)] == [pid]


def test_garbage_meta_gets_verdicts_not_tracebacks_and_lifelog_recovers_by_itself(lifelog, db_path, monitor_env,
                                                                                  aw_server):
    bucket = bucket_with_events(aw_server)
    env = dict(monitor_env, LIFELOG_BUCKETS=bucket)
    one_pass(lifelog, env)
    wait_for(lambda: running_watcher(db_path), what="the watcher running")
    expected = truth(aw_server, bucket)
    wait_for(lambda: stored(db_path, bucket) == expected, what="events stored")
    garbage_at = to_iso(utcnow())
    set_all(db_path, GARBAGE)
    doc = one_pass(lifelog, env)
    assert doc["verdict"] and doc["reason"]
    for args, codes in ((("status", "--json"), (0, 1, 2)), (("health", "--json"), (0,)), (("meta", "show"), (0,))):
        r = lifelog(*args, env=env)
        assert r.code in codes and "Traceback" not in r.err, (args, r.code, r.err)
        if "--json" in args:
            json.loads(r.out)
    # Without help: a watcher runs and heartbeats, passes say ok, counters are numbers again.
    ok = wait_for(lambda: running_watcher(db_path) and (doc := one_pass(lifelog, env))["verdict"] == "ok" and doc,
                  what="an ok pass")
    assert len(watchers_on(db_path)) == 1
    # The watcher may re-record its pid before the first pass reads it (it polls every
    # 0.2 s): a restart happens only if the pass was first. Either way the word counts
    # as 0: the count is the restarts since, and the backoff level the last pass's.
    restarts = log_rows(db_path, f"verdict LIKE 'restart:%' AND at >= '{garbage_at}'")
    assert meta(db_path, "watchdog.restart_count") == str(len(restarts)), restarts
    assert meta(db_path, "watchdog.backoff_level") == str(ok["backoff_level"])
    assert meta(db_path, "aw.consecutive_failures") == "0"
    assert stored(db_path, bucket) == expected
    assert integrity(db_path) == "ok"


# -- config and database files that are not what they claim ------------------------


@pytest.mark.parametrize("command", [["watcher"], ["daemon"], ["watchdog", "--once"], ["health"], ["backfill"]])
def test_a_config_that_is_not_toml_and_a_db_that_is_not_sqlite_are_one_line_exit_2(lifelog, tmp_path, command):
    (tmp_path / "bad.toml").write_text("[[[ this is not toml")
    notsqlite = tmp_path / "notsqlite.db"
    notsqlite.write_bytes(b"plain text, not SQLite\n" * 100)
    before = notsqlite.read_bytes()
    env = dict(os.environ, LIFELOG_AW_URL="http://127.0.0.1:9")
    r = lifelog(*command, "--db", str(tmp_path / "new.db"), "--config", str(tmp_path / "bad.toml"), env=env)
    one_line_error(r, 2, "bad.toml")
    assert not (tmp_path / "new.db").exists()
    r = lifelog(*command, "--db", str(notsqlite), env=env, timeout=30)
    one_line_error(r, 2, "not a usable SQLite database")
    assert notsqlite.read_bytes() == before


# -- a database made by a newer LifeLog (a downgrade) --------------------------------

NEWER = (f"made by a newer LifeLog (schema version {SCHEMA_VERSION + 1}; this one knows {SCHEMA_VERSION}):"
         " upgrade LifeLog")


def newer_database(folder: Path) -> Path:
    """A LifeLog database as a LifeLog one schema version ahead left it."""
    folder.mkdir()
    path = folder / "lifelog.db"
    db = open_db(path)
    set_meta(db, "kept", "yes")
    db.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()  # the last connection: the WAL is checkpointed and removed
    return path


def on_disk(folder: Path) -> dict:
    """Every file in the folder (a -wal or -shm left behind, a lock file, included): bytes and mtime."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("command", [["init"], ["meta", "show"], ["meta", "get", "kept"], ["health"],
                                     ["watchdog", "--once"], ["watchdog", "pause"], ["backfill"], ["reconcile"],
                                     ["sources"], ["coverage"], ["backup"]])
def test_a_database_made_by_a_newer_lifelog_is_refused_in_one_line_and_left_alone(cli, tmp_path, command):
    path = newer_database(tmp_path / "db")
    before = on_disk(path.parent)
    r = cli(*command, "--db", str(path), env={"LIFELOG_AW_URL": "http://127.0.0.1:9"})
    one_line_error(r, 2, f"{path} was {NEWER}")
    assert on_disk(path.parent) == before


@pytest.mark.parametrize("command", [["watcher"], ["daemon"]])
def test_a_watcher_or_daemon_on_a_newer_database_exits_2_in_one_line_and_leaves_it_alone(lifelog, tmp_path,
                                                                                          command):
    path = newer_database(tmp_path / "db")
    before = on_disk(path.parent)
    r = lifelog(*command, "--db", str(path), env=dict(os.environ, LIFELOG_AW_URL="http://127.0.0.1:9"), timeout=30)
    one_line_error(r, 2, f"{path} was {NEWER}")
    assert on_disk(path.parent) == before


def test_status_of_a_newer_database_is_unknown_naming_the_versions(cli, lifelog, tmp_path):
    # SPEC: status is UNKNOWN (3) when the database cannot be read, as for a
    # missing one or a file that is not SQLite; the reason is the same line.
    path = newer_database(tmp_path / "db")
    before = on_disk(path.parent)
    r = cli("status", "--db", str(path))
    assert r.code == 3 and r.out.startswith(f"UNKNOWN: {path} was {NEWER}"), (r.code, r.out, r.err)
    r = lifelog("status", "--json", "--db", str(path))
    doc = json.loads(r.out)
    assert r.code == 3 and doc["level"] == "UNKNOWN" and f"{path} was {NEWER}" in doc["summary"], (r.code, doc)
    assert on_disk(path.parent) == before


# -- AW answering nonsense ----------------------------------------------------------


def test_aw_answering_non_json_or_a_list_is_degraded_and_stored_data_survives(lifelog, db_path, aw_server):
    bucket = bucket_with_events(aw_server)
    env = dict(os.environ, LIFELOG_BUCKETS=bucket, LIFELOG_AW_TIMEOUT_SECONDS="2")
    assert lifelog("backfill", "--db", str(db_path), "--aw-url", aw_server.url, env=env).code == 0
    expected = truth(aw_server, bucket)
    assert stored(db_path, bucket) == expected
    fakes = [FakeAW({"/api/0/info": (200, "application/json", b"{not json"), "/api/0/buckets/": BUCKETS}),
             FakeAW({"/api/0/info": INFO, "/api/0/buckets/": (200, "application/json", b"[1, 2]")})]
    try:
        for fake, needle in zip(fakes, ("not JSON", "JSON list, expected dict"), strict=True):
            r = lifelog("health", "--db", str(db_path), env=dict(env, LIFELOG_AW_URL=fake.url))
            assert r.code == 1 and needle in r.out and "Traceback" not in r.err, (r.out, r.err)
            r = lifelog("backfill", "--db", str(db_path), "--aw-url", fake.url, env=env)
            one_line_error(r, 1, needle)
            assert stored(db_path, bucket) == expected
    finally:
        for fake in fakes:
            fake.close()
    # The cause gone, everything works again.
    r = lifelog("health", "--db", str(db_path), env=dict(env, LIFELOG_AW_URL=aw_server.url))
    assert r.code == 0, r.out
    assert meta(db_path, "aw.status") == "healthy"
    assert lifelog("reconcile", "--db", str(db_path), "--aw-url", aw_server.url, env=env).code == 0
    assert stored(db_path, bucket) == expected and integrity(db_path) == "ok"


@pytest.mark.parametrize("missing", ["duration", "timestamp"])
def test_an_event_missing_a_field_is_named_in_one_line_not_a_keyerror(lifelog, db_path, missing):
    hint = "2026-11-28T10:00:00+00:00"
    listing = json.dumps({"b": {"id": "b", "created": hint, "type": "x", "client": "c", "hostname": "h",
                                "last_updated": hint}}).encode()
    whole = {"id": 7, "timestamp": "2026-11-28T09:59:00+00:00", "duration": 60.0, "data": {}}
    del whole[missing]
    event = json.dumps([whole]).encode()
    fake = FakeAW({"/api/0/info": INFO, "/api/0/buckets/": (200, "application/json", listing),
                   "/api/0/buckets/b/events": (200, "application/json", event)})
    try:
        r = lifelog("backfill", "--db", str(db_path), "--aw-url", fake.url)
    finally:
        fake.close()
    one_line_error(r, 1, "bucket b sent an unusable event (id 7)")
    assert f"field '{missing}'" in r.err
    assert integrity(db_path) == "ok"


def test_negative_durations_and_a_10_mb_title_are_stored_exactly_as_aw_holds_them(lifelog, db_path, aw_server):
    bucket = bucket_with_events(aw_server, n=1)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    aw_server.insert(bucket, [
        {"timestamp": t0.isoformat(), "duration": -5.5, "data": {"app": "negative"}},
        {"timestamp": (t0 + timedelta(minutes=1)).isoformat(), "duration": 3,
         "data": {"app": "huge", "title": "x" * (10 * 1024 * 1024)}},
    ])
    r = lifelog("backfill", "--db", str(db_path), "--aw-url", aw_server.url,
                env=dict(os.environ, LIFELOG_BUCKETS=bucket), timeout=120)
    assert r.code == 0, r.err
    expected = truth(aw_server, bucket)
    got = stored(db_path, bucket)
    assert got == expected
    assert sorted(d for _, d, _ in got.values())[0] == -5.5
    assert max(len(data.get("title", "")) for _, _, data in got.values()) == 10 * 1024 * 1024


# -- the filesystem: read-only folder, full disk (need root for mounts) -------------


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, timeout=30)


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


@pytest.fixture
def can_mount(tmp_path):
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root and mount(8): a read-only bind mount and a small tmpfs")
    probe = tmp_path / "probe"
    probe.mkdir()
    try:
        _mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe))
    except (subprocess.CalledProcessError, OSError) as e:
        pytest.skip(f"mount is not permitted here: {e}")
    _umount(probe)
    return True


@pytest.fixture
def mounts():
    made: list[Path] = []
    yield made
    for path in reversed(made):
        _umount(path)


def test_a_read_only_folder_is_reported_in_one_line_and_nothing_is_changed(lifelog, tmp_path, can_mount, mounts,
                                                                          aw_server):
    real, ro = tmp_path / "real", tmp_path / "ro"
    real.mkdir()
    ro.mkdir()
    db = real / "lifelog.db"
    bucket = bucket_with_events(aw_server)
    env = dict(os.environ, LIFELOG_BUCKETS=bucket, LIFELOG_AW_URL=aw_server.url)
    assert lifelog("backfill", "--db", str(db), env=env).code == 0
    expected = stored(db, bucket)
    before = {p.name: p.read_bytes() for p in real.iterdir()}
    _mount("--bind", str(real), str(ro))
    mounts.append(ro)
    _mount("-o", "remount,bind,ro", str(ro))
    r = lifelog("init", "--db", str(ro / "new.db"), env=env)
    one_line_error(r, 2, "new.db")
    for command in (["watcher"], ["daemon"], ["watchdog", "--once"], ["backfill"], ["health"]):
        r = lifelog(*command, "--db", str(ro / "lifelog.db"), env=env, timeout=30)
        one_line_error(r, 2, "on a read-only file system")
    r = lifelog("status", "--db", str(ro / "lifelog.db"), env=env)
    assert r.code == 3 and r.out.startswith("UNKNOWN: ") and "read-only" in r.out, (r.code, r.out, r.err)
    assert {p.name: p.read_bytes() for p in real.iterdir()} == before
    _umount(ro)
    mounts.remove(ro)
    # Writable again: the same database works, its events intact.
    assert lifelog("reconcile", "--db", str(db), env=env).code == 0
    assert stored(db, bucket) == expected == truth(aw_server, bucket)
    assert integrity(db) == "ok"


def test_a_full_disk_keeps_the_watcher_alive_loses_nothing_and_it_catches_up_once_space_is_back(
        tmp_path, can_mount, mounts, aw_server, spawn):
    disk = tmp_path / "disk"
    disk.mkdir()
    _mount("-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk))
    mounts.append(disk)
    db = disk / "lifelog.db"
    bucket = bucket_with_events(aw_server)
    log = tmp_path / "watcher.log"
    env = dict(os.environ, LIFELOG_AW_URL=aw_server.url, LIFELOG_POLL_INTERVAL_SECONDS="0.2",
               LIFELOG_BUCKETS=bucket)
    with open(log, "wb") as out:
        p = spawn([sys.executable, "-m", "lifelog", "watcher", "--db", str(db)], env=env, stdout=out,
                  stderr=subprocess.STDOUT)
    first = truth(aw_server, bucket)
    wait_for(lambda: stored(db, bucket) == first, what="the first events")
    filler = disk / "filler"
    # Fill the disk to the last byte; unbuffered, so nothing is left to flush
    # (and fail) at close whatever the free space was.
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError:
            pass
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=4)
    aw_server.insert(bucket, [{"timestamp": (t0 + timedelta(seconds=i / 10)).isoformat(), "duration": 0.05,
                               "data": {"title": "y" * 300, "i": i}} for i in range(1500)])
    during = truth(aw_server, bucket)
    wait_for(lambda: "full" in log.read_text(), timeout=30, what="the watcher to meet the full disk")
    assert p.poll() is None, log.read_text()[-2000:]
    assert first.items() <= stored(db, bucket).items()
    assert integrity(db) == "ok"
    filler.unlink()
    wait_for(lambda: stored(db, bucket) == during, timeout=60, what="catching up once space is back")
    assert p.poll() is None and integrity(db) == "ok"
    wait_for(lambda: meta(db, "watcher.last_error") == "", what="the error cleared")
    assert "Traceback" not in log.read_text()

