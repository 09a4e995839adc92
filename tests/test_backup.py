"""`lifelog backup` and `lifelog restore` (README "Backups"): the copy, its
check, failures that leave nothing behind, retention on disk, restore and
its refusals; the schedule and the status component at their boundaries.

The tests with a live watcher, the daemon and SIGKILL are in
tests/test_backup_process.py."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from support import bigdb

from lifelog.backups import backup
from lifelog.backups import status as backup_status
from lifelog.backups.retention import NAME_RE, backup_name
from lifelog.checks.status import Snapshot
from lifelog.core import keys
from lifelog.core.identity import WatcherFacts
from lifelog.core.locks import ProcessLock
from lifelog.core.settings import load_settings
from lifelog.core.timeutil import UTC, to_iso
from lifelog.core.verdicts import Level
from lifelog.db.database import SCHEMA_VERSION, open_db
from lifelog.db.meta import get_meta, set_meta

# -- helpers --------------------------------------------------------------------------------


EVENTS = 20_000


@pytest.fixture(scope="session")
def filled_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("template") / "lifelog.db"
    bigdb.fill(path, 1, chunk=EVENTS)
    return path


@pytest.fixture
def filled_db(db_path, filled_template) -> Path:
    """A LifeLog database (closed, checkpointed) with 20,000 synthetic events, about 12 MB."""
    shutil.copyfile(filled_template, db_path)
    os.chmod(db_path, 0o600)
    return db_path


def settings_for(db_path, **overrides):
    return load_settings(overrides={"db_path": str(db_path), **{k: str(v) for k, v in overrides.items()}})


def events_of(path) -> list[tuple]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT server, bucket_id, event_id, timestamp, duration, data FROM events "
                            "ORDER BY server, bucket_id, event_id").fetchall()
    finally:
        conn.close()


def integrity(path) -> str:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def backups_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if NAME_RE.fullmatch(p.name)) if folder.exists() else []


def sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def add_events(db_path, first_id: int, n: int, bucket="aw-watcher-window_later") -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [(bucket, i, to_iso(start + timedelta(seconds=i)), to_iso(start + timedelta(seconds=i + 1)))
            for i in range(first_id, first_id + n)]
    with open_db(db_path) as db:
        db.conn.executemany(
            "INSERT INTO events (server, bucket_id, event_id, timestamp, duration, data, ended_at, ingested_at,"
            " updated_at) VALUES ('s', ?, ?, ?, 1.0, '{}', ?, ?4, ?4)", rows)


def write_and_die(db_path, first_id: int) -> None:
    """Commit a few events and exit without closing, as a killed watcher
    does: the database keeps its -wal (holding them) and -shm."""
    code = ("import os, sqlite3, sys\n"
            "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "c.execute('PRAGMA wal_autocheckpoint = 0')\n"
            "c.executemany(\"INSERT INTO events (server, bucket_id, event_id, timestamp, duration, data, ended_at,"
            " ingested_at, updated_at) VALUES ('s', 'killed', ?, 't', 1, '{}', 't', 't', 't')\","
            " [(i,) for i in range(int(sys.argv[2]), int(sys.argv[2]) + 10)])\n"
            "os._exit(0)\n")
    subprocess.run([sys.executable, "-c", code, str(db_path), str(first_id)], check=True, timeout=60)


def listing(folder: Path) -> dict[str, str]:
    """Every file in a folder but the process locks, with its content's hash."""
    return {p.name: sha(p) for p in sorted(folder.iterdir()) if p.is_file() and not p.name.endswith(".lock")}


# -- a backup ---------------------------------------------------------------------------------


