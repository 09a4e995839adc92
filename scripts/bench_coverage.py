"""How long `lifelog coverage` takes over a year of dense data.

Builds (once; reused while its parameters match) a database holding a year
of a window event and an afk event every `--step` seconds around the clock
on one host (12.6 million events at the default 5 s), with the afk status
following working hours, then times, in 15-minute slots:

  1. the last 7 days (the default range) with the summary empty, and
  2. again;
  3. the whole year with the summary empty (it summarises every day),
  4. again (the summary is current: the figure that matters),
  5. after a write on the last day (that day is summarised again),
  6. `lifelog coverage --json` over the year as a command, end to end.

    .venv/bin/python scripts/bench_coverage.py [--db PATH] [--days 365] [--step 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lifelog.core.settings import load_settings  # noqa: E402
from lifelog.coverage.query import coverage_of  # noqa: E402
from lifelog.db.database import open_db  # noqa: E402

HOST = "bench-host"
SERVER = "bench-server"
AFK, WINDOW = f"aw-watcher-afk_{HOST}", f"aw-watcher-window_{HOST}"
FIRST_DAY = date(2025, 1, 1)
TITLES = [f'{{"app":"Code","title":"lifelog/module{i}.py"}}' for i in range(40)]
NOT_AFK, IS_AFK = '{"status":"not-afk"}', '{"status":"afk"}'


def present(second_of_day: int, day: int) -> bool:
    """At the computer 08:30-12:30 and 13:15-18:00 on weekdays, 10:00-11:30 at weekends."""
    m = second_of_day // 60
    if (FIRST_DAY + timedelta(days=day)).weekday() >= 5:
        return 600 <= m < 690
    return 510 <= m < 750 or 795 <= m < 1080


def build(path: Path, days: int, step: int) -> None:
    stamp = f"{days} days, every {step} s, v1"
    if path.exists():
        with open_db(path) as db:
            if db.conn.execute("SELECT value FROM meta WHERE key = 'bench.stamp'").fetchone() == (stamp,):
                return
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
    print(f"building {path}: {days} days, a window and an afk event every {step} s ...", flush=True)
    began = time.monotonic()
    db = open_db(path)
    c = db.conn
    c.execute("PRAGMA synchronous = OFF")
    c.execute("PRAGMA cache_size = -400000")
    now = datetime.now(UTC).isoformat(timespec="microseconds")
    with_suffix = [(timedelta(seconds=s), f"T{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}.000000+00:00")
                   for s in range(0, 86400 + step, step)]
    suffix = {int(td.total_seconds()): text for td, text in with_suffix}
    c.execute("BEGIN")
    for bucket, type_ in ((AFK, "afkstatus"), (WINDOW, "currentwindow")):
        c.execute("INSERT INTO buckets (server, bucket_id, type, client, hostname, first_seen_at, last_seen_at)"
                  " VALUES (?, ?, ?, 'bench', ?, ?, ?)", (SERVER, bucket, type_, HOST, now, now))
    event_id = 0
    for day in range(days):
        d = FIRST_DAY + timedelta(days=day)
        prefix, next_prefix = d.isoformat(), (d + timedelta(days=1)).isoformat()
        rows = []
        for s in range(0, 86400, step):
            e = s + step
            start = prefix + suffix[s]
            end = prefix + suffix[e] if e < 86400 else next_prefix + suffix[0]
            event_id += 1
            rows.append((SERVER, AFK, event_id, start, float(step), NOT_AFK if present(s, day) else IS_AFK,
                         end, now, now))
            rows.append((SERVER, WINDOW, event_id, start, float(step), TITLES[(s // 300) % 40], end, now, now))
        c.executemany("INSERT INTO events (server, bucket_id, event_id, timestamp, duration, data, ended_at,"
                      " ingested_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        if day % 30 == 29:
            c.execute("COMMIT")
            c.execute("BEGIN")
            print(f"  {day + 1} days, {2 * event_id:,} events, {time.monotonic() - began:.0f} s", flush=True)
    c.execute("INSERT INTO meta (key, value, updated_at) VALUES ('bench.stamp', ?, ?)", (stamp, now))
    c.execute("COMMIT")
    db.close()
    print(f"built in {time.monotonic() - began:.0f} s: {2 * event_id:,} events", flush=True)


def forget(db) -> None:
    for table in ("coverage_cells", "coverage_blocks", "coverage_days"):
        db.conn.execute(f"DELETE FROM {table}")


def timed(label: str, func) -> float:
    began = time.perf_counter()
    result = func()
    seconds = time.perf_counter() - began
    print(f"{label:<58} {seconds:7.2f} s", flush=True)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", type=Path, default=Path(tempfile.gettempdir()) / "lifelog-bench-coverage.db")
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--step", type=int, default=5, help="seconds between events (default 5)")
    args = ap.parse_args()
    build(args.db, args.days, args.step)
    settings = load_settings(overrides={"db_path": str(args.db)})
    tz = UTC
    since = datetime(2025, 1, 1, tzinfo=tz).timestamp()
    until = since + args.days * 86400
    with open_db(args.db) as db:
        n = db.conn.execute("SELECT count(*) FROM events").fetchone()[0]
        print(f"{n:,} events over {args.days} days; classifying the whole range in 15-minute slots (UTC days)")
        week = until - 7 * 86400
        forget(db)
        timed("1. the last 7 days (the default range), summary empty",
              lambda: coverage_of(db, settings, week, until, 15, tz=tz))
        timed("2. the last 7 days again", lambda: coverage_of(db, settings, week, until, 15, tz=tz))
        forget(db)
        timed("3. the whole year, summary empty (summarises every day)",
              lambda: coverage_of(db, settings, since, until, 15, tz=tz))
        cov = timed("4. the whole year again (summary current)",
                    lambda: coverage_of(db, settings, since, until, 15, tz=tz))
        last = datetime.fromtimestamp(until - 600, tz).isoformat(timespec="microseconds")
        stamp = datetime.now(UTC).isoformat(timespec="microseconds")
        db.conn.execute("UPDATE events SET duration = duration + 1, updated_at = ? WHERE bucket_id = ?"
                        " AND timestamp = ?", (stamp, WINDOW, last))
        timed("5. the whole year after a write on its last day",
              lambda: coverage_of(db, settings, since, until, 15, tz=tz))
    env = dict(os.environ, TZ="UTC")
    cmd = [sys.executable, "-m", "lifelog", "coverage", "--db", str(args.db), "--since", "2025-01-01",
           "--until", (FIRST_DAY + timedelta(days=args.days)).isoformat(), "--json"]
    out = timed("6. lifelog coverage --json over the year (a process)",
                lambda: subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600))
    doc = json.loads(out.stdout)
    kinds = {}
    for d in doc["days"]:
        for k in ("active", "away", "no_data", "gap"):
            kinds[k] = kinds.get(k, 0) + d[f"{k}_seconds"]
    print(f"   {len(doc['days'])} days, {len(doc['stretches'])} stretches; hours: "
          + ", ".join(f"{k} {v / 3600:.0f}" for k, v in kinds.items()))
    print(f"   (in-process result had {len(cov.stretches)} stretches)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
