"""The watchdog: read meta, decide one verdict, record it, act.

`decide()` is pure: a function of (meta snapshot, facts about the recorded
process, now, the clocks now, settings, what AW said). It never reads a
clock, a file or the network, so every boundary is tested without waiting.
`run_pass()` gathers those facts, calls it, records the verdict in one place
and acts; it holds a file lock while it does, so a cron pass and the daemon's
loop that decide together make one restart, not two.

Verdicts, first match wins (SPEC section 5):

    paused -> restart:not_running -> wait:startup_grace -> wait:resumed
    -> restart:heartbeat_stale -> hold:aw_unhealthy / hold:source_stale /
    restart:data_stale -> ok

and a restart whose backoff has not elapsed becomes wait:backoff.

Clock trouble is handled, not raised: a timestamp that is missing or
malformed counts as absent; one in the future by more than CLOCK_SKEW (the
wall clock stepped back since it was written) neither freezes a grace or
backoff window for the size of the step, nor makes a hung watcher look fresh.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Mapping

from lifelog import keys
from lifelog.errors import LifelogError
from lifelog.procs import WatcherFacts
from lifelog.settings import Settings
from lifelog.timeutil import try_parse_iso, utcnow
from lifelog.verdicts import RESTART_VERDICTS, STOP_FIRST_VERDICTS, Verdict

log = logging.getLogger("lifelog.watchdog")

Meta = Mapping[str, "str | None"]

# Timestamps up to this far in the future count as "now" (writers' clocks are
# the same clock, read a moment apart); beyond it the clock stepped back.
CLOCK_SKEW = 1.0
# The machine counts as having slept when CLOCK_BOOTTIME ran ahead of
# CLOCK_MONOTONIC by more than this since the heartbeat.
SLEEP_MIN = 2.0
# AW's newest event must end this much after LifeLog's newest to count as
# newer (AW rounds to milliseconds; rust reports nanoseconds).
NEWER_MARGIN = 1.0
# Levels beyond this change nothing: 2**999 times any initial is past any cap.
MAX_LEVEL = 1000


@dataclass(frozen=True)
class AWView:
    """What AW's bucket list said about the selected buckets (for data rows)."""

    ok: bool  # AW answered /api/0/buckets/ properly
    error: str = ""
    newest_end: datetime | None = None  # max of the selected buckets' hints
    has_events: bool = False


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str
    due: Verdict | None = None  # for wait:backoff, the restart that was due
    level: int = 0  # backoff level now (consecutive restarts in effect)
    needs_aw: bool = False  # reached the data rows without AW facts


# -- small pure helpers ----------------------------------------------------------


def _ts(meta: Meta, key: str) -> datetime | None:
    value = meta.get(key)
    return try_parse_iso(value) if isinstance(value, str) else None


def _age(ts: datetime | None, now: datetime) -> float | None:
    return None if ts is None else (now - ts).total_seconds()


def _in_window(age: float | None, window: float) -> bool:
    """True when a timestamp `age` seconds old is inside a window of that length.

    Missing, or further in the future than CLOCK_SKEW (clock stepped back):
    outside, so a window never lasts as long as a clock step."""
    return age is not None and -CLOCK_SKEW <= age < window


def _int(text: str | None, default: int = 0) -> int:
    try:
        return int(str(text).strip())
    except (TypeError, ValueError):
        return default


def backoff_delay(level: int, settings: Settings) -> float:
    """Wait after the `level`-th consecutive restart: 0, initial, 2x, 4x, ..., capped."""
    if level <= 0:
        return 0.0
    exponent = min(level - 1, MAX_LEVEL)
    return min(settings.restart_backoff_initial_seconds * math.pow(2, exponent),
               settings.restart_backoff_max_seconds)


