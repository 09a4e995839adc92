"""The coverage picture in the terminal (rich): per host, one line per day,
one cell per slot, coloured by class, with a legend and per-day totals.

Every cell also has its own glyph, so the picture reads without colour
(piped, NO_COLOR): a gap shows its cause's letter, upper case on red; no
data shows a lower-case letter when LifeLog knows a cause, a dot when not.
Imported only by `lifelog coverage`: rich costs tens of milliseconds to load.
"""

from __future__ import annotations

from datetime import date

from rich.console import Console
from rich.text import Text

from lifelog.coverage.model import CAUSE_NAME, Cause, Coverage, Kind, SlotResult, local_midnight

LABEL = 11  # "Tue 11-25  "

# (glyph, style) per class; gaps and explained no-data cells show their cause's letter.
STYLE = {
    Kind.ACTIVE: ("█", "green"),
    Kind.AWAY: ("░", "steel_blue"),
    Kind.GAP: ("?", "bold white on red3"),
    Kind.NO_DATA: ("·", "grey42"),
}
LETTER = {Cause.AW_DOWN: "a", Cause.SOURCE_SILENT: "s", Cause.LIFELOG_DOWN: "l", Cause.UNKNOWN: "?",
          Cause.DEVICE_UNREACHABLE: "d"}
NO_DATA_EXPLAINED = "bold dark_orange"
# What the legend adds to a cause's name (model.CAUSE_NAME), for a reader with no HTML card to turn to.
CAUSE_HINT = {
    Cause.AW_DOWN: "LifeLog's health checks failed",
    Cause.SOURCE_SILENT: "LifeLog recorded the one whose data is missing as silent",
    Cause.LIFELOG_DOWN: "its watcher, while the machine was up",
    Cause.UNKNOWN: "for no data: the machine was off or asleep",
    Cause.DEVICE_UNREACHABLE: "LifeLog could not reach its AW then, and it reported nothing for it since",
}


def cell(r: SlotResult) -> tuple[str, str]:
    glyph, style = STYLE[r.kind]
    if r.kind is Kind.GAP:
        return LETTER[r.cause or Cause.UNKNOWN].upper(), style
    if r.kind is Kind.NO_DATA and r.cause is not None and r.cause is not Cause.UNKNOWN:
        return LETTER[r.cause], NO_DATA_EXPLAINED
    return glyph, style


def hm(seconds: float) -> str:
    minutes = int(round(seconds / 60))
    return f"{minutes // 60}:{minutes % 60:02d}"


# A merged cell shows the most telling of its slots: a gap, then no data
# with a known cause, then active, away, plain no data.
RANK = {Kind.GAP: 4, Kind.ACTIVE: 2, Kind.AWAY: 1, Kind.NO_DATA: 0}


def _telling(r: SlotResult) -> int:
    if r.kind is Kind.NO_DATA and r.cause is not None and r.cause is not Cause.UNKNOWN:
        return 3
    return RANK[r.kind]


def slots_per_cell(first: int, last: int, minutes: int, room: int | None) -> int:
    """How many slots one cell shows so that the columns `first`..`last`
    (slots counted from midnight) fit `room` columns (None: no limit): 1 when
    they fit, else the fewest that do, preferring a cell that divides the
    hour or the day evenly (the ruler's hours then stay over their cells)."""
    def fits(k: int) -> bool:
        return room is None or last // k - first // k + 1 <= room

    def even(k: int) -> bool:
        span = minutes * k
        return 60 % span == 0 or (span % 60 == 0 and 1440 % span == 0)

    fewest = next((k for k in range(1, last - first + 2) if fits(k)), last - first + 1)
    return next((k for k in range(fewest, 2 * fewest + 1) if fits(k) and even(k)), fewest)


