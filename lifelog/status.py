"""One verdict over everything, Nagios style (SPEC section 7).

`overall()` reads meta, the watchdog log and the recorded process; it stores
nothing (the alert-on-change bookkeeping is `lifelog.alerts`). Levels:

- CRITICAL: AW unhealthy; the watcher not running or its heartbeat stale;
  3 or more replacements of a failed watcher in the last hour.
- WARNING: AW degraded; data held stale (`hold:*`); the watchdog paused; a
  replacement of a failed watcher in the last hour (a first start is not).
- OK otherwise; UNKNOWN when there is no database or it cannot be read.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from lifelog import keys
from lifelog.settings import Settings
from lifelog.timeutil import format_age, to_iso, try_parse_iso, utcnow
from lifelog.verdicts import HOLD_VERDICTS, RESTART_VERDICTS, SEVERITY, Level

RESTARTS_CRITICAL = 3
RECENT = timedelta(hours=1)


@dataclass(frozen=True)
class Component:
    name: str  # aw, watcher, data, restarts, watchdog
    level: Level
    state: str  # one short phrase
    since: str | None = None  # the timestamp the age is of
    age_seconds: float | None = None
    cause: str = ""  # the phrase naming it in the summary when it is not OK

    def to_json(self) -> dict:
        return {"level": self.level.name, "state": self.state, "since": self.since,
                "age_seconds": self.age_seconds, "cause": self.cause}


@dataclass(frozen=True)
class StatusReport:
    level: Level
    summary: str  # first line of the human form: "CRITICAL: AW unhealthy: ..."
    components: list[Component] = field(default_factory=list)
    db: str = ""
    at: str = ""

    @property
    def exit_code(self) -> int:
        return int(self.level)

    def to_json(self) -> dict:
        return {"level": self.level.name, "exit_code": self.exit_code, "summary": self.summary,
                "db": self.db, "at": self.at,
                "components": {c.name: c.to_json() for c in self.components}}

    def render(self) -> str:
        lines = [self.summary]
        for c in self.components:
            age = f" ({format_age(c.age_seconds)})" if c.age_seconds is not None else ""
            lines.append(f"  {c.name:<9} {c.level.name:<8} {c.state}{age}")
        lines.append(f"  database  {self.db}")
        return "\n".join(lines)


def unknown(reason: str, db: str = "") -> StatusReport:
    return StatusReport(Level.UNKNOWN, f"UNKNOWN: {reason}", [], db, to_iso(utcnow()))


def _age(ts: str | None, now: datetime) -> float | None:
    dt = try_parse_iso(ts)
    return None if dt is None else round((now - dt).total_seconds(), 1)


def combine(components: list[Component], db: str, now: datetime) -> StatusReport:
    """Pure: the worst component level wins, and the summary names its causes."""
    worst = max((c.level for c in components), key=lambda lv: SEVERITY[lv], default=Level.OK)
    if worst is Level.OK:
        summary = "OK: " + ", ".join(c.state for c in components if c.name in ("aw", "watcher", "data"))
    else:
        summary = f"{worst.name}: " + "; ".join(c.cause or f"{c.name} {c.state}"
                                                for c in components if c.level is worst)
    return StatusReport(worst, summary, components, db, to_iso(now))


def _aw(meta: dict, now: datetime) -> Component:
    status = meta.get(keys.AW_STATUS)
    checked = meta.get(keys.AW_CHECKED_AT)
    age = _age(checked, now)
    error = meta.get(keys.AW_ERROR) or ""
    if status == "healthy":
        version = meta.get(keys.AW_VERSION) or "?"
        return Component("aw", Level.OK, f"AW healthy ({version})", checked, age)
    if status == "degraded":
        return Component("aw", Level.WARNING, f"AW degraded: {error}", checked, age, f"AW degraded: {error}")
    if status == "unhealthy":
        failures = meta.get(keys.AW_CONSECUTIVE_FAILURES) or "?"
        state = f"AW unhealthy: {error} ({failures} checks in a row)"
        return Component("aw", Level.CRITICAL, state, checked, age, f"AW unhealthy: {error}")
    return Component("aw", Level.OK, "AW not checked yet", None, None)


def _watcher(meta: dict, facts, now: datetime, settings: Settings) -> Component:
    from lifelog import clocks
    from lifelog.watchdog import heartbeat_age

    hb = meta.get(keys.WATCHER_HEARTBEAT_AT)
    if not facts.running:
        cause = f"watcher not running ({facts.reason})"
        return Component("watcher", Level.CRITICAL, cause, hb, _age(hb, now), cause)
    age, how = heartbeat_age(meta, facts, now, clocks.readings())
    if age > settings.heartbeat_timeout_seconds:
        shown = "none" if age == float("inf") else f"{age:.0f} s"
        cause = f"watcher pid {facts.pid} heartbeat stale ({how}: {shown})"
        return Component("watcher", Level.CRITICAL, cause, hb, _age(hb, now), cause)
    return Component("watcher", Level.OK, f"watcher running (pid {facts.pid})", hb, _age(hb, now))


def _data(meta: dict, now: datetime) -> Component:
    last = meta.get(keys.WATCHER_LAST_EVENT_TS)
    verdict = meta.get(keys.WATCHDOG_VERDICT) or ""
    if verdict in HOLD_VERDICTS:
        reason = meta.get(keys.WATCHDOG_REASON) or ""
        cause = f"data held stale ({verdict}: {reason})"
        return Component("data", Level.WARNING, cause, last, _age(last, now), cause)
    if last is None:
        return Component("data", Level.OK, "no event stored yet", None, None)
    return Component("data", Level.OK, "data fresh", last, _age(last, now))


def _restarts(db, now: datetime) -> Component:
    since = to_iso(now - RECENT)
    placeholders = ",".join("?" for _ in RESTART_VERDICTS)
    rows = db.conn.execute(
        f"SELECT at, verdict, reason FROM watchdog_log WHERE replaced = 1 AND at >= ?"
        f" AND verdict IN ({placeholders}) ORDER BY at DESC",
        (since, *sorted(str(v) for v in RESTART_VERDICTS)),
    ).fetchall()
    if not rows:
        return Component("restarts", Level.OK, "no failed watcher replaced in the last hour")
    n = len(rows)
    at, verdict, _ = rows[0]
    level = Level.CRITICAL if n >= RESTARTS_CRITICAL else Level.WARNING
    cause = (f"watchdog replaced a failed watcher {n} time{'s' if n > 1 else ''} in the last hour"
             f" (latest: {verdict})")
    return Component("restarts", level, cause, at, _age(at, now), cause)


def _watchdog(meta: dict, now: datetime) -> Component:
    checked = meta.get(keys.WATCHDOG_CHECKED_AT)
    if (meta.get(keys.WATCHDOG_PAUSED) or "") not in ("", "0"):
        since = meta.get(keys.WATCHDOG_PAUSED_AT)
        cause = "watchdog paused ('lifelog watchdog resume' to resume)"
        return Component("watchdog", Level.WARNING, cause, since, _age(since, now), cause)
    if checked is None:
        return Component("watchdog", Level.OK, "watchdog has not run yet")
    return Component("watchdog", Level.OK, f"last verdict {meta.get('watchdog.verdict') or '?'}",
                     checked, _age(checked, now))


def overall(db, settings: Settings, now: datetime | None = None) -> StatusReport:
    """The overall status now; UNKNOWN (never an exception) when the database cannot be read."""
    from lifelog import procs

    now = now or utcnow()
    try:
        meta = procs.read_meta(db)
        facts = procs.which_watcher(meta, *procs.live_facts_for(meta))
        components = [_aw(meta, now), _watcher(meta, facts, now, settings), _data(meta, now),
                      _restarts(db, now), _watchdog(meta, now)]
    except sqlite3.Error as e:
        return unknown(f"cannot read the database {settings.db_path}: {e}", str(settings.db_path))
    return combine(components, str(settings.db_path), now)


def check_and_report(db, settings: Settings) -> StatusReport:
    """`lifelog status`: a fresh AW check (so a stopped AW shows now, not at
    the next scheduled check), then the overall status, alerting on change."""
    from lifelog import alerts, health

    try:
        health.run_check(db, settings)
    except sqlite3.Error as e:
        return unknown(f"cannot write to the database {settings.db_path}: {e}", str(settings.db_path))
    report = overall(db, settings)
    try:
        alerts.notify_if_changed(db, settings, report)
    except sqlite3.Error:
        pass  # a read-only moment must not hide the status itself
    return report