def backoff_level(meta: Meta, now: datetime, settings: Settings) -> int:
    """Consecutive restarts in effect: reset once the last restart is 2x max old."""
    level = min(max(_int(meta.get(keys.WATCHDOG_BACKOFF_LEVEL)), 0), MAX_LEVEL)
    last = _age(_ts(meta, keys.WATCHDOG_LAST_RESTART_AT), now)
    if last is None or last >= 2 * settings.restart_backoff_max_seconds:
        return 0
    return level


def backoff_remaining(meta: Meta, now: datetime, settings: Settings) -> float:
    level = backoff_level(meta, now, settings)
    age = _age(_ts(meta, keys.WATCHDOG_LAST_RESTART_AT), now)
    delay = backoff_delay(level, settings)
    if not _in_window(age, delay):
        return 0.0
    return delay - max(age or 0.0, 0.0)


def parse_clocks(text: str | None) -> tuple[float, float] | None:
    try:
        awake, since_boot = (float(x) for x in str(text).split())
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(awake) and math.isfinite(since_boot)):
        return None
    return awake, since_boot


def clock_gap(meta: Meta, now_clocks: tuple[float, float] | None) -> tuple[float, float] | None:
    """(awake seconds, slept seconds) since the watcher's heartbeat, by the clocks.

    None when either reading is missing or they cannot be compared (another
    boot: the clocks went backwards)."""
    then = parse_clocks(meta.get(keys.WATCHER_HEARTBEAT_CLOCKS))
    if then is None or now_clocks is None:
        return None
    awake = now_clocks[0] - then[0]
    total = now_clocks[1] - then[1]
    if awake < 0 or total < 0 or not (math.isfinite(awake) and math.isfinite(total)):
        return None
    return awake, max(total - awake, 0.0)


def _started(meta: Meta, facts: WatcherFacts, now: datetime) -> datetime | None:
    """When the current watcher process started, as best meta knows.

    A start time further in the future than CLOCK_SKEW is ignored: the clock
    stepped back since, and it must not stretch the grace by the step."""
    times = [_ts(meta, keys.WATCHDOG_LAST_START_AT)]
    if facts.source == "recorded":
        times.append(_ts(meta, keys.WATCHER_STARTED_AT))
    known = [t for t in times if t is not None and (_age(t, now) or 0.0) >= -CLOCK_SKEW]
    return max(known) if known else None


def heartbeat_age(meta: Meta, facts: WatcherFacts, now: datetime,
                  now_clocks: tuple[float, float] | None) -> tuple[float, str]:
    """Seconds the current watcher has gone without a heartbeat, and how told.

    Counted from its start when its latest heartbeat is older (a new process
    gets a full timeout for its first poll). After the machine slept, only
    awake time counts. A heartbeat from the future (clock stepped back) is
    judged by the clocks, or counts as stale when they are not there."""
    hb = _ts(meta, keys.WATCHER_HEARTBEAT_AT)
    started = _started(meta, facts, now)
    gap = clock_gap(meta, now_clocks)
    if hb is None:
        age = _age(started, now)
        if age is None or age < -CLOCK_SKEW:
            return math.inf, "no heartbeat recorded"
        return max(age, 0.0), "no heartbeat since it started"
    wall = _age(hb, now) or 0.0
    if started is not None and hb < started and -CLOCK_SKEW <= (_age(started, now) or 0.0):
        wall = min(wall, (_age(started, now) or 0.0))
    if gap is not None and gap[1] > SLEEP_MIN:
        return min(wall, gap[0]) if wall >= 0 else gap[0], "awake time since the heartbeat"
    if wall < -CLOCK_SKEW:
        if gap is not None:
            return gap[0], "heartbeat in the future; age by the monotonic clock"
        return math.inf, "heartbeat is in the future (clock stepped back?)"
    if gap is not None and gap[0] < wall - CLOCK_SKEW:
        # The wall clock stepped forward since the heartbeat (NTP, a manual
        # change): the monotonic clock, written with it, knows its true age.
        return gap[0], "heartbeat age by the monotonic clock (the wall clock stepped forward)"
    return max(wall, 0.0), "heartbeat age"


