"""The bucket rows (lifelog.ingest.store.record_buckets): written through
sqlite-utils' Table API, first_seen_at kept from the first sighting."""

from lifelog.db.database import open_db
from lifelog.ingest import store


def bucket(name, hint="2026-12-01T10:00:00.000000+00:00"):
    return {"id": name, "created": "2026-11-01T00:00:00+00:00", "name": name, "type": "currentwindow",
            "client": "aw-watcher-window", "hostname": "host", "data": {"k": 1}, "last_updated": hint}


def rows(db):
    return {r["bucket_id"]: r for r in db.query("SELECT * FROM buckets ORDER BY bucket_id")}


def traced(db):
    statements: list[str] = []
    db.conn.set_trace_callback(statements.append)
    return statements


def test_bucket_rows_are_inserted_updated_marked_gone_and_back(db_path):
    db = open_db(db_path)
    sql = traced(db)
    store.record_buckets(db, "d", {"a": bucket("a"), "b": bucket("b")})
    first = rows(db)
    assert set(first) == {"a", "b"}
    assert first["a"]["first_seen_at"] == first["a"]["last_seen_at"]
    assert first["a"]["data"] == '{"k":1}' and first["a"]["last_updated"] == "2026-12-01T10:00:00.000000+00:00"
    assert first["a"]["deleted_in_aw_at"] is None

    # a's hint moves: its row is rewritten, its first sighting kept; b's is
    # unchanged and recent, so left as it is.
    store.record_buckets(db, "d", {"a": bucket("a", "2026-12-01T11:00:00.000000+00:00"), "b": bucket("b")})
    second = rows(db)
    assert second["a"]["last_updated"] == "2026-12-01T11:00:00.000000+00:00"
    assert second["a"]["first_seen_at"] == first["a"]["first_seen_at"]
    assert second["a"]["last_seen_at"] > first["a"]["last_seen_at"]
    assert second["b"] == first["b"]

    # b no longer listed: marked, not deleted; listed again: unmarked.
    store.record_buckets(db, "d", {"a": bucket("a", "2026-12-01T11:00:00.000000+00:00")})
    third = rows(db)
    assert third["b"]["deleted_in_aw_at"] is not None and third["a"]["deleted_in_aw_at"] is None
    store.record_buckets(db, "d", {"a": bucket("a", "2026-12-01T11:00:00.000000+00:00"), "b": bucket("b")})
    fourth = rows(db)
    assert fourth["b"]["deleted_in_aw_at"] is None
    assert fourth["b"]["first_seen_at"] == first["b"]["first_seen_at"]
    # sqlite-utils never probed for ON CONFLICT with a scratch table in the
    # user's database (lifelog.db.database.wrap says it instead).
    assert sql and not [s for s in sql if s.lower().lstrip().startswith(("create", "drop"))]

