"""Settings: command line > environment (`LIFELOG_<NAME>`) > TOML file > default.

The config file is `$LIFELOG_CONFIG`, or `lifelog/config.toml` under the
user's config directory. Every duration accepts fractions. A bad value is a
`UsageError` naming where it came from, so the user can find and fix it.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

from lifelog.core import redact
from lifelog.core.errors import UsageError
from lifelog.core.urls import BadURL, http_url

if TYPE_CHECKING:
    from lifelog.core.devices import Device

ENV_PREFIX = "LIFELOG_"
CONFIG_ENV = "LIFELOG_CONFIG"


# The XDG base directories, as platformdirs gives them on Linux. Worked out
# here because importing platformdirs costs ~10 ms (configparser) and every
# command needs a default path; other platforms ask platformdirs.
_XDG = {"data": ("XDG_DATA_HOME", ".local/share"), "config": ("XDG_CONFIG_HOME", ".config"),
        "state": ("XDG_STATE_HOME", ".local/state")}


def _user_dir(kind: str) -> Path:
    if sys.platform.startswith("linux"):
        variable, default = _XDG[kind]
        value = os.environ.get(variable, "").strip()
        return Path(value) if value else Path.home() / default
    import platformdirs

    return Path(getattr(platformdirs, f"user_{kind}_dir")(appname=None, appauthor=False))


def user_data_dir() -> Path:
    return _user_dir("data")


def user_config_dir() -> Path:
    return _user_dir("config")


def user_state_dir() -> Path:
    return _user_dir("state")


def default_db_path() -> Path:
    return user_data_dir() / "lifelog" / "lifelog.db"


def default_config_path() -> Path:
    return user_config_dir() / "lifelog" / "config.toml"


def default_backup_dir() -> Path:
    return user_data_dir() / "lifelog" / "backups"


def log_dir() -> Path:
    """Where LifeLog's detached processes write their output."""
    return user_state_dir() / "lifelog" / "log"


class Settings(NamedTuple):
    """Every setting, resolved. (A NamedTuple, not a dataclass: every command
    builds one, and importing dataclasses costs more than the cron pass may.)"""

    db_path: Path
    aw_url: str = "http://127.0.0.1:5600"
    poll_interval_seconds: float = 10
    aw_timeout_seconds: float = 5
    aw_health_check_interval_minutes: float = 15
    heartbeat_timeout_seconds: float = 120
    watcher_timestamp_threshold_minutes: float = 10
    watchdog_interval_seconds: float = 30
    startup_grace_seconds: float = 30
    restart_backoff_initial_seconds: float = 10
    restart_backoff_max_seconds: float = 300
    stop_grace_seconds: float = 10
    watcher_restart_command: str = ""
    reconcile_interval_hours: float = 4
    # aw-server-rust's count ignores the window: a reconcile without --since
    # there fetches this many recent days whole, never the whole history.
    reconcile_rust_days: float = 7
    # health_checks and watchdog_log rows older than this are pruned.
    history_retention_days: float = 365
    buckets: str = "*"
    alert_command: str = ""
    # A secret (README "Settings"): never printed, logged or recorded.
    aw_api_key: str = ""
    # Sources: ActivityWatch's own watchers (README "When an ActivityWatch watcher goes quiet").
    source_silence_minutes: float = 10
    source_silence_critical_minutes: float = 60
    source_restart_commands: Mapping[str, str] = MappingProxyType({})
    watchdog_stale_minutes: float = 5
    # Seen from outside (README "Monitoring from another machine").
    ping_url: str = ""
    ping_interval_seconds: float = 60
    metrics_file: Path | None = None
    # Backups (README "Backups"); None means the default folder.
    backup_dir: Path | None = None
    backup_interval_hours: float = 24
    backup_keep_daily: int = 7
    backup_keep_weekly: int = 4
    backup_keep_monthly: int = 12
    # Several devices (SPEC section 14); empty: one device from aw_url and aw_api_key.
    devices: tuple[Device, ...] = ()
    device_unreachable_minutes: float = 15
    device_absent_days: float = 14
    # Where the settings came from, for messages; not a setting.
    config_path: Path | None = None

    def __repr__(self) -> str:
        # The secrets are never shown (README "Settings"): not in a log, not in a traceback.
        shown = ", ".join(f"{name}={value!r}" for name, value in zip(self._fields, self, strict=True)
                          if name not in SECRET_SETTINGS)
        return f"Settings({shown})"

    @property
    def bucket_patterns(self) -> list[str]:
        return [p.strip() for p in self.buckets.split(",") if p.strip()]

    @property
    def restart_command_argv(self) -> list[str]:
        return shlex.split(self.watcher_restart_command)

    @property
    def alert_command_argv(self) -> list[str]:
        return shlex.split(self.alert_command)

    @property
    def backup_folder(self) -> Path:
        return self.backup_dir if self.backup_dir is not None else default_backup_dir()

    @property
    def device_list(self) -> tuple[Device, ...]:
        """The devices followed: the `devices` setting, or else the one AW
        server of `aw_url` (named `local`; its meta keys are today's)."""
        if self.devices:
            return self.devices
        from lifelog.core.devices import LOCAL, Device, Expect, is_loopback

        expect = Expect.ALWAYS if is_loopback(self.aw_url) else Expect.SOMETIMES
        return (Device(LOCAL, self.aw_url, self.aw_api_key, expect),)