def test_a_backup_is_a_verified_private_copy_named_for_its_utc_second(filled_db, lifelog, tmp_path):
    dest = tmp_path / "backups"
    r = lifelog("backup", "--db", str(filled_db), "--dest", str(dest), "--json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert {"path", "bytes", "events", "seconds"} <= set(doc)
    path = Path(doc["path"])
    assert path.parent == dest and NAME_RE.fullmatch(path.name)
    assert path.name == backup_name(datetime.fromisoformat(doc["snapshot_at"]))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert doc["bytes"] == path.stat().st_size
    assert doc["events"] == EVENTS
    assert integrity(path) == "ok"
    assert events_of(path) == events_of(filled_db)
    assert backups_in(dest) == [path.name]
    assert sorted(os.listdir(dest)) == [path.name]  # no partial, no -wal or -journal beside it
    # One self-contained file: a rollback-journal database, not a WAL one.
    assert path.read_bytes()[18:20] == b"\x01\x01"
    with open_db(filled_db, create=False) as db:
        assert get_meta(db, keys.BACKUP_LAST_OK_AT) == doc["snapshot_at"]
        assert get_meta(db, keys.BACKUP_LAST_PATH) == str(path)
        assert get_meta(db, keys.BACKUP_LAST_BYTES) == str(doc["bytes"])
        assert get_meta(db, keys.BACKUP_LAST_EVENTS) == str(EVENTS)
        assert get_meta(db, keys.BACKUP_LAST_ERROR) == ""


def test_by_default_backups_go_to_backup_dir_and_the_human_form_says_what_was_done(filled_db, lifelog, tmp_path,
                                                                                 isolated_env):
    r = lifelog("backup", "--db", str(filled_db))
    assert r.code == 0, r.err
    folder = isolated_env / "data" / "lifelog" / "backups"
    [name] = backups_in(folder)
    lines = r.out.splitlines()
    assert lines[0].startswith(f"backup verified: {folder / name} (")
    assert f"{EVENTS:,} events" in lines[0]
    assert lines[1] == "retention: kept 1, removed 0"
    env = dict(os.environ, LIFELOG_BACKUP_DIR=str(tmp_path / "elsewhere"))
    assert lifelog("backup", "--db", str(filled_db), env=env).code == 0
    assert len(backups_in(tmp_path / "elsewhere")) == 1


@pytest.mark.parametrize("args, env, culprit", [
    (["--db", "{tmp}/missing.db"], {}, "no database at"),
    (["--dest", ""], {}, "--dest"),
    (["--keep", "3"], {}, "No such option: --keep"),
    ([], {"LIFELOG_BACKUP_KEEP_DAILY": "two"}, "LIFELOG_BACKUP_KEEP_DAILY"),
    ([], {"LIFELOG_BACKUP_KEEP_WEEKLY": "1.5"}, "whole number"),
])
def test_bad_input_is_exit_2_and_writes_nothing(filled_db, lifelog, tmp_path, args, env, culprit):
    args = [a.format(tmp=tmp_path) for a in args]
    if "--db" not in args:
        args += ["--db", str(filled_db)]
    if "--dest" not in args:
        args += ["--dest", str(tmp_path / "b")]
    before = listing(tmp_path)
    r = lifelog("backup", *args, env=dict(os.environ, **env))
    assert r.code == 2, r
    assert len(r.err.strip().splitlines()) == 1 and culprit in r.err and "Traceback" not in r.err
    assert r.out == ""
    assert listing(tmp_path) == before
    assert not (tmp_path / "b").exists()


def test_dry_run_writes_and_removes_nothing_and_shows_the_plan(filled_db, lifelog, tmp_path):
    dest = tmp_path / "b"
    dest.mkdir()
    old = [backup_name(datetime(2026, 1, d, 3, 30, tzinfo=UTC)) for d in (1, 2, 3)]
    for name in old:
        (dest / name).write_bytes(b"an old backup")
    env = dict(os.environ, LIFELOG_BACKUP_KEEP_DAILY="2", LIFELOG_BACKUP_KEEP_WEEKLY="0",
               LIFELOG_BACKUP_KEEP_MONTHLY="0")
    before = listing(tmp_path)
    r = lifelog("backup", "--db", str(filled_db), "--dest", str(dest), "--dry-run", env=env)
    assert r.code == 0, r.err
    assert listing(tmp_path) == before
    assert r.out.startswith("dry run: nothing written or removed.")
    assert f"to {dest}/lifelog-" in r.out
    remove = r.out.split("and remove:")[1].split()
    assert remove == [old[1], old[0]]  # newest first
    doc = json.loads(lifelog("backup", "--db", str(filled_db), "--dest", str(dest), "--dry-run", "--json",
                             env=env).out)
    assert doc["dry_run"] is True and doc["events"] == EVENTS
    assert [k["name"] for k in doc["keep"]][1:] == [old[2]] and doc["keep"][0]["new"] is True
    assert doc["remove"] == [old[1], old[0]]
    assert listing(tmp_path) == before


def test_retention_after_a_good_backup_removes_only_backups_the_rule_lets_go(filled_db, lifelog, tmp_path):
    dest = tmp_path / "b"
    dest.mkdir()
    old = {d: backup_name(datetime(2026, 1, d, 3, 30, tzinfo=UTC)) for d in range(1, 6)}
    for name in old.values():
        (dest / name).write_bytes(b"an old backup")
    strangers = ["notes.txt", "lifelog-20260101T033000Z.db.bak", "lifelog-20261301T000000Z.db", "lifelog.db"]
    for name in strangers:
        (dest / name).write_bytes(b"not a backup")
    (dest / "lifelog-20251201T000000Z.db").symlink_to(dest / old[1])  # a link is not a backup
    env = dict(os.environ, LIFELOG_BACKUP_KEEP_DAILY="3", LIFELOG_BACKUP_KEEP_WEEKLY="0",
               LIFELOG_BACKUP_KEEP_MONTHLY="0")
    r = lifelog("backup", "--db", str(filled_db), "--dest", str(dest), "--json", env=env)
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    new = Path(doc["path"]).name
    assert backups_in(dest) == sorted([old[4], old[5], new, "lifelog-20251201T000000Z.db",
                                       "lifelog-20261301T000000Z.db"])
    assert sorted(doc["removed"]) == sorted([old[1], old[2], old[3]])
    assert all((dest / name).read_bytes() == b"not a backup" for name in strangers)


def test_a_backup_never_replaces_one_of_the_same_second(filled_db, tmp_path):
    settings = settings_for(filled_db)
    t = datetime(2026, 5, 1, 12, 0, 0, 900_000, tzinfo=UTC)
    first = backup.run(settings, tmp_path / "b", clock=lambda: t)
    before = sha(first.path)
    moments = iter([t, t, t + timedelta(seconds=1), t + timedelta(seconds=1)])
    second = backup.run(settings, tmp_path / "b", clock=lambda: next(moments))
    assert first.path.name == "lifelog-20260501T120000Z.db"
    assert second.path.name == "lifelog-20260501T120001Z.db"
    assert sha(first.path) == before


def test_one_backup_at_a_time_per_database(filled_db, lifelog, tmp_path):
    with ProcessLock(filled_db, "backup"):
        r = lifelog("backup", "--db", str(filled_db), "--dest", str(tmp_path / "b"))
    assert r.code == 1
    assert f"another backup of {filled_db} is running (pid {os.getpid()})" in r.err
    assert backups_in(tmp_path / "b") == []
    with open_db(filled_db) as db:
        assert "another backup" in get_meta(db, keys.BACKUP_LAST_ERROR)


def test_the_daemons_job_records_a_failed_backup_and_goes_on(filled_db, tmp_path):
    from lifelog import daemon

    [job] = [e for e in daemon.JOBS if e.name == "backup"]
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    settings = settings_for(filled_db, backup_dir=blocker / "backups", backup_interval_hours=0.5)
    assert job.interval(settings) == 1800
    job.func(settings, threading.Event())  # logs, does not raise: the daemon goes on
    with open_db(filled_db) as db:
        assert "cannot write the backup in" in get_meta(db, keys.BACKUP_LAST_ERROR)
        assert get_meta(db, keys.BACKUP_LAST_OK_AT) is None
        assert get_meta(db, keys.BACKUP_LAST_ATTEMPT_AT)
    good = settings_for(filled_db, backup_dir=tmp_path / "backups")
    job.func(good, threading.Event())
    with open_db(filled_db) as db:
        assert get_meta(db, keys.BACKUP_LAST_ERROR) == ""
        assert backups_in(tmp_path / "backups") == [Path(get_meta(db, keys.BACKUP_LAST_PATH)).name]


# -- failures: exit 1, nothing left with a backup's name, older backups intact ----------------------------


def older_backup(filled_db, dest: Path) -> tuple[Path, str]:
    made = backup.run(settings_for(filled_db), dest, clock=lambda: datetime(2026, 1, 1, 3, 30, tzinfo=UTC))
    return made.path, sha(made.path)


def assert_failed_cleanly(r, dest: Path, older: Path, older_sha: str, filled_db, why: str) -> None:
    assert r.code == 1, r
    assert why in r.err and len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err
    assert backups_in(dest) == [older.name]
    assert sha(older) == older_sha
    assert [p for p in os.listdir(dest) if "partial" in p] == []
    with open_db(filled_db, create=False) as db:
        assert why in get_meta(db, keys.BACKUP_LAST_ERROR)
        # The newest good backup recorded is still the older one's.
        assert get_meta(db, keys.BACKUP_LAST_OK_AT) == "2026-01-01T03:30:00.000000+00:00"


def test_a_destination_that_is_a_file_is_exit_1(filled_db, lifelog, tmp_path):
    dest = tmp_path / "b"
    older, older_sha = older_backup(filled_db, dest)
    for bad in (older, older / "sub"):
        r = lifelog("backup", "--db", str(filled_db), "--dest", str(bad))
        assert r.code == 1 and str(bad) in r.err and "--dest or the backup_dir setting" in r.err
    assert backups_in(dest) == [older.name] and sha(older) == older_sha


def can_mount() -> str:
    """Why tmpfs cannot be mounted here, or "" when it can."""
    if sys.platform != "linux":
        return "tmpfs mounts are a Linux feature"
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root (CI runs as root)"
    return ""


@pytest.fixture
def mount(tmp_path):
    """Mount a small tmpfs (root only); unmounted afterwards."""
    why = can_mount()
    if why:
        pytest.skip(why)
    mounted = []

    def make(name: str, size: str, *, ro=False) -> Path:
        point = tmp_path / name
        point.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(point)],
                       check=True, timeout=30)
        mounted.append(point)
        return point

    yield make
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], timeout=30)


