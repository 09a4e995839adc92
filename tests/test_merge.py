"""The pure merge decisions, at their boundaries."""

from datetime import UTC, datetime, timedelta

from lifelog.ingest import merge
from lifelog.ingest.merge import Stored, Window, WritePlan

T = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
MS = timedelta(milliseconds=1)


def event(start, seconds, data=None, event_id=1):
    return merge.normalise({"id": event_id, "timestamp": start.isoformat(), "duration": seconds,
                            "data": data if data is not None else {"app": "a"}})


def stored(e, deleted=False):
    return Stored(e.event_id, e.timestamp, e.duration, e.data, e.ended_at, deleted)


def test_it_normalises_rust_timestamps_and_keeps_data_key_order():
    e = merge.normalise({"id": 3, "timestamp": "2026-11-28T12:00:00.123456789Z", "duration": 1.5,
                         "data": {"z": 1, "a": "é"}})
    assert (e.timestamp, e.ended_at, e.data) == (
        "2026-11-28T12:00:00.123456+00:00", "2026-11-28T12:00:01.623456+00:00", '{"z":1,"a":"é"}')


def test_an_event_starting_exactly_at_the_window_start_is_suspect_and_one_ms_later_is_too():
    w = Window(T, None)
    assert merge.suspect(event(T, 5), w)
    assert merge.suspect(event(T + MS, 5), w)
    assert not merge.suspect(event(T + 2 * MS, 5), w)


def test_an_event_ending_at_the_window_end_is_suspect_and_one_ending_before_is_not():
    w = Window(None, T)
    assert merge.suspect(event(T - timedelta(seconds=5), 5), w)
    assert merge.suspect(event(T - timedelta(seconds=5), 5.001), w)  # python's end rounded up
    assert not merge.suspect(event(T - timedelta(seconds=5), 4.998), w)


def test_a_clipped_copy_is_covered_only_by_a_stored_row_with_the_same_end_and_data():
    w = Window(T, None)
    whole = event(T - timedelta(minutes=1), 90)
    clipped = event(T, 30)
    assert merge.covers(stored(whole), clipped, w)
    grown = event(T, 40)
    assert not merge.covers(stored(whole), grown, w)
    assert not merge.covers(stored(whole), event(T, 30, {"app": "b"}), w)
    assert not merge.covers(stored(whole, deleted=True), clipped, w)


def test_a_suspect_without_a_covering_row_is_fetched_by_id_never_stored():
    p = merge.plan_writes({}, [event(T, 30)], Window(T, None))
    assert p.fetch_ids == [1] and not p.inserts


def test_same_id_with_another_timestamp_is_a_replacement_and_a_longer_duration_an_update():
    old = event(T, 10)
    # The whole plan each time: filed under one heading, and nothing else in it.
    moved, recoloured, longer = event(T + timedelta(hours=1), 10), event(T, 10, {"app": "b"}), event(T, 25)
    assert merge.plan_writes({1: stored(old)}, [moved], merge.OPEN) == WritePlan(replaces=[moved])
    assert merge.plan_writes({1: stored(old)}, [recoloured], merge.OPEN) == WritePlan(replaces=[recoloured])
    assert merge.plan_writes({1: stored(old)}, [longer], merge.OPEN) == WritePlan(updates=[longer])
    assert merge.plan_writes({1: stored(old)}, [event(T, 10)], merge.OPEN) == WritePlan(unchanged=1)
    # A row marked deleted that AW lists again is undeleted: an update.
    again = event(T, 10)
    assert merge.plan_writes({1: stored(old, deleted=True)}, [again], merge.OPEN) == WritePlan(updates=[again])


def test_data_key_order_alone_is_not_a_change():
    old = event(T, 10, {"a": 1, "b": 2})
    assert merge.plan_writes({1: stored(old)}, [event(T, 10, {"b": 2, "a": 1})], merge.OPEN).unchanged == 1


def test_a_whole_event_fetched_by_id_wins_over_its_clipped_copy():
    w = Window(T, None)
    whole = event(T - timedelta(minutes=1), 90)
    p = merge.plan_writes({}, [event(T, 30)], w, whole=[whole])
    assert p.inserts == [whole] and not p.fetch_ids
