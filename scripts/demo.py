"""LifeLog end to end, in one command (run through `scripts/run`).

- If an ActivityWatch server answers at `aw_url` (default
  http://127.0.0.1:5600), LifeLog runs against it and your real database.
- Otherwise the demo starts its own AW server (testing mode, data in a
  temporary folder), feeds it synthetic window and AFK activity through
  aw-client, and uses a database in that folder.

It runs `lifelog daemon` (which starts the watcher, checks AW's health, runs
the watchdog and reconciliation), prints `lifelog status` and
`lifelog meta show` as they change, and after a while kills the watcher with
SIGKILL to show the watchdog replacing it. Ctrl-C (or --seconds) stops
everything it started; nothing is left running.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

BIN = Path(sys.executable).parent


def say(msg: str) -> None:
    print(f"\n=== {msg}", flush=True)


def aw_answers(url: str) -> bool:
    from lifelog import http

    try:
        return http.request("GET", url + "/api/0/info", timeout=2).status == 200
    except http.HTTPError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_aw(home: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = dict(os.environ, XDG_DATA_HOME=str(home / "data"), XDG_CONFIG_HOME=str(home / "config"),
               XDG_CACHE_HOME=str(home / "cache"))
    log = open(home / "aw-server.log", "ab")
    proc = subprocess.Popen([str(BIN / "aw-server"), "--testing", "--port", str(port)], env=env,
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not aw_answers(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"demo: aw-server did not start; see {home / 'aw-server.log'}")
        time.sleep(0.1)
    return proc, url


def feed(home: Path, port: int, stop: threading.Event) -> None:
    """Synthetic activity through aw-client, as real watchers send it."""
    # aw-client writes config, lock and queue files under the XDG dirs of
    # this process: point them at the demo folder before importing it.
    os.environ.update(XDG_DATA_HOME=str(home / "data"), XDG_CONFIG_HOME=str(home / "config"),
                      XDG_CACHE_HOME=str(home / "cache"))
    from aw_client import ActivityWatchClient
    from aw_core.models import Event

    client = ActivityWatchClient("lifelog-demo", testing=True, host="127.0.0.1", port=port)
    window, afk = "aw-watcher-window_demo", "aw-watcher-afk_demo"
    client.create_bucket(window, "currentwindow", queued=False)
    client.create_bucket(afk, "afkstatus", queued=False)
    # An afternoon of history, for backfill and reconcile to find.
    now = datetime.now(timezone.utc)
    apps = [("Terminal", "vim lifelog.py"), ("Firefox", "ActivityWatch docs"), ("Slack", "#general")]
    history, t = [], now - timedelta(hours=3)
    while t < now - timedelta(minutes=1):
        app, title = random.choice(apps)
        d = random.uniform(20, 300)
        history.append(Event(timestamp=t, duration=d, data={"app": app, "title": title}))
        t += timedelta(seconds=d)
    client.insert_events(window, history)
    client.insert_events(afk, [Event(timestamp=now - timedelta(hours=3), duration=3 * 3600 - 60,
                                     data={"status": "not-afk"})])
    app, title = random.choice(apps)
    while not stop.wait(1.0):
        if random.random() < 0.15:
            app, title = random.choice(apps)
        ts = datetime.now(timezone.utc)
        client.heartbeat(window, Event(timestamp=ts, duration=0, data={"app": app, "title": title}),
                         pulsetime=2.0, queued=False)
        client.heartbeat(afk, Event(timestamp=ts, duration=0, data={"status": "not-afk"}),
                         pulsetime=2.0, queued=False)


def lifelog(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "lifelog"), *args], env=env, capture_output=True, text=True, timeout=60)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=0, help="stop after this long (default: at Ctrl-C)")
    ap.add_argument("--every", type=float, default=5, help="seconds between status screens")
    ap.add_argument("--kill-after", type=float, default=15, help="SIGKILL the watcher after this long (0: never)")
    args = ap.parse_args()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    env = dict(os.environ)
    aw_url = env.get("LIFELOG_AW_URL", "http://127.0.0.1:5600")
    started: list[subprocess.Popen] = []
    home = Path(tempfile.mkdtemp(prefix="lifelog-demo-"))
    try:
        if aw_answers(aw_url):
            say(f"using the ActivityWatch server at {aw_url} and your LifeLog database")
        else:
            say(f"no ActivityWatch server at {aw_url}: starting one in {home}")
            aw_proc, aw_url = start_aw(home)
            started.append(aw_proc)
            print(f"ActivityWatch (testing mode) answers at {aw_url} (pid {aw_proc.pid})")
            env["LIFELOG_DB_PATH"] = str(home / "lifelog.db")
            port = int(aw_url.rsplit(":", 1)[1])
            threading.Thread(target=feed, args=(home, port, stop), daemon=True).start()
        # Short intervals so the demo shows the watchdog at work within seconds.
        env.update(LIFELOG_AW_URL=aw_url, LIFELOG_POLL_INTERVAL_SECONDS=env.get("LIFELOG_POLL_INTERVAL_SECONDS", "2"),
                   LIFELOG_WATCHDOG_INTERVAL_SECONDS=env.get("LIFELOG_WATCHDOG_INTERVAL_SECONDS", "3"),
                   LIFELOG_STARTUP_GRACE_SECONDS=env.get("LIFELOG_STARTUP_GRACE_SECONDS", "3"),
                   LIFELOG_RESTART_BACKOFF_INITIAL_SECONDS=env.get("LIFELOG_RESTART_BACKOFF_INITIAL_SECONDS", "2"),
                   LIFELOG_AW_HEALTH_CHECK_INTERVAL_MINUTES=env.get("LIFELOG_AW_HEALTH_CHECK_INTERVAL_MINUTES", "0.25"))
        say("lifelog init")
        print(lifelog("init", env=env).stdout, end="")
        say("starting lifelog daemon (log: " + str(home / "daemon.log") + ")")
        daemon_log = open(home / "daemon.log", "ab")
        daemon = subprocess.Popen([str(BIN / "lifelog"), "daemon"], env=env, stdout=daemon_log,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        started.append(daemon)
        t0 = time.monotonic()
        killed = False
        while not stop.is_set():
            if stop.wait(args.every):
                break
            elapsed = time.monotonic() - t0
            if args.kill_after and not killed and elapsed >= args.kill_after:
                pid = lifelog("meta", "get", "watcher.pid", env=env).stdout.strip()
                if pid.isdigit():
                    say(f"demo: killing the watcher (pid {pid}) with SIGKILL; the watchdog will replace it")
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    killed = True
            say(f"lifelog status   (t = {elapsed:.0f} s)")
            print(lifelog("status", env=env).stdout, end="")
            say("lifelog meta show watcher aw watchdog")
            print(lifelog("meta", "show", "watcher.", "aw.", "watchdog.", env=env).stdout, end="")
            if args.seconds and elapsed >= args.seconds:
                break
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        say("stopping everything the demo started")
        for proc in reversed(started):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
        if "LIFELOG_DB_PATH" in env:
            print(f"The demo database stays at {env['LIFELOG_DB_PATH']} for you to inspect.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
