"""The watchdog: read meta, decide one verdict, record it, act.

`decide()` is pure: a function of (meta snapshot, facts about the recorded
process, now, the clocks now, settings, what AW said). It never reads a
clock, a file or the network, so every boundary is tested without waiting;
the time maths it shares with `lifelog status` live in lifelog.checks.liveness.
`run_pass()` gathers those facts, calls it, records the verdict in one place
and acts; it holds a file lock while it does, so a cron pass and the daemon's
loop that decide together make one restart, not two. Capabilities that act
in each pass (sources) run inside the same lock (lifelog.wiring.PASS_STEPS).

Verdicts, first match wins (README "How the watchdog decides"):

    paused -> restart:not_running -> wait:startup_grace -> wait:resumed
    -> restart:heartbeat_stale -> hold:aw_unhealthy / hold:source_stale /
    restart:data_stale -> ok

and a restart whose backoff has not elapsed becomes wait:backoff.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from datetime import datetime
from typing import Any, NamedTuple

from lifelog.aw.buckets import AWView
from lifelog.checks.liveness import (
    CLOCK_SKEW,
    SLEEP_MIN,
    Freshness,
    age,
    clock_gap,
    heartbeat_age,
    in_window,
    judge_data,
    judge_devices,
    ts,
    watcher_started,
)
from lifelog.core import keys
from lifelog.core.devices import copy_of
from lifelog.core.errors import AlreadyRunning, LifelogError
from lifelog.core.identity import WatcherFacts, spawned_meta, watcher_facts
from lifelog.core.locks import ProcessLock
from lifelog.core.settings import Settings
from lifelog.core.timeutil import now_iso, to_iso, utcnow
from lifelog.core.verdicts import RESTART_VERDICTS, STOP_FIRST_VERDICTS, Verdict
from lifelog.db.database import BUSY_TIMEOUT_SECONDS, lock_wait, transaction
from lifelog.db.meta import read_meta, set_meta

log = logging.getLogger("lifelog.watchdog")

Meta = Mapping[str, "str | None"]

# Levels beyond this change nothing: 2**999 times any initial is past any cap.
MAX_LEVEL = 1000

__all__ = ["AWView", "CLOCK_SKEW", "Decision", "PassResult", "backoff_delay", "backoff_level",
           "decide", "run_pass", "pause", "resume"]


class Decision(NamedTuple):
    verdict: Verdict
    reason: str
    due: Verdict | None = None  # for wait:backoff, the restart that was due
    level: int = 0  # backoff level now (consecutive restarts in effect)
    needs_aw: bool = False  # reached the data rows without AW facts


def _count(text: str | None) -> int:
    """A count or level in meta: 0 when absent or not a whole number."""
    return keys.int_of(text) or 0


def _garbled(text: str | None) -> bool:
    """A value present but not a whole number (meta edited by hand)."""
    return text is not None and keys.int_of(text) is None


def backoff_delay(level: int, settings: Settings) -> float:
    """Wait after the `level`-th consecutive restart: 0, initial, 2x, 4x, ..., capped."""
    if level <= 0:
        return 0.0
    exponent = min(level - 1, MAX_LEVEL)
    return min(settings.restart_backoff_initial_seconds * math.pow(2, exponent),
               settings.restart_backoff_max_seconds)


def backoff_level(meta: Meta, now: datetime, settings: Settings, *,
                  level_key: str = keys.WATCHDOG_BACKOFF_LEVEL,
                  last_key: str = keys.WATCHDOG_LAST_RESTART_AT) -> int:
    """Consecutive restarts in effect: reset once the last restart is 2x max old.

    The watcher's by default; a source's restarts keep their own keys."""
    level = min(max(_count(meta.get(level_key)), 0), MAX_LEVEL)
    last = age(ts(meta, last_key), now)
    if last is None or last >= 2 * settings.restart_backoff_max_seconds:
        return 0
    return level


def backoff_remaining(meta: Meta, now: datetime, settings: Settings, *,
                      level_key: str = keys.WATCHDOG_BACKOFF_LEVEL,
                      last_key: str = keys.WATCHDOG_LAST_RESTART_AT) -> float:
    level = backoff_level(meta, now, settings, level_key=level_key, last_key=last_key)
    since = age(ts(meta, last_key), now)
    delay = backoff_delay(level, settings)
    if not in_window(since, delay):
        return 0.0
    return delay - max(since or 0.0, 0.0)


# -- the decision ------------------------------------------------------------------


def decide(meta: Meta, facts: WatcherFacts, now: datetime, settings: Settings, *,
           now_clocks: tuple[float, float] | None = None, aw: AWView | None = None,
           devices_aw: Mapping[str, AWView] | None = None) -> Decision:
    """One verdict with its reason. Pure; never raises on any meta content.

    With the `devices` setting the data rows are judged per device, against
    `devices_aw` (each device's bucket list, by name; None: not asked yet)."""
    level = backoff_level(meta, now, settings)

    def restart(verdict: Verdict, reason: str) -> Decision:
        remaining = backoff_remaining(meta, now, settings)
        if remaining > 0:
            # restart:* -> wait:backoff (the due restart waits its turn)
            return Decision(Verdict.WAIT_BACKOFF,
                            f"{verdict} due ({reason}); backoff {remaining:.1f} s left (level {level})",
                            due=verdict, level=level)
        return Decision(verdict, reason, level=level)

    # -> paused
    if (meta.get(keys.WATCHDOG_PAUSED) or "") not in ("", "0"):
        since = meta.get(keys.WATCHDOG_PAUSED_AT) or "?"
        return Decision(Verdict.PAUSED, f"paused by 'lifelog watchdog pause' since {since}", level=level)

    # -> restart:not_running
    if not facts.running:
        return restart(Verdict.RESTART_NOT_RUNNING, facts.reason or "no watcher process")

    # -> wait:startup_grace
    started_age = age(watcher_started(meta, facts, now), now)
    if in_window(started_age, settings.startup_grace_seconds):
        return Decision(Verdict.WAIT_STARTUP_GRACE,
                        f"watcher pid {facts.pid} started {max(started_age or 0, 0):.1f} s ago "
                        f"(grace {settings.startup_grace_seconds:g} s)", level=level)

    # -> wait:resumed (once per heartbeat the sleep happened after)
    gap = clock_gap(meta, now_clocks)
    clocks_text = meta.get(keys.WATCHER_HEARTBEAT_CLOCKS) or ""
    if gap is not None and gap[1] > SLEEP_MIN and meta.get(keys.WATCHDOG_RESUMED_FOR) != clocks_text:
        return Decision(Verdict.WAIT_RESUMED,
                        f"the machine slept {gap[1]:.0f} s since the watcher's latest heartbeat",
                        level=level)

    # -> restart:heartbeat_stale
    hb_age, how = heartbeat_age(meta, facts, now, now_clocks)
    if hb_age > settings.heartbeat_timeout_seconds:
        shown = "never" if math.isinf(hb_age) else f"{hb_age:.1f} s"
        return restart(Verdict.RESTART_HEARTBEAT_STALE,
                       f"{how}: {shown} > {settings.heartbeat_timeout_seconds:g} s")

    # -> the data rows
    threshold = settings.watcher_timestamp_threshold_minutes * 60.0
    data = (judge_devices(meta, now, threshold, settings.devices, devices_aw) if settings.devices
            else judge_data(meta, now, threshold, aw))
    if data.freshness is Freshness.FRESH:
        return Decision(Verdict.OK, f"heartbeat {hb_age:.1f} s old; {data.reason}", level=level)
    if data.freshness is Freshness.UNJUDGED:
        return Decision(Verdict.HOLD_AW_UNHEALTHY, data.reason, level=level, needs_aw=True)
    if data.freshness is Freshness.STALE:
        return restart(Verdict.RESTART_DATA_STALE, data.reason)
    return Decision(Verdict(str(data.freshness)), data.reason, level=level)


# -- gathering facts and acting ----------------------------------------------------


class PassResult(NamedTuple):
    verdict: Verdict
    reason: str
    action: str
    at: str
    actor: str = "cron"
    backoff_level: int = 0
    status: str = ""  # the overall level after the pass (set by lifelog.monitor)
    status_summary: str = ""
    aw: AWView | None = None  # AW's bucket list, when asked

    def to_json(self) -> dict:
        return {
            "at": self.at,
            "verdict": str(self.verdict),
            "reason": self.reason,
            "action": self.action,
            "actor": self.actor,
            "backoff_level": self.backoff_level,
            "status": self.status,
            "status_summary": self.status_summary,
        }

    def line(self) -> str:
        """`verdict: reason -> action [status LEVEL]`, as the watchdog prints it."""
        action = f" -> {self.action}" if self.action else ""
        return f"{self.verdict}: {self.reason}{action} [status {self.status}]"


def aw_view(settings: Settings) -> AWView:
    """Ask AW's bucket list how new its data is (only when LifeLog's looks stale)."""
    from lifelog.aw.buckets import aw_view_of
    from lifelog.aw.client import AWClient, AWError

    try:
        with AWClient.from_settings(settings) as client:
            listing = client.buckets()
    except AWError as e:
        return AWView(ok=False, error=str(e))
    except Exception as e:  # never let AW's oddities break the pass
        return AWView(ok=False, error=f"{type(e).__name__}: {e}")
    return aw_view_of(listing, settings.bucket_patterns)


def device_views(settings: Settings, meta: Meta) -> dict[str, AWView]:
    """Each device's bucket list, by name, each call bounded; aw-sync copies
    of a followed device left out, as the watcher leaves them (their newest
    events are that device's, stored under it)."""
    from lifelog.aw.buckets import aw_view_of
    from lifelog.aw.client import AWClient, AWError
    from lifelog.checks.devices import followed as followed_of

    followed = followed_of(meta, settings)
    views = {}
    for d in settings.devices:
        try:
            with AWClient(d.url, settings.aw_timeout_seconds, api_key=d.api_key) as client:
                listing = client.buckets()
        except AWError as e:
            views[d.name] = AWView(ok=False, error=str(e))
            continue
        except Exception as e:  # never let AW's oddities break the pass
            views[d.name] = AWView(ok=False, error=f"{type(e).__name__}: {e}")
            continue
        own = {b: v for b, v in listing.items() if copy_of(b, followed) is None}
        views[d.name] = aw_view_of(own, settings.bucket_patterns)
    return views


def pass_lock_wait(settings: Settings) -> float:
    """Longest a pass waits for another pass to finish acting."""
    return settings.stop_grace_seconds + 2 * settings.aw_timeout_seconds + 45.0


def write_wait(settings: Settings) -> float:
    """How long a pass's writes wait for the database's write lock: the busy
    timeout, but at most half the heartbeat timeout, so that a pass blocked
    by a hung writer fails in time for the next one to act on the hang."""
    return min(BUSY_TIMEOUT_SECONDS, settings.heartbeat_timeout_seconds / 2)


class PassBusy(LifelogError):
    """Another watchdog pass held the lock for longer than a pass can take."""

    exit_code = 1


class PassLock:
    """The watchdog's process lock on `<db>.watchdog.lock`, waited for boundedly.

    A file lock rather than a lease row: the OS drops it when its holder
    dies, even by SIGKILL, so there is no expiry to tune and no stale lease."""

    def __init__(self, settings: Settings):
        self.lock = ProcessLock(settings.db_path, "watchdog")
        self.wait = pass_lock_wait(settings)

    def __enter__(self):
        try:
            self.lock.acquire(wait=self.wait)
        except AlreadyRunning as e:
            raise PassBusy(f"{e} (a watchdog pass has held it over {self.wait:g} s)") from None
        return self

    def __exit__(self, *exc):
        self.lock.release()


class PassContext(NamedTuple):
    """What a pass knows, handed to the capabilities' pass steps."""

    now: datetime
    meta: Meta
    facts: WatcherFacts
    now_clocks: tuple[float, float] | None
    decision: Decision
    actor: str
    aw: AWView | None = None


def run_pass(db, settings: Settings, *, steps: Sequence[Callable[[Any, Settings, PassContext], None]],
             now: datetime | None = None, actor: str = "cron") -> PassResult:
    """One pass: lock, snapshot, decide, record, act; then each capability's
    pass step (`steps`: lifelog.wiring.PASS_STEPS), inside the same lock. The
    overall status is refreshed by the caller (lifelog.monitor.watchdog_pass)."""
    from lifelog.core import clocks

    with PassLock(settings):
        now = now or utcnow()
        meta = read_meta(db)
        facts = watcher_facts(meta)
        now_clocks = clocks.readings()
        decision = decide(meta, facts, now, settings, now_clocks=now_clocks)
        view = None
        if decision.needs_aw and settings.devices:
            views = device_views(settings, meta)
            view = views[settings.devices[0].name]  # the aw.* side describes the first device
            decision = decide(meta, facts, now, settings, now_clocks=now_clocks, devices_aw=views)
        elif decision.needs_aw:
            view = aw_view(settings)
            decision = decide(meta, facts, now, settings, now_clocks=now_clocks, aw=view)
        result = _act_and_record(db, settings, meta, facts, decision, now, actor)
        context = PassContext(now, meta, facts, now_clocks, decision, actor, view)
        for step in steps:
            try:
                step(db, settings, context)
            except LifelogError:
                raise
            except Exception:  # one capability's trouble must not stop the watchdog
                log.exception("watchdog pass step %s.%s failed", step.__module__, step.__qualname__)
    return result._replace(aw=view)


def _act_and_record(db, settings: Settings, meta: Meta, facts: WatcherFacts, decision: Decision,
                    now: datetime, actor: str) -> PassResult:
    """The one place a verdict is recorded (meta + watchdog_log) and acted on."""
    at = to_iso(now)
    verdict = decision.verdict
    action = ""
    old_pid = facts.pid if facts.running else keys.int_of(meta.get(keys.WATCHER_PID)) or None
    old_uptime = None
    level = decision.level
    replaced = 0
    with ExitStack() as acting:
        if verdict in RESTART_VERDICTS:
            level = min(decision.level + 1, MAX_LEVEL)
            if facts.created is not None:
                old_uptime = round(max(time.time() - facts.created, 0.0), 1)
            else:
                # Gone already: it ran at least from its start to its latest heartbeat.
                began, last = ts(meta, keys.WATCHER_STARTED_AT), ts(meta, keys.WATCHER_HEARTBEAT_AT)
                if began is not None and last is not None and last >= began:
                    old_uptime = round((last - began).total_seconds(), 1)
            # A watcher ran before: this replaces a failure, not a first start.
            replaced = int(bool(meta.get(keys.WATCHER_PID) or meta.get(keys.WATCHDOG_SPAWNED_PID)))
            # A live one is stopped before anything is written: a watcher hung
            # inside a transaction holds the write lock, and every write of this
            # pass would wait behind it until the busy timeout, pass after pass.
            stopped, stop_failed = _stop_old(db, settings, verdict, facts)
            # From here the pass acts: unless the old one would not stop, its
            # writes wait the full busy timeout. The short wait (write_wait)
            # is for a watcher hung inside a transaction, and that one is
            # stopped now; a restart left half recorded behind a user's lock
            # (a watcher started and not in meta) would have the next pass
            # start a second one beside it.
            if not stop_failed:
                acting.enter_context(lock_wait(db, BUSY_TIMEOUT_SECONDS))
            # Then the intent, before the start: a pass killed mid-restart still
            # counts for the backoff, so a crash cannot turn into a restart storm.
            with transaction(db):
                set_meta(db, keys.WATCHDOG_LAST_RESTART_AT, at)
                set_meta(db, keys.WATCHDOG_LAST_RESTART_REASON, str(verdict))
                set_meta(db, keys.WATCHDOG_RESTART_COUNT, _count(meta.get(keys.WATCHDOG_RESTART_COUNT)) + 1)
                set_meta(db, keys.WATCHDOG_BACKOFF_LEVEL, level)
            action = stopped if stop_failed else _start_new(db, settings, stopped)
        elif verdict is Verdict.WAIT_RESUMED:
            action = "none; judging again next pass"
        with transaction(db):
            set_meta(db, keys.WATCHDOG_CHECKED_AT, at)
            set_meta(db, keys.WATCHDOG_VERDICT, str(verdict))
            set_meta(db, keys.WATCHDOG_REASON, decision.reason)
            set_meta(db, keys.WATCHDOG_ACTOR, actor)
            if verdict is Verdict.WAIT_RESUMED:
                set_meta(db, keys.WATCHDOG_RESUMED_FOR, meta.get(keys.WATCHER_HEARTBEAT_CLOCKS) or "")
            backoff = meta.get(keys.WATCHDOG_BACKOFF_LEVEL)
            if verdict is Verdict.OK and (_count(backoff) != decision.level or _garbled(backoff)):
                # The backoff reset: no restart for twice restart_backoff_max_seconds
                # (or a level edited into a word, read as 0: written back as a number).
                set_meta(db, keys.WATCHDOG_BACKOFF_LEVEL, decision.level)
            if verdict not in RESTART_VERDICTS and _garbled(meta.get(keys.WATCHDOG_RESTART_COUNT)):
                # Edited into a word: a restart would count it from 0, so it is 0
                # now, a number again without waiting for a restart.
                set_meta(db, keys.WATCHDOG_RESTART_COUNT, 0)
            if verdict is not Verdict.OK:
                db.conn.execute(
                    "INSERT INTO watchdog_log (at, verdict, reason, action, actor, old_pid,"
                    " old_uptime_seconds, backoff_level, replaced)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (at, str(verdict), decision.reason, action, actor,
                     old_pid if verdict in RESTART_VERDICTS else None, old_uptime, level, replaced),
                )
    if verdict in RESTART_VERDICTS:
        log.warning("%s: %s; %s", verdict, decision.reason, action)
    elif verdict is not Verdict.OK:
        log.info("%s: %s", verdict, decision.reason)
    return PassResult(verdict, decision.reason, action, at, actor, level)


