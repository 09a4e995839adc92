#!/usr/bin/env python3
"""Idle cost of a running LifeLog: CPU and RSS of `lifelog daemon` and its
watcher over N seconds, with the default settings (poll every 10 s, watchdog
every 30 s, health every 15 min).

    .venv/bin/python scripts/bench_idle.py [--seconds 120] [--poll 10]

Starts `aw-server --testing` (data in a temp dir) with a bucket receiving a
heartbeat every 5 s (a person at the keyboard), then the daemon; once the
watcher runs and the first ingest is done, measures each process's CPU time
(user + system) over the window, and its RSS at the end.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from support.awserver import AWServer  # noqa: E402
from support.helpers import stop_process  # noqa: E402


def cpu(p: psutil.Process) -> float:
    t = p.cpu_times()
    return t.user + t.system


def measure(seconds: float, poll: float) -> tuple[float, dict[str, tuple[float, float]]]:
    """Idle `lifelog daemon` and its watcher for `seconds`: (elapsed, {process:
    (CPU s used in the window, RSS MiB at its end)}). Raises when the watcher
    does not start."""
    with tempfile.TemporaryDirectory(prefix="lifelog-idle-") as tmp:
        work = Path(tmp)
        aw = AWServer(work / "aw").start()
        stop = threading.Event()
        daemon = None
        try:
            aw.create_bucket("idle-window")

            def feed():
                while not stop.is_set():
                    try:
                        aw.heartbeat("idle-window", {"timestamp": datetime.now(UTC).isoformat(),
                                                     "duration": 0, "data": {"app": "editor"}}, pulsetime=10)
                    except Exception:
                        pass
                    stop.wait(5)

            threading.Thread(target=feed, daemon=True).start()
            db = work / "lifelog.db"
            home = work / "home"
            env = dict(os.environ, LIFELOG_AW_URL=aw.url, LIFELOG_DB_PATH=str(db),
                       LIFELOG_POLL_INTERVAL_SECONDS=str(poll),
                       XDG_STATE_HOME=str(home / "state"), XDG_DATA_HOME=str(home / "data"),
                       XDG_CONFIG_HOME=str(home / "config"), XDG_CACHE_HOME=str(home / "cache"))
            env = {k: v for k, v in env.items() if k == "LIFELOG_AW_URL" or k == "LIFELOG_DB_PATH"
                   or k == "LIFELOG_POLL_INTERVAL_SECONDS" or not k.startswith("LIFELOG_")}
            daemon = subprocess.Popen([sys.executable, "-m", "lifelog", "daemon", "--db", str(db)], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 60
            watcher = None
            while time.monotonic() < deadline and watcher is None:
                for child in psutil.process_iter(["cmdline"]):
                    cmd = child.info["cmdline"] or []
                    if "watcher" in cmd and str(db) in cmd and "-c" not in cmd[:2]:
                        watcher = child
                time.sleep(0.2)
            if watcher is None:
                raise RuntimeError("the watcher did not start")
            time.sleep(max(5.0, poll * 1.5))  # warm-up: first ingest, first watchdog passes
            procs = {"daemon": psutil.Process(daemon.pid), "watcher": watcher}
            before = {k: cpu(p) for k, p in procs.items()}
            began = time.monotonic()
            time.sleep(seconds)  # the measuring window
            elapsed = time.monotonic() - began
            return elapsed, {name: (cpu(p) - before[name], p.memory_info().rss / 2**20)
                             for name, p in procs.items()}
        finally:
            stop.set()
            stop_process(daemon, 30)
            aw.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120, help="measuring window (default 120)")
    parser.add_argument("--poll", type=float, default=10, help="poll_interval_seconds (default 10, the default)")
    args = parser.parse_args()
    try:
        elapsed, used = measure(args.seconds, args.poll)
    except RuntimeError as e:
        print(e, file=sys.stderr)
        return 1
    print(f"idle for {elapsed:.0f} s, poll every {args.poll:g} s (aw-server 0.12.0 --testing, "
          f"Python {sys.version.split()[0]})")
    print(f"{'process':8}  {'CPU s':>6}  {'CPU %':>6}  {'ms/s':>5}  {'RSS MiB':>7}")
    for name, (cpu_s, rss) in used.items():
        print(f"{name:8}  {cpu_s:6.2f}  {100 * cpu_s / elapsed:6.3f}  {1000 * cpu_s / elapsed:5.2f}  {rss:7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
