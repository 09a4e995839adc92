"""Coverage: what is known about each stretch of time, and why data is
missing (SPEC section 13). Pure: facts and the range in, stretches out.

Time is a float of unix seconds inside this module; days are local days
(`tz`, or the machine's own zone when None). The range is cut into slots of
`slot_seconds` laid from each local midnight (the last slot of a day may be
shorter; so may the first and last of the range), and each slot of each host
gets one class from what its afk and window buckets cover in it:

- `no_data`: no afk data at all;
- `away`: more `afk` than `not-afk` time;
- otherwise the user was present: `active` when window data falls in the
  slot, else `gap`. So a slot with window data while `not-afk` is never a gap.

A `gap` or `no_data` slot carries its most likely cause, the first of these
whose evidence overlaps the slot:

- `aw_down`: a health check that was not healthy speaks for the slot (each
  check speaks for the time nearer to it than to the checks beside it, at
  most `aw_check_reach` either side);
- `source_silent`: the source whose data is missing (the window source for a
  gap, the afk source for no data) was recorded `silent` in source_log, from
  `source_silence_minutes` before the row (a source is recorded silent only
  once it has been quiet that long) until its next state;
- `lifelog_down`: LifeLog's watcher was not running (`lifelog_down_spans`);
- `unknown`.
"""

from __future__ import annotations

import enum
import math
from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from typing import Iterable, Mapping, Sequence

# The summary's unit: per bucket and minute, the seconds covered (coverage_cells).
CELL_SECONDS = 60


class Kind(enum.StrEnum):
    ACTIVE = "active"
    AWAY = "away"
    NO_DATA = "no_data"
    GAP = "gap"


class Cause(enum.StrEnum):
    AW_DOWN = "aw_down"
    SOURCE_SILENT = "source_silent"
    LIFELOG_DOWN = "lifelog_down"
    UNKNOWN = "unknown"


# The classes that carry a cause, and the order in which causes are tried.
EXPLAINED = frozenset({Kind.GAP, Kind.NO_DATA})
KINDS = (Kind.ACTIVE, Kind.AWAY, Kind.GAP, Kind.NO_DATA)

AFK = "afk"
NOT_AFK = "not-afk"
SILENT = "silent"
HEALTHY = "healthy"


# -- local days and slots ------------------------------------------------------------------------


def local_midnight(d: date, tz: tzinfo | None) -> float:
    """The local midnight that starts day `d`, as unix seconds."""
    if tz is None:  # the machine's zone, DST included (mktime underneath)
        return datetime(d.year, d.month, d.day).astimezone().timestamp()
    return datetime(d.year, d.month, d.day, tzinfo=tz).timestamp()


def local_date(t: float, tz: tzinfo | None) -> date:
    return (datetime.fromtimestamp(t).astimezone() if tz is None else datetime.fromtimestamp(t, tz)).date()


def to_local_iso(t: float, tz: tzinfo | None) -> str:
    dt = datetime.fromtimestamp(t).astimezone() if tz is None else datetime.fromtimestamp(t, tz)
    return dt.isoformat(timespec="seconds")


@dataclass(frozen=True)
class Slot:
    start: float
    end: float
    day: date


def make_slots(since: float, until: float, slot_seconds: int, tz: tzinfo | None) -> list[Slot]:
    """The slots that tile [since, until) exactly: laid every `slot_seconds`
    from each local midnight, cut at the next midnight and at the range's ends."""
    if slot_seconds <= 0:
        raise ValueError("slot_seconds must be positive")
    slots: list[Slot] = []
    if until <= since:
        return slots
    day = local_date(since, tz)
    day_start = local_midnight(day, tz)
    while day_start < until:
        next_day = day + timedelta(days=1)
        day_end = local_midnight(next_day, tz)
        lo, hi = max(day_start, since), min(day_end, until)
        if lo < hi:
            start = day_start + math.floor((lo - day_start) / slot_seconds) * slot_seconds
            while start < hi:
                end = min(start + slot_seconds, day_end)
                slots.append(Slot(max(start, lo), min(end, hi), day))
                start = end
        day, day_start = next_day, day_end
    return slots


def unit_seconds(slots: Sequence[Slot], since: float) -> int:
    """The largest step, a whole number of cells, from `since` to every slot
    boundary: the summary is added up in SQL by this step, and each step falls
    in one slot (15-minute slots give 900, DST days included)."""
    g = 0
    for s in slots:
        g = math.gcd(g, int(round(s.start - since)))
    if slots:
        g = math.gcd(g, int(round(slots[-1].end - since)))
    return g or CELL_SECONDS


# -- what the events cover ------------------------------------------------------------------------

Cells = dict[int, dict[str, float]]  # cell (unix seconds // 60) -> status -> seconds covered


