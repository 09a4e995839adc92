"""LifeLog end to end, in one command (run through `scripts/run`).

- If an ActivityWatch server answers at `aw_url` (default
  http://127.0.0.1:5600), LifeLog runs against it and your real database.
- Otherwise the demo starts two AW servers of its own, a "laptop" and a
  "desktop" (testing mode, each with its data in a temporary folder, so two
  devices with their own device_id), feeds each synthetic window and AFK
  activity through aw-client (three hours of history: on the laptop a break
  away from the computer and a stretch where the window watcher recorded
  nothing, on the desktop a long absence; then live heartbeats), and follows
  both with the `devices` setting (the desktop `always`, the laptop
  `sometimes`) in a database in that folder. After a while it stops the
  laptop's AW, as a laptop that is shut, and starts it again once a whole
  minute of the clock has passed without it, so the coverage picture at the
  end (by the minute) shows that minute in the laptop's row as no data,
  cause `device_unreachable`, and the `all devices` row covered by the
  desktop. A feeder that fails (its AW gone under it, say) ends the demo:
  it stops everything it started and exits 1 with one line naming the
  device and the error.

It runs `lifelog daemon` (which starts the watcher, checks AW's health, runs
the watchdog and reconciliation) and shows it all through
`lifelog status --watch`, redrawn in place; after a while it kills the
watcher with SIGKILL, and the screen shows the watchdog replacing it. It
ends with `lifelog coverage`: the picture of the demo's own minutes (with its
own servers, after `lifelog status`, one row per device and the merged
`all devices` row). Ctrl-C
(or --seconds) stops everything it started; nothing is left running.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

BIN = Path(sys.executable).parent
HISTORY = timedelta(hours=3)  # the synthetic history fed to the demo's own AW server
# Every request of the demo's feeders is bounded by this (aw-client sets no
# timeout): generous, as planting three hours of history on a loaded machine
# takes a while, yet a server that never answers stops the demo.
FEED_TIMEOUT = 30.0


def say(msg: str) -> None:
    print(f"\n=== {msg}", flush=True)


def aw_answers(url: str) -> bool:
    from lifelog.aw.client import AWClient, AWError

    try:
        with AWClient(url, 2) as client:
            client.info()
        return True
    except AWError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_aw(home: Path, started: list[subprocess.Popen], port: int = 0) -> tuple[subprocess.Popen, str]:
    """An aw-server with its data under `home` (its own device_id), on `port`
    (0: a free one). The process joins `started` at once, so it is reaped
    even when it never answers."""
    port = port or free_port()
    env = dict(os.environ, XDG_DATA_HOME=str(home / "data"), XDG_CONFIG_HOME=str(home / "config"),
               XDG_CACHE_HOME=str(home / "cache"))
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "aw-server.log", "ab") as log:  # the child holds its own copy
        proc = subprocess.Popen([str(BIN / "aw-server"), "--testing", "--port", str(port)], env=env,
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    started.append(proc)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not aw_answers(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"demo: aw-server did not start; see {home / 'aw-server.log'}")
        time.sleep(0.1)
    return proc, url


def stop_proc(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if it lingers; reaped either way."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


_SETUP = threading.Lock()


def feed(home: Path, port: int, stop: threading.Event, device: str = "demo",
         paused: threading.Event | None = None, planted: threading.Event | None = None) -> None:
    """Synthetic activity through aw-client, as real watchers send it; no
    live heartbeats while `paused` is set (the device's AW is stopped).
    `planted` is set once the history is in its AW."""
    # aw-client writes config, lock and queue files under the XDG dirs of
    # this process: point them at the demo folder before importing it.
    # One feeder at a time through the import and the client's setup: two
    # threads importing aw-client (which writes its config files on first
    # use) at once left one device with no buckets at all under load.
    with _SETUP:
        os.environ.update(XDG_DATA_HOME=str(home / "data"), XDG_CONFIG_HOME=str(home / "config"),
                          XDG_CACHE_HOME=str(home / "cache"))
        import requests
        from aw_client import ActivityWatchClient
        from aw_core.models import Event

        def checked(response: requests.Response) -> requests.Response:
            response.raise_for_status()
            return response

        class Client(ActivityWatchClient):
            """aw-client's client, its requests bounded by FEED_TIMEOUT (aw-client
            sets none: a server that stops answering would hang this feeder)."""

            def _get(self, endpoint, params=None):
                return checked(requests.get(self._url(endpoint), params=params, timeout=FEED_TIMEOUT))

            def _post(self, endpoint, data, params=None):
                return checked(requests.post(self._url(endpoint), data=json.dumps(data).encode(),
                                             headers={"Content-type": "application/json", "charset": "utf-8"},
                                             params=params, timeout=FEED_TIMEOUT))

            def _delete(self, endpoint, data=None):
                return checked(requests.delete(self._url(endpoint), data=json.dumps(data or {}),
                                               headers={"Content-type": "application/json"}, timeout=FEED_TIMEOUT))

        client = Client(f"lifelog-demo-{device}", testing=True, host="127.0.0.1", port=port)
        # Named per device so that the screens tell them apart at a glance: both
        # servers run on this machine, so AW's usual `<watcher>_<host>` would be
        # one name on both (LifeLog keeps them apart: a source is (device, bucket)).
        window, afk = f"aw-watcher-window_{device}", f"aw-watcher-afk_{device}"
        client.create_bucket(window, "currentwindow", queued=False)
        client.create_bucket(afk, "afkstatus", queued=False)
    # An afternoon of history, for backfill and reconcile to find: a break
    # away from the computer 80-100 min in, and 130-145 min in the window
    # watcher recorded nothing while the user was active (`lifelog coverage`
    # shows that as a gap).
    now = datetime.now(UTC)
    start = now - HISTORY
    apps = [("Terminal", "vim lifelog.py"), ("Firefox", "ActivityWatch docs"), ("Slack", "#general")]
    # Up to now: the live heartbeats follow on, so no whole minute of the
    # demo's own is left without data (the picture at the end is by the minute).
    end = now
    window_off = (start + timedelta(minutes=130), start + timedelta(minutes=145))
    if device == "desktop":
        window_off = (end, end)  # its window watcher recorded throughout
    history, t = [], start
    while t < end:
        if window_off[0] <= t < window_off[1]:
            t = window_off[1]
            continue
        app, title = random.choice(apps)
        stop_at = window_off[0] if t < window_off[0] else end
        d = min(random.uniform(20, 300), (stop_at - t).total_seconds())
        history.append(Event(timestamp=t, duration=d, data={"app": app, "title": title}))
        t += timedelta(seconds=d)
    client.insert_events(window, history)
    # The laptop: away 80-100 min in. The desktop: used for the first hour,
    # then left (the user took the laptop) until 150 min in.
    away = (80, 100) if device != "desktop" else (60, 150)
    client.insert_events(afk, [
        Event(timestamp=start, duration=away[0] * 60, data={"status": "not-afk"}),
        Event(timestamp=start + timedelta(minutes=away[0]), duration=(away[1] - away[0]) * 60,
              data={"status": "afk"}),
        Event(timestamp=start + timedelta(minutes=away[1]),
              duration=(end - start).total_seconds() - away[1] * 60, data={"status": "not-afk"})])
    if planted is not None:
        planted.set()
    app, title = random.choice(apps)
    while not stop.wait(1.0):
        if paused is not None and paused.is_set():
            continue
        if random.random() < 0.15:
            app, title = random.choice(apps)
        ts = datetime.now(UTC)
        try:
            client.heartbeat(window, Event(timestamp=ts, duration=0, data={"app": app, "title": title}),
                             pulsetime=2.0, queued=False)
            client.heartbeat(afk, Event(timestamp=ts, duration=0, data={"status": "not-afk"}),
                             pulsetime=2.0, queued=False)
        except requests.RequestException:
            if (paused is not None and paused.is_set()) or stop.is_set():
                continue  # the demo stopped this AW in the middle of a beat
            raise  # its AW is gone, or refuses: Feeders stops the demo and names it


def one_line(exc: BaseException) -> str:
    """An exception as one short line: for a request that failed, the request
    and the OS's reason (requests' own text nests three exceptions deep)."""
    import requests

    text = " ".join(str(exc).split()) or "(no message)"
    if isinstance(exc, requests.RequestException) and exc.request is not None:
        errno = re.search(r"\[Errno -?\d+\][^'\")]*", text)
        text = f"{exc.request.method} {exc.request.url}: {errno.group(0).strip() if errno else text}"
    return f"{type(exc).__name__}: {text}"


class Feeders:
    """The feeders' threads. A thread's exception is otherwise lost and the
    demo would carry on with a device nobody feeds: the first feeder that
    fails sets `stop` (the demo ends) and `failure` says which and why."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.threads: list[threading.Thread] = []
        self.failure: str | None = None
        self._lock = threading.Lock()

    def start(self, home: Path, url: str, device: str, paused: threading.Event | None = None,
              planted: threading.Event | None = None) -> None:
        port = int(url.rsplit(":", 1)[1])
        thread = threading.Thread(target=self._run, args=(home, port, device, paused, planted),
                                  name=f"feed-{device}", daemon=True)
        self.threads.append(thread)
        thread.start()

    def _run(self, home: Path, port: int, device: str, paused: threading.Event | None,
             planted: threading.Event | None) -> None:
        try:
            feed(home, port, self.stop, device, paused, planted)
        except BaseException as exc:  # SystemExit too: aw-client exits on its lock file
            with self._lock:
                # Once the demo is stopping, its servers go away under the feeders: not a failure.
                if self.failure is None and not self.stop.is_set():
                    self.failure = (f"demo: the {device}'s feeder failed: {one_line(exc)}; its ActivityWatch log "
                                    f"is {home / device / 'aw-server.log'}; stopped everything the demo started")
            self.stop.set()

    def join(self, seconds: float) -> None:
        """Each feeder ends within a second of `stop` once out of a request,
        and each request is bounded by FEED_TIMEOUT."""
        deadline = time.monotonic() + seconds
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))


