"""The names of the meta keys, in one place.

Every part reads and writes `meta` through `lifelog.db.meta.get_meta`/`set_meta`
with these names; the README's "Meta keys" tables list them. The documented
ones keep their names and meanings; the rest are LifeLog's own bookkeeping. Keys that belong to one bucket or one
ActivityWatch server are made by the functions at the end, so the shape is
per source from the start.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

# -- the watcher (README "Meta keys") ------------------------------------------------------
# With the `devices` setting (lifelog.ingest.fleet.summary): a poll is good
# when every `always` device was polled and stored (with none, any device
# was), and last_error then names each failing device ("laptop: <reason>;
# ..."); a `sometimes` device away, or a refused clone, leaves the poll good
# (their reasons are in device.<name>.last_error). last_event_ts is the
# newest over every device.
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
#
# With the `devices` setting a source is (device, bucket_id): two machines
# with one host name (two AW servers on one host, or two "localhost"s) list
# the same bucket ids. The first device in the table (the machine LifeLog
# runs beside, the one the `aw.*` keys describe) keeps
# `source.<bucket_id>.<field>`, so turning `devices` on with this machine
# first carries its sources' since, history and restart backoff over; every
# other device's are `source.<bucket_id>@<device>.<field>`. Adding a device
# renames no other device's keys. Device names are `a-z 0-9 _ -`, so the
# text after the last '@' is a device only when it names one in the table
# (split_source_id): a bucket id that holds an '@' itself stays whole.
SOURCE_PREFIX = "source."
SOURCE_FIELDS = ("state", "since", "newest_end", "reason", "restart_level", "last_restart_at")
SOURCE_DEVICE_MARK = "@"


def source_id(bucket_id: str, device: str | None = None) -> str:
    """`<bucket_id>`, or `<bucket_id>@<device>` for a device other than the first."""
    return f"{bucket_id}{SOURCE_DEVICE_MARK}{device}" if device else bucket_id


def split_source_id(sid: str, devices: Collection[str]) -> tuple[str, str | None]:
    """(bucket_id, device) of a source id: the device only when the text after
    the last '@' is one of `devices` (the table's devices but the first)."""
    bucket_id, mark, device = sid.rpartition(SOURCE_DEVICE_MARK)
    if mark and bucket_id and device in devices:
        return bucket_id, device
    return sid, None


def key_device(devices: Sequence[str], device: str | None) -> str | None:
    """The device a source's keys name: None for the first in the table
    `devices` (and without the setting), else the device itself."""
    return device if device and devices and device != devices[0] else None


def source_key(bucket_id: str, name: str, device: str | None = None) -> str:
    """`device`: as key_device gives it (None: the first device, or the only AW)."""
    return f"{SOURCE_PREFIX}{source_id(bucket_id, device)}.{name}"


def source_state(bucket_id: str, device: str | None = None) -> str:
    """live, idle, silent, copy, remote or unjudged, as the latest pass judged it."""
    return source_key(bucket_id, "state", device)


def source_since(bucket_id: str, device: str | None = None) -> str:
    """The pass that first saw the current state; unchanged while it holds."""
    return source_key(bucket_id, "since", device)


def source_newest_end(bucket_id: str, device: str | None = None) -> str:
    """End of its newest event, by AW's bucket list or LifeLog's copy, whichever is later."""
    return source_key(bucket_id, "newest_end", device)


def source_reason(bucket_id: str, device: str | None = None) -> str:
    return source_key(bucket_id, "reason", device)


def source_restart_level(bucket_id: str, device: str | None = None) -> str:
    """Consecutive runs of its restart command in effect (the backoff level)."""
    return source_key(bucket_id, "restart_level", device)


def source_last_restart_at(bucket_id: str, device: str | None = None) -> str:
    return source_key(bucket_id, "last_restart_at", device)


def source_of_state_key(key: str) -> str | None:
    """The source id (bucket_id, or bucket_id@device) of a `source.<id>.state` key, else None."""
    suffix = ".state"
    if key.startswith(SOURCE_PREFIX) and key.endswith(suffix) and len(key) > len(SOURCE_PREFIX) + len(suffix):
        return key[len(SOURCE_PREFIX):-len(suffix)]
    return None


# Per device (SPEC section 14), only when the `devices` setting is set:
# `device.<name>.<field>`. Device names are `a-z 0-9 _ -`, so no dots: a key
# splits at its first and last dot.
DEVICE_PREFIX = "device."
DEVICE_FIELDS = ("device_id", "hostname", "reachable", "unreachable_since", "last_poll_ok_at",
                 "last_event_ts", "last_error")


def device_key(name: str, field: str) -> str:
    if field not in DEVICE_FIELDS:
        raise ValueError(f"unknown device field {field!r}")
    return f"{DEVICE_PREFIX}{name}.{field}"


def device_of_key(key: str) -> tuple[str, str] | None:
    """(name, field) of a `device.<name>.<field>` key, else None."""
    if not key.startswith(DEVICE_PREFIX):
        return None
    name, dot, field = key[len(DEVICE_PREFIX):].partition(".")
    return (name, field) if dot and name and field in DEVICE_FIELDS else None


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


# -- what each key means -------------------------------------------------------------------
# Key -> (who writes it, what it holds). The README's "Meta keys" table is made
# from this (scripts/readme_tables.py, checked by tests/test_readme.py), so a
# key added above without a line here fails the suite.
_B = "<bucket_id>"
_D = "<name>"
DOCS: dict[str, tuple[str, str]] = {
    WATCHER_PID: ("watcher", "PID of the running watcher"),
    WATCHER_STARTED_AT: ("watcher", "when that process started"),
    WATCHER_HEARTBEAT_AT: ("watcher", "end of its latest poll, successful or not"),
    WATCHER_LAST_EVENT_TS: ("watcher", "end (timestamp + duration) of the newest event stored, over all buckets"),
    WATCHER_LAST_POLL_OK_AT: ("watcher", "end of the latest poll that reached AW and stored its result (with "
                                         "`devices`: every `always` device's, or with none any device's)"),
    WATCHER_LAST_ERROR: ("watcher", "why the latest poll failed; empty after a good poll (with `devices`: "
                                    "each failing device named, `<name>: <reason>; ...`)"),
    WATCHER_STATE: ("watcher", "`starting`, `running` or `stopped`"),
    WATCHER_PROCESS_CREATED: ("watcher", "its process's start time, checked before the watchdog signals that PID"),
    WATCHER_CMDLINE: ("watcher", "its command line, checked the same way"),
    WATCHER_HEARTBEAT_CLOCKS: ("watcher", "the awake and since-boot clocks at the heartbeat (sleep detection; "
                                          "on Linux CLOCK_MONOTONIC and CLOCK_BOOTTIME, see Platforms)"),
    AW_STATUS: ("health job", "`healthy`, `degraded` or `unhealthy`"),
    AW_CHECKED_AT: ("health job", "time of the latest check"),
    AW_LAST_HEALTHY_AT: ("health job", "time of the latest healthy check"),
    AW_VERSION: ("health job", "`version` from `/api/0/info`"),
    AW_LATENCY_MS: ("health job", "response time of the latest check"),
    AW_ERROR: ("health job", "why not healthy; empty when healthy"),
    AW_CONSECUTIVE_FAILURES: ("health job", "checks in a row that were not healthy"),
    WATCHDOG_CHECKED_AT: ("watchdog", "time of its latest pass (and so of the latest judgment of the sources)"),
    WATCHDOG_VERDICT: ("watchdog", "verdict of its latest pass"),
    WATCHDOG_REASON: ("watchdog", "why its latest pass gave that verdict"),
    WATCHDOG_ACTOR: ("watchdog", "who ran that pass: `cron` (`--once`), `loop`, or the daemon"),
    WATCHDOG_LAST_RESTART_AT: ("watchdog", "time of its latest restart of the watcher"),
    WATCHDOG_LAST_RESTART_REASON: ("watchdog", "the verdict that caused it"),
    WATCHDOG_RESTART_COUNT: ("watchdog", "restarts so far"),
    WATCHDOG_BACKOFF_LEVEL: ("watchdog", "consecutive restarts in effect (0 after a reset)"),
    WATCHDOG_LAST_START_AT: ("watchdog", "when it last started a watcher (the startup grace counts from it too)"),
    WATCHDOG_SPAWNED_PID: ("watchdog", "PID of the process it last started, before that one registers itself"),
    WATCHDOG_SPAWNED_CREATED: ("watchdog", "that process's start time"),
    WATCHDOG_SPAWNED_CMDLINE: ("watchdog", "that process's command line"),
    WATCHDOG_PAUSED: ("`watchdog pause` / `resume`", "`1` while paused, `0` after `resume`"),
    WATCHDOG_PAUSED_AT: ("`watchdog pause` / `resume`", "since when it is paused; empty after `resume`"),
    WATCHDOG_RESUMED_FOR: ("watchdog", "the `watcher.heartbeat_clocks` value a `wait:resumed` was given for "
                                       "(once per heartbeat)"),
    STATUS_LEVEL: ("status refresh", "the overall level (`OK`, `WARNING`, `CRITICAL`, `UNKNOWN`)"),
    STATUS_SINCE: ("status refresh", "when it became so"),
    STATUS_SUMMARY: ("status refresh", "its cause, one line"),
    STATUS_PREVIOUS: ("status refresh", "the level before"),
    STATUS_ALERTED_AT: ("status refresh", "the latest run of `alert_command`"),
    STATUS_ALERT_RESULT: ("status refresh", "how that run ended"),
    DAEMON_PID: ("daemon", "PID of the running daemon"),
    DAEMON_STARTED_AT: ("daemon", "when it started"),
    DAEMON_STATE: ("daemon", "`running` or `stopped`"),
    DAEMON_UNCLEAN_EXITS: ("daemon", "daemons that died without stopping, noticed by the next one"),
    DAEMON_LAST_UNCLEAN_EXIT: ("daemon", "the latest one's PID, and when it was noticed"),
    RECONCILE_FINISHED_AT: ("reconcile", "when the latest reconciliation finished"),
    RECONCILE_SUMMARY: ("reconcile", "what it found"),
    COVERAGE_CELLS_AS_OF: ("coverage", "how far `lifelog coverage` has brought its summary up to date "
                                       "(see Finding gaps)"),
    DB_CREATED_AT: ("the schema", "when LifeLog created this database; `status` counts a missing first backup "
                                  "from it"),
    PING_LAST_AT: ("watchdog (ping)", "when the latest ping was sent"),
    PING_LAST_SENT: ("watchdog (ping)", "what it said: `ok`, `fail`, `up` or `down`"),
    PING_LAST_RESULT: ("watchdog (ping)", "the HTTP status it got, or the error"),
    PING_LAST_LEVEL: ("watchdog (ping)", "the overall level it reported"),
    BACKUP_LAST_OK_AT: ("backup", "the moment the newest verified backup is a copy of (its snapshot)"),
    BACKUP_LAST_PATH: ("backup", "that backup's file"),
    BACKUP_LAST_BYTES: ("backup", "its size"),
    BACKUP_LAST_ERROR: ("backup", "why the latest backup failed; empty after a good one"),
    BACKUP_LAST_EVENTS: ("backup", "the events it holds"),
    BACKUP_LAST_SECONDS: ("backup", "how long it took"),
    BACKUP_LAST_ATTEMPT_AT: ("backup", "the latest attempt, good or not"),
    BACKUP_RESTORED_FROM: ("restore", "in a restored database: the backup it came from"),
    BACKUP_RESTORED_AT: ("restore", "in a restored database: when it was restored"),
    SOURCES_AWAKE_SINCE: ("watchdog", "since when the machine has been awake without a sleep, as the passes saw it"),
    SOURCES_CLOCKS: ("watchdog", "the awake and since-boot clocks read then (a sleep since shows as the second "
                                 "gaining on the first)"),
    source_state(_B): ("watchdog", "`live`, `idle`, `silent`, `copy`, `remote` or `unjudged` "
                                   "(see \"When an ActivityWatch watcher goes quiet\"). With `devices`, "
                                   "these `source.<bucket_id>.*` keys are the first device's; every other "
                                   "device's sources are `source.<bucket_id>@<name>.*` (see Several machines)"),
    source_since(_B): ("watchdog", "the pass that first saw that state; unchanged while it holds"),
    source_newest_end(_B): ("watchdog", "end of its newest event, by AW's bucket list or LifeLog's copy, "
                                        "whichever is later"),
    source_reason(_B): ("watchdog", "why that state; a source's keys are rewritten only when their value changes"),
    source_restart_level(_B): ("watchdog", "consecutive runs of its restart command in effect (the backoff level; "
                                           "`source_restart_commands`)"),
    source_last_restart_at(_B): ("watchdog", "when its restart command last ran"),
    # Per device, with the `devices` setting (SPEC section 14).
    device_key(_D, "device_id"): ("watcher", "the `device_id` the device's AW reported at its latest answer; "
                                             "its rows are keyed by it"),
    device_key(_D, "hostname"): ("watcher", "the host name its AW reported (aw-sync copies named after it are "
                                            "not stored)"),
    device_key(_D, "reachable"): ("watcher", "`yes` when the latest poll reached it and stored its answer (or "
                                             "found it a refused clone), else `no`"),
    device_key(_D, "unreachable_since"): ("watcher", "the first failed poll after the latest good one (for a "
                                                     "device never reached, LifeLog's first try); empty while "
                                                     "reachable"),
    device_key(_D, "last_poll_ok_at"): ("watcher", "end of the latest poll that reached it and stored its answer"),
    device_key(_D, "last_event_ts"): ("watcher", "end of the newest event stored from it"),
    device_key(_D, "last_error"): ("watcher", "why its latest poll failed, or why it is refused (the device "
                                              "holding its `device_id` first); empty after a good poll"),
}
