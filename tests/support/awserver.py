"""A real ActivityWatch server for tests: `aw-server --testing` on a free port.

Its data, config and cache live in the directory given, so tests never touch
the user's own ActivityWatch. It can be stopped and started again on the same
port and data (an AW outage), and is always stopped by PID and reaped.

Events go in as AW's own watchers send them: through aw-client (`Feeder`),
bounded. Reads, deletes and odd payloads use `api` (plain requests).
"""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import requests
from aw_client import ActivityWatchClient
from aw_core.models import Event

# Ports handed out by free_port, each held by a lock file for the life of the
# process that took it: the suite runs on several xdist workers (and CI runs
# may share a machine), and a server stopped for a while (a laptop away) must
# find its port free again, not another worker's aw-server answering on it.
_PORT_LOCKS = Path(tempfile.gettempdir()) / "lifelog-test-ports"
_held: dict[int, object] = {}


def free_port() -> int:
    _PORT_LOCKS.mkdir(exist_ok=True)
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port in _held:
            continue
        lock = open(_PORT_LOCKS / f"{port}.lock", "a")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # another process holds it (its server may be stopped for now)
            lock.close()
            continue
        _held[port] = lock  # kept open: the lock goes with this process
        return port
    raise RuntimeError("no free port that no other test process holds")


def aw_server_command() -> list[str]:
    exe = Path(sys.executable).with_name("aw-server")
    return [str(exe)]


class Feeder(ActivityWatchClient):
    """aw-client, as a watcher uses it, with every request bounded: aw-client
    itself calls `requests` without a timeout. Its buckets, heartbeats and
    inserts are aw-client's own; only the three request methods under them
    are replaced, each the same request plus `timeout`."""

    _names = itertools.count()
    _env_lock = threading.Lock()

    def __init__(self, port: int, files: Path, timeout: float = 30.0):
        # aw-client takes a lock file per client name (sys.exit if a live
        # process holds it: the name is unique to this process and feeder)
        # and writes config and a queue database under the XDG dirs, which
        # aw-core reads from the environment: pointed at `files` while it
        # does, so nothing lands in the user's (or a test's) own dirs.
        name = f"lifelog-tests-feeder-{os.getpid()}-{next(self._names)}"
        dirs = {"XDG_DATA_HOME": files / "data", "XDG_CONFIG_HOME": files / "config",
                "XDG_CACHE_HOME": files / "cache"}
        with self._env_lock:
            saved = {k: os.environ.get(k) for k in dirs}
            os.environ.update({k: str(v) for k, v in dirs.items()})
            try:
                super().__init__(name, testing=True, host="127.0.0.1", port=port)
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
        self.timeout = timeout
        self._bucket_lock = threading.Lock()

    def _get(self, endpoint: str, params: dict | None = None) -> requests.Response:
        r = requests.get(self._url(endpoint), params=params, timeout=self.timeout)
        r.raise_for_status()
        return r

    def _post(self, endpoint: str, data: Any, params: dict | None = None) -> requests.Response:
        r = requests.post(self._url(endpoint), data=json.dumps(data).encode(), params=params,
                          headers={"Content-type": "application/json", "charset": "utf-8"}, timeout=self.timeout)
        r.raise_for_status()
        return r

    def _delete(self, endpoint: str, data: Any = None) -> requests.Response:
        r = requests.delete(self._url(endpoint), data=json.dumps(data or {}),
                            headers={"Content-type": "application/json"}, timeout=self.timeout)
        r.raise_for_status()
        return r

    def create_bucket_on(self, bucket_id: str, event_type: str, hostname: str) -> None:
        """create_bucket as a watcher on `hostname` would (aw-client names the
        machine it runs on; the tests' buckets name the hosts they stand for)."""
        with self._bucket_lock:
            self.client_hostname = hostname
            self.create_bucket(bucket_id, event_type, queued=False)


def as_event(e: dict | Event) -> Event:
    return e if isinstance(e, Event) else Event(**e)


class AWServer:
    def __init__(self, home: Path, port: int | None = None):
        self.home = Path(home)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log_path = self.home / "aw-server.log"
        self._feeder: Feeder | None = None

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            XDG_DATA_HOME=str(self.home / "data"),
            XDG_CONFIG_HOME=str(self.home / "config"),
            XDG_CACHE_HOME=str(self.home / "cache"),
        )
        return env

    def start(self, timeout: float = 30.0) -> AWServer:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.home.mkdir(parents=True, exist_ok=True)
        # Its device_id written before its first start, as an installed AW
        # has one: aw-server makes it on the first /api/0/info by check-then-
        # write, so two requests at once on a fresh data dir (a start's retry
        # behind a timed-out first try, a watcher polling) can each make one,
        # and a restart later answers with the other (seen in a CI run).
        device_id = self.home / "data" / "activitywatch" / "aw-server" / "device_id"
        if not device_id.exists():
            device_id.parent.mkdir(parents=True, exist_ok=True)
            device_id.write_text(str(uuid.uuid4()))
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            aw_server_command() + ["--testing", "--port", str(self.port)],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"aw-server exited with {self.proc.returncode}; see {self.log_path}")
            try:
                r = requests.get(self.url + "/api/0/info", timeout=1)
                if r.status_code == 200:
                    _ = self.feeder  # made now, before a test's threads feed through it
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"aw-server did not answer within {timeout} s; see {self.log_path}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        self.proc = None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- for tests: feeding it as a watcher does (aw-client), and the REST API -----

    @property
    def feeder(self) -> Feeder:
        """The aw-client this server is fed through; its files beside the server's."""
        if self._feeder is None:
            self._feeder = Feeder(self.port, self.home / "feeder")
        return self._feeder

    def api(self, method: str, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", 30)
        return requests.request(method, self.url + "/api/0" + path, **kw)

    def create_bucket(self, bucket_id: str, type_: str = "currentwindow", hostname: str = "testhost") -> None:
        self.feeder.create_bucket_on(bucket_id, type_, hostname)

    def insert(self, bucket_id: str, events: list[dict] | list[Event]) -> None:
        self.feeder.insert_events(bucket_id, [as_event(e) for e in events])

    def heartbeat(self, bucket_id: str, event: dict | Event, pulsetime: float) -> None:
        self.feeder.heartbeat(bucket_id, as_event(event), pulsetime=pulsetime, queued=False)

    def events(self, bucket_id: str) -> list[dict]:
        r = self.api("GET", f"/buckets/{bucket_id}/events", params={"limit": -1})
        assert r.status_code == 200, r.text
        return r.json()

    def device_id(self) -> str:
        return self.api("GET", "/info").json()["device_id"]
