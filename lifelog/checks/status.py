"""One verdict over everything, Nagios style (README "Status and alerts"), worked out now.

Each component is a pure function of a `Snapshot` (meta, the facts about the
watcher process, recent restarts, AW's bucket list when it was asked, the
clocks and `now`) and the settings; the ones shown, in their order, are
lifelog.wiring.COMPONENTS (this module's and the capabilities'). Nothing is
copied from a stored verdict: a component whose recorder stopped (a dead
watchdog, a watcher that stopped heartbeating between two passes) shows it,
from the age of what it wrote.
Gathering the snapshot and acting on the result (alerts, outward signals)
is `lifelog.monitor`'s job.

- CRITICAL: AW unhealthy; the watcher not running or its heartbeat stale;
  3 or more replacements of a failed watcher in the last hour.
- WARNING: AW degraded; data stale (held, or behind AW); the watchdog
  paused, or no watchdog pass for `watchdog_stale_minutes` while a watcher
  runs; a replacement of a failed watcher in the last hour (a first start
  is not one).
- OK otherwise; UNKNOWN when there is no database or it cannot be read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

from lifelog.aw.buckets import AWView
from lifelog.checks.devices import DeviceLine, judge_all
from lifelog.checks.liveness import Freshness, age, judge_data, ts, watcher_down, watcher_started
from lifelog.core import keys
from lifelog.core.identity import WatcherFacts
from lifelog.core.settings import Settings
from lifelog.core.terminal import hanging
from lifelog.core.timeutil import format_age, to_iso, try_parse_iso, utcnow
from lifelog.core.verdicts import SEVERITY, Level

RESTARTS_CRITICAL = 3
RECENT = timedelta(hours=1)
# An AW check older than this many health intervals is shown as old.
AW_CHECK_STALE_INTERVALS = 2


class Snapshot(NamedTuple):
    """Everything the components judge, read at one moment."""

    now: datetime
    meta: Mapping[str, str | None]
    watcher: WatcherFacts
    now_clocks: tuple[float, float] | None = None
    # Replacements of a failed watcher in the last hour: (at, verdict), newest first.
    restarts: tuple[tuple[str, str], ...] = ()
    aw: AWView | None = None  # AW's bucket list, when it was asked for this snapshot
    db_path: str = ""


class Component(NamedTuple):
    name: str
    level: Level
    reason: str  # one phrase; names the cause when the level is not OK
    since: str | None = None  # the timestamp the age is of
    age_seconds: float | None = None
    # The `devices` component's line per device (SPEC section 14); () for the others.
    lines: tuple[DeviceLine, ...] = ()

    def to_json(self) -> dict:
        out: dict = {"name": self.name, "level": self.level.name, "reason": self.reason,
               "since": self.since, "age_seconds": self.age_seconds}
        if self.lines:
            out["devices"] = [line.to_json() for line in self.lines]
        return out


class StatusReport(NamedTuple):
    level: Level
    summary: str  # first line of the human form: "CRITICAL: AW unhealthy: ..."
    components: Sequence[Component] = ()
    db: str = ""
    at: str = ""

    @property
    def exit_code(self) -> int:
        return int(self.level)

    def component(self, name: str) -> Component | None:
        return next((c for c in self.components if c.name == name), None)

    def to_json(self) -> dict:
        return {"level": self.level.name, "exit_code": self.exit_code, "summary": self.summary,
                "db": self.db, "at": self.at, "components": [c.to_json() for c in self.components]}

    def render(self, width: int | None = None) -> str:
        """The human form, fitted to `width` columns (None: no limit; see
        lifelog.core.terminal): the summary and each reason wrap at words,
        a reason's lines under its own column. The database path runs on."""
        level, sep, cause = self.summary.partition(": ")
        lines = hanging(level + sep, cause, width) if sep else hanging("", self.summary, width)
        for c in self.components:
            shown = f" ({format_age(c.age_seconds)})" if c.age_seconds is not None else ""
            if c.lines:
                # One line per device, under the component's name; the reasons are theirs.
                lines += hanging(f"  {c.name:<9} {c.level.name:<8} ", f"{len(c.lines)} devices", width)
                for d in c.lines:
                    lines += hanging(f"    {d.name:<7} {d.level.name:<8} ", d.reason, width)
                continue
            lines += hanging(f"  {c.name:<9} {c.level.name:<8} ", f"{c.reason}{shown}", width)
        lines.append(f"  database  {self.db}")
        return "\n".join(lines)


def unknown(reason: str, db: str = "") -> StatusReport:
    return StatusReport(Level.UNKNOWN, f"UNKNOWN: {reason}", [], db, to_iso(utcnow()))


def _rounded_age(when: str | None, now: datetime) -> float | None:
    seconds = age(try_parse_iso(when), now)
    return None if seconds is None else round(seconds, 1)


def component_at(name: str, level: Level, reason: str, snap: Snapshot, since: str | None = None) -> Component:
    """A component whose age is counted from `since` (an ISO time, or None)."""
    return Component(name, level, reason, since, _rounded_age(since, snap.now))


# -- the core components, in the order they are shown ----------------------------------------


