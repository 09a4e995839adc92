#!/usr/bin/env python3
"""The watchdog's cron pass with sources to judge: 20 buckets, a year of history.

    .venv/bin/python scripts/bench_sources.py [-n 30] [--days 365]

Builds a database as the watcher would leave it after a year: 20 buckets on
one AW server (afk, window, input, six browsers, aw-sync copies, another
host's buckets, other watchers) and ~0.9 million events, the last two hours
dense (a window event every 5 s). A live process stands in for the watcher
(its identity and heartbeat recorded, fresh before every run), so the pass
decides `ok` without asking AW, then judges every source. Two cases:

- steady: every source recorded within the threshold, so no event is read;
- evidence: the input and browser buckets an hour quiet, so each pass reads
  the afk and window events of the evidence window (70 min by default).

Reports the medians of `lifelog watchdog --once` against a bare
`python -c pass` (interleaved, n runs each), as wall time and as CPU time
(user + system, from wait4: it holds still when other work shares the
machine), and of the sources step alone, in-process. Nothing contacts an AW
server (aw_url points at a closed port).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from support.awserver import free_port  # noqa: E402

from lifelog.core import keys  # noqa: E402
from lifelog.core.clocks import format_clocks  # noqa: E402
from lifelog.core.identity import identity_meta  # noqa: E402
from lifelog.core.timeutil import to_iso, utcnow  # noqa: E402
from lifelog.core.verdicts import WatcherState  # noqa: E402
from lifelog.db.database import open_db, transaction  # noqa: E402
from lifelog.db.meta import set_meta  # noqa: E402

HOST = "laptop"
SERVER = "bench-device"
# bucket id, type, host, seconds between events over the year
BUCKETS = [
    ("aw-watcher-afk_laptop", "afkstatus", HOST, 300),
    ("aw-watcher-window_laptop", "currentwindow", HOST, 60),
    ("aw-watcher-input_laptop", "os.hid.input", HOST, 300),
    ("aw-watcher-web-firefox_laptop", "web.tab.current", HOST, 300),
    ("aw-watcher-web-chrome_laptop", "web.tab.current", HOST, 600),
    ("aw-watcher-web-brave_laptop", "web.tab.current", HOST, 3600),
    ("aw-watcher-web-edge_laptop", "web.tab.current", HOST, 3600),
    ("aw-watcher-web-opera_laptop", "web.tab.current", HOST, 3600),
    ("aw-watcher-web-vivaldi_laptop", "web.tab.current", HOST, 3600),
    ("aw-watcher-afk_desk-synced-from-desk", "afkstatus", "desk", 900),
    ("aw-watcher-window_desk-synced-from-desk", "currentwindow", "desk", 900),
    ("aw-watcher-web-firefox_desk-synced-from-desk", "web.tab.current", "desk", 3600),
    ("aw-watcher-afk_desk", "afkstatus", "desk", 3600),
    ("aw-watcher-window_desk", "currentwindow", "desk", 3600),
    ("aw-watcher-afk-prompt_laptop", "afktask", HOST, 7200),
    ("aw-watcher-vim_laptop", "app.editor.activity", HOST, 1800),
    ("aw-watcher-vscode_laptop", "app.editor.activity", HOST, 1800),
    ("aw-watcher-spotify_laptop", "currently-playing", HOST, 1800),
    ("aw-stopwatch", "general.stopwatch", HOST, 86400),
    ("aw-watcher-android-unlock", "os.lockscreen.unlocks", HOST, 7200),
]
QUIET_IN_EVIDENCE_CASE = {"aw-watcher-input_laptop"} | {b for b, t, h, _ in BUCKETS
                                                      if t == "web.tab.current" and h == HOST}
DENSE = timedelta(hours=2)  # the last two hours: a window event every 5 s, afk every minute


def data_for(type_: str, i: int) -> str:
    if type_ == "afkstatus":
        return json.dumps({"status": "not-afk" if i % 2 else "afk"})
    if type_ == "currentwindow":
        return json.dumps({"app": ("firefox", "code", "gnome-terminal")[i % 3], "title": f"t{i % 97}"})
    return json.dumps({"i": i % 101})


def build(db_path: Path, days: int, now: datetime) -> int:
    db = open_db(db_path)
    start = now - timedelta(days=days)
    total = 0
    with transaction(db):
        db.conn.execute("INSERT INTO servers (device_id, hostname, version, seen_at) VALUES (?, ?, ?, ?)",
                        (SERVER, HOST, "v0.12.0", to_iso(now)))
        for bucket_id, type_, host, every in BUCKETS:
            rows = []
            t, i = start, 0
            while t < now - timedelta(seconds=5):
                dense = t >= now - DENSE
                step = {"currentwindow": 5, "afkstatus": 60}.get(type_, every) if dense else every
                duration = step if type_ in ("afkstatus", "currentwindow") else min(step, 5)
                end = t + timedelta(seconds=duration)
                rows.append((SERVER, bucket_id, i, to_iso(t), duration, data_for(type_, i), to_iso(end),
                             to_iso(now), to_iso(now)))
                t += timedelta(seconds=step)
                i += 1
            db.conn.executemany(
                "INSERT INTO events (server, bucket_id, event_id, timestamp, duration, data, ended_at,"
                " ingested_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            total += len(rows)
            newest = rows[-1][6]
            db.conn.execute(
                "INSERT INTO buckets (server, bucket_id, created, name, type, client, hostname, data,"
                " last_updated, first_seen_at, last_seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, '{}', ?, ?, ?)",
                (SERVER, bucket_id, to_iso(start), bucket_id, type_, "bench", host, newest, to_iso(now),
                 to_iso(now)))
            db.conn.execute("INSERT INTO sync_state (server, bucket_id, newest_end) VALUES (?, ?, ?)",
                            (SERVER, bucket_id, newest))
    db.conn.execute("ANALYZE")
    db.close()
    return total


def set_case(db_path: Path, case: str) -> None:
    """Move each bucket's newest end to now (steady) or an hour back (evidence)."""
    db = open_db(db_path)
    now = utcnow()
    with transaction(db):
        for bucket_id, _type, _host, _ in BUCKETS:
            quiet = case == "evidence" and bucket_id in QUIET_IN_EVIDENCE_CASE
            end = to_iso(now - timedelta(hours=1) if quiet else now - timedelta(seconds=5))
            db.conn.execute("UPDATE buckets SET last_updated = ? WHERE bucket_id = ?", (end, bucket_id))
            db.conn.execute("UPDATE sync_state SET newest_end = ? WHERE bucket_id = ?", (end, bucket_id))
    db.close()


