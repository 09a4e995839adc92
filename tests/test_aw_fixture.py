"""The real aw-server fixture works: a bucket and an event go in and come back."""

import itertools
from datetime import UTC, datetime

_names = itertools.count()


def test_it_creates_a_bucket_and_reads_it_back(aw_server):
    # A name no other run of this test used on the shared server: the bucket holds this event only.
    bucket = f"smoke-bucket-{next(_names)}_testhost"
    aw_server.create_bucket(bucket, type_="currentwindow")
    ts = datetime(2026, 1, 2, 3, 4, 5, 123000, tzinfo=UTC).isoformat()
    aw_server.insert(bucket, [{"timestamp": ts, "duration": 1.5, "data": {"app": "x"}}])

    buckets = aw_server.api("GET", "/buckets/").json()
    assert buckets[bucket]["type"] == "currentwindow"
    [event] = aw_server.events(bucket)
    assert event["timestamp"] == ts
    assert event["duration"] == 1.5
    assert event["data"] == {"app": "x"}


def test_its_data_lives_in_the_test_dir(aw_server):
    assert (aw_server.home / "data" / "activitywatch").is_dir()
    assert aw_server.device_id()