SETTING_NAMES = tuple(name for name in Settings._fields if name != "config_path")

# Settings that must be > 0 (a zero interval would spin) and those that may be 0.
_POSITIVE = {
    "poll_interval_seconds",
    "aw_timeout_seconds",
    "aw_health_check_interval_minutes",
    "heartbeat_timeout_seconds",
    "watcher_timestamp_threshold_minutes",
    "watchdog_interval_seconds",
    "reconcile_interval_hours",
    "reconcile_rust_days",
    "history_retention_days",
    "source_silence_minutes",
    "source_silence_critical_minutes",
    "watchdog_stale_minutes",
    "ping_interval_seconds",
    "device_unreachable_minutes",
    "device_absent_days",
}
_COUNTS = {"backup_keep_daily", "backup_keep_weekly", "backup_keep_monthly"}
_COMMANDS = {"watcher_restart_command", "alert_command"}
_PATHS = {"metrics_file", "backup_dir"}


def _number(name: str, raw: Any, source: str) -> float:
    if isinstance(raw, bool):
        raise UsageError(f"{source}: setting {name} must be a number of units, not {raw!r}")
    if isinstance(raw, (int, float)):
        value = float(raw)
    elif isinstance(raw, str):
        try:
            value = float(raw.strip())
        except ValueError:
            raise UsageError(
                f"{source}: setting {name} must be a number, got {raw!r}"
            ) from None
    else:
        raise UsageError(f"{source}: setting {name} must be a number, got {raw!r}")
    if not math.isfinite(value):
        raise UsageError(f"{source}: setting {name} must be a finite number, got {raw!r}")
    if name in _POSITIVE and value <= 0:
        raise UsageError(f"{source}: setting {name} must be greater than 0, got {raw!r}")
    if value < 0:
        raise UsageError(f"{source}: setting {name} must not be negative, got {raw!r}")
    return value


def _text(name: str, raw: Any, source: str) -> str:
    if not isinstance(raw, str):
        shown = f"a value of type {type(raw).__name__}" if name in SECRET_SETTINGS else repr(raw)
        raise UsageError(f"{source}: setting {name} must be text, got {shown}")
    return raw


def _count(name: str, raw: Any, source: str) -> int:
    value = _number(name, raw, source)
    if value != int(value):
        raise UsageError(f"{source}: setting {name} must be a whole number, got {raw!r}")
    return int(value)


def _url(name: str, raw: Any, source: str, *, may_be_empty: bool = False) -> str:
    # The value itself is not echoed for ping_url: it holds a token.
    shown = "the value given" if name == "ping_url" else repr(raw)
    url = _text(name, raw, source).strip()
    if may_be_empty and not url:
        return ""
    if name == "aw_url":
        url = url.rstrip("/")
    try:
        http_url(url)
    except BadURL as e:
        if e.bad_port:
            raise UsageError(f"{source}: setting {name} has a bad port: {shown}") from None
        raise UsageError(f"{source}: setting {name} must be an http:// or https:// URL, got {shown}") from None
    return url


