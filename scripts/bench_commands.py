#!/usr/bin/env python3
"""LifeLog's commands against a floor, in one run (issue 19's targets).

    .venv/bin/python scripts/bench_commands.py [-n 30] [--events 100000] [--rounds 3] [--idle-seconds 30]

1. Short commands. The floor is a minimal typer app (written to a temp dir
   at run time, typer and sqlite-utils as LifeLog uses them) whose `meta get`
   opens the database with `sqlite_utils.Database` and prints one value: what
   any command pays before doing its own work. Against it, in a steady state
   (a real `aw-server --testing` on a free port, its data in a temp dir, a
   healthy watcher ingesting from it, so the pass decides `ok` and `status`
   checks a live AW): `meta get` <= 1.3x, `watchdog --once` <= 1.8x,
   `status` <= 2.0x; `python -c pass`, `meta show` and `health` for scale.
   Medians of n runs each, interleaved (the order turns each round), so a
   load that comes and goes touches every command alike. Byte-code caching
   is on (as for an installed package) even when PYTHONDONTWRITEBYTECODE is
   set around it; `--no-pyc` keeps it as it is.
2. Backfill: `lifelog backfill` of N events into a fresh database against
   a bare `requests` fetch of the same events with the same paging (pages of
   history.PAGE_SIZE, newest first, `end` moved down to the oldest event
   seen), each a process of its own, alternating; ratio of medians <= 1.15.
3. Idle RSS of `lifelog daemon` and its watcher (scripts/bench_idle.py,
   default settings): <= 60 MB each.

Only commands and meta keys of the contract are used (no LifeLog internals),
so the same script measures LifeLog before and after a rewrite of its layers.
`--skip` leaves a part out (`--skip backfill --skip idle`).
"""

from __future__ import annotations

import argparse
import importlib
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "scripts")]

import bench_idle  # noqa: E402
from support.awserver import AWServer  # noqa: E402  (the tests' real-server fixture)
from support.helpers import stop_process, wait_for  # noqa: E402

# The floor: what the issue names, nothing more. A module beside a launcher
# like the one pip writes for a console script, so both are started the same
# way and the module's byte code is cached as LifeLog's is.
FLOOR_APP = '''\
import os

import sqlite_utils
import typer

app = typer.Typer(add_completion=False)
meta = typer.Typer()
app.add_typer(meta, name="meta")


@meta.command()
def get(key: str, db: str = typer.Option(os.environ.get("LIFELOG_DB_PATH", ""), "--db")) -> None:
    database = sqlite_utils.Database(db)
    row = database.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
    if row is not None:
        print(row[0])


def main() -> None:
    app()
'''
FLOOR_LAUNCHER = '''\
import sys
from floor_app import main
if __name__ == "__main__":
    sys.exit(main())
'''

# The bare fetch: LifeLog's paging with plain requests, nothing stored.
BARE_FETCH = '''\
import sys
from datetime import UTC, datetime

import requests

url, bucket, page_size = sys.argv[1], sys.argv[2], int(sys.argv[3])
ids, end = set(), None
with requests.Session() as s:
    while True:
        params = {"limit": page_size}
        if end is not None:
            params["end"] = end
        page = s.get(f"{url}/api/0/buckets/{bucket}/events", params=params, timeout=60).json()
        ids.update(e["id"] for e in page)
        if len(page) < page_size:
            break
        oldest = datetime.fromisoformat(page[-1]["timestamp"]).astimezone(UTC)
        end = oldest.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
print(len(ids))
'''

TARGETS = {"lifelog meta get watcher.pid": 1.3, "lifelog watchdog --once": 1.8, "lifelog status": 2.0}
FLOOR = "floor: typer + sqlite_utils meta get"


def run_ok(argv: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)


def page_size() -> int:
    """LifeLog's page, read from its code where it is today; 2500 otherwise."""
    try:
        return int(importlib.import_module("lifelog.ingest.history").PAGE_SIZE)
    except (ImportError, AttributeError):
        return 2500


def verdict(ratio: float, target: float) -> str:
    return f"<= {target:g}x {'ok' if ratio <= target else 'MISSED'}"


