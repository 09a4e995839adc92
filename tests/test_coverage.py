"""The coverage classification (lifelog.coverage.model), pure: boundaries, and
hypothesis properties over random events, records and time zones."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lifelog.coverage.model import (
    CELL_SECONDS,
    Cause,
    HostInput,
    Kind,
    Measure,
    Run,
    Spans,
    aw_down_spans,
    cells_of_events,
    classify,
    classify_measure,
    lifelog_down_spans,
    local_date,
    local_midnight,
    make_slots,
    silent_spans,
    slot_measures,
    unit_seconds,
    units_of_cells,
)

BERLIN = ZoneInfo("Europe/Berlin")
ZONES = [UTC, BERLIN, ZoneInfo("America/New_York"), ZoneInfo("Australia/Lord_Howe"),
         ZoneInfo("Asia/Kathmandu")]


def at(tz, y, m, d, hh=0, mm=0) -> float:
    return datetime(y, m, d, hh, mm, tzinfo=tz).timestamp()


# -- classes -----------------------------------------------------------------------------------


def test_a_slot_without_afk_data_is_no_data_even_with_window_data():
    assert classify_measure(Measure(window=900)) is Kind.NO_DATA


def test_present_with_window_data_is_active_and_without_it_a_gap():
    assert classify_measure(Measure(not_afk=900, window=1)) is Kind.ACTIVE
    assert classify_measure(Measure(not_afk=900)) is Kind.GAP


def test_away_is_more_afk_than_not_afk_time_and_a_tie_counts_as_present():
    assert classify_measure(Measure(not_afk=449, afk=451)) is Kind.AWAY
    assert classify_measure(Measure(not_afk=450, afk=450)) is Kind.GAP
    assert classify_measure(Measure(not_afk=450, afk=450, window=3)) is Kind.ACTIVE


# -- slots and local days ------------------------------------------------------------------------


def test_slots_follow_local_days_across_a_dst_change():
    # 2026-03-29 in Berlin has 23 hours; 2026-10-25 has 25.
    spring = make_slots(at(BERLIN, 2026, 3, 29), at(BERLIN, 2026, 3, 30), 900, BERLIN)
    autumn = make_slots(at(BERLIN, 2026, 10, 25), at(BERLIN, 2026, 10, 26), 900, BERLIN)
    assert len(spring) == 92 and len(autumn) == 100
    assert {s.day for s in spring} == {date(2026, 3, 29)}
    assert all(s.end - s.start == 900 for s in spring + autumn)


def test_a_slot_that_does_not_divide_the_day_is_cut_at_midnight():
    slots = make_slots(at(UTC, 2026, 1, 1), at(UTC, 2026, 1, 3), 7 * 60, UTC)
    first_day = [s for s in slots if s.day == date(2026, 1, 1)]
    assert first_day[-1].end - first_day[-1].start == 1440 % 7 * 60  # the 206th slot: 5 minutes
    assert slots[len(first_day)].start == at(UTC, 2026, 1, 2)


def test_the_range_cuts_the_first_and_last_slot():
    slots = make_slots(at(UTC, 2026, 1, 1, 10, 5), at(UTC, 2026, 1, 1, 10, 50), 900, UTC)
    assert [(s.start, s.end) for s in slots][0] == (at(UTC, 2026, 1, 1, 10, 5),
                                                   at(UTC, 2026, 1, 1, 10, 15))
    assert slots[-1].end == at(UTC, 2026, 1, 1, 10, 50)
    assert len(slots) == 4


def test_the_default_range_is_local_midnight_seven_days_ago_up_to_now():
    from lifelog.coverage.query import resolve_range

    now = at(BERLIN, 2026, 11, 28, 14, 37) + 25.5
    assert resolve_range(None, None, 15, now, BERLIN) == (at(BERLIN, 2026, 11, 21), at(BERLIN, 2026, 11, 28, 14, 37))
    # Half an hour into the local day (still the 27th in UTC): seven local days back.
    assert resolve_range(None, None, 15, at(BERLIN, 2026, 11, 28, 0, 30), BERLIN)[0] == at(BERLIN, 2026, 11, 21)
    # Across the spring DST change: the local midnight, not 7 x 24 h back.
    lo, hi = resolve_range(None, None, 15, at(BERLIN, 2026, 3, 30, 10), BERLIN)
    assert lo == at(BERLIN, 2026, 3, 23) and hi - lo == 7 * 86400 + 9 * 3600
    # --until defaults to now when --since is given, and --since to 7 days ago when --until is.
    assert resolve_range("2026-11-27", None, 15, now, BERLIN) == (at(BERLIN, 2026, 11, 27),
                                                                  at(BERLIN, 2026, 11, 28, 14, 37))
    assert resolve_range(None, "2026-11-25", 15, now, BERLIN) == (at(BERLIN, 2026, 11, 21), at(BERLIN, 2026, 11, 25))


def test_the_summing_unit_falls_inside_one_slot_on_dst_days():
    since = at(BERLIN, 2026, 10, 24)
    slots = make_slots(since, at(BERLIN, 2026, 10, 27), 900, BERLIN)
    assert unit_seconds(slots, since) == 900
    slots = make_slots(since, at(BERLIN, 2026, 10, 27), 7 * 60, BERLIN)
    assert unit_seconds(slots, since) == 60


# -- cells -------------------------------------------------------------------------------------


def test_an_event_is_split_exactly_over_the_minutes_it_covers():
    cells = cells_of_events([(90.0, 100.0, "not-afk")])
    assert cells == {1: {"not-afk": 30.0}, 2: {"not-afk": 60.0}, 3: {"not-afk": 10.0}}


def test_negative_and_zero_durations_cover_nothing():
    assert cells_of_events([(90.0, -5.0, "afk"), (10.0, 0.0, "afk")]) == {}


# -- causes ------------------------------------------------------------------------------------


def test_a_health_check_speaks_for_the_time_nearer_to_it_up_to_its_reach():
    spans = aw_down_spans([(1000.0, "healthy"), (2000.0, "unhealthy"), (2200.0, "degraded"), (9000.0, "healthy")],
                          reach=900)
    assert spans.pairs() == [(1500.0, 3100.0)]


def test_a_silent_source_counts_from_the_silence_threshold_before_its_row_to_its_next_state():
    spans = silent_spans([(1000.0, "live"), (2000.0, "silent"), (5000.0, "live"), (8000.0, "silent")],
                         lead=600, end=9000)
    assert spans.pairs() == [(1400.0, 5000.0), (7400.0, 9000.0)]


def test_lifelog_down_between_runs_of_one_boot_after_the_heartbeat_timeout():
    runs = [Run(0, 1000, boot=-50), Run(5000, 9000, boot=-50)]
    assert lifelog_down_spans(runs, grace=120, now=9050, boot_now=-50).pairs() == [(1120, 5000)]


def test_a_reboot_between_runs_is_the_machine_off_not_lifelog_down():
    runs = [Run(0, 1000, boot=-50), Run(5000, 9000, boot=4900)]
    assert lifelog_down_spans(runs, grace=120, now=9050, boot_now=4900).pairs() == []
    late = [Run(0, 1000, boot=-50), Run(5000, 9000, boot=3000)]  # up at 3000, LifeLog only at 5000
    assert lifelog_down_spans(late, grace=120, now=9050, boot_now=3000).pairs() == [(3120, 5000)]


def test_after_the_last_run_lifelog_is_down_until_now_and_before_the_first_no_claim_is_made():
    runs = [Run(1000, 2000, boot=0)]
    assert lifelog_down_spans(runs, grace=120, now=5000, boot_now=0).pairs() == [(2120, 5000)]
    assert lifelog_down_spans(runs, grace=120, now=2119, boot_now=0).pairs() == []
    assert lifelog_down_spans([], grace=120, now=5000, boot_now=0).pairs() == []


def test_the_first_cause_that_applies_wins():
    tz = UTC
    since = at(tz, 2026, 1, 1)
    slots = make_slots(since, since + 4 * 900, 900, tz)
    everything = Spans([(since, since + 4 * 900)])
    host = HostInput("h", [Measure(not_afk=900)] * 4, window_silent=Spans([(since, since + 2 * 900)]))
    cov = classify(since, since + 3600, 900, tz, slots, [host],
                   aw_down=Spans([(since, since + 900)]), lifelog_down=everything)
    assert [r.cause for r in cov.slots["h"]] == [Cause.AW_DOWN, Cause.SOURCE_SILENT, Cause.LIFELOG_DOWN,
                                                Cause.LIFELOG_DOWN]
    # An afk source's silence explains no data; a window source's does not.
    empty = HostInput("h", [Measure()] * 4, window_silent=everything)
    cov = classify(since, since + 3600, 900, tz, slots, [empty], Spans(), Spans())
    assert {r.cause for r in cov.slots["h"]} == {Cause.UNKNOWN}
    empty = HostInput("h", [Measure()] * 4, afk_silent=everything)
    cov = classify(since, since + 3600, 900, tz, slots, [empty], Spans(), Spans())
    assert {r.cause for r in cov.slots["h"]} == {Cause.SOURCE_SILENT}


def test_active_and_away_carry_no_cause_and_adjacent_slots_merge_across_midnight():
    tz = UTC
    since = at(tz, 2026, 1, 1, 23)
    slots = make_slots(since, since + 7200, 900, tz)
    m = [Measure(not_afk=900, window=900)] * 8
    cov = classify(since, since + 7200, 900, tz, slots, [HostInput("h", m)], Spans([(0, 1e12)]), Spans())
    assert [(s.start, s.end, s.kind, s.cause) for s in cov.stretches] == [(since, since + 7200, Kind.ACTIVE, None)]
    assert [(d.day, d.seconds[Kind.ACTIVE]) for d in cov.days] == [(date(2026, 1, 1), 3600), (date(2026, 1, 2), 3600)]


def test_the_json_document_has_the_spec_fields():
    tz = BERLIN
    since = at(tz, 2026, 1, 1)
    slots = make_slots(since, since + 1800, 900, tz)
    cov = classify(since, since + 1800, 900, tz, slots,
                   [HostInput("h", [Measure(not_afk=900), Measure(afk=900)])], Spans(), Spans())
    assert cov.to_json() == {
        "since": "2026-01-01T00:00:00+01:00", "until": "2026-01-01T00:30:00+01:00", "slot_minutes": 15,
        "days": [{"date": "2026-01-01", "host": "h", "active_seconds": 0, "away_seconds": 900,
                  "no_data_seconds": 0, "gap_seconds": 900}],
        "stretches": [
            {"host": "h", "start": "2026-01-01T00:00:00+01:00", "end": "2026-01-01T00:15:00+01:00",
             "class": "gap", "cause": "unknown"},
            {"host": "h", "start": "2026-01-01T00:15:00+01:00", "end": "2026-01-01T00:30:00+01:00",
             "class": "away", "cause": None}]}


# -- properties --------------------------------------------------------------------------------

BASE = datetime(2026, 3, 27, tzinfo=UTC).timestamp()  # DST changes on the 28th-29th nearby
HORIZON = 3 * 86400

times = st.integers(min_value=0, max_value=HORIZON * 1000).map(lambda ms: BASE + ms / 1000)
durations = st.floats(min_value=0, max_value=3 * 3600, allow_nan=False)
events = st.lists(st.tuples(times, durations), max_size=25)
afk_events = st.lists(st.tuples(times, durations, st.sampled_from(["afk", "not-afk"])), max_size=25)


@st.composite
def scenarios(draw):
    tz = draw(st.sampled_from(ZONES))
    slot_minutes = draw(st.sampled_from([1, 5, 7, 15, 60, 90, 1440]))
    a = draw(st.integers(0, HORIZON // 60))
    b = draw(st.integers(0, HORIZON // 60))
    since, until = BASE + min(a, b) * 60, BASE + (max(a, b) + 1) * 60
    afk = draw(afk_events)
    window = draw(events)
    checks = draw(st.lists(st.tuples(times, st.sampled_from(["healthy", "unhealthy", "degraded"])), max_size=8))
    source = draw(st.lists(st.tuples(times, st.sampled_from(["live", "silent", "idle"])), max_size=6))
    runs = draw(st.lists(st.tuples(times, durations), max_size=4))
    return tz, slot_minutes * 60, since, until, afk, window, checks, source, runs


def run_scenario(tz, slot_seconds, since, until, afk, window, checks, source, runs):
    slots = make_slots(since, until, slot_seconds, tz)
    unit = unit_seconds(slots, since)
    afk_units = units_of_cells(cells_of_events(afk), since, until, unit)
    window_units = units_of_cells(cells_of_events((s, d, "") for s, d in window), since, until, unit)
    host = HostInput("h", slot_measures(slots, since, unit, afk_units, window_units),
                     window_silent=silent_spans(source, 600, until), afk_silent=Spans())
    return slots, classify(since, until, slot_seconds, tz, slots, [host], aw_down_spans(checks, 900),
                           lifelog_down_spans([Run(s, s + d) for s, d in runs], 120, until, None))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_stretches_tile_the_range_exactly_with_no_overlap(scenario):
    tz, slot_seconds, since, until, *_ = scenario
    slots, cov = run_scenario(*scenario)
    stretches = cov.stretches
    assert stretches[0].start == since and stretches[-1].end == until
    for a, b in zip(stretches, stretches[1:], strict=False):
        assert a.end == b.start and a.start < a.end
        assert (a.kind, a.cause) != (b.kind, b.cause)  # adjacent ones of one class and cause are merged
    assert sum(s.seconds for s in stretches) == until - since
    assert all((s.cause is None) == (s.kind in (Kind.ACTIVE, Kind.AWAY)) for s in stretches)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_per_day_totals_add_up_to_the_day(scenario):
    tz, slot_seconds, since, until, *_ = scenario
    _, cov = run_scenario(*scenario)
    day = local_date(since, tz)
    days = {d.day: d for d in cov.days}
    while local_midnight(day, tz) < until:
        lo = max(local_midnight(day, tz), since)
        hi = min(local_midnight(day + timedelta(days=1), tz), until)
        assert days.pop(day).length == hi - lo
        day += timedelta(days=1)
    assert days == {}


def _overlap(a0, a1, b0, b1) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_a_slot_with_window_data_while_not_afk_is_never_a_gap(scenario):
    tz, slot_seconds, since, until, afk, window, *_ = scenario
    slots, cov = run_scenario(*scenario)
    for r in cov.slots["h"]:
        lo, hi = r.start, r.end
        both = any(_overlap(lo, hi, ws, ws + wd) > 0 and _overlap(lo, hi, s, s + d) > 0
                   and _overlap(max(lo, ws), min(hi, ws + wd), s, s + d) > 0
                   for ws, wd in window for s, d, status in afk if status == "not-afk")
        if both:
            assert r.kind is not Kind.GAP, r


@settings(max_examples=100, deadline=None)
@given(afk_events)
def test_the_cells_hold_every_second_of_every_event(evs):
    cells = cells_of_events(evs)
    for status in ("afk", "not-afk"):
        total = sum(row.get(status, 0.0) for row in cells.values())
        assert total == pytest.approx(sum(max(d, 0) for _, d, s in evs if s == status), abs=1e-6)
    assert all(c * CELL_SECONDS < BASE + HORIZON + 7 * 3600 for c in cells)
