"""The names of the meta keys, in one place.

Every part reads and writes `meta` through `lifelog.db.get_meta`/`set_meta`
with these names; SPEC section 3 (and sections 10-12) fix the public ones, the
rest are LifeLog's own bookkeeping. Keys that belong to one bucket or one
ActivityWatch server are made by the functions at the end, so the shape is
per source from the start.
"""

from __future__ import annotations

# -- the watcher (SPEC section 3) --------------------------------------------------
WATCHER_PID = "watcher.pid"
WATCHER_STARTED_AT = "watcher.started_at"
WATCHER_HEARTBEAT_AT = "watcher.heartbeat_at"
WATCHER_LAST_EVENT_TS = "watcher.last_event_ts"
WATCHER_LAST_POLL_OK_AT = "watcher.last_poll_ok_at"
WATCHER_LAST_ERROR = "watcher.last_error"
WATCHER_STATE = "watcher.state"
# Its identity, checked before the watchdog signals that PID (lifelog.identity).
WATCHER_PROCESS_CREATED = "watcher.process_created"
WATCHER_CMDLINE = "watcher.cmdline"
# The awake and since-boot clocks at the heartbeat (sleep detection).
WATCHER_HEARTBEAT_CLOCKS = "watcher.heartbeat_clocks"

# -- AW health (SPEC section 4) -------------------------------------------------------
AW_STATUS = "aw.status"
AW_CHECKED_AT = "aw.checked_at"
AW_LAST_HEALTHY_AT = "aw.last_healthy_at"
AW_VERSION = "aw.version"
AW_LATENCY_MS = "aw.latency_ms"
AW_ERROR = "aw.error"
AW_CONSECUTIVE_FAILURES = "aw.consecutive_failures"

# -- the watchdog (SPEC section 5) ----------------------------------------------------
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

# -- the overall status and its alerts (SPEC sections 7, 8) ------------------------------
STATUS_LEVEL = "status.level"
STATUS_SINCE = "status.since"
STATUS_SUMMARY = "status.summary"
STATUS_PREVIOUS = "status.previous"
STATUS_ALERTED_AT = "status.alerted_at"
STATUS_ALERT_RESULT = "status.alert_result"

# -- the daemon ---------------------------------------------------------------------------
DAEMON_PID = "daemon.pid"
DAEMON_STARTED_AT = "daemon.started_at"
DAEMON_STATE = "daemon.state"
DAEMON_UNCLEAN_EXITS = "daemon.unclean_exits"
DAEMON_LAST_UNCLEAN_EXIT = "daemon.last_unclean_exit"

# -- reconciliation -----------------------------------------------------------------------
RECONCILE_FINISHED_AT = "reconcile.finished_at"
RECONCILE_SUMMARY = "reconcile.summary"

# -- coverage (SPEC section 13) --------------------------------------------------------------
# events.updated_at up to which the coverage summary (coverage_cells) is current.
COVERAGE_CELLS_AS_OF = "coverage.cells_as_of"

# -- the database itself --------------------------------------------------------------------
DB_CREATED_AT = "db.created_at"

# -- seen from outside: the dead man's switch ------------------------------------------------
PING_LAST_AT = "ping.last_at"
PING_LAST_SENT = "ping.last_sent"  # ok, fail, up or down
PING_LAST_RESULT = "ping.last_result"  # the HTTP status, or the error
PING_LAST_LEVEL = "ping.last_level"  # the overall level that ping reported

# -- backups (SPEC section 12) ----------------------------------------------------------------
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
