"""The watcher process: poll AW, store what it holds, heartbeat into meta.

One per database (a file lock enforces it). After every poll, good or bad, it
writes `watcher.heartbeat_at`, so the watchdog can tell a live watcher whose
AW is down from a hung or dead one. Signal handlers only record the signal;
the loop notices it between polls (and between pages inside a long poll) and
stops cleanly with `watcher.state = stopped`: every page is committed with
its progress, so whatever was not committed is simply fetched again.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass

from lifelog.aw.client import AWClient, AWError
from lifelog.core import clocks, keys, redact
from lifelog.core.identity import identity_meta
from lifelog.core.locks import ProcessLock
from lifelog.core.settings import Settings
from lifelog.core.signals import stop_on_signals
from lifelog.core.timeutil import iso_of_epoch, now_iso
from lifelog.core.verdicts import WatcherState
from lifelog.db.database import open_db, transaction
from lifelog.db.meta import get_meta, set_meta
from lifelog.ingest import fleet, livepoll

log = logging.getLogger("lifelog.watcher")


@dataclass(frozen=True)
class PollOutcome:
    ok: bool
    error: str = ""
    last_event_ts: str | None = None  # end of the newest stored event, if known
    catching_up: bool = False  # history left to fetch: poll again without waiting
    # With the `devices` setting: what the poll found of each (lifelog.ingest.fleet).
    devices: tuple[fleet.DevicePoll, ...] = ()


def record_start(db, identity: dict[str, str]) -> None:
    """The watcher's pid, identity and start time, before its first poll,
    and a new row in watcher_runs (the history `lifelog coverage` reads)."""
    now = now_iso()
    with transaction(db):
        for key, value in identity.items():
            set_meta(db, key, value)
        set_meta(db, keys.WATCHER_STARTED_AT, now)
        set_meta(db, keys.WATCHER_STATE, WatcherState.STARTING)
        db.conn.execute("INSERT INTO watcher_runs (pid, started_at, last_heartbeat_at, boot_at)"
                        " VALUES (?, ?, ?, ?)", (os.getpid(), now, now, _boot_at()))


def _boot_at() -> str | None:
    boot = clocks.boot_time()
    return None if boot is None else iso_of_epoch(boot)


def record_heartbeat(db, outcome: PollOutcome, identity: dict[str, str] | None = None) -> None:
    """The heartbeat: written after every poll, also a failed one.

    With `identity` (its meta keys, from lifelog.core.identity.identity_meta), the
    watcher re-asserts it when meta says otherwise (a hand edit, a restored
    backup): only the holder of the watcher lock polls, so it is the watcher,
    and the watchdog must not keep "restarting" a watcher it cannot see."""
    now = now_iso()
    with transaction(db):
        if identity is not None:
            for key, value in identity.items():
                if get_meta(db, key) != value:
                    log.warning("meta %s was %r; recording this watcher again", key, get_meta(db, key))
                    set_meta(db, key, value)
        set_meta(db, keys.WATCHER_HEARTBEAT_AT, now)
        readings = clocks.readings()
        if readings is not None:
            # Read by the watchdog to tell a sleeping machine from a hung watcher.
            set_meta(db, keys.WATCHER_HEARTBEAT_CLOCKS, clocks.format_clocks(readings))
        set_meta(db, keys.WATCHER_LAST_ERROR, outcome.error)
        if outcome.ok:
            set_meta(db, keys.WATCHER_LAST_POLL_OK_AT, now)
        newest = outcome.last_event_ts
        if outcome.devices:
            # The newest over every device, the ones away included (their meta).
            newest = fleet.record_devices(db, outcome.devices, now)
        if newest is not None and newest != get_meta(db, keys.WATCHER_LAST_EVENT_TS):
            set_meta(db, keys.WATCHER_LAST_EVENT_TS, newest)
        set_meta(db, keys.WATCHER_STATE, WatcherState.RUNNING)
        # The run's end so far. Only the holder of the watcher lock polls, so
        # the newest run is this process's own; one indexed row, updated in place.
        db.conn.execute("UPDATE watcher_runs SET last_heartbeat_at = ?"
                        " WHERE id = (SELECT max(id) FROM watcher_runs) AND pid = ?", (now, os.getpid()))


def poll_once(db, client: AWClient, settings: Settings, stop: threading.Event) -> PollOutcome:
    """One poll; every failure becomes an outcome, never an exception."""
    try:
        result = livepoll.poll(db, client, settings, should_stop=stop.is_set)
    except AWError as e:
        return PollOutcome(ok=False, error=str(e))
    except sqlite3.OperationalError as e:
        # Typically a user holding the write lock past the busy timeout.
        return PollOutcome(ok=False, error=f"database: {e}")
    except Exception as e:  # a bug must not kill ingestion; the log has the trace
        log.exception("poll failed")
        return PollOutcome(ok=False, error=f"{type(e).__name__}: {e}")
    return PollOutcome(ok=True, last_event_ts=result.last_event_ts,
                       catching_up=result.gaps_left > 0)


def poll_devices(db, links: list[fleet.Link], settings: Settings, stop: threading.Event) -> PollOutcome:
    """One poll of every device of the `devices` setting (lifelog.ingest.fleet).
    Never `catching_up`: a device's history is fetched by a thread of its own
    (lifelog.ingest.catchup), so the polls keep their interval."""
    polls = fleet.poll_devices(db, links, settings, should_stop=stop.is_set)
    ok, error = fleet.summary(polls)
    return PollOutcome(ok=ok, error=error, devices=tuple(polls))


def install_signal_handlers(stop: threading.Event) -> None:
    stop_on_signals(stop)
    if hasattr(signal, "SIGUSR1"):
        # The watchdog sends SIGUSR1 before it kills a hung watcher, so the
        # log shows where it hung.
        faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)


def run(settings: Settings, stop: threading.Event | None = None) -> int:
    """Run until `stop` is set (SIGTERM/SIGINT set it). Returns the exit code."""
    if stop is None:
        stop = threading.Event()
        install_signal_handlers(stop)
    db = open_db(settings.db_path)
    lock = ProcessLock(settings.db_path, "watcher").acquire()
    # With `devices` empty, the one AW of aw_url, polled as ever; with it,
    # every device, each through its own client kept across polls.
    several = bool(settings.devices)
    client = None if several else AWClient.from_settings(settings)
    links = fleet.links_of(settings) if several else []
    pid = os.getpid()
    try:
        identity = identity_meta(pid)
        record_start(db, identity)
        polled = (", ".join(f"{d.name} ({redact.redact_url(d.url)})" for d in settings.devices) if several
                  else settings.aw_url)
        log.info("watcher started (pid %d) on %s, polling %s every %g s",
                 pid, settings.db_path, polled, settings.poll_interval_seconds)
        previous_error = None
        device_errors: dict[str, str] = {}
        while not stop.is_set():
            began = time.monotonic()
            if client is not None:
                outcome = poll_once(db, client, settings, stop)
            else:
                outcome = poll_devices(db, links, settings, stop)
                _log_devices(outcome.devices, device_errors)
            if outcome.error != previous_error:
                if outcome.error:
                    log.warning("poll failed: %s", outcome.error)
                elif previous_error:
                    log.info("poll succeeded again")
                previous_error = outcome.error
            try:
                record_heartbeat(db, outcome, identity)
            except sqlite3.OperationalError as e:
                log.warning("could not write the heartbeat: %s", e)
            # With one AW, each poll spends a bounded time on history
            # (livepoll.GAP_BUDGET_SECONDS), so a big first ingest is many short
            # polls, each with its heartbeat. With devices, history has threads
            # of its own (lifelog.ingest.catchup) and polls keep their interval.
            if not outcome.catching_up:
                stop.wait(max(0.0, settings.poll_interval_seconds - (time.monotonic() - began)))
    finally:
        try:
            set_meta(db, keys.WATCHER_STATE, WatcherState.STOPPED)
        except sqlite3.Error as e:
            log.warning("could not record the stop: %s", e)
        if client is not None:
            client.close()
        _end_catch_ups(links, settings)
        for link in links:
            link.client.close()
        lock.release()
        db.conn.close()
        log.info("watcher stopped (pid %d)", pid)
    return 0


def _end_catch_ups(links: list[fleet.Link], settings: Settings) -> None:
    """Stop every catch-up after the page it is storing, and wait for it a
    bounded time (a page's fetch is bounded by aw_timeout_seconds, its
    write by the busy timeout); one still busy then ends with the process,
    its last page committed whole or not at all."""
    for link in links:
        link.stop_catching_up()
    deadline = time.monotonic() + settings.aw_timeout_seconds + 10.0
    for link in links:
        if link.catch_up is not None and not link.catch_up.join(max(0.0, deadline - time.monotonic())):
            log.warning("device %s: its catch-up did not stop in time; its last page is kept or fetched again",
                        link.name)


def _log_devices(polls: tuple[fleet.DevicePoll, ...], previous: dict[str, str]) -> None:
    """A device's failure is logged when it changes, not every poll."""
    for p in polls:
        if not p.polled or p.error == previous.get(p.name, ""):
            continue
        if p.error:
            log.warning("device %s: %s", p.name, p.error)
        else:
            log.info("device %s answers again", p.name)
        previous[p.name] = p.error
