"""Several devices seen as a person sees them (SPEC section 14), pure parts:
the `devices` status component, sources' copies of a followed device, the
coverage's `all devices` row and the device cause, the device metrics.
Without the `devices` setting none of it shows (the other test files check
that every output stays as it was)."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from lifelog import wiring
from lifelog.checks import status
from lifelog.core.devices import Device, Expect
from lifelog.core.identity import WatcherFacts
from lifelog.core.settings import Settings
from lifelog.core.timeutil import to_iso
from lifelog.core.verdicts import Level, SourceState
from lifelog.coverage.model import (
    ALL_DEVICES,
    Cause,
    HostInput,
    Kind,
    Measure,
    SlotResult,
    Spans,
    classify,
    make_slots,
    merge_slot,
    per_device,
)
from lifelog.outward import metrics
from lifelog.sources import judge

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
DESK = Device("desk", "http://127.0.0.1:5600", "", Expect.ALWAYS)
LAP = Device("lap", "http://lap.lan:5600", "", Expect.SOMETIMES)
S = Settings(db_path=Path("x.db"), devices=(DESK, LAP))
NO_DEVICES = Settings(db_path=Path("x.db"))


def device_meta(name: str, *, reachable: bool, device_id: str, ok_ago: float | None = None,
                down_ago: float | None = None) -> dict[str, str]:
    def at(ago: float | None) -> str:
        return "" if ago is None else to_iso(NOW - timedelta(seconds=ago))

    return {f"device.{name}.reachable": "yes" if reachable else "no", f"device.{name}.device_id": device_id,
            f"device.{name}.hostname": f"{name}-host", f"device.{name}.last_poll_ok_at": at(ok_ago),
            f"device.{name}.unreachable_since": at(down_ago), f"device.{name}.last_error": "",
            f"device.{name}.last_event_ts": at(ok_ago)}


def snap(meta: dict) -> status.Snapshot:
    return status.Snapshot(now=NOW, meta=meta, watcher=WatcherFacts(None, "", "no watcher"))


def component(meta: dict, settings: Settings = S) -> status.Component | None:
    return status.devices_component(snap(meta), settings)


# -- the devices status component --------------------------------------------------------------


def test_without_devices_there_is_no_devices_component():
    assert component({}, NO_DEVICES) is None
    report = status.evaluate(snap({}), NO_DEVICES, wiring.COMPONENTS)
    assert "devices" not in [c.name for c in report.components]


def test_every_device_the_first_included_has_its_line_and_a_sometimes_device_away_is_ok():
    meta = {**device_meta("desk", reachable=True, device_id="d1", ok_ago=5),
            **device_meta("lap", reachable=False, device_id="l1", ok_ago=2 * 3600, down_ago=2 * 3600 - 30)}
    c = component(meta)
    assert c is not None and c.level is Level.OK
    assert [(d.name, d.level, d.reason) for d in c.lines] == [
        ("desk", Level.OK, "desk answers"), ("lap", Level.OK, "lap not seen for 2 h: off or away")]
    assert c.reason == "desk answers; lap not seen for 2 h: off or away"
    doc = c.to_json()
    assert doc["name"] == "devices" and doc["reason"] == c.reason
    assert doc["devices"] == [{"name": "desk", "expect": "always", "level": "OK", "reason": "desk answers"},
                              {"name": "lap", "expect": "sometimes", "level": "OK",
                               "reason": "lap not seen for 2 h: off or away"}]
    # The other components' JSON is as before: no `devices` key.
    assert "devices" not in status.Component("aw", Level.OK, "x").to_json()


def test_an_always_device_away_warns_after_the_minutes_and_is_critical_after_four_times():
    lap = device_meta("lap", reachable=True, device_id="l1", ok_ago=5)
    levels = {}
    for minutes in (10, 16, 59, 61):
        meta = {**device_meta("desk", reachable=False, device_id="d1", ok_ago=minutes * 60,
                              down_ago=minutes * 60), **lap}
        c = component(meta)
        assert c is not None
        levels[minutes] = c.level
        assert c.lines[0].reason.startswith("desk unreachable for")
    assert levels == {10: Level.OK, 16: Level.WARNING, 59: Level.WARNING, 61: Level.CRITICAL}
    # The worst level names its cause in the overall summary.
    meta = {**device_meta("desk", reachable=False, device_id="d1", ok_ago=3600 + 60, down_ago=3600 + 60), **lap}
    report = status.evaluate(snap(meta), S, [status.devices_component])
    assert report.level is Level.CRITICAL and report.summary == "CRITICAL: desk unreachable for 61 min"


def test_a_sometimes_device_away_longer_than_the_absent_days_warns():
    meta = {**device_meta("desk", reachable=True, device_id="d1", ok_ago=5),
            **device_meta("lap", reachable=False, device_id="l1", ok_ago=15 * 86400, down_ago=15 * 86400)}
    c = component(meta)
    assert c is not None and c.level is Level.WARNING
    assert c.reason == "lap not seen for 15 d: more than 14 days"


def test_a_sometimes_device_never_reached_counts_its_absent_days_from_the_first_try():
    # SPEC section 14: for a device never reached, device_absent_days counts
    # from when LifeLog first tried it (its unreachable_since: no good poll before).
    def lap_line(days: float):
        meta = {**device_meta("desk", reachable=True, device_id="d1", ok_ago=5),
                **device_meta("lap", reachable=False, device_id="", ok_ago=None, down_ago=days * 86400)}
        c = component(meta)
        assert c is not None
        return c.lines[1]

    assert (lap_line(13).level, lap_line(13).reason) == (Level.OK, "lap not seen for 13 d: off or away")
    assert (lap_line(15).level, lap_line(15).reason) == (Level.WARNING, "lap not seen for 15 d: more than 14 days")


def test_a_clone_is_warned_of_by_the_device_id_both_recorded():
    meta = {**device_meta("desk", reachable=True, device_id="same", ok_ago=5),
            **device_meta("lap", reachable=True, device_id="same", ok_ago=5)}
    c = component(meta)
    assert c is not None and c.level is Level.WARNING
    assert c.reason.startswith("lap answers with the device_id of desk")


def test_the_human_form_has_one_line_per_device_fitted_to_the_width():
    meta = {**device_meta("desk", reachable=True, device_id="d1", ok_ago=5),
            **device_meta("lap", reachable=False, device_id="l1", ok_ago=2 * 3600, down_ago=2 * 3600)}
    report = status.evaluate(snap(meta), S, [status.devices_component])
    text = report.render(width=40)
    lines = text.splitlines()
    assert "  devices   OK       2 devices" in lines
    assert any(line.startswith("    desk    OK") for line in lines)
    assert any(line.startswith("    lap     OK") for line in lines)
    assert all(len(line) <= 40 for line in lines if "database" not in line)
    assert "lap not seen for 2 h: off or away" in " ".join(text.split())  # wrapped at words, under its column


def test_the_status_screen_shows_a_row_per_device():
    from rich.console import Console

    from lifelog import status_screen

    meta = {**device_meta("desk", reachable=True, device_id="d1", ok_ago=5),
            **device_meta("lap", reachable=False, device_id="l1", ok_ago=2 * 3600, down_ago=2 * 3600)}
    report = status.evaluate(snap(meta), S, [status.devices_component])
    from lifelog.sources.watch import Recorded

    sources = [Recorded("aw-watcher-window_lap", "unjudged", NOW, None, "not judged while lap does not answer",
                        "lap")]
    for width in (80, 140):
        console = Console(width=width, color_system=None, record=True)
        screen = status_screen.Screen(report, NOW, 2.0, sources, per_device=True)
        console.print(status_screen.render(screen, width))
        text = console.export_text()
        assert "  desk" in text and "desk answers" in text
        assert "  lap" in text and "lap not seen for 2 h: off or away" in " ".join(text.split())
        assert all(len(line) <= width for line in text.splitlines())
        header = next(line for line in text.splitlines() if "SOURCE" in line)
        assert header.split()[:2] == ["DEVICE", "SOURCE"]
        assert any(line.split()[:2] == ["lap", "aw-watcher-window_lap"] for line in text.splitlines())


# -- sources: a copy of a followed device -------------------------------------------------------


def test_a_copy_of_a_followed_device_says_which_device_it_is_followed_as():
    buckets = (judge.Bucket("aw-watcher-window_desk-synced-from-DESK-HOST", "currentwindow", "desk-host"),
               judge.Bucket("aw-watcher-window_far-synced-from-far", "currentwindow", "far"))
    facts = judge.Facts("lap-host", buckets, followed={"desk-host": "desk", "d1": "desk"})
    found = {j.bucket_id: (j.state, j.reason) for j in judge.judge(facts, NOW, S)}
    assert found == {
        "aw-watcher-window_desk-synced-from-DESK-HOST": (SourceState.COPY, "followed directly as desk"),
        # A copy of a device LifeLog does not follow: as today.
        "aw-watcher-window_far-synced-from-far": (SourceState.COPY,
                                                  "copied from another device by aw-sync; not judged"),
    }


def test_a_device_that_does_not_answer_is_not_judged():
    from lifelog.sources.judge import device_trouble

    hb = to_iso(NOW - timedelta(seconds=5))
    meta = {"watcher.heartbeat_at": hb, "watcher.last_poll_ok_at": hb, "watcher.last_error": "",
            "watcher.started_at": to_iso(NOW - timedelta(hours=1)),
            **device_meta("lap", reachable=False, device_id="l1", ok_ago=600, down_ago=600)}
    meta["device.lap.last_error"] = "connection refused"
    running = WatcherFacts(os.getpid(), "recorded", "")
    assert device_trouble(meta, running, NOW, None, S, "lap", False) == "lap does not answer (connection refused)"
    meta.update(device_meta("lap", reachable=True, device_id="l1", ok_ago=5))
    assert device_trouble(meta, running, NOW, None, S, "lap", False) == ""


# -- coverage: the all devices row ----------------------------------------------------------------

KIND = st.sampled_from(list(Kind))
CAUSE = st.sampled_from([None, *Cause])


def result(kind: Kind, cause: Cause | None) -> SlotResult:
    return SlotResult(0.0, 60.0, date(2026, 12, 7), kind, cause if kind in (Kind.GAP, Kind.NO_DATA) else None)


@given(st.lists(st.tuples(KIND, CAUSE), min_size=1, max_size=5))
def test_the_merged_slot_is_active_when_any_device_is_and_a_gap_only_when_none_covers_it(per):
    merged = merge_slot([result(k, c) for k, c in per])
    kinds = {k for k, _ in per}
    assert (merged.kind is Kind.ACTIVE) == (Kind.ACTIVE in kinds)
    assert (merged.kind is Kind.GAP) == (Kind.GAP in kinds and Kind.ACTIVE not in kinds)
    assert (merged.kind is Kind.NO_DATA) == (kinds == {Kind.NO_DATA})
    assert merged.kind in kinds
    # Its cause is one of a device of the same class, an explained one first.
    causes = [result(k, c).cause for k, c in per if k is merged.kind]
    assert merged.cause in causes
    if any(c not in (None, Cause.UNKNOWN) for c in causes):
        assert merged.cause not in (None, Cause.UNKNOWN)


def measure(kind: Kind) -> Measure:
    return {Kind.ACTIVE: Measure(60, 0, 60), Kind.AWAY: Measure(0, 60, 0), Kind.GAP: Measure(60, 0, 0),
            Kind.NO_DATA: Measure()}[kind]


@given(st.lists(st.lists(KIND, min_size=6, max_size=6), min_size=1, max_size=3))
def test_the_merged_row_follows_the_devices_slot_by_slot_and_adds_up_per_day(rows):
    since = datetime(2026, 12, 7, tzinfo=UTC).timestamp()
    slots = make_slots(since, since + 6 * 60, 60, UTC)
    names = [f"d{i}" for i in range(len(rows))]
    hosts = [HostInput(n, [measure(k) for k in kinds]) for n, kinds in zip(names, rows, strict=True)]
    cov = per_device(classify(since, since + 360, 60, UTC, slots, hosts, Spans(), Spans()), names,
                     {n: f"{n}-host" for n in names})
    assert cov.hosts == [*names, ALL_DEVICES]
    for i, r in enumerate(cov.slots[ALL_DEVICES]):
        assert r == merge_slot([cov.slots[n][i] for n in names])
    # One day row per device, then the merged one; stretches tile each row.
    assert [d.host for d in cov.days] == [*names, ALL_DEVICES]
    for row in cov.hosts:
        spans = [(s.start, s.end) for s in cov.stretches if s.host == row]
        assert spans[0][0] == since and spans[-1][1] == since + 360
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))
    doc = cov.to_json()
    assert {d["device"] for d in doc["days"]} == {*names, None}
    assert all(d["host"] == f"{d['device']}-host" for d in doc["days"] if d["device"])
    assert {s["device"] for s in doc["stretches"]} == {*names, None}


def test_no_data_while_the_device_did_not_answer_is_device_unreachable_and_a_gap_is_not():
    since = datetime(2026, 12, 7, tzinfo=UTC).timestamp()
    slots = make_slots(since, since + 240, 60, UTC)
    away = Spans([(since, since + 240)])
    host = HostInput("lap", [Measure(), Measure(), measure(Kind.GAP), measure(Kind.ACTIVE)], unreachable=away)
    cov = classify(since, since + 240, 60, UTC, slots, [host], Spans(), Spans())
    assert [(s.kind, s.cause) for s in cov.stretches] == [
        (Kind.NO_DATA, Cause.DEVICE_UNREACHABLE), (Kind.GAP, Cause.UNKNOWN), (Kind.ACTIVE, None)]
    # Without the device evidence (no devices setting): as before.
    cov = classify(since, since + 240, 60, UTC, slots, [host.__class__("lap", host.measures)], Spans(), Spans())
    assert cov.stretches[0].cause is Cause.UNKNOWN


def test_a_devices_series_are_every_id_it_answered_with_and_a_clones_id_is_never_its_own():
    from lifelog.checks.devices import views
    from lifelog.coverage.query import series_of

    meta = {**device_meta("desk", reachable=True, device_id="id-desk-2", ok_ago=5),
            **device_meta("lap", reachable=True, device_id="id-lap-1", ok_ago=5)}
    # desk reinstalled once (id-desk-1 then id-desk-2); lap recorded nothing yet (meta alone).
    assert series_of(views(meta, S), {"desk": {"id-desk-1"}}) == {"desk": {"id-desk-1", "id-desk-2"},
                                                                  "lap": {"id-lap-1"}}
    # lap now a clone of desk (refused): its own earlier series stay its own, desk's id never is,
    # even where lap recorded it (when it answered with it before desk was first seen).
    meta["device.lap.device_id"] = "id-desk-2"
    recorded = {"desk": {"id-desk-1", "id-desk-2"}, "lap": {"id-lap-1", "id-desk-2"}}
    assert series_of(views(meta, S), recorded) == {"desk": {"id-desk-1", "id-desk-2"}, "lap": {"id-lap-1"}}
    # Never answered: no series.
    assert series_of(views({}, S), {}) == {"desk": set(), "lap": set()}


def test_the_watcher_records_each_new_device_id_once_a_clones_never_and_the_one_from_before_the_table(
        tmp_path):
    from lifelog.db.database import open_db, transaction
    from lifelog.ingest.fleet import DevicePoll, record_devices

    db = open_db(tmp_path / "l.db")

    def poll(name: str, device_id: str, refused_for: str | None = None) -> DevicePoll:
        return DevicePoll(name, Expect.ALWAYS, answered=True, ok=refused_for is None, device_id=device_id,
                          refused_for=refused_for)

    def recorded() -> set[tuple[str, str]]:
        return set(db.conn.execute("SELECT device, device_id FROM device_ids").fetchall())

    def record(*polls: DevicePoll) -> None:
        with transaction(db):
            record_devices(db, polls, to_iso(NOW))

    # A database from before the table: lap's id is in meta alone, and stays so while it holds.
    with transaction(db):
        db.conn.execute("INSERT INTO meta VALUES ('device.lap.device_id', 'id-lap-1', ?)", (to_iso(NOW),))
    record(poll("desk", "id-desk-1"), poll("lap", "id-lap-1"))
    assert recorded() == {("desk", "id-desk-1")}
    # lap reinstalled: its new id, and the one it had before the table; a clone of desk: nothing.
    record(poll("desk", "id-desk-1"), poll("lap", "id-lap-2"), poll("clone", "id-desk-1", refused_for="desk"))
    assert recorded() == {("desk", "id-desk-1"), ("lap", "id-lap-1"), ("lap", "id-lap-2")}
    record(poll("desk", "id-desk-1"), poll("lap", "id-lap-2"), poll("clone", "id-desk-1", refused_for="desk"))
    assert recorded() == {("desk", "id-desk-1"), ("lap", "id-lap-1"), ("lap", "id-lap-2")}


def test_device_option_keeps_one_device_and_no_merged_row():
    since = datetime(2026, 12, 7, tzinfo=UTC).timestamp()
    slots = make_slots(since, since + 120, 60, UTC)
    cov = per_device(classify(since, since + 120, 60, UTC, slots, [HostInput("lap", [Measure(), Measure()])],
                              Spans(), Spans()), ["lap"], {"lap": "lap-host"}, merge=False)
    assert cov.hosts == ["lap"]
    doc = cov.to_json()
    assert [d["device"] for d in doc["days"]] == ["lap"] and [s["device"] for s in doc["stretches"]] == ["lap"]


# -- metrics ------------------------------------------------------------------------------------------


def test_the_device_metrics_parse_and_carry_the_device_label():
    text = metrics.render(metrics.collect({}, Level.OK, True, True,
                                          [({"bucket": "b", "type": "t", "host": "h", "device": "lap"}, 100.0, False)],
                                          [("desk", True, 1234.5), ("lap", False, None)]))
    families = {f.name: f for f in text_string_to_metric_families(text)}
    up = {s.labels["device"]: s.value for s in families["lifelog_device_up"].samples}
    assert up == {"desk": 1.0, "lap": 0.0}
    last = {s.labels["device"]: s.value for s in families["lifelog_device_last_event_timestamp_seconds"].samples}
    assert last == {"desk": 1234.5}
    assert families["lifelog_source_silent"].samples[0].labels["device"] == "lap"
    # Without devices: no device metric at all.
    plain = metrics.render(metrics.collect({}, Level.OK, True, True))
    assert "lifelog_device" not in plain


def test_another_machines_afk_source_is_not_judged_on_this_machines_sleep():
    old = NOW - timedelta(hours=2)
    afk = judge.Bucket("aw-watcher-afk_lap", "afkstatus", "lap-host", old)
    facts = judge.Facts("lap-host", (afk,), elsewhere=True)
    (j,) = judge.judge(facts, NOW, S)
    assert (j.state, j.reason) == (SourceState.UNJUDGED, "cannot tell whether lap-host slept "
                                   "(LifeLog reads the sleep clocks of its own machine only)")
