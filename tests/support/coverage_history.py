"""A planted history for the coverage tests, in the machine's local time.

Day D (a few days ago), host ada-laptop:

    00:00-08:00  no data, nothing recorded by LifeLog yet      no_data / unknown
    08:00-12:00  not-afk, a window event every 30 s            active
    12:00-13:00  not-afk, no window data; the window source
                 recorded silent at 12:10 (10 min after its
                 last event), unjudged at 13:05               gap / source_silent
    13:00-18:00  nothing: AW down, every health check failed   no_data / aw_down
    18:00-08:00  the machine off for the night                 no_data / unknown
                 (the next watcher run is on a new boot)

The range is D 00:00 to D+1 08:00.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, date, datetime, timedelta

from lifelog.core.timeutil import to_iso
from lifelog.coverage.model import local_midnight
from lifelog.db.database import transaction

HOST = "ada-laptop"
SERVER = "srv-ada"
AFK_BUCKET = f"aw-watcher-afk_{HOST}"
WINDOW_BUCKET = f"aw-watcher-window_{HOST}"


def iso(t: float) -> str:
    return to_iso(datetime.fromtimestamp(t, UTC))


def local_iso(t: float) -> str:
    return datetime.fromtimestamp(t).astimezone().isoformat(timespec="seconds")


class History:
    def __init__(self, day: date):
        self.day = day
        self.midnight = local_midnight(day, None)
        self.next_midnight = local_midnight(day + timedelta(days=1), None)
        self.since = self.midnight
        self.until = self.next_midnight + 8 * 3600

    def at(self, hour: float, next_day: bool = False) -> float:
        return (self.next_midnight if next_day else self.midnight) + hour * 3600

    def expected_stretches(self) -> list[dict]:
        def s(a, b, kind, cause):
            return {"host": HOST, "start": local_iso(a), "end": local_iso(b), "class": kind, "cause": cause}

        return [s(self.since, self.at(8), "no_data", "unknown"),
                s(self.at(8), self.at(12), "active", None),
                s(self.at(12), self.at(13), "gap", "source_silent"),
                s(self.at(13), self.at(18), "no_data", "aw_down"),
                s(self.at(18), self.until, "no_data", "unknown")]


def default_day() -> date:
    return date.today() - timedelta(days=3)


def plant(db, day: date | None = None) -> History:
    h = History(day or default_day())
    now = iso(time.time())
    events = []

    def event(bucket, start, duration, data):
        events.append((SERVER, bucket, len(events) + 1, iso(start), duration, json.dumps(data),
                       iso(start + duration), now, now))

    # The afk watcher: one long not-afk event for the morning and the silent hour.
    event(AFK_BUCKET, h.at(8), 5 * 3600, {"status": "not-afk"})
    t = h.at(8)
    while t < h.at(12):
        event(WINDOW_BUCKET, t, 30.0, {"app": "Terminal", "title": "vim"})
        t += 30
    with transaction(db):
        c = db.conn
        for bucket, type_ in ((AFK_BUCKET, "afkstatus"), (WINDOW_BUCKET, "currentwindow")):
            c.execute("INSERT INTO buckets (server, bucket_id, type, client, hostname, first_seen_at, last_seen_at)"
                      " VALUES (?, ?, ?, 'test', ?, ?, ?)", (SERVER, bucket, type_, HOST, now, now))
        c.executemany("INSERT INTO events (server, bucket_id, event_id, timestamp, duration, data, ended_at,"
                      " ingested_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", events)
        # Health checks every 15 min from 08:00: healthy until 12:59, not from 13:01 to 17:44.
        checks = [(h.at(8 + q / 4), "healthy") for q in range(20)] + [(h.at(12) + 59 * 60, "healthy")]
        t = h.at(13) + 60
        while t <= h.at(17) + 44 * 60:
            checks.append((t, "unhealthy"))
            t += 15 * 60
        checks.append((h.at(8, next_day=True), "healthy"))
        c.executemany("INSERT INTO health_checks (checked_at, aw_url, status, error) VALUES (?, 'http://aw', ?, ?)",
                      [(iso(at), status, "" if status == "healthy" else "connection refused") for at, status in checks])
        # The sources' history (README "When an ActivityWatch watcher goes quiet").
        for at, bucket, state in ((h.at(8), WINDOW_BUCKET, "live"), (h.at(8), AFK_BUCKET, "live"),
                                  (h.at(12) + 600, WINDOW_BUCKET, "silent"),
                                  (h.at(13) + 300, WINDOW_BUCKET, "unjudged"), (h.at(13) + 300, AFK_BUCKET, "unjudged"),
                                  (h.at(8, True) + 300, WINDOW_BUCKET, "live"), (h.at(8, True) + 300, AFK_BUCKET, "live")):
            c.execute("INSERT INTO source_log (at, server, bucket_id, state, reason) VALUES (?, ?, ?, ?, '')",
                      (iso(at), SERVER, bucket, state))
        # LifeLog's watcher: ran all day D, then after the night on a new boot, still running.
        c.executemany("INSERT INTO watcher_runs (pid, started_at, last_heartbeat_at, boot_at) VALUES (?, ?, ?, ?)",
                      [(100, iso(h.at(7.9)), iso(h.at(17.99)), iso(h.at(7.9) - 60)),
                       (200, iso(h.at(7.95, True)), now, iso(h.at(7.95, True) - 60))])
    return h
