"""A real ActivityWatch server for tests: `aw-server --testing` on a free port.

Its data, config and cache live in the directory given, so tests never touch
the user's own ActivityWatch. It can be stopped and started again on the same
port and data (an AW outage), and is always stopped by PID and reaped.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def aw_server_command() -> list[str]:
    exe = Path(sys.executable).with_name("aw-server")
    return [str(exe)]


class AWServer:
    def __init__(self, home: Path, port: int | None = None):
        self.home = Path(home)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log_path = self.home / "aw-server.log"

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

    # -- convenience for tests: the REST API, bounded ---------------------------

    def api(self, method: str, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", 30)
        return requests.request(method, self.url + "/api/0" + path, **kw)

    def create_bucket(self, bucket_id: str, type_: str = "currentwindow", hostname: str = "testhost") -> None:
        r = self.api("POST", f"/buckets/{bucket_id}",
                     json={"client": "lifelog-tests", "type": type_, "hostname": hostname})
        assert r.status_code in (200, 304), r.text

    def insert(self, bucket_id: str, events: list[dict]) -> None:
        r = self.api("POST", f"/buckets/{bucket_id}/events", json=events)
        assert r.status_code == 200, r.text

    def heartbeat(self, bucket_id: str, event: dict, pulsetime: float) -> None:
        r = self.api("POST", f"/buckets/{bucket_id}/heartbeat", params={"pulsetime": pulsetime}, json=event)
        assert r.status_code == 200, r.text

    def events(self, bucket_id: str) -> list[dict]:
        r = self.api("GET", f"/buckets/{bucket_id}/events", params={"limit": -1})
        assert r.status_code == 200, r.text
        return r.json()

    def device_id(self) -> str:
        return self.api("GET", "/info").json()["device_id"]
