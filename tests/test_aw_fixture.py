"""The real aw-server fixture works: a bucket and an event go in and come back."""

from datetime import datetime, timezone


def test_it_creates_a_bucket_and_reads_it_back(aw_server):
    aw_server.create_bucket("smoke-bucket_testhost", type_="currentwindow")
    ts = datetime(2026, 1, 2, 3, 4, 5, 123000, tzinfo=timezone.utc).isoformat()
    aw_server.insert("smoke-bucket_testhost", [{"timestamp": ts, "duration": 1.5, "data": {"app": "x"}}])

    buckets = aw_server.api("GET", "/buckets/").json()
    assert buckets["smoke-bucket_testhost"]["type"] == "currentwindow"
    [event] = aw_server.events("smoke-bucket_testhost")
    assert event["timestamp"] == ts
    assert event["duration"] == 1.5
    assert event["data"] == {"app": "x"}


def test_its_data_lives_in_the_test_dir(aw_server):
    assert (aw_server.home / "data" / "activitywatch").is_dir()
    assert aw_server.device_id()
