"""Pruning LifeLog's own history: `health_checks` and `watchdog_log`.

One row per health check (every 15 minutes) and per watchdog decision other
than `ok` add up over years; rows older than `history_retention_days` are
deleted in small batches, each its own short transaction, so pruning a large
backlog never holds the write lock long. Every health check calls it
(lifelog.checks.health.run_check), whatever runs the checks.
Events are never pruned: they are what LifeLog keeps.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from lifelog.core.timeutil import to_iso
from lifelog.db.database import transaction

# (table, its time column); both columns are indexed.
HISTORY_TABLES = (("health_checks", "checked_at"), ("watchdog_log", "at"))
BATCH_ROWS = 500
# Batches per call and table: a backlog of years is worked off over a few
# health checks instead of in one long run.
MAX_BATCHES = 20


def cutoff(now: datetime, retention_days: float) -> str:
    """Rows stamped before this are past retention (one at exactly it is kept)."""
    return to_iso(now - timedelta(days=retention_days))


def prune(db, now: datetime, retention_days: float, *, batch: int = BATCH_ROWS,
          max_batches: int = MAX_BATCHES) -> int:
    """Delete rows older than the retention, at most `batch` per transaction;
    returns how many went. Without any expired row it takes no write lock."""
    before = cutoff(now, retention_days)
    deleted = 0
    for table, column in HISTORY_TABLES:
        for _ in range(max_batches):
            if db.execute(f"SELECT 1 FROM {table} WHERE {column} < ? LIMIT 1", (before,)).fetchone() is None:
                break
            with transaction(db):
                cur = db.execute(
                    f"DELETE FROM {table} WHERE id IN "
                    f"(SELECT id FROM {table} WHERE {column} < ? ORDER BY {column} LIMIT ?)",
                    (before, batch),
                )
            deleted += cur.rowcount
    return deleted
