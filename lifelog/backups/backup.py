"""Verified backups of the database, rotated, and a safe restore (README "Backups").

A backup is SQLite's online backup of one read snapshot, in one step: the
source connection opens a read transaction, counts the events, and copies
every page of that same snapshot. Under WAL a reader never blocks the
watcher, which goes on committing into the WAL meanwhile (the WAL grows
until the copy ends; checkpoints catch up afterwards). Copying in several
steps would restart whenever the watcher commits between two of them, for
ever under constant writes. `VACUUM INTO` gives the same consistency, but
rebuilds every table and index, several times slower (scripts/bench_backup.py),
and cannot share a transaction with the count.

The copy is written under a hidden temporary name, switched from WAL to a
rollback journal (one self-contained file, safe to carry off by any tool),
checked with `PRAGMA integrity_check` and its event count against the
snapshot's, made 0600, synced, then published under its final name with a
hard link, which never replaces an existing file. A failure or a kill at any
point leaves no file with the backup name pattern, and an older backup is
never touched except by retention after a good backup. One backup at a time
per database: `<db>.backup.lock`.

`restore` refuses while a watcher, daemon, backup or watchdog pass holds the
database, copies and checks the backup beside the database, then moves the
current file and its `-wal`/`-shm` aside and renames the checked copy into
place.

The pure parts (when a backup is due, the status component) read only meta
and `now`; retention is lifelog.backups.retention.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from lifelog.backups import retention
from lifelog.core import keys
from lifelog.core.errors import AlreadyRunning, LifelogError
from lifelog.core.locks import ProcessLock
from lifelog.core.settings import Settings
from lifelog.core.timeutil import UTC, to_iso, utcnow
from lifelog.core.verdicts import DaemonState, WatcherState
from lifelog.db.database import SCHEMA_VERSION, open_db, transaction, wrap
from lifelog.db.meta import get_meta, set_meta

if TYPE_CHECKING:
    from sqlite_utils import Database

log = logging.getLogger("lifelog.backup")

# A backup in the making: hidden, and never matching retention.NAME_RE.
PARTIAL_RE = re.compile(r"\.lifelog-\d{8}T\d{6}Z\.db\.partial(-journal|-wal|-shm)?")
# Room left free beside a backup, so a backup never fills the disk to the
# last byte (the database itself may live on the same file system).
SPACE_RESERVE_BYTES = 16 * 1024 * 1024
# How long restore waits for a running watchdog pass to finish.
PASS_WAIT_SECONDS = 10.0
SIDE_SUFFIXES = ("-wal", "-shm", "-journal")

Clock = Callable[[], datetime]


class BackupFailed(LifelogError):
    """No backup was made; nothing was removed."""

    exit_code = 1


class RestoreRefused(LifelogError):
    """Nothing was changed."""

    exit_code = 1


class BadCopy(Exception):
    """A copy that fails the check: integrity, tables or event count."""


# -- making one -----------------------------------------------------------------------------


@dataclass(frozen=True)
class BackupResult:
    path: Path
    bytes: int
    events: int
    seconds: float
    snapshot_at: datetime
    copy_seconds: float
    verify_seconds: float
    sync_seconds: float
    plan: retention.RetentionPlan
    removed: tuple[str, ...] = ()
    retention_errors: tuple[str, ...] = ()

    def to_json(self) -> dict:
        return {"path": str(self.path), "bytes": self.bytes, "events": self.events,
                "seconds": round(self.seconds, 3), "snapshot_at": to_iso(self.snapshot_at),
                "copy_seconds": round(self.copy_seconds, 3), "verify_seconds": round(self.verify_seconds, 3),
                "sync_seconds": round(self.sync_seconds, 3),
                "kept": list(self.plan.kept_names), "removed": list(self.removed),
                "retention_errors": list(self.retention_errors)}


@dataclass(frozen=True)
class DryRun:
    path: Path
    events: int
    bytes: int
    policy: retention.Policy
    plan: retention.RetentionPlan

    def to_json(self) -> dict:
        return {"dry_run": True, "path": str(self.path), "events": self.events, "bytes": self.bytes,
                "keep": [{"name": k.name, "reasons": [str(r) for r in k.reasons],
                          "new": k.name == self.path.name} for k in self.plan.keep],
                "remove": list(self.plan.remove)}


@dataclass(frozen=True)
class _Made:
    path: Path
    at: datetime
    events: int
    copy_seconds: float
    verify_seconds: float
    sync_seconds: float


def destination(settings: Settings, dest: str | os.PathLike[str] | None = None) -> Path:
    """The folder backups go to: `--dest`, else `backup_dir`, else the default."""
    folder = Path(dest).expanduser() if dest is not None else settings.backup_folder
    return folder.absolute()


def run(settings: Settings, dest: str | os.PathLike[str] | None = None, *, clock: Clock = utcnow) -> BackupResult:
    """One verified backup now, recorded in meta, then retention. Raises
    BackupFailed (recorded in `backup.last_error`) when no backup was made."""
    folder = destination(settings, dest)
    began = time.monotonic()
    with open_db(settings.db_path, create=False) as db:
        try:
            with _backup_lock(settings.db_path):
                made = _make(db, folder, clock)
                size = made.path.stat().st_size
                seconds = time.monotonic() - began
                _record(db, {keys.BACKUP_LAST_OK_AT: to_iso(made.at), keys.BACKUP_LAST_PATH: str(made.path),
                             keys.BACKUP_LAST_BYTES: size, keys.BACKUP_LAST_EVENTS: made.events,
                             keys.BACKUP_LAST_SECONDS: f"{seconds:.3f}", keys.BACKUP_LAST_ERROR: "",
                             keys.BACKUP_LAST_ATTEMPT_AT: to_iso(clock())})
                plan, removed, errors = apply_retention(folder, retention.Policy.from_settings(settings))
        except BackupFailed as e:
            _record(db, {keys.BACKUP_LAST_ERROR: str(e), keys.BACKUP_LAST_ATTEMPT_AT: to_iso(clock())})
            raise
    return BackupResult(made.path, size, made.events, seconds, made.at, made.copy_seconds,
                        made.verify_seconds, made.sync_seconds, plan, removed, errors)


def dry_run(settings: Settings, dest: str | os.PathLike[str] | None = None, *,
            clock: Clock = utcnow) -> DryRun:
    """What `run` would write and what retention would then keep and remove; changes nothing."""
    folder = destination(settings, dest)
    with open_db(settings.db_path, create=False) as db:
        events, size = _snapshot_size(db.conn)
    path = folder / retention.backup_name(clock())
    existing = _names_in(folder) if folder.is_dir() else []
    policy = retention.Policy.from_settings(settings)
    return DryRun(path, events, size, policy, retention.plan_retention(existing + [path.name], policy))


def apply_retention(
    folder: Path, policy: retention.Policy
) -> tuple[retention.RetentionPlan, tuple[str, ...], tuple[str, ...]]:
    """Remove what the plan removes: only files named like backups. Returns
    the plan, the names removed, and the errors (a backup that could not be
    removed is reported, not fatal: the new backup is good)."""
    try:
        plan = retention.plan_retention(_names_in(folder), policy)
    except OSError as e:
        return retention.RetentionPlan((), ()), (), (f"could not list {folder}: {e.strerror or e}",)
    removed, errors = [], []
    for name in plan.remove:
        try:
            (folder / name).unlink()
            removed.append(name)
        except FileNotFoundError:
            pass
        except OSError as e:
            errors.append(f"could not remove {folder / name}: {e.strerror or e}")
    if removed:
        try:
            _sync_dir(folder)
        except OSError as e:
            errors.append(f"could not sync {folder}: {e.strerror or e}")
        log.info("retention removed %s", ", ".join(removed))
    return plan, tuple(removed), tuple(errors)


def _names_in(folder: Path) -> list[str]:
    # Regular files only: a link named like a backup is not one of ours.
    with os.scandir(folder) as entries:
        return [e.name for e in entries if e.is_file(follow_symlinks=False)]


def _record(db: Database, values: Mapping[str, str | int]) -> None:
    try:
        with transaction(db):
            for key, value in values.items():
                set_meta(db, key, value)
    except sqlite3.Error as e:  # the backup itself stands or falls on its own
        log.warning("could not record the backup in meta: %s", e)


@contextmanager
def _backup_lock(db_path: Path) -> Iterator[None]:
    lock = ProcessLock(db_path, "backup")
    try:
        lock.acquire()
    except AlreadyRunning as e:
        raise BackupFailed(f"another backup of {db_path} is running (pid {e.holder}); "
                           "wait for it to finish") from None
    try:
        yield
    finally:
        lock.release()


def _snapshot_size(conn: sqlite3.Connection) -> tuple[int, int]:
    """(events, bytes) of the database as the current read transaction sees it."""
    events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    return events, page_size * pages


def _make(db: Database, folder: Path, clock: Clock) -> _Made:
    """Copy, check, sync, publish. Raises BackupFailed, leaving no final-named file."""
    _prepare_folder(folder)
    _remove_partials(folder)  # left by a backup that was killed (we hold the lock)
    at = _free_moment(folder, clock)
    final = folder / retention.backup_name(at)
    partial = folder / f".{final.name}.partial"
    try:
        t0 = time.monotonic()
        events = _copy_snapshot(db.conn, folder, partial)
        t1 = time.monotonic()
        try:
            copied = check_copy(partial)
        except BadCopy as e:
            raise BackupFailed(f"the copy failed its check ({e}); no backup was kept; "
                               f"check the disk under {folder} and try again") from None
        if copied != events:
            raise BackupFailed(f"the copy holds {copied} events but the database held {events} at the "
                               f"snapshot; no backup was kept; check the disk under {folder} and try again")
        t2 = time.monotonic()
        os.chmod(partial, 0o600)
        _sync_file(partial)
        _publish(partial, final)
        _sync_dir(folder)
        t3 = time.monotonic()
    except BaseException as e:
        _remove_quietly(partial)
        if isinstance(e, OSError):
            raise BackupFailed(_os_failure(e, folder)) from None
        raise
    log.info("backup verified: %s (%d events)", final, events)
    return _Made(final, at, events, t1 - t0, t2 - t1, t3 - t2)


def _prepare_folder(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise BackupFailed(f"the backup destination {folder} is not a folder; "
                           "choose a folder with --dest or the backup_dir setting")
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise BackupFailed(_os_failure(e, folder)) from None


def _os_failure(e: OSError, folder: Path) -> str:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"the backup folder {folder} is full ({e.strerror}); no backup was kept; free some space, "
                "or choose another folder with --dest or the backup_dir setting")
    return (f"cannot write the backup in {folder}: {e.strerror or e}; make the folder writable, "
            "or choose another with --dest or the backup_dir setting")


def _free_moment(folder: Path, clock: Clock) -> datetime:
    """Now, or the next second when a backup of this second exists already:
    a name is the moment of its snapshot, and a backup never replaces another."""
    for _ in range(3):
        at = clock()
        if not (folder / retention.backup_name(at)).exists():
            return at
        time.sleep(1.0 - at.microsecond / 1e6 + 0.001)
    raise BackupFailed(f"{folder} already holds a backup named for each of the last seconds "
                       "(is the clock stuck?); try again in a moment")


def _copy_snapshot(conn: sqlite3.Connection, folder: Path, partial: Path) -> int:
    """Copy one read snapshot of the database to `partial`; its event count."""
    conn.execute("BEGIN")  # deferred: the snapshot starts at the first read below
    try:
        events, size = _snapshot_size(conn)
        _check_space(folder, size)
        _create_private(partial)
        dst = sqlite3.connect(partial, isolation_level=None)
        try:
            # No journal while copying: a failed copy is thrown away anyway.
            dst.execute("PRAGMA journal_mode = OFF")
            dst.execute("PRAGMA synchronous = OFF")
            # pages=-1: the whole snapshot in one step, inside the read
            # transaction opened above (the same one that counted the events).
            conn.backup(dst, pages=-1)
            # The copy carries the source's WAL flag; as a rollback-journal
            # database it is one self-contained file.
            mode = dst.execute("PRAGMA journal_mode = DELETE").fetchone()[0]
            if mode != "delete":
                raise BackupFailed(f"the copy stayed in journal mode {mode}; no backup was kept")
        finally:
            dst.close()
    except sqlite3.Error as e:
        if "full" in str(e).lower():
            raise OSError(errno.ENOSPC, f"{e}") from None
        raise BackupFailed(f"the copy failed: {e}; no backup was kept") from None
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")  # ends the read snapshot; nothing was written
    return events


def _check_space(folder: Path, size: int) -> None:
    """Refuse before copying when the folder cannot take the copy."""
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):  # no statvfs (Windows): the copy itself will tell
        return
    if st.f_flag & os.ST_RDONLY:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))
    if st.f_blocks == 0:  # some network file systems report nothing useful
        return
    free = st.f_bavail * st.f_frsize
    if free < size + SPACE_RESERVE_BYTES:
        raise BackupFailed(
            f"not enough space in {folder}: the backup needs {mib(size)} and {mib(SPACE_RESERVE_BYTES)} "
            f"kept free, {mib(free)} are free; no backup was made; free some space, or choose another "
            "folder with --dest or the backup_dir setting")


def mib(n: int) -> str:
    return f"{n / 1048576:.1f} MiB"


def check_copy(path: Path) -> int:
    """The number of events in a database file that passes the check: SQLite
    `PRAGMA integrity_check` says ok, and it has LifeLog's tables. Raises BadCopy."""
    # immutable: read the file as it is, writing nothing beside it (no -shm),
    # unless a -wal beside it holds part of the data.
    has_wal = Path(f"{path}-wal").exists()
    uri = path.absolute().as_uri() + ("?mode=ro" if has_wal else "?mode=ro&immutable=1")
    try:
        conn = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as e:
        raise BadCopy(f"cannot open it: {e}") from None
    try:
        problems = [r[0] for r in conn.execute("PRAGMA integrity_check")]
        if problems != ["ok"]:
            raise BadCopy("integrity_check: " + "; ".join(problems[:3]))
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        missing = {"events", "meta"} - tables
        if missing:
            raise BadCopy(f"not a LifeLog database (no {', '.join(sorted(missing))} table)")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise BadCopy(f"made by a newer LifeLog (schema version {version}, this one knows "
                          f"{SCHEMA_VERSION}); upgrade LifeLog first")
        return conn.execute("SELECT count(*) FROM events").fetchone()[0]
    except sqlite3.DatabaseError as e:
        raise BadCopy(str(e)) from None
    finally:
        conn.close()


