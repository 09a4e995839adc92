#!/usr/bin/env python3
"""LifeLog at the scale of a decade: the figures, against an empty database (not a test).

    .venv/bin/python scripts/bench_scale.py [--years 10] [--events 10000000] [-n 7]

Two setups, in a temp dir, with a real `aw-server --testing`:

- Read paths: a database of `--years` x 6 buckets at realistic density
  (window, web, input, afk, android, a synced bucket; `--events` in all,
  10 million by default), written directly with executemany, indexes built
  after the rows, as fast as SQLite allows. Against it and against an empty
  database: the database size; the medians of `lifelog status`,
  `meta show`, `watchdog --once`, `sources` and `coverage` for a week (with
  a watcher running, so the pass decides `ok`); the watcher's CPU per idle
  poll; and the local side of a reconcile of the whole big database (its
  counts per year).
- Reconcile: a sparse multi-year history in aw-server (the same 6 buckets,
  one event a day each, `--years` long), backfilled into its own database;
  then, through a counting proxy, a reconcile where nothing differs and one
  after a single back-dated insert: requests, events fetched, time.

Building 10 million rows takes a few minutes and about 8 GB of disk.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from support.awserver import AWServer  # noqa: E402
from support.helpers import stop_process  # noqa: E402
from support.localhttp import CountingProxy  # noqa: E402

from lifelog.aw.client import AWClient  # noqa: E402
from lifelog.core.settings import Settings  # noqa: E402
from lifelog.db.database import apply_schema, connect, open_db, upgrade, wrap  # noqa: E402
from lifelog.ingest import reconcile, watcher  # noqa: E402

UTC = UTC
LIFELOG = str(Path(sys.executable).with_name("lifelog"))


@dataclass(frozen=True)
class BucketSpec:
    bucket_id: str
    per_day: int   # events a day at the default 10 million over 10 years
    kind: str


BUCKETS = [
    BucketSpec("aw-watcher-window_bench", 1100, "window"),
    BucketSpec("aw-watcher-web-firefox_bench", 700, "web"),
    BucketSpec("aw-watcher-input_bench", 550, "input"),
    BucketSpec("aw-watcher-afk_bench", 60, "afk"),
    BucketSpec("aw-watcher-android", 150, "android"),
    BucketSpec("aw-watcher-window_laptop-synced-from-desktop", 200, "window"),
]
BUCKET_PATTERNS = ",".join(b.bucket_id for b in BUCKETS)

# Commands timed on both databases (a command added later: add it here).
COMMANDS = [
    ("status", ["status"]),
    ("meta show", ["meta", "show"]),
    ("watchdog --once", ["watchdog", "--once"]),
    ("sources", ["sources"]),
    ("coverage --since <a week ago>",
     ["coverage", "--since", (datetime.now(UTC) - timedelta(days=7)).strftime("%Y-%m-%d")]),
]


# -- the data ---------------------------------------------------------------------

def data_pool(kind: str, rng: random.Random) -> list[str]:
    """Distinct `data` values, as compact JSON, in the shapes AW's watchers send."""
    apps = ["firefox", "code", "Terminal", "Slack", "evince", "thunderbird", "gimp", "libreoffice", "zoom"]
    words = "report budget meeting draft notes review plan lifelog sqlite python design invoice photo".split()
    pool = []
    for i in range(4096):
        title = " ".join(rng.choice(words) for _ in range(rng.randint(3, 12))) + f" - {i}"
        if kind == "window":
            pool.append(f'{{"app":"{rng.choice(apps)}","title":"{title}"}}')
        elif kind == "web":
            pool.append(f'{{"url":"https://example.org/{i}/{rng.choice(words)}?q={rng.randint(0, 10**6)}",'
                        f'"title":"{title}","audible":false,"incognito":false,"tabCount":{rng.randint(1, 40)}}}')
        elif kind == "input":
            pool.append(f'{{"presses":{rng.randint(0, 60)},"clicks":{rng.randint(0, 12)},'
                        f'"deltaX":{rng.randint(0, 900)},"deltaY":{rng.randint(0, 700)},'
                        f'"scrollX":0,"scrollY":{rng.randint(0, 300)}}}')
        elif kind == "afk":
            pool.append('{"status":"not-afk"}' if i % 2 else '{"status":"afk"}')
        else:
            pool.append(f'{{"app":"{rng.choice(apps)}","classname":"org.example.{rng.choice(words)}.Main"}}')
    return pool


