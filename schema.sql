-- LifeLog's schema: the one source of truth, applied by `lifelog init` and on
-- first use. Every statement is idempotent, so applying it again changes
-- nothing. Timestamps are ISO-8601 UTC text written with `+00:00`, so they
-- sort as text and work with SQLite's date functions.

-- Every part records its state here; read it with `lifelog meta show` or SQL.
CREATE TABLE IF NOT EXISTS meta (
    key        TEXT PRIMARY KEY,
    value      TEXT,
    updated_at TEXT NOT NULL
);

-- When LifeLog created this database (or first opened it with schema
-- version 4): `lifelog status` counts a missing first backup from here.
INSERT OR IGNORE INTO meta (key, value, updated_at)
SELECT 'db.created_at', t, t FROM (
    SELECT strftime('%Y-%m-%dT%H:%M:%S', 'now') || '.' || substr(strftime('%f', 'now'), 4) || '000+00:00' AS t);

-- The meta table with each key's age, for people at the sqlite3 prompt:
--   SELECT * FROM meta_ages WHERE key LIKE 'watcher.%';
CREATE VIEW IF NOT EXISTS meta_ages AS
SELECT key,
       value,
       updated_at,
       round((julianday('now') - julianday(updated_at)) * 86400.0, 1) AS age_seconds
FROM meta;

-- One row per AW bucket seen, keyed by the AW server it lives on (its
-- device_id from /api/0/info) because bucket ids repeat across servers.
CREATE TABLE IF NOT EXISTS buckets (
    server           TEXT NOT NULL,
    bucket_id        TEXT NOT NULL,
    created          TEXT,
    name             TEXT,
    type             TEXT,
    client           TEXT,
    hostname         TEXT,
    data             TEXT,          -- JSON
    last_updated     TEXT,          -- AW's hint: end of its newest-starting event
    first_seen_at    TEXT NOT NULL,
    last_seen_at     TEXT NOT NULL,
    deleted_in_aw_at TEXT,          -- set when AW no longer lists the bucket
    PRIMARY KEY (server, bucket_id)
);