def _create_private(path: Path) -> None:
    """An empty file readable by its owner only, whatever the umask."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
    os.close(fd)
    os.chmod(path, 0o600)


def _sync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDWR | getattr(os, "O_BINARY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_dir(folder: Path) -> None:
    """Make a rename or unlink in `folder` durable (POSIX; Windows has no directory fsync)."""
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _publish(partial: Path, final: Path) -> None:
    """Give the checked copy its final name, never replacing a file of that name."""
    try:
        os.link(partial, final)  # fails if `final` exists, where a rename would replace it
    except FileExistsError:
        raise BackupFailed(f"{final} appeared during the backup (another LifeLog writing to the same "
                           "folder?); give each database its own backup folder") from None
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
            raise
        # No hard links on this file system (FAT, some network folders):
        # rename, after checking the name is free (we hold the backup lock).
        if final.exists():
            raise BackupFailed(f"{final} appeared during the backup; give each database its own "
                               "backup folder") from None
        os.rename(partial, final)
        return
    os.unlink(partial)


def _remove_quietly(path: Path) -> None:
    for p in (path, *(Path(f"{path}{s}") for s in SIDE_SUFFIXES)):
        if not os.path.lexists(p):  # (unlink says EROFS, not ENOENT, on a read-only mount)
            continue
        try:
            p.unlink()
        except FileNotFoundError:
            pass
        except OSError as e:
            log.warning("could not remove %s: %s", p, e)


def _remove_partials(folder: Path) -> None:
    with os.scandir(folder) as entries:
        leftovers = [e.name for e in entries if PARTIAL_RE.fullmatch(e.name)]
    for name in leftovers:
        log.info("removing %s, left by a backup that did not finish", folder / name)
        _remove_quietly(folder / name)


# -- restore ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RestoreResult:
    source: Path
    db: Path
    events: int
    aside: Path | None  # where the database before it went, if there was one


def restore(settings: Settings, file: str | os.PathLike[str], *, clock: Clock = utcnow) -> RestoreResult:
    """Put the backup `file` in place of the database. Raises RestoreRefused,
    changing nothing, while a LifeLog process holds the database or when
    `file` fails the check."""
    db_path = Path(settings.db_path).absolute()
    source = Path(file).expanduser().absolute()
    if not source.is_file():
        raise RestoreRefused(f"{source} is not a file; give the path of a backup "
                             f"(LifeLog's are in {settings.backup_folder})")
    if db_path.exists() and os.path.samefile(source, db_path):
        raise RestoreRefused(f"{source} is the database itself; give the path of a backup")
    try:
        db_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as e:
        raise RestoreRefused(f"cannot create the database folder {db_path.parent}: {e.strerror or e}") from None
    partial = db_path.with_name(f".{db_path.name}.restore.partial")
    with _holding_database(db_path):
        _remove_quietly(partial)
        try:
            events = _copy_in(source, partial, clock)
            aside = _swap_in(partial, db_path, clock)
        except BaseException:
            _remove_quietly(partial)
            raise
    log.info("restored %s to %s (%d events); the database before it is %s", source, db_path, events, aside)
    return RestoreResult(source, db_path, events, aside)


@contextmanager
def _holding_database(db_path: Path) -> Iterator[None]:
    """Every LifeLog process lock of the database, held through the restore,
    so none starts meanwhile; RestoreRefused naming the one that holds it."""
    fixes = {
        "daemon": "stop it first (e.g. 'systemctl --user stop lifelog-daemon', or Ctrl-C)",
        "watcher": "stop it first ('lifelog watchdog pause' first if a watchdog would restart it)",
        "backup": "wait for it to finish",
    }
    with ExitStack() as held:
        for role, fix in fixes.items():
            lock = ProcessLock(db_path, role)
            try:
                lock.acquire()
            except AlreadyRunning as e:
                raise RestoreRefused(f"a lifelog {role} (pid {e.holder}) is running on {db_path}; "
                                     f"{fix}, then run 'lifelog restore' again; nothing was changed") from None
            held.callback(lock.release)
        # A watchdog pass is short: wait for one that is running.
        lock = ProcessLock(db_path, "watchdog")
        try:
            lock.acquire(wait=PASS_WAIT_SECONDS)
        except AlreadyRunning as e:
            raise RestoreRefused(f"a watchdog pass (pid {e.holder}) has held {db_path} for over "
                                 f"{PASS_WAIT_SECONDS:g} s; try again in a moment; nothing was changed") from None
        held.callback(lock.release)
        yield


def _copy_in(source: Path, partial: Path, clock: Clock) -> int:
    """Copy `source` to `partial` through SQLite, check it, and make it a
    LifeLog database at rest (WAL, processes recorded stopped). Its events."""
    refused = f"{source} cannot be restored"
    has_wal = Path(f"{source}-wal").exists()
    uri = source.as_uri() + ("?mode=ro" if has_wal else "?mode=ro&immutable=1")
    try:
        _create_private(partial)
        src = sqlite3.connect(uri, uri=True)
        try:
            dst = sqlite3.connect(partial, isolation_level=None)
            try:
                src.backup(dst, pages=-1)
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.DatabaseError as e:
        raise RestoreRefused(f"{refused}: it is not a usable SQLite database ({e}); nothing was changed") from None
    except OSError as e:
        raise RestoreRefused(f"{refused}: cannot write beside the database: {e.strerror or e}; "
                             "nothing was changed") from None
    try:
        events = check_copy(partial)
    except BadCopy as e:
        raise RestoreRefused(f"{refused}: it failed the check ({e}); nothing was changed; "
                             "try an older backup") from None
    conn = sqlite3.connect(partial, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")  # as every LifeLog database is
        db = wrap(conn)
        with transaction(db):
            # We hold their locks: whatever the backup recorded, these are not
            # running now (a daemon recorded "running" would count as crashed).
            for key, stopped in ((keys.WATCHER_STATE, WatcherState.STOPPED),
                                 (keys.DAEMON_STATE, DaemonState.STOPPED)):
                if get_meta(db, key) not in (None, stopped):
                    set_meta(db, key, stopped)
            set_meta(db, keys.BACKUP_RESTORED_FROM, str(source))
            set_meta(db, keys.BACKUP_RESTORED_AT, to_iso(clock()))
    finally:
        conn.close()  # the last connection: the WAL is checkpointed and removed
    os.chmod(partial, 0o600)
    _sync_file(partial)
    return events


def _swap_in(partial: Path, db_path: Path, clock: Clock) -> Path | None:
    """Move the database and its side files aside, then rename `partial` into place.

    The database is hard-linked aside first, so its path never goes missing
    (an open in that moment would create an empty database); its -wal and
    -shm are renamed, so no old WAL is left to be replayed onto the restored
    file. Undone if the final rename fails."""
    present = [p for p in (db_path, *(Path(f"{db_path}{s}") for s in SIDE_SUFFIXES)) if p.exists()]
    if not present:
        os.replace(partial, db_path)
        _sync_dir(db_path.parent)
        return None
    aside = _free_aside(db_path, clock)
    moved: list[tuple[Path, Path]] = []
    linked = False
    try:
        if db_path.exists():
            try:
                os.link(db_path, aside)
                linked = True
            except OSError:  # no hard links here: a plain rename, briefly without a database
                os.rename(db_path, aside)
                moved.append((db_path, aside))
        for suffix in SIDE_SUFFIXES:
            side = Path(f"{db_path}{suffix}")
            if side.exists():
                os.rename(side, Path(f"{aside}{suffix}"))
                moved.append((side, Path(f"{aside}{suffix}")))
        os.replace(partial, db_path)
    except OSError as e:
        for original, now_at in reversed(moved):
            try:
                os.rename(now_at, original)
            except OSError:
                log.error("could not move %s back to %s", now_at, original)
        if linked:
            aside.unlink(missing_ok=True)
        raise RestoreRefused(f"cannot put the backup in place of {db_path}: {e.strerror or e}; "
                             "nothing was changed") from None
    _sync_dir(db_path.parent)
    return aside


def _free_aside(db_path: Path, clock: Clock) -> Path:
    stamp = clock().astimezone(UTC).strftime(retention.STAMP_FORMAT)
    base = db_path.with_name(f"{db_path.name}.before-restore-{stamp}")
    candidate, n = base, 1
    while any(Path(f"{candidate}{s}").exists() for s in ("", *SIDE_SUFFIXES)):
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate
