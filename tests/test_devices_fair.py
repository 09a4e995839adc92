"""Catching up is fair (issue 21 item 2, SPEC section 14): while a device
back after days is caught up, another device's live events keep being
stored; and the device caught up ends exactly as its AW, nothing doubled.

The watcher runs in this process (lifelog.ingest.watcher.run in a thread,
against real aw-servers) so that the history budget per poll can be made
small: a catch-up of a few pages then spans many polls on any machine, and
"a live event stored while the catch-up is still under way" is a fact the
test can see, not a race it hopes to win. The budget's own size (5 s) is
measured in scripts/bench_devices.py."""

from __future__ import annotations

import threading
from datetime import timedelta

from support.awserver import AWServer, free_port
from support.helpers import FAST, meta, wait_for
from test_devices_ingest import WINDOW, devices_json, feed, rows, stored_on, truth

from lifelog.core.settings import load_settings
from lifelog.core.timeutil import utcnow
from lifelog.ingest import livepoll, watcher

LIVE = "aw-watcher-window_desktop"


def test_a_live_device_keeps_arriving_while_another_is_caught_up_which_ends_exact(aw_servers, db_path,
                                                                                   monkeypatch):
    # A page or so per poll (a page in flight is finished): the catch-up of
    # eight pages below takes several polls, each with its live polls first.
    monkeypatch.setattr(livepoll, "GAP_BUDGET_SECONDS", 0.2)
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
