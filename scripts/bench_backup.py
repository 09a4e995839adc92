#!/usr/bin/env python3
"""Benchmark `lifelog backup` on a big database while the watcher writes (not a test).

    .venv/bin/python scripts/bench_backup.py [--gb 1.0] [--rounds 3] [--dir DIR]

Builds a LifeLog database of at least `--gb` GB (synthetic events, SQL only)
in a temp folder under `--dir` (default: the system temp dir), starts
`aw-server --testing` with a feeder posting an event every 50 ms and a real
`lifelog watcher` (poll every 0.1 s) on that database, and samples the
watcher's `watcher.heartbeat_at` every 5 ms. Then, alternately, `--rounds`
times:

- `cp` of the database file to the same folder, then `sync` of the copy
  (the physical anchor: the disk's own speed; a plain copy of a live WAL
  database is not a usable backup, it only sets the pace);
- `lifelog backup --json` to the same folder (copy, integrity_check, fsync);

and once `VACUUM INTO` on its own connection, for comparison. It reports
each one's time and throughput, the backup's phases, and the largest gap
between two heartbeats during each, beside the largest gap while nothing
else ran.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from support import bigdb  # noqa: E402
from support.awserver import AWServer  # noqa: E402
from support.helpers import HeartbeatSampler, stop_process  # noqa: E402

BUCKET = "aw-watcher-window_bench-backup"
GB = 1_000_000_000


def feed(aw: AWServer, stop: threading.Event) -> None:
    start, n = datetime.now(UTC) - timedelta(hours=1), 0
    while not stop.wait(0.05):
        try:
            aw.insert(BUCKET, [{"timestamp": (start + timedelta(seconds=n)).isoformat(), "duration": 0.5,
                                "data": {"app": "editor", "title": f"bench {n}"}}])
            n += 1
        except Exception:
            pass


def timed(sampler: HeartbeatSampler, action) -> tuple[float, float, object]:
    began = time.monotonic()
    result = action()
    ended = time.monotonic()
    return ended - began, sampler.largest_gap(began, ended), result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gb", type=float, default=1.0, help="database size in GB (default 1.0)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--dir", default=None, help="where to work (default: the system temp dir)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="lifelog-bench-backup-", dir=args.dir) as work:
        work = Path(work)
        db_path = work / "lifelog.db"
        t = time.monotonic()
        bigdb.fill(db_path, int(args.gb * GB), chunk=100_000)
        size = db_path.stat().st_size
        print(f"database: {size / GB:.2f} GB in {work} (made in {time.monotonic() - t:.0f} s)")
        aw = AWServer(work / "aw").start()
        stop = threading.Event()
        watcher = None
        sampler = HeartbeatSampler(db_path, interval=0.005)
        try:
            aw.create_bucket(BUCKET)
            threading.Thread(target=feed, args=(aw, stop), daemon=True).start()
            env = dict(os.environ, LIFELOG_AW_URL=aw.url, LIFELOG_BUCKETS=BUCKET,
                       LIFELOG_POLL_INTERVAL_SECONDS="0.1", XDG_DATA_HOME=str(work / "data"))
            watcher = subprocess.Popen([sys.executable, "-m", "lifelog", "watcher", "--db", str(db_path)],
                                       env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            sampler.start()
            deadline = time.monotonic() + 60
            while len(sampler.changes) < 20:
                if time.monotonic() > deadline:
                    raise RuntimeError("the watcher did not heartbeat within 60 s")
                time.sleep(0.1)
            quiet = timed(sampler, lambda: time.sleep(10))[1]
            print(f"watcher alone, 10 s: largest heartbeat gap {quiet:.3f} s (poll every 0.1 s)")

            def cp() -> None:
                target = work / "cp-copy.db"
                subprocess.run(["cp", str(db_path), str(target)], check=True)
                subprocess.run(["sync", str(target)], check=True)
                target.unlink()

            def backup() -> dict:
                r = subprocess.run([sys.executable, "-m", "lifelog", "backup", "--db", str(db_path), "--dest",
                                    str(work / "backups"), "--json"], env=env, capture_output=True, text=True,
                                   check=True)
                doc = json.loads(r.stdout)
                Path(doc["path"]).unlink()  # keep the disk from filling; retention is not measured here
                return doc

            cps, backups = [], []
            for i in range(args.rounds):
                seconds, gap, _ = timed(sampler, cp)
                cps.append((seconds, gap))
                print(f"round {i + 1}: cp + sync    {seconds:6.2f} s  {size / seconds / 1e6:6.0f} MB/s  "
                      f"largest heartbeat gap {gap:.3f} s")
                seconds, gap, doc = timed(sampler, backup)
                backups.append((seconds, gap, doc))
                print(f"round {i + 1}: lifelog backup {seconds:6.2f} s  {size / seconds / 1e6:6.0f} MB/s  "
                      f"largest heartbeat gap {gap:.3f} s  (copy {doc['copy_seconds']:.2f} s, "
                      f"integrity_check {doc['verify_seconds']:.2f} s, fsync {doc['sync_seconds']:.2f} s; "
                      f"{doc['events']:,} events)")

            def vacuum_into() -> None:
                target = work / "vacuum-into.db"
                conn = sqlite3.connect(db_path, timeout=30)
                conn.execute("VACUUM INTO ?", (str(target),))
                conn.close()
                target.unlink()

            seconds, gap, _ = timed(sampler, vacuum_into)
            print(f"VACUUM INTO (no check, no fsync)  {seconds:6.2f} s  {size / seconds / 1e6:6.0f} MB/s  "
                  f"largest heartbeat gap {gap:.3f} s")
            cp_med = statistics.median(s for s, _ in cps)
            b_med = statistics.median(s for s, _, _ in backups)
            copy_med = statistics.median(d["copy_seconds"] for _, _, d in backups)
            print(f"medians: cp + sync {cp_med:.2f} s; lifelog backup {b_med:.2f} s ({b_med / cp_med:.1f}x), "
                  f"its copy phase alone {copy_med:.2f} s ({copy_med / cp_med:.1f}x); largest heartbeat gap "
                  f"during any backup {max(g for _, g, _ in backups):.3f} s")
        finally:
            stop.set()
            sampler.stop.set()
            stop_process(watcher, 15)
            aw.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
