"""The watchdog's data rule per device, and the watcher's summary of a poll
over several devices (SPEC section 14): pure, no clock, no server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from lifelog.checks.watchdog import AWView, decide
from lifelog.core import keys
from lifelog.core.devices import Device, Expect
from lifelog.core.identity import WatcherFacts
from lifelog.core.settings import Settings
from lifelog.core.timeutil import to_iso
from lifelog.core.verdicts import RESTART_VERDICTS, Verdict
from lifelog.ingest.fleet import DevicePoll, followed_map, summary

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
DESKTOP = Device("desktop", "http://127.0.0.1:5600", "", Expect.ALWAYS)
LAPTOP = Device("laptop", "http://laptop.lan:5600", "", Expect.SOMETIMES)
S = Settings(db_path=Path("x.db"), heartbeat_timeout_seconds=120, watcher_timestamp_threshold_minutes=10,
             startup_grace_seconds=30, devices=(DESKTOP, LAPTOP))
RUNNING = WatcherFacts(pid=4242, source="recorded", reason="", created=1.0)
NEWER = AWView(ok=True, newest_end=NOW - timedelta(seconds=5), has_events=True)
DOWN = AWView(ok=False, error="connection refused")


def ago(seconds: float) -> str:
    return to_iso(NOW - timedelta(seconds=seconds))


def meta_with(**devices: tuple[str, str | None, str]) -> dict:
    """name -> (reachable, last_event_ts, device_id)."""
    meta = {"watcher.pid": "4242", "watcher.started_at": ago(3600), "watcher.heartbeat_at": ago(5),
            "watcher.last_event_ts": ago(30)}
    for name, (reachable, last, device_id) in devices.items():
        meta[keys.device_key(name, "reachable")] = reachable
        meta[keys.device_key(name, "device_id")] = device_id
        if last is not None:
            meta[keys.device_key(name, "last_event_ts")] = last
    return meta


def decision(meta, views=None, settings=S):
    return decide(meta, RUNNING, NOW, settings, devices_aw=views)


def test_a_reachable_device_with_newer_events_past_the_threshold_restarts_the_watcher():
    meta = meta_with(desktop=("yes", ago(30), "d1"), laptop=("yes", ago(601), "l1"))
    first = decision(meta)
    assert first.needs_aw, "stale for one device: AW is asked before deciding"
    d = decision(meta, {"desktop": NEWER, "laptop": NEWER})
    assert d.verdict is Verdict.RESTART_DATA_STALE and d.reason.startswith("laptop: ")
    # At the threshold, not past it: fresh.
    meta[keys.device_key("laptop", "last_event_ts")] = ago(600)
    assert decision(meta).verdict is Verdict.OK


def test_an_unreachable_device_never_restarts_the_watcher():
    meta = meta_with(desktop=("yes", ago(30), "d1"), laptop=("no", ago(86400 * 3), "l1"))
    # The laptop (sometimes) does not answer the watchdog either: away, fine.
    assert decision(meta, {"desktop": NEWER, "laptop": DOWN}).verdict is Verdict.OK
    # It answers the watchdog, but the watcher's latest poll did not reach it:
    # the watcher's next poll's business, not a restart.
    assert decision(meta, {"desktop": NEWER, "laptop": NEWER}).verdict not in RESTART_VERDICTS
    # An always device that does not answer: held, as AW down is today.
    meta = meta_with(desktop=("no", ago(3600), "d1"), laptop=("yes", ago(30), "l1"))
    d = decision(meta, {"desktop": DOWN, "laptop": NEWER})
    assert d.verdict is Verdict.HOLD_AW_UNHEALTHY and "desktop" in d.reason


def test_a_device_whose_aw_has_nothing_newer_is_held_as_source_stale():
    meta = meta_with(desktop=("yes", ago(3600), "d1"), laptop=("yes", ago(30), "l1"))
    same = AWView(ok=True, newest_end=NOW - timedelta(seconds=3600), has_events=True)
    assert decision(meta, {"desktop": same, "laptop": NEWER}).verdict is Verdict.HOLD_SOURCE_STALE


def test_a_refused_clone_never_restarts_the_watcher():
    clone = Device("clone", "http://localhost:5600", "", Expect.ALWAYS)
    settings = S._replace(devices=(DESKTOP, clone))
    meta = meta_with(desktop=("yes", ago(30), "same-id"), clone=("yes", None, "same-id"))
    views = {"desktop": NEWER, "clone": NEWER}
    assert decision(meta, views, settings).verdict is Verdict.OK


def test_with_devices_empty_the_data_rule_is_todays():
    single = S._replace(devices=())
    meta = meta_with(desktop=("yes", ago(30), "d1"))
    meta["watcher.last_event_ts"] = ago(601)
    assert decide(meta, RUNNING, NOW, single, aw=NEWER).verdict is Verdict.RESTART_DATA_STALE


@given(st.dictionaries(st.sampled_from(["desktop", "laptop"]),
                       st.tuples(st.sampled_from(["yes", "no", "", "garbage"]),
                                 st.one_of(st.none(), st.sampled_from([ago(30), ago(601), ago(-99), "junk"])),
                                 st.sampled_from(["a", "b", ""]))),
       st.dictionaries(st.sampled_from(["desktop", "laptop"]), st.sampled_from([NEWER, DOWN, AWView(ok=True)])))
def test_decide_never_raises_and_restarts_only_for_a_reachable_device(devices, views):
    meta = meta_with(**devices)
    d = decision(meta, views)
    if d.verdict in RESTART_VERDICTS:
        name = d.reason.split(":")[0]
        assert meta.get(keys.device_key(name, "reachable")) == "yes" and views.get(name, DOWN).ok


def poll(name, expect=Expect.ALWAYS, ok=True, error="", refused_for=None):
    return DevicePoll(name, expect, answered=ok or bool(refused_for), ok=ok, error=error, refused_for=refused_for)


def test_a_poll_is_good_when_every_always_device_answered_or_with_none_any():
    assert summary([poll("desktop"), poll("laptop", Expect.SOMETIMES, ok=False, error="refused")]) == (True, "")
    ok, error = summary([poll("desktop", ok=False, error="timed out"),
                         poll("laptop", Expect.SOMETIMES, ok=False, error="refused")])
    assert not ok and error == "desktop: timed out; laptop: refused"
    assert summary([poll("a", Expect.SOMETIMES, ok=False, error="x"), poll("b", Expect.SOMETIMES)]) == (True, "")
    assert not summary([poll("a", Expect.SOMETIMES, ok=False, error="x")])[0]
    # A refused clone is its own trouble (device.<name>.last_error), not the poll's.
    assert summary([poll("desktop"), poll("clone", ok=False, error="clone of desktop", refused_for="desktop")]) \
        == (True, "")


def test_the_followed_map_gives_a_shared_key_to_the_first_device():
    assert followed_map([("desktop", "d1", "box"), ("laptop", "l1", "Box"), ("phone", None, None)]) == {
        "d1": "desktop", "box": "desktop", "l1": "laptop"}


def test_device_keys_read_back():
    assert keys.device_key("laptop", "reachable") == "device.laptop.reachable"
    assert keys.device_of_key("device.laptop.last_event_ts") == ("laptop", "last_event_ts")
    assert keys.device_of_key("device.laptop.nonsense") is None
    assert keys.device_of_key("source.device.x.state") is None
    assert {keys.device_key("<name>", f) for f in keys.DEVICE_FIELDS} <= set(keys.DOCS)