def render(cov: Coverage, console: Console, width: int | None = None) -> None:
    """The picture on `console`, fitted to `width` columns (None: no limit):
    when a day's slots do not fit, a cell shows several slots (the most
    telling of them); when the totals do not fit beside the cells, they go
    on a line of their own under the day."""
    minutes = cov.slot_seconds // 60
    if not cov.hosts:
        console.print(_header(cov, minutes, 1))
        console.print("No afk or window buckets in the database yet: nothing to show. "
                      "Once the watcher has stored ActivityWatch's buckets, run this again.")
        return
    totals = {(d.day, d.host): d for d in cov.days}
    # A slot's column: its place in its day, counted from midnight.
    hosts = {}
    for host in cov.hosts:
        days: dict[date, list[SlotResult]] = {}
        for r in cov.slots[host]:
            days.setdefault(r.day, []).append(r)
        columns = {}
        for day, row in days.items():
            midnight = local_midnight(day, cov.tz)
            columns[day] = [int((r.start - midnight) // cov.slot_seconds) for r in row]
        hosts[host] = days, columns
    first = min(c[0] for _, columns in hosts.values() for c in columns.values())
    last = max(c[-1] for _, columns in hosts.values() for c in columns.values())
    k = slots_per_cell(first, last, minutes, None if width is None else width - LABEL)
    console.print(_header(cov, minutes, k))
    for host, (days, columns) in hosts.items():
        offset = min(c[0] for c in columns.values()) // k
        cells_wide = max(c[-1] for c in columns.values()) // k - offset + 1
        console.print()
        console.print(Text(host, style="bold"))
        console.print(Text(" " * LABEL) + _ruler(offset, cells_wide, minutes * k), soft_wrap=True)
        for day, row in days.items():
            best: dict[int, SlotResult] = {}
            for r, col in zip(row, columns[day], strict=True):
                at = col // k - offset
                if at not in best or _telling(r) > _telling(best[at]):
                    best[at] = r
            cells = [cell(best[i]) if i in best else (" ", "") for i in range(cells_wide)]
            line = Text(day.strftime("%a %m-%d").ljust(LABEL))
            run, n = cells[0], 0
            for c in cells:  # one span per run of equal cells: a year is 35,000 cells
                if c == run:
                    n += 1
                    continue
                line.append(run[0] * n, run[1])
                run, n = c, 1
            line.append(run[0] * n, run[1])
            t = totals[(day, host)].seconds
            day_totals = Text.assemble((f"active {hm(t[Kind.ACTIVE])}", "green"), "  ",
                                       (f"without window data {hm(t[Kind.GAP])}",
                                        "red3" if t[Kind.GAP] else "grey42"))
            if width is None or len(line) + 2 + len(day_totals) <= width:
                console.print(line + Text("  ") + day_totals, soft_wrap=True)
            else:
                line.rstrip()
                console.print(line, soft_wrap=True)
                console.print(Text(" " * LABEL) + day_totals, soft_wrap=True)
    console.print()
    if k > 1:
        console.print(f"A cell shows {k} slots ({minutes * k} minutes), as the most telling of them: a gap, "
                      "then no data with a cause, active, away, no data.")
    console.print(_legend(cov))


def _header(cov: Coverage, minutes: int, k: int) -> Text:
    per_cell = f", {k} to a cell" if k > 1 else ""
    return Text.assemble(("LifeLog coverage ", "bold"), _range_text(cov), f", {minutes}-minute slots{per_cell}")


def _range_text(cov: Coverage) -> str:
    from lifelog.coverage.model import to_local_iso

    return f"{to_local_iso(cov.since, cov.tz)[:16].replace('T', ' ')} to {to_local_iso(cov.until, cov.tz)[:16].replace('T', ' ')}"


def _ruler(offset: int, width: int, minutes: int) -> Text:
    """Hour labels above the cells: every hour that fits, at least 3 cells apart."""
    per_hour = 60 / minutes
    step = next((h for h in (1, 2, 3, 4, 6, 12, 24) if h * per_hour >= 6), 24)
    chars = [" "] * width
    for col in range(width):
        start = (offset + col) * minutes
        if start % 60 == 0 and (start // 60) % step == 0:
            label = str((start // 60) % 24)
            if col + len(label) <= width and all(c == " " for c in chars[col:col + len(label) + 1]):
                chars[col:col + len(label)] = label
    return Text("".join(chars).rstrip(), style="grey50")


def _legend(cov: Coverage) -> Text:
    legend = Text()
    for kind, name in ((Kind.ACTIVE, "active"), (Kind.AWAY, "away"), (Kind.NO_DATA, "no data")):
        glyph, style = STYLE[kind]
        legend.append(glyph, style)
        legend.append(f" {name}   ")
    legend.append("S", STYLE[Kind.GAP][1])
    legend.append(" gap: active without window data\n")
    legend.append("the letter is the cause, upper case on red for a gap, lower case for no data:\n")
    causes = [Cause.AW_DOWN, Cause.SOURCE_SILENT, Cause.LIFELOG_DOWN, Cause.UNKNOWN]
    if cov.devices is not None:  # the devices setting (SPEC section 14)
        causes.append(Cause.DEVICE_UNREACHABLE)
    for cause in causes:
        legend.append("  ")
        legend.append(LETTER[cause].upper(), STYLE[Kind.GAP][1])
        legend.append(LETTER[cause], NO_DATA_EXPLAINED if cause is not Cause.UNKNOWN else "")
        legend.append(f" {cause}: {CAUSE_NAME[cause]} ({CAUSE_HINT[cause]})\n")
    legend.rstrip()
    return legend


def print_picture(cov: Coverage, console: Console | None = None, width: int | None = None) -> None:
    """The picture on `console` (its width), or on stdout fitted to `width`
    (lifelog.core.terminal.output_width: None is no limit). Colour only on a
    terminal, and without NO_COLOR."""
    if console is not None:
        render(cov, console, console.width)
        return
    from lifelog.core.terminal import no_color

    # NO_COLOR: plain text (rich alone would drop the colours but keep bold).
    render(cov, Console(highlight=False, width=width, soft_wrap=width is None,
                        color_system=None if no_color() else "auto"), width)
