"""The README's tables that mirror the code, made from the code.

The README calls these from `[[[cog` blocks; `cog -r README.md` rewrites the
tables, and tests/test_readme.py runs `cog --check README.md`, so a meta key,
a setting or a command changed in the code and not in the README fails the
suite. Each function returns one Markdown table:

- `meta_keys()` from `lifelog.core.keys.DOCS`,
- `settings()` from `lifelog.core.settings` (names, defaults, `HELP`),
- `commands()` from the command line's parser.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from pathlib import Path

from lifelog.core import keys
from lifelog.core import settings as settings_module


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    """A Markdown table, each row on one line, with a blank line before and
    after it (so the cog markers around it stay blocks of their own)."""
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n" + "\n".join(lines) + "\n\n"


# -- meta keys -----------------------------------------------------------------------------


def meta_keys() -> str:
    """Every meta key, in the order `keys.DOCS` lists them (part by part)."""
    return table(("key", "written by", "meaning"),
                 ((f"`{key}`", writer, meaning) for key, (writer, meaning) in keys.DOCS.items()))


# -- settings ------------------------------------------------------------------------------


def _under_data_dir(path: Path) -> str:
    return f"`{path.relative_to(settings_module.user_data_dir()).as_posix()}` under the user's data directory"


def default_text(name: str) -> str:
    """A setting's default as a person reads it: paths relative to the data directory, no `10.0`."""
    if name == "db_path":
        return _under_data_dir(settings_module.default_db_path())
    if name == "backup_dir":
        return _under_data_dir(settings_module.default_backup_dir())
    value = settings_module.Settings._field_defaults[name]
    if value is None or value == "" or (isinstance(value, Mapping) and not value):
        return "empty"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int):
        return str(value)
    return f"`{value}`"


def settings() -> str:
    """Every setting, in the order of `Settings`: its environment variable, default and meaning."""
    return table(("setting", "environment", "default", "what it does"),
                 ((f"`{name}`", f"`{settings_module.ENV_PREFIX}{name.upper()}`", default_text(name),
                   settings_module.HELP[name]) for name in settings_module.SETTING_NAMES))


# -- commands ------------------------------------------------------------------------------


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _helps(parser: argparse.ArgumentParser) -> dict[str, str]:
    """The one-line help of each of a parser's commands, by name."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {choice.dest: choice.help or "" for choice in action._choices_actions}
    return {}


def _synopsis(parser: argparse.ArgumentParser) -> str:
    """The command's own options and arguments (not the shared --db/--config/--help)."""
    words = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        if action.dest in ("db", "config"):
            continue
        if not action.option_strings:
            words.append(f"[{action.metavar}…]" if action.nargs == "*" else str(action.metavar))
            continue
        flag = action.option_strings[-1]
        words.append(f"[{flag}]" if action.nargs == 0 else f"[{flag} {action.metavar}]")
    return " ".join(words)


def command_rows() -> list[tuple[str, str, str]]:
    """(command, its options, what it does) for every command, subcommands after their parent."""
    from lifelog.cli import build_parser

    rows = []

    def walk(prefix: str, parser: argparse.ArgumentParser) -> None:
        helps = _helps(parser)
        for name, sub in _subcommands(parser).items():
            path = f"{prefix} {name}"
            rows.append((path, _synopsis(sub), helps.get(name, "")))
            walk(path, sub)

    walk("lifelog", build_parser())
    return rows


def commands() -> str:
    return table(("command", "options", "does"),
                 ((f"`{name}`", f"`{options}`" if options else "", does) for name, options, does in command_rows()))
