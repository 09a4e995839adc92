"""The names of the meta keys, in one place.

Every part reads and writes `meta` through `lifelog.db.meta.get_meta`/`set_meta`
with these names; the README's "Meta keys" tables list them. The documented
ones keep their names and meanings; the rest are LifeLog's own bookkeeping. Keys that belong to one bucket or one
ActivityWatch server are made by the functions at the end, so the shape is
per source from the start.
"""

from __future__ import annotations

# -- the watcher (README "Meta keys") ------------------------------------------------------
WATCHER_PID = "watcher.pid"
WATCHER_STARTED_AT = "watcher.started_at"
WATCHER_HEARTBEAT_AT = "watcher.heartbeat_at"
WATCHER_LAST_EVENT_TS = "watcher.last_event_ts"
WATCHER_LAST_POLL_OK_AT = "watcher.last_poll_ok_at"
WATCHER_LAST_ERROR = "watcher.last_error"
WATCHER_STATE = "watcher.state"
# Its identity, checked before the watchdog signals that PID (lifelog.core.identity).
WATCHER_PROCESS_CREATED = "watcher.process_created"
WATCHER_CMDLINE = "watcher.cmdline"
# The awake and since-boot clocks at the heartbeat (sleep detection).
WATCHER_HEARTBEAT_CLOCKS = "watcher.heartbeat_clocks"

# -- AW health (README "Monitoring") -------------------------------------------------------
AW_STATUS = "aw.status"
AW_CHECKED_AT = "aw.checked_at"
AW_LAST_HEALTHY_AT = "aw.last_healthy_at"
AW_VERSION = "aw.version"
AW_LATENCY_MS = "aw.latency_ms"
AW_ERROR = "aw.error"
AW_CONSECUTIVE_FAILURES = "aw.consecutive_failures"

# -- the watchdog (README "How the watchdog decides") --------------------------------------
WATCHDOG_CHECKED_AT = "watchdog.checked_at"
WATCHDOG_VERDICT = "watchdog.verdict"
WATCHDOG_REASON = "watchdog.reason"
WATCHDOG_ACTOR = "watchdog.actor"
WATCHDOG_LAST_RESTART_AT = "watchdog.last_restart_at"
WATCHDOG_LAST_RESTART_REASON = "watchdog.last_restart_reason"
WATCHDOG_RESTART_COUNT = "watchdog.restart_count"
WATCHDOG_BACKOFF_LEVEL = "watchdog.backoff_level"
WATCHDOG_LAST_START_AT = "watchdog.last_start_at"
WATCHDOG_SPAWNED_PID = "watchdog.spawned_pid"
WATCHDOG_SPAWNED_CREATED = "watchdog.spawned_created"
WATCHDOG_SPAWNED_CMDLINE = "watchdog.spawned_cmdline"
WATCHDOG_PAUSED = "watchdog.paused"
WATCHDOG_PAUSED_AT = "watchdog.paused_at"
WATCHDOG_RESUMED_FOR = "watchdog.resumed_for"

# -- the overall status and its alerts (README "Status and alerts" and "Settings") ---------
STATUS_LEVEL = "status.level"
STATUS_SINCE = "status.since"
STATUS_SUMMARY = "status.summary"
STATUS_PREVIOUS = "status.previous"
STATUS_ALERTED_AT = "status.alerted_at"
STATUS_ALERT_RESULT = "status.alert_result"

# -- the daemon ----------------------------------------------------------------------------
DAEMON_PID = "daemon.pid"
DAEMON_STARTED_AT = "daemon.started_at"
DAEMON_STATE = "daemon.state"
DAEMON_UNCLEAN_EXITS = "daemon.unclean_exits"
DAEMON_LAST_UNCLEAN_EXIT = "daemon.last_unclean_exit"

# -- reconciliation ------------------------------------------------------------------------
RECONCILE_FINISHED_AT = "reconcile.finished_at"
RECONCILE_SUMMARY = "reconcile.summary"

