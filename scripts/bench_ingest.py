#!/usr/bin/env python3
"""Benchmark LifeLog's ingestion against a local aw-server (not a test).

    .venv/bin/python scripts/bench_ingest.py [--events 100000] [--rounds 3]

Starts `aw-server --testing` with its data in a temp dir (as tests/awserver.py
does), inserts N events into one bucket, then, in the same run, alternates:

- fetch only: the same pages a backfill asks for (PAGE_SIZE newest first, `end`
  moved down), over HTTP with JSON decoding, nothing stored;
- backfill: `history.backfill` into a fresh database.

It reports the median of each and their ratio (target <= 1.15), the
watcher's CPU time per idle poll (poll + heartbeat, AW's hint unchanged),
and the peak RSS of a `lifelog backfill` process over the same events.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "scripts")]

import bench_commands  # noqa: E402  (its populate: the same events for both benchmarks)
from support.awserver import AWServer  # noqa: E402

from lifelog.aw.client import AWClient  # noqa: E402
from lifelog.core.settings import Settings  # noqa: E402
from lifelog.core.timeutil import parse_iso  # noqa: E402
from lifelog.db.database import open_db  # noqa: E402
from lifelog.ingest import history, watcher  # noqa: E402

BUCKET = "aw-watcher-window_bench"
CPU: list[float] = []  # LifeLog's own CPU per backfill (both threads), less noisy than wall time


def fetch_only(url: str) -> tuple[float, int]:
    """The HTTP part of a backfill alone: same pages, same client, nothing stored."""
    client = AWClient(url, 60)
    began = time.perf_counter()
    ids, end, limit = set(), None, history.PAGE_SIZE
    while True:
        page = client.events(BUCKET, end=end, limit=limit)
        ids.update(e["id"] for e in page)
        if len(page) < limit:
            break
        end = parse_iso(page[-1]["timestamp"])
    elapsed = time.perf_counter() - began
    client.close()
    return elapsed, len(ids)


def backfill_once(url: str, db_path: Path) -> tuple[float, int]:
    settings = Settings(db_path=db_path, aw_url=url, aw_timeout_seconds=60, buckets=BUCKET)
    db = open_db(db_path)
    client = AWClient(url, 60)
    began, cpu = time.perf_counter(), time.process_time()
    report = history.backfill(db, client, settings)
    elapsed = time.perf_counter() - began
    CPU.append(time.process_time() - cpu)
    assert report.complete
    n = db.conn.execute("SELECT count(*) FROM events").fetchone()[0]
    client.close()
    db.conn.close()
    return elapsed, n


def idle_poll_cpu(url: str, db_path: Path, polls: int) -> float:
    settings = Settings(db_path=db_path, aw_url=url, buckets=BUCKET)
    db = open_db(db_path)
    client = AWClient(url, 10)
    stop = threading.Event()
    watcher.record_heartbeat(db, watcher.poll_once(db, client, settings, stop))  # warm
    began = time.process_time()
    for _ in range(polls):
        outcome = watcher.poll_once(db, client, settings, stop)
        assert outcome.ok, outcome.error
        watcher.record_heartbeat(db, outcome)
    cpu = (time.process_time() - began) / polls
    client.close()
    db.conn.close()
    return cpu


def backfill_process_rss_mb(url: str, db_path: Path) -> float:
    """Peak RSS of a `lifelog backfill` process. Started from a small wrapper
    process: a child forked from this one (big after the rounds above) would
    report this process's pages as its own peak."""
    env = dict(os.environ, LIFELOG_AW_URL=url, LIFELOG_BUCKETS=BUCKET, LIFELOG_AW_TIMEOUT_SECONDS="60")
    wrapper = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
               "stdout=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", wrapper, sys.executable, "-m", "lifelog", "backfill", "--db",
                          str(db_path)], env=env, check=True, capture_output=True, text=True, timeout=600).stdout
    return int(out.split()[-1]) / 1024  # Linux reports KiB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--idle-polls", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="lifelog-bench-") as tmp:
        tmp = Path(tmp)
        aw = AWServer(tmp / "aw").start()
        try:
            t = time.perf_counter()
            bench_commands.populate(aw, BUCKET, args.events)
            print(f"inserted {args.events} events into aw-server in {time.perf_counter() - t:.1f} s")
            fetch_times, fill_times = [], []
            for r in range(args.rounds):
                f, n = fetch_only(aw.url)
                assert n == args.events, n
                b, m = backfill_once(aw.url, tmp / f"bench-{r}.db")
                assert m == args.events, m
                fetch_times.append(f)
                fill_times.append(b)
                print(f"round {r + 1}: fetch only {f:.2f} s, backfill {b:.2f} s, ratio {b / f:.3f} "
                      f"(LifeLog CPU {CPU[-1]:.2f} s)")
            fm, bm = statistics.median(fetch_times), statistics.median(fill_times)
            print(f"median: fetch only {fm:.2f} s ({args.events / fm:,.0f} ev/s), backfill {bm:.2f} s "
                  f"({args.events / bm:,.0f} ev/s), ratio {bm / fm:.3f} (target <= 1.15); "
                  f"LifeLog CPU {statistics.median(CPU):.2f} s; ratios ranged "
                  f"{min(b / f for b, f in zip(fill_times, fetch_times, strict=True)):.3f}-"
                  f"{max(b / f for b, f in zip(fill_times, fetch_times, strict=True)):.3f}")
            cpu = idle_poll_cpu(aw.url, tmp / "bench-0.db", args.idle_polls)
            print(f"watcher CPU per idle poll: {cpu * 1000:.2f} ms (mean of {args.idle_polls})")
            rss = backfill_process_rss_mb(aw.url, tmp / "bench-rss.db")
            print(f"peak RSS of a `lifelog backfill` process ({args.events} events): {rss:.0f} MiB")
        finally:
            aw.stop()


if __name__ == "__main__":
    main()