def rows_for(spec: BucketSpec, server: str, first_id: int, days: int, per_day: int, end: datetime,
             rng: random.Random):
    """One bucket's rows, oldest first: per_day events a day, evenly spread."""
    pool = data_pool(spec.kind, rng)
    stamp = end.isoformat(timespec="microseconds")
    interval = 86400.0 / per_day
    duration = round(interval * 0.8, 3)
    duration_ms = round(duration * 1000)
    event_id = first_id
    first_day = (end - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
    for d in range(days):
        day = first_day + timedelta(days=d)
        prefix = day.strftime("%Y-%m-%dT")
        next_prefix = (day + timedelta(days=1)).strftime("%Y-%m-%dT")
        for i in range(per_day):
            ms = int(i * interval * 1000)
            ts = f"{prefix}{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}000+00:00"
            ems = ms + duration_ms
            if ems >= 86400000:
                ems -= 86400000
                ep = next_prefix
            else:
                ep = prefix
            ended = f"{ep}{ems // 3600000:02d}:{ems // 60000 % 60:02d}:{ems // 1000 % 60:02d}.{ems % 1000:03d}000+00:00"
            yield (server, spec.bucket_id, event_id, ts, duration, pool[event_id & 4095], ended, stamp, stamp)
            event_id += 1


def build_big_db(path: Path, server: str, years: float, events: int, end: datetime) -> int:
    """The big database, written as fast as SQLite allows: no journal while
    building, rows first, then the indexes schema.sql makes."""
    conn = connect(path)
    upgrade(wrap(conn))
    indexes = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' AND sql IS NOT NULL")]
    for name in indexes:
        conn.execute(f"DROP INDEX {name}")
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -200000")
    days = max(1, round(years * 365.25))
    scale = events / (days * sum(b.per_day for b in BUCKETS))
    rng = random.Random(7)
    total = 0
    sql = ("INSERT INTO events (server, bucket_id, event_id, timestamp, duration, data, ended_at, ingested_at, "
           "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
    began = time.perf_counter()
    for k, spec in enumerate(BUCKETS):
        per_day = max(1, round(spec.per_day * scale))
        conn.execute("BEGIN")
        conn.executemany(sql, rows_for(spec, server, 10**9 + k * 10**8, days, per_day, end, rng))
        last = conn.execute("SELECT timestamp, ended_at FROM events WHERE rowid = last_insert_rowid()").fetchone()
        conn.execute("INSERT INTO sync_state (server, bucket_id, head_ts, newest_end) VALUES (?, ?, ?, ?)",
                     (server, spec.bucket_id, *last))
        conn.execute("COMMIT")
        total += per_day * days
        print(f"  {spec.bucket_id}: {per_day * days:,} rows ({time.perf_counter() - began:.0f} s)", flush=True)
    conn.execute("PRAGMA journal_mode = WAL")
    t = time.perf_counter()
    apply_schema(wrap(conn))  # the indexes, as on any database
    conn.execute("ANALYZE")
    print(f"  indexes built in {time.perf_counter() - t:.0f} s", flush=True)
    conn.close()
    return total


def db_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


# -- measuring ----------------------------------------------------------------------

def median_ms(argv: list[str], env: dict[str, str], n: int) -> float:
    times = []
    for _ in range(n):
        began = time.perf_counter()
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000


def idle_poll_cpu_ms(aw: AWServer, settings: Settings, polls: int) -> float:
    """A watcher's poll when nothing is new: bucket listing, one count per
    bucket (AW's count from the latest lookback start), heartbeat writes."""
    db = open_db(settings.db_path)
    client = AWClient(settings.aw_url, 30)
    stop = threading.Event()
    for step in range(3):  # catch up; a new event per bucket (a live poll, as a watcher's); idle
        if step == 1:
            for spec in BUCKETS:
                aw.insert(spec.bucket_id, [{"timestamp": datetime.now(UTC).isoformat(), "duration": 1,
                                            "data": {"app": "editor", "title": "poll"}}])
        outcome = watcher.poll_once(db, client, settings, stop)
        assert outcome.ok, outcome.error
        watcher.record_heartbeat(db, outcome)
    began = time.process_time()
    for _ in range(polls):
        outcome = watcher.poll_once(db, client, settings, stop)
        assert outcome.ok, outcome.error
        watcher.record_heartbeat(db, outcome)
    cpu = (time.process_time() - began) / polls * 1000
    client.close()
    db.conn.close()
    return cpu


def time_commands(db_path: Path, env: dict[str, str], n: int) -> dict[str, float]:
    """With a watcher running on the database, so each command sees the steady state."""
    env = dict(env, LIFELOG_DB_PATH=str(db_path), LIFELOG_STARTUP_GRACE_SECONDS="0.5")
    proc = subprocess.Popen([LIFELOG, "watcher"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            got = subprocess.run([LIFELOG, "meta", "get", "watcher.state"], env=env, capture_output=True,
                                 text=True, timeout=60).stdout.strip()
            if got == "running":
                time.sleep(1)  # past the startup grace: the watchdog decides `ok`
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the watcher did not start")
            time.sleep(0.2)
        out = {}
        for name, argv in COMMANDS:
            out[name] = median_ms([LIFELOG, *argv], env, n)
        return out
    finally:
        stop_process(proc, 30)


def local_reconcile_side(db_path: Path, server: str) -> tuple[int, float]:
    """The local half of a whole-history reconcile where nothing differs: one
    count per bucket and calendar year."""
    db = open_db(db_path)
    windows = 0
    began = time.perf_counter()
    for spec in BUCKETS:
        first = db.conn.execute("SELECT min(timestamp) FROM events WHERE server = ? AND bucket_id = ?",
                                (server, spec.bucket_id)).fetchone()[0]
        start = datetime.fromisoformat(first).replace(hour=0, minute=0, second=0, microsecond=0)
        for w in reconcile.split(start, datetime.now(UTC).replace(microsecond=0), reconcile.Unit.YEAR):
            reconcile.local_count(db, server, spec.bucket_id, w)
            windows += 1
    elapsed = time.perf_counter() - began
    db.conn.close()
    return windows, elapsed


def sparse_history(aw: AWServer, years: float, now: datetime) -> int:
    """The 6 buckets in aw-server: one event a day each, `years` long, and one a minute ago."""
    days = round(years * 365.25)
    for k, spec in enumerate(BUCKETS):
        aw.create_bucket(spec.bucket_id)
        first = (now - timedelta(days=days)).replace(hour=9, minute=0, second=0, microsecond=0)
        batch = [{"timestamp": (first + timedelta(days=d, minutes=7 * k)).isoformat(), "duration": 1800,
                  "data": {"app": "editor", "title": f"day {d}"}} for d in range(days)]
        batch.append({"timestamp": (now - timedelta(minutes=1)).isoformat(), "duration": 30,
                      "data": {"app": "editor", "title": "now"}})
        for i in range(0, len(batch), 5000):
            aw.insert(spec.bucket_id, batch[i:i + 5000])
    return days * len(BUCKETS)


def reconcile_figures(aw: AWServer, db_path: Path, years: float) -> None:
    from lifelog.ingest import history

    settings = Settings(db_path=db_path, aw_url=aw.url, aw_timeout_seconds=60, buckets=BUCKET_PATTERNS)
    db = open_db(db_path)
    with AWClient(aw.url, 60) as client:
        assert history.backfill(db, client, settings).complete
    proxy = CountingProxy(aw.url, timeout=120)
    try:
        for label, before in (("nothing differs", None), ("after one back-dated insert", "insert")):
            if before:
                late = datetime.now(UTC) - timedelta(days=round(years * 365.25 / 2))
                aw.insert(BUCKETS[0].bucket_id, [{"timestamp": late.isoformat(), "duration": 42,
                                                  "data": {"app": "late", "title": "back-dated"}}])
            proxy.requests.clear()
            with AWClient(proxy.url, 60) as client:
                began = time.perf_counter()
                report = reconcile.reconcile(db, client, settings)
                elapsed = time.perf_counter() - began
            t = report.totals
            print(f"reconcile, {label}: {elapsed:.2f} s, {proxy.summary()}, "
                  f"{report.days_differing} days fetched, {t.fetched} events fetched, {t.inserted} inserted "
                  f"({len(report.buckets)} buckets x {report.buckets[0].days_checked} days)", flush=True)
    finally:
        proxy.close()
        db.conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--years", type=float, default=10)
    ap.add_argument("--events", type=int, default=10_000_000, help="events in the big database")
    ap.add_argument("-n", type=int, default=7, help="runs of each command (median)")
    ap.add_argument("--idle-polls", type=int, default=50)
    ap.add_argument("--dir", help="work here instead of a temp dir (kept afterwards)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="lifelog-scale-") as tmp:
        work = Path(args.dir) if args.dir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        home = work / "home"
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIFELOG_")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.update(HOME=str(home), XDG_STATE_HOME=f"{home}/state", XDG_DATA_HOME=f"{home}/data",
                   XDG_CONFIG_HOME=f"{home}/config")
        aw = AWServer(work / "aw").start()
        try:
            now = datetime.now(UTC)
            t = time.perf_counter()
            n_aw = sparse_history(aw, args.years, now)
            print(f"aw-server: {n_aw:,} sparse events in 6 buckets over {args.years:g} years "
                  f"({time.perf_counter() - t:.0f} s)", flush=True)
            server = AWClient(aw.url, 10).info()["device_id"]
            env.update(LIFELOG_AW_URL=aw.url, LIFELOG_BUCKETS=BUCKET_PATTERNS)

            big, empty = work / "big" / "lifelog.db", work / "empty" / "lifelog.db"
            big.parent.mkdir(exist_ok=True)
            empty.parent.mkdir(exist_ok=True)
            if not big.exists():
                print(f"writing the big database ({args.events:,} events)...", flush=True)
                t = time.perf_counter()
                rows = build_big_db(big, server, args.years, args.events, now - timedelta(minutes=2))
                print(f"  {rows:,} rows in {time.perf_counter() - t:.0f} s", flush=True)
            open_db(empty).conn.close()

            results = {}
            for label, path in (("empty", empty), ("big", big)):
                settings = Settings(db_path=path, aw_url=aw.url, buckets=BUCKET_PATTERNS)
                poll = idle_poll_cpu_ms(aw, settings, args.idle_polls)
                results[label] = {"size": db_size(path), "idle poll CPU": poll,
                                  **time_commands(path, env, args.n)}
                print(f"{label}: {results[label]}", flush=True)
            windows, local = local_reconcile_side(big, server)

            print()
            print(f"| figure | empty database | {args.events / 1e6:g} M events, {args.years:g} years x 6 buckets |")
            print("|---|---|---|")
            e, b = results["empty"], results["big"]
            print(f"| database size | {e['size'] / 1e6:.1f} MB | {b['size'] / 1e9:.2f} GB |")
            for name in [k for k in b if k not in ("size", "idle poll CPU")]:
                print(f"| `lifelog {name}` (median of {args.n}) | {e[name]:.0f} ms | {b[name]:.0f} ms |")
            print(f"| watcher CPU per idle poll (mean of {args.idle_polls}) | {e['idle poll CPU']:.1f} ms "
                  f"| {b['idle poll CPU']:.1f} ms |")
            print(f"| local side of a whole-history reconcile ({windows} year counts) | - | {local:.1f} s |")
            print()
            reconcile_figures(aw, work / "reconcile" / "lifelog.db", args.years)
        finally:
            aw.stop()


if __name__ == "__main__":
    main()
