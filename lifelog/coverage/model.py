"""Coverage: what is known about each stretch of time, and why data is
missing (README "Finding gaps"). Pure: facts and the range in, stretches out.

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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from itertools import pairwise
from typing import NamedTuple

from lifelog.core.verdicts import AWStatus, SourceState

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
    # Only with the `devices` setting (SPEC section 14): no data from a device
    # for a stretch it did not answer LifeLog, and never reported afterwards.
    DEVICE_UNREACHABLE = "device_unreachable"


# Each cause in words, as the terminal legend and the HTML cards both name it.
CAUSE_NAME = {Cause.AW_DOWN: "ActivityWatch was down", Cause.SOURCE_SILENT: "a watcher was silent",
              Cause.LIFELOG_DOWN: "LifeLog was not running", Cause.UNKNOWN: "no record explains it",
              Cause.DEVICE_UNREACHABLE: "the device did not answer"}
# The name of the merged row with the `devices` setting.
ALL_DEVICES = "all devices"


# The classes that carry a cause, and the order in which causes are tried.
EXPLAINED = frozenset({Kind.GAP, Kind.NO_DATA})
KINDS = (Kind.ACTIVE, Kind.AWAY, Kind.GAP, Kind.NO_DATA)

AFK = "afk"
NOT_AFK = "not-afk"


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


class Slot(NamedTuple):  # a tuple: a year holds 35,000 of them
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


def cells_of_events(events: Iterable[tuple[float, float, str]], rounded: bool = False) -> Cells:
    """Each event (start, duration, status) split exactly over the minutes it
    covers. Starts are taken to the millisecond (SQL hands them over rounded
    so: `rounded`), so a start a hair before a minute's edge is not split."""
    cells: Cells = {}
    size = CELL_SECONDS
    for start, duration, status in events:
        if not rounded:
            start = round(start, 3)
        if duration is None or duration <= 0:
            continue
        end = start + duration
        c = int(start // size)
        edge = (c + 1) * size
        if end <= edge:  # most events: inside one minute
            row = cells.get(c)
            if row is None:
                cells[c] = {status: duration}
            else:
                row[status] = row.get(status, 0.0) + duration
            continue
        t = start
        while t < end:
            cut = min(edge, end)
            row = cells.setdefault(c, {})
            row[status] = row.get(status, 0.0) + (cut - t)
            t, c, edge = cut, c + 1, edge + size
    return cells


@dataclass(slots=True)
class Measure:
    """What one host's buckets cover in one slot, in seconds."""

    not_afk: float = 0.0
    afk: float = 0.0
    window: float = 0.0


# What one host's afk buckets, or window buckets, cover per unit of
# `unit_seconds` from since: unit index -> [not-afk, afk, any status] seconds.
Units = dict[int, list[float]]


def units_of_cells(cells: Cells, since: float, until: float, unit: int) -> Units:
    """The cells in [since, until) added up by unit (the SQL side does this in the query)."""
    out: Units = {}
    lo, hi = since / CELL_SECONDS, until / CELL_SECONDS
    for c, row in cells.items():
        if lo <= c < hi:
            acc = out.setdefault(int((c * CELL_SECONDS - since) // unit), [0.0, 0.0, 0.0])
            acc[0] += row.get(NOT_AFK, 0.0)
            acc[1] += row.get(AFK, 0.0)
            acc[2] += sum(row.values())
    return out


def add_units(into: Units, more: Units) -> Units:
    """Two buckets' units together (a host with two afk buckets, on two servers)."""
    if not into:
        into.update(more)
        return into
    for k, (a, b, c) in more.items():
        acc = into.get(k)
        if acc is None:
            into[k] = [a, b, c]
        else:
            into[k] = [acc[0] + a, acc[1] + b, acc[2] + c]
    return into


def slot_measures(slots: Sequence[Slot], since: float, unit: int, afk: Units, window: Units) -> list[Measure]:
    """One Measure per slot from the afk and window units."""
    measures = [Measure() for _ in slots]
    if not slots:
        return measures
    # Which slot each unit falls in: one walk along both (units never straddle a slot).
    n = int(-(-(slots[-1].end - since) // unit))
    slot_of = [0] * n
    i, ends = 0, [s.end for s in slots]
    for k in range(n):
        t = since + k * unit
        while i < len(ends) - 1 and ends[i] <= t:
            i += 1
        slot_of[k] = i
    for k, (not_afk, afk_seconds, _) in afk.items():
        if 0 <= k < n:
            m = measures[slot_of[k]]
            m.not_afk += not_afk
            m.afk += afk_seconds
    for k, row in window.items():
        if 0 <= k < n:
            measures[slot_of[k]].window += row[2]
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
        return list(zip(self.los, self.his, strict=True))

    def __or__(self, other: Spans) -> Spans:
        return Spans(self.pairs() + other.pairs())

    def __repr__(self) -> str:
        return f"Spans({self.pairs()!r})"


def aw_down_spans(checks: Iterable[tuple[float, str]], reach: float) -> Spans:
    """Where the nearest health check (within `reach`) was not healthy.
    `checks`: (checked_at, status)."""
    rows = sorted(checks)
    spans = []
    for i, (t, status) in enumerate(rows):
        if status == AWStatus.HEALTHY:
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
        if state == SourceState.SILENT:
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

    for a, b in pairwise(ordered):
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
    # With the `devices` setting: when this device did not answer, and its own AW health checks.
    unreachable: Spans = field(default_factory=Spans)
    aw_down: Spans | None = None  # None: the health checks of the one AW


def cause_of(kind: Kind, lo: float, hi: float, aw_down: Spans, silent: Spans, lifelog_down: Spans,
             unreachable: Spans | None = None) -> Cause | None:
    """The first cause whose evidence meets [lo, hi); None for active and away.
    A device that did not answer explains its no data first (SPEC section 14):
    had it recorded then, it would have reported it since."""
    if kind not in EXPLAINED:
        return None
    if kind is Kind.NO_DATA and unreachable is not None and unreachable.overlaps(lo, hi):
        return Cause.DEVICE_UNREACHABLE
    if aw_down.overlaps(lo, hi):
        return Cause.AW_DOWN
    if silent.overlaps(lo, hi):
        return Cause.SOURCE_SILENT
    if lifelog_down.overlaps(lo, hi):
        return Cause.LIFELOG_DOWN
    return Cause.UNKNOWN


# -- the result ------------------------------------------------------------------------------------


class SlotResult(NamedTuple):
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
    hosts: list[str]  # the rows; with the `devices` setting each device's name, then ALL_DEVICES
    slots: dict[str, list[SlotResult]]
    days: list[DayTotals]
    stretches: list[Stretch]
    # With the `devices` setting: each row -> (its device's name or None for
    # the merged row, the host name its AW reports); None without it.
    devices: Mapping[str, tuple[str | None, str | None]] | None = None

    def device_of(self, row: str) -> str | None:
        return None if self.devices is None else self.devices.get(row, (None, None))[0]

    def to_json(self) -> dict:
        """The document `lifelog coverage --json` prints (README "Finding gaps")."""
        def num(x: float) -> int | float:
            return int(x) if float(x).is_integer() else round(x, 3)

        minutes = self.slot_seconds / 60
        if self.devices is not None:
            return self._device_json(num)
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

    def _device_json(self, num) -> dict:
        """With the `devices` setting: days and stretches carry `device`
        (null for the merged row) and `host` the host name its AW reports."""
        rows = self.devices or {}

        def host(row: str) -> str | None:
            return rows[row][1] if row in rows else row

        return {
            "since": to_local_iso(self.since, self.tz),
            "until": to_local_iso(self.until, self.tz),
            "slot_minutes": num(self.slot_seconds / 60),
            "days": [{"date": d.day.isoformat(), "device": self.device_of(d.host), "host": host(d.host),
                      "active_seconds": num(d.seconds[Kind.ACTIVE]), "away_seconds": num(d.seconds[Kind.AWAY]),
                      "no_data_seconds": num(d.seconds[Kind.NO_DATA]), "gap_seconds": num(d.seconds[Kind.GAP])}
                     for d in self.days],
            "stretches": [{"device": self.device_of(s.host), "host": host(s.host),
                           "start": to_local_iso(s.start, self.tz), "end": to_local_iso(s.end, self.tz),
                           "class": str(s.kind), "cause": None if s.cause is None else str(s.cause)}
                          for s in self.stretches],
        }


def classify(since: float, until: float, slot_seconds: int, tz: tzinfo | None, slots: Sequence[Slot],
             hosts: Sequence[HostInput], aw_down: Spans, lifelog_down: Spans) -> Coverage:
    """Every slot of every host classified and explained; then the stretches
    (adjacent slots of one class and cause, merged, across midnight too) and
    the per-day totals. (A year is 35,000 slots a host: the loop is kept plain.)"""
    by_host: dict[str, list[SlotResult]] = {}
    days: list[DayTotals] = []
    stretches: list[Stretch] = []
    for h in hosts:
        results: list[SlotResult] = []
        totals: dict[date, dict[Kind, float]] = {}
        row: dict[Kind, float] = {}
        day = None
        last_kind = last_cause = None
        last_start = last_end = 0.0
        for slot, m in zip(slots, h.measures, strict=True):
            start, end, slot_day = slot
            kind = classify_measure(m)
            cause = None
            if kind in EXPLAINED:
                cause = cause_of(kind, start, end, aw_down if h.aw_down is None else h.aw_down,
                                 h.window_silent if kind is Kind.GAP else h.afk_silent, lifelog_down, h.unreachable)
            results.append(SlotResult(start, end, slot_day, kind, cause))
            if slot_day != day:
                day = slot_day
                row = totals.setdefault(day, {k: 0.0 for k in KINDS})
            row[kind] += end - start
            if kind is last_kind and cause is last_cause and start == last_end:
                last_end = end
            else:
                if last_kind is not None:
                    stretches.append(Stretch(h.host, last_start, last_end, last_kind, last_cause))
                last_kind, last_cause, last_start, last_end = kind, cause, start, end
        if last_kind is not None:
            stretches.append(Stretch(h.host, last_start, last_end, last_kind, last_cause))
        by_host[h.host] = results
        days.extend(DayTotals(d, h.host, t) for d, t in totals.items())
    days.sort(key=lambda d: (d.day, d.host))
    return Coverage(since, until, slot_seconds, tz, [h.host for h in hosts], by_host, days, stretches)


# -- several devices (SPEC section 14) ---------------------------------------------------------------

# Which device's slot speaks for the merged row: any active one; else a gap
# (someone was present, no device has window data); else away; else no data.
MERGE_ORDER = (Kind.ACTIVE, Kind.GAP, Kind.AWAY, Kind.NO_DATA)


def merge_slot(results: Sequence[SlotResult]) -> SlotResult:
    """One slot of the `all devices` row from each device's result for it:
    `active` when any device was active, a `gap` only when no device was
    active and one saw you present without window data; the cause is that of
    first device (in the table's order) with the chosen class and a cause
    other than `unknown`, else the first with the chosen class."""
    for kind in MERGE_ORDER:
        found = [r for r in results if r.kind is kind]
        if found:
            return next((r for r in found if r.cause not in (None, Cause.UNKNOWN)), found[0])
    raise ValueError("merge_slot needs at least one device's result")


def per_device(cov: Coverage, order: Sequence[str], names: Mapping[str, str | None],
               merge: bool = True) -> Coverage:
    """`cov` (one row per device, named in `order`) as device rows, with the
    `all devices` row after them unless not `merge` (`--device`); days in
    the table's order, stretches by row, as `classify` gives them.
    `names`: each row's host name."""
    rows: dict[str, tuple[str | None, str | None]] = {row: (row, names.get(row)) for row in order}
    if not merge or not order:
        rank = {row: i for i, row in enumerate(order)}
        days = sorted(cov.days, key=lambda d: (d.day, rank.get(d.host, len(rank))))
        return Coverage(cov.since, cov.until, cov.slot_seconds, cov.tz, list(order), cov.slots, days,
                        cov.stretches, rows)
    merged = [merge_slot(group) for group in zip(*(cov.slots[row] for row in order), strict=True)]
    slots = dict(cov.slots)
    slots[ALL_DEVICES] = merged
    totals: dict[date, dict[Kind, float]] = {}
    stretches = list(cov.stretches)
    current: Stretch | None = None
    for r in merged:
        totals.setdefault(r.day, {k: 0.0 for k in KINDS})[r.kind] += r.end - r.start
        if current is not None and current.kind is r.kind and current.cause is r.cause and current.end == r.start:
            current = Stretch(ALL_DEVICES, current.start, r.end, r.kind, r.cause)
        else:
            if current is not None:
                stretches.append(current)
            current = Stretch(ALL_DEVICES, r.start, r.end, r.kind, r.cause)
    if current is not None:
        stretches.append(current)
    days = list(cov.days) + [DayTotals(d, ALL_DEVICES, t) for d, t in totals.items()]
    rank = {row: i for i, row in enumerate([*order, ALL_DEVICES])}
    days.sort(key=lambda d: (d.day, rank.get(d.host, len(rank))))
    rows[ALL_DEVICES] = (None, None)
    return Coverage(cov.since, cov.until, cov.slot_seconds, cov.tz, [*order, ALL_DEVICES], slots, days,
                    stretches, rows)
