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
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise SystemExit(f"bench: timed out waiting for {what}")


def run_ok(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=30, help="runs of each command (default 30)")
    parser.add_argument("--no-pyc", action="store_true", help="keep PYTHONDONTWRITEBYTECODE as it is")
    args = parser.parse_args()
    bindir = Path(sys.executable).parent
    lifelog = str(bindir / "lifelog")
    with tempfile.TemporaryDirectory() as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIFELOG_")}
        if not args.no_pyc:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
        port = free_port()
        env.update(HOME=home, XDG_STATE_HOME=f"{home}/state", XDG_DATA_HOME=f"{home}/data",
                   XDG_CONFIG_HOME=f"{home}/config", XDG_CACHE_HOME=f"{home}/cache",
                   LIFELOG_AW_URL=f"http://127.0.0.1:{port}", LIFELOG_STARTUP_GRACE_SECONDS="0.5",
                   LIFELOG_POLL_INTERVAL_SECONDS="2", LIFELOG_DB_PATH=f"{home}/bench.db")
        aw = subprocess.Popen([str(bindir / "aw-server"), "--testing", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        watcher = None
        try:
            wait_until(lambda: run_ok([lifelog, "health"], env).returncode == 0, 30, "aw-server")
            bucket = f"{env['LIFELOG_AW_URL']}/api/0/buckets/bench_host"
            subprocess.run([sys.executable, "-c", (
                "import sys, requests\n"
                "requests.post(sys.argv[1], json={'client': 'bench', 'type': 'currentwindow', "
                "'hostname': 'host'}, timeout=10)\n"
                "requests.post(sys.argv[1] + '/heartbeat?pulsetime=5', json={'timestamp': "
                "__import__('datetime').datetime.now(__import__('datetime').timezone.utc).isoformat(), "
                "'duration': 0, 'data': {'app': 'bench'}}, timeout=10)\n"), bucket], check=True, env=env)
            watcher = subprocess.Popen([lifelog, "watcher"], env=env, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
            wait_until(lambda: run_ok([lifelog, "meta", "get", "watcher.state"], env).stdout.strip() == "running",
                       30, "the watcher")
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
            for proc in (watcher, aw):
                if proc is not None and proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(10)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait(10)
    bare = statistics.median(times["python -c pass"])
    print(f"steady-state pass: {first[:90]}")
    print(f"{'command':<30} {'median':>9} {'ratio to python -c pass':>24}   (n={args.n})")
    for name, samples in times.items():
        m = statistics.median(samples)
        print(f"{name:<30} {m * 1000:7.1f} ms {m / bare:23.1f}x")


if __name__ == "__main__":
    main()
