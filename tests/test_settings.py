"""Settings: defaults, precedence, fractions, and bad values named clearly."""

from pathlib import Path

import pytest

from lifelog.core.errors import UsageError
from lifelog.core.settings import SETTING_NAMES, Settings, default_db_path, load_settings

SPEC_DEFAULTS = {
    "aw_url": "http://127.0.0.1:5600",
    "poll_interval_seconds": 10,
    "aw_timeout_seconds": 5,
    "aw_health_check_interval_minutes": 15,
    "heartbeat_timeout_seconds": 120,
    "watcher_timestamp_threshold_minutes": 10,
    "watchdog_interval_seconds": 30,
    "startup_grace_seconds": 30,
    "restart_backoff_initial_seconds": 10,
    "restart_backoff_max_seconds": 300,
    "stop_grace_seconds": 10,
    "watcher_restart_command": "",
    "reconcile_interval_hours": 4,
    "buckets": "*",
    "alert_command": "",
    "aw_api_key": "",
    "source_silence_minutes": 10,
    "source_silence_critical_minutes": 60,
    "source_restart_commands": {},
    "watchdog_stale_minutes": 5,
    "ping_url": "",
    "ping_interval_seconds": 60,
    "metrics_file": None,
    "backup_dir": None,
    "backup_interval_hours": 24,
    "backup_keep_daily": 7,
    "backup_keep_weekly": 4,
    "backup_keep_monthly": 12,
    "devices": (),
    "device_unreachable_minutes": 15,
    "device_absent_days": 14,
    # Two more (README "Settings"): history at scale.
    "history_retention_days": 365,
    "reconcile_rust_days": 7,
}


def test_every_spec_setting_exists_with_its_default():
    s = load_settings(environ={})
    assert set(SETTING_NAMES) == set(SPEC_DEFAULTS) | {"db_path"}
    for name, value in SPEC_DEFAULTS.items():
        assert getattr(s, name) == value, name
    assert s.db_path == default_db_path()
    assert s.backup_folder == default_db_path().parent / "backups"


def test_the_default_db_is_lifelog_db_under_the_user_data_dir(isolated_env):
    assert default_db_path() == isolated_env / "data" / "lifelog" / "lifelog.db"


