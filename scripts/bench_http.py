#!/usr/bin/env python3
"""What LifeLog's HTTP layer (requests, through lifelog.aw.transport) costs
the commands that call AW, `lifelog status` first (target: 150 ms in all).

    .venv/bin/python scripts/bench_http.py [-n 15]

1. The import cost, in a fresh interpreter that has already imported what
   the status path imports anyway (settings, db, status, json, sqlite3,
   logging, urllib.parse): `http.client` (under every HTTP library),
   `requests`, and `lifelog.aw.transport` (requests and the bounded session).
2. The status path without the command-line layer (settings, database, a
   live AW health check of two requests, the verdict) against a real
   aw-server started here, beside a bare `python -c pass`.

Medians and minimums over n fresh interpreters; the machine's load moves
them, so compare the rows of one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BASE = ("import json, sqlite3, logging, datetime, dataclasses, pathlib, urllib.parse\n"
        "import lifelog.core.settings, lifelog.db.database, lifelog.monitor, lifelog.core.timeutil\n")
# What `lifelog status` does below its command line (lifelog.monitor.status_now).
STATUS_PATH = """
from lifelog.core.settings import load_settings
from lifelog.db.database import open_db
from lifelog import monitor
settings = load_settings()
report = monitor.status_now(open_db(settings.db_path), settings)
aw = report.components[0]
assert (aw.name, aw.level.name) == ("aw", "OK"), report.summary
"""


def run_python(code: str, env: dict[str, str]) -> str:
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True, timeout=60).stdout


def import_cost(stmt: str, env: dict[str, str], n: int) -> list[float]:
    code = f"{BASE}import time\nt = time.perf_counter()\n{stmt}\nprint((time.perf_counter() - t) * 1000)"
    return [float(run_python(code, env)) for _ in range(n)]


def wall(code: str, env: dict[str, str], n: int) -> list[float]:
    times = []
    for _ in range(n):
        began = time.perf_counter()
        run_python(code, env)
        times.append((time.perf_counter() - began) * 1000)
    return times


def row(label: str, ms: list[float]) -> None:
    print(f"  {label:<42} median {statistics.median(ms):6.1f} ms   min {min(ms):6.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=15, help="fresh interpreters per row (default 15)")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "tests"))
    from support.awserver import AWServer  # the tests' real-server fixture

    with tempfile.TemporaryDirectory(prefix="lifelog-bench-http-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIFELOG_")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.update(HOME=tmp, XDG_CONFIG_HOME=f"{tmp}/config", XDG_DATA_HOME=f"{tmp}/data",
                   XDG_STATE_HOME=f"{tmp}/state", PYTHONPATH=str(REPO))
        print("import cost, after what the status path imports anyway:")
        for stmt in ("import http.client", "import requests", "import lifelog.aw.transport"):
            run_python(f"{BASE}{stmt}", env)  # byte-code caches warm
            row(stmt, import_cost(stmt, env, args.n))
        aw = AWServer(Path(tmp) / "aw").start()
        try:
            env["LIFELOG_AW_URL"] = aw.url
            run_python(STATUS_PATH, env)  # creates the database
            print(f"status path (settings, db, 2 requests to {aw.url}, verdict), whole process:")
            row("python -c pass", wall("pass", env, args.n))
            row("the status path (as shipped)", wall(STATUS_PATH, env, args.n))
        finally:
            aw.stop()


if __name__ == "__main__":
    main()
