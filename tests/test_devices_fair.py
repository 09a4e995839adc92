"""Catching up is fair (issue 21 item 2, SPEC section 14): while a device
back after days is caught up, another device's live events keep being
stored; and the device caught up ends exactly as its AW, nothing doubled.

The watcher runs in this process (lifelog.ingest.watcher.run in a thread,
against real aw-servers) so that its page size can be made small: the
catch-up (a thread of its own, lifelog.ingest.catchup) is then eighty pages,
each fetched and committed apart, spanning many of the desktop's polls on
any machine, and "a live event stored while the catch-up is still under
way" is a fact the test can see, not a race it hopes to win. The speeds
themselves are measured in scripts/bench_devices.py."""

from __future__ import annotations

import logging
import signal
import threading
from datetime import timedelta

from support.awserver import AWServer, free_port
from support.helpers import FAST, meta, wait_for
from test_devices_ingest import WINDOW, devices_json, env_for, feed, rows, stored_on, truth

from lifelog.core.settings import load_settings
from lifelog.core.timeutil import utcnow
from lifelog.ingest import history, watcher

LIVE = "aw-watcher-window_desktop"


def test_a_live_device_keeps_arriving_while_another_is_caught_up_which_ends_exact(aw_servers, db_path,
                                                                                   monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="lifelog.watcher")
    # Pages of 250: the catch-up of 20,000 events below is eighty pages.
    monkeypatch.setattr(history, "PAGE_SIZE", 250)
    desktop, laptop = aw_servers(2)
    did, lid = desktop.device_id(), laptop.device_id()
    desktop.create_bucket(LIVE, hostname="desktop")
    feed(desktop, LIVE, 3, tag="before")
    laptop.create_bucket(WINDOW)
    feed(laptop, WINDOW, 10, start=utcnow() - timedelta(days=3, hours=1), tag="left")
    devices = devices_json(desktop={"url": desktop.url}, laptop={"url": laptop.url, "expect": "sometimes"})
    settings = load_settings(overrides={"db_path": str(db_path)}, environ={**FAST, "LIFELOG_DEVICES": devices})
    stop = threading.Event()
    ran: list[int] = []
    thread = threading.Thread(target=lambda: ran.append(watcher.run(settings, stop)), daemon=True)
    thread.start()
    try:
        wait_for(lambda: stored_on(db_path, lid, WINDOW) == truth(laptop, WINDOW), what="the laptop first seen")
        laptop.stop()
        wait_for(lambda: meta(db_path, "device.laptop.reachable") == "no", what="the laptop away")
        # While it is away, three days recorded in its data: its AW on another
        # port (LifeLog's URL for it points nowhere meanwhile), then stopped.
        away = AWServer(laptop.home, port=free_port()).start()
        try:
            feed(away, WINDOW, 20_000, start=utcnow() - timedelta(days=3), step=12, tag="trip")
            expected = truth(away, WINDOW)
        finally:
            away.stop()
        assert len(expected) == 20_010
        assert len(stored_on(db_path, lid, WINDOW)) == 10, "nothing read while away"
        laptop.start()

        sent = [0]

        def live_event_stored_mid_catch_up() -> bool:
            """One live event on the desktop per call; true once one sent
            after the catch-up began is stored while the laptop still has
            history to fetch (its sync_gaps row: LifeLog's own progress)."""
            n = sent[0]
            desktop.insert(LIVE, [{"timestamp": utcnow().isoformat(), "duration": 0.1,
                                   "data": {"app": "live", "title": f"live {n}"}}])
            sent[0] += 1
            catching_up = rows(db_path, "SELECT count(*) FROM sync_gaps WHERE server = ?", (lid,)) != [(0,)]
            if not catching_up:
                began.clear()  # not begun, or over: only a live event within it counts
                return False
            if not began:
                began.append(n + 1)  # the first event sent once the catch-up is seen under way
                return False
            titles = {d[2].get("title") for d in stored_on(db_path, did, LIVE).values()}
            fresh = any(f"live {k}" in titles for k in range(began[0], sent[0]))
            # Read after the live rows: the laptop still short of its AW then.
            still = rows(db_path, "SELECT count(*) FROM sync_gaps WHERE server = ?", (lid,)) != [(0,)]
            short = rows(db_path, "SELECT count(*) FROM events WHERE server = ?", (lid,))[0][0] < len(expected)
            return fresh and still and short

        began: list[int] = []
        wait_for(live_event_stored_mid_catch_up, timeout=120,
                 what="a live event of the desktop stored while the laptop was still being caught up")
        wait_for(lambda: stored_on(db_path, lid, WINDOW) == expected, timeout=120, what="the laptop caught up")
        wait_for(lambda: rows(db_path, "SELECT count(*) FROM sync_gaps") == [(0,)], what="no gap left")
        # The watcher's log tells the catch-up: its start, and its end with
        # what it stored (all but the newest page, the live poll's).
        wait_for(lambda: any("device laptop: catch-up over" in m for m in caplog.messages), what="the end logged")
        assert "device laptop: catching up (1 gap)" in caplog.messages
        over = [m for m in caplog.messages if m.startswith("device laptop: catch-up ")]
        assert len(over) == 1 and ", 19750 stored new, in " in over[0], over
        # Exactly its AW: one row per event, none replaced, none doubled.
        assert rows(db_path, "SELECT count(*) FROM events WHERE server = ? AND bucket_id = ?",
                    (lid, WINDOW)) == [(len(expected),)]
        assert rows(db_path, "SELECT count(*) FROM events_replaced") == [(0,)]
        wait_for(lambda: stored_on(db_path, did, LIVE) == truth(desktop, LIVE), what="every live event stored")
        assert meta(db_path, "device.laptop.reachable") == "yes"
    finally:
        stop.set()
        thread.join(30)
    assert ran == [0], "the watcher stopped cleanly"


