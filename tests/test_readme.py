"""The README's tables that mirror the code (meta keys, settings, commands)
are made from it by cog (scripts/readme_tables.py): these fail when the README
differs from what the code would make of it, and when a key, a setting or a
command is missing from its table or listed twice. The contents list at the
top links every section of the reference."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

from typer.main import get_command

import lifelog
from lifelog import cli
from lifelog.core import keys, settings

ROOT = Path(lifelog.__file__).resolve().parent.parent
README = ROOT / "README.md"


def readme() -> str:
    return README.read_text(encoding="utf-8")


def generated(function: str) -> str:
    """The output of the README's cog block that calls `function`."""
    text = readme()
    start = text.index(f"cog.out({function}())\n]]] -->\n")
    start = text.index("\n", text.index("]]] -->", start)) + 1
    return text[start:text.index("<!-- [[[end]]] -->", start)]


def first_column(table: str) -> list[str]:
    """The first cell of each body row, without its backticks."""
    rows = [line for line in table.splitlines() if line.startswith("| ")][1:]
    return [row.split(" | ")[0].removeprefix("| ").strip("`") for row in rows]


def test_the_generated_tables_are_what_the_code_makes_of_them():
    cog = Path(sys.executable).with_name("cog")
    out = subprocess.run([str(cog), "--check", "--diff", "README.md"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, ("README.md's generated tables differ from the code; "
                                 f"run `.venv/bin/cog -r README.md`\n{out.stdout}{out.stderr}")


def test_every_meta_key_in_keys_py_has_a_meaning():
    names = {value for name, value in vars(keys).items()
             if name.isupper() and isinstance(value, str) and "." in value
             and name not in ("SOURCE_PREFIX", "DEVICE_PREFIX")}
    names |= {keys.source_key("<bucket_id>", field) for field in keys.SOURCE_FIELDS}
    names |= {keys.device_key("<name>", field) for field in keys.DEVICE_FIELDS}
    assert names == set(keys.DOCS)


def test_every_meta_key_is_listed_once():
    listed = first_column(generated("meta_keys"))
    assert Counter(listed) == Counter(list(keys.DOCS))
    # ... and in that table alone: no other table of the README starts a row with a key.
    rows = Counter(line.split(" | ")[0] for line in readme().splitlines() if line.startswith("| `"))
    assert all(rows[f"| `{key}`"] == 1 for key in keys.DOCS), [key for key in keys.DOCS
                                                               if rows[f"| `{key}`"] != 1]


def test_every_setting_is_listed_once_with_its_default_and_environment_variable():
    table = generated("settings")
    assert Counter(first_column(table)) == Counter(settings.SETTING_NAMES)
    assert "| `poll_interval_seconds` | `LIFELOG_POLL_INTERVAL_SECONDS` | 10 |" in table
    assert "| `db_path` | `LIFELOG_DB_PATH` | `lifelog/lifelog.db` under the user's data directory |" in table
    rows = Counter(line.split(" | ")[0] for line in readme().splitlines() if line.startswith("| `"))
    assert all(rows[f"| `{name}`"] == 1 for name in settings.SETTING_NAMES)


def all_commands(prefix: str, group) -> set[str]:
    """Every command of typer's click tree, as `lifelog GROUP NAME`."""
    found = set()
    for name, command in getattr(group, "commands", {}).items():
        if not command.hidden:
            found |= {f"{prefix} {name}"} | all_commands(f"{prefix} {name}", command)
    return found


def test_every_command_is_listed_once_in_the_order_of_lifelog_help():
    listed = first_column(generated("commands"))
    assert Counter(listed) == Counter(all_commands("lifelog", get_command(cli.app)))
    top = [name.split()[1] for name in listed if len(name.split()) == 2]
    assert top == list(cli.COMMANDS)
    for group, subcommands in (("meta", ("show", "get")), ("watchdog", ("pause", "resume"))):
        assert all(f"lifelog {group} {sub}" in listed for sub in subcommands)
    assert "| `lifelog meta get` | `KEY` |" in generated("commands")


def test_the_generator_fails_on_a_setting_without_help(monkeypatch):
    tables = load_generator()
    monkeypatch.setattr(settings, "HELP", {k: v for k, v in settings.HELP.items() if k != "buckets"})
    try:
        tables.settings()
    except KeyError as e:
        assert e.args == ("buckets",)
    else:
        raise AssertionError("a setting without a line of help made a table")


def load_generator():
    spec = importlib.util.spec_from_file_location("readme_tables", ROOT / "scripts" / "readme_tables.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_contents_list_links_every_section_of_the_reference():
    text = readme()
    top, reference = text.split("\n## Contents\n", 1)
    contents, _ = reference.split("\n## ", 1)
    links = re.findall(r"^- \[([^]]+)\]\(#([^)]+)\)", contents, flags=re.M)
    sections = re.findall(r"^## (.+)$", reference, flags=re.M)
    assert [title for title, _ in links] == sections
    assert [anchor for _, anchor in links] == [github_anchor(s) for s in sections]
    # Every link in the README to a section of it lands on a heading.
    anchors = {github_anchor(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}
    assert set(re.findall(r"\]\(#([^)]+)\)", text)) <= anchors
