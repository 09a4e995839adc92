"""Backups with real processes: a backup while events keep arriving through
a real aw-server and a running watcher, SIGKILL at random moments during a
backup, restore refused while LifeLog runs, and `lifelog daemon` making
verified, rotated backups on its own."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support import bigdb
from support.helpers import FAST, HeartbeatSampler, meta, stored, wait_for

from lifelog.backups.retention import NAME_RE
from lifelog.core import keys
from lifelog.core.timeutil import parse_iso, to_iso, utcnow
from lifelog.db.database import open_db
from lifelog.db.meta import set_meta

LIVE_BUCKET = "aw-watcher-window_backup-live"


def backups_in(folder: Path) -> list[str]:
    return sorted(p for p in os.listdir(folder) if NAME_RE.fullmatch(p)) if folder.exists() else []


def check(path) -> tuple[str, int]:
    """(integrity_check, events) of a database file."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return (conn.execute("PRAGMA integrity_check").fetchone()[0],
                conn.execute("SELECT count(*) FROM events").fetchone()[0])
    finally:
        conn.close()


@pytest.fixture
def procs(spawn):
    """Start LifeLog processes, output to a log file (stopped by `spawn`)."""
    def start(*args, env=None):
        return spawn.lifelog(*args, env=env, log=args[0])

    return start


def live_env(db_path, aw_server, **extra) -> dict:
    env = dict(os.environ, **FAST, LIFELOG_AW_URL=aw_server.url, LIFELOG_DB_PATH=str(db_path),
               LIFELOG_BUCKETS=LIVE_BUCKET)
    env.update({f"LIFELOG_{k.upper()}": str(v) for k, v in extra.items()})
    return env


class Feeder(threading.Thread):
    """Posts an event to AW every 20 ms until stopped."""

    def __init__(self, aw_server):
        super().__init__(daemon=True)
        self.aw, self.stop, self.sent = aw_server, threading.Event(), 0
        self.start_at = datetime.now(UTC) - timedelta(hours=1)

    def run(self):
        while not self.stop.wait(0.02):
            at = self.start_at + timedelta(seconds=self.sent)
            self.aw.insert(LIVE_BUCKET, [{"timestamp": at.isoformat(), "duration": 0.5,
                                          "data": {"app": "editor", "title": f"live {self.sent}"}}])
            self.sent += 1


def live_events(path) -> set[tuple[int, str]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=15)
    try:
        return set(conn.execute("SELECT event_id, timestamp FROM events WHERE bucket_id = ?", (LIVE_BUCKET,)))
    finally:
        conn.close()


def test_a_backup_while_events_keep_arriving_is_consistent_and_never_stalls_the_watcher(
        db_path, aw_server, procs, tmp_path, lifelog):
    bigdb.fill(db_path, 32 * 2**20)  # big enough for the backup to take a while
    aw_server.create_bucket(LIVE_BUCKET)
    env = live_env(db_path, aw_server)
    feeder = Feeder(aw_server)
    feeder.start()
    sampler = HeartbeatSampler(db_path)
    try:
        procs("watcher", "--db", str(db_path), env=env)
        wait_for(lambda: len(live_events(db_path)) >= 20, what="the watcher storing live events")
        sampler.start()
        wait_for(lambda: len(sampler.changes) >= 3, what="heartbeats seen")
        for _ in range(2):
            before = len(live_events(db_path))
            began = time.monotonic()
            r = lifelog("backup", "--db", str(db_path), "--dest", str(tmp_path / "b"), "--json", env=env)
            ended = time.monotonic()
            assert r.code == 0, r.err
            doc = json.loads(r.out)
            # The copy is one consistent snapshot: checked, and its count is the snapshot's.
            assert check(doc["path"]) == ("ok", doc["events"])
            copied = live_events(doc["path"])
            after = live_events(db_path)
            assert before <= len(copied) <= len(after)
            assert copied <= after  # every event in the copy is one LifeLog holds
            assert len(after) > before  # events kept arriving during the backup
            gap = sampler.largest_gap(began, ended)
            assert gap < float(FAST["LIFELOG_HEARTBEAT_TIMEOUT_SECONDS"]), \
                f"no heartbeat for {gap:.2f} s during a {ended - began:.2f} s backup"
            assert doc["seconds"] > 0.2  # the backup took long enough for this to mean something
    finally:
        feeder.stop.set()
        sampler.stop.set()
        feeder.join(10)
        sampler.join(10)
    assert meta(db_path, keys.WATCHER_LAST_ERROR) == ""


