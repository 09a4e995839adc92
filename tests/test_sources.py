"""Sources judged, pure (README "When an ActivityWatch watcher goes quiet"): boundaries probed exactly,
properties by hypothesis. No database, no AW, no clock: facts are values and
`now` is passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from lifelog.checks.status import Snapshot
from lifelog.core import keys
from lifelog.core.devices import parse_devices
from lifelog.core.identity import WatcherFacts
from lifelog.core.settings import Settings
from lifelog.core.timeutil import to_iso
from lifelog.core.verdicts import Level, SourceState, Verdict
from lifelog.sources.judge import (
    BROWSERS,
    Awake,
    Bucket,
    Facts,
    Judgement,
    Previous,
    Span,
    app_is_browser,
    browser_of,
    evidence_needed,
    judge,
    lifelog_trouble,
    track_awake,
    watcher_name,
)
from lifelog.sources.watch import Recorded, restart_due, sources_component

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
HOST = "laptop"
S = Settings(db_path=Path("x.db"), source_silence_minutes=10, source_silence_critical_minutes=60,
             heartbeat_timeout_seconds=120, restart_backoff_initial_seconds=10,
             restart_backoff_max_seconds=300,
             source_restart_commands={"aw-watcher-window": "systemctl --user restart aw-watcher-window"})
T = S.source_silence_minutes * 60  # the threshold, in seconds
TINY = timedelta(microseconds=1)

AFK = "aw-watcher-afk_laptop"
WINDOW = "aw-watcher-window_laptop"
FIREFOX = "aw-watcher-web-firefox_laptop"


def at(seconds_ago: float) -> datetime:
    return NOW - timedelta(seconds=seconds_ago)


def afk(end_ago: float = 5) -> Bucket:
    return Bucket(AFK, "afkstatus", HOST, at(end_ago))


def window(end_ago: float) -> Bucket:
    return Bucket(WINDOW, "currentwindow", HOST, at(end_ago))


def firefox(end_ago: float) -> Bucket:
    return Bucket(FIREFOX, "web.tab.current", HOST, at(end_ago))


def facts(*buckets: Bucket, not_afk=(), windows=(), **kw) -> Facts:
    kw.setdefault("awake_since", at(86400))
    return Facts(HOST, tuple(buckets), {AFK: tuple(not_afk)}, {WINDOW: tuple(windows)}, at(4200), **kw)


def state_of(f: Facts, bucket_id: str, now: datetime = NOW, settings: Settings = S) -> Judgement:
    return next(j for j in judge(f, now, settings) if j.bucket_id == bucket_id)


def active(from_ago: float, to_ago: float = 0) -> Span:
    return Span(at(from_ago), at(to_ago))


# -- live, at exactly the threshold -----------------------------------------------------


def test_a_source_whose_newest_end_is_exactly_the_threshold_old_is_live():
    f = facts(afk(), window(T), not_afk=[active(3600)])
    assert state_of(f, WINDOW).state is SourceState.LIVE


def test_one_microsecond_past_the_threshold_while_active_all_along_it_is_silent():
    f = facts(afk(), Bucket(WINDOW, "currentwindow", HOST, at(T) - TINY), not_afk=[active(3600)])
    j = state_of(f, WINDOW)
    assert j.state is SourceState.SILENT
    assert j.reason.startswith("while you were active")


# -- currentwindow and os.hid.input: not-afk time since the newest end --------------------


def test_window_with_exactly_the_threshold_of_not_afk_time_since_its_end_is_idle():
    # Silent for an hour, but you were active for exactly 10 of those minutes.
    f = facts(afk(), window(3600), not_afk=[active(T + 100, 100)])
    j = state_of(f, WINDOW)
    assert j.state is SourceState.IDLE
    assert j.reason == "you were away (10 min not-afk since its newest event)"


def test_window_with_a_microsecond_more_of_not_afk_time_is_silent():
    f = facts(afk(), window(3600), not_afk=[Span(at(T + 100) - TINY, at(100))])
    assert state_of(f, WINDOW).state is SourceState.SILENT


def test_not_afk_time_before_the_newest_end_does_not_count():
    f = facts(afk(), window(15 * 60), not_afk=[active(3600, 5 * 60 + 1)])
    j = state_of(f, WINDOW)
    assert j.state is SourceState.IDLE  # 10 min minus a second of activity after the end


def test_not_afk_spans_that_overlap_are_counted_once():
    spans = [active(T, 0), active(T, 0), active(T - 60, 30)]  # the same 10 min, three times over
    f = facts(afk(), window(3600), not_afk=spans)
    assert state_of(f, WINDOW).state is SourceState.IDLE


def test_input_buckets_follow_the_same_rule():
    f = facts(afk(), Bucket("aw-watcher-input_laptop", "os.hid.input", HOST, at(3600)), not_afk=[active(3000)])
    assert state_of(f, "aw-watcher-input_laptop").state is SourceState.SILENT


def test_an_empty_bucket_counts_from_its_creation():
    b = Bucket(WINDOW, "currentwindow", HOST, None, created=at(3600))
    assert state_of(facts(afk(), b, not_afk=[active(3000)]), WINDOW).state is SourceState.SILENT
    b = Bucket(WINDOW, "currentwindow", HOST, None, created=at(60))
    assert state_of(facts(afk(), b, not_afk=[active(3000)]), WINDOW).state is SourceState.LIVE
    b = Bucket(WINDOW, "currentwindow", HOST, None, None)
    assert state_of(facts(afk(), b), WINDOW).state is SourceState.UNJUDGED


def test_evidence_before_the_horizon_is_not_assumed():
    # The facts were read from 70 min ago: activity earlier is not there to count.
    f = facts(afk(), window(86400), not_afk=[active(3 * 3600, 4200 + 1)])
    assert state_of(f, WINDOW).state is SourceState.IDLE


# -- the afk watcher: awake time since its newest end -------------------------------------


def test_afk_silent_after_more_than_the_threshold_awake():
    assert state_of(facts(Bucket(AFK, "afkstatus", HOST, at(T) - TINY)), AFK).state is SourceState.SILENT


def test_afk_idle_when_the_machine_slept_since_its_newest_end():
    f = facts(afk(3 * 3600), awake_since=at(T))  # awake exactly the threshold since the wake
    j = state_of(f, AFK)
    assert j.state is SourceState.IDLE and "slept" in j.reason
    f = facts(afk(3 * 3600), awake_since=at(T) - TINY)
    assert state_of(f, AFK).state is SourceState.SILENT


def test_afk_unjudged_where_sleep_cannot_be_told():
    j = state_of(facts(afk(3600), awake_since=None), AFK)
    assert j.state is SourceState.UNJUDGED and "slept" in j.reason


# -- web buckets: their browser in focus, not-afk ---------------------------------------------


def test_firefox_bucket_silent_while_firefox_is_in_focus_and_you_are_active():
    f = facts(afk(), window(5), firefox(3600), not_afk=[active(3600)],
              windows=[(active(3600), "Firefox")])
    j = state_of(f, FIREFOX)
    assert j.state is SourceState.SILENT
    assert j.reason.startswith("while firefox was in focus")


def test_firefox_bucket_idle_while_a_terminal_is_in_focus():
    f = facts(afk(), window(5), firefox(3600), not_afk=[active(3600)],
              windows=[(active(3600), "gnome-terminal")])
    assert state_of(f, FIREFOX).state is SourceState.IDLE


def test_firefox_in_focus_while_afk_does_not_count():
    f = facts(afk(), window(5), firefox(3600), not_afk=[active(3600, 3000)],
              windows=[(active(3600), "firefox")])
    assert state_of(f, FIREFOX).state is SourceState.IDLE


def test_web_boundary_exactly_the_threshold_of_focus():
    f = facts(afk(), window(5), firefox(3600), not_afk=[active(3600)],
              windows=[(active(T + 60, 60), "firefox"), (active(60), "code")])
    assert state_of(f, FIREFOX).state is SourceState.IDLE
    f = facts(afk(), window(5), firefox(3600), not_afk=[active(3600)],
              windows=[(Span(at(T + 60) - TINY, at(60)), "firefox"), (active(60), "code")])
    assert state_of(f, FIREFOX).state is SourceState.SILENT


@pytest.mark.parametrize("browser,app", [
    ("firefox", "firefox"), ("firefox", "Firefox"), ("firefox", "firefox-esr"),
    ("firefox", "org.mozilla.firefox"), ("firefox", "Firefox Developer Edition"),
    ("chrome", "Google-chrome"), ("chrome", "Google Chrome"), ("chrome", "chrome.exe"),
    ("chrome", "Chromium-browser"), ("chromium", "chromium"), ("brave", "Brave-browser"),
    ("edge", "Microsoft-edge"), ("edge", "msedge.exe"), ("opera", "Opera"), ("vivaldi", "Vivaldi-stable"),
    ("safari", "Safari"),
])
def test_the_browser_table_matches_what_the_window_watcher_reports(browser, app):
    assert browser in BROWSERS
    assert app_is_browser(app, browser)


@pytest.mark.parametrize("browser,app", [("firefox", "Thunderbird"), ("edge", "Knowledge"),
                                         ("chrome", "gnome-terminal"), ("opera", "operator")])
def test_the_browser_table_does_not_match_other_apps(browser, app):
    assert not app_is_browser(app, browser)


def test_names_from_bucket_ids():
    assert watcher_name("aw-watcher-web-firefox_my.host") == "aw-watcher-web-firefox"
    assert watcher_name("aw-watcher-android") == "aw-watcher-android"
    assert browser_of("aw-watcher-web-firefox_laptop") == "firefox"
    assert browser_of("aw-watcher-web-chrome") == "chrome"
    assert browser_of(WINDOW) is None


def test_an_unknown_browser_is_unjudged_naming_the_table():
    f = facts(afk(), window(5), Bucket("aw-watcher-web-arc_laptop", "web.tab.current", HOST, at(3600)),
              not_afk=[active(3600)])
    j = state_of(f, "aw-watcher-web-arc_laptop")
    assert j.state is SourceState.UNJUDGED and "firefox" in j.reason


def test_a_web_bucket_named_for_an_unknown_host_is_taken_as_this_hosts():
    b = Bucket("aw-watcher-web-firefox", "web.tab.current", "unknown", at(3600))
    f = facts(afk(), window(5), b, not_afk=[active(3600)], windows=[(active(3600), "firefox")])
    assert state_of(f, b.bucket_id).state is SourceState.SILENT


# -- never judged, or not judged now -------------------------------------------------------------


def test_copies_and_other_hosts_are_never_judged_and_copy_wins():
    f = facts(afk(), Bucket("aw-watcher-window_desk-synced-from-desk", "currentwindow", "desk", at(3600)),
              Bucket("aw-watcher-window_desk", "currentwindow", "desk", at(3600)), not_afk=[active(3600)])
    states = {j.bucket_id: j.state for j in judge(f, NOW, S)}
    assert states["aw-watcher-window_desk-synced-from-desk"] is SourceState.COPY
    assert states["aw-watcher-window_desk"] is SourceState.REMOTE


def test_host_names_compare_without_case():
    f = facts(afk(), Bucket(WINDOW, "currentwindow", "LAPTOP", at(3600)), not_afk=[active(3600)])
    assert state_of(f, WINDOW).state is SourceState.SILENT


def test_without_aw_own_host_name_nothing_is_judged():
    f = Facts(None, (afk(), window(3600)), {AFK: (active(3600),)})
    assert {j.state for j in judge(f, NOW, S)} == {SourceState.UNJUDGED}


def test_while_lifelog_is_in_trouble_sources_are_unjudged_with_the_reason():
    f = facts(afk(3600), window(3600), not_afk=[active(3600)], trouble="LifeLog's watcher is not running (gone)")
    for j in judge(f, NOW, S):
        assert j.state is SourceState.UNJUDGED
        assert j.reason == "not judged while LifeLog's watcher is not running (gone)"


def test_no_afk_bucket_leaves_the_window_unjudged():
    j = state_of(facts(window(3600)), WINDOW)
    assert j.state is SourceState.UNJUDGED and "afkstatus" in j.reason


def test_a_silent_afk_bucket_is_no_evidence():
    f = facts(afk(3600), window(3600), not_afk=[active(3600, 3000)])
    j = state_of(f, WINDOW)
    assert j.state is SourceState.UNJUDGED and j.reason == f"its evidence {AFK} is silent itself"


def test_a_type_without_a_rule_is_unjudged():
    j = state_of(facts(Bucket("aw-watcher-android-unlock", "os.lockscreen.unlocks", HOST, at(3600))),
                 "aw-watcher-android-unlock")
    assert j.state is SourceState.UNJUDGED and "os.lockscreen.unlocks" in j.reason


def test_silent_stays_silent_until_its_newest_end_moves():
    prev = {WINDOW: Previous("silent", at(3600))}
    f = facts(afk(), window(3600), not_afk=[], previous=prev)  # you walked away since
    assert state_of(f, WINDOW).state is SourceState.SILENT
    f = facts(afk(), window(1800), not_afk=[], previous=prev)  # it recorded something since
    assert state_of(f, WINDOW).state is SourceState.IDLE


# -- what evidence a pass reads ------------------------------------------------------------------


def test_no_evidence_is_read_while_every_source_is_live():
    assert evidence_needed([afk(), window(5), firefox(5)], HOST, "", NOW, S) == (None, None)


def test_evidence_is_read_from_the_oldest_end_past_the_threshold_or_the_horizon():
    afk_from, window_from = evidence_needed([afk(), window(900), firefox(5)], HOST, "", NOW, S)
    assert afk_from == at(900) and window_from is None
    afk_from, window_from = evidence_needed([afk(), window(5), firefox(86400)], HOST, "", NOW, S)
    assert afk_from == window_from == at(70 * 60)
    assert evidence_needed([afk(), window(900)], HOST, "trouble", NOW, S) == (None, None)


# -- sleep ----------------------------------------------------------------------------------------


def test_awake_since_boot_when_the_machine_never_slept():
    assert track_awake(None, NOW, (500.0, 500.5)).since == at(500.5)


def test_awake_from_now_when_it_slept_before_the_first_look():
    assert track_awake(None, NOW, (500.0, 4000.0)).since == NOW


def test_awake_since_kept_across_passes_until_a_sleep():
    first = Awake(at(3600), (1000.0, 1000.0))
    assert track_awake(first, NOW, (1060.0, 1062.0)) == first  # 2 s apart: no sleep, nothing to record
    # Sleeps add up against the reading taken when `since` was set.
    assert track_awake(first, NOW, (5000.0, 5001.5)) == first
    assert track_awake(first, NOW, (5000.0, 5002.5)).since == NOW
    assert track_awake(first, NOW, (1060.0, 1062.001)).since == NOW  # just past SLEEP_MIN: slept
    assert track_awake(first, NOW, (10.0, 10.0)).since == at(10.0)  # a reboot
    assert track_awake(first, NOW, None) == Awake(None, None)


# -- LifeLog's own health -----------------------------------------------------------------------


RUNNING = WatcherFacts(pid=4242, source="recorded", reason="", created=1.0)


def healthy(**extra) -> dict:
    meta = {"watcher.pid": "4242", "watcher.started_at": to_iso(at(3600)),
            "watcher.heartbeat_at": to_iso(at(5)), "watcher.last_poll_ok_at": to_iso(at(5)),
            "watcher.last_error": ""}
    meta.update(extra)
    return meta


def test_a_healthy_watcher_is_no_trouble():
    assert lifelog_trouble(healthy(), RUNNING, NOW, None, S) == ""
    assert lifelog_trouble(healthy(), RUNNING, NOW, None, S, Verdict.HOLD_SOURCE_STALE) == ""


@pytest.mark.parametrize("meta,facts_,verdict,says", [
    (healthy(), WatcherFacts(None, "", "watcher pid 4242 is gone"), None, "not running"),
    (healthy(**{"watcher.heartbeat_at": to_iso(at(121))}), RUNNING, None, "heartbeat is stale"),
    (healthy(**{"watcher.started_at": to_iso(at(60)), "watcher.heartbeat_at": to_iso(at(70))}), RUNNING, None,
     "since it started"),
    (healthy(**{"watcher.last_error": "connection refused at x"}), RUNNING, None, "cannot read AW"),
    (healthy(**{"watcher.last_poll_ok_at": to_iso(at(15))}), RUNNING, None, "did not succeed"),
    (healthy(**{"aw.status": "unhealthy", "aw.checked_at": to_iso(at(1)), "aw.error": "refused"}),
     RUNNING, None, "AW is unhealthy"),
    (healthy(), RUNNING, Verdict.RESTART_DATA_STALE, "replacing"),
    (healthy(), RUNNING, Verdict.WAIT_BACKOFF, "replacing"),
])
def test_lifelog_trouble_names_its_cause(meta, facts_, verdict, says):
    assert says in lifelog_trouble(meta, facts_, NOW, None, S, verdict)


def test_an_old_aw_check_does_not_hide_a_good_poll_since():
    meta = healthy(**{"aw.status": "unhealthy", "aw.checked_at": to_iso(at(60))})
    assert lifelog_trouble(meta, RUNNING, NOW, None, S) == ""


# -- the restart, backed off per source -----------------------------------------------------------


def silent_window() -> Judgement:
    return Judgement(WINDOW, "currentwindow", HOST, SourceState.SILENT, "while you were active", at(3600))


def test_a_silent_source_with_a_command_is_restarted_then_backs_off():
    due = restart_due(silent_window(), {}, NOW, S)
    assert due is not None and due.level == 1 and "systemctl" in due.command
    meta = {keys.source_last_restart_at(WINDOW): to_iso(NOW), keys.source_restart_level(WINDOW): "1"}
    assert restart_due(silent_window(), meta, NOW + timedelta(seconds=10) - TINY, S) is None
    again = restart_due(silent_window(), meta, NOW + timedelta(seconds=10), S)
    assert again is not None and again.level == 2
    meta[keys.source_restart_level(WINDOW)] = "2"
    assert restart_due(silent_window(), meta, NOW + timedelta(seconds=20) - TINY, S) is None
    # No restart for twice restart_backoff_max_seconds: the backoff starts again.
    assert restart_due(silent_window(), meta, NOW + timedelta(seconds=600), S).level == 1


def test_with_devices_only_the_first_devices_source_is_restarted_the_others_are_reported():
    devices = S._replace(devices=parse_devices({"desk": {"url": "http://127.0.0.1:5600"},
                                                "lap": {"url": "http://127.0.0.1:5601"}}, "test"))
    desk, lap = silent_window()._replace(device="desk"), silent_window()._replace(device="lap")
    # The command runs on this machine: another machine's silent watcher is never "restarted" here.
    assert restart_due(lap, {}, NOW, devices) is None
    due = restart_due(desk, {}, NOW, devices)
    assert due is not None and (due.device, due.keyed, due.level) == ("desk", None, 1)
    # The first device keeps the plain keys and backs off on them.
    meta = {keys.source_last_restart_at(WINDOW): to_iso(NOW), keys.source_restart_level(WINDOW): "1"}
    assert restart_due(desk, meta, NOW + timedelta(seconds=1), devices) is None
    # A key of the laptop's (the same bucket id) is its own, not the desktop's.
    meta = {keys.source_last_restart_at(WINDOW, "lap"): to_iso(NOW), keys.source_restart_level(WINDOW, "lap"): "1"}
    assert restart_due(desk, meta, NOW + timedelta(seconds=1), devices).level == 1


def test_no_restart_without_a_command_or_unless_silent():
    other = Judgement("aw-watcher-input_laptop", "os.hid.input", HOST, SourceState.SILENT, "", at(3600))
    assert restart_due(other, {}, NOW, S) is None
    idle = Judgement(WINDOW, "currentwindow", HOST, SourceState.IDLE, "", at(3600))
    assert restart_due(idle, {}, NOW, S) is None


# -- the status component -------------------------------------------------------------------------


def snap(meta: dict) -> Snapshot:
    return Snapshot(now=NOW, meta=meta, watcher=RUNNING)


def recorded_meta(bucket_id, state, since_ago, end_ago, reason="", judged_ago=5) -> dict:
    return {keys.source_state(bucket_id): state, keys.source_since(bucket_id): to_iso(at(since_ago)),
            keys.source_newest_end(bucket_id): to_iso(at(end_ago)), keys.source_reason(bucket_id): reason,
            keys.WATCHDOG_CHECKED_AT: to_iso(at(judged_ago))}


def test_status_warns_naming_the_silent_source_and_how_long():
    meta = recorded_meta(WINDOW, "silent", 4 * 60, 14 * 60, "while you were active (12 min not-afk since its newest event)")
    meta.update(recorded_meta(AFK, "live", 3600, 5))
    c = sources_component(snap(meta), S)
    assert c.level is Level.WARNING
    assert c.reason.startswith("aw-watcher-window_laptop silent for 14 min while you were active")
    assert "lifelog sources" in c.reason


def test_status_critical_once_silent_longer_than_the_critical_threshold_from_since():
    meta = recorded_meta(WINDOW, "silent", 3600, 4000)
    assert sources_component(snap(meta), S).level is Level.WARNING  # exactly 60 min
    meta = recorded_meta(WINDOW, "silent", 3600.001, 4000)
    assert sources_component(snap(meta), S).level is Level.CRITICAL


def test_status_ok_otherwise_and_says_when_the_judgement_is_old():
    c = sources_component(snap(recorded_meta(WINDOW, "live", 60, 5)), S)
    assert c.level is Level.OK and c.reason == "no source silent (1 live)"
    c = sources_component(snap(recorded_meta(WINDOW, "idle", 3600, 3600, judged_ago=3600)), S)
    assert c.level is Level.OK and "no watchdog pass since" in c.reason
    assert sources_component(snap({}), S).reason == "no source judged yet"


def test_recorded_reads_bucket_ids_with_dots():
    meta = recorded_meta("aw-watcher-window_my.host.lan", "live", 1, 1)
    from lifelog.sources.watch import recorded

    assert [r.bucket_id for r in recorded(meta)] == ["aw-watcher-window_my.host.lan"]
    assert isinstance(recorded(meta)[0], Recorded)


def test_with_devices_each_device_has_its_own_recorded_state_and_the_status_names_it():
    devices = S._replace(devices=parse_devices({"desk": {"url": "http://127.0.0.1:5600"},
                                                "lap": {"url": "http://127.0.0.1:5601"}}, "test"))
    from lifelog.sources.watch import recorded

    meta = recorded_meta(WINDOW, "live", 60, 5)
    meta.update({keys.source_state(WINDOW, "lap"): "silent", keys.source_since(WINDOW, "lap"): to_iso(at(240)),
                 keys.source_newest_end(WINDOW, "lap"): to_iso(at(840)),
                 keys.source_reason(WINDOW, "lap"): "while you were active"})
    assert [(r.device, r.bucket_id, r.state) for r in recorded(meta, ("desk", "lap"))] == [
        ("desk", WINDOW, "live"), ("lap", WINDOW, "silent")]
    c = sources_component(snap(meta), devices)
    assert c.level is Level.WARNING
    assert c.reason.startswith(f"{WINDOW} of lap silent for 14 min while you were active")
    # Without the setting the same meta reads as before: the `@lap` key is a bucket id of its own.
    assert [r.bucket_id for r in recorded(meta)] == [WINDOW, f"{WINDOW}@lap"]


# -- properties ----------------------------------------------------------------------------------


PROPS = hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HOURS = 3 * 3600.0
offsets = st.floats(0, HOURS, allow_nan=False)
DEPENDENT = ("currentwindow", "os.hid.input", "web.tab.current")


@st.composite
def spans_(draw, max_size=6):
    out = []
    for _ in range(draw(st.integers(0, max_size))):
        a, b = sorted((draw(offsets), draw(offsets)))
        out.append(Span(at(b), at(a)))
    return out


@st.composite
def buckets_(draw):
    kinds = [("aw-watcher-afk_{}", "afkstatus"), ("aw-watcher-window_{}", "currentwindow"),
             ("aw-watcher-input_{}", "os.hid.input"), ("aw-watcher-web-firefox_{}", "web.tab.current"),
             ("aw-watcher-web-chrome_{}", "web.tab.current"), ("other_{}", "app.editor.activity")]
    found = {}
    for pattern, type_ in draw(st.lists(st.sampled_from(kinds), min_size=1, max_size=6)):
        host = draw(st.sampled_from([HOST, HOST, "desk"]))
        bucket_id = pattern.format(host) + draw(st.sampled_from(["", "", "-synced-from-desk"]))
        end = draw(st.one_of(st.none(), offsets.map(at)))
        found[bucket_id] = Bucket(bucket_id, type_, host, end, at(HOURS))
    return tuple(found.values())


@st.composite
def facts_(draw, away=False, trouble=None):
    buckets = draw(buckets_())
    not_afk = {b.bucket_id: (() if away else tuple(draw(spans_()))) for b in buckets if b.type == "afkstatus"}
    apps = st.sampled_from(["firefox", "Google-chrome", "code", "gnome-terminal"])
    windows = {b.bucket_id: tuple((s, draw(apps)) for s in draw(spans_())) for b in buckets
               if b.type == "currentwindow"}
    prev = {b.bucket_id: Previous(draw(st.sampled_from(["live", "idle", "unjudged"])), b.newest_end)
            for b in buckets if draw(st.booleans())}
    return Facts(HOST, buckets, not_afk, windows, at(draw(st.floats(HOURS, 2 * HOURS))),
                 draw(st.sampled_from(["", "LifeLog's watcher is not running"])) if trouble is None else trouble,
                 draw(st.one_of(st.none(), offsets.map(at))), prev)


settings_ = st.builds(lambda m, c: Settings(db_path=Path("x.db"), source_silence_minutes=m,
                                            source_silence_critical_minutes=c),
                      st.floats(0.01, 120), st.floats(0.01, 240))


@PROPS
@given(facts_(away=True), settings_)
def test_nothing_that_records_while_you_are_active_is_silent_while_you_were_away(f, s):
    for j in judge(f, NOW, s):
        if j.type in DEPENDENT:
            assert j.state is not SourceState.SILENT, j


@PROPS
@given(facts_(), settings_)
def test_copies_and_other_hosts_are_never_judged(f, s):
    for j in judge(f, NOW, s):
        if "-synced-from-" in j.bucket_id:
            assert j.state is SourceState.COPY
        elif j.hostname != HOST:
            assert j.state is SourceState.REMOTE
        else:
            assert j.state not in (SourceState.COPY, SourceState.REMOTE)


@PROPS
@given(facts_(trouble="LifeLog's watcher heartbeat is stale"), settings_)
def test_never_silent_while_lifelog_own_watcher_is_unhealthy(f, s):
    for j in judge(f, NOW, s):
        assert j.state in (SourceState.UNJUDGED, SourceState.COPY, SourceState.REMOTE)


@PROPS
@given(facts_(), settings_, st.floats(0, 10 * HOURS))
def test_a_longer_silence_never_turns_silent_into_live(f, s, later):
    before = {j.bucket_id: j.state for j in judge(f, NOW, s)}
    after = {j.bucket_id: j.state for j in judge(f, NOW + timedelta(seconds=later), s)}
    for bucket_id, state in before.items():
        if state is SourceState.SILENT:
            # Silent stays silent, or becomes unjudged when its evidence itself goes quiet.
            assert after[bucket_id] in (SourceState.SILENT, SourceState.UNJUDGED)


@PROPS
@given(facts_(), settings_)
def test_every_source_gets_one_state_and_a_reason(f, s):
    judged = judge(f, NOW, s)
    assert [j.bucket_id for j in judged] == [b.bucket_id for b in f.buckets]
    assert all(j.reason for j in judged)


# -- recording and the restart command, on a real database and real processes -------------------


def test_record_logs_each_change_once_and_keeps_since_while_the_state_holds(db_path):
    from lifelog.db.database import open_db
    from lifelog.db.meta import read_meta
    from lifelog.sources.watch import Gathered, record

    db = open_db(db_path)
    g = Gathered("dev", facts(afk(), window(5)), Awake(at(3600), (1.0, 1.0)))

    five = at(5)

    def judged(window_state, reason="r", window_end=five):
        return [Judgement(AFK, "afkstatus", HOST, SourceState.LIVE, "recording", at(5)),
                Judgement(WINDOW, "currentwindow", HOST, window_state, reason, window_end)]

    def log_count():
        return db.conn.execute("SELECT count(*) FROM source_log").fetchone()[0]

    assert len(record(db, g, judged(SourceState.LIVE), read_meta(db), NOW)) == 2  # the first judgement
    meta = read_meta(db)
    for bucket_id, state, reason in ((AFK, "live", "recording"), (WINDOW, "live", "r")):
        assert meta[keys.source_state(bucket_id)] == state
        assert meta[keys.source_since(bucket_id)] == to_iso(NOW)
        assert meta[keys.source_newest_end(bucket_id)] == to_iso(at(5))
        assert meta[keys.source_reason(bucket_id)] == reason
    assert log_count() == 2
    before = list(db.query("SELECT key, value, updated_at FROM meta ORDER BY key"))
    assert record(db, g, judged(SourceState.LIVE), read_meta(db), NOW + timedelta(seconds=30)) == []
    # Nothing changed: nothing written (a steady pass takes no write lock for the sources).
    assert list(db.query("SELECT key, value, updated_at FROM meta ORDER BY key")) == before
    meta = read_meta(db)
    assert meta[keys.source_since(WINDOW)] == to_iso(NOW)
    assert meta[keys.SOURCES_AWAKE_SINCE] == to_iso(at(3600))
    # The state holds while its newest end moves, then while its reason changes: each
    # key follows, since stays, and no source_log row is added.
    moved = NOW + timedelta(seconds=40)
    assert record(db, g, judged(SourceState.LIVE, window_end=moved), read_meta(db), moved) == []
    meta = read_meta(db)
    assert meta[keys.source_newest_end(WINDOW)] == to_iso(moved)
    assert meta[keys.source_state(WINDOW)] == "live" and meta[keys.source_since(WINDOW)] == to_iso(NOW)
    assert meta[keys.source_newest_end(AFK)] == to_iso(at(5))
    assert record(db, g, judged(SourceState.LIVE, "r2", window_end=moved), read_meta(db), moved) == []
    meta = read_meta(db)
    assert meta[keys.source_reason(WINDOW)] == "r2" and meta[keys.source_since(WINDOW)] == to_iso(NOW)
    assert log_count() == 2
    later = NOW + timedelta(seconds=60)
    changed = record(db, g, judged(SourceState.SILENT, "while you were active (x)"), read_meta(db), later)
    assert [j.bucket_id for j in changed] == [WINDOW]
    meta = read_meta(db)
    assert meta[keys.source_state(WINDOW)] == "silent" and meta[keys.source_since(WINDOW)] == to_iso(later)
    rows = list(db.query("SELECT at, server, bucket_id, state, reason FROM source_log ORDER BY id"))
    assert [(r["bucket_id"], r["state"]) for r in rows] == [(AFK, "live"), (WINDOW, "live"), (WINDOW, "silent")]
    assert rows[-1]["server"] == "dev" and rows[-1]["reason"] == "while you were active (x)"
    # A bucket AW no longer lists is no longer a source.
    record(db, g, judged(SourceState.SILENT)[:1], read_meta(db), later)
    assert not [k for k in read_meta(db) if k.startswith(f"source.{WINDOW}.")]


def test_a_source_restart_runs_its_command_split_as_a_shell_would_bounded_to_30_s(db_path, monkeypatch):
    from lifelog.core import commands
    from lifelog.db.database import open_db
    from lifelog.db.meta import read_meta
    from lifelog.sources import watch as source_watch

    calls = []

    def recorder(argv, timeout, **kw):
        calls.append((argv, timeout, kw))
        return commands.Ran(0, 4242, "exit 0")

    monkeypatch.setattr(commands, "run", recorder)
    db = open_db(db_path)
    due = restart_due(silent_window(), {}, NOW, S)
    action = source_watch.restart(db, due, "while you were active", NOW, "cron")
    assert calls == [(["systemctl", "--user", "restart", "aw-watcher-window"], 30.0, {})]
    assert action == "ran the restart command of aw-watcher-window: exit 0"
    [row] = db.query("SELECT at, verdict, reason, action, actor, backoff_level FROM watchdog_log")
    assert dict(row) == {"at": to_iso(NOW), "verdict": "restart:source_silent",
                         "reason": f"{WINDOW} silent: while you were active", "action": action,
                         "actor": "cron", "backoff_level": 1}
    meta = read_meta(db)
    assert meta[keys.source_last_restart_at(WINDOW)] == to_iso(NOW)
    assert meta[keys.source_restart_level(WINDOW)] == "1"
    db.conn.close()


def test_a_restart_command_is_bounded_and_never_goes_through_a_shell(tmp_path):
    import sys
    import time

    from lifelog.sources.watch import run_command

    began = time.monotonic()
    assert run_command(f"{sys.executable} -c 'import time; time.sleep(30)'", timeout=0.5) == "killed after 0.5 s"
    assert time.monotonic() - began < 10
    assert run_command("/nonexistent/restart-me").startswith("could not run '/nonexistent/restart-me'")
    out = run_command(f"{sys.executable} -c 'import sys; print(\"no unit\"); sys.exit(5)'")
    assert out == "exit 5: no unit"
    assert run_command("true; touch x").startswith("could not run 'true;'")


# -- `lifelog sources` for people, fitted to the terminal ----------------------------------------


def _views():
    from lifelog.sources.judge import Judgement
    from lifelog.sources.watch import SourceView

    return [SourceView(Judgement("aw-watcher-afk_ada-thinkpad", "afkstatus", "ada-thinkpad", SourceState.LIVE,
                                 "recording: its newest event is within source_silence_minutes",
                                 NOW - timedelta(seconds=9)), to_iso(NOW)),
            SourceView(Judgement("aw-watcher-window_ada-thinkpad", "currentwindow", "ada-thinkpad",
                                 SourceState.SILENT, "no window event for 45 min while you were active and the "
                                 "machine awake; restart it with 'systemctl --user restart aw-watcher-window'",
                                 NOW - timedelta(minutes=45)), to_iso(NOW))]


def test_the_sources_table_fits_80_columns_reasons_wrapped_whole_in_their_column():
    from lifelog.sources.watch import render_table

    lines = render_table(_views(), NOW, 80).splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    header = lines[0].split()
    assert header[0] == "BUCKET" and "STATE" in header and "AGE" in header and header[-1] == "REASON"
    at = lines[0].index("REASON")
    silent = next(i for i, line in enumerate(lines) if line.startswith("aw-watcher-window_ada-thinkpad"))
    assert "silent" in lines[silent] and "45 min ago" in lines[silent]
    assert " ".join(line[at:] for line in lines[silent:]) == _views()[1].judgement.reason
    assert all(line[:at].strip() == "" for line in lines[silent + 1:])


def test_the_sources_table_is_one_line_a_source_with_no_width_as_always():
    from lifelog.sources.watch import render_table

    lines = render_table(_views(), NOW, None).splitlines()
    assert len(lines) == 3
    assert lines[0].split() == ["BUCKET", "TYPE", "HOST", "STATE", "NEWEST", "END", "AGE", "REASON"]
    assert lines[2].endswith(_views()[1].judgement.reason)
    assert render_table([], NOW, 80).startswith("(no sources yet")
