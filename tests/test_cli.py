"""The command line: output, exit codes, and one-line errors for bad input."""

import argparse
import json
import os

import pytest

from lifelog.cli import build_parser


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


def _commands():
    """Every command path of the parser, e.g. ["meta", "show"]."""
    import argparse

    stack = [(build_parser(), [])]
    while stack:
        parser, path = stack.pop()
        yield path, parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    stack.append((sub, path + [name]))


def test_every_command_has_help(cli, lifelog):
    paths = [path for path, _ in _commands()]
    assert ["meta", "show"] in paths and ["init"] in paths and ["watchdog", "pause"] in paths
    assert lifelog("--help").out.startswith("usage: lifelog")  # and as a real process
    for path in paths:
        r = cli(*path, "--help")
        assert r.code == 0, (path, r.err)
        assert r.out.startswith("usage: lifelog"), path


def test_the_command_names_list_every_command_in_order():
    from lifelog.cli import COMMANDS

    [subparsers] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert tuple(subparsers.choices) == COMMANDS


def test_a_command_line_builds_only_its_own_command():
    [subparsers] = [a for a in build_parser(["status", "--json"])._actions
                    if isinstance(a, argparse._SubParsersAction)]
    assert list(subparsers.choices) == ["status"]


def test_every_leaf_command_takes_db_and_config():
    for path, parser in _commands():
        if path in ([], ["meta"]):
            continue
        opts = {o for action in parser._actions for o in action.option_strings}
        assert {"--db", "--config"} <= opts, path


def test_an_unknown_command_is_one_line_exit_2(cli):
    r = cli("bogus")
    _assert_one_line_error(r, 2, "bogus")


def test_options_are_not_abbreviated(cli, db_path):
    r = cli("watchdog", "--on", "--db", str(db_path))
    _assert_one_line_error(r, 2, "--on")