def resumed_exact(db_path, lid: str, expected: dict) -> None:
    """The laptop's catch-up resumed and ended exactly as its AW: every event
    once, none replaced, no gap left."""
    wait_for(lambda: stored_on(db_path, lid, WINDOW) == expected, timeout=120, what="the catch-up resumed")
    wait_for(lambda: rows(db_path, "SELECT count(*) FROM sync_gaps") == [(0,)], what="no gap left")
    assert rows(db_path, "SELECT count(*) FROM events WHERE server = ?", (lid,)) == [(len(expected),)]
    assert rows(db_path, "SELECT count(*) FROM events_replaced") == [(0,)]


def laptop_never_seen(aw_servers, events: int, step: float) -> tuple[str, dict, str]:
    """A desktop (its live bucket) and a laptop holding `events` window events
    over the last three days, none of them in LifeLog yet: (the laptop's
    device_id, its events as AW holds them, the `devices` setting of both)."""
    desktop, laptop = aw_servers(2)
    desktop.create_bucket(LIVE, hostname="desktop")
    laptop.create_bucket(WINDOW)
    feed(laptop, WINDOW, events, start=utcnow() - timedelta(days=3), step=step, tag="trip")
    devices = devices_json(desktop={"url": desktop.url}, laptop={"url": laptop.url, "expect": "sometimes"})
    return laptop.device_id(), truth(laptop, WINDOW), devices


def _catch_up_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("lifelog-catchup-")]


def test_a_stop_mid_catch_up_ends_its_thread_and_the_next_watcher_resumes_exact(aw_servers, db_path, monkeypatch):
    monkeypatch.setattr(history, "PAGE_SIZE", 250)
    lid, expected, devices = laptop_never_seen(aw_servers, 20_000, step=12)
    settings = load_settings(overrides={"db_path": str(db_path)}, environ={**FAST, "LIFELOG_DEVICES": devices})

    def start() -> tuple[threading.Event, threading.Thread, list[int]]:
        stop, ran = threading.Event(), []
        thread = threading.Thread(target=lambda: ran.append(watcher.run(settings, stop)), daemon=True)
        thread.start()
        return stop, thread, ran

    stop, thread, ran = start()
    try:
        def mid_catch_up() -> bool:
            stored = rows(db_path, "SELECT count(*) FROM events WHERE server = ?", (lid,))
            return bool(_catch_up_threads()) and bool(stored) and 1_000 <= stored[0][0] < len(expected)

        wait_for(mid_catch_up, timeout=60, what="the laptop's catch-up under way")
    finally:
        stop.set()
        thread.join(30)
    assert ran == [0], "the watcher stopped cleanly"
    assert _catch_up_threads() == [], "its catch-up thread ended with it"
    assert meta(db_path, "watcher.state") == "stopped"
    held = rows(db_path, "SELECT count(*) FROM events WHERE server = ?", (lid,))[0][0]
    assert held < len(expected), "stopped before the end"
    assert rows(db_path, "SELECT count(*) FROM sync_gaps WHERE server = ?", (lid,)) != [(0,)], "its gap kept"
    # Every row stored is the laptop's own, once.
    assert stored_on(db_path, lid, WINDOW).items() <= expected.items()

    stop, thread, ran = start()
    try:
        resumed_exact(db_path, lid, expected)
        wait_for(lambda: _catch_up_threads() == [], what="the catch-up thread over once done")
    finally:
        stop.set()
        thread.join(30)
    assert ran == [0]


def test_a_watcher_killed_mid_catch_up_loses_and_doubles_nothing(aw_servers, db_path, spawn):
    # Twenty-four pages of 2,500: a catch-up of seconds, long enough to be
    # seen under way and killed in.
    lid, expected, devices = laptop_never_seen(aw_servers, 60_000, step=4)
    env = env_for(db_path, devices)
    w = spawn.lifelog("watcher", env=env, log="watcher")

    def mid_catch_up() -> bool:
        stored = rows(db_path, "SELECT count(*) FROM events WHERE server = ?", (lid,))
        gaps = rows(db_path, "SELECT count(*) FROM sync_gaps WHERE server = ?", (lid,))
        return bool(stored) and 5_000 <= stored[0][0] < len(expected) and gaps != [(0,)]

    wait_for(mid_catch_up, timeout=60, interval=0.01, what="the laptop's catch-up under way")
    w.send_signal(signal.SIGKILL)
    assert w.wait(30) == -signal.SIGKILL
    assert stored_on(db_path, lid, WINDOW).items() <= expected.items()
    w2 = spawn.lifelog("watcher", env=env, log="watcher")
    resumed_exact(db_path, lid, expected)
    w2.send_signal(signal.SIGTERM)
    assert w2.wait(30) == 0