def fresh_watcher(db_path: Path, identity: dict[str, str]) -> None:
    """The stand-in watcher has just polled AW, successfully."""
    from lifelog.core import clocks

    db = open_db(db_path)
    now = to_iso(utcnow())
    with transaction(db):
        for key, value in identity.items():
            set_meta(db, key, value)
        set_meta(db, keys.WATCHER_STARTED_AT, to_iso(utcnow() - timedelta(hours=1)))
        set_meta(db, keys.WATCHER_STATE, WatcherState.RUNNING)
        set_meta(db, keys.WATCHER_HEARTBEAT_AT, now)
        set_meta(db, keys.WATCHER_LAST_POLL_OK_AT, now)
        set_meta(db, keys.WATCHER_LAST_ERROR, "")
        set_meta(db, keys.WATCHER_LAST_EVENT_TS, now)
        readings = clocks.readings()
        if readings is not None:
            set_meta(db, keys.WATCHER_HEARTBEAT_CLOCKS, format_clocks(readings))
    db.close()


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of argv."""
    began = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - began
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_utime + usage.ru_stime


def step_alone(db_path: Path, env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one sources step in-process: read the facts, judge, record."""
    from lifelog.core import clocks
    from lifelog.core.identity import watcher_facts
    from lifelog.core.settings import load_settings
    from lifelog.db.meta import read_meta
    from lifelog.sources import judge as sources
    from lifelog.sources import watch as source_watch

    settings = load_settings(environ=env)
    db = open_db(db_path)
    try:
        began, cpu = time.perf_counter(), time.process_time()
        now = utcnow()
        meta = read_meta(db)
        gathered = source_watch.read_facts(db, settings, meta, watcher_facts(meta), now, clocks.readings())
        judged = sources.judge(gathered.facts, now, settings)
        source_watch.record(db, gathered, judged, meta, now)
        return time.perf_counter() - began, time.process_time() - cpu
    finally:
        db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=30, help="runs of each command per case (default 30)")
    parser.add_argument("--days", type=int, default=365, help="days of history (default 365)")
    parser.add_argument("--baseline", metavar="DIR",
                        help="also time the pass of another LifeLog checkout (e.g. one without sources)")
    args = parser.parse_args()
    lifelog = [sys.executable, "-m", "lifelog"]
    with tempfile.TemporaryDirectory() as home:
        db_path = Path(home) / "bench.db"
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIFELOG_")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.update(HOME=home, XDG_STATE_HOME=f"{home}/state", XDG_DATA_HOME=f"{home}/data",
                   XDG_CONFIG_HOME=f"{home}/config", XDG_CACHE_HOME=f"{home}/cache",
                   LIFELOG_DB_PATH=str(db_path), LIFELOG_AW_URL=f"http://127.0.0.1:{free_port()}",
                   LIFELOG_STARTUP_GRACE_SECONDS="0")
        began = time.perf_counter()
        events = build(db_path, args.days, utcnow())
        size = db_path.stat().st_size
        print(f"built: {len(BUCKETS)} buckets, {events:,} events over {args.days} days, "
              f"{size / 2**20:.0f} MiB, in {time.perf_counter() - began:.0f} s")
        stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
        try:
            identity = identity_meta(stand_in.pid)
            results = {}
            for case in ("steady", "evidence"):
                set_case(db_path, case)
                fresh_watcher(db_path, identity)
                first = subprocess.run([*lifelog, "watchdog", "--once"], env=env, capture_output=True,
                                       text=True, timeout=60)
                if not first.stdout.startswith("ok:"):
                    raise SystemExit(f"bench: the pass did not decide ok: {first.stdout}{first.stderr}")
                commands = {"python -c pass": ([sys.executable, "-c", "pass"], env),
                            "watchdog --once": ([*lifelog, "watchdog", "--once"], dict(env, PYTHONPATH=str(ROOT)))}
                if args.baseline:
                    commands["baseline"] = ([*lifelog, "watchdog", "--once"],
                                            dict(env, PYTHONPATH=str(Path(args.baseline).resolve())))
                times: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
                step: list[tuple[float, float]] = []
                for _ in range(args.n):
                    fresh_watcher(db_path, identity)
                    for name, (argv, run_env) in commands.items():
                        times[name].append(timed(argv, run_env))
                    fresh_watcher(db_path, identity)
                    step.append(step_alone(db_path, env))
                states = subprocess.run([*lifelog, "sources", "--json"], env=env, capture_output=True,
                                        text=True, timeout=60)
                counted: dict[str, int] = {}
                for doc in json.loads(states.stdout):
                    counted[doc["state"]] = counted.get(doc["state"], 0) + 1
                results[case] = (times, step, counted)
        finally:
            stand_in.kill()
            stand_in.wait(10)
    print(f"n={args.n} runs each, medians in ms: wall time / CPU time (user + system); "
          "ratios to python -c pass")
    for case, (times, step, counted) in results.items():
        def med(samples, i):
            return statistics.median(x[i] for x in samples)
        bare = [med(times["python -c pass"], i) for i in (0, 1)]
        states = ", ".join(f"{v} {k}" for k, v in sorted(counted.items()))
        print(f"{case}: {states}")
        for name, samples in times.items():
            m = [med(samples, i) for i in (0, 1)]
            print(f"  {name:<18} {m[0] * 1000:7.1f} / {m[1] * 1000:6.1f} ms   "
                  f"{m[0] / bare[0]:4.1f}x / {m[1] / bare[1]:4.1f}x")
        alone = [med(step, i) for i in (0, 1)]
        print(f"  {'sources step':<18} {alone[0] * 1000:7.1f} / {alone[1] * 1000:6.1f} ms   (in-process)")


if __name__ == "__main__":
    main()
