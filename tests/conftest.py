"""Shared fixtures: isolated user dirs, a real aw-server, and CLI runners."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from awserver import AWServer

REPO = Path(__file__).resolve().parent.parent

# Fixtures shared by the monitoring, daemon and chaos tests (monitor_env).
pytest_plugins = ["monitor_helpers"]


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """No test reads or writes the user's own config, data or state."""
    home = tmp_path / "home"
    for var, sub in (("XDG_DATA_HOME", "data"), ("XDG_CONFIG_HOME", "config"),
                     ("XDG_CACHE_HOME", "cache"), ("XDG_STATE_HOME", "state")):
        monkeypatch.setenv(var, str(home / sub))
    monkeypatch.setenv("HOME", str(home))
    for name in list(os.environ):
        if name.startswith("LIFELOG_"):
            monkeypatch.delenv(name)
    return home


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
