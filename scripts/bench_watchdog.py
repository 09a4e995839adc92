#!/usr/bin/env python3
"""Wall time of `lifelog watchdog --once` (what cron runs every minute) against
a bare `python -c pass`, in a steady state: a healthy watcher running, so the
pass decides `ok` without calling AW.

    .venv/bin/python scripts/bench_watchdog.py [-n 20]

Runs in a throw-away HOME; starts one watcher (pointed at a closed port, so it
heartbeats without AW) and stops it at the end. Byte-code caching is on for
the runs (as for an installed package), even when PYTHONDONTWRITEBYTECODE is
set around it; `--no-pyc` measures without it.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(argv: list[str], env: dict[str, str], n: int) -> list[float]:
    times = []
    for _ in range(n):
        began = time.perf_counter()
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - began)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20, help="runs of each command (default 20)")
    parser.add_argument("--no-pyc", action="store_true", help="keep PYTHONDONTWRITEBYTECODE as it is")
    args = parser.parse_args()
    lifelog = str(Path(sys.executable).with_name("lifelog"))
    with tempfile.TemporaryDirectory() as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIFELOG_")}
        if not args.no_pyc:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.update(HOME=home, XDG_STATE_HOME=f"{home}/state", XDG_DATA_HOME=f"{home}/data",
                   XDG_CONFIG_HOME=f"{home}/config", LIFELOG_AW_URL="http://127.0.0.1:9",
                   LIFELOG_STARTUP_GRACE_SECONDS="0.5", LIFELOG_POLL_INTERVAL_SECONDS="1")
        db = f"{home}/bench.db"
        subprocess.run([lifelog, "watchdog", "--once", "--db", db], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # starts the watcher
        time.sleep(1.5)  # past the startup grace: steady state
        try:
            verdict = subprocess.run([lifelog, "watchdog", "--once", "--json", "--db", db], env=env,
                                     capture_output=True, text=True, check=True).stdout
            bare = timed([sys.executable, "-c", "pass"], env, args.n)
            once = timed([lifelog, "watchdog", "--once", "--db", db], env, args.n)
            via_typer = timed([sys.executable, "-c", "import sys; from lifelog.cli import main; main(sys.argv[1:])",
                               "watchdog", "--once", "--db", db], env, args.n)
        finally:
            pid = subprocess.run([lifelog, "meta", "get", "watcher.pid", "--db", db], env=env,
                                 capture_output=True, text=True).stdout.strip()
            if pid:
                os.kill(int(pid), signal.SIGTERM)
                time.sleep(0.5)
    b, o, t = statistics.median(bare), statistics.median(once), statistics.median(via_typer)
    print(f"steady-state pass: {verdict.strip()[:100]}...")
    print(f"python -c pass           median {b * 1000:7.1f} ms  (n={args.n})")
    print(f"lifelog watchdog --once  median {o * 1000:7.1f} ms  (n={args.n})")
    print(f"ratio                    {o / b:7.1f}x")
    print(f"same pass through typer  median {t * 1000:7.1f} ms  ({t / b:.1f}x; the fast path skips it)")


if __name__ == "__main__":
    main()