def short_commands(aw: AWServer, home: str, n: int, no_pyc: bool) -> None:
    lifelog = str(Path(sys.executable).parent / "lifelog")
    env = {k: v for k, v in aw.env.items() if not k.startswith("LIFELOG_")}
    if not no_pyc:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(HOME=home, XDG_STATE_HOME=f"{home}/state", LIFELOG_AW_URL=aw.url,
               LIFELOG_STARTUP_GRACE_SECONDS="0.5", LIFELOG_POLL_INTERVAL_SECONDS="2",
               LIFELOG_DB_PATH=f"{home}/bench.db", LIFELOG_BUCKETS="bench_host")
    floor_dir = Path(home) / "floor"
    floor_dir.mkdir()
    (floor_dir / "floor_app.py").write_text(FLOOR_APP)
    (floor_dir / "floor").write_text(FLOOR_LAUNCHER)
    watcher = None
    try:
        aw.create_bucket("bench_host", hostname="host")
        aw.heartbeat("bench_host", {"timestamp": datetime.now(UTC).isoformat(), "duration": 0,
                                    "data": {"app": "bench"}}, pulsetime=5)
        watcher = subprocess.Popen([lifelog, "watcher"], env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        wait_for(lambda: run_ok([lifelog, "meta", "get", "watcher.state"], env).stdout.strip() == "running",
                 30, what="the watcher")
        run_ok([lifelog, "watchdog", "--once"], env)
        time.sleep(1.0)  # past the startup grace: the steady state cron sees
        first = run_ok([lifelog, "watchdog", "--once"], env).stdout.strip()
        floor_says = run_ok([sys.executable, str(floor_dir / "floor"), "meta", "get", "watcher.pid"], env)
        lifelog_says = run_ok([lifelog, "meta", "get", "watcher.pid"], env)
        if floor_says.returncode != 0 or floor_says.stdout.strip() != lifelog_says.stdout.strip():
            raise SystemExit(f"bench: the floor and `lifelog meta get` disagree: {floor_says!r} {lifelog_says!r}")
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            FLOOR: [sys.executable, str(floor_dir / "floor"), "meta", "get", "watcher.pid"],
            "lifelog meta get watcher.pid": [lifelog, "meta", "get", "watcher.pid"],
            "lifelog watchdog --once": [lifelog, "watchdog", "--once"],
            "lifelog status": [lifelog, "status"],
            "lifelog meta show": [lifelog, "meta", "show"],
            "lifelog health": [lifelog, "health"],
        }
        for argv in commands.values():  # warm: byte code written, page cache filled
            run_ok(argv, env)
        times: dict[str, list[float]] = {name: [] for name in commands}
        codes: dict[str, set[int]] = {name: set() for name in commands}
        order = list(commands)
        for r in range(n):
            for name in order[r % len(order):] + order[:r % len(order)]:
                began = time.perf_counter()
                p = subprocess.run(commands[name], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   timeout=60)
                times[name].append(time.perf_counter() - began)
                codes[name].add(p.returncode)
        last = run_ok([lifelog, "meta", "get", "watchdog.verdict"], env).stdout.strip()
        state = run_ok([lifelog, "meta", "get", "watcher.state"], env).stdout.strip()
    finally:
        stop_process(watcher)
    floor = statistics.median(times[FLOOR])
    print(f"steady-state pass: {first[:90]}")
    print(f"after the runs: watchdog.verdict {last!r}, watcher.state {state!r}"
          + ("" if last == "ok" else "  (NOT the steady state: the figures are not the target's)"))
    print(f"{'command':<38} {'median':>9} {'x floor':>8}  target   exit codes   (n={n}, interleaved)")
    for name, samples in times.items():
        m = statistics.median(samples)
        target = verdict(m / floor, TARGETS[name]) if name in TARGETS else ""
        print(f"{name:<38} {m * 1000:7.1f} ms {m / floor:7.2f}x  {target:<13} {sorted(codes[name])}")


def populate(aw: AWServer, bucket: str, n: int) -> None:
    aw.create_bucket(bucket)
    start = datetime.now(UTC) - timedelta(seconds=3 * n)
    batch = []
    for i in range(n):
        batch.append({"timestamp": (start + timedelta(seconds=3 * i)).isoformat(), "duration": 2.5,
                      "data": {"app": f"app{i % 17}", "title": f"Window title number {i % 1000} - Editor"}})
        if len(batch) == 5000:
            aw.insert(bucket, batch)
            batch = []
    if batch:
        aw.insert(bucket, batch)