# -- coverage (README "Finding gaps") ------------------------------------------------------
# events.updated_at up to which the coverage summary (coverage_cells) is current.
COVERAGE_CELLS_AS_OF = "coverage.cells_as_of"

# -- the database itself -------------------------------------------------------------------
DB_CREATED_AT = "db.created_at"

# -- seen from outside: the dead man's switch ----------------------------------------------
PING_LAST_AT = "ping.last_at"
PING_LAST_SENT = "ping.last_sent"  # ok, fail, up or down
PING_LAST_RESULT = "ping.last_result"  # the HTTP status, or the error
PING_LAST_LEVEL = "ping.last_level"  # the overall level that ping reported

# -- backups (README "Backups") ------------------------------------------------------------
BACKUP_LAST_OK_AT = "backup.last_ok_at"  # the moment the newest verified backup is a copy of
BACKUP_LAST_PATH = "backup.last_path"
BACKUP_LAST_BYTES = "backup.last_bytes"
BACKUP_LAST_ERROR = "backup.last_error"  # empty after a good backup
BACKUP_LAST_EVENTS = "backup.last_events"
BACKUP_LAST_SECONDS = "backup.last_seconds"
BACKUP_LAST_ATTEMPT_AT = "backup.last_attempt_at"  # good or not
# Written into a restored database: where it came from, and when.
BACKUP_RESTORED_FROM = "backup.restored_from"
BACKUP_RESTORED_AT = "backup.restored_at"

# -- sources: AW's own watchers (README "When an ActivityWatch watcher goes quiet") --------
# Since when the machine has been awake without a sleep, as the passes saw it
# (the afk watcher is expected to record while it is), and the clocks read
# then: a sleep since shows as the since-boot clock gaining on the awake one.
SOURCES_AWAKE_SINCE = "sources.awake_since"
SOURCES_CLOCKS = "sources.clocks"

# Per source: `source.<bucket_id>.<field>`. Bucket ids may hold dots (host
# names), so a key is read back by its known prefix and suffix, never split.
SOURCE_PREFIX = "source."
SOURCE_FIELDS = ("state", "since", "newest_end", "reason", "restart_level", "last_restart_at")


def source_key(bucket_id: str, name: str) -> str:
    return f"{SOURCE_PREFIX}{bucket_id}.{name}"


def source_state(bucket_id: str) -> str:
    """live, idle, silent, copy, remote or unjudged, as the latest pass judged it."""
    return source_key(bucket_id, "state")


def source_since(bucket_id: str) -> str:
    """The pass that first saw the current state; unchanged while it holds."""
    return source_key(bucket_id, "since")


def source_newest_end(bucket_id: str) -> str:
    """End of its newest event, by AW's bucket list or LifeLog's copy, whichever is later."""
    return source_key(bucket_id, "newest_end")


def source_reason(bucket_id: str) -> str:
    return source_key(bucket_id, "reason")


def source_restart_level(bucket_id: str) -> str:
    """Consecutive runs of its restart command in effect (the backoff level)."""
    return source_key(bucket_id, "restart_level")


def source_last_restart_at(bucket_id: str) -> str:
    return source_key(bucket_id, "last_restart_at")


def source_of_state_key(key: str) -> str | None:
    """The bucket id of a `source.<bucket_id>.state` key, else None."""
    suffix = ".state"
    if key.startswith(SOURCE_PREFIX) and key.endswith(suffix) and len(key) > len(SOURCE_PREFIX) + len(suffix):
        return key[len(SOURCE_PREFIX):-len(suffix)]
    return None


# -- reading values ------------------------------------------------------------------------


def int_of(text: str | None) -> int | None:
    """The whole number a meta value holds (meta is text), or None when the key
    is absent or its value is not one (meta edited by hand): every reader of a
    count, a level or a PID in meta reads it through here."""
    if text is None:
        return None
    try:
        return int(str(text))  # int() itself allows the spaces around it
    except ValueError:
        return None
