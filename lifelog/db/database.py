"""The SQLite file: opening it safely, the schema, upgrades and transactions.

`open_db` gives a `sqlite_utils.Database` over a connection of our own.
Opening creates the folder and a 0600 file when missing, turns on WAL (so a
user's `sqlite3` shell, `sqlite-utils` or Datasette never stops the writers)
and a busy timeout (so a writer that meets a lock waits, boundedly, instead
of failing). Write transactions start with BEGIN IMMEDIATE (`transaction`,
not sqlite-utils' `atomic`, whose deferred BEGIN can fail at once with
SQLITE_BUSY when a transaction that read first then needs to write, ignoring
the busy timeout). sqlite-utils' Table methods that write open a savepoint
inside an enclosing transaction, so they are called inside `transaction`.

The schema is schema.sql; changes to the tables of an existing database are
sqlite-utils `Migrations` (lifelog.db.migrations: named, recorded in
`_sqlite_migrations`). The cheap `PRAGMA user_version` check on every open
decides whether anything is to be done: only an older database is upgraded,
and a newer one is refused.

All meta access goes through `get_meta` and `set_meta` (lifelog.db.meta),
the only module that touches `meta` by SQL.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from lifelog.core.errors import LifelogError, UsageError
from lifelog.db.schema import schema_sql, statements

if TYPE_CHECKING:
    # What open_db gives. sqlite-utils is imported when a database is opened
    # (~80 ms at best): not by a command that never opens one (help, a status
    # with no database yet).
    from sqlite_utils import Database

# schema.sql sets PRAGMA user_version to this. Adding a migration
# (lifelog.db.migrations), or a table or index to schema.sql, bumps both: an
# open only upgrades a database whose user_version is older.
SCHEMA_VERSION = 10

# A user holding the write lock in a sqlite3 shell for a few seconds must make
# writers wait, not fail; a lock held longer than this is reported, not waited
# out for ever.
BUSY_TIMEOUT_SECONDS = 15.0


class DatabaseMissing(LifelogError):
    """There is no database at the path, and the command does not create one."""

    exit_code = 2


class DatabaseUnusable(UsageError):
    """The path exists but is not a LifeLog/SQLite database we can use."""


class DatabaseTooNew(DatabaseUnusable):
    """The database was made by a newer LifeLog: its schema is one this
    LifeLog does not know, so it is neither read nor written."""


def _create_file(path: Path) -> bool:
    """Create the folder (0700) and an empty 0600 file; undo the folders on
    failure. False when another process created the file first."""
    created_dirs: list[Path] = []
    missing = []
    parent = path.parent
    while not parent.exists():
        missing.append(parent)
        if parent.parent == parent:
            break
        parent = parent.parent
    try:
        for d in reversed(missing):
            d.mkdir(mode=0o700)
            created_dirs.append(d)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return False  # another process created it a moment ago: use theirs
        try:
            os.fchmod(fd, 0o600)  # exactly 0600, whatever the umask
        finally:
            os.close(fd)
        return True
    except OSError as e:
        for d in reversed(created_dirs):
            try:
                d.rmdir()
            except OSError:
                pass
        raise UsageError(
            f"cannot create the database at {path}: {e.strerror or e}; "
            "choose another path with --db or the db_path setting"
        ) from None


def connect(path: Path) -> sqlite3.Connection:
    """A raw connection in autocommit mode; transactions are explicit."""
    conn = sqlite3.connect(
        str(path),
        timeout=BUSY_TIMEOUT_SECONDS,
        isolation_level=None,
        check_same_thread=False,
    )
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def wrap(conn: sqlite3.Connection) -> Database:
    """`conn` as a sqlite_utils.Database (its transactions stay ours: autocommit)."""
    from sqlite_utils import Database

    # No plugin scan: LifeLog uses none, and looking for them costs every
    # command tens of milliseconds.
    db = Database(conn, execute_plugins=False)
    # sqlite-utils learns whether SQLite has ON CONFLICT by creating and
    # dropping a scratch table in the database at the first upsert; LifeLog's
    # own SQL needs it already (set_meta), so it is said, not probed
    # (tests/test_bucket_rows.py checks that no table is made).
    db._supports_on_conflict = True
    return db


def open_db(path: str | os.PathLike[str], *, create: bool = True) -> Database:
    """Open (and with create=True, make) the database, schema applied.

    With create=False a missing file raises DatabaseMissing and nothing is
    written to disk: `lifelog status` must not create a database.
    """
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"database path {path} is a directory; give a file path with --db")
    made_here = False
    if not path.exists():
        if not create:
            raise DatabaseMissing(f"no database at {path}; create it with 'lifelog init'")
        made_here = _create_file(path)
    try:
        conn = connect(path)
        db = wrap(conn)
        try:
            version = _version(db, path)
            if version < SCHEMA_VERSION:
                _use_wal(conn)
                upgrade(db, path)
            conn.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            conn.close()
            raise
    except sqlite3.DatabaseError as e:
        # Undo only an empty file of our own: one another process has begun
        # to use (several creating the database at once) is theirs too.
        if made_here and _is_empty(path):
            try:
                path.unlink()
            except OSError:
                pass
        msg = str(e)
        if "not a database" in msg or "malformed" in msg:
            raise DatabaseUnusable(
                f"{path} is not a usable SQLite database ({msg}); "
                "point --db at a LifeLog database or a new path"
            ) from None
        why = _unwritable_folder(path)
        if why:
            raise DatabaseUnusable(
                f"cannot open the database {path}: {msg}; {why}, and SQLite must create "
                f"{path.name}-wal and {path.name}-shm there; make it writable or move the database"
            ) from None
        raise DatabaseUnusable(f"cannot open the database {path}: {msg}") from None
    return db


def _version(db: Database, path: Path | None) -> int:
    """The database's schema version; a newer one than ours is refused: our
    schema.sql and our queries would meet tables a newer LifeLog changed, and
    could write rows it cannot read."""
    version: int = db.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise DatabaseTooNew(
            f"{path} was made by a newer LifeLog (schema version {version}; this one knows "
            f"{SCHEMA_VERSION}): upgrade LifeLog"
        )
    return version


def _is_empty(path: Path) -> bool:
    try:
        return path.stat().st_size == 0
    except OSError:
        return False


def _use_wal(conn: sqlite3.Connection) -> None:
    """Turn on WAL. Switching the journal mode needs the database to itself
    and does not wait on the busy timeout, so a process creating the database
    beside others retries it, as boundedly as the busy timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() >= deadline:
                raise
            time.sleep(0.02)


