"""The README's tables that mirror the code, made from the code.

The README calls these from `[[[cog` blocks; `cog -r README.md` rewrites the
tables, and tests/test_readme.py runs `cog --check README.md`, so a meta key,
a setting or a command changed in the code and not in the README fails the
suite. Each function returns one Markdown table:

- `meta_keys()` from `lifelog.core.keys.DOCS`,
- `settings()` from `lifelog.core.settings` (names, defaults, `HELP`),
- `commands()` from the command line's typer app (its click command tree).
"""

from __future__ import annotations

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


def _synopsis(command) -> str:
    """A command's own options and arguments (not the shared --db and --config, nor --help)."""
    words = []
    for param in command.params:
        if param.name in ("db", "config"):
            continue
        metavar = param.metavar or (param.name or "").upper()
        if param.param_type_name == "argument":
            # As `--help` writes it: `[PREFIX]...` for any number, `[FILE]` when optional.
            if param.nargs == -1 and not metavar.endswith("..."):
                metavar = f"[{metavar}]..."
            elif not param.required and not metavar.startswith("["):
                metavar = f"[{metavar}]"
            words.append(metavar)
        elif getattr(param, "is_flag", False):
            words.append(f"[{max(param.opts, key=len)}]")
        else:
            words.append(f"[{max(param.opts, key=len)} {metavar}]")
    return " ".join(words)


def _summary(command) -> str:
    """Its line in `lifelog --help`'s list: the short help, else the help's first line."""
    return command.short_help or (command.help or "").strip().split("\n")[0]


def command_rows() -> list[tuple[str, str, str]]:
    """(command, its options, what it does) for every command of the typer app,
    in `lifelog --help`'s order, a group's commands right after it."""
    from typer.main import get_command

    from lifelog.cli import app

    rows = []

    def walk(prefix: str, group) -> None:
        commands = getattr(group, "commands", {})
        for name in group.list_commands(None) if commands else ():  # typer's ignores its context
            command = commands[name]
            if command.hidden:
                continue
            path = f"{prefix} {name}"
            rows.append((path, _synopsis(command), _summary(command)))
            walk(path, command)

    walk("lifelog", get_command(app))
    return rows


def commands() -> str:
    return table(("command", "options", "does"),
                 ((f"`{name}`", f"`{options}`" if options else "", does) for name, options, does in command_rows()))