def test_precedence_is_option_then_env_then_file_then_default(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('poll_interval_seconds = 3\naw_timeout_seconds = 2\nstop_grace_seconds = 1.5\n')
    env = {"LIFELOG_POLL_INTERVAL_SECONDS": "4", "LIFELOG_AW_TIMEOUT_SECONDS": "0.25"}
    s = load_settings(config=cfg, environ=env, overrides={"poll_interval_seconds": "0.5"})
    assert s.poll_interval_seconds == 0.5  # option
    assert s.aw_timeout_seconds == 0.25  # environment over file
    assert s.stop_grace_seconds == 1.5  # file over default
    assert s.heartbeat_timeout_seconds == 120  # default


def test_the_config_file_comes_from_LIFELOG_CONFIG(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('buckets = "aw-watcher-window_*, aw-watcher-afk_*"\n')
    s = load_settings(environ={"LIFELOG_CONFIG": str(cfg)})
    assert s.bucket_patterns == ["aw-watcher-window_*", "aw-watcher-afk_*"]


def test_the_default_config_file_is_read_when_present(isolated_env):
    path = isolated_env / "config" / "lifelog" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text('aw_url = "http://localhost:5666/"\n')
    assert load_settings(environ={}).aw_url == "http://localhost:5666"


def test_durations_accept_fractions_everywhere(tmp_path):
    names = [n for n, v in SPEC_DEFAULTS.items() if isinstance(v, int) and "_keep_" not in n]
    env = {f"LIFELOG_{n.upper()}": "0.125" for n in names}
    s = load_settings(environ=env)
    assert all(getattr(s, n) == 0.125 for n in names)


@pytest.mark.parametrize("name,value,needle", [
    ("poll_interval_seconds", "abc", "must be a number"),
    ("poll_interval_seconds", "0", "greater than 0"),
    ("stop_grace_seconds", "-1", "must not be negative"),
    ("aw_timeout_seconds", "nan", "finite"),
    ("aw_url", "ftp://x", "http:// or https://"),
    ("aw_url", "http://host:notaport", "bad port"),
    ("alert_command", "notify 'unclosed", "cannot be split"),
    ("buckets", " , ", "at least one pattern"),
])
def test_a_bad_environment_value_names_the_variable(name, value, needle):
    with pytest.raises(UsageError) as e:
        load_settings(environ={f"LIFELOG_{name.upper()}": value})
    assert f"LIFELOG_{name.upper()}" in str(e.value) and needle in str(e.value)
    assert "\n" not in str(e.value)


def test_a_bad_file_value_names_the_file_and_setting(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("heartbeat_timeout_seconds = true\n")
    with pytest.raises(UsageError, match=r"c\.toml.*heartbeat_timeout_seconds"):
        load_settings(config=cfg, environ={})


def test_an_unknown_setting_in_the_file_is_an_error(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("poll_intervall_seconds = 3\n")
    with pytest.raises(UsageError, match="unknown setting 'poll_intervall_seconds'"):
        load_settings(config=cfg, environ={})


def test_a_file_that_is_not_toml_is_an_error(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("this is = = not toml\n")
    with pytest.raises(UsageError, match="not valid TOML"):
        load_settings(config=cfg, environ={})


def test_a_missing_explicit_config_is_an_error(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        load_settings(config=tmp_path / "nope.toml", environ={})


def test_an_unreadable_config_is_an_error(tmp_path):
    cfg = tmp_path / "dir.toml"
    cfg.mkdir()  # reading a directory fails even for root
    with pytest.raises(UsageError, match="cannot read config file"):
        load_settings(config=cfg, environ={})


def test_backoff_max_below_initial_is_an_error():
    with pytest.raises(UsageError, match="restart_backoff_max_seconds"):
        load_settings(environ={"LIFELOG_RESTART_BACKOFF_MAX_SECONDS": "1"})


def test_settings_are_immutable():
    s = load_settings(environ={})
    with pytest.raises(AttributeError):
        s.aw_url = "x"  # type: ignore[misc]
    assert isinstance(s, Settings) and isinstance(s.db_path, Path)


def test_source_restart_commands_is_a_table_in_the_file_and_json_in_the_environment(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[source_restart_commands]\n"aw-watcher-window" = "systemctl --user restart aw-watcher-window"\n')
    assert load_settings(config=cfg, environ={}).source_restart_commands == {
        "aw-watcher-window": "systemctl --user restart aw-watcher-window"}
    env = {"LIFELOG_SOURCE_RESTART_COMMANDS": '{"aw-watcher-afk": "true"}'}
    assert load_settings(config=cfg, environ=env).source_restart_commands == {"aw-watcher-afk": "true"}
    with pytest.raises(UsageError, match="LIFELOG_SOURCE_RESTART_COMMANDS.*JSON object"):
        load_settings(environ={"LIFELOG_SOURCE_RESTART_COMMANDS": "aw-watcher-window=true"})


@pytest.mark.parametrize("name, value, needle", [
    ("backup_keep_daily", "1.5", "whole number"),
    ("backup_interval_hours", "-1", "must not be negative"),
    ("ping_url", "ftp://x/secret-token", "http:// or https://"),
    ("source_silence_minutes", "0", "greater than 0"),
    ("history_retention_days", "0", "greater than 0"),
    ("reconcile_rust_days", "-7", "greater than 0"),
])
def test_new_settings_reject_bad_values_by_name(name, value, needle):
    with pytest.raises(UsageError, match=needle) as e:
        load_settings(environ={f"LIFELOG_{name.upper()}": value})
    assert "secret-token" not in str(e.value)  # a ping URL's token is never echoed


@pytest.mark.parametrize("env", [{}, {"XDG_DATA_HOME": "/x/data", "XDG_CONFIG_HOME": "/x/cfg",
                                      "XDG_STATE_HOME": "/x/state"}, {"XDG_DATA_HOME": "  "}])
def test_the_user_dirs_are_platformdirs_own_on_linux(monkeypatch, env):
    from platformdirs.unix import Unix

    from lifelog.core import settings

    for name in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    unix = Unix(appname=None, appauthor=False)
    assert settings.user_data_dir() == Path(unix.user_data_dir)
    assert settings.user_config_dir() == Path(unix.user_config_dir)
    assert settings.user_state_dir() == Path(unix.user_state_dir)


# -- `lifelog config show` and `lifelog paths`: each value and where it came from -------------------


def test_explain_names_each_settings_source_by_precedence(tmp_path):
    from lifelog.core.settings import explain_settings

    cfg = tmp_path / "c.toml"
    cfg.write_text('poll_interval_seconds = 3\naw_timeout_seconds = 2\nstop_grace_seconds = 1.5\n')
    env = {"LIFELOG_POLL_INTERVAL_SECONDS": "4", "LIFELOG_AW_TIMEOUT_SECONDS": "0.25"}
    e = explain_settings(config=cfg, environ=env, overrides={"poll_interval_seconds": "0.5", "db_path": None})
    doc = e.to_json()["settings"]
    assert doc["poll_interval_seconds"] == {"value": 0.5, "source": "option"}
    assert doc["aw_timeout_seconds"] == {"value": 0.25, "source": "environment"}
    assert doc["stop_grace_seconds"] == {"value": 1.5, "source": "file"}
    assert doc["heartbeat_timeout_seconds"] == {"value": 120, "source": "default"}
    assert doc["db_path"] == {"value": str(default_db_path()), "source": "default"}
    assert doc["backup_dir"] == {"value": str(default_db_path().parent / "backups"), "source": "default"}
    assert set(doc) == set(SETTING_NAMES)
    assert e.to_json()["config_file"] == {"path": str(cfg), "source": "option", "exists": True}


def test_explain_shows_a_secret_as_set_and_never_its_value(tmp_path):
    from lifelog.core.settings import explain_settings

    key, url = "s3cr3t-api-key-1234", "https://hc-ping.com/0f1e2d3c-aaaa-bbbb-cccc-123456789abc"
    e = explain_settings(environ={"LIFELOG_AW_API_KEY": key, "LIFELOG_PING_URL": url})
    doc = e.to_json()["settings"]
    assert doc["aw_api_key"] == {"value": "(set)", "source": "environment"}
    assert doc["ping_url"] == {"value": "(set)", "source": "environment"}
    shown = e.render(80) + repr(e.to_json())
    assert key not in shown and "0f1e2d3c" not in shown
    assert explain_settings(environ={}).to_json()["settings"]["aw_api_key"] == {"value": "", "source": "default"}


def test_the_config_file_source_is_the_option_then_lifelog_config_then_the_default(tmp_path, isolated_env):
    from lifelog.core.settings import config_file, default_config_path

    assert config_file(tmp_path / "a.toml", {"LIFELOG_CONFIG": "b.toml"}) == (tmp_path / "a.toml", "option")
    assert config_file(None, {"LIFELOG_CONFIG": str(tmp_path / "b.toml")}) == (tmp_path / "b.toml", "environment")
    assert config_file(None, {}) == (default_config_path(), "default")


def test_paths_name_database_config_logs_backups_and_metrics(tmp_path, isolated_env):
    from lifelog.core.settings import explain_settings, paths, render_paths

    where = paths(explain_settings(environ={"LIFELOG_DB_PATH": str(tmp_path / "x.db")}))
    state = isolated_env / "state" / "lifelog" / "log"
    assert where == {"database": str(tmp_path / "x.db"),
                     "config_file": str(isolated_env / "config" / "lifelog" / "config.toml"),
                     "log_dir": str(state), "log_file": str(state / "lifelog.log"),
                     "backup_dir": str(isolated_env / "data" / "lifelog" / "backups"), "metrics_file": None}
    text = render_paths(where)
    assert text.splitlines()[0] == f"database       {tmp_path / 'x.db'}"
    assert "metrics file   (none: set metrics_file)" in text