def aw_component(snap: Snapshot, settings: Settings) -> Component:
    meta = snap.meta
    status, checked = meta.get(keys.AW_STATUS), meta.get(keys.AW_CHECKED_AT)
    error = meta.get(keys.AW_ERROR) or ""
    if status == "degraded":
        return component_at("aw", Level.WARNING, f"AW degraded: {error}", snap, checked)
    if status == "unhealthy":
        failures = meta.get(keys.AW_CONSECUTIVE_FAILURES) or "?"
        checks = "check" if failures == "1" else "checks"
        return component_at("aw", Level.CRITICAL, f"AW unhealthy: {error} ({failures} {checks} in a row)",
                            snap, checked)
    if status != "healthy":
        return component_at("aw", Level.OK, "AW not checked yet", snap)
    version = meta.get(keys.AW_VERSION) or "?"
    checked_age = _rounded_age(checked, snap.now)
    stale_after = AW_CHECK_STALE_INTERVALS * settings.aw_health_check_interval_minutes * 60
    if checked_age is not None and checked_age > stale_after:
        # Shown as what it is, an old answer; status itself checks AW live.
        return component_at("aw", Level.OK, f"AW healthy at its last check ({version})", snap, checked)
    return component_at("aw", Level.OK, f"AW healthy ({version})", snap, checked)


def watcher_component(snap: Snapshot, settings: Settings) -> Component:
    facts = snap.watcher
    hb = snap.meta.get(keys.WATCHER_HEARTBEAT_AT)
    down = watcher_down(snap.meta, facts, snap.now, snap.now_clocks, settings.heartbeat_timeout_seconds)
    if down is not None and not down.running:
        return component_at("watcher", Level.CRITICAL, f"watcher not running ({down.detail})", snap, hb)
    if down is not None:
        return component_at("watcher", Level.CRITICAL,
                            f"watcher pid {facts.pid} heartbeat stale ({down.detail})", snap, hb)
    return component_at("watcher", Level.OK, f"watcher running (pid {facts.pid})", snap, hb)


def data_component(snap: Snapshot, settings: Settings) -> Component:
    last = snap.meta.get(keys.WATCHER_LAST_EVENT_TS)
    judged = judge_data(snap.meta, snap.now, settings.watcher_timestamp_threshold_minutes * 60.0, snap.aw)
    if judged.freshness is Freshness.FRESH:
        reason = "no event stored yet" if last is None else "data fresh"
        return component_at("data", Level.OK, reason, snap, last)
    if judged.freshness is Freshness.STALE:
        return component_at("data", Level.WARNING,
                            f"data stale ({judged.reason}); the watchdog restarts the watcher", snap, last)
    return component_at("data", Level.WARNING, f"data held stale ({judged.freshness}: {judged.reason})",
                        snap, last)


def restarts_component(snap: Snapshot, settings: Settings) -> Component:
    if not snap.restarts:
        return component_at("restarts", Level.OK, "no failed watcher replaced in the last hour", snap)
    n = len(snap.restarts)
    at, verdict = snap.restarts[0]
    level = Level.CRITICAL if n >= RESTARTS_CRITICAL else Level.WARNING
    return component_at("restarts", level,
                        f"watchdog replaced a failed watcher {n} time{'s' if n > 1 else ''} in the last hour"
                        f" (latest: {verdict})", snap, at)


def watchdog_component(snap: Snapshot, settings: Settings) -> Component:
    meta = snap.meta
    checked = meta.get(keys.WATCHDOG_CHECKED_AT)
    if (meta.get(keys.WATCHDOG_PAUSED) or "") not in ("", "0"):
        return component_at("watchdog", Level.WARNING, "watchdog paused ('lifelog watchdog resume' to resume)",
                            snap, meta.get(keys.WATCHDOG_PAUSED_AT))
    last_pass = ts(meta, keys.WATCHDOG_CHECKED_AT)
    if snap.watcher.running:
        # Nothing watches the watcher: counted from its start when no pass ever ran.
        since = last_pass or watcher_started(meta, snap.watcher, snap.now)
        silent_for = age(since, snap.now)
        if silent_for is not None and silent_for > settings.watchdog_stale_minutes * 60:
            what = "no watchdog pass" if last_pass is not None else "no watchdog pass ever"
            return component_at(
                "watchdog", Level.WARNING,
                f"{what} for {silent_for / 60:.0f} min while the watcher runs: nothing would restart it; "
                "run 'lifelog daemon', or add the cron line that 'scripts/install-os-files cron' prints",
                snap, checked)
    if last_pass is None:
        return component_at("watchdog", Level.OK, "watchdog has not run yet", snap)
    return component_at("watchdog", Level.OK, f"last verdict {meta.get(keys.WATCHDOG_VERDICT) or '?'}",
                        snap, checked)


def devices_component(snap: Snapshot, settings: Settings) -> Component | None:
    """With the `devices` setting (SPEC section 14): every device's verdict
    (core.devices.judge_device), the worst the component's; None without it."""
    if not settings.devices:
        return None
    lines = tuple(judge_all(snap.meta, settings, snap.now))
    worst = max((d.level for d in lines), key=lambda lv: SEVERITY[lv], default=Level.OK)
    shown = [d for d in lines if d.level is worst] if worst is not Level.OK else list(lines)
    return Component("devices", worst, "; ".join(d.reason for d in shown), None, None, lines)


# -- combining --------------------------------------------------------------------------------


def evaluate(snap: Snapshot, settings: Settings,
             components: Sequence[Callable[[Snapshot, Settings], Component | None]]) -> StatusReport:
    """Pure: each component (lifelog.wiring.COMPONENTS; None: not shown with
    these settings), then the worst level and its causes."""
    judged = [component(snap, settings) for component in components]
    return combine([c for c in judged if c is not None], snap.db_path, snap.now)


def combine(components: list[Component], db: str, now: datetime) -> StatusReport:
    """Pure: the worst component level wins, and the summary names its causes."""
    worst = max((c.level for c in components), key=lambda lv: SEVERITY[lv], default=Level.OK)
    if worst is Level.OK:
        summary = "OK: " + ", ".join(c.reason for c in components if c.name in ("aw", "watcher", "data"))
    else:
        summary = f"{worst.name}: " + "; ".join(c.reason for c in components if c.level is worst)
    return StatusReport(worst, summary, components, db, to_iso(now))