def _command_table(name: str, raw: Any, source: str) -> Mapping[str, str]:
    """A TOML table (or, from the environment, a JSON object) of name -> command."""
    if isinstance(raw, str):
        try:
            raw = json.loads(raw) if raw.strip() else {}
        except ValueError:
            raise UsageError(f"{source}: setting {name} must be a JSON object of watcher name to "
                             f"command, e.g. {{\"aw-watcher-window\": \"systemctl --user restart "
                             f"aw-watcher-window\"}}") from None
    if not isinstance(raw, dict):
        raise UsageError(f"{source}: setting {name} must be a table of watcher name to command, got {raw!r}")
    table = {}
    for key, command in raw.items():
        if not isinstance(command, str) or not command.strip():
            raise UsageError(f"{source}: setting {name}: the command for {key!r} must be non-empty text")
        try:
            shlex.split(command)
        except ValueError as e:
            raise UsageError(f"{source}: setting {name}: the command for {key!r} cannot be split "
                             f"into words ({e})") from None
        table[str(key)] = command
    return MappingProxyType(table)


def _convert(name: str, raw: Any, source: str) -> Any:
    """Check and convert one raw value; `source` says where it came from."""
    if name == "db_path":
        text = _text(name, raw, source).strip()
        if not text:
            raise UsageError(f"{source}: setting db_path must not be empty")
        return Path(text).expanduser()
    if name == "aw_url":
        return _url(name, raw, source)
    if name == "ping_url":
        return _url(name, raw, source, may_be_empty=True)
    if name == "aw_api_key":
        key = _text(name, raw, source).strip()
        if any(c.isspace() for c in key):
            raise UsageError(f"{source}: setting aw_api_key must not contain spaces or line breaks")
        if not all("!" <= c <= "~" for c in key):
            # It travels in an HTTP header, which is ASCII.
            raise UsageError(f"{source}: setting aw_api_key must be printable ASCII characters")
        return key
    if name in _PATHS:
        text = _text(name, raw, source).strip()
        return Path(text).expanduser() if text else None
    if name == "source_restart_commands":
        return _command_table(name, raw, source)
    if name == "devices":
        from lifelog.core.devices import parse_devices

        return parse_devices(raw, source)
    if name in _COUNTS:
        return _count(name, raw, source)
    if name in _COMMANDS:
        text = _text(name, raw, source)
        try:
            shlex.split(text)
        except ValueError as e:
            raise UsageError(f"{source}: setting {name} cannot be split into words ({e}): {raw!r}") from None
        return text
    if name == "buckets":
        text = _text(name, raw, source)
        if not [p for p in text.split(",") if p.strip()]:
            raise UsageError(f"{source}: setting buckets must name at least one pattern, got {raw!r}")
        return text
    return _number(name, raw, source)


# Settings whose values are secrets (README "Settings"): never echoed in a
# message, and a config file holding one must be private to its owner.
SECRET_SETTINGS = ("aw_api_key", "ping_url")


def _private_enough(path: Path, mode: int, doc: dict[str, Any]) -> None:
    """A config file holding a secret must be its owner's alone.

    Write access for others counts too: whoever can edit the file can point
    aw_url at their own server and collect the key from the next request."""
    held = [name for name in SECRET_SETTINGS if doc.get(name) not in (None, "")]
    devices = doc.get("devices")
    if isinstance(devices, dict) and any(isinstance(d, dict) and d.get("api_key") for d in devices.values()):
        held.append("a device's api_key")
    if not held or os.name != "posix" or not mode & 0o077:
        return
    raise UsageError(
        f"config file {path} holds {' and '.join(held)} but others can read or change it "
        f"(mode {mode & 0o777:04o}); make it private: chmod 600 {shlex.quote(str(path))}"
    )