def _stop_old(db, settings: Settings, verdict: Verdict, facts: WatcherFacts) -> tuple[str, bool]:
    """Stop the old watcher when the verdict says so and it is ours and alive:
    (what was done, "" when nothing; True when it would not stop)."""
    from lifelog.checks import procs

    if verdict not in STOP_FIRST_VERDICTS or not facts.running:
        return "", False
    try:
        stopped = procs.stop_watcher(db, settings, dump_stack=verdict is Verdict.RESTART_HEARTBEAT_STALE)
    except LifelogError as e:
        return f"stop failed: {e}", True
    return (f"stopped pid {facts.pid}" if stopped else f"pid {facts.pid} already gone"), False


def _start_new(db, settings: Settings, stopped: str) -> str:
    """Start a watcher (never beside one that would not stop). Returns the action text."""
    from lifelog.checks import procs

    parts = [stopped] if stopped else []
    try:
        pid = procs.start_watcher(settings)
    except LifelogError as e:
        return "; ".join(parts + [f"start failed: {e}"])
    record_spawned(db, pid)
    how = "ran watcher_restart_command" if settings.restart_command_argv else "started lifelog watcher"
    parts.append(f"{how} (pid {pid})")
    return "; ".join(parts)


def record_spawned(db, pid: int) -> None:
    """A watcher was just started (by a pass, or by the daemon at launch):
    record its identity so that it gets its startup grace, not a second start."""
    with transaction(db):
        set_meta(db, keys.WATCHDOG_LAST_START_AT, now_iso())
        for key, value in spawned_meta(pid).items():
            set_meta(db, key, value)


# -- pause / resume / loop ---------------------------------------------------------


def pause(db) -> None:
    with transaction(db):
        set_meta(db, keys.WATCHDOG_PAUSED, "1")
        set_meta(db, keys.WATCHDOG_PAUSED_AT, now_iso())


def resume(db) -> None:
    with transaction(db):
        set_meta(db, keys.WATCHDOG_PAUSED, "0")
        set_meta(db, keys.WATCHDOG_PAUSED_AT, "")