# -- the decision ------------------------------------------------------------------


def decide(meta: Meta, facts: WatcherFacts, now: datetime, settings: Settings, *,
           now_clocks: tuple[float, float] | None = None, aw: AWView | None = None) -> Decision:
    """One verdict with its reason. Pure; never raises on any meta content."""
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
    started = _started(meta, facts, now)
    started_age = _age(started, now)
    if _in_window(started_age, settings.startup_grace_seconds):
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
    age, how = heartbeat_age(meta, facts, now, now_clocks)
    if age > settings.heartbeat_timeout_seconds:
        shown = "never" if math.isinf(age) else f"{age:.1f} s"
        return restart(Verdict.RESTART_HEARTBEAT_STALE,
                       f"{how}: {shown} > {settings.heartbeat_timeout_seconds:g} s")

    # -> the data rows
    threshold = settings.watcher_timestamp_threshold_minutes * 60.0
    last = _ts(meta, keys.WATCHER_LAST_EVENT_TS)
    if last is not None:
        data_age = _age(last, now) or 0.0
        if data_age <= threshold:  # includes events in the future: AW accepts them
            return Decision(Verdict.OK, f"heartbeat {age:.1f} s old; newest event {data_age:.0f} s old",
                            level=level)
        stale_reason = f"newest event stored {data_age / 60:.1f} min ago (> {threshold / 60:g} min)"
    else:
        running_for = _age(_ts(meta, keys.WATCHER_STARTED_AT), now)
        if running_for is None or running_for <= threshold:
            return Decision(Verdict.OK, f"heartbeat {age:.1f} s old; no event stored yet", level=level)
        stale_reason = f"no event stored in {running_for / 60:.1f} min of running"
    if aw is None:
        return Decision(Verdict.HOLD_AW_UNHEALTHY, f"{stale_reason}; AW not consulted",
                        level=level, needs_aw=True)
    if not aw.ok:
        return Decision(Verdict.HOLD_AW_UNHEALTHY, f"{stale_reason}; AW: {aw.error or 'no answer'}",
                        level=level)
    if last is None:
        if not aw.has_events:
            return Decision(Verdict.OK, f"heartbeat {age:.1f} s old; AW holds no events yet", level=level)
        return restart(Verdict.RESTART_DATA_STALE, f"{stale_reason} while AW holds events")
    if aw.newest_end is None or aw.newest_end <= last + timedelta(seconds=NEWER_MARGIN):
        return Decision(Verdict.HOLD_SOURCE_STALE,
                        f"{stale_reason}; AW has nothing newer (its watchers stopped?)", level=level)
    return restart(Verdict.RESTART_DATA_STALE,
                   f"{stale_reason} while AW holds events up to {aw.newest_end.isoformat()}")


# -- gathering facts and acting ----------------------------------------------------


@dataclass(frozen=True)
class PassResult:
    verdict: Verdict
    reason: str
    action: str
    at: str
    actor: str = "cron"
    backoff_level: int = 0
    status: str = ""
    status_summary: str = ""
    extra: dict = field(default_factory=dict)

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


def aw_view(settings: Settings) -> AWView:
    """Ask AW's bucket list how new its data is (only when LifeLog's looks stale)."""
    from lifelog.aw import AWClient, AWError
    from lifelog.buckets import newest_end_hint, selected

    try:
        with AWClient.from_settings(settings) as client:
            buckets = client.buckets()
    except AWError as e:
        return AWView(ok=False, error=str(e))
    except Exception as e:  # never let AW's oddities break the pass
        return AWView(ok=False, error=f"{type(e).__name__}: {e}")
    hints = [newest_end_hint(buckets[b]) for b in selected(buckets, settings.bucket_patterns)
             if isinstance(buckets[b], dict)]
    known = [h for h in hints if h is not None]
    return AWView(ok=True, newest_end=max(known) if known else None, has_events=bool(known))