def lifelog(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "lifelog"), *args], env=env, capture_output=True, text=True, timeout=60)


class Laptop:
    """The demo's laptop: its AW server, stopped for a while (a laptop shut and
    opened again) and started on the same port and data (the same device)."""

    def __init__(self, home: Path, proc: subprocess.Popen, url: str, started: list[subprocess.Popen]) -> None:
        self.home, self.proc, self.url, self.started = home, proc, url, started
        self.paused = threading.Event()  # its feed holds its heartbeats while set
        # Set once its feed has planted the history: stopped before, the feed's
        # history would fail on a server the demo stopped itself.
        self.planted = threading.Event()
        self.stopped_at: float | None = None
        self.back_at: float | None = None
        self.empty_minute: float | None = None  # unix seconds: the minute it holds no data for

    def stop(self, elapsed: float) -> None:
        self.paused.set()
        stop_proc(self.proc)
        # The coverage picture's slots are a minute at the least: the laptop
        # stays stopped until the first whole minute of the clock after its AW
        # is gone has passed, so the picture shows that minute in its row as
        # no data, explained by LifeLog's health checks that found it gone.
        # (Slots are laid from local midnight: a minute of the zone is a
        # minute of unix time.) Its feed beats no more once its AW is gone.
        self.empty_minute = math.ceil(time.time() / 60) * 60
        self.stopped_at = elapsed
        print(f"\n=== demo: t = {elapsed:.0f} s: stopped the laptop's ActivityWatch (pid {self.proc.pid}), "
              f"as a laptop that is shut; it stays stopped until the minute {clock(self.empty_minute)} "
              "has passed, which the coverage picture will show as no data from the laptop", flush=True)

    def due(self, elapsed: float, away: float) -> bool:
        """Stopped at least `away` seconds, and its whole minute without data is over."""
        return (self.stopped_at is not None and self.back_at is None and self.empty_minute is not None
                and elapsed >= self.stopped_at + away and time.time() >= self.empty_minute + 60)

    def start_again(self, elapsed: float) -> None:
        port = int(self.url.rsplit(":", 1)[1])
        self.proc, _ = start_aw(self.home, self.started, port)
        self.paused.clear()
        self.back_at = elapsed
        print(f"\n=== demo: t = {elapsed:.0f} s: started the laptop's ActivityWatch again (pid {self.proc.pid})",
              flush=True)