def _unwritable_folder(path: Path) -> str:
    """Why the database's folder cannot be written, or "" when it can."""
    folder = path.parent
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return f"its folder {folder} is on a read-only file system"
    except (OSError, AttributeError):
        return ""
    if not os.access(folder, os.W_OK):
        return f"its folder {folder} is not writable"
    return ""


def upgrade(db: Database, path: Path | None = None) -> None:
    """Bring a new or older database up to SCHEMA_VERSION: the pending
    migrations (lifelog.db.migrations), then schema.sql (every statement of
    which is idempotent).

    One IMMEDIATE transaction: processes opening the database at once take
    turns through the busy timeout (the later ones find it done), and a
    failure leaves the database as it was."""
    from lifelog.db import migrations

    with transaction(db):
        version = _version(db, path)  # again, under the lock: another process may have upgraded it
        if version >= SCHEMA_VERSION:
            return
        migrations.apply(db, version)
        apply_schema(db)


def apply_schema(db: Database) -> None:
    """schema.sql (every statement idempotent: it creates what is missing)."""
    with transaction(db):
        for statement in statements(schema_sql()):
            db.execute(statement)


@contextmanager
def lock_wait(db: Database, seconds: float) -> Iterator[Database]:
    """Wait at most `seconds` (not BUSY_TIMEOUT_SECONDS) for the write lock
    inside the block: for a caller that must not wait behind a stuck writer.
    The wait before the block is put back after it (blocks nest)."""
    before = db.conn.execute("PRAGMA busy_timeout").fetchone()[0]
    db.conn.execute(f"PRAGMA busy_timeout = {int(seconds * 1000)}")
    try:
        yield db
    finally:
        db.conn.execute(f"PRAGMA busy_timeout = {int(before)}")


@contextmanager
def transaction(db: Database) -> Iterator[Database]:
    """One write transaction (BEGIN IMMEDIATE); joins an enclosing one."""
    conn = db.conn
    if conn.in_transaction:
        yield db
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        # SQLite may already have rolled back by itself (SQLITE_FULL, an I/O
        # error, SQLITE_BUSY in some cases); a ROLLBACK then would raise
        # "no transaction is active" and hide the real error.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    try:
        conn.execute("COMMIT")
    except BaseException:
        # A COMMIT that fails (a deferred foreign key, SQLITE_BUSY, an I/O
        # error) can leave the transaction open: the next transaction() would
        # join it, nothing after would commit, and the write lock stays held.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