def older_backup_in(dest: Path, filled_db) -> tuple[Path, str]:
    """A good older backup, made elsewhere and copied in (a closed file: a plain copy is fine)."""
    made, _ = older_backup(filled_db, dest.parent / "made-elsewhere")
    shutil.copyfile(made, dest / made.name)
    os.chmod(dest / made.name, 0o600)
    return dest / made.name, sha(made)


def test_a_read_only_destination_is_exit_1_and_older_backups_stay(filled_db, lifelog, mount):
    dest = mount("ro", "64m")
    older, older_sha = older_backup_in(dest, filled_db)
    subprocess.run(["mount", "-o", "remount,ro", str(dest)], check=True, timeout=30)
    r = lifelog("backup", "--db", str(filled_db), "--dest", str(dest))
    assert_failed_cleanly(r, dest, older, older_sha, filled_db, "cannot write the backup in")
    assert "Read-only file system" in r.err


def test_a_full_file_system_is_exit_1_and_older_backups_stay(filled_db, lifelog, mount):
    # Room for one backup (12 MB) and not for a second with the 16 MiB reserve.
    dest = mount("full", "36m")
    older, older_sha = older_backup_in(dest, filled_db)
    r = lifelog("backup", "--db", str(filled_db), "--dest", str(dest))
    assert_failed_cleanly(r, dest, older, older_sha, filled_db, "not enough space in")


def test_running_out_of_space_during_the_copy_leaves_nothing(filled_db, mount, monkeypatch):
    """The free-space check passed (another program filled the disk meanwhile):
    the copy itself meets ENOSPC."""
    dest = mount("fills", "20m")  # 12 MB taken by the older backup: 8 MB left for a 12 MB copy
    older, older_sha = older_backup_in(dest, filled_db)
    monkeypatch.setattr(backup, "_check_space", lambda folder, size: None)
    with pytest.raises(backup.BackupFailed, match="is full"):
        backup.run(settings_for(filled_db), dest)
    assert os.listdir(dest) == [older.name] and sha(older) == older_sha
    assert integrity(filled_db) == "ok"
    with open_db(filled_db, create=False) as db:
        assert "is full" in get_meta(db, keys.BACKUP_LAST_ERROR)


# -- restore --------------------------------------------------------------------------------------


def test_backup_then_restore_gives_back_the_same_events(filled_db, lifelog, tmp_path):
    with open_db(filled_db) as db:
        set_meta(db, keys.DAEMON_STATE, "running")  # as a backup made by the daemon records it
    r = lifelog("backup", "--db", str(filled_db), "--dest", str(tmp_path / "b"), "--json")
    assert r.code == 0, r.err
    copy = Path(json.loads(r.out)["path"])
    copy_sha = sha(copy)
    saved = events_of(filled_db)
    add_events(filled_db, 1, 500)  # what happened after the backup
    write_and_die(filled_db, 1000)  # ... the last of it still in the -wal
    assert Path(f"{filled_db}-wal").stat().st_size > 0
    later = events_of(filled_db)
    assert len(later) == len(saved) + 510
    r = lifelog("restore", "--db", str(filled_db), str(copy))
    assert r.code == 0, r.err
    assert r.out.startswith(f"restored {copy} to {filled_db} ({EVENTS:,} events)")
    assert events_of(filled_db) == saved
    assert integrity(filled_db) == "ok"
    assert stat.S_IMODE(filled_db.stat().st_mode) == 0o600
    [aside] = [p for p in tmp_path.iterdir() if p.name.startswith(f"{filled_db.name}.before-restore-")
               and not p.name.endswith(("-wal", "-shm"))]
    assert f"kept as {aside}" in r.out
    # The database before it, whole: its own -wal beside it, none left at the database.
    assert Path(f"{aside}-wal").exists() and Path(f"{aside}-shm").exists()
    assert events_of(aside) == later
    with open_db(filled_db, create=False) as db:
        assert get_meta(db, keys.BACKUP_RESTORED_FROM) == str(copy)
        assert get_meta(db, keys.DAEMON_STATE) == "stopped"  # so the next daemon counts no crash
        assert db.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert sha(copy) == copy_sha  # the backup itself is untouched


def test_restore_onto_a_machine_with_no_database_yet(filled_db, lifelog, tmp_path):
    copy = backup.run(settings_for(filled_db), tmp_path / "b").path
    target = tmp_path / "new" / "home" / "lifelog.db"
    r = lifelog("restore", "--db", str(target), str(copy))
    assert r.code == 0, r.err
    assert events_of(target) == events_of(filled_db)
    assert "kept as" not in r.out


def corrupt_files(tmp_path: Path, good: Path) -> dict[str, Path]:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 500)
    cut = tmp_path / "cut.db"
    data = good.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    flipped = tmp_path / "flipped.db"
    damaged = bytearray(data)
    for offset in range(len(damaged) // 3, len(damaged) // 3 + 4096 * 8, 97):  # scribble over some pages
        damaged[offset] ^= 0xFF
    flipped.write_bytes(bytes(damaged))
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE notes (x)")
    conn.commit()
    conn.close()
    return {"junk": junk, "truncated": cut, "damaged": flipped, "not LifeLog": other,
            "missing": tmp_path / "missing.db", "a folder": tmp_path}


@pytest.mark.parametrize("kind", ["junk", "truncated", "damaged", "not LifeLog", "missing", "a folder"])
def test_restore_refuses_a_bad_file_and_changes_nothing(filled_db, lifelog, tmp_path, kind):
    good = backup.run(settings_for(filled_db), tmp_path / "b").path
    bad = corrupt_files(tmp_path / "b", good)[kind]
    before = listing(tmp_path)
    r = lifelog("restore", "--db", str(filled_db), str(bad))
    assert r.code == 1, r
    assert str(bad) in r.err and len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err
    assert listing(tmp_path) == before
    assert integrity(filled_db) == "ok"


def test_restore_refuses_the_database_itself(filled_db, lifelog):
    r = lifelog("restore", "--db", str(filled_db), str(filled_db))
    assert r.code == 1 and "is the database itself" in r.err


def test_restore_refuses_a_backup_made_by_a_newer_lifelog_and_changes_nothing(db_path, lifelog, tmp_path):
    with open_db(db_path) as db:
        set_meta(db, "kept", "yes")
    newer = backup.run(settings_for(db_path), tmp_path / "b").path
    conn = sqlite3.connect(newer)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")  # as a LifeLog one schema ahead writes it
    conn.close()
    newer_sha, before = sha(newer), listing(tmp_path)
    r = lifelog("restore", "--db", str(db_path), str(newer))
    assert r.code == 1, r
    assert r.err == (f"lifelog: error: {newer} cannot be restored: it failed the check (made by a newer LifeLog "
                     f"(schema version {SCHEMA_VERSION + 1}, this one knows {SCHEMA_VERSION}); upgrade LifeLog "
                     "first); nothing was changed; try an older backup\n"), r.err
    assert r.out == ""
    # The database as it was, nothing moved aside or left half-copied beside it.
    assert listing(tmp_path) == before and sha(newer) == newer_sha
    assert not [p for p in tmp_path.iterdir() if ".before-restore-" in p.name or ".restore.partial" in p.name]
    with open_db(db_path, create=False) as db:
        assert get_meta(db, "kept") == "yes" and get_meta(db, keys.BACKUP_RESTORED_FROM) is None


@pytest.mark.parametrize("role", ["backup", "watchdog"])
def test_restore_refuses_while_a_backup_or_a_long_watchdog_pass_holds_the_database(filled_db, tmp_path, role,
                                                                                  monkeypatch):
    good = backup.run(settings_for(filled_db), tmp_path / "b").path
    monkeypatch.setattr(backup, "PASS_WAIT_SECONDS", 0.2)
    before = listing(tmp_path)
    with ProcessLock(filled_db, role):
        with pytest.raises(backup.RestoreRefused, match=f"pid {os.getpid()}"):
            backup.restore(settings_for(filled_db), good)
    assert listing(tmp_path) == before


# -- when a backup is due, and the status component, at their boundaries ----------------------------------

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(hours=24)


def snap(**meta) -> Snapshot:
    values = {keys.DB_CREATED_AT: to_iso(NOW - 10 * DAY)}
    values.update({k: (to_iso(v) if isinstance(v, datetime) else v) for k, v in meta.items()})
    return Snapshot(now=NOW, meta=values, watcher=WatcherFacts(pid=None, source="", reason="no watcher recorded"))


def settings24(**extra):
    return load_settings(overrides={"db_path": "/nonexistent/l.db", **extra})


@pytest.mark.parametrize("last_ok, due", [
    (NOW - DAY + timedelta(microseconds=1), False),
    (NOW - DAY, True),
    (NOW - 3 * DAY, True),
    (NOW, False),
    (NOW + timedelta(seconds=0.9), False),  # within the clock skew
    (NOW + timedelta(hours=2), True),  # the clock stepped back: do not wait for it
])
def test_a_scheduled_backup_is_due_an_interval_after_the_newest(last_ok, due):
    meta = snap(**{keys.BACKUP_LAST_OK_AT: last_ok}).meta
    assert backup_status.due(meta, NOW, settings24()) is due


def test_with_no_backup_the_first_is_due_an_interval_after_the_database_was_created():
    meta = dict(snap().meta)
    meta[keys.DB_CREATED_AT] = to_iso(NOW - DAY + timedelta(seconds=1))
    assert backup_status.due(meta, NOW, settings24()) is False
    meta[keys.DB_CREATED_AT] = to_iso(NOW - DAY)
    assert backup_status.due(meta, NOW, settings24()) is True
    assert backup_status.due({}, NOW, settings24()) is True
    assert backup_status.due({}, NOW, settings24(backup_interval_hours=0)) is False
    assert backup_status.interval_seconds(settings24(backup_interval_hours=0)) is None
    assert backup_status.interval_seconds(settings24(backup_interval_hours=0.5)) == 1800


@pytest.mark.parametrize("age, level", [
    (2 * DAY, Level.OK),
    (2 * DAY + timedelta(microseconds=1), Level.WARNING),
    (timedelta(0), Level.OK),
])
def test_status_warns_once_the_newest_backup_is_older_than_twice_the_interval(age, level):
    s = snap(**{keys.BACKUP_LAST_OK_AT: NOW - age, keys.BACKUP_LAST_PATH: "/b/lifelog-20260601T120000Z.db"})
    c = backup_status.backup_component(s, settings24())
    assert c.name == "backup" and c.level is level
    if level is Level.WARNING:
        assert c.reason.startswith("backup overdue: the newest verified backup is 2 d old")
        assert "run 'lifelog backup'" in c.reason
    else:
        assert c.reason == "newest verified backup lifelog-20260601T120000Z.db"


def test_status_with_no_backup_warns_once_the_database_is_older_than_twice_the_interval():
    young = snap(**{keys.DB_CREATED_AT: NOW - 2 * DAY})
    assert backup_status.backup_component(young, settings24()).level is Level.OK
    old = snap(**{keys.DB_CREATED_AT: NOW - 2 * DAY - timedelta(microseconds=1),
                  keys.BACKUP_LAST_ERROR: "the backup folder /b is full"})
    c = backup_status.backup_component(old, settings24())
    assert c.level is Level.WARNING
    assert c.reason.startswith("no verified backup yet, and the database is 2 d old; the latest attempt "
                               "failed: the backup folder /b is full; run 'lifelog backup'")


def test_status_with_backups_off_never_warns():
    s = snap(**{keys.DB_CREATED_AT: NOW - 400 * DAY})
    c = backup_status.backup_component(s, settings24(backup_interval_hours=0))
    assert c.level is Level.OK and "backups off" in c.reason


def test_status_shows_the_backup_component(filled_db, lifelog, tmp_path, aw_server):
    r = lifelog("status", "--db", str(filled_db), "--json", env=dict(os.environ, LIFELOG_AW_URL=aw_server.url))
    [c] = [c for c in json.loads(r.out)["components"] if c["name"] == "backup"]
    assert c["level"] == "OK" and c["reason"] == "no backup yet"
    assert lifelog("backup", "--db", str(filled_db), "--dest", str(tmp_path / "b")).code == 0
    r = lifelog("status", "--db", str(filled_db), env=dict(os.environ, LIFELOG_AW_URL=aw_server.url))
    [line] = [line for line in r.out.splitlines() if line.strip().startswith("backup")]
    assert "OK" in line and "newest verified backup lifelog-" in line
