"""`lifelog coverage --html FILE`: one self-contained page (inline SVG and CSS,
no script, nothing fetched) with the timeline, a table of days and the
causes, each with what to do about it.

The timeline is drawn per host: one row per day, 24 hours wide, a bar
coloured by class and under it a thin strip coloured by cause. Every
rectangle has a tooltip with its times. Colours are fixed (CLASS_COLOUR,
CAUSE_COLOUR), which the screenshot test relies on.
"""

from __future__ import annotations

import html
import os
from datetime import date, datetime, timedelta
from pathlib import Path

from lifelog.core.files import write_atomically
from lifelog.coverage.model import (
    ALL_DEVICES,
    CAUSE_NAME,
    Cause,
    Coverage,
    Kind,
    Stretch,
    local_date,
    local_midnight,
    to_local_iso,
)

CLASS_COLOUR = {Kind.ACTIVE: "#2e9e5b", Kind.AWAY: "#9db4cc", Kind.GAP: "#d7263d", Kind.NO_DATA: "#e4e4ea"}
CAUSE_COLOUR = {Cause.AW_DOWN: "#f08c00", Cause.SOURCE_SILENT: "#7b3fb5", Cause.LIFELOG_DOWN: "#1f6fd1",
                Cause.UNKNOWN: "#a9a9b8", Cause.DEVICE_UNREACHABLE: "#8a6d3b"}
CLASS_NAME = {Kind.ACTIVE: "Active", Kind.AWAY: "Away", Kind.GAP: "Gap", Kind.NO_DATA: "No data"}
CLASS_MEANING = {
    Kind.ACTIVE: "you were at the computer (not-afk) and window data covers it",
    Kind.AWAY: "the afk watcher says you were away",
    Kind.GAP: "you were at the computer, but there is no window data",
    Kind.NO_DATA: "no afk data at all: the machine was off or asleep, or nothing recorded",
}
STRIP_NAME = {Cause.AW_DOWN: "AW down", Cause.SOURCE_SILENT: "a watcher silent",
              Cause.LIFELOG_DOWN: "LifeLog not running", Cause.UNKNOWN: "a gap nothing explains"}
CAUSE_MEANING = {
    Cause.AW_DOWN: "LifeLog's health checks of the ActivityWatch server failed then.",
    Cause.SOURCE_SILENT: "LifeLog recorded the watcher whose data is missing (window for a gap, afk for no "
                         "data) as silent: AW was up, the watcher was not recording.",
    Cause.LIFELOG_DOWN: "LifeLog's watcher process was not running then (between its recorded runs, "
                        "while the machine was up).",
    Cause.UNKNOWN: "AW, its watchers and LifeLog all look fine in LifeLog's records. For no data this "
                   "is usually the machine being off or asleep.",
    Cause.DEVICE_UNREACHABLE: "LifeLog could not reach this device's ActivityWatch then, and the device has "
                              "reported nothing for that time since: it was off, asleep or away.",
}
CAUSE_FIX = {
    Cause.AW_DOWN: "Keep AW running under a supervisor (the aw-server systemd unit and its health timer, "
                   "README \"Running it for good\"). What AW never recorded cannot be recovered.",
    Cause.SOURCE_SILENT: "Restart the watcher (aw-watcher-window, aw-watcher-afk) and check what it needs from "
                         "the OS (the accessibility and screen recording permissions on macOS; on Linux, "
                         "aw-watcher-window sees X11 windows only); set source_restart_commands so LifeLog "
                         "restarts it for you.",
    Cause.LIFELOG_DOWN: "Run 'lifelog reconcile --since DATE' to fetch what AW still holds for those days; "
                        "then run LifeLog under 'lifelog daemon' or the cron watchdog so it restarts by itself.",
    Cause.UNKNOWN: "Nothing, if the machine was off. Otherwise check AW's own logs for those hours.",
    Cause.DEVICE_UNREACHABLE: "Nothing, if the device was off or travelling. If it was on, check that LifeLog can "
                              "reach its AW (README \"Several machines\": the tunnel or VPN, its url and api_key).",
}

LEFT = 118  # the day labels
HOUR = 36  # pixels per hour
TOP = 26  # the hour labels
BAR = 20
STRIP = 6
PITCH = 38
WIDTH = LEFT + 24 * HOUR + 16

