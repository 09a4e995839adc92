"""What to store from what AW returned: pure decisions, no I/O.

AW answers an events query with every event that overlaps the window, but it
clips the ones that cross an edge: an event overlapping `start` comes back
with its timestamp moved to `start` (aw-server-python rounds `start` down to
the millisecond first), one overlapping `end` with its duration cut so it ends
at `end` (python rounds `end` up by a millisecond). A clipped copy looks like
any other event, so a returned event that *touches* an edge of the window is
treated as suspect: it is never stored as the truth. Either the stored row
already covers it (same data, spanning the clipped copy; accepted where the
caller trusts that, e.g. the live poll), or its whole version is fetched by id
(`GET /buckets/{b}/events/{id}` never clips).

For a whole event the stored row, keyed (server, bucket, id), is compared:

- no row: insert;
- another timestamp or other data: another event under a reused or
  rewritten id: the old row is archived (events_replaced), then overwritten;
- another duration only (a heartbeat grew it), or the row was marked deleted
  in AW and is back: update in place;
- otherwise nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from lifelog.core.timeutil import UTC, parse_iso, to_iso

# AW rounds the window's edges to the millisecond; a copy clipped at an edge
# lies within this of it. A false alarm only costs a fetch by id.
EDGE_TOLERANCE = timedelta(milliseconds=1)


class Event(NamedTuple):
    """An AW event as stored: canonical ISO times, compact JSON data."""

    event_id: int
    timestamp: str
    duration: float
    data: str
    ended_at: str


class Stored(NamedTuple):
    """The parts of an events row the decisions need."""

    event_id: int
    timestamp: str
    duration: float
    data: str
    ended_at: str
    deleted: bool = False


@dataclass(frozen=True)
class Window:
    """The query window: None is an open side (no `start` / no `end` sent)."""

    start: datetime | None = None
    end: datetime | None = None
    # The suspect zones' edges as stored text, computed once per window.
    start_edge: str | None = field(init=False, repr=False, compare=False)
    end_edge: str | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "start_edge",
                           None if self.start is None else to_iso(self.start + EDGE_TOLERANCE))
        object.__setattr__(self, "end_edge", None if self.end is None else to_iso(self.end - EDGE_TOLERANCE))


OPEN = Window()


@dataclass
class WritePlan:
    inserts: list[Event] = field(default_factory=list)
    updates: list[Event] = field(default_factory=list)     # same event, new duration / undeleted
    replaces: list[Event] = field(default_factory=list)    # another event under the same id
    fetch_ids: list[int] = field(default_factory=list)     # suspect and not covered: get whole by id
    unchanged: int = 0


def canonical_ts(text: str) -> str:
    # aw-server-python already sends the stored form; skip the parse then.
    if len(text) == 32 and text[19] == "." and text.endswith("+00:00"):
        return text
    return to_iso(parse_iso(text))


# Key order kept as AW sent it (faithful); ensure_ascii=False keeps text
# readable in sqlite3. json.dumps with separators builds a new encoder per
# call, which costs more than encoding a small `data`: build the C one once.
_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
try:
    # c_make_encoder: CPython's C encoder, not in the type stubs (hence the except below).
    from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]

    # markers=None: no cycle check; the input came out of json.loads.
    _c_encode = c_make_encoder(None, _encoder.default, encode_basestring, None, ":", ",", False, False, True)
except (ImportError, TypeError):  # no C accelerator: the slow, equal path
    _c_encode = None


def compact_json(value: Any) -> str:
    if _c_encode is None or isinstance(value, str):
        return _encoder.encode(value)
    return "".join(_c_encode(value, 0))


def normalise(raw: Mapping[str, Any]) -> Event:
    """An AW wire event (python's `+00:00` or rust's `Z`/nanoseconds) as stored."""
    ts = canonical_ts(raw["timestamp"])
    duration = float(raw["duration"])
    try:
        # ts is canonical (UTC, +00:00), so isoformat gives the stored form directly.
        ended = (datetime.fromisoformat(ts) + timedelta(seconds=duration)).isoformat(timespec="microseconds")
    except OverflowError:  # an absurd duration: AW accepts any duration, even negative ones
        ended = ts
    return Event(int(raw["id"]), ts, duration, compact_json(raw.get("data", {})), ended)


def same_data(a: str, b: str) -> bool:
    return a == b or json.loads(a) == json.loads(b)


def clipped_at_start(e: Event | Stored, window: Window) -> bool:
    return window.start_edge is not None and e.timestamp <= window.start_edge


def clipped_at_end(e: Event | Stored, window: Window) -> bool:
    return window.end_edge is not None and e.ended_at >= window.end_edge


def suspect(e: Event, window: Window) -> bool:
    """Might be a clipped copy rather than the event itself."""
    # Stored ISO text sorts as time, so the edges compare as text (fast on a page).
    return (window.start_edge is not None and e.timestamp <= window.start_edge) or (
        window.end_edge is not None and e.ended_at >= window.end_edge)


def covers(s: Stored, e: Event, window: Window) -> bool:
    """The stored row is the whole of which `e` is a clipped copy."""
    if s.deleted or not same_data(s.data, e.data):
        return False
    s_start, s_end = datetime.fromisoformat(s.timestamp), datetime.fromisoformat(s.ended_at)
    e_start, e_end = datetime.fromisoformat(e.timestamp), datetime.fromisoformat(e.ended_at)
    if clipped_at_start(e, window):
        if s_start > e_start + EDGE_TOLERANCE:
            return False
    elif abs(s_start - e_start) > EDGE_TOLERANCE:
        return False
    if clipped_at_end(e, window):
        return s_end >= e_end - EDGE_TOLERANCE
    # Clipping at the start keeps the true end: a different end means it changed.
    return abs(s_end - e_end) <= EDGE_TOLERANCE


def decide(stored: Stored | None, e: Event, plan: WritePlan) -> None:
    """File one whole (unclipped) event into the plan."""
    if stored is None:
        plan.inserts.append(e)
    elif stored.timestamp != e.timestamp or not same_data(stored.data, e.data):
        plan.replaces.append(e)
    elif stored.duration != e.duration or stored.deleted:
        plan.updates.append(e)
    else:
        plan.unchanged += 1


def plan_writes(
    stored: Mapping[int, Stored],
    returned: Iterable[Event],
    window: Window,
    *,
    whole: Iterable[Event] = (),
    trust_covering: bool = True,
) -> WritePlan:
    """Decide what to write for one answer of AW.

    `returned` is what a query over `window` gave; `whole` are events known
    unclipped (fetched by id), which win over a returned copy of the same id.
    Suspect events neither covered nor in `whole` land in `fetch_ids`.
    """
    out = WritePlan()
    whole_by_id = {e.event_id: e for e in whole}
    seen: set[int] = set()
    for e in returned:
        if e.event_id in whole_by_id or e.event_id in seen:
            continue
        seen.add(e.event_id)
        if suspect(e, window):
            s = stored.get(e.event_id)
            if not (trust_covering and s is not None and covers(s, e, window)):
                out.fetch_ids.append(e.event_id)
            continue
        decide(stored.get(e.event_id), e, out)
    for e in whole_by_id.values():
        decide(stored.get(e.event_id), e, out)
    return out


def utc_midnight(dt: datetime) -> datetime:
    dt = dt.astimezone(UTC)
    return dt.replace(hour=0, minute=0, second=0, microsecond=0)