def _read_config(path: Path, explicit: bool) -> dict[str, Any]:
    import stat

    try:
        with open(path, "rb") as f:
            # The mode of the file read, not of whatever the path names later.
            mode = stat.S_IMODE(os.fstat(f.fileno()).st_mode)
            raw = f.read()
    except FileNotFoundError:
        if explicit:
            raise UsageError(f"config file {path} does not exist") from None
        return {}
    except OSError as e:
        raise UsageError(f"cannot read config file {path}: {e.strerror or e}") from None
    import tomllib  # only when there is a file: most runs have none

    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise UsageError(f"config file {path} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"config file {path} is not valid TOML: {e}") from None
    unknown = sorted(set(doc) - set(SETTING_NAMES))
    if unknown:
        raise UsageError(
            f"config file {path}: unknown setting {unknown[0]!r} "
            f"(known settings: {', '.join(SETTING_NAMES)})"
        )
    _private_enough(path, mode, doc)
    return doc


def load_settings(
    *,
    config: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve every setting. `overrides` are command-line values (None = unset)."""
    return _resolve(config, overrides, environ).settings


# Where a setting's value came from (`lifelog config show`, SPEC section 7).
OPTION, ENVIRONMENT, FILE, DEFAULT = "option", "environment", "file", "default"


def config_file(config: str | os.PathLike[str] | None = None,
                environ: Mapping[str, str] | None = None) -> tuple[Path, str]:
    """The config file read (it may not exist) and where its path came from:
    `option` (--config), `environment` ($LIFELOG_CONFIG) or `default`."""
    env = os.environ if environ is None else environ
    if config is not None:
        return Path(config).expanduser(), OPTION
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV]).expanduser(), ENVIRONMENT
    return default_config_path(), DEFAULT


def _resolve(config: str | os.PathLike[str] | None, overrides: Mapping[str, Any] | None,
             environ: Mapping[str, str] | None) -> Explained:
    """The settings, the source of each (OPTION, ENVIRONMENT, FILE or DEFAULT)
    and the config file they were read with."""
    env = os.environ if environ is None else environ
    config_path, config_source = config_file(config, env)
    explicit = config_source != DEFAULT
    file_values = _read_config(config_path, explicit)

    values: dict[str, Any] = {}
    sources = dict.fromkeys(SETTING_NAMES, DEFAULT)
    for name in SETTING_NAMES:
        env_name = ENV_PREFIX + name.upper()
        cli_value = (overrides or {}).get(name)
        if cli_value is not None:
            values[name] = _convert(name, cli_value, f"option for {name}")
            sources[name] = OPTION
        elif env_name in env:
            values[name] = _convert(name, env[env_name], f"environment variable {env_name}")
            sources[name] = ENVIRONMENT
        elif name in file_values:
            values[name] = _convert(name, file_values[name], f"config file {config_path}")
            sources[name] = FILE
    values.setdefault("db_path", default_db_path())
    settings = Settings(**values, config_path=config_path if file_values or explicit else None)
    redact.remember(settings.aw_api_key)
    for device in settings.devices:
        redact.remember(device.api_key)
    redact.remember_url(settings.ping_url)
    if settings.restart_backoff_max_seconds < settings.restart_backoff_initial_seconds:
        raise UsageError(
            "setting restart_backoff_max_seconds "
            f"({settings.restart_backoff_max_seconds:g}) is smaller than "
            f"restart_backoff_initial_seconds ({settings.restart_backoff_initial_seconds:g})"
        )
    return Explained(settings, sources, config_path, config_source)


# -- `lifelog config show` and `lifelog paths` ----------------------------------------------

SET = "(set)"  # how a secret that has a value is shown


class Explained(NamedTuple):
    """Every setting's effective value and where it came from."""

    settings: Settings
    sources: Mapping[str, str]
    config_path: Path
    config_source: str

    def shown(self, name: str) -> Any:
        """The value as `config show` may print it (JSON types): a secret as
        `(set)`, never itself; a default folder as its path."""
        value = getattr(self.settings, name)
        if name in SECRET_SETTINGS:
            return SET if value else ""
        if name == "devices":
            # Each device's api_key is a secret too (SPEC section 14); a Device
            # is a tuple, which JSON would print whole.
            return {d.name: {"url": d.url, "api_key": SET if d.api_key else "", "expect": d.expect.value}
                    for d in value}
        if name == "backup_dir":
            value = self.settings.backup_folder
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, Mapping):
            return dict(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value

    def to_json(self) -> dict[str, Any]:
        return {"config_file": {"path": str(self.config_path), "source": self.config_source,
                                "exists": self.config_path.is_file()},
                "settings": {name: {"value": self.shown(name), "source": self.sources[name]}
                             for name in SETTING_NAMES}}

    def render(self, width: int | None = None) -> str:
        from lifelog.core.terminal import Col, table

        exists = "" if self.config_path.is_file() else ", no file there"
        rows = []
        for name in SETTING_NAMES:
            value = self.shown(name)
            text = json.dumps(value) if isinstance(value, dict) else "" if value is None else str(value)
            rows.append((name, self.sources[name], text))
        lines = [f"config file {self.config_path} ({self.config_source}{exists})", ""]
        lines += table((Col("SETTING"), Col("SOURCE"), Col("VALUE", "wrap", min_width=20)), rows, width)
        return "\n".join(lines)


def explain_settings(
    *,
    config: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Explained:
    """`load_settings`, with each setting's source: `lifelog config show`."""
    return _resolve(config, overrides, environ)


def log_file() -> Path:
    """Where the reading commands' log lines go (lifelog.core.logs.setup_quiet_logging)."""
    return log_dir() / "lifelog.log"


def paths(explained: Explained) -> dict[str, str | None]:
    """Where things are (`lifelog paths`): None for a file not configured."""
    s = explained.settings
    return {"database": str(s.db_path), "config_file": str(explained.config_path), "log_dir": str(log_dir()),
            "log_file": str(log_file()), "backup_dir": str(s.backup_folder),
            "metrics_file": None if s.metrics_file is None else str(s.metrics_file)}


PATH_LABELS = {"database": "database", "config_file": "config file", "log_dir": "log directory",
               "log_file": "log file", "backup_dir": "backups", "metrics_file": "metrics file"}


def render_paths(where: Mapping[str, str | None]) -> str:
    """`lifelog paths` for people: a label and a path a line (paths are never cut)."""
    wide = max(len(label) for label in PATH_LABELS.values())
    return "\n".join(f"{PATH_LABELS[key]:<{wide}}  {value if value is not None else '(none: set metrics_file)'}"
                     for key, value in where.items())



# What each setting does, one line. The README's "Settings" table is made from
# this, the defaults above and ENV_PREFIX (scripts/readme_tables.py, checked by
# tests/test_readme.py), so a setting added without a line here fails the suite.
HELP: Mapping[str, str] = MappingProxyType({
    "db_path": "the database",
    "aw_url": "the ActivityWatch server",
    "aw_api_key": "sent to AW as `Authorization: Bearer <key>`; a secret: see \"A secured ActivityWatch\"",
    "poll_interval_seconds": "how often the watcher polls AW",
    "aw_timeout_seconds": "the bound on every HTTP call (AW, pings)",
    "aw_health_check_interval_minutes": "the daemon's health job",
    "heartbeat_timeout_seconds": "a watcher whose heartbeat is older is hung: the watchdog restarts it",
    "watcher_timestamp_threshold_minutes": "data freshness: the newest event may be this old",
    "watchdog_interval_seconds": "the watchdog's loop and the daemon's watchdog job",
    "startup_grace_seconds": "a watcher just started is left alone this long",
    "restart_backoff_initial_seconds": "the wait after the first restart, doubled for each one in a row",
    "restart_backoff_max_seconds": "the longest wait between restarts",
    "stop_grace_seconds": "SIGTERM to SIGKILL",
    "watcher_restart_command": "how the watchdog starts the watcher (no shell); empty: LifeLog starts it itself",
    "reconcile_interval_hours": "the daemon's reconcile job",
    "reconcile_rust_days": "on aw-server-rust (whose count ignores the window), a reconcile without `--since` "
                           "covers only this many recent days",
    "history_retention_days": "`health_checks` and `watchdog_log` rows older than this are pruned by every "
                              "health check (the daemon's, cron's, `lifelog status`'s), 500 rows per "
                              "transaction (events are never pruned)",
    "buckets": "comma-separated glob patterns of the bucket ids followed",
    "alert_command": "run once per change of the overall status (no shell): see \"Monitoring from another machine\"",
    "source_silence_minutes": "a source expected to record that has not for this long is silent: see "
                              "\"When an ActivityWatch watcher goes quiet\"",
    "source_silence_critical_minutes": "silent this long is CRITICAL",
    "source_restart_commands": "a TOML table of watcher name to command; in the environment a JSON object",
    "watchdog_stale_minutes": "status warns when no watchdog pass ran for this long",
    "ping_url": "the dead man's switch: see \"Monitoring from another machine\"; a secret",
    "ping_interval_seconds": "a steady state pings once per interval",
    "metrics_file": "the Prometheus file: see \"Monitoring from another machine\"",
    "backup_dir": "where backups go",
    "backup_interval_hours": "the daemon's backup job; 0 turns scheduled backups off",
    "backup_keep_daily": "daily backups kept (see Backups)",
    "backup_keep_weekly": "weekly backups kept",
    "backup_keep_monthly": "monthly backups kept",
    "devices": "several AW servers, one life log: a TOML table of device name to `{ url, api_key, expect }` "
               "(in the environment a JSON object); empty: the one AW of `aw_url`. A device's api_key is a secret",
    "device_unreachable_minutes": "status warns when an `always` device has not answered for this long "
                                  "(critical after four times it)",
    "device_absent_days": "status warns when a `sometimes` device has not been seen for this long",
})