CSS = """
:root { color-scheme: light; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       margin: 0; background: #f6f6f9; color: #22232b; }
main { max-width: 1060px; margin: 0 auto; padding: 28px 24px 48px; }
h1 { font-size: 26px; margin: 0 0 4px; letter-spacing: -0.01em; }
h2 { font-size: 18px; margin: 34px 0 10px; }
.sub { color: #5d5f6e; margin: 0 0 22px; }
.cards { display: flex; gap: 14px; flex-wrap: wrap; }
.card { background: #fff; border-radius: 10px; padding: 12px 16px; min-width: 150px;
        box-shadow: 0 1px 2px rgba(0,0,0,.07); }
.card .n { font-size: 24px; font-weight: 650; }
.card .l { color: #5d5f6e; font-size: 13px; }
.card .dot, .key .dot { display: inline-block; width: 11px; height: 11px; border-radius: 3px;
                        margin-right: 6px; vertical-align: -1px; }
.panel { background: #fff; border-radius: 12px; padding: 16px 18px; box-shadow: 0 1px 2px rgba(0,0,0,.07);
         overflow-x: auto; }
.keys { display: flex; flex-wrap: wrap; gap: 6px 22px; font-size: 13px; color: #45475a; margin: 10px 2px 0; }
svg text { font: 12px system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; fill: #5d5f6e; }
svg .day { fill: #22232b; font-weight: 600; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: right; padding: 6px 10px; border-bottom: 1px solid #ececf2; }
th:first-child, td:first-child { text-align: left; }
th { font-size: 12px; text-transform: uppercase; letter-spacing: .04em; color: #6b6d7c; font-weight: 600; }
td.bad { color: #b3142a; font-weight: 650; }
.mini { display: flex; width: 190px; height: 10px; border-radius: 3px; overflow: hidden; margin-left: auto; }
.causes { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 14px; }
.cause { background: #fff; border-radius: 12px; padding: 14px 16px; border-left: 6px solid;
         box-shadow: 0 1px 2px rgba(0,0,0,.07); }
.cause h3 { margin: 0 0 2px; font-size: 16px; }
.cause .t { color: #5d5f6e; font-size: 13px; margin-bottom: 8px; }
.cause p { margin: 6px 0; }
.cause .fix { background: #f4f4f8; border-radius: 8px; padding: 8px 10px; }
.cause ul { margin: 6px 0 0; padding-left: 18px; color: #45475a; font-size: 13px; }
.good { background: #fff; border-radius: 12px; padding: 14px 16px; }
footer { margin-top: 36px; color: #8a8c99; font-size: 12px; }
"""


def _heading(text: str) -> str:
    return text[:1].upper() + text[1:]


def _hm(seconds: float) -> str:
    minutes = int(round(seconds / 60))
    return f"{minutes // 60} h {minutes % 60:02d}" if minutes >= 60 else f"{minutes} min"


def _when(t: float, cov: Coverage) -> str:
    return to_local_iso(t, cov.tz)[:16].replace("T", " ")


def _span(s: Stretch, cov: Coverage) -> str:
    start, end = _when(s.start, cov), _when(s.end, cov)
    return f"{start} to {end[-5:] if end[:10] == start[:10] else end}"


def _day_pieces(cov: Coverage, s: Stretch) -> list[tuple[date, float, float]]:
    """A stretch cut at local midnights: (day, seconds into the day at start, at end)."""
    pieces = []
    day = local_date(s.start, cov.tz)
    while True:
        midnight, next_midnight = local_midnight(day, cov.tz), local_midnight(day + timedelta(days=1), cov.tz)
        a, b = max(s.start, midnight), min(s.end, next_midnight)
        if a < b:  # (a 25-hour day's last hour is drawn over its 24th)
            pieces.append((day, min(a - midnight, 86400 - 1), min(b - midnight, 86400)))
        if next_midnight >= s.end:
            return pieces
        day += timedelta(days=1)


