"""`lifelog backfill` and `lifelog reconcile` as real processes."""

from __future__ import annotations

import os
import re
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

UTC = UTC


def _env(aw, bucket):
    return dict(os.environ, LIFELOG_AW_URL=aw.url, LIFELOG_BUCKETS=bucket)


def _events(n, start, step=timedelta(minutes=1)):
    return [{"timestamp": (start + i * step).isoformat(), "duration": 30, "data": {"n": i}} for i in range(n)]


def _count(db_path, bucket, where="deleted_in_aw_at IS NULL"):
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute(f"SELECT count(*) FROM events WHERE bucket_id = ? AND {where}", (bucket,)).fetchone()[0]
    finally:
        conn.close()


@pytest.mark.parametrize("command", ["backfill", "reconcile"])
@pytest.mark.parametrize("since", ["yesterday", "2026-13-01", "12/11/2026"])
def test_a_malformed_since_is_one_line_exit_2_and_writes_nothing(lifelog, db_path, command, since):
    r = lifelog(command, "--db", str(db_path), "--since", since)
    assert r.code == 2
    assert r.err.strip().splitlines() == [
        f"lifelog: error: --since {since!r} is not a date; give e.g. 2026-11-01 or 2026-11-01T08:00:00Z"]
    assert not db_path.exists()


def test_backfill_ingests_history_with_plain_progress_lines_off_a_terminal(lifelog, db_path, aw_server):
    bucket = f"test-cli-backfill-{os.getpid()}"
    aw_server.create_bucket(bucket)
    aw_server.insert(bucket, _events(50, datetime.now(UTC) - timedelta(days=2)))
    r = lifelog("backfill", "--db", str(db_path), env=_env(aw_server, bucket))
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0] == "backfill: about 50 events in 1 buckets"
    assert lines[1].startswith(f"{bucket}: 50 events fetched, 50 new")
    assert lines[-1] == "backfill complete: 1 buckets, 50 events fetched, 50 inserted, 0 updated, 0 replaced"
    assert _count(db_path, bucket) == 50
    again = lifelog("backfill", "--db", str(db_path), env=_env(aw_server, bucket))
    assert again.code == 0 and again.out.splitlines()[-1].startswith("backfill complete: 1 buckets, 0 events")


def test_reconcile_reports_what_it_found_and_fixed(lifelog, db_path, aw_server):
    bucket = f"test-cli-reconcile-{os.getpid()}"
    aw_server.create_bucket(bucket)
    day = (datetime.now(UTC) - timedelta(days=3)).replace(hour=6, minute=0, second=0, microsecond=0)
    aw_server.insert(bucket, _events(4, day))
    assert lifelog("backfill", "--db", str(db_path), env=_env(aw_server, bucket)).code == 0
    victim = aw_server.events(bucket)[-1]["id"]  # the oldest: deleting the newest would free its id for reuse
    aw_server.api("DELETE", f"/buckets/{bucket}/events/{victim}")
    aw_server.insert(bucket, _events(2, day - timedelta(days=1)))  # back-dated: before what was ingested

    since = (day - timedelta(days=1)).date()
    before = (datetime.now(UTC) - timedelta(seconds=1)).date()  # its range ends at its now, in whole seconds
    r = lifelog("reconcile", "--db", str(db_path), "--since", since.isoformat(), env=_env(aw_server, bucket))
    after = datetime.now(UTC).date()
    assert r.code == 0, r.err
    # The UTC days from --since up to the reconcile's now: 5, or 6 if a UTC
    # midnight passed since `day` was worked out; its now is between the two readings.
    checked = re.match(r"\S+: (\d+) days checked", r.out).group(1)
    assert int(checked) in {(d - since).days + 1 for d in (before, after)}, r.out
    assert r.out.splitlines() == [
        f"{bucket}: {checked} days checked, 2 differed; 2 inserted, 0 updated, 0 replaced, 1 marked deleted in AW",
        "reconcile: 1 buckets, 2 days differed; 2 inserted, 0 updated, 0 replaced, 1 marked deleted in AW",
    ]
    assert _count(db_path, bucket) == 5
    assert _count(db_path, bucket, "deleted_in_aw_at IS NOT NULL") == 1


def test_backfill_with_aw_down_says_so_and_keeps_progress(lifelog, db_path):
    from support.awserver import free_port

    r = lifelog("backfill", "--db", str(db_path), "--aw-url", f"http://127.0.0.1:{free_port()}")
    assert r.code == 1
    assert r.err.startswith("lifelog: error: ActivityWatch: connection refused")
    assert "Traceback" not in r.err