def test_sigkill_at_random_moments_never_leaves_a_partial_backup_under_a_backup_name(db_path, procs, tmp_path,
                                                                                     lifelog):
    seed = int(os.environ.get("LIFELOG_TEST_SEED", random.randrange(10**6)))
    rng = random.Random(seed)
    bigdb.fill(db_path, 32 * 2**20)
    _, events = check(db_path)
    dest = tmp_path / "b"
    began = time.monotonic()
    first = lifelog("backup", "--db", str(db_path), "--dest", str(dest), "--json")
    whole = time.monotonic() - began  # a whole `lifelog backup`, start to exit
    assert first.code == 0, first.err
    doc = json.loads(first.out)
    older = Path(doc["path"])
    older_bytes = older.read_bytes()
    # How long the hidden partial file lives: the copy, the check and the sync.
    partial_life = doc["copy_seconds"] + doc["verify_seconds"] + doc["sync_seconds"]
    landed_mid_backup = 0
    for round_ in range(6):
        p = procs("backup", "--db", str(db_path), "--dest", str(dest))
        if round_ % 2:
            # Once the copy has begun, at a random point of the rest of it.
            wait_for(lambda: p.poll() is not None or any("partial" in n for n in os.listdir(dest)),
                     interval=0.002, what="the copy to begin")
            time.sleep(rng.uniform(0, partial_life * 0.8))  # the kill moment: this test's input
        else:
            time.sleep(rng.uniform(0, whole))
        landed_mid_backup += any("partial" in n for n in os.listdir(dest)) and p.poll() is None
        p.kill()
        p.wait(10)
        for name in set(backups_in(dest)) - {older.name}:  # any file named like a backup is a whole one
            assert check(dest / name) == ("ok", events), f"seed {seed}, round {round_}: {name}"
        assert older.read_bytes() == older_bytes, f"seed {seed}"
    assert landed_mid_backup >= 3, f"seed {seed}: only {landed_mid_backup} kills landed during a copy"
    assert check(db_path) == ("ok", events)
    # The next backup clears what the killed ones left, and keeps the older one.
    r = lifelog("backup", "--db", str(db_path), "--dest", str(dest), "--json")
    assert r.code == 0, r.err
    assert [n for n in os.listdir(dest) if not NAME_RE.fullmatch(n)] == []
    assert older.name in backups_in(dest) and Path(json.loads(r.out)["path"]).name in backups_in(dest)


@pytest.mark.parametrize("role", ["watcher", "daemon"])
def test_restore_is_refused_while_lifelog_runs(db_path, aw_server, procs, tmp_path, lifelog, role):
    aw_server.create_bucket(LIVE_BUCKET)
    env = live_env(db_path, aw_server, backup_interval_hours=0)
    lifelog("init", "--db", str(db_path), env=env)
    r = lifelog("backup", "--db", str(db_path), "--dest", str(tmp_path / "b"), "--json", env=env)
    assert r.code == 0, r.err
    copy = json.loads(r.out)["path"]
    p = procs(role, "--db", str(db_path), env=env)
    wait_for(lambda: meta(db_path, f"{role}.state") == "running", what=f"the {role} running")
    inode = db_path.stat().st_ino
    r = lifelog("restore", "--db", str(db_path), copy, env=env)
    assert r.code == 1
    assert f"a lifelog {role} (pid {p.pid}) is running on {db_path}" in r.err
    assert "nothing was changed" in r.err and len(r.err.strip().splitlines()) == 1
    assert db_path.stat().st_ino == inode
    assert not [n for n in os.listdir(tmp_path) if "before-restore" in n or "restore.partial" in n]
    assert p.poll() is None


def test_the_daemon_makes_verified_rotated_backups_on_its_own(db_path, aw_server, procs, tmp_path):
    aw_server.create_bucket(LIVE_BUCKET)
    dest = tmp_path / "b"
    env = live_env(db_path, aw_server, backup_interval_hours=0.0003,  # every 1.08 s
                   backup_dir=dest, backup_keep_daily=1, backup_keep_weekly=0, backup_keep_monthly=0)
    feeder = Feeder(aw_server)
    feeder.start()
    try:
        procs("daemon", "--db", str(db_path), env=env)
        seen: set[str] = set()

        def rotated_and_verified():
            ok_at = meta(db_path, keys.BACKUP_LAST_OK_AT)
            if ok_at:
                seen.add(ok_at)
            path = meta(db_path, keys.BACKUP_LAST_PATH)
            if len(seen) < 3 or path is None or backups_in(dest) != [Path(path).name]:
                return False
            try:  # the next backup's retention may remove it meanwhile: then look again
                return check(path) == ("ok", int(meta(db_path, keys.BACKUP_LAST_EVENTS)))
            except sqlite3.Error:
                return False

        wait_for(rotated_and_verified, timeout=60, what="three scheduled backups, rotated to one, verified")
        assert meta(db_path, keys.BACKUP_LAST_ERROR) == ""
        assert int(meta(db_path, keys.BACKUP_LAST_EVENTS)) > 0
    finally:
        feeder.stop.set()
        feeder.join(10)