def backfill_against_fetch(aw: AWServer, home: str, events: int, rounds: int) -> None:
    bucket = "aw-watcher-window_bench"
    size = page_size()
    t = time.perf_counter()
    populate(aw, bucket, events)
    print(f"\ninserted {events} events into aw-server (through aw-client) in {time.perf_counter() - t:.1f} s; "
          f"pages of {size}")
    script = Path(home) / "bare_fetch.py"
    script.write_text(BARE_FETCH)
    env = {k: v for k, v in aw.env.items() if not k.startswith("LIFELOG_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(HOME=home, XDG_STATE_HOME=f"{home}/state", LIFELOG_AW_URL=aw.url, LIFELOG_BUCKETS=bucket,
               LIFELOG_AW_TIMEOUT_SECONDS="60")
    fetches, fills = [], []
    for r in range(rounds):
        began = time.perf_counter()
        got = run_ok([sys.executable, str(script), aw.url, bucket, str(size)], env, timeout=1800)
        fetches.append(time.perf_counter() - began)
        if got.returncode != 0 or got.stdout.strip() != str(events):
            raise SystemExit(f"bench: the bare fetch got {got.stdout.strip()!r} events: {got.stderr[-500:]}")
        db = Path(home) / f"backfill-{r}.db"
        began = time.perf_counter()
        filled = run_ok([sys.executable, "-m", "lifelog", "backfill", "--db", str(db)], env, timeout=1800)
        fills.append(time.perf_counter() - began)
        if filled.returncode != 0:
            raise SystemExit(f"bench: lifelog backfill exited {filled.returncode}: {filled.stderr[-500:]}")
        conn = sqlite3.connect(db)
        try:
            stored = conn.execute("SELECT count(*) FROM events WHERE bucket_id = ?", (bucket,)).fetchone()[0]
        finally:
            conn.close()
        if stored != events:
            raise SystemExit(f"bench: lifelog backfill stored {stored} of {events} events")
        print(f"round {r + 1}: bare fetch {fetches[-1]:.2f} s, backfill {fills[-1]:.2f} s, "
              f"ratio {fills[-1] / fetches[-1]:.3f}")
    fm, bm = statistics.median(fetches), statistics.median(fills)
    paired = [b / f for b, f in zip(fills, fetches, strict=True)]
    print(f"backfill / bare requests fetch, {events} events: {bm:.2f} s / {fm:.2f} s = {bm / fm:.3f} "
          f"({verdict(bm / fm, 1.15)}; medians of {rounds}, each a process); round by round "
          f"{min(paired):.3f}-{max(paired):.3f}, median {statistics.median(paired):.3f}")


def idle(seconds: float) -> None:
    elapsed, used = bench_idle.measure(seconds, 10)
    print(f"\nidle for {elapsed:.0f} s, default settings (poll every 10 s):")
    for name, (cpu_s, rss) in used.items():
        mb = rss * 2**20 / 1e6
        print(f"idle {name:<8} RSS {rss:5.1f} MiB = {mb:5.1f} MB ({'ok' if mb <= 60 else 'MISSED'} <= 60 MB), "
              f"CPU {1000 * cpu_s / elapsed:.2f} ms/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=30, help="runs of each command (default 30)")
    parser.add_argument("--no-pyc", action="store_true", help="keep PYTHONDONTWRITEBYTECODE as it is")
    parser.add_argument("--events", type=int, default=100_000, help="events the backfill copies (default 100000)")
    parser.add_argument("--rounds", type=int, default=3, help="backfill and fetch runs each (default 3)")
    parser.add_argument("--idle-seconds", type=float, default=30, help="idle window (default 30)")
    parser.add_argument("--skip", action="append", default=[], choices=["commands", "backfill", "idle"])
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]}, aw-server 0.12.0 --testing")
    with tempfile.TemporaryDirectory(prefix="lifelog-bench-") as home:
        aw = AWServer(Path(home) / "aw")
        try:
            aw.start()
            if "commands" not in args.skip:
                short_commands(aw, home, args.n, args.no_pyc)
            if "backfill" not in args.skip:
                backfill_against_fetch(aw, home, args.events, args.rounds)
        finally:
            aw.stop()
    if "idle" not in args.skip:
        idle(args.idle_seconds)


if __name__ == "__main__":
    main()
