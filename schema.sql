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

-- One row per AW event. AW's ids are unique only within one AW database and
-- restart when AW is reinstalled, hence the server column in the key.
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
CREATE INDEX IF NOT EXISTS events_by_bucket_time ON events (server, bucket_id, timestamp);
CREATE INDEX IF NOT EXISTS events_by_end ON events (ended_at);

-- One row per AW health check (`lifelog health`, or the daemon's schedule).
CREATE TABLE IF NOT EXISTS health_checks (
    id         INTEGER PRIMARY KEY,
    checked_at TEXT NOT NULL,
    aw_url     TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('healthy', 'degraded', 'unhealthy')),
    latency_ms REAL,
    version    TEXT,
    error      TEXT NOT NULL DEFAULT ''
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

PRAGMA user_version = 1;
