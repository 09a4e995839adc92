"""Shared fixtures: isolated user dirs, a real aw-server, CLI runners, and the
one place every process a test starts is stopped and reaped (`spawn`)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from support.awserver import AWServer
from support.helpers import FAST, processes_on

REPO = Path(__file__).resolve().parent.parent



@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """No test reads or writes the user's own config, data or state."""
    home = tmp_path / "home"
    for var, sub in (("XDG_DATA_HOME", "data"), ("XDG_CONFIG_HOME", "config"),
                     ("XDG_CACHE_HOME", "cache"), ("XDG_STATE_HOME", "state")):
        monkeypatch.setenv(var, str(home / sub))
    monkeypatch.setenv("HOME", str(home))
    for name in list(os.environ):
        # A proxy the machine names would carry the pings the tests send to
        # their own local servers (the ping honours HTTP_PROXY & co.).
        if name.startswith("LIFELOG_") or name.lower() in PROXY_VARS:
            monkeypatch.delenv(name)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # pytest-xdist's workers run with COLUMNS=80 and LINES=24 set; LifeLog
        # fits its tables to COLUMNS, so a test would see another width than
        # in a serial run. A test that wants a width sets it.
        monkeypatch.delenv("COLUMNS", raising=False)
        monkeypatch.delenv("LINES", raising=False)
    return home


PROXY_VARS = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


@pytest.fixture
def db_path(tmp_path) -> Path:
    return tmp_path / "lifelog.db"


@pytest.fixture(scope="session")
def aw_server(tmp_path_factory):
    """One real aw-server for the session; tests use their own bucket names."""
    server = AWServer(tmp_path_factory.mktemp("aw-shared")).start()
    yield server
    server.stop()


@pytest.fixture
def fresh_aw(tmp_path):
    """A real aw-server of this test's own, which the test may stop and start."""
    server = AWServer(tmp_path / "aw").start()
    yield server
    server.stop()


@pytest.fixture
def aw_servers(tmp_path):
    """Real aw-servers of this test's own: `make(n)` starts n more on free
    ports, each with its own data dir, so its own device_id (SPEC section 14's
    devices). Every one is stopped and reaped after the test."""
    started: list[AWServer] = []

    def make(n: int) -> list[AWServer]:
        new = [AWServer(tmp_path / f"aw-device-{len(started) + i}") for i in range(n)]
        for server in new:
            started.append(server)
            server.start()
        return new

    yield make
    for server in started:
        server.stop()


@dataclass
class Result:
    code: int
    out: str
    err: str


def run_lifelog(*args: str, env: dict | None = None, timeout: float = 60, input: str | None = None) -> Result:
    """Run `lifelog ARGS` as a real process, bounded, and return its result."""
    proc = subprocess.run(
        [sys.executable, "-m", "lifelog", *args],
        capture_output=True, text=True, timeout=timeout, env=env or dict(os.environ), input=input,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def lifelog():
    return run_lifelog


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run `lifelog ARGS` in this process (the same `lifelog.cli.run` the
    console script calls): for output and exit-code tests, ten times cheaper
    than a subprocess. `env`, when given, replaces the LIFELOG_* variables."""
    from lifelog.cli import run

    def run_in_process(*args: str, env: dict | None = None) -> Result:
        if env is not None:
            for name in [n for n in os.environ if n.startswith("LIFELOG_")]:
                monkeypatch.delenv(name)
            for name, value in env.items():
                if name.startswith("LIFELOG_"):
                    monkeypatch.setenv(name, value)
        capsys.readouterr()
        try:
            code = run(list(args))
        except SystemExit as e:  # --help
            code = e.code if isinstance(e.code, int) else 0
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run_in_process


class Spawned:
    """The processes a test starts. After the test each is stopped (SIGTERM,
    then SIGKILL after 10 s) and reaped, and so is every process left on the
    test's database: watchers a daemon or the watchdog started detached are
    not the test's children."""

    def __init__(self, db_path: Path, logs: Path):
        self.db_path, self.logs = db_path, logs
        self.started: list[subprocess.Popen] = []

    def __call__(self, argv: list[str], **popen_kw) -> subprocess.Popen:
        popen_kw.setdefault("stdin", subprocess.DEVNULL)
        p = subprocess.Popen(argv, **popen_kw)
        self.started.append(p)
        return p

    def lifelog(self, *args: str, env: dict | None = None, log: str | None = None,
                capture: bool = False) -> subprocess.Popen:
        """`python -m lifelog ARGS`; its output to `<tmp>/<log>-N.log`, or
        captured as text (capture=True), or dropped."""
        argv = [sys.executable, "-m", "lifelog", *args]
        env = env if env is not None else dict(os.environ)
        if capture:
            return self(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if log is None:
            return self(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(self.logs / f"{log}-{len(self.started)}.log", "ab") as out:
            return self(argv, env=env, stdout=out, stderr=subprocess.STDOUT)

    def stop_all(self) -> None:
        for p in self.started:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.send_signal(signal.SIGCONT)  # a stopped one must wake to hear it
        for p in self.started:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(10)
            for stream in (p.stdout, p.stderr):
                if stream is not None:
                    stream.close()
        leftovers = processes_on(self.db_path)
        for proc in leftovers:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(leftovers, timeout=10)


@pytest.fixture
def spawn(db_path, tmp_path):
    spawned = Spawned(db_path, tmp_path)
    yield spawned
    spawned.stop_all()


@pytest.fixture
def own_buckets(request) -> str:
    """A bucket-name prefix of this test's own on the shared aw-server (the
    same on every run, so a failure can be looked up there)."""
    return "t" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:12] + "-"


@pytest.fixture
def monitor_env(monkeypatch, db_path, aw_server, spawn, own_buckets):
    """Sub-second settings in the environment (inherited by every process a
    test or the watchdog starts), the shared aw-server and this test's
    database; the processes left on it are stopped by `spawn`.

    The watcher follows only this test's buckets (`<own_buckets>*`): the
    shared aw-server holds other tests' history, and a watcher following `*`
    would catch up on it, slower the longer the session ran, and miss its
    1.5 s heartbeat. A test on `fresh_aw` may follow `*` there."""
    for k, v in FAST.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("LIFELOG_AW_URL", aw_server.url)
    monkeypatch.setenv("LIFELOG_DB_PATH", str(db_path))
    monkeypatch.setenv("LIFELOG_BUCKETS", f"{own_buckets}*")
    return dict(os.environ)