-- One row per AW event, as AW holds it now: never a copy clipped by a query
-- window. AW's ids are unique only within one AW database and restart when AW
-- is reinstalled, hence the server column (AW's device_id) in the key.
--   * A heartbeat grows the newest event in place (same id, same timestamp,
--     longer duration): the row is updated in place.
--   * The same id arriving with another timestamp or other data is another
--     event (aw-server-python reuses the highest id after a delete; its
--     heartbeat cache can rewrite a row; a POST with an id overwrites): the
--     old row is first copied to events_replaced, then this row takes the
--     new content. Nothing ingested is ever lost.
--   * An event AW no longer has is never deleted here: reconciliation sets
--     deleted_in_aw_at. Leave such rows out with `WHERE deleted_in_aw_at IS NULL`.
-- `data` is AW's JSON as compact text, keys in the order AW sent them;
-- comparisons ignore key order.
CREATE TABLE IF NOT EXISTS events (
    server           TEXT NOT NULL,
    bucket_id        TEXT NOT NULL,
    event_id         INTEGER NOT NULL,
    timestamp        TEXT NOT NULL,
    duration         REAL NOT NULL, -- seconds
    data             TEXT NOT NULL, -- JSON
    ended_at         TEXT NOT NULL, -- timestamp + duration
    ingested_at      TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    deleted_in_aw_at TEXT,          -- AW no longer has it; never deleted here
    UNIQUE (server, bucket_id, event_id)
);
CREATE INDEX IF NOT EXISTS events_by_time ON events (timestamp);
-- A bucket's events by time. With ended_at and deleted_in_aw_at in it too,
-- reconcile's counts of a year of one bucket read only this index.
CREATE INDEX IF NOT EXISTS events_by_bucket_span ON events (server, bucket_id, timestamp, ended_at, deleted_in_aw_at);
CREATE INDEX IF NOT EXISTS events_by_end ON events (ended_at);
-- A bucket's newest end (sync_state.newest_end) is recomputed inside the
-- write transaction that replaces a row or marks one deleted in AW: this
-- index answers it from the newest rows, not by reading the whole bucket.
CREATE INDEX IF NOT EXISTS events_by_bucket_end ON events (server, bucket_id, ended_at);
-- What changed since a moment: `lifelog coverage` refreshes its per-minute
-- summary (coverage_cells) from the rows written since its last refresh.
CREATE INDEX IF NOT EXISTS events_by_update ON events (updated_at);

-- Earlier versions of an events row whose id AW gave to another event (or
-- whose timestamp or data AW rewrote). One row per version replaced.
CREATE TABLE IF NOT EXISTS events_replaced (
    server           TEXT NOT NULL,
    bucket_id        TEXT NOT NULL,
    event_id         INTEGER NOT NULL,
    timestamp        TEXT NOT NULL,
    duration         REAL NOT NULL,
    data             TEXT NOT NULL,
    ended_at         TEXT NOT NULL,
    ingested_at      TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    deleted_in_aw_at TEXT,
    replaced_at      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_replaced_by_key ON events_replaced (server, bucket_id, event_id);
-- What was replaced since a moment (`lifelog coverage`'s refresh asks,
-- inside its write transaction): without it, a scan of every version kept.
CREATE INDEX IF NOT EXISTS events_replaced_by_time ON events_replaced (replaced_at);

-- Ingestion progress per bucket, so any process (watcher, backfill,
-- reconcile), killed at any moment, carries on where the last one committed.
CREATE TABLE IF NOT EXISTS sync_state (
    server        TEXT NOT NULL,
    bucket_id     TEXT NOT NULL,
    head_ts       TEXT,  -- start of the newest event stored; polls ask AW from head_ts - lookback
    hint          TEXT,  -- AW's last_updated (or metadata.end) at the latest good poll
    newest_end    TEXT,  -- max ended_at of the bucket's rows (watcher.last_event_ts without a scan)
    polled_at     TEXT,
    reconciled_at TEXT,
    -- AW's hint only moves with the newest-*starting* event, so an event
    -- inserted with an older start (back-dated, a client replaying its queue)
    -- leaves it as it was. The number of events AW returned from
    -- lookback_start at the latest fetching poll tells: when AW's count from
    -- there differs, an idle poll fetches after all.
    lookback_start TEXT,
    lookback_count INTEGER,
    PRIMARY KEY (server, bucket_id)
);

-- History still to fetch: AW has no cursor, so a range is fetched newest
-- first in pages (`end=hi`, no `start`: no start clipping, no 24 h cut), and
-- each committed page moves `hi` down. The row goes when the range is done.
CREATE TABLE IF NOT EXISTS sync_gaps (
    id         INTEGER PRIMARY KEY,
    server     TEXT NOT NULL,
    bucket_id  TEXT NOT NULL,
    lo         TEXT,          -- fetch down to here; NULL: the bucket's beginning
    hi         TEXT NOT NULL, -- the `end` of the next page (inclusive)
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sync_gaps_by_bucket ON sync_gaps (server, bucket_id);

-- One row per AW health check (`lifelog health`, or the daemon's schedule).
CREATE TABLE IF NOT EXISTS health_checks (
    id         INTEGER PRIMARY KEY,
    checked_at TEXT NOT NULL,
    aw_url     TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('healthy', 'degraded', 'unhealthy', 'unreachable')),
    latency_ms REAL,
    version    TEXT,
    error      TEXT NOT NULL DEFAULT '',
    device     TEXT  -- the device's name with the `devices` setting; NULL: the one AW of aw_url
);
CREATE INDEX IF NOT EXISTS health_checks_by_time ON health_checks (checked_at);

-- One row per watchdog decision other than `ok` (every pass writes one, so
-- a paused or holding watchdog leaves a trail). For a restart: the process
-- replaced, how long it had run, and the backoff level after this restart.
CREATE TABLE IF NOT EXISTS watchdog_log (
    id                 INTEGER PRIMARY KEY,
    at                 TEXT NOT NULL,
    verdict            TEXT NOT NULL,
    reason             TEXT NOT NULL,
    action             TEXT NOT NULL DEFAULT '',
    actor              TEXT NOT NULL DEFAULT '',  -- cron, loop, daemon
    old_pid            INTEGER,                   -- restarts: the process replaced
    old_uptime_seconds REAL,                      -- restarts: how long it had run
    backoff_level      INTEGER NOT NULL DEFAULT 0,
    replaced           INTEGER NOT NULL DEFAULT 0 -- 1: a watcher had run before (a failure, not a first start)
);
CREATE INDEX IF NOT EXISTS watchdog_log_by_time ON watchdog_log (at);

-- One row per change of a source's state (an AW bucket judged by each
-- watchdog pass: README "When an ActivityWatch watcher goes quiet"), the
-- first judgement included: the history `lifelog coverage` explains gaps from.
-- A source is (server, bucket_id): two devices with one host name list the
-- same bucket ids; `device` names the device for people (its device_id in
-- `server` changes when its AW is reinstalled).
CREATE TABLE IF NOT EXISTS source_log (
    id        INTEGER PRIMARY KEY,
    at        TEXT NOT NULL,
    server    TEXT NOT NULL DEFAULT '',  -- the AW server's device_id
    bucket_id TEXT NOT NULL,
    state     TEXT NOT NULL,             -- live, idle, silent, copy, remote, unjudged
    reason    TEXT NOT NULL DEFAULT '',
    device    TEXT  -- the device's name with the `devices` setting; NULL: the one AW of aw_url
);
CREATE INDEX IF NOT EXISTS source_log_by_bucket ON source_log (bucket_id, at);
CREATE INDEX IF NOT EXISTS source_log_by_time ON source_log (at);

-- The AW servers LifeLog has read from, by device_id (the `server` column
-- above), with the host name and version /api/0/info gave: a bucket whose
-- hostname is not its server's belongs to another machine (a `remote` source).
-- Written when the watcher connects and by each health check.
CREATE TABLE IF NOT EXISTS servers (
    device_id TEXT PRIMARY KEY,
    hostname  TEXT,
    version   TEXT,
    seen_at   TEXT NOT NULL
);

-- Every device_id each device of the `devices` setting has answered with
-- (SPEC section 14: AW reinstalled answers with a new one and starts a new
-- series; the old rows stay): `lifelog coverage` reads a device's rows on
-- all of them. Written when a device first answers with an id (the watcher,
-- `backfill`, `reconcile`), never for a refused clone; the id a device had
-- before this table existed is in meta (device.<name>.device_id) until it
-- changes, and is written then.
CREATE TABLE IF NOT EXISTS device_ids (
    device        TEXT NOT NULL,  -- the name in the devices setting
    device_id     TEXT NOT NULL,  -- the `server` column of events and buckets
    first_seen_at TEXT NOT NULL,
    PRIMARY KEY (device, device_id)
) WITHOUT ROWID;

-- One row per watcher process: when it started and its latest heartbeat,
-- updated in place with every heartbeat (in the same transaction). The
-- stretches between runs are when LifeLog's watcher was not running, for
-- `lifelog coverage` (cause `lifelog_down`). `boot_at` is when the machine
-- booted (wall clock minus the since-boot clock): a run on a later boot than
-- the previous run's last heartbeat means the machine was off in between.
CREATE TABLE IF NOT EXISTS watcher_runs (
    id                INTEGER PRIMARY KEY,
    pid               INTEGER NOT NULL,
    started_at        TEXT NOT NULL,
    last_heartbeat_at TEXT NOT NULL,
    boot_at           TEXT           -- NULL where the OS gives no since-boot clock
);
CREATE INDEX IF NOT EXISTS watcher_runs_by_heartbeat ON watcher_runs (last_heartbeat_at);

-- `lifelog coverage`'s summary of the events, derived and rebuilt at will:
-- per bucket and UTC minute (`cell` = unix seconds // 60), the seconds its
-- events cover, by afk status (`status` is '' for other buckets). Rows are
-- grouped by the UTC day their events started (`start_day`), the unit in
-- which a day is recomputed when its events change (events.updated_at).
CREATE TABLE IF NOT EXISTS coverage_cells (
    server    TEXT NOT NULL,
    bucket_id TEXT NOT NULL,
    cell      INTEGER NOT NULL,
    status    TEXT NOT NULL,
    start_day TEXT NOT NULL,
    seconds   REAL NOT NULL,
    PRIMARY KEY (server, bucket_id, cell, status, start_day)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS coverage_cells_by_day ON coverage_cells (server, bucket_id, start_day);
-- The same by quarter hour (`block` = unix seconds // 900), for slots that
-- are whole quarter hours: a year is 35,000 blocks a bucket, not 525,000 cells.
CREATE TABLE IF NOT EXISTS coverage_blocks (
    server    TEXT NOT NULL,
    bucket_id TEXT NOT NULL,
    block     INTEGER NOT NULL,
    status    TEXT NOT NULL,
    start_day TEXT NOT NULL,
    seconds   REAL NOT NULL,
    PRIMARY KEY (server, bucket_id, block, status, start_day)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS coverage_blocks_by_day ON coverage_blocks (server, bucket_id, start_day);
-- The (bucket, UTC start day) pairs whose cells and blocks are up to date as of the
-- meta key coverage.cells_as_of.
CREATE TABLE IF NOT EXISTS coverage_days (
    server    TEXT NOT NULL,
    bucket_id TEXT NOT NULL,
    start_day TEXT NOT NULL,
    PRIMARY KEY (server, bucket_id, start_day)
) WITHOUT ROWID;

-- The schema version (lifelog.db.database.SCHEMA_VERSION). The changes to
-- older databases' tables that led here are named migrations, recorded in
-- _sqlite_migrations (sqlite-utils' own table).
PRAGMA user_version = 10;
