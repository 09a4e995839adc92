"""The summary `lifelog coverage` reads instead of the events: per bucket,
per UTC minute (table coverage_cells) and per quarter hour (coverage_blocks),
the seconds its events cover, by afk status.

A year of dense data is millions of events, and reading them costs around a
microsecond each: seconds on every run. So the summary is kept, and only
what changed is recomputed:

- the unit of recomputation is one bucket's events that start on one UTC
  day (`start_day`; an event's minutes past midnight stay under its start
  day, so changing it never touches another day's rows);
- `coverage_days` lists the (bucket, day) pairs summarised; a day is
  summarised the first time a range needs it;
- every write to `events` stamps `updated_at`, which is indexed: each run
  asks for the days of rows written since the previous run (meta
  `coverage.cells_as_of`, less `RESCAN_SECONDS` for writers whose
  timestamp preceded their commit), and forgets those days; replaced
  versions (`events_replaced.replaced_at`) forget the day they left.

When the database cannot be written (read-only, or locked past the busy
timeout) the needed days are summarised in memory instead, for this run only.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta

from lifelog.core import keys
from lifelog.core.timeutil import now_iso, parse_iso, to_iso
from lifelog.coverage.model import AFK, CELL_SECONDS, NOT_AFK, Cells, Units, add_units, cells_of_events, units_of_cells
from lifelog.db.database import transaction
from lifelog.db.meta import get_meta, set_meta

log = logging.getLogger("lifelog.coverage")

# The coarser summary (coverage_blocks): a quarter hour, which every local
# midnight of today's time zones falls on.
BLOCK_SECONDS = 900
# A writer takes its timestamp before it commits; rows committed after a run
# read the index may carry a time up to this much older than that run.
RESCAN_SECONDS = 300.0
# An event that starts before the range but reaches into it is found among
# this many events before the range's start (in one bucket events rarely overlap).
EVENTS_BEFORE = 100

# INDEXED BY: without statistics the planner may prefer walking the unique
# index for the DISTINCT, which reads every event.
CHANGED_SQL = ("SELECT DISTINCT server, bucket_id, substr(timestamp, 1, 10) FROM events INDEXED BY events_by_update"
               " WHERE updated_at >= ?")

# Each event's start as unix seconds (to the millisecond, as
# lifelog.coverage.model.cells_of_events rounds), its duration, and for afk
# buckets its data. Adding them up by minute is done in Python: SQLite's
# GROUP BY sorts every row and costs twice the scan.
_DAY_SQL = ("SELECT round((julianday(timestamp) - 2440587.5) * 86400.0, 3), duration, {data} FROM events"
            " WHERE server = ? AND bucket_id = ? AND timestamp >= ? AND timestamp < ?")


def _day_text(d: date) -> str:
    return d.isoformat()


def _utc_day(t: float) -> date:
    return datetime.fromtimestamp(t, UTC).date()


class Summary:
    """The summary of some buckets, brought up to date for a range, then read."""

    def __init__(self, db):
        self.db = db
        self.memory: dict[tuple[str, str], Cells] = {}
        self.in_memory = False
        self._statuses: dict[str, str] = {}

    # -- computing one day ------------------------------------------------------------------

    def _status(self, data: str) -> str:
        status = self._statuses.get(data)
        if status is None:
            try:
                status = str(json.loads(data).get("status", ""))
            except (ValueError, AttributeError):
                status = ""
            self._statuses[data] = status
        return status

    def summarise_day(self, server: str, bucket_id: str, afk: bool, day: date) -> Cells:
        """One bucket's events that start on one UTC day, split over minutes."""
        lo, hi = _day_text(day), _day_text(day + timedelta(days=1))
        rows = self.db.conn.execute(_DAY_SQL.format(data="data" if afk else "''"), (server, bucket_id, lo, hi))
        if afk:
            statuses = self._status
            events = ((x, d, status) for x, d, data in rows if (status := statuses(data)) in (AFK, NOT_AFK))
        else:
            events = rows
        return cells_of_events(events, rounded=True)

    # -- keeping the table current ------------------------------------------------------------

    def _days_needed(self, server: str, bucket_id: str, since: float, until: float) -> list[date]:
        first = _utc_day(since)
        since_iso = to_iso(_utc(since))
        rows = self.db.conn.execute(
            "SELECT timestamp, ended_at FROM events WHERE server = ? AND bucket_id = ? AND timestamp < ?"
            " ORDER BY timestamp DESC LIMIT ?", (server, bucket_id, since_iso, EVENTS_BEFORE)).fetchall()
        for ts, ended in rows:
            if ended > since_iso:
                first = min(first, parse_iso(ts).date())
        last = _utc_day(until - 1e-6)
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]

    def _changed_days(self, since_iso: str) -> set[tuple[str, str, str]]:
        changed = set(self.db.conn.execute(CHANGED_SQL, (since_iso,)))
        changed |= set(self.db.conn.execute(
            "SELECT DISTINCT server, bucket_id, substr(timestamp, 1, 10) FROM events_replaced"
            " INDEXED BY events_replaced_by_time WHERE replaced_at >= ?", (since_iso,)))
        return changed

    def refresh(self, buckets: Iterable[tuple[str, str, bool]], since: float, until: float) -> None:
        """Make the summary of `buckets` (server, bucket_id, is_afk) current over [since, until)."""
        buckets = list(buckets)
        try:
            self._forget_changed()
            for server, bucket_id, afk in buckets:
                needed = self._days_needed(server, bucket_id, since, until)
                built = {r[0] for r in self.db.conn.execute(
                    "SELECT start_day FROM coverage_days WHERE server = ? AND bucket_id = ? AND start_day >= ?"
                    " AND start_day <= ?", (server, bucket_id, _day_text(needed[0]), _day_text(needed[-1])))}
                for day in needed:
                    if _day_text(day) not in built:
                        self._store_day(server, bucket_id, day, self.summarise_day(server, bucket_id, afk, day))
        except sqlite3.OperationalError as e:  # read-only, or locked past the busy timeout
            log.warning("coverage: cannot update the summary (%s); working it out in memory", e)
            self.in_memory = True
            for server, bucket_id, afk in buckets:
                self.memory[(server, bucket_id)] = _merge_cells(
                    self.summarise_day(server, bucket_id, afk, day)
                    for day in self._days_needed(server, bucket_id, since, until))

    def _forget_changed(self) -> None:
        """Forget the days whose events were written since the last run."""
        as_of = get_meta(self.db, keys.COVERAGE_CELLS_AS_OF)
        started = now_iso()
        with transaction(self.db):
            if as_of is None:
                stale = None  # no mark: nothing summarised can be trusted
            else:
                try:
                    since = to_iso(parse_iso(as_of) - timedelta(seconds=RESCAN_SECONDS))
                except ValueError:
                    since = None
                stale = None if since is None else self._changed_days(since)
            if stale is None:
                for table in ("coverage_cells", "coverage_blocks", "coverage_days"):
                    self.db.conn.execute(f"DELETE FROM {table}")
            else:
                for server, bucket_id, day in stale:
                    self._delete_day(server, bucket_id, day)
            set_meta(self.db, keys.COVERAGE_CELLS_AS_OF, started)

    def _delete_day(self, server: str, bucket_id: str, day: str) -> None:
        for table in ("coverage_cells", "coverage_blocks"):
            self.db.conn.execute(f"DELETE FROM {table} WHERE server = ? AND bucket_id = ? AND start_day = ?",
                                 (server, bucket_id, day))
        self.db.conn.execute("DELETE FROM coverage_days WHERE server = ? AND bucket_id = ? AND start_day = ?",
                             (server, bucket_id, day))

    def _store_day(self, server: str, bucket_id: str, day: date, cells: Cells) -> None:
        text = _day_text(day)
        with transaction(self.db):
            self._delete_day(server, bucket_id, text)
            self.db.conn.executemany(
                "INSERT INTO coverage_cells (server, bucket_id, cell, status, start_day, seconds)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(server, bucket_id, c, status, text, seconds)
                 for c, row in cells.items() for status, seconds in row.items()])
            blocks: dict[tuple[int, str], float] = {}
            for c, row in cells.items():
                for status, seconds in row.items():
                    key = (c * CELL_SECONDS // BLOCK_SECONDS, status)
                    blocks[key] = blocks.get(key, 0.0) + seconds
            self.db.conn.executemany(
                "INSERT INTO coverage_blocks (server, bucket_id, block, status, start_day, seconds)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(server, bucket_id, b, status, text, seconds) for (b, status), seconds in blocks.items()])
            self.db.conn.execute("INSERT INTO coverage_days (server, bucket_id, start_day) VALUES (?, ?, ?)",
                                 (server, bucket_id, text))

    # -- reading ------------------------------------------------------------------------------

    def units(self, server: str, bucket_id: str, since: float, until: float, unit: int) -> Units:
        """The bucket's summary over [since, until) added up per `unit` seconds
        from since (whole minutes). Quarter-hour blocks where they fit the
        units, minute cells for the rest."""
        if self.in_memory:
            return units_of_cells(self.memory.get((server, bucket_id), {}), since, until, unit)
        out: Units = {}
        since, until = int(since), int(until)
        mid = since
        if since % BLOCK_SECONDS == 0 and unit % BLOCK_SECONDS == 0:
            mid = max(since, until // BLOCK_SECONDS * BLOCK_SECONDS)
            self._add(out, "coverage_blocks", "block", BLOCK_SECONDS, server, bucket_id, since, since, mid, unit)
        self._add(out, "coverage_cells", "cell", CELL_SECONDS, server, bucket_id, since, mid, until, unit)
        return out

    def _add(self, out: Units, table: str, column: str, size: int, server: str, bucket_id: str, since: int,
             lo: int, hi: int, unit: int) -> None:
        if hi <= lo:
            return
        sql = (f"SELECT ({column} * {size} - ?) / ? AS k, sum(iif(status = ?, seconds, 0.0)),"
               f" sum(iif(status = ?, seconds, 0.0)), sum(seconds) FROM {table}"
               f" WHERE server = ? AND bucket_id = ? AND {column} >= ? AND {column} < ? GROUP BY k")
        rows = self.db.conn.execute(sql, (since, unit, NOT_AFK, AFK, server, bucket_id, lo // size, -(-hi // size)))
        add_units(out, {k: [a, b, c] for k, a, b, c in rows})


def _merge_cells(parts: Iterable[Cells]) -> Cells:
    out: Cells = {}
    for cells in parts:
        for c, row in cells.items():
            acc = out.setdefault(c, {})
            for status, seconds in row.items():
                acc[status] = acc.get(status, 0.0) + seconds
    return out


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)