def _timeline(cov: Coverage, host: str) -> str:
    days = sorted({r.day for r in cov.slots[host]})
    row = {d: i for i, d in enumerate(days)}
    height = TOP + PITCH * len(days) + 4
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="coverage timeline of {html.escape(host)}">']
    for h in range(25):
        x = LEFT + h * HOUR
        out.append(f'<line x1="{x}" y1="{TOP - 6}" x2="{x}" y2="{height - 4}" stroke="#ececf2" stroke-width="1"/>')
        if h % 3 == 0 and h < 24:
            out.append(f'<text x="{x + 2}" y="{TOP - 10}">{h:02d}:00</text>')
    for d in days:
        y = TOP + row[d] * PITCH
        out.append(f'<text class="day" x="4" y="{y + 15}">{d.strftime("%a %d %b")}</text>')
    scale = HOUR / 3600
    for s in cov.stretches:
        if s.host != host:
            continue
        tip = (f"{CLASS_NAME[s.kind]}{'' if s.cause is None else ' (' + str(s.cause) + ')'}: "
               f"{_when(s.start, cov)} to {_when(s.end, cov)}, {_hm(s.seconds)}")
        for d, a, b in _day_pieces(cov, s):
            left, w, y = LEFT + a * scale, (b - a) * scale, TOP + row[d] * PITCH
            out.append(f'<rect x="{left:.2f}" y="{y}" width="{w:.2f}" height="{BAR}" fill="{CLASS_COLOUR[s.kind]}">'
                       f'<title>{html.escape(tip)}</title></rect>')
            if s.cause is not None and not (s.kind is Kind.NO_DATA and s.cause is Cause.UNKNOWN):
                out.append(f'<rect x="{left:.2f}" y="{y + BAR + 2}" width="{w:.2f}" height="{STRIP}" '
                           f'fill="{CAUSE_COLOUR[s.cause]}"><title>{html.escape(tip)}</title></rect>')
    out.append("</svg>")
    return "".join(out)


def _keys(devices: bool = False) -> str:
    parts = [f'<span class="key"><span class="dot" style="background:{CLASS_COLOUR[k]}"></span>'
             f'<b>{CLASS_NAME[k]}</b>: {html.escape(CLASS_MEANING[k])}</span>' for k in Kind]
    strips = {**STRIP_NAME, Cause.DEVICE_UNREACHABLE: "device did not answer"} if devices else STRIP_NAME
    parts += [f'<span class="key"><span class="dot" style="background:{CAUSE_COLOUR[c]};height:5px"></span>'
              f'strip: {html.escape(strips[c])}</span>' for c in strips]
    return '<div class="keys">' + "".join(parts) + "</div>"


def _summed(cov: Coverage) -> list:
    """The days the cards add up: with the devices setting the merged row's
    (each device's would count a slot twice), or the one device's."""
    if cov.devices is not None and ALL_DEVICES in cov.hosts:
        return [d for d in cov.days if d.host == ALL_DEVICES]
    return list(cov.days)


def _cards(cov: Coverage) -> str:
    total = {k: sum(d.seconds[k] for d in _summed(cov)) for k in Kind}
    cards = []
    for k in (Kind.ACTIVE, Kind.GAP, Kind.AWAY, Kind.NO_DATA):
        label = "active, no window data" if k is Kind.GAP else CLASS_NAME[k].lower()
        cards.append(f'<div class="card"><div class="n">{_hm(total[k])}</div><div class="l">'
                     f'<span class="dot" style="background:{CLASS_COLOUR[k]}"></span>{label}</div></div>')
    return '<div class="cards">' + "".join(cards) + "</div>"


def _table(cov: Coverage) -> str:
    multi = len(cov.hosts) > 1
    column = "<th>Device</th>" if cov.devices is not None else "<th>Host</th>"
    rows = ["<table><thead><tr><th>Day</th>" + (column if multi else "")
            + "<th>Active</th><th>Without window data</th><th>Away</th><th>No data</th><th></th></tr></thead><tbody>"]
    for d in cov.days:
        s = d.seconds
        length = d.length or 1
        mini = "".join(f'<span style="width:{100 * s[k] / length:.2f}%;background:{CLASS_COLOUR[k]}"></span>'
                       for k in (Kind.ACTIVE, Kind.GAP, Kind.AWAY, Kind.NO_DATA) if s[k])
        rows.append(f"<tr><td>{d.day.strftime('%a %d %b %Y')}</td>" + (f"<td>{html.escape(d.host)}</td>" if multi else "")
                    + f"<td>{_hm(s[Kind.ACTIVE])}</td><td class=\"{'bad' if s[Kind.GAP] else ''}\">{_hm(s[Kind.GAP])}</td>"
                    f"<td>{_hm(s[Kind.AWAY])}</td><td>{_hm(s[Kind.NO_DATA])}</td>"
                    f'<td><div class="mini">{mini}</div></td></tr>')
    rows.append("</tbody></table>")
    return "".join(rows)


