"""The command line: output, exit codes, and one-line errors for bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.main import get_command

from lifelog.cli import COMMANDS, app, app_for


def test_init_creates_the_database_and_prints_its_path(cli, db_path):
    r = cli("init", "--db", str(db_path))
    assert r.code == 0, r.err
    assert r.out.strip() == str(db_path)
    assert db_path.exists()
    assert cli("init", "--db", str(db_path)).code == 0  # again: nothing changes


def test_init_without_db_uses_the_default_path(cli, isolated_env):
    r = cli("init")
    assert r.code == 0, r.err
    assert r.out.strip() == str(isolated_env / "data" / "lifelog" / "lifelog.db")


def _seed(db_path):
    from lifelog.db.database import open_db
    from lifelog.db.meta import set_meta

    db = open_db(db_path)
    set_meta(db, "watcher.pid", "123")
    set_meta(db, "watcher.heartbeat_at", "2026-11-28T14:55:03.752000+00:00")
    set_meta(db, "aw.status", "healthy")


def test_meta_show_lists_key_value_updated_at_and_age(cli, db_path):
    _seed(db_path)
    r = cli("meta", "show", "--db", str(db_path))
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0].split() == ["KEY", "VALUE", "UPDATED_AT", "AGE"]
    assert [line.split()[0] for line in lines[1:]] == ["aw.status", "db.created_at", "watcher.heartbeat_at", "watcher.pid"]
    assert lines[-1].split()[1] == "123" and lines[-1].endswith("s ago")


def test_meta_show_filters_by_prefix(cli, db_path):
    _seed(db_path)
    r = cli("meta", "show", "watcher", "--db", str(db_path))
    assert [line.split()[0] for line in r.out.splitlines()[1:]] == ["watcher.heartbeat_at", "watcher.pid"]


def test_meta_show_json_is_one_document_and_nothing_else(cli, db_path):
    _seed(db_path)
    r = cli("meta", "show", "--json", "--db", str(db_path))
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["meta"]["watcher.pid"]["value"] == "123"
    assert set(doc["meta"]["aw.status"]) == {"value", "updated_at", "age_seconds"}


def test_meta_get_prints_the_raw_value(cli, db_path):
    _seed(db_path)
    r = cli("meta", "get", "watcher.pid", "--db", str(db_path))
    assert (r.code, r.out) == (0, "123\n")


def test_meta_get_of_an_absent_key_exits_1(cli, db_path):
    _seed(db_path)
    r = cli("meta", "get", "nope", "--db", str(db_path))
    assert (r.code, r.out) == (1, "")
    assert "nope" in r.err


def _assert_one_line_error(r, code, needle):
    assert r.code == code, (r.out, r.err)
    assert "Traceback" not in r.err
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, r.err
    assert lines[0].startswith("lifelog: error:") and needle in lines[0], lines[0]


def _files_under(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []


@pytest.mark.parametrize("args,env,needle", [
    (["meta", "show", "--bogus"], {}, "--bogus"),
    (["init", "--db"], {}, "--db"),
    (["init"], {"LIFELOG_POLL_INTERVAL_SECONDS": "often"}, "LIFELOG_POLL_INTERVAL_SECONDS"),
    (["init"], {"LIFELOG_AW_URL": "localhost:5600"}, "aw_url"),
    (["init", "--config", "{tmp}/missing.toml"], {}, "missing.toml"),
    (["init", "--config", "{tmp}/bad.toml"], {}, "bad.toml"),
    (["init", "--config", "{tmp}"], {}, "cannot read config file"),
    (["init", "--db", "{tmp}/afile/sub/x.db"], {}, "afile/sub/x.db"),
    (["meta", "show", "--db", "{tmp}/none.db"], {}, "none.db"),
    (["meta", "get", "k", "--db", "{tmp}/notsqlite.db"], {}, "notsqlite.db"),
])
def test_bad_input_gets_one_line_exit_2_and_changes_nothing(cli, tmp_path, args, env, needle):
    work = tmp_path / "work"
    work.mkdir()
    (work / "bad.toml").write_text("[[[ not toml")
    (work / "afile").write_text("x")
    (work / "notsqlite.db").write_text("plain text, not SQLite " * 50)
    before = {p: (work / p).read_bytes() if (work / p).is_file() else None for p in _files_under(work)}
    full_env = dict(os.environ, **env)
    r = cli(*[a.replace("{tmp}", str(work)) for a in args], env=full_env)
    _assert_one_line_error(r, 2, needle.replace("{tmp}", str(work)))
    after = {p: (work / p).read_bytes() if (work / p).is_file() else None for p in _files_under(work)}
    assert after == before
    assert _files_under(tmp_path / "home") == []


def _commands(root=None):
    """Every command path of the command tree (typer's, as click commands),
    with its command, e.g. (["meta", "show"], <show>)."""
    stack = [(root or get_command(app), [])]
    while stack:
        command, path = stack.pop()
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            stack.append((sub, path + [name]))


def test_every_command_has_help(cli, lifelog):
    paths = [path for path, _ in _commands()]
    assert ["meta", "show"] in paths and ["init"] in paths and ["watchdog", "pause"] in paths
    assert ["config", "show"] in paths and ["paths"] in paths
    assert len(paths) == len(COMMANDS) + 1 + 2 + 2 + 1  # the root, meta's two, the watchdog's two, config's show
    assert lifelog("--help").out.startswith("Usage: lifelog")  # and as a real process
    for path in paths:
        for flag in ("--help", "-h"):
            r = cli(*path, flag)
            assert r.code == 0, (path, r.err)
            assert r.out.startswith("Usage: lifelog " + " ".join(path)), (path, r.out)
            assert r.err == "", path


def test_no_command_shows_the_help_and_exits_0(cli):
    for path in ([], ["meta"]):
        r = cli(*path)
        assert r.code == 0, r.err
        assert r.out.startswith("Usage: lifelog") and "Commands:" in r.out


def test_the_command_names_list_every_command_in_order(cli):
    import typer

    root = get_command(app)
    assert tuple(root.list_commands(typer.Context(root))) == COMMANDS
    listing = cli("--help").out.split("Commands:")[1].splitlines()
    assert [line.split()[0] for line in listing if line.startswith("  ") and not line.startswith("   ")] \
        == list(COMMANDS)


def test_a_command_line_builds_only_its_own_command():
    assert list(get_command(app_for(["status", "--json"])).commands) == ["status"]
    assert list(get_command(app_for(["meta", "get", "k"])).commands["meta"].commands) == ["show", "get"]
    assert sorted(get_command(app_for(["--version"])).commands) == sorted(COMMANDS)  # names none: all of them


def test_every_command_takes_db_and_config_after_its_name():
    for path, command in _commands():
        if path in ([], ["meta"], ["config"]):  # the groups
            continue
        opts = {o for param in command.params for o in param.opts}
        assert {"--db", "--config"} <= opts, path


def test_the_version(cli, lifelog):
    from importlib.metadata import version

    r = cli("--version")
    assert (r.code, r.out, r.err) == (0, f"lifelog {version('lifelog')}\n", "")
    assert lifelog("--version").out == r.out


def test_shell_completion_offers_the_commands(tmp_path):
    """What bash runs on <Tab> (typer's completion protocol, the variable
    named after the program); a real process, as the shell starts it."""
    def complete(words: str, cword: int) -> list[str]:
        env = dict(os.environ, _LIFELOG_COMPLETE="complete_bash", COMP_WORDS=words, COMP_CWORD=str(cword))
        r = subprocess.run([sys.executable, "-m", "lifelog"], env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and r.stderr == "", r
        return r.stdout.split()

    assert sorted(complete("lifelog wat", 1)) == ["watchdog", "watcher"]
    assert complete("lifelog meta g", 2) == ["get"]
    assert "--dry-run" in complete("lifelog backup --", 2)


def test_install_completion_sets_up_bash_and_its_tab_offers_the_commands(tmp_path):
    """`lifelog --install-completion` as a person runs it from bash (typer
    asks the parent process which shell it is), into a throwaway home; then
    bash sources what it installed and completes `lifelog wat<Tab>`."""
    home = tmp_path / "home"
    bin_dir = str(Path(sys.executable).parent)  # the venv's `lifelog` console script
    env = dict(os.environ, HOME=str(home), PATH=bin_dir + os.pathsep + os.environ["PATH"])
    # `; exit $?`: bash would run a lone command by exec, leaving lifelog no
    # bash parent (typer would then find one further up the tree, or none).
    r = subprocess.run(["bash", "-c", '"$0" -m lifelog --install-completion; exit $?', sys.executable],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "bash completion installed" in r.stdout, r
    script = home / ".bash_completions" / "lifelog.sh"
    assert f"source '{script}'" in (home / ".bashrc").read_text()
    tab = subprocess.run(["bash", "-c", f"source '{script}'; COMP_WORDS=(lifelog meta g); COMP_CWORD=2; "
                                        "_lifelog_completion lifelog g meta; printf '%s\\n' \"${COMPREPLY[@]}\""],
                         env=env, capture_output=True, text=True, timeout=60)
    assert (tab.returncode, tab.stdout, tab.stderr) == (0, "get\n", "")


@pytest.mark.parametrize("module,name,args", [
    ("lifelog.db.meta", "get_meta", ["meta", "get", "k"]),
    ("lifelog.monitor", "watchdog_pass", ["watchdog", "--once"]),  # a group's own work
])
def test_ctrl_c_in_a_command_is_one_line_exit_130(cli, db_path, monkeypatch, module, name, args):
    # A KeyboardInterrupt at a chosen moment stands in for Ctrl-C, which
    # cannot be timed to land inside a command that takes milliseconds.
    import importlib

    def interrupted(*args, **kw):
        raise KeyboardInterrupt

    cli("init", "--db", str(db_path))
    monkeypatch.setattr(importlib.import_module(module), name, interrupted)
    r = cli(*args, "--db", str(db_path))
    assert (r.code, r.out, r.err) == (130, "", "lifelog: interrupted\n")


def test_an_unknown_command_is_one_line_exit_2(cli):
    r = cli("bogus")
    _assert_one_line_error(r, 2, "bogus")


@pytest.mark.parametrize("args,needle", [
    (["watchdog", "--on"], "--on"),  # options are not abbreviated: a typo must not match another option
    (["status", "--interval", "soon"], "--interval"),
    (["status", "--interval", "soon"], "soon"),
    (["coverage", "--slot-minutes", "1.5"], "--slot-minutes"),
    (["meta", "get"], "KEY"),
    (["restore"], "FILE"),
    (["meta", "--db", "x.db", "show"], "--db"),  # --db goes after the command's name
    (["--bogus"], "--bogus"),
    (["watchdog", "--once", "pause"], "pause"),
])
def test_bad_options_and_values_are_one_line_exit_2_and_change_nothing(cli, db_path, tmp_path, args, needle):
    before = _files_under(tmp_path)
    r = cli(*args, "--db", str(db_path)) if "--db" not in args else cli(*args)
    _assert_one_line_error(r, 2, needle)
    assert r.out == ""
    assert _files_under(tmp_path) == before