def pass_lock_wait(settings: Settings) -> float:
    """Longest a pass waits for another pass to finish acting."""
    return settings.stop_grace_seconds + 2 * settings.aw_timeout_seconds + 45.0


class PassBusy(LifelogError):
    """Another watchdog pass held the lock for longer than a pass can take."""

    exit_code = 1


class PassLock:
    """flock on `<db>.watchdog.lock`, waited for boundedly.

    A file lock rather than a lease row: the kernel drops it when its holder
    dies, even by SIGKILL, so there is no expiry to tune and no stale lease."""

    def __init__(self, settings: Settings):
        from lifelog.locks import ProcessLock

        self.lock = ProcessLock(settings.db_path, "watchdog")
        self.wait = pass_lock_wait(settings)

    def __enter__(self):
        from lifelog.errors import AlreadyRunning

        deadline = time.monotonic() + self.wait
        while True:
            try:
                self.lock.acquire()
                return self
            except AlreadyRunning as e:
                if time.monotonic() >= deadline:
                    raise PassBusy(f"{e} (a watchdog pass has held it over {self.wait:g} s)") from None
                time.sleep(0.05)

    def __exit__(self, *exc):
        self.lock.release()


def run_pass(db, settings: Settings, *, now: datetime | None = None, actor: str = "cron") -> PassResult:
    """One pass: lock, snapshot, decide, record, act; then the overall status."""
    from lifelog import alerts, clocks, procs, status

    with PassLock(settings):
        now = now or utcnow()
        meta = procs.read_meta(db)
        facts = procs.which_watcher(meta, *procs.live_facts_for(meta))
        now_clocks = clocks.readings()
        decision = decide(meta, facts, now, settings, now_clocks=now_clocks)
        if decision.needs_aw:
            decision = decide(meta, facts, now, settings, now_clocks=now_clocks, aw=aw_view(settings))
        result = _act_and_record(db, settings, meta, facts, decision, now, actor)
    report = status.overall(db, settings, utcnow())
    alerts.notify_if_changed(db, settings, report)
    return PassResult(**{**result.__dict__, "status": report.level.name, "status_summary": report.summary})


def _act_and_record(db, settings: Settings, meta: Meta, facts: WatcherFacts, decision: Decision,
                    now: datetime, actor: str) -> PassResult:
    """The one place a verdict is recorded (meta + watchdog_log) and acted on."""
    from lifelog.db import set_meta, transaction
    from lifelog.timeutil import to_iso

    at = to_iso(now)
    verdict = decision.verdict
    action = ""
    old_pid = facts.pid if facts.running else _int(meta.get(keys.WATCHER_PID), 0) or None
    old_uptime = None
    level = decision.level
    replaced = 0
    if verdict in RESTART_VERDICTS:
        level = min(decision.level + 1, MAX_LEVEL)
        if facts.created is not None:
            old_uptime = round(max(time.time() - facts.created, 0.0), 1)
        else:
            # Gone already: it ran at least from its start to its latest heartbeat.
            began, last = _ts(meta, keys.WATCHER_STARTED_AT), _ts(meta, keys.WATCHER_HEARTBEAT_AT)
            if began is not None and last is not None and last >= began:
                old_uptime = round((last - began).total_seconds(), 1)
        # A watcher ran before: this replaces a failure, not a first start.
        replaced = int(bool(meta.get(keys.WATCHER_PID) or meta.get(keys.WATCHDOG_SPAWNED_PID)))
        # Record the intent first: a pass killed mid-restart still counts
        # for the backoff, so a crash cannot turn into a restart storm.
        with transaction(db):
            set_meta(db, keys.WATCHDOG_LAST_RESTART_AT, at)
            set_meta(db, keys.WATCHDOG_LAST_RESTART_REASON, str(verdict))
            set_meta(db, keys.WATCHDOG_RESTART_COUNT, _int(meta.get(keys.WATCHDOG_RESTART_COUNT)) + 1)
            set_meta(db, keys.WATCHDOG_BACKOFF_LEVEL, level)
        action = _restart(db, settings, verdict, facts)
    elif verdict is Verdict.WAIT_RESUMED:
        action = "none; judging again next pass"
    with transaction(db):
        set_meta(db, keys.WATCHDOG_CHECKED_AT, at)
        set_meta(db, keys.WATCHDOG_VERDICT, str(verdict))
        set_meta(db, keys.WATCHDOG_REASON, decision.reason)
        set_meta(db, keys.WATCHDOG_ACTOR, actor)
        if verdict is Verdict.WAIT_RESUMED:
            set_meta(db, keys.WATCHDOG_RESUMED_FOR, meta.get(keys.WATCHER_HEARTBEAT_CLOCKS) or "")
        if verdict is Verdict.OK and _int(meta.get(keys.WATCHDOG_BACKOFF_LEVEL)) != decision.level:
            # The backoff reset: no restart for twice restart_backoff_max_seconds.
            set_meta(db, keys.WATCHDOG_BACKOFF_LEVEL, decision.level)
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


