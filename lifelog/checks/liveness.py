"""Pure time maths over recorded timestamps: how old is the watcher's
heartbeat, did the machine sleep, is the data fresh.

Shared by the watchdog's `decide()` and by `lifelog status`, so both judge
the same facts the same way. Nothing here reads a clock, a file or the
network: `now` and the clocks' readings are passed in.

Clock trouble is handled, not raised: a timestamp that is missing or
malformed counts as absent; one in the future by more than CLOCK_SKEW (the
wall clock stepped back since it was written) neither freezes a window for
the size of the step, nor makes a hung watcher look fresh.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

from lifelog.aw.buckets import AWView
from lifelog.core import keys
from lifelog.core.clocks import parse_clocks
from lifelog.core.devices import Device, Expect, duplicate_ids
from lifelog.core.identity import WatcherFacts
from lifelog.core.timeutil import try_parse_iso

Meta = Mapping[str, "str | None"]

# Timestamps up to this far in the future count as "now" (writers' clocks are
# the same clock, read a moment apart); beyond it the clock stepped back.
CLOCK_SKEW = 1.0
# The machine counts as having slept when the since-boot clock ran ahead of
# the awake clock by more than this since the heartbeat.
SLEEP_MIN = 2.0
# AW's newest event must end this much after LifeLog's newest to count as
# newer (AW rounds to milliseconds; rust reports nanoseconds).
NEWER_MARGIN = 1.0


def ts(meta: Meta, key: str) -> datetime | None:
    value = meta.get(key)
    return try_parse_iso(value) if isinstance(value, str) else None


def age(when: datetime | None, now: datetime) -> float | None:
    return None if when is None else (now - when).total_seconds()


def in_window(age_seconds: float | None, window: float) -> bool:
    """True when a timestamp `age_seconds` old is inside a window of that length.

    Missing, or further in the future than CLOCK_SKEW (clock stepped back):
    outside, so a window never lasts as long as a clock step."""
    return age_seconds is not None and -CLOCK_SKEW <= age_seconds < window


# -- sleep ----------------------------------------------------------------------------


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


# -- the watcher's heartbeat ---------------------------------------------------------------


def watcher_started(meta: Meta, facts: WatcherFacts, now: datetime) -> datetime | None:
    """When the current watcher process started, as best meta knows.

    A start time further in the future than CLOCK_SKEW is ignored: the clock
    stepped back since, and it must not stretch the grace by the step."""
    times = [ts(meta, keys.WATCHDOG_LAST_START_AT)]
    if facts.source == "recorded":
        times.append(ts(meta, keys.WATCHER_STARTED_AT))
    known = [t for t in times if t is not None and (age(t, now) or 0.0) >= -CLOCK_SKEW]
    return max(known) if known else None


def heartbeat_age(meta: Meta, facts: WatcherFacts, now: datetime,
                  now_clocks: tuple[float, float] | None) -> tuple[float, str]:
    """Seconds the current watcher has gone without a heartbeat, and how told.

    Counted from its start when its latest heartbeat is older (a new process
    gets a full timeout for its first poll). After the machine slept, only
    awake time counts. A heartbeat from the future (clock stepped back) is
    judged by the clocks, or counts as stale when they are not there."""
    hb = ts(meta, keys.WATCHER_HEARTBEAT_AT)
    started = watcher_started(meta, facts, now)
    gap = clock_gap(meta, now_clocks)
    if hb is None:
        since_start = age(started, now)
        if since_start is None or since_start < -CLOCK_SKEW:
            return math.inf, "no heartbeat recorded"
        return max(since_start, 0.0), "no heartbeat since it started"
    wall = age(hb, now) or 0.0
    if started is not None and hb < started and -CLOCK_SKEW <= (age(started, now) or 0.0):
        wall = min(wall, (age(started, now) or 0.0))
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


class WatcherDown(NamedTuple):
    running: bool  # False: no process; True: a process whose heartbeat is stale
    detail: str    # the process check's reason, or how the heartbeat was aged and its age


def watcher_down(meta: Meta, facts: WatcherFacts, now: datetime, now_clocks: tuple[float, float] | None,
                 timeout: float) -> WatcherDown | None:
    """Why LifeLog's watcher cannot be counted on now; None while it runs and
    heartbeats. The status's watcher component and the sources' judgment
    (which never calls a source silent while LifeLog lags) both ask this."""
    if not facts.running:
        return WatcherDown(False, facts.reason)
    hb_age, how = heartbeat_age(meta, facts, now, now_clocks)
    if hb_age > timeout:
        return WatcherDown(True, f"{how}: {'none' if math.isinf(hb_age) else f'{hb_age:.0f} s'}")
    return None


# -- data freshness -------------------------------------------------------------------------


class Freshness(enum.StrEnum):
    """How LifeLog's newest event compares with the threshold and with AW.
    The values are the watchdog verdicts they lead to (README "How the watchdog decides")."""

    FRESH = "ok"
    HOLD_AW_UNHEALTHY = "hold:aw_unhealthy"  # stale, and AW does not answer
    HOLD_SOURCE_STALE = "hold:source_stale"  # stale, and AW has nothing newer either
    STALE = "restart:data_stale"  # stale while AW holds newer events
    UNJUDGED = "unjudged"  # stale, and AW was not asked


class DataJudgement(NamedTuple):
    freshness: Freshness
    reason: str


def judge_data(meta: Meta, now: datetime, threshold_seconds: float, aw: AWView | None) -> DataJudgement:
    """Is the newest stored event fresh, and if not, whose fault is it?

    Before the watcher has stored any event, data is stale only when AW holds
    events and the watcher has been running longer than the threshold. Events
    in the future count as fresh (AW accepts them)."""
    last = ts(meta, keys.WATCHER_LAST_EVENT_TS)
    if last is not None:
        data_age = age(last, now) or 0.0
        if data_age <= threshold_seconds:
            return DataJudgement(Freshness.FRESH, f"newest event {data_age:.0f} s old")
        stale = f"newest event stored {data_age / 60:.1f} min ago (> {threshold_seconds / 60:g} min)"
    else:
        running_for = age(ts(meta, keys.WATCHER_STARTED_AT), now)
        if running_for is None or running_for <= threshold_seconds:
            return DataJudgement(Freshness.FRESH, "no event stored yet")
        stale = f"no event stored in {running_for / 60:.1f} min of running"
    if aw is None:
        return DataJudgement(Freshness.UNJUDGED, f"{stale}; AW not consulted")
    if not aw.ok:
        return DataJudgement(Freshness.HOLD_AW_UNHEALTHY, f"{stale}; AW: {aw.error or 'no answer'}")
    if last is None:
        if not aw.has_events:
            return DataJudgement(Freshness.FRESH, "AW holds no events yet")
        return DataJudgement(Freshness.STALE, f"{stale} while AW holds events")
    if aw.newest_end is None or aw.newest_end <= last + timedelta(seconds=NEWER_MARGIN):
        return DataJudgement(Freshness.HOLD_SOURCE_STALE,
                             f"{stale}; AW has nothing newer (its watchers stopped?)")
    return DataJudgement(Freshness.STALE, f"{stale} while AW holds events up to {aw.newest_end.isoformat()}")


def judge_devices(meta: Meta, now: datetime, threshold_seconds: float, devices: Sequence[Device],
                  views: Mapping[str, AWView] | None) -> DataJudgement:
    """The data rows per device (SPEC section 14): each device's newest
    stored event (`device.<name>.last_event_ts`) against its own AW.

    STALE (a restart) when any device that answers holds events newer than
    LifeLog has for it, past the threshold; a device that does not answer
    never causes one (an `always` one holds, a `sometimes` one is away). A
    device the watcher's latest poll did not reach is its next poll's
    business, not a restart; a clone refused for its device_id is skipped
    (nothing of it is stored, by design). `views` None: AW not asked yet."""
    refused = duplicate_ids((d.name, meta.get(keys.device_key(d.name, "device_id"))) for d in devices)
    judged: list[tuple[str, DataJudgement]] = []
    for device in devices:
        if device.name in refused:
            continue
        own = {keys.WATCHER_LAST_EVENT_TS: meta.get(keys.device_key(device.name, "last_event_ts")),
               keys.WATCHER_STARTED_AT: meta.get(keys.WATCHER_STARTED_AT)}
        view = None if views is None else views.get(device.name, AWView(ok=False, error="not asked"))
        if view is not None and view.ok and meta.get(keys.device_key(device.name, "reachable")) != "yes":
            view = AWView(ok=False, error="the watcher's latest poll did not reach it")
        data = judge_data(own, now, threshold_seconds, view)
        if data.freshness is Freshness.HOLD_AW_UNHEALTHY and device.expect is Expect.SOMETIMES:
            data = DataJudgement(Freshness.FRESH, f"{data.reason} (a sometimes device: away)")
        judged.append((device.name, data))
    for worst in (Freshness.STALE, Freshness.UNJUDGED, Freshness.HOLD_SOURCE_STALE, Freshness.HOLD_AW_UNHEALTHY):
        hit = [f"{name}: {d.reason}" for name, d in judged if d.freshness is worst]
        if hit:
            return DataJudgement(worst, "; ".join(hit))
    return DataJudgement(Freshness.FRESH, "; ".join(f"{name}: {d.reason}" for name, d in judged)
                         or "no device to judge")
