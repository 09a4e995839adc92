"""The SQLite file: opening it safely, the schema, and transactions.

Opening creates the folder and a 0600 file when missing, turns on WAL (so a
user's `sqlite3` shell or Datasette never stops the writers) and a busy
timeout (so a writer that meets a lock waits, boundedly, instead of failing).
Write transactions start with BEGIN IMMEDIATE: a deferred transaction that
later needs the write lock can fail at once with SQLITE_BUSY, ignoring the
busy timeout.

All meta access goes through `get_meta` and `set_meta` (lifelog.db.meta),
the only module that touches `meta` by SQL.

Plain `sqlite3`, not sqlite-utils: every command opens the database, and
sqlite-utils costs ~190 ms to import, more than a whole cron pass may take.
`Database` keeps the little LifeLog needs of it (`conn`, `query`,
`table_names`).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lifelog.core.errors import LifelogError, UsageError

SCHEMA_VERSION = 7
# CREATE TABLE IF NOT EXISTS never changes an existing table: what a version
# added to a table of an older database is added here, before schema.sql runs,
# and what it removed is dropped. (A new index or table needs nothing here:
# schema.sql creates it.)
MIGRATIONS = {
    3: ["ALTER TABLE sync_state ADD COLUMN lookback_start TEXT",
        "ALTER TABLE sync_state ADD COLUMN lookback_count INTEGER"],
    # events_by_bucket_span, a wider (server, bucket_id, timestamp, ...), replaces it.
    7: ["DROP INDEX IF EXISTS events_by_bucket_time"],
}
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


class Database:
    """One connection to a LifeLog database (autocommit; transactions explicit)."""

    def __init__(self, conn: sqlite3.Connection, path: Path | None = None):
        self.conn = conn
        self.path = path

    def query(self, sql: str, params: Any = ()) -> Iterator[dict[str, Any]]:
        """Rows as dicts, for reports and tests."""
        cur = self.conn.execute(sql, params)
        names = [d[0] for d in cur.description or ()]
        for row in cur:
            yield dict(zip(names, row, strict=True))

    def table_names(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]

    def columns(self, table: str) -> list[str]:
        return [r[1] for r in self.conn.execute(f"PRAGMA table_info({table})")]

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def schema_sql() -> str:
    """schema.sql: packaged beside this module in a wheel (pyproject's force-include),
    at the repository root (two folders up) in a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "schema.sql", here.parents[1] / "schema.sql"):
        if candidate.is_file():
            return candidate.read_text(encoding="utf-8")
    raise LifelogError("schema.sql is missing from the LifeLog installation; reinstall LifeLog")


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
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            # A downgrade: our schema.sql and our queries would meet tables a
            # newer LifeLog changed, and could write rows it cannot read.
            conn.close()
            raise DatabaseTooNew(
                f"{path} was made by a newer LifeLog (schema version {version}; this one knows "
                f"{SCHEMA_VERSION}): upgrade LifeLog"
            )
        if version < SCHEMA_VERSION:
            _use_wal(conn)
            apply_schema(conn)
        conn.execute("PRAGMA synchronous = NORMAL")
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
    return Database(conn, path)


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


def apply_schema(conn: sqlite3.Connection) -> None:
    """Bring an older database's tables up to date, then apply schema.sql
    (every statement of which is idempotent)."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > 0:  # a new database gets every column from schema.sql itself
        for v in range(version + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS.get(v, []):
                try:
                    conn.execute(statement)
                except sqlite3.OperationalError as e:
                    if "duplicate column name" not in str(e):
                        raise  # (another process upgrading at once added it first)
    # One IMMEDIATE transaction: processes creating the database at once take
    # turns through the busy timeout, instead of one failing at once with
    # SQLITE_BUSY when a statement that read first must then write.
    try:
        conn.executescript("BEGIN IMMEDIATE;\n" + schema_sql() + "\nCOMMIT;")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


@contextmanager
def lock_wait(db: Database, seconds: float) -> Iterator[Database]:
    """Wait at most `seconds` (not BUSY_TIMEOUT_SECONDS) for the write lock
    inside the block: for a caller that must not wait behind a stuck writer."""
    db.conn.execute(f"PRAGMA busy_timeout = {int(seconds * 1000)}")
    try:
        yield db
    finally:
        db.conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")


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
