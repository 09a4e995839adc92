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
from lifelog.core import clocks, keys
from lifelog.core.identity import identity_meta
from lifelog.core.locks import ProcessLock
from lifelog.core.settings import Settings
from lifelog.core.signals import stop_on_signals
from lifelog.core.timeutil import iso_of_epoch, now_iso
from lifelog.core.verdicts import WatcherState
from lifelog.db.database import open_db, transaction
from lifelog.db.meta import get_meta, set_meta

log = logging.getLogger("lifelog.watcher")


@dataclass(frozen=True)
class PollOutcome:
    ok: bool
    error: str = ""
    last_event_ts: str | None = None  # end of the newest stored event, if known
    catching_up: bool = False  # history left to fetch: poll again without waiting


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
        if outcome.last_event_ts is not None and outcome.last_event_ts != get_meta(
            db, keys.WATCHER_LAST_EVENT_TS
        ):
            set_meta(db, keys.WATCHER_LAST_EVENT_TS, outcome.last_event_ts)
        set_meta(db, keys.WATCHER_STATE, WatcherState.RUNNING)
        # The run's end so far. Only the holder of the watcher lock polls, so
        # the newest run is this process's own; one indexed row, updated in place.
        db.conn.execute("UPDATE watcher_runs SET last_heartbeat_at = ?"
                        " WHERE id = (SELECT max(id) FROM watcher_runs) AND pid = ?", (now, os.getpid()))


def poll_once(db, client: AWClient, settings: Settings, stop: threading.Event) -> PollOutcome:
    """One poll; every failure becomes an outcome, never an exception."""
    from lifelog.ingest import livepoll

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
    client = AWClient.from_settings(settings)
    pid = os.getpid()
    try:
        identity = identity_meta(pid)
        record_start(db, identity)
        log.info("watcher started (pid %d) on %s, polling %s every %g s",
                 pid, settings.db_path, settings.aw_url, settings.poll_interval_seconds)
        previous_error = None
        while not stop.is_set():
            began = time.monotonic()
            outcome = poll_once(db, client, settings, stop)
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
            # Each poll spends a bounded time on history (livepoll.GAP_BUDGET_SECONDS),
            # so a big first ingest is many short polls, each with its heartbeat.
            if not outcome.catching_up:
                stop.wait(max(0.0, settings.poll_interval_seconds - (time.monotonic() - began)))
    finally:
        try:
            set_meta(db, keys.WATCHER_STATE, WatcherState.STOPPED)
        except sqlite3.Error as e:
            log.warning("could not record the stop: %s", e)
        client.close()
        lock.release()
        db.conn.close()
        log.info("watcher stopped (pid %d)", pid)
    return 0