def test_the_daemon_backs_up_at_launch_only_when_the_newest_is_an_interval_old(db_path, aw_server, procs,
                                                                               tmp_path):
    aw_server.create_bucket(LIVE_BUCKET)
    dest = tmp_path / "b"
    env = live_env(db_path, aw_server, backup_interval_hours=1, backup_dir=dest)
    old = to_iso(utcnow() - timedelta(hours=1, seconds=1))
    with open_db(db_path) as db:
        set_meta(db, keys.BACKUP_LAST_OK_AT, old)
    d = procs("daemon", "--db", str(db_path), env=env)
    made = wait_for(lambda: (v := meta(db_path, keys.BACKUP_LAST_OK_AT)) != old and v,
                    what="a backup at launch, recorded")
    assert len(backups_in(dest)) == 1
    d.send_signal(signal.SIGTERM)
    assert d.wait(15) == 0
    # Launched again: the newest is minutes old, so nothing is due until the hour is up.
    procs("daemon", "--db", str(db_path), env=env)
    wait_for(lambda: meta(db_path, "daemon.state") == "running", what="the second daemon")
    passes: set[str] = set()
    wait_for(lambda: passes.add(meta(db_path, keys.WATCHDOG_CHECKED_AT) or "") or len(passes) >= 4,
             what="a few watchdog passes of the second daemon")
    assert meta(db_path, keys.BACKUP_LAST_OK_AT) == made
    assert len(backups_in(dest)) == 1


def aw_truth(aw, bucket_id) -> dict:
    """What AW holds for a bucket, as `stored` gives LifeLog's copy."""
    return {e["id"]: (to_iso(parse_iso(e["timestamp"])), e["duration"], e["data"]) for e in aw.events(bucket_id)}


def rows_of(db_path, bucket_id) -> int:
    """Every row of a bucket, marked deleted or not: a doubled event shows here."""
    conn = sqlite3.connect(db_path, timeout=15)
    try:
        return conn.execute("SELECT count(*) FROM events WHERE bucket_id = ?", (bucket_id,)).fetchone()[0]
    finally:
        conn.close()


def test_after_a_restore_the_next_watcher_fetches_what_aw_recorded_since_the_backup_exactly_once(
        db_path, aw_server, procs, tmp_path, lifelog):
    bucket = f"aw-watcher-window_restore-{tmp_path.name}"
    aw_server.create_bucket(bucket)
    env = dict(live_env(db_path, aw_server), LIFELOG_BUCKETS=bucket)
    t0 = utcnow() - timedelta(minutes=40)

    def arrive(first: int, count: int) -> None:
        """Events `first`.. every 10 s, the newest grown in place by heartbeats (as aw-watcher-window does;
        all of its heartbeats, since aw-server merges a heartbeat only into the event its last one made)."""
        last = first + count - 1
        aw_server.insert(bucket, [{"timestamp": to_iso(t0 + timedelta(seconds=10 * i)), "duration": 4,
                                   "data": {"app": "editor", "n": i}} for i in range(first, last)])
        for grown in (0, 6, 8):
            aw_server.heartbeat(bucket, {"timestamp": to_iso(t0 + timedelta(seconds=10 * last + grown)),
                                         "duration": 0, "data": {"app": "editor", "n": last}}, pulsetime=10)

    arrive(0, 60)
    watcher = procs("watcher", "--db", str(db_path), env=env)
    wait_for(lambda: stored(db_path, bucket) == aw_truth(aw_server, bucket), what="the first events stored")
    r = lifelog("backup", "--db", str(db_path), "--dest", str(tmp_path / "b"), "--json", env=env)
    assert r.code == 0, r.err
    copy = json.loads(r.out)["path"]
    at_backup = aw_truth(aw_server, bucket)

    arrive(60, 60)  # after the backup: in the database, then lost again by the restore
    wait_for(lambda: stored(db_path, bucket) == aw_truth(aw_server, bucket), what="the events after the backup")
    watcher.send_signal(signal.SIGTERM)
    assert watcher.wait(15) == 0
    r = lifelog("restore", "--db", str(db_path), copy, env=env)
    assert r.code == 0, r.err
    assert stored(db_path, bucket) == at_backup  # the database went back to the backup

    arrive(120, 60)  # while no watcher runs
    procs("watcher", "--db", str(db_path), env=env)
    expected = aw_truth(aw_server, bucket)
    assert len(expected) == 180
    wait_for(lambda: stored(db_path, bucket) == expected, timeout=60,
             what="everything AW recorded since the backup, fetched again")
    assert rows_of(db_path, bucket) == 180  # each event once, none marked deleted