def _restart(db, settings: Settings, verdict: Verdict, facts: WatcherFacts) -> str:
    """Stop the old watcher (if it is ours and alive), then start one. Returns the action text."""
    from lifelog import procs
    from lifelog.errors import LifelogError

    parts = []
    if verdict in STOP_FIRST_VERDICTS and facts.running:
        try:
            stopped = procs.stop_watcher(db, settings, dump_stack=verdict is Verdict.RESTART_HEARTBEAT_STALE)
        except LifelogError as e:
            # Never start a second watcher beside one that would not die.
            return f"stop failed: {e}"
        parts.append(f"stopped pid {facts.pid}" if stopped else f"pid {facts.pid} already gone")
    try:
        pid = procs.start_watcher(settings)
    except LifelogError as e:
        return "; ".join(parts + [f"start failed: {e}"])
    procs.record_spawned(db, pid)
    how = "ran watcher_restart_command" if settings.restart_command_argv else "started lifelog watcher"
    parts.append(f"{how} (pid {pid})")
    return "; ".join(parts)


def print_pass(result: PassResult, as_json: bool) -> None:
    """One line per pass on stdout: JSON, or `verdict: reason -> action [status]`."""
    import json
    import sys

    if as_json:
        sys.stdout.write(json.dumps(result.to_json()) + "\n")
    else:
        action = f" -> {result.action}" if result.action else ""
        sys.stdout.write(f"{result.verdict}: {result.reason}{action} [status {result.status}]\n")
    sys.stdout.flush()


# -- pause / resume / loop ---------------------------------------------------------


def pause(db) -> None:
    from lifelog.db import set_meta, transaction
    from lifelog.timeutil import now_iso

    with transaction(db):
        set_meta(db, keys.WATCHDOG_PAUSED, "1")
        set_meta(db, keys.WATCHDOG_PAUSED_AT, now_iso())


def resume(db) -> None:
    from lifelog.db import set_meta, transaction

    with transaction(db):
        set_meta(db, keys.WATCHDOG_PAUSED, "0")
        set_meta(db, keys.WATCHDOG_PAUSED_AT, "")


def loop(db, settings: Settings, on_pass, stop=None, actor: str = "loop") -> None:
    """A pass every watchdog_interval_seconds until `stop` is set.

    A pass that raises is logged and the loop goes on: the watchdog must not
    die of the very trouble it is there to report."""
    import threading

    stop = stop or threading.Event()
    while not stop.is_set():
        began = time.monotonic()
        try:
            on_pass(run_pass(db, settings, actor=actor))
        except Exception:
            log.exception("watchdog pass failed; trying again next interval")
        stop.wait(max(0.0, settings.watchdog_interval_seconds - (time.monotonic() - began)))