def _causes(cov: Coverage) -> str:
    found: dict[Cause, list[Stretch]] = {}
    for s in cov.stretches:
        # The merged row's causes are its devices': each is listed once, under its device.
        if s.cause is not None and not (cov.devices is not None and s.host == ALL_DEVICES):
            found.setdefault(s.cause, []).append(s)
    if not any(s.kind is Kind.GAP for s in cov.stretches) and set(found) <= {Cause.UNKNOWN}:
        return ('<div class="good">No gaps: wherever you were at the computer, window data covers it; '
                "every stretch without data has no cause in LifeLog's records (the machine was off or asleep).</div>")
    cards = []
    for cause in (Cause.AW_DOWN, Cause.SOURCE_SILENT, Cause.LIFELOG_DOWN, Cause.UNKNOWN, Cause.DEVICE_UNREACHABLE):
        stretches = found.get(cause)
        if not stretches:
            continue
        gap = sum(s.seconds for s in stretches if s.kind is Kind.GAP)
        none = sum(s.seconds for s in stretches if s.kind is Kind.NO_DATA)
        longest = sorted(stretches, key=lambda s: -s.seconds)[:6]
        items = "".join(f"<li>{_span(s, cov)}: {_hm(s.seconds)} "
                        f"{'gap' if s.kind is Kind.GAP else 'no data'}"
                        + (f" ({html.escape(s.host)})" if len(cov.hosts) > 1 else "") + "</li>" for s in longest)
        more = f"<li>and {len(stretches) - len(longest)} more</li>" if len(stretches) > len(longest) else ""
        cards.append(
            f'<div class="cause" style="border-color:{CAUSE_COLOUR[cause]}"><h3>{_heading(CAUSE_NAME[cause])}</h3>'
            f'<div class="t"><code>{cause}</code>: {_hm(gap)} of gaps, {_hm(none)} without data</div>'
            f"<p>{html.escape(CAUSE_MEANING[cause])}</p><p class=\"fix\"><b>What to do:</b> "
            f"{html.escape(CAUSE_FIX[cause])}</p><ul>{items}{more}</ul></div>")
    return '<div class="causes">' + "".join(cards) + "</div>"


def render_html(cov: Coverage, generated_at: datetime | None = None) -> str:
    minutes = cov.slot_seconds // 60
    title = f"LifeLog coverage, {_when(cov.since, cov)} to {_when(cov.until, cov)}"
    body = [f"<h1>Where your time was recorded</h1><p class=\"sub\">{html.escape(', '.join(cov.hosts) or 'no hosts')}"
            f" &middot; {_when(cov.since, cov)} to {_when(cov.until, cov)} &middot; {minutes}-minute slots</p>",
            _cards(cov), "<h2>Timeline</h2>"]
    if not cov.hosts:
        body.append('<div class="panel">No afk or window buckets in the database yet.</div>')
    for host in cov.hosts:
        if len(cov.hosts) > 1:
            body.append(f"<h3>{html.escape(host)}</h3>")
        body.append(f'<div class="panel">{_timeline(cov, host)}{_keys(cov.devices is not None)}</div>')
    body += ["<h2>Days</h2>", f'<div class="panel">{_table(cov)}</div>', "<h2>Why data is missing</h2>", _causes(cov)]
    stamp = (generated_at or datetime.now().astimezone()).isoformat(timespec="seconds")
    body.append(f"<footer>Made by <code>lifelog coverage</code> at {stamp}.</footer>")
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head>"
            f"<body><main>{''.join(body)}</main></body></html>\n")


def write_html(cov: Coverage, path: str | os.PathLike[str]) -> Path:
    """Write the page atomically (aside, then renamed): a reader never sees half a file."""
    return write_atomically(path, render_html(cov))