def cells_of_events(events: Iterable[tuple[float, float, str]]) -> Cells:
    """Reference for the SQL summary (lifelog.coverage_cells): each event
    (start, duration, status) split exactly over the minutes it covers. The
    start is rounded to the millisecond, as the SQL side does."""
    cells: Cells = {}
    for start, duration, status in events:
        start = round(start, 3)
        end = start + max(duration, 0.0)
        c = math.floor(start / CELL_SECONDS)
        t = start
        while t < end:
            cut = min((c + 1) * CELL_SECONDS, end)
            row = cells.setdefault(c, {})
            row[status] = row.get(status, 0.0) + (cut - t)
            t, c = cut, c + 1
    return cells


@dataclass
class Measure:
    """What one host's buckets cover in one slot, in seconds."""

    not_afk: float = 0.0
    afk: float = 0.0
    window: float = 0.0


# Per unit of `unit_seconds` from since: status -> seconds, for one host's
# afk buckets or window buckets together.
Units = Mapping[int, Mapping[str, float]]


def units_of_cells(cells: Cells, since: float, until: float, unit: int) -> dict[int, dict[str, float]]:
    """The cells in [since, until) added up by unit (the SQL side does this in the query)."""
    out: dict[int, dict[str, float]] = {}
    lo, hi = since / CELL_SECONDS, until / CELL_SECONDS
    for c, row in cells.items():
        if lo <= c < hi:
            k = int((c * CELL_SECONDS - since) // unit)
            acc = out.setdefault(k, {})
            for status, seconds in row.items():
                acc[status] = acc.get(status, 0.0) + seconds
    return out


def slot_measures(slots: Sequence[Slot], since: float, unit: int, afk: Units, window: Units) -> list[Measure]:
    """One Measure per slot from the afk and window units."""
    starts = [s.start for s in slots]
    measures = [Measure() for _ in slots]

    def slot_of(k: int) -> int | None:
        i = bisect_right(starts, since + k * unit) - 1
        return i if 0 <= i < len(slots) else None

    for k, row in afk.items():
        i = slot_of(k)
        if i is not None:
            measures[i].not_afk += row.get(NOT_AFK, 0.0)
            measures[i].afk += row.get(AFK, 0.0)
    for k, row in window.items():
        i = slot_of(k)
        if i is not None:
            measures[i].window += sum(row.values())
    return measures


def classify_measure(m: Measure) -> Kind:
    if m.not_afk <= 0 and m.afk <= 0:
        return Kind.NO_DATA
    if m.not_afk >= m.afk:  # present for at least half of what the afk watcher saw
        return Kind.ACTIVE if m.window > 0 else Kind.GAP
    return Kind.AWAY


# -- the evidence for causes ------------------------------------------------------------------------


class Spans:
    """Sorted, disjoint [lo, hi) intervals, asked whether they meet a slot."""

    def __init__(self, pairs: Iterable[tuple[float, float]] = ()):
        merged: list[list[float]] = []
        for lo, hi in sorted(p for p in pairs if p[1] > p[0]):
            if merged and lo <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        self.los = [p[0] for p in merged]
        self.his = [p[1] for p in merged]

    def overlaps(self, lo: float, hi: float) -> bool:
        i = bisect_right(self.his, lo)  # the first span ending after lo
        return i < len(self.los) and self.los[i] < hi

    def pairs(self) -> list[tuple[float, float]]:
        return list(zip(self.los, self.his))

    def __or__(self, other: "Spans") -> "Spans":
        return Spans(self.pairs() + other.pairs())

    def __repr__(self) -> str:
        return f"Spans({self.pairs()!r})"


def aw_down_spans(checks: Iterable[tuple[float, str]], reach: float) -> Spans:
    """Where the nearest health check (within `reach`) was not healthy.
    `checks`: (checked_at, status)."""
    rows = sorted(checks)
    spans = []
    for i, (t, status) in enumerate(rows):
        if status == HEALTHY:
            continue
        lo = t - reach if i == 0 else max(t - reach, (rows[i - 1][0] + t) / 2)
        hi = t + reach if i == len(rows) - 1 else min(t + reach, (t + rows[i + 1][0]) / 2)
        spans.append((lo, hi))
    return Spans(spans)


def silent_spans(changes: Iterable[tuple[float, str]], lead: float, end: float) -> Spans:
    """When one source was silent, from its source_log rows (at, state): from
    `lead` before the row that recorded it silent to its next row (or `end`)."""
    rows = sorted(changes)
    spans = []
    for i, (at, state) in enumerate(rows):
        if state == SILENT:
            spans.append((at - lead, rows[i + 1][0] if i + 1 < len(rows) else max(end, at)))
    return Spans(spans)


@dataclass(frozen=True)
class Run:
    """One watcher process, from watcher_runs."""

    started: float
    last_heartbeat: float
    boot: float | None = None  # when the machine had booted


def lifelog_down_spans(runs: Iterable[Run], grace: float, now: float, boot_now: float | None) -> Spans:
    """When LifeLog's watcher was not running while the machine was up.

    Between two runs (and after the last one, up to `now`), the watcher was
    down from `grace` after the last heartbeat (the heartbeat timeout) to the
    next start; when the next run is on a later boot, the machine was off
    until that boot, so only from `grace` after the boot. Before the first
    run LifeLog has no record: no claim is made."""
    ordered = sorted(runs, key=lambda r: r.started)
    spans = []

    def down(last_heartbeat: float, next_start: float, next_boot: float | None) -> None:
        lo = last_heartbeat + grace
        if next_boot is not None and next_boot > last_heartbeat:  # rebooted in between
            lo = max(lo, next_boot + grace)
        if lo < next_start:
            spans.append((lo, next_start))

    for a, b in zip(ordered, ordered[1:]):
        down(a.last_heartbeat, b.started, b.boot)
    if ordered:
        down(max(r.last_heartbeat for r in ordered), now, boot_now)
    return Spans(spans)


@dataclass(frozen=True)
class HostInput:
    host: str
    measures: Sequence[Measure]  # one per slot
    window_silent: Spans = field(default_factory=Spans)
    afk_silent: Spans = field(default_factory=Spans)


def cause_of(kind: Kind, lo: float, hi: float, aw_down: Spans, silent: Spans, lifelog_down: Spans) -> Cause | None:
    """The first cause whose evidence meets [lo, hi); None for active and away."""
    if kind not in EXPLAINED:
        return None
    if aw_down.overlaps(lo, hi):
        return Cause.AW_DOWN
    if silent.overlaps(lo, hi):
        return Cause.SOURCE_SILENT
    if lifelog_down.overlaps(lo, hi):
        return Cause.LIFELOG_DOWN
    return Cause.UNKNOWN


# -- the result ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlotResult:
    start: float
    end: float
    day: date
    kind: Kind
    cause: Cause | None


@dataclass(frozen=True)
class Stretch:
    host: str
    start: float
    end: float
    kind: Kind
    cause: Cause | None

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class DayTotals:
    day: date
    host: str
    seconds: Mapping[Kind, float]

    @property
    def length(self) -> float:
        return sum(self.seconds.values())


@dataclass(frozen=True)
class Coverage:
    since: float
    until: float
    slot_seconds: int
    tz: tzinfo | None
    hosts: list[str]
    slots: dict[str, list[SlotResult]]
    days: list[DayTotals]
    stretches: list[Stretch]

    def to_json(self) -> dict:
        """SPEC section 13's document."""
        def num(x: float) -> int | float:
            return int(x) if float(x).is_integer() else round(x, 3)

        minutes = self.slot_seconds / 60
        return {
            "since": to_local_iso(self.since, self.tz),
            "until": to_local_iso(self.until, self.tz),
            "slot_minutes": num(minutes),
            "days": [{"date": d.day.isoformat(), "host": d.host,
                      "active_seconds": num(d.seconds[Kind.ACTIVE]), "away_seconds": num(d.seconds[Kind.AWAY]),
                      "no_data_seconds": num(d.seconds[Kind.NO_DATA]), "gap_seconds": num(d.seconds[Kind.GAP])}
                     for d in self.days],
            "stretches": [{"host": s.host, "start": to_local_iso(s.start, self.tz),
                           "end": to_local_iso(s.end, self.tz), "class": str(s.kind),
                           "cause": None if s.cause is None else str(s.cause)}
                          for s in self.stretches],
        }


def classify(since: float, until: float, slot_seconds: int, tz: tzinfo | None, slots: Sequence[Slot],
             hosts: Sequence[HostInput], aw_down: Spans, lifelog_down: Spans) -> Coverage:
    """Every slot of every host classified and explained; then the stretches
    (adjacent slots of one class and cause, merged, across midnight too) and
    the per-day totals."""
    by_host: dict[str, list[SlotResult]] = {}
    days: list[DayTotals] = []
    stretches: list[Stretch] = []
    for h in hosts:
        results = []
        for slot, m in zip(slots, h.measures, strict=True):
            kind = classify_measure(m)
            silent = h.window_silent if kind is Kind.GAP else h.afk_silent
            results.append(SlotResult(slot.start, slot.end, slot.day, kind,
                                      cause_of(kind, slot.start, slot.end, aw_down, silent, lifelog_down)))
        by_host[h.host] = results
        totals: dict[date, dict[Kind, float]] = {}
        for r in results:
            row = totals.setdefault(r.day, {k: 0.0 for k in KINDS})
            row[r.kind] += r.end - r.start
        days.extend(DayTotals(d, h.host, row) for d, row in totals.items())
        for r in results:
            last = stretches[-1] if stretches else None
            if (last is not None and last.host == h.host and last.kind is r.kind and last.cause is r.cause
                    and last.end == r.start):
                stretches[-1] = Stretch(h.host, last.start, r.end, r.kind, r.cause)
            else:
                stretches.append(Stretch(h.host, r.start, r.end, r.kind, r.cause))
    days.sort(key=lambda d: (d.day, d.host))
    return Coverage(since, until, slot_seconds, tz, [h.host for h in hosts], by_host, days, stretches)

