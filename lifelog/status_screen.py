"""`lifelog status --watch`: the status screen, redrawn in place every few
seconds until Ctrl-C (or SIGTERM), then exit 0.

One screen is: the overall verdict and every component (lifelog.checks.status,
worked out now through lifelog.monitor, so an alert still runs once per
change), each source's state as the watchdog passes recorded it (README
"When an ActivityWatch watcher goes quiet"), and the latest watchdog
verdicts from `watchdog_log`. AW is checked afresh (a recorded health check, as
`lifelog status` does) only when the latest check is older than
`aw_health_check_interval_minutes`: the daemon normally keeps it fresh, and
a screen redrawn every two seconds must not fill `health_checks`.

On a terminal the screen is redrawn in place (rich's Live); otherwise
(a pipe, a log), or with NO_COLOR, each screen is printed after the last,
plain.
Imported only by `status --watch`: rich costs tens of milliseconds to load.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from lifelog.checks import status
from lifelog.checks.liveness import age, in_window
from lifelog.checks.status import StatusReport
from lifelog.core import keys
from lifelog.core.settings import Settings
from lifelog.core.signals import stop_on_signals
from lifelog.core.terminal import no_color, output_width
from lifelog.core.timeutil import format_age, try_parse_iso, utcnow
from lifelog.core.verdicts import Level
from lifelog.db.meta import get_meta, read_meta
from lifelog.sources.watch import Recorded, device_names, recorded

if TYPE_CHECKING:  # opened lazily, in _Database.get
    from sqlite_utils import Database

LEVEL_STYLE = {Level.OK: "bold green", Level.WARNING: "bold yellow", Level.CRITICAL: "bold red",
               Level.UNKNOWN: "bold magenta"}
STATE_STYLE = {"live": "green", "idle": "grey50", "silent": "bold red", "copy": "grey50", "remote": "grey50",
               "unjudged": "yellow"}
VERDICTS_SHOWN = 6
# Narrower than this, the tables give way (render); a reason keeps at least
# REASON_MIN columns, and a bucket id at most SOURCE_MAX.
NARROW = 100
REASON_MIN = 30
SOURCE_MAX = 28


@dataclass(frozen=True)
class VerdictRow:
    at: str
    verdict: str
    reason: str
    action: str
    actor: str


@dataclass(frozen=True)
class Screen:
    report: StatusReport
    now: datetime
    interval: float
    sources: list[Recorded] = field(default_factory=list)
    verdicts: list[VerdictRow] = field(default_factory=list)  # newest first
    watchdog_verdict: str | None = None
    watchdog_checked_at: str | None = None
    # With the `devices` setting: a DEVICE column, each source's own (Recorded.device).
    per_device: bool = False


def latest_verdicts(db, limit: int = VERDICTS_SHOWN) -> list[VerdictRow]:
    rows = db.conn.execute("SELECT at, verdict, reason, action, actor FROM watchdog_log ORDER BY id DESC LIMIT ?",
                           (limit,)).fetchall()
    return [VerdictRow(*row) for row in rows]


def gather(db, settings: Settings, interval: float) -> Screen:
    """One screen's facts. No database (yet), or one that cannot be read:
    UNKNOWN, as `lifelog status` says, and the next redraw tries again."""
    from lifelog import monitor

    if db is None:
        return Screen(status.unknown(f"no database at {settings.db_path}; create it with 'lifelog init'",
                                     str(settings.db_path)), utcnow(), interval)
    try:
        return _gather(db, settings, interval, monitor)
    except sqlite3.Error as e:
        return Screen(status.unknown(f"cannot use the database {settings.db_path}: {e}", str(settings.db_path)),
                      utcnow(), interval)


def _gather(db, settings: Settings, interval: float, monitor) -> Screen:
    checked = try_parse_iso(get_meta(db, keys.AW_CHECKED_AT))
    if not in_window(age(checked, utcnow()), settings.aw_health_check_interval_minutes * 60):
        _, report = monitor.check_health(db, settings)
    else:
        report = monitor.refresh(db, settings, "status")
    meta = read_meta(db, (keys.SOURCE_PREFIX, "watchdog."))
    return Screen(report, utcnow(), interval, recorded(meta, device_names(settings)), latest_verdicts(db),
                  meta.get(keys.WATCHDOG_VERDICT), meta.get(keys.WATCHDOG_CHECKED_AT), bool(settings.devices))


def _age(when: str | datetime | None, now: datetime) -> str:
    t = try_parse_iso(when) if isinstance(when, str) else when
    return format_age(age(t, now))


def _clock(when: str) -> str:
    t = try_parse_iso(when)
    return when if t is None else t.astimezone().strftime("%H:%M:%S")


def render(screen: Screen, width: int | None = None) -> Group:
    """The screen as a rich renderable. Pure: the same Screen draws the same.

    Under NARROW columns (`width`; None is wide) the tables give way as the
    reading commands' do (lifelog.core.terminal): the sources leave out the
    newest event (its age is the state's reason) and a long bucket id is cut
    with `…`; a verdict's action goes under its reason. Reasons wrap at words
    in their column."""
    narrow = width is not None and width < NARROW
    r = screen.report
    title = Text.assemble(("LifeLog status", "bold"), f"  {screen.now.astimezone():%Y-%m-%d %H:%M:%S}",
                          (f"   redrawn every {screen.interval:g} s; Ctrl-C to stop", "grey50"))
    summary = Text(r.summary, style=LEVEL_STYLE[r.level])
    parts: list = [title, summary, Text("")]

    comps = _table()
    for name in ("COMPONENT", "LEVEL", "REASON", "AGE"):
        comps.add_column(name, no_wrap=name != "REASON", min_width=REASON_MIN if name == "REASON" else None)
    for c in r.components:
        if c.lines:
            # The devices component (SPEC section 14): a line per device, each with its reason.
            comps.add_row(c.name, Text(c.level.name, LEVEL_STYLE[c.level]), f"{len(c.lines)} devices", "")
            for d in c.lines:
                comps.add_row(f"  {d.name}", Text(d.level.name, LEVEL_STYLE[d.level]), d.reason, "")
            continue
        comps.add_row(c.name, Text(c.level.name, LEVEL_STYLE[c.level]), c.reason,
                      format_age(c.age_seconds) if c.age_seconds is not None else "")
    parts.append(comps)

    if screen.sources:
        parts.append(Text(""))
        src = _table()
        names = ("SOURCE", "STATE", "SINCE", "REASON") if narrow else ("SOURCE", "STATE", "SINCE", "NEWEST EVENT",
                                                                       "REASON")
        if screen.per_device:
            names = ("DEVICE", *names)
        for name in names:
            src.add_column(name, no_wrap=name != "REASON", overflow="ellipsis",
                           max_width=SOURCE_MAX if narrow and name == "SOURCE" else None,
                           min_width=REASON_MIN if name == "REASON" else None)
        for s in screen.sources:
            cells: list[str | Text] = [s.bucket_id, Text(s.state, STATE_STYLE.get(s.state, "")), _age(s.since, screen.now)]
            if screen.per_device:
                cells.insert(0, s.device or "-")
            if not narrow:
                cells.append(_age(s.newest_end, screen.now))
            src.add_row(*cells, s.reason)
        parts.append(src)

    parts.append(Text(""))
    now_verdict = screen.watchdog_verdict or "none yet"
    parts.append(Text.assemble(("watchdog: ", "bold"), f"latest pass {now_verdict}",
                               f" ({_age(screen.watchdog_checked_at, screen.now)})"))
    if screen.verdicts:
        log = _table()
        names = ("AT", "VERDICT", "BY", "REASON AND ACTION") if narrow else ("AT", "VERDICT", "BY", "REASON",
                                                                             "ACTION")
        for name in names:
            log.add_column(name, no_wrap=not name.startswith(("REASON", "ACTION")))
        for v in screen.verdicts:
            style = "red" if v.verdict.startswith("restart") else ("yellow" if v.verdict.startswith("hold") else "")
            said = [f"{v.reason}; {v.action}" if v.action else v.reason] if narrow else [v.reason, v.action]
            log.add_row(_clock(v.at), Text(v.verdict, style), v.actor, *said)
        parts.append(log)
    else:
        parts.append(Text("no verdict other than ok recorded yet", style="grey50"))
    parts.append(Text(f"database {r.db}", style="grey50"))
    return Group(*parts)


def _table() -> Table:
    return Table(box=None, pad_edge=False, show_edge=False, header_style="bold grey50")


class _Database:
    """The database, opened once it exists (the watch may start before `lifelog init`)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.db: Database | None = None

    def get(self):
        if self.db is None:
            from lifelog.db.database import DatabaseMissing, DatabaseUnusable, open_db

            try:
                self.db = open_db(self.settings.db_path, create=False)
            except (DatabaseMissing, DatabaseUnusable):
                return None
        return self.db

    def close(self) -> None:
        if self.db is not None:
            self.db.close()


def watch(settings: Settings, interval: float, console: Console | None = None,
          stop: threading.Event | None = None) -> int:
    """Redraw until `stop` is set (SIGINT and SIGTERM set it). Returns 0."""
    if console is None:
        # On a terminal, its width (rich reads it); else COLUMNS, as every
        # reading command (lifelog.core.terminal); else a log: wide enough
        # that lines stay whole.
        plain = no_color()
        console = Console(highlight=False, color_system=None if plain else "auto")
        if not console.is_terminal:
            console = Console(highlight=False, color_system=None,
                              width=output_width(console.file) or max(console.width, 120))
    else:
        plain = False
    if stop is None:
        stop = stop_on_signals()
    database = _Database(settings)
    try:
        if console.is_terminal and not plain:  # NO_COLOR: no cursor movement either (SPEC section 7)
            with Live(console=console, auto_refresh=False, transient=False) as live:
                while not stop.is_set():
                    live.update(render(gather(database.get(), settings, interval), console.width), refresh=True)
                    stop.wait(interval)
        else:
            while not stop.is_set():
                console.print(render(gather(database.get(), settings, interval), console.width))
                console.print()
                console.file.flush()
                stop.wait(interval)
    finally:
        database.close()
    return 0
