"""The watchdog's decision, pure: boundaries probed exactly, properties by hypothesis.

No database, no process, no clock: meta is a dict, the process facts are a
value, `now` is passed in (healthchecks style)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from lifelog.checks.watchdog import (
    CLOCK_SKEW,
    AWView,
    backoff_delay,
    backoff_level,
    decide,
)
from lifelog.core.identity import LiveProc, WatcherFacts, identity_matches, which_watcher
from lifelog.core.settings import Settings
from lifelog.core.timeutil import to_iso
from lifelog.core.verdicts import RESTART_VERDICTS, Verdict

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
S = Settings(
    db_path=Path("x.db"),
    heartbeat_timeout_seconds=120,
    watcher_timestamp_threshold_minutes=10,
    startup_grace_seconds=30,
    restart_backoff_initial_seconds=10,
    restart_backoff_max_seconds=300,
)
RUNNING = WatcherFacts(pid=4242, source="recorded", reason="", created=1.0)
GONE = WatcherFacts(pid=None, source="", reason="watcher pid 4242 is gone")
AW_NEWER = AWView(ok=True, newest_end=NOW - timedelta(seconds=5), has_events=True)


def ago(seconds: float) -> str:
    return to_iso(NOW - timedelta(seconds=seconds))


def healthy_meta(**extra) -> dict:
    meta = {
        "watcher.pid": "4242",
        "watcher.started_at": ago(3600),
        "watcher.heartbeat_at": ago(5),
        "watcher.last_event_ts": ago(30),
    }
    meta.update(extra)
    return meta


def verdict(meta, facts=RUNNING, now=NOW, settings=S, **kw):
    return decide(meta, facts, now, settings, **kw).verdict


# -- the rows, one at a time ------------------------------------------------------


def test_it_is_ok_when_the_watcher_runs_heartbeats_and_data_is_fresh():
    d = decide(healthy_meta(), RUNNING, NOW, S)
    assert d.verdict is Verdict.OK and "heartbeat" in d.reason


def test_it_handles_pause_before_anything_else():
    assert verdict(healthy_meta(**{"watchdog.paused": "1"}), GONE) is Verdict.PAUSED
    assert verdict(healthy_meta(**{"watchdog.paused": "0"}), GONE) is Verdict.RESTART_NOT_RUNNING


def test_it_restarts_a_watcher_that_is_not_running():
    d = decide(healthy_meta(), GONE, NOW, S)
    assert d.verdict is Verdict.RESTART_NOT_RUNNING and "gone" in d.reason


def test_not_running_beats_the_startup_grace():
    meta = healthy_meta(**{"watcher.started_at": ago(1)})
    assert verdict(meta, GONE) is Verdict.RESTART_NOT_RUNNING


def test_it_handles_the_startup_grace_at_its_boundary():
    meta = healthy_meta(**{"watcher.heartbeat_at": ago(500)})
    just_inside = dict(meta, **{"watcher.started_at": ago(29.999)})
    at_boundary = dict(meta, **{"watcher.started_at": ago(30)})
    assert verdict(just_inside) is Verdict.WAIT_STARTUP_GRACE
    # Past the grace; its first heartbeat is due within the timeout of its start.
    assert verdict(at_boundary) is Verdict.OK


def test_the_grace_also_counts_from_the_watchdogs_own_start():
    meta = healthy_meta(**{"watcher.heartbeat_at": ago(500), "watchdog.last_start_at": ago(10)})
    assert verdict(meta) is Verdict.WAIT_STARTUP_GRACE


def test_it_handles_the_heartbeat_timeout_at_its_boundary():
    assert verdict(healthy_meta(**{"watcher.heartbeat_at": ago(120)})) is Verdict.OK
    assert verdict(healthy_meta(**{"watcher.heartbeat_at": ago(120.001)})) is Verdict.RESTART_HEARTBEAT_STALE


def test_a_new_process_gets_a_full_timeout_for_its_first_heartbeat():
    # The heartbeat is the previous process's; this one started 60 s ago.
    meta = healthy_meta(**{"watcher.started_at": ago(60), "watcher.heartbeat_at": ago(3000)})
    assert verdict(meta) is Verdict.OK
    meta["watcher.started_at"] = ago(121)
    assert verdict(meta) is Verdict.RESTART_HEARTBEAT_STALE


def test_a_missing_heartbeat_counts_from_the_start():
    meta = healthy_meta()
    del meta["watcher.heartbeat_at"]
    assert verdict(meta) is Verdict.RESTART_HEARTBEAT_STALE  # started an hour ago
    meta["watcher.started_at"] = ago(60)
    assert verdict(meta) is Verdict.OK


# -- backoff -----------------------------------------------------------------------


def test_it_handles_the_backoff_at_its_boundary():
    meta = healthy_meta(**{"watchdog.backoff_level": "3", "watchdog.last_restart_at": ago(39.999)})
    d = decide(meta, GONE, NOW, S)
    assert d.verdict is Verdict.WAIT_BACKOFF and d.due is Verdict.RESTART_NOT_RUNNING
    assert "restart:not_running due" in d.reason
    meta["watchdog.last_restart_at"] = ago(40)  # level 3: 10 * 2**2
    assert verdict(meta, GONE) is Verdict.RESTART_NOT_RUNNING


def test_backoff_doubles_and_stops_at_its_cap():
    assert [backoff_delay(n, S) for n in range(8)] == [0, 10, 20, 40, 80, 160, 300, 300]
    assert backoff_delay(10_000, S) == 300


def test_the_backoff_resets_after_twice_the_max_without_a_restart():
    meta = {"watchdog.backoff_level": "6", "watchdog.last_restart_at": ago(599.9)}
    assert backoff_level(meta, NOW, S) == 6
    meta["watchdog.last_restart_at"] = ago(600)
    assert backoff_level(meta, NOW, S) == 0


def test_a_backoff_from_a_clock_that_stepped_back_does_not_freeze_restarts():
    meta = healthy_meta(**{"watchdog.backoff_level": "6", "watchdog.last_restart_at": ago(-3600)})
    assert verdict(meta, GONE) is Verdict.RESTART_NOT_RUNNING
    meta["watchdog.last_restart_at"] = ago(-CLOCK_SKEW / 2)  # a moment ahead: skew, not a step
    assert verdict(meta, GONE) is Verdict.WAIT_BACKOFF


# -- sleep and clocks ------------------------------------------------------------


def slept_meta(sleep: float, awake: float, **extra) -> tuple[dict, tuple[float, float]]:
    """The heartbeat was written at clocks (1000, 1000); now `awake` s of
    monotonic time and `awake + sleep` s of boot time have passed."""
    meta = healthy_meta(**{"watcher.heartbeat_at": ago(sleep + awake),
                           "watcher.heartbeat_clocks": "1000.0 1000.0"}, **extra)
    return meta, (1000.0 + awake, 1000.0 + awake + sleep)


def test_it_waits_one_pass_after_the_machine_slept():
    meta, clocks_now = slept_meta(sleep=3600, awake=20)
    d = decide(meta, RUNNING, NOW, S, now_clocks=clocks_now)
    assert d.verdict is Verdict.WAIT_RESUMED and "slept 3600 s" in d.reason


def test_after_the_resumed_pass_only_awake_time_counts():
    meta, clocks_now = slept_meta(sleep=3600, awake=20, **{"watchdog.resumed_for": "1000.0 1000.0"})
    assert verdict(meta, now_clocks=clocks_now) is Verdict.OK
    meta, clocks_now = slept_meta(sleep=3600, awake=121, **{"watchdog.resumed_for": "1000.0 1000.0"})
    assert verdict(meta, now_clocks=clocks_now) is Verdict.RESTART_HEARTBEAT_STALE


def test_no_sleep_by_the_clocks_means_no_resumed_wait_however_late_the_pass():
    # A cron pass after a long gap is normal; only the clocks tell sleep.
    meta, clocks_now = slept_meta(sleep=0.5, awake=500)
    assert verdict(meta, now_clocks=clocks_now) is Verdict.RESTART_HEARTBEAT_STALE


def test_clocks_from_another_boot_are_ignored():
    meta = healthy_meta(**{"watcher.heartbeat_clocks": "99999.0 99999.0"})
    assert verdict(meta, now_clocks=(10.0, 10.0)) is Verdict.OK


def test_a_heartbeat_from_the_future_is_judged_by_the_clocks_or_counts_as_stale():
    meta = healthy_meta(**{"watcher.heartbeat_at": ago(-3600), "watcher.heartbeat_clocks": "1000.0 1000.0"})
    assert verdict(meta, now_clocks=(1005.0, 1005.0)) is Verdict.OK
    assert verdict(meta, now_clocks=(1200.0, 1200.0)) is Verdict.RESTART_HEARTBEAT_STALE
    del meta["watcher.heartbeat_clocks"]
    assert verdict(meta) is Verdict.RESTART_HEARTBEAT_STALE



def test_a_wall_clock_stepped_forward_is_no_restart_when_the_clocks_show_a_fresh_heartbeat():
    # NTP moved the wall clock an hour ahead; the monotonic clock says the
    # heartbeat is 5 s old and the machine did not sleep.
    meta = healthy_meta(**{"watcher.heartbeat_at": ago(3605), "watcher.heartbeat_clocks": "1000.0 1000.0"})
    d = decide(meta, RUNNING, NOW, S, now_clocks=(1005.0, 1005.0))
    assert d.verdict is Verdict.OK, d.reason
    # ... and a hung watcher is still caught by the same clocks.
    assert verdict(meta, now_clocks=(1121.0, 1121.0)) is Verdict.RESTART_HEARTBEAT_STALE


@pytest.mark.parametrize("step", [-7200, -60, -2, 2, 60, 7200])
def test_a_wall_clock_step_either_way_never_restarts_a_heartbeating_watcher(step):
    # Everything meta holds was written before the step; the clocks moved 5 s.
    meta = healthy_meta(**{"watcher.heartbeat_clocks": "1000.0 1000.0",
                           "watchdog.last_restart_at": ago(900), "watchdog.backoff_level": "2"})
    d = decide(meta, RUNNING, NOW + timedelta(seconds=step), S, now_clocks=(1005.0, 1005.0),
               aw=AWView(ok=True, newest_end=NOW - timedelta(seconds=30), has_events=True))
    assert d.verdict not in RESTART_VERDICTS, (step, d)


# -- data freshness ---------------------------------------------------------------


def stale_meta(**extra):
    return healthy_meta(**{"watcher.last_event_ts": ago(601)}, **extra)


def test_it_handles_the_data_threshold_at_its_boundary():
    assert verdict(healthy_meta(**{"watcher.last_event_ts": ago(600)}), aw=AW_NEWER) is Verdict.OK
    assert verdict(stale_meta(), aw=AW_NEWER) is Verdict.RESTART_DATA_STALE


def test_stale_data_asks_for_aw_facts_before_deciding():
    d = decide(stale_meta(), RUNNING, NOW, S)
    assert d.needs_aw and d.verdict is Verdict.HOLD_AW_UNHEALTHY


def test_stale_data_with_aw_down_is_held():
    d = decide(stale_meta(), RUNNING, NOW, S, aw=AWView(ok=False, error="connection refused"))
    assert d.verdict is Verdict.HOLD_AW_UNHEALTHY and "connection refused" in d.reason


def test_stale_data_with_nothing_newer_in_aw_is_held_as_source_stale():
    same = AWView(ok=True, newest_end=NOW - timedelta(seconds=601), has_events=True)
    assert verdict(stale_meta(), aw=same) is Verdict.HOLD_SOURCE_STALE
    assert verdict(stale_meta(), aw=AWView(ok=True)) is Verdict.HOLD_SOURCE_STALE


def test_events_in_the_future_are_fresh():
    assert verdict(healthy_meta(**{"watcher.last_event_ts": ago(-86400)})) is Verdict.OK


def test_before_any_event_data_is_stale_only_when_aw_has_events_and_the_watcher_ran_long():
    meta = healthy_meta()
    del meta["watcher.last_event_ts"]
    meta["watcher.started_at"] = ago(599)
    assert verdict(meta, aw=AW_NEWER) is Verdict.OK
    meta["watcher.started_at"] = ago(601)
    assert verdict(meta, aw=AW_NEWER) is Verdict.RESTART_DATA_STALE
    assert verdict(meta, aw=AWView(ok=True)) is Verdict.OK


def test_heartbeat_stale_beats_the_data_rows():
    meta = stale_meta(**{"watcher.heartbeat_at": ago(500)})
    assert verdict(meta, aw=AWView(ok=False)) is Verdict.RESTART_HEARTBEAT_STALE


# -- identity -------------------------------------------------------------------


CMD = ["/usr/bin/python3", "-m", "lifelog", "watcher", "--db", "/x.db"]


def recorded_meta(**extra):
    return {"watcher.pid": "4242", "watcher.process_created": "1700000000.5",
            "watcher.cmdline": json.dumps(CMD), **extra}


def test_a_process_is_the_watcher_only_when_pid_start_time_and_command_line_match():
    meta = recorded_meta()
    ours = LiveProc(4242, True, 1700000000.5, tuple(CMD))
    assert which_watcher(meta, ours, None).running
    assert not which_watcher(meta, LiveProc(4242, True, 1700000100.0, tuple(CMD)), None).running
    assert not which_watcher(meta, LiveProc(4242, True, 1700000000.5, ("sleep", "60")), None).running
    assert not which_watcher(meta, LiveProc(4242, False), None).running
    assert "another process" in which_watcher(meta, LiveProc(4242, True, 1.0, ("sleep",)), None).reason


def test_a_just_spawned_watcher_counts_before_it_registers():
    meta = recorded_meta(**{"watchdog.spawned_pid": "5000", "watchdog.spawned_created": "1700000900.25",
                            "watchdog.spawned_cmdline": json.dumps(CMD)})
    facts = which_watcher(meta, LiveProc(4242, False), LiveProc(5000, True, 1700000900.25, tuple(CMD)))
    assert facts.running and facts.pid == 5000 and facts.source == "spawned"


# -- properties -------------------------------------------------------------------

garbage = st.sampled_from(["", "yesterday", "2026-13-45T99:00:00", "NaN", "1e400", "None", "\x00", "12"])
offset = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
timestamp = st.one_of(st.none(), garbage, offset.map(ago))
KEYS = ["watcher.pid", "watcher.started_at", "watcher.heartbeat_at", "watcher.last_event_ts",
        "watcher.heartbeat_clocks", "watchdog.last_restart_at", "watchdog.backoff_level",
        "watchdog.last_start_at", "watchdog.paused", "watchdog.resumed_for"]
clock_text = st.one_of(st.none(), garbage, st.tuples(st.floats(-10, 1e6), st.floats(-10, 1e6))
                       .map(lambda t: f"{t[0]!r} {t[1]!r}"))


@st.composite
def metas(draw):
    meta = {
        "watcher.pid": draw(st.one_of(st.none(), garbage, st.just("4242"))),
        "watcher.started_at": draw(timestamp),
        "watcher.heartbeat_at": draw(timestamp),
        "watcher.last_event_ts": draw(timestamp),
        "watcher.heartbeat_clocks": draw(clock_text),
        "watchdog.last_restart_at": draw(timestamp),
        "watchdog.backoff_level": draw(st.one_of(st.none(), garbage, st.integers(-5, 10_000).map(str))),
        "watchdog.last_start_at": draw(timestamp),
        "watchdog.paused": draw(st.sampled_from([None, "", "0", "1"])),
        "watchdog.resumed_for": draw(st.one_of(st.none(), clock_text)),
    }
    return {k: v for k, v in meta.items() if v is not None}


@st.composite
def settings_(draw):
    initial = draw(st.floats(0, 100))
    return Settings(
        db_path=Path("x.db"),
        heartbeat_timeout_seconds=draw(st.floats(0.1, 1000)),
        watcher_timestamp_threshold_minutes=draw(st.floats(0.01, 100)),
        startup_grace_seconds=draw(st.floats(0, 100)),
        restart_backoff_initial_seconds=initial,
        restart_backoff_max_seconds=initial + draw(st.floats(0, 1000)),
    )


facts_ = st.sampled_from([RUNNING, GONE, WatcherFacts(4242, "spawned", "", 1.0)])
aw_ = st.one_of(st.none(), st.builds(AWView, ok=st.booleans(), error=st.text(max_size=5),
                                     newest_end=st.one_of(st.none(), offset.map(lambda s: NOW - timedelta(seconds=s))),
                                     has_events=st.booleans()))
now_clocks_ = st.one_of(st.none(), st.tuples(st.floats(0, 1e6), st.floats(0, 1e6)))
PROPS = hsettings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPS
@given(metas(), facts_, settings_(), aw_, now_clocks_)
def test_any_meta_gives_a_verdict_with_a_reason_never_an_exception(meta, facts, settings, aw, now_clocks):
    d = decide(meta, facts, NOW, settings, now_clocks=now_clocks, aw=aw)
    assert isinstance(d.verdict, Verdict) and d.reason


@PROPS
@given(metas(), settings_(), aw_, now_clocks_, st.floats(0, 1))
def test_it_never_restarts_inside_the_startup_grace(meta, settings, aw, now_clocks, fraction):
    age = -CLOCK_SKEW + fraction * (settings.startup_grace_seconds + CLOCK_SKEW)
    assume(age < settings.startup_grace_seconds - 1e-5)  # microsecond precision
    meta["watchdog.last_start_at"] = ago(age)
    d = decide(meta, RUNNING, NOW, settings, now_clocks=now_clocks, aw=aw)
    assert d.verdict in (Verdict.PAUSED, Verdict.WAIT_STARTUP_GRACE)


@PROPS
@given(metas(), facts_, settings_(), aw_, now_clocks_, st.integers(1, 80), st.floats(0, 1))
def test_it_never_restarts_inside_the_backoff(meta, facts, settings, aw, now_clocks, level, fraction):
    delay = backoff_delay(level, settings)
    assume(delay > 0)  # a zero initial backoff is no backoff
    age = -CLOCK_SKEW + fraction * (delay + CLOCK_SKEW)
    assume(age < delay - 1e-5)  # stored timestamps have microsecond precision
    meta["watchdog.backoff_level"] = str(level)
    meta["watchdog.last_restart_at"] = ago(age)
    d = decide(meta, facts, NOW, settings, now_clocks=now_clocks, aw=aw)
    assert d.verdict not in RESTART_VERDICTS


@PROPS
@given(metas(), facts_, settings_(), aw_, now_clocks_, offset, st.floats(0, 1e6))
def test_a_staler_heartbeat_never_turns_a_restart_into_ok(meta, facts, settings, aw, now_clocks, hb, extra):
    # Heartbeats from the future (the clock stepped back) are not "fresher":
    # they are judged by the monotonic clock, or as stale (tested above).
    assume(hb >= -CLOCK_SKEW)
    fresher = dict(meta, **{"watcher.heartbeat_at": ago(hb)})
    staler = dict(meta, **{"watcher.heartbeat_at": ago(hb + extra)})
    before = decide(fresher, facts, NOW, settings, now_clocks=now_clocks, aw=aw)
    after = decide(staler, facts, NOW, settings, now_clocks=now_clocks, aw=aw)
    if before.verdict in RESTART_VERDICTS or before.due is not None:
        assert after.verdict is not Verdict.OK


@PROPS
@given(metas(), settings_(), aw_, now_clocks_, st.floats(0.02, 1e6), st.booleans())
def test_a_process_whose_start_time_or_command_line_differs_is_never_the_watcher(
    meta, settings, aw, now_clocks, created_shift, change_cmdline
):
    meta.update(recorded_meta())
    for key in ("watchdog.spawned_pid", "watchdog.spawned_created", "watchdog.spawned_cmdline"):
        meta.pop(key, None)
    cmdline = ("sleep", "60") if change_cmdline else tuple(CMD)
    created = 1700000000.5 + (0.0 if change_cmdline else created_shift)
    facts = which_watcher(meta, LiveProc(4242, True, created, cmdline), None)
    assert not facts.running
    d = decide(meta, facts, NOW, settings, now_clocks=now_clocks, aw=aw)
    # Never a verdict that would stop that process as if it were the watcher.
    assert d.verdict in (Verdict.PAUSED, Verdict.RESTART_NOT_RUNNING, Verdict.WAIT_BACKOFF)


@hsettings(deadline=None)  # a loaded machine can take longer than Hypothesis' default 200 ms: not a failure
@given(st.one_of(st.just(0.0), st.floats(1e-3, 1000)), st.floats(0, 5000), st.integers(1, 2000))
def test_backoff_doubles_until_the_cap_and_stays_there(initial, extra, level):
    s = Settings(db_path=Path("x.db"), restart_backoff_initial_seconds=initial,
                 restart_backoff_max_seconds=initial + extra)
    here, there = backoff_delay(level, s), backoff_delay(level + 1, s)
    assert here <= s.restart_backoff_max_seconds
    assert there == pytest.approx(min(2 * here, s.restart_backoff_max_seconds))
    assert backoff_delay(1, s) == initial


def test_identity_matching_never_raises_on_garbage():
    proc = LiveProc(1, True, 1.0, ("a",))
    for created, cmdline in [(None, None), ("x", "[]"), ("1.0", "{"), ("1.0", "[1]"), ("1.0", '"a"')]:
        assert identity_matches(created, cmdline, proc) is False
