#!/usr/bin/env python3
"""Wall time of LifeLog's short commands against a bare `python -c pass`.

    .venv/bin/python scripts/bench_commands.py [-n 30]

The watchdog's cron pass (`lifelog watchdog --once`, every minute) and the
commands people type (`status`, `meta get`, `meta show`, `health`), in a
steady state: a real `aw-server --testing` on a free port (its data in a
temp dir), a healthy watcher ingesting from it, so the pass decides `ok`
and `status` checks a live AW. Medians of n runs each, interleaved, so a
load that comes and goes touches every command alike. Byte-code caching is
on (as for an installed package) even when PYTHONDONTWRITEBYTECODE is set
around it; `--no-pyc` keeps it as it is.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from support.awserver import AWServer  # noqa: E402  (the tests' real-server fixture)
from support.helpers import stop_process, wait_for  # noqa: E402


def run_ok(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=30, help="runs of each command (default 30)")
    parser.add_argument("--no-pyc", action="store_true", help="keep PYTHONDONTWRITEBYTECODE as it is")
    args = parser.parse_args()
    lifelog = str(Path(sys.executable).parent / "lifelog")
    with tempfile.TemporaryDirectory() as home:
        aw = AWServer(Path(home) / "aw")
        env = {k: v for k, v in aw.env.items() if not k.startswith("LIFELOG_")}
        if not args.no_pyc:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.update(HOME=home, XDG_STATE_HOME=f"{home}/state", LIFELOG_AW_URL=aw.url,
                   LIFELOG_STARTUP_GRACE_SECONDS="0.5", LIFELOG_POLL_INTERVAL_SECONDS="2",
                   LIFELOG_DB_PATH=f"{home}/bench.db")
        watcher = None
        try:
            aw.start()
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
            commands = {
                "python -c pass": [sys.executable, "-c", "pass"],
                "lifelog watchdog --once": [lifelog, "watchdog", "--once"],
                "lifelog status": [lifelog, "status"],
                "lifelog meta get watcher.pid": [lifelog, "meta", "get", "watcher.pid"],
                "lifelog meta show": [lifelog, "meta", "show"],
                "lifelog health": [lifelog, "health"],
            }
            times: dict[str, list[float]] = {name: [] for name in commands}
            for _ in range(args.n):
                for name, argv in commands.items():
                    began = time.perf_counter()
                    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   timeout=60)
                    times[name].append(time.perf_counter() - began)
        finally:
            stop_process(watcher)
            aw.stop()
    bare = statistics.median(times["python -c pass"])
    print(f"steady-state pass: {first[:90]}")
    print(f"{'command':<30} {'median':>9} {'ratio to python -c pass':>24}   (n={args.n})")
    for name, samples in times.items():
        m = statistics.median(samples)
        print(f"{name:<30} {m * 1000:7.1f} ms {m / bare:23.1f}x")


if __name__ == "__main__":
    main()
