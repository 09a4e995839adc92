"""`lifelog watchdog --once` skips typer; it must answer exactly as the typer path does."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from lifelog.fastpath import parse


@pytest.mark.parametrize("argv, expected", [
    (["watchdog", "--once"], {"once": True, "json": False, "db": None, "config": None}),
    (["watchdog", "--json", "--once", "--db", "x.db"], {"once": True, "json": True, "db": "x.db", "config": None}),
    (["watchdog", "--once", "--db=x.db", "--config=c.toml"],
     {"once": True, "json": False, "db": "x.db", "config": "c.toml"}),
])
def test_it_takes_exactly_the_cron_command_line(argv, expected):
    assert parse(argv) == expected


@pytest.mark.parametrize("argv", [
    [], ["watchdog"], ["watchdog", "--json"], ["watchdog", "pause"], ["watchdog", "--once", "--help"],
    ["watchdog", "--once", "--db"], ["watchdog", "--once", "--db", "--json"], ["watchdog", "--once", "--once"],
    ["watchdog", "--once", "--db", "a", "--db", "b"], ["watchdog", "--once", "--bogus"], ["status", "--once"],
    ["watchdog", "--once", "--db="], ["watchdog", "--once", "extra"],
])
def test_anything_else_goes_to_typer(argv):
    assert parse(argv) is None


def run(argv_prefix, *args, env):
    proc = subprocess.run([*argv_prefix, *args], capture_output=True, text=True, timeout=60, env=env)
    return proc.returncode, proc.stdout, proc.stderr


FAST = [sys.executable, "-m", "lifelog"]
TYPER = [sys.executable, "-c", "import sys; from lifelog.cli import main; main(sys.argv[1:])"]


def test_the_fast_path_and_the_typer_path_give_the_same_pass(db_path, lifelog):
    env = dict(os.environ, LIFELOG_AW_URL="http://127.0.0.1:9")
    assert lifelog("init", "--db", str(db_path)).code == 0
    assert lifelog("watchdog", "pause", "--db", str(db_path)).code == 0  # deterministic: no action
    results = []
    for prefix in (FAST, TYPER):
        code, out, err = run(prefix, "watchdog", "--once", "--json", "--db", str(db_path), env=env)
        assert code == 0, err
        results.append(json.loads(out))
    fast, slow = results
    assert set(fast) == set(slow)
    for key in ("verdict", "reason", "action", "actor", "status", "status_summary"):
        assert fast[key] == slow[key], key
    assert fast["verdict"] == "paused"
    for prefix in (FAST, TYPER):
        code, out, _ = run(prefix, "watchdog", "--once", "--db", str(db_path), env=env)
        assert code == 0 and out.startswith("paused: paused by 'lifelog watchdog pause'")


@pytest.mark.parametrize("args", [
    ("watchdog", "--once", "--config", "missing.toml"),
    ("watchdog", "--once", "--bogus"),
    ("watchdog", "--once", "--db"),
])
def test_bad_input_is_one_line_exit_2_on_either_path_and_creates_nothing(tmp_path, args):
    env = dict(os.environ, LIFELOG_DB_PATH=str(tmp_path / "new.db"))
    for prefix in (FAST, TYPER):
        code, out, err = run(prefix, *args, env=env)
        assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith("lifelog: error:"), err
    assert not (tmp_path / "new.db").exists()
