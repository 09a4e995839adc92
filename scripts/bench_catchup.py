#!/usr/bin/env python3
"""The catch-up alone against a bare fetch, interleaved, with AW's CPU time.

    .venv/bin/python scripts/bench_catchup.py [--days 3] [--step 3] [--rounds 5]

scripts/bench_devices.py plays the whole scene (three servers, a live
desktop, a watcher process) and needs many cycles to see through this VM's
drifting speed. This one asks a narrower question with less noise: one
`aw-server --testing` holding a laptop's three days (the same buckets and
events as there), LifeLog's part of a device coming back run in this
process exactly as the watcher runs it (the live poll that finds it back,
then a CatchUp thread, lifelog.ingest.catchup) into a fresh copy of a
database that had seen the laptop before it left, and a bare `requests`
fetch of the same buckets with LifeLog's paging (bench_devices' fetch: a
process per bucket, timed after its imports), one after the other, round
after round. For each run it reads the aw-server process's CPU time from
/proc: AW's CPU is the limit of both, and `wall - AW CPU` is the time AW
sat idle, waiting for its client.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "scripts")]

from bench_devices import LAPTOP_BUCKETS, feed, fetch_all  # noqa: E402
from support.awserver import AWServer  # noqa: E402

WINDOW, AFK = LAPTOP_BUCKETS


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (Linux)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=3, help="days the laptop was away (default 3)")
    parser.add_argument("--step", type=float, default=3, help="seconds between its window events (default 3)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of a bare fetch and a catch-up (default 5)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lifelog-bench-catchup-") as tmp:
        home = Path(tmp)
        aw = AWServer(home / "laptop").start()
        try:
            env = {k: v for k, v in aw.env.items() if not k.startswith("LIFELOG_")}
            env.update(HOME=str(home), XDG_STATE_HOME=str(home / "state"))
            for name in [k for k in os.environ if k.startswith("LIFELOG_")]:
                del os.environ[name]
            os.environ.update(HOME=env["HOME"], XDG_STATE_HOME=env["XDG_STATE_HOME"], LIFELOG_AW_URL=aw.url,
                              LIFELOG_AW_TIMEOUT_SECONDS="10")
            # Imported once the environment is LifeLog's own (its settings read it).
            from lifelog.aw.client import AWClient
            from lifelog.core.settings import load_settings
            from lifelog.db.database import open_db
            from lifelog.ingest import livepoll
            from lifelog.ingest.catchup import CatchUp
            from lifelog.ingest.store import connect

            def poll_once(path: Path) -> tuple[float, float, int]:
                """LifeLog's part: (live poll seconds, catch-up seconds, events stored)."""
                settings = load_settings(overrides={"db_path": str(path)})
                db, client = open_db(path), AWClient(aw.url, 10)
                try:
                    t0 = time.perf_counter()
                    src, listing, chosen = connect(db, client, settings)
                    livepoll.poll_live(db, src, listing, chosen)
                    t1 = time.perf_counter()
                    catch_up = CatchUp.start("laptop", path, src, chosen, lambda: False)
                    if not catch_up.join(600) or catch_up.error:
                        raise SystemExit(f"bench: the catch-up failed: {catch_up.error or 'not over in 600 s'}")
                    t2 = time.perf_counter()
                    return t1 - t0, t2 - t1, db.conn.execute("SELECT count(*) FROM events").fetchone()[0]
                finally:
                    db.conn.close()
                    client.close()

            now = datetime.now(UTC)
            for bucket, kind in LAPTOP_BUCKETS.items():
                aw.create_bucket(bucket, kind, hostname="laptop")
                feed(aw, bucket, now - timedelta(days=args.days, hours=1), 10, 60, "before")
            seen = home / "seen.db"  # LifeLog met the laptop once, before it left
            poll_once(seen)
            start = now - timedelta(days=args.days)
            feed(aw, WINDOW, start, int(args.days * 86400 / args.step), args.step, "trip")
            feed(aw, AFK, start, int(args.days * 86400 / 60), 60, "afk")
            total = sum(len(aw.events(b)) for b in LAPTOP_BUCKETS)
            aw.stop()
            aw.start()  # its writes checkpointed, as a laptop's AW coming back has them
            pid = aw.proc.pid if aw.proc else 0
            fetch_all(aw, home, env, total)  # warm-up, not counted
            print(f"Python {sys.version.split()[0]}, aw-server --testing; {total:,} events in 2 buckets, "
                  f"{args.rounds} rounds\n")
            print("| round | bare fetch | AW CPU, idle | LifeLog: live poll + catch-up | AW CPU, idle | ratio |")
            print("|---|---|---|---|---|---|")
            bare, ours, idle_bare, idle_ours = [], [], [], []
            for r in range(1, args.rounds + 1):
                c0 = cpu_seconds(pid)
                b = fetch_all(aw, home, env, total)  # timed after its imports
                bc = cpu_seconds(pid) - c0
                path = home / f"round{r}.db"
                shutil.copy(seen, path)
                c0 = cpu_seconds(pid)
                live, catch, stored = poll_once(path)
                o, oc = live + catch, cpu_seconds(pid) - c0
                if stored != total:
                    raise SystemExit(f"bench: LifeLog stored {stored} of {total} events")
                bare.append(b)
                ours.append(o)
                idle_bare.append(b - bc)
                idle_ours.append(o - oc)
                print(f"| {r} | {b:.2f} s | {bc:.2f}, {b - bc:.2f} s | {live:.2f} + {catch:.2f} = {o:.2f} s | "
                      f"{oc:.2f}, {o - oc:.2f} s | {o / b:.2f} |")
            ratio = statistics.median(o / b for o, b in zip(ours, bare, strict=True))
            print(f"| median | {statistics.median(bare):.2f} s | idle {statistics.median(idle_bare):.2f} s | "
                  f"{statistics.median(ours):.2f} s | idle {statistics.median(idle_ours):.2f} s | **{ratio:.2f}** |")
        finally:
            aw.stop()


if __name__ == "__main__":
    main()
