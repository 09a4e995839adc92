"""Changes to the tables of an existing database: sqlite-utils `Migrations`,
named, applied in order, each once, and recorded in `_sqlite_migrations`.

CREATE TABLE IF NOT EXISTS never changes an existing table: what a version
adds to or removes from a table is a migration here, and the schema version
(lifelog.db.database.SCHEMA_VERSION, schema.sql's user_version) goes up with
it: an open upgrades only a database whose user_version is older. A new
table or index needs no migration, only the version bump: schema.sql,
applied after the migrations, creates it. A new database goes through the migrations too, before schema.sql
creates its tables: each finds nothing to change and is recorded as done.

Migrations write through sqlite-utils' Table API inside the upgrade's
BEGIN IMMEDIATE transaction (lifelog.db.database.upgrade), where each one's
own `atomic()` is a savepoint.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlite_utils import Database, Migrations

from lifelog.db.schema import schema_sql, statements

MIGRATIONS = Migrations("lifelog")


@MIGRATIONS(name="sync_state_lookback")
def _sync_state_lookback(db: Database) -> None:
    """Version 3: the lookback count of each bucket's latest fetching poll."""
    table = db.table("sync_state")
    if table.exists():
        have = table.columns_dict
        for column, kind in (("lookback_start", str), ("lookback_count", int)):
            if column not in have:
                table.add_column(column, kind)


@MIGRATIONS(name="drop_events_by_bucket_time")
def _drop_events_by_bucket_time(db: Database) -> None:
    """Version 7: events_by_bucket_span, a wider (server, bucket_id, timestamp, ...), replaces it."""
    events = db.table("events")
    if events.exists():
        events.drop_index("events_by_bucket_time", ignore=True)


@MIGRATIONS(name="health_checks_device")
def _health_checks_device(db: Database) -> None:
    """Version 9: a row per device (SPEC section 14): its name in `device`,
    and the status `unreachable` (a `sometimes` device that does not answer).

    A CHECK constraint cannot be altered, and sqlite-utils' transform() does
    not carry one over: the table is made again from schema.sql's own
    statement (so an upgraded database reads exactly as a new one) and its
    rows copied in. Its index goes with the old table; schema.sql, applied
    next, makes it again."""
    table = db.table("health_checks")
    if not table.exists() or "device" in table.columns_dict:
        return
    create = next(s for s in statements(schema_sql()) if "CREATE TABLE IF NOT EXISTS health_checks (" in s)
    columns = "id, checked_at, aw_url, status, latency_ms, version, error"
    db.execute("ALTER TABLE health_checks RENAME TO health_checks_v8")
    db.execute(create)
    db.execute(f"INSERT INTO health_checks ({columns}) SELECT {columns} FROM health_checks_v8")
    db.execute("DROP TABLE health_checks_v8")


@MIGRATIONS(name="source_log_device")
def _source_log_device(db: Database) -> None:
    """Version 10: with the `devices` setting a source is (device, bucket_id),
    and each source_log row names its device. Rows from before name none
    (NULL, as a row made without the setting).

    Made again from schema.sql's statement and its rows copied in, as
    health_checks_device does: an added column would leave the table's SQL
    unlike a new database's. Its indexes go with the old table; schema.sql,
    applied next, makes them again."""
    table = db.table("source_log")
    if not table.exists() or "device" in table.columns_dict:
        return
    create = next(s for s in statements(schema_sql()) if "CREATE TABLE IF NOT EXISTS source_log (" in s)
    have = table.columns_dict
    columns = ", ".join(c for c in ("id", "at", "server", "bucket_id", "state", "reason") if c in have)
    db.execute("ALTER TABLE source_log RENAME TO source_log_v9")
    db.execute(create)
    db.execute(f"INSERT INTO source_log ({columns}) SELECT {columns} FROM source_log_v9")
    db.execute("DROP TABLE source_log_v9")


# Before version 8 an upgrade was recorded only as PRAGMA user_version: the
# version from which a database already has each migration's change.
APPLIED_BY_VERSION = {"sync_state_lookback": 3, "drop_events_by_bucket_time": 7}
FIRST_RECORDED_VERSION = 8


def apply(db: Database, version: int) -> None:
    """The pending migrations of a database at schema `version` (0: new)."""
    if 0 < version < FIRST_RECORDED_VERSION:
        _adopt_earlier_upgrades(db, version)
    MIGRATIONS.apply(db)


def _adopt_earlier_upgrades(db: Database, version: int) -> None:
    """Record as applied the migrations a database from before
    FIRST_RECORDED_VERSION already has (its user_version says which), so
    that they do not run again."""
    MIGRATIONS.ensure_migrations_table(db)
    done = {m.name for m in MIGRATIONS.applied(db)}
    at = str(datetime.now(UTC))  # as sqlite-utils records its own
    db.table(MIGRATIONS.migrations_table).insert_all(
        {"migration_set": MIGRATIONS.name, "name": name, "applied_at": at}
        for name, since in APPLIED_BY_VERSION.items() if since <= version and name not in done
    )
