"""Fault injection against the whole system: a real aw-server fed synthetic
activity, `lifelog daemon` and its watcher, and a seeded random schedule of
faults (SIGKILL/SIGSTOP of the watcher, kill and restart of the daemon and
of AW, a held database write lock, a suspension of every process).

Faults run one at a time: each is injected, then the system is given a
bounded time to recover (a running watcher heartbeating again), so every
restart the watchdog records can be attributed to the fault that caused it,
and any other restart is counted as false. At the end the feeder stops, the
watcher catches up, `lifelog reconcile` runs, and LifeLog's rows are compared
with AW's events exactly.

Used by tests/test_chaos.py (asserts) and scripts/chaos.py (prints figures).
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import requests
from aw_core.models import Event

from lifelog.core.timeutil import parse_iso, to_iso
from support import awserver
from support.awserver import AWServer
from support.helpers import wait_for as _wait_for

UTC = UTC

# Sub-second settings. The heartbeat timeout is above the longest lock hold
# plus a poll, so a held lock alone never looks like a hung watcher.
SETTINGS = {
    "LIFELOG_POLL_INTERVAL_SECONDS": "0.2",
    "LIFELOG_AW_TIMEOUT_SECONDS": "1",
    "LIFELOG_HEARTBEAT_TIMEOUT_SECONDS": "4",
    "LIFELOG_WATCHDOG_INTERVAL_SECONDS": "0.3",
    "LIFELOG_STARTUP_GRACE_SECONDS": "1",
    "LIFELOG_RESTART_BACKOFF_INITIAL_SECONDS": "0.2",
    "LIFELOG_RESTART_BACKOFF_MAX_SECONDS": "1",
    "LIFELOG_STOP_GRACE_SECONDS": "1",
    "LIFELOG_AW_HEALTH_CHECK_INTERVAL_MINUTES": "0.01",
    "LIFELOG_BUCKETS": "chaos-*",
}
HEARTBEAT_TIMEOUT = float(SETTINGS["LIFELOG_HEARTBEAT_TIMEOUT_SECONDS"])
WATCHDOG_INTERVAL = float(SETTINGS["LIFELOG_WATCHDOG_INTERVAL_SECONDS"])
# A hung watcher must be seen within this: its last heartbeat is at most one
# poll before the hang, then the timeout, then at most one watchdog interval.
DETECTION_BOUND = HEARTBEAT_TIMEOUT + WATCHDOG_INTERVAL + float(SETTINGS["LIFELOG_POLL_INTERVAL_SECONDS"])

RESTARTING = "restart:"
KINDS = ("watcher_kill", "watcher_stop_long", "watcher_stop_short", "daemon_kill",
         "daemon_term", "aw_restart", "db_lock", "system_suspend")
# Faults after which the watchdog should restart the watcher (exactly one
# restart row each, at most one for a suspension); after all others, none.
EXPECTED_RESTARTS = {"watcher_kill": (1, 1), "watcher_stop_long": (1, 1), "system_suspend": (0, 1)}
RECOVERY_TIMEOUT = 30.0


def now() -> datetime:
    return datetime.now(UTC)


def wait_for(predicate, timeout=RECOVERY_TIMEOUT, **kw):
    return _wait_for(predicate, timeout, **kw)


@dataclass
class Fault:
    kind: str
    began: str
    ended: str = ""
    recovered: str = ""
    detail: str = ""
    restarts: list[str] = field(default_factory=list)
    unhealthy_checks: int = 0
    detection_seconds: float | None = None
    ok: bool = True
    problem: str = ""


class Feeder(threading.Thread):
    """Synthetic activity, as AW's own watchers make it: window heartbeats
    (events growing in place, a new one when the app changes) and batches of
    back-dated inserts (as aw-watcher-afk and queued clients do). Every call
    is bounded; a call that fails while AW is down is simply lost, as it
    would be for a real watcher: the comparison is with what AW holds."""

    def __init__(self, aw: AWServer, rng: random.Random):
        super().__init__(name="feeder", daemon=True)
        self.aw, self.rng = aw, rng
        # aw-client of its own (aw.feeder waits 30 s), files beside the server's.
        self.client = awserver.Feeder(aw.port, aw.home / "chaos-feeder", timeout=2)
        self.stop_event = threading.Event()
        self.sent = self.failed = 0

    def send(self, call, *args, **kw) -> None:
        try:
            call(*args, **kw)
            self.sent += 1
        except requests.RequestException:  # aw-client raises HTTPError for a 4xx or 5xx answer
            self.failed += 1

    def run(self) -> None:
        apps = ["editor", "browser", "terminal", "mail"]
        app, n = apps[0], 0
        while not self.stop_event.is_set():
            n += 1
            if self.rng.random() < 0.15:
                app = self.rng.choice(apps)
            self.send(self.client.heartbeat, "chaos-window",
                      Event(timestamp=now(), duration=0, data={"app": app, "title": f"{app} {n // 10}"}),
                      pulsetime=2, queued=False)
            if n % 10 == 0:
                base = now() - timedelta(seconds=self.rng.uniform(30, 120))
                self.send(self.client.insert_events, "chaos-batch", [
                    Event(timestamp=base + timedelta(seconds=i), duration=0.5 + (i % 3),
                          data={"batch": n, "i": i}) for i in range(10)])
            self.stop_event.wait(0.1)


class Chaos:
    def __init__(self, work: Path, seed: int, faults: int = 12, log=print):
        self.work = Path(work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.seed = seed
        self.rng = random.Random(seed)
        self.n_faults = faults
        self.log = log
        self.db = (self.work / "lifelog.db").resolve()
        self.aw = AWServer(self.work / "aw")
        self.daemons: list[subprocess.Popen] = []
        self.faults: list[Fault] = []
        self.feeder: Feeder | None = None
        self.max_watchers = 0
        self._sampling = threading.Event()
        self._sampler: threading.Thread | None = None
        home = self.work / "home"
        self.env = dict(os.environ, **SETTINGS, LIFELOG_DB_PATH=str(self.db), LIFELOG_AW_URL=self.aw.url,
                        XDG_STATE_HOME=str(home / "state"), XDG_DATA_HOME=str(home / "data"),
                        XDG_CONFIG_HOME=str(home / "config"), XDG_CACHE_HOME=str(home / "cache"))
        self.env.pop("LIFELOG_CONFIG", None)

    # -- the parts ------------------------------------------------------------------

    @property
    def daemon(self) -> subprocess.Popen:
        return self.daemons[-1]

    def start_daemon(self) -> subprocess.Popen:
        log = open(self.work / f"daemon-{len(self.daemons)}.log", "wb")
        p = subprocess.Popen([sys.executable, "-m", "lifelog", "daemon", "--db", str(self.db)],
                             env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        self.daemons.append(p)
        return p

    def lifelog(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "lifelog", *args, "--db", str(self.db)],
                              env=self.env, capture_output=True, text=True, timeout=timeout)

    def sql(self, query: str, args=()) -> list[tuple]:
        conn = sqlite3.connect(self.db, timeout=15)
        try:
            return conn.execute(query, args).fetchall()
        finally:
            conn.close()

    def meta(self, key: str) -> str | None:
        try:
            rows = self.sql("SELECT value FROM meta WHERE key = ?", (key,))
        except sqlite3.Error:
            return None
        return rows[0][0] if rows else None

    def processes(self, role: str = "") -> list[psutil.Process]:
        found = []
        for p in psutil.process_iter(["cmdline", "status"]):
            try:
                cmd = p.info["cmdline"] or []
                if p.info["status"] == psutil.STATUS_ZOMBIE or "-c" in cmd[:2]:
                    continue
                if str(self.db) in cmd and (not role or role in cmd):
                    found.append(p)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        return found

    def watcher_pid(self) -> int | None:
        """The registered watcher, running (not stopped) and polling."""
        pid = self.meta("watcher.pid")
        if not pid or self.meta("watcher.state") != "running":
            return None
        try:
            if psutil.Process(int(pid)).status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_STOPPED):
                return None
        except (psutil.NoSuchProcess, ValueError):
            return None
        return int(pid)

    def healthy_since(self, t: datetime) -> bool:
        """A running watcher has heartbeaten after `t`, and the daemon runs."""
        hb = self.meta("watcher.heartbeat_at")
        return (self.daemon.poll() is None and self.watcher_pid() is not None
                and hb is not None and parse_iso(hb) > t)

    def _sample(self) -> None:
        while not self._sampling.is_set():
            live = [p for p in self.processes("watcher") if _status(p) not in (None, psutil.STATUS_ZOMBIE)]
            self.max_watchers = max(self.max_watchers, len(live))
            self._sampling.wait(0.25)

    # -- the run ----------------------------------------------------------------------

    def setup(self) -> None:
        self.aw.start()
        for b, t in (("chaos-window", "currentwindow"), ("chaos-batch", "afkstatus")):
            self.aw.create_bucket(b, t)
        # Some history, older than the live lookback: the first ingest has a gap to fill.
        t0 = now() - timedelta(hours=3)
        self.aw.insert("chaos-batch", [{"timestamp": (t0 + timedelta(seconds=5 * i)).isoformat(),
                                        "duration": 4, "data": {"old": i}} for i in range(500)])
        self.feeder = Feeder(self.aw, random.Random(self.seed + 1))
        self.feeder.start()
        self.start_daemon()
        t = now()
        wait_for(lambda: self.healthy_since(t), what="the daemon's watcher running")
        self._sampler = threading.Thread(target=self._sample, name="sampler", daemon=True)
        self._sampler.start()

    def schedule(self) -> list[str]:
        """Every kind once, then random ones, in a seeded random order."""
        kinds = list(KINDS) + [self.rng.choice(KINDS) for _ in range(max(0, self.n_faults - len(KINDS)))]
        self.rng.shuffle(kinds)
        return kinds

    def run(self) -> dict:
        began = time.monotonic()
        self.setup()
        for kind in self.schedule():
            fault = Fault(kind, to_iso(now()))
            self.log(f"[chaos] {kind}")
            getattr(self, "_" + kind)(fault)
            fault.ended = fault.ended or to_iso(now())
            ended = parse_iso(fault.ended)
            try:
                wait_for(lambda: self.healthy_since(ended), what=f"recovery after {kind}")
                fault.recovered = to_iso(now())
            except AssertionError as e:
                fault.ok, fault.problem = False, str(e)
            self.faults.append(fault)
            time.sleep(self.rng.uniform(0.3, 1.0))  # quiet time between faults, part of the schedule
        return self.finish(time.monotonic() - began)

    # -- the faults -----------------------------------------------------------------

    def _watcher_kill(self, f: Fault) -> None:
        pid = wait_for(self.watcher_pid, what="a watcher to kill")
        os.kill(pid, signal.SIGKILL)
        f.detail = f"SIGKILL watcher {pid}"

    def _watcher_stop_long(self, f: Fault) -> None:
        # Hung: stopped until the watchdog replaces it (it sends SIGCONT itself).
        pid = wait_for(self.watcher_pid, what="a watcher to stop")
        os.kill(pid, signal.SIGSTOP)
        stopped = now()
        f.began = to_iso(stopped)
        wait_for(lambda: _pid_status(pid) in (None, psutil.STATUS_ZOMBIE), what=f"the hung watcher {pid} to be replaced")
        f.detail = f"SIGSTOP watcher {pid} until replaced"

    def _watcher_stop_short(self, f: Fault) -> None:
        pid = wait_for(self.watcher_pid, what="a watcher to stop")
        hold = self.rng.uniform(0.5, HEARTBEAT_TIMEOUT / 2)
        os.kill(pid, signal.SIGSTOP)
        time.sleep(hold)  # the fault's length, not synchronisation
        os.kill(pid, signal.SIGCONT)
        f.detail = f"SIGSTOP watcher {pid} for {hold:.1f} s, then SIGCONT"

    def _daemon_kill(self, f: Fault) -> None:
        old = self.daemon
        # A watcher to adopt: the fault before may have left one starting
        # (a replacement after a suspend), and only a running one is adopted.
        watcher = wait_for(self.watcher_pid, what="a running watcher for the new daemon to adopt")
        unclean = int(self.meta("daemon.unclean_exits") or 0)
        old.kill()
        old.wait(10)
        time.sleep(self.rng.uniform(0.3, 2.0))  # the daemon stays dead this long
        self.start_daemon()
        f.detail = f"SIGKILL daemon {old.pid} (watcher {watcher}), new daemon {self.daemon.pid}"
        f.ended = to_iso(now())
        wait_for(lambda: self.meta("daemon.pid") == str(self.daemon.pid), what="the new daemon")
        adopted = self.meta("watcher.pid") == str(watcher) and watcher is not None and psutil.pid_exists(watcher)
        if not adopted:
            f.ok, f.problem = False, f"the new daemon did not adopt watcher {watcher}"
        seen = int(self.meta("daemon.unclean_exits") or 0) - unclean
        if seen != 1:
            f.ok, f.problem = False, f.problem or f"daemon.unclean_exits grew by {seen}, expected 1"

    def _daemon_term(self, f: Fault) -> None:
        old = self.daemon
        unclean = self.meta("daemon.unclean_exits")
        old.send_signal(signal.SIGTERM)
        code = old.wait(20)
        if code != 0:
            f.ok, f.problem = False, f"daemon exited {code} on SIGTERM"
        left = self.processes("watcher")
        if left:
            f.ok, f.problem = False, f"watchers left after the daemon stopped: {[p.pid for p in left]}"
        self.start_daemon()
        f.detail = f"SIGTERM daemon {old.pid} (exit {code}), new daemon {self.daemon.pid}"
        wait_for(lambda: self.meta("daemon.pid") == str(self.daemon.pid), what="the new daemon")
        if self.meta("daemon.unclean_exits") != unclean:
            f.ok, f.problem = False, f.problem or "a clean SIGTERM was counted as an unclean exit"

    def _aw_restart(self, f: Fault) -> None:
        device = self.aw.device_id()
        down = self.rng.uniform(1.5, 3.0)
        self.aw.stop()
        time.sleep(down)  # the outage's length
        self.aw.start()
        f.detail = f"aw-server down {down:.1f} s"
        if self.aw.device_id() != device:
            f.ok, f.problem = False, "AW came back with another device_id"

    def _db_lock(self, f: Fault) -> None:
        hold = self.rng.uniform(2.0, 3.0)
        conn = sqlite3.connect(self.db, isolation_level=None, timeout=15)
        try:
            conn.execute("BEGIN IMMEDIATE")
            time.sleep(hold)  # a user's sqlite3 shell holding the write lock
            conn.execute("COMMIT")
        finally:
            conn.close()
        f.detail = f"write lock held {hold:.1f} s"

    def _system_suspend(self, f: Fault) -> None:
        """Every process stopped longer than every timeout, then all continued
        at once (watcher and AW first, as a resumed kernel would, within ms)."""
        pids = [self.daemon.pid, self.aw.proc.pid]
        watcher = self.watcher_pid()
        if watcher:
            pids.append(watcher)
        hold = HEARTBEAT_TIMEOUT + self.rng.uniform(1.0, 2.0)
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        time.sleep(hold)  # the suspension's length
        for pid in reversed(pids):
            os.kill(pid, signal.SIGCONT)
        f.detail = f"SIGSTOP daemon, AW and watcher {watcher} for {hold:.1f} s, then SIGCONT"

    # -- the verdict ------------------------------------------------------------------

    def attribute(self) -> tuple[list[dict], int]:
        """Match each restart row to the fault whose window holds it."""
        rows = [dict(zip(("at", "verdict", "reason"), r, strict=True)) for r in
                self.sql("SELECT at, verdict, reason FROM watchdog_log WHERE verdict LIKE 'restart:%' ORDER BY id")]
        false = []
        for row in rows:
            at = parse_iso(row["at"])
            # The latest fault begun before the row, if the row is inside its window.
            owner = None
            for f in reversed(self.faults):
                if parse_iso(f.began) - timedelta(seconds=0.05) <= at:
                    if at <= parse_iso(f.recovered or f.ended) + timedelta(seconds=0.5):
                        owner = f
                    break
            if owner is None:
                false.append(row)
            else:
                owner.restarts.append(row["verdict"])
        return false, len(rows)

    def check_faults(self) -> None:
        for f in self.faults:
            lo, hi = EXPECTED_RESTARTS.get(f.kind, (0, 0))
            if not lo <= len(f.restarts) <= hi:
                f.ok = False
                f.problem = f.problem or f"{len(f.restarts)} restarts ({f.restarts}), expected {lo}..{hi}"
            want = {"watcher_kill": "restart:not_running", "watcher_stop_long": "restart:heartbeat_stale"}.get(f.kind)
            if want and f.restarts and f.restarts[0] != want:
                f.ok, f.problem = False, f.problem or f"restarted for {f.restarts[0]}, expected {want}"
            if f.kind == "watcher_stop_long":
                first = self.sql("SELECT min(at) FROM watchdog_log WHERE verdict = 'restart:heartbeat_stale' "
                                 "AND at >= ?", (f.began,))[0][0]
                if first:
                    f.detection_seconds = round((parse_iso(first) - parse_iso(f.began)).total_seconds(), 2)
            if f.kind == "aw_restart":
                f.unhealthy_checks = self.sql(
                    "SELECT count(*) FROM health_checks WHERE status = 'unhealthy' AND checked_at BETWEEN ? AND ?",
                    (f.began, f.recovered or f.ended))[0][0]
                if f.unhealthy_checks < 1:
                    f.ok, f.problem = False, f.problem or "no unhealthy health check recorded while AW was down"

    def compare(self) -> dict:
        device = self.aw.device_id()
        result = {"buckets": 0, "events_compared": 0, "lost": 0, "extra": 0, "differing": 0, "examples": []}
        for bucket in ("chaos-window", "chaos-batch"):
            truth = {e["id"]: (to_iso(parse_iso(e["timestamp"])), e["duration"], e["data"])
                     for e in self.aw.events(bucket)}
            stored = {r[0]: (r[1], r[2], json.loads(r[3])) for r in self.sql(
                "SELECT event_id, timestamp, duration, data FROM events "
                "WHERE server = ? AND bucket_id = ? AND deleted_in_aw_at IS NULL", (device, bucket))}
            rows = self.sql("SELECT count(*) FROM events WHERE server = ? AND bucket_id = ?", (device, bucket))[0][0]
            result["buckets"] += 1
            result["events_compared"] += len(truth)
            lost = truth.keys() - stored.keys()
            extra = (stored.keys() - truth.keys()) | ({"rows"} if rows != len(stored) else set())
            differing = [i for i in truth.keys() & stored.keys() if truth[i] != stored[i]]
            result["lost"] += len(lost)
            result["extra"] += len(extra)
            result["differing"] += len(differing)
            for i in sorted(differing)[:3]:
                result["examples"].append({"bucket": bucket, "id": i, "aw": truth[i], "lifelog": stored[i]})
            for i in sorted(lost)[:3]:
                result["examples"].append({"bucket": bucket, "id": i, "aw": truth[i], "lifelog": None})
        return result

    def finish(self, fault_seconds: float) -> dict:
        self.feeder.stop_event.set()
        self.feeder.join(10)
        if not self.aw.running():
            self.aw.start()
        fed = now()
        wait_for(lambda: self.healthy_since(fed) and parse_iso(self.meta("watcher.last_poll_ok_at") or
                                                               "1970-01-01T00:00:00+00:00") > fed,
                 what="a good poll after the feeder stopped")
        reconcile = self.lifelog("reconcile")
        comparison = self.compare()
        false, restarts = self.attribute()
        self.check_faults()
        accounted = self.account()
        detections = [f.detection_seconds for f in self.faults if f.detection_seconds is not None]
        return {
            "seed": self.seed,
            "wall_seconds": round(fault_seconds, 1),
            "faults_injected": len(self.faults),
            "faults_survived": sum(f.ok for f in self.faults),
            "fault_kinds": sorted({f.kind for f in self.faults}),
            "events_sent_to_aw": self.feeder.sent,
            **comparison,
            "restarts": restarts,
            "false_restarts": len(false),
            "false_restart_rows": false,
            "max_concurrent_watchers": self.max_watchers,
            "hung_detection_seconds": detections,
            "hung_detection_bound_seconds": DETECTION_BOUND,
            "reconcile_exit": reconcile.returncode,
            "reconcile_output": reconcile.stdout.strip().splitlines()[-1:],
            # Events only the final reconcile stored: the live poll missed them.
            "found_by_reconcile": _inserted(reconcile.stdout),
            **accounted,
            "faults": [asdict(f) for f in self.faults],
        }

    def account(self) -> dict:
        """Every process on the database is the daemon or its watcher; after
        SIGTERM to the daemon, none is left."""
        expected = {self.daemon.pid, self.watcher_pid()}
        seen = {p.pid for p in self.processes()}
        strays = sorted(seen - expected)
        self._sampling.set()
        if self._sampler is not None:
            self._sampler.join(5)
        self.daemon.send_signal(signal.SIGTERM)
        try:
            code = self.daemon.wait(20)
        except subprocess.TimeoutExpired:
            code = None
        deadline = time.monotonic() + 10
        while self.processes() and time.monotonic() < deadline:
            time.sleep(0.05)
        left = [p.pid for p in self.processes()]
        return {"processes_at_end": sorted(seen), "stray_processes": strays,
                "daemon_exit_on_sigterm": code, "processes_left_after_stop": left}

    def teardown(self) -> None:
        """Always: stop the feeder and every process we or LifeLog started; reap."""
        self._sampling.set()
        if self.feeder is not None:
            self.feeder.stop_event.set()
            self.feeder.join(10)
        for p in self.daemons:
            if p.poll() is None:
                p.kill()
            p.wait(10)
        for p in self.processes():
            try:
                os.kill(p.pid, signal.SIGCONT)
                p.kill()
            except (psutil.NoSuchProcess, ProcessLookupError):
                pass
        psutil.wait_procs(self.processes(), timeout=10)
        if self.aw.proc is not None:
            try:
                os.kill(self.aw.proc.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self.aw.stop()


def _status(p: psutil.Process) -> str | None:
    try:
        return p.status()
    except psutil.NoSuchProcess:
        return None


def _pid_status(pid: int) -> str | None:
    try:
        return psutil.Process(pid).status()
    except psutil.NoSuchProcess:
        return None


def _inserted(reconcile_output: str) -> int | None:
    import re

    m = re.search(r"^reconcile: .*?(\d+) inserted", reconcile_output, re.M)
    return int(m.group(1)) if m else None