def clock(t: float) -> str:
    """Unix seconds as the local time of day, to the minute."""
    return datetime.fromtimestamp(t).astimezone().strftime("%H:%M")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=0, help="stop after this long (default: at Ctrl-C)")
    ap.add_argument("--every", type=float, default=2, help="seconds between redraws of the status screen")
    ap.add_argument("--kill-after", type=float, default=15, help="SIGKILL the watcher after this long (0: never)")
    ap.add_argument("--laptop-stop-after", type=float, default=25,
                    help="with the demo's own servers: stop the laptop's AW after this long (0: never)")
    ap.add_argument("--laptop-away", type=float, default=20,
                    help="seconds the laptop's AW stays stopped at the least; it stays stopped until a whole "
                    "minute of the clock has passed too (the coverage picture is by the minute): 60 to 120 s")
    ap.add_argument("--end-after-back", type=float, default=0,
                    help="with the demo's own servers: end this long after the laptop's AW is started again "
                    "(default 0: at Ctrl-C or --seconds)")
    args = ap.parse_args()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    env = dict(os.environ)
    aw_url = env.get("LIFELOG_AW_URL", "http://127.0.0.1:5600")
    started: list[subprocess.Popen] = []
    home = Path(tempfile.mkdtemp(prefix="lifelog-demo-"))
    demo_started = datetime.now(UTC)
    watch: subprocess.Popen | None = None
    killed: tuple[int, float] | None = None
    laptop: Laptop | None = None
    feeders = Feeders(stop)
    try:
        if aw_answers(aw_url):
            say(f"using the ActivityWatch server at {aw_url} and your LifeLog database")
        else:
            say(f"no ActivityWatch server at {aw_url}: starting two, a laptop and a desktop, in {home}")
            desk_proc, desk_url = start_aw(home / "desktop", started)
            print(f"desktop: ActivityWatch (testing mode) answers at {desk_url} (pid {desk_proc.pid})")
            lap_proc, lap_url = start_aw(home / "laptop", started)
            print(f"laptop: ActivityWatch (testing mode) answers at {lap_url} (pid {lap_proc.pid})")
            laptop = Laptop(home / "laptop", lap_proc, lap_url, started)
            env["LIFELOG_DB_PATH"] = str(home / "lifelog.db")
            # The desktop first: the machine LifeLog runs beside (the `aw` component describes it).
            devices = {"desktop": {"url": desk_url, "expect": "always"},
                       "laptop": {"url": lap_url, "expect": "sometimes"}}
            env["LIFELOG_DEVICES"] = json.dumps(devices)
            print("LIFELOG_DEVICES=" + env["LIFELOG_DEVICES"])
            aw_url = desk_url
            feeders.start(home, desk_url, "desktop")
            feeders.start(home, lap_url, "laptop", laptop.paused, laptop.planted)
        # Short intervals so the demo shows the watchdog at work within seconds.
        env.update(LIFELOG_AW_URL=aw_url, LIFELOG_POLL_INTERVAL_SECONDS=env.get("LIFELOG_POLL_INTERVAL_SECONDS", "2"),
                   LIFELOG_WATCHDOG_INTERVAL_SECONDS=env.get("LIFELOG_WATCHDOG_INTERVAL_SECONDS", "3"),
                   LIFELOG_STARTUP_GRACE_SECONDS=env.get("LIFELOG_STARTUP_GRACE_SECONDS", "3"),
                   LIFELOG_RESTART_BACKOFF_INITIAL_SECONDS=env.get("LIFELOG_RESTART_BACKOFF_INITIAL_SECONDS", "2"),
                   LIFELOG_AW_HEALTH_CHECK_INTERVAL_MINUTES=env.get("LIFELOG_AW_HEALTH_CHECK_INTERVAL_MINUTES", "0.25"))
        say("lifelog init")
        print(lifelog("init", env=env).stdout, end="")
        say("starting lifelog daemon (log: " + str(home / "daemon.log") + ")")
        with open(home / "daemon.log", "ab") as daemon_log:  # the child holds its own copy
            daemon = subprocess.Popen([str(BIN / "lifelog"), "daemon"], env=env, stdout=daemon_log,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        started.append(daemon)
        plan = (f"; at t = {args.kill_after:g} s the demo kills the watcher with SIGKILL, and the watchdog "
                "replaces it" if args.kill_after else "")
        if laptop is not None and args.laptop_stop_after:
            plan += (f"; at t = {args.laptop_stop_after:g} s it stops the laptop's AW for at least "
                     f"{args.laptop_away:g} s and a whole minute of the clock")
        say(f"lifelog status --watch   (redrawn every {args.every:g} s{plan}; Ctrl-C to stop)")
        sys.stdout.flush()
        watch = subprocess.Popen([str(BIN / "lifelog"), "status", "--watch", "--interval", str(args.every)],
                                 env=env, stdin=subprocess.DEVNULL)
        started.append(watch)
        t0 = time.monotonic()
        while not stop.wait(0.2):
            elapsed = time.monotonic() - t0
            if args.kill_after and killed is None and elapsed >= args.kill_after:
                pid = lifelog("meta", "get", "watcher.pid", env=env).stdout.strip()
                if pid.isdigit():
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                        killed = (int(pid), elapsed)
                    except ProcessLookupError:
                        pass
            if laptop is not None and args.laptop_stop_after:
                if laptop.stopped_at is None and elapsed >= args.laptop_stop_after and laptop.planted.is_set():
                    laptop.stop(elapsed)
                elif laptop.due(elapsed, args.laptop_away):
                    laptop.start_again(elapsed)
                elif (args.end_after_back and laptop.back_at is not None
                      and elapsed >= laptop.back_at + args.end_after_back):
                    break
            if args.seconds and elapsed >= args.seconds:
                break
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        feeders.join(FEED_TIMEOUT + 5)
        failed = feeders.failure
        if watch is not None and watch.poll() is None:
            watch.send_signal(signal.SIGINT)  # it stops at once, exit 0
            try:
                watch.wait(10)
            except subprocess.TimeoutExpired:
                watch.kill()
                watch.wait(10)
        if killed is not None:
            say(f"demo: killed the watcher (pid {killed[0]}) with SIGKILL at t = {killed[1]:.0f} s; the "
                "screens above show the watchdog's restart:not_running and the new watcher")
        if laptop is not None and laptop.stopped_at is not None:
            back = f"started again at t = {laptop.back_at:.0f} s" if laptop.back_at is not None else "still stopped"
            say(f"demo: stopped the laptop's AW at t = {laptop.stopped_at:.0f} s, {back}; the screens "
                "above show it in the devices component as 'not seen ...: off or away'")
        # After a feeder failed, the pictures would show a demo gone wrong: stop at once.
        if failed is None and "LIFELOG_DEVICES" in env and watch is not None:
            wait_caught_up(Path(env["LIFELOG_DB_PATH"]), [d["url"] for d in json.loads(env["LIFELOG_DEVICES"]).values()])
            say("lifelog status")
            result = lifelog("status", env=dict(env, COLUMNS=env.get("COLUMNS", "120")))
            print(result.stdout + result.stderr, end="", flush=True)
        if failed is None and ("LIFELOG_DB_PATH" in env or watch is not None):
            show_coverage(env, demo_started, own_aw="LIFELOG_DB_PATH" in env)
            if laptop is not None and laptop.back_at is not None:
                show_laptop_stop(env, demo_started)
        say("stopping everything the demo started")
        for proc in reversed(started):
            stop_proc(proc)
        if "LIFELOG_DB_PATH" in env:
            print(f"The demo database stays at {env['LIFELOG_DB_PATH']} for you to inspect.", flush=True)
    if feeders.failure is not None:
        print(feeders.failure, file=sys.stderr, flush=True)
        return 1
    return 0


def wait_caught_up(db_path: Path, urls: list[str], seconds: float = 30.0) -> None:
    """Before the last pictures: every device's history stored (its events
    there, no gap left to fetch), so the coverage shows what the demo fed
    and not a catch-up still under way on a busy machine. Bounded: after
    `seconds` the pictures show what is there."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=2) as conn:
                ids = [r[0] for r in conn.execute(
                    "SELECT value FROM meta WHERE key LIKE 'device.%.device_id' AND value != ''")]
                done = len(ids) >= len(urls) and all(
                    conn.execute("SELECT count(*) FROM events WHERE server = ?", (i,)).fetchone()[0] > 0
                    and conn.execute("SELECT count(*) FROM sync_gaps WHERE server = ?", (i,)).fetchone()[0] == 0
                    for i in ids)
        except sqlite3.Error:
            done = False
        if done:
            return
        time.sleep(0.2)
    say(f"demo: a device's history was still being fetched after {seconds:.0f} s; the pictures show what is stored")


def coverage_args(demo_started: datetime, own_aw: bool) -> list[str]:
    """By the minute: the laptop's stop spans one whole minute, and a cell of
    the picture that shows several minutes shows an explained no-data minute
    before an active one. With your own AW: the half hour before the demo too."""
    since = demo_started - (HISTORY if own_aw else timedelta(minutes=30))
    return ["coverage", "--since", since.astimezone().isoformat(timespec="minutes"), "--slot-minutes", "1"]


def show_coverage(env: dict, demo_started: datetime, own_aw: bool) -> None:
    """The coverage picture of the demo's own minutes (with its own AW: the
    history it fed, too; with its two devices, a row for each and the merged
    `all devices` row)."""
    args = coverage_args(demo_started, own_aw)
    say("lifelog " + " ".join(args))
    result = lifelog(*args, env=dict(env, COLUMNS=env.get("COLUMNS", "120")))
    print(result.stdout + result.stderr, end="", flush=True)


def show_laptop_stop(env: dict, demo_started: datetime) -> None:
    """Where the picture shows the laptop's stop, from `lifelog coverage --json`."""
    result = lifelog(*coverage_args(demo_started, True), "--json", env=env)
    try:
        stretches = json.loads(result.stdout)["stretches"]
    except (ValueError, KeyError):
        say(f"demo: lifelog coverage --json failed: {(result.stderr or result.stdout).strip()[:300]}")
        return
    stops = [s for s in stretches if s["device"] == "laptop" and s["cause"] == "device_unreachable"]
    for s in stops:
        merged = sorted({m["class"] for m in stretches
                         if m["device"] is None and m["start"] < s["end"] and s["start"] < m["end"]})
        say(f"demo: the laptop's stop is the `d` in its row: {s['class']} from {s['start'][11:16]} to "
            f"{s['end'][11:16]}, cause device_unreachable (LifeLog's health checks found its AW gone); "
            f"the `all devices` row there: {', '.join(merged)}, from the desktop")
    if not stops:
        say("demo: the coverage shows no stretch of the laptop's as device_unreachable (see lifelog.db)")


if __name__ == "__main__":
    sys.exit(main())
