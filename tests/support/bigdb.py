"""A LifeLog database of a chosen size, filled fast with synthetic events
(SQL only, no AW), for the backup tests and scripts/bench_backup.py."""

from __future__ import annotations

from pathlib import Path

from lifelog.db.database import open_db

BUCKET = "aw-watcher-window_synthetic"
SERVER = "synthetic-server"

FILL = """
WITH RECURSIVE n(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM n WHERE i < ?)
INSERT INTO events (server, bucket_id, event_id, timestamp, duration, data, ended_at, ingested_at, updated_at)
SELECT ?, ?, i,
       strftime('%Y-%m-%dT%H:%M:%S.000000+00:00', 1600000000 + i * 3, 'unixepoch'), 2.5,
       json_object('app', 'app' || (i % 17), 'title',
                   'Window title number ' || (i % 1000) || ' - ' || hex(randomblob(40))),
       strftime('%Y-%m-%dT%H:%M:%S.500000+00:00', 1600000000 + i * 3 + 2, 'unixepoch'),
       '2026-01-01T00:00:00.000000+00:00', '2026-01-01T00:00:00.000000+00:00'
FROM n
"""


def fill(path: Path, target_bytes: int, chunk: int = 50_000) -> int:
    """Add synthetic events to the database at `path` until it is at least
    `target_bytes` big, and by one chunk at least; returns the events added."""
    db = open_db(path)
    try:
        conn = db.conn
        start = (conn.execute("SELECT max(event_id) FROM events WHERE server = ?", (SERVER,)).fetchone()[0]
                 or 0) + 1
        added = 0
        while added == 0 or _size(conn) < target_bytes:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(FILL, (start + added, start + added + chunk - 1, SERVER, BUCKET))
            conn.execute("COMMIT")
            added += chunk
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return added
    finally:
        db.close()


def _size(conn) -> int:
    return conn.execute("PRAGMA page_count").fetchone()[0] * conn.execute("PRAGMA page_size").fetchone()[0]
