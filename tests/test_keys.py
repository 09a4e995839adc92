"""The meta key names are part of the contract: users' SQL, cron lines and
monitors read them. `lifelog.core.keys` holds them; these pin the names."""

from lifelog.core import keys

DOCUMENTED = {
    "WATCHER_PID": "watcher.pid", "WATCHER_STARTED_AT": "watcher.started_at",
    "WATCHER_HEARTBEAT_AT": "watcher.heartbeat_at", "WATCHER_LAST_EVENT_TS": "watcher.last_event_ts",
    "WATCHER_LAST_POLL_OK_AT": "watcher.last_poll_ok_at", "WATCHER_LAST_ERROR": "watcher.last_error",
    "WATCHER_STATE": "watcher.state",
    "AW_STATUS": "aw.status", "AW_CHECKED_AT": "aw.checked_at", "AW_LAST_HEALTHY_AT": "aw.last_healthy_at",
    "AW_VERSION": "aw.version", "AW_LATENCY_MS": "aw.latency_ms", "AW_ERROR": "aw.error",
    "AW_CONSECUTIVE_FAILURES": "aw.consecutive_failures",
    "WATCHDOG_CHECKED_AT": "watchdog.checked_at", "WATCHDOG_VERDICT": "watchdog.verdict",
    "WATCHDOG_LAST_RESTART_AT": "watchdog.last_restart_at",
    "WATCHDOG_LAST_RESTART_REASON": "watchdog.last_restart_reason",
    "WATCHDOG_RESTART_COUNT": "watchdog.restart_count",
    "PING_LAST_AT": "ping.last_at", "PING_LAST_SENT": "ping.last_sent", "PING_LAST_RESULT": "ping.last_result",
    "BACKUP_LAST_OK_AT": "backup.last_ok_at", "BACKUP_LAST_PATH": "backup.last_path",
    "BACKUP_LAST_BYTES": "backup.last_bytes", "BACKUP_LAST_ERROR": "backup.last_error",
    "DB_CREATED_AT": "db.created_at",
}


def test_the_documented_keys_keep_their_names():
    assert {name: getattr(keys, name) for name in DOCUMENTED} == DOCUMENTED


def test_a_sources_keys_are_source_dot_bucket_dot_field_even_with_dots_in_the_bucket():
    bucket = "aw-watcher-window_ada.example.org"
    assert keys.source_state(bucket) == f"source.{bucket}.state"
    assert keys.source_since(bucket) == f"source.{bucket}.since"
    assert keys.source_newest_end(bucket) == f"source.{bucket}.newest_end"
    assert keys.source_reason(bucket) == f"source.{bucket}.reason"
    assert keys.source_of_state_key(f"source.{bucket}.state") == bucket
    assert keys.source_of_state_key(f"source.{bucket}.reason") is None


def test_with_devices_the_first_keeps_the_plain_keys_and_the_others_name_themselves():
    bucket = "aw-watcher-window_ada.example.org"
    names = ("desk", "lap", "work")
    assert keys.key_device(names, "desk") is None and keys.key_device((), None) is None
    assert keys.key_device(names, "lap") == "lap"
    assert keys.source_state(bucket, keys.key_device(names, "desk")) == f"source.{bucket}.state"
    assert keys.source_state(bucket, "lap") == f"source.{bucket}@lap.state"
    assert keys.source_restart_level(bucket, "lap") == f"source.{bucket}@lap.restart_level"
    # A device added later renames no other device's keys.
    assert keys.key_device((*names, "new"), "lap") == keys.key_device(names, "lap")
    sid = keys.source_of_state_key(f"source.{bucket}@lap.state")
    assert sid == f"{bucket}@lap"
    assert keys.split_source_id(sid, names[1:]) == (bucket, "lap")
    assert keys.split_source_id(bucket, names[1:]) == (bucket, None)
    # An '@' that names no device of the table stays in the bucket id.
    assert keys.split_source_id("my@bucket", names[1:]) == ("my@bucket", None)
    assert keys.split_source_id("my@bucket@work", names[1:]) == ("my@bucket", "work")
    assert keys.split_source_id("@lap", names[1:]) == ("@lap", None)


def test_a_whole_number_in_meta_is_read_as_one_and_anything_else_as_none():
    assert [keys.int_of(text) for text in ("12", " 7\n", "-3", "0")] == [12, 7, -3, 0]
    # Absent, empty, or edited into something that is not a whole number.
    assert [keys.int_of(text) for text in (None, "", "seven", "3.5", "1e3")] == [None] * 5
