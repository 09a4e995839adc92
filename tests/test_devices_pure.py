"""lifelog.core.devices: the `devices` setting, aw-sync copies and the
`devices` status verdict (SPEC section 14), as pure functions of their input."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lifelog.core.devices import (
    Device,
    DeviceSeen,
    Expect,
    copy_of,
    duplicate_ids,
    followed_map,
    is_loopback,
    judge_device,
    parse_devices,
    synced_from,
)
from lifelog.core.errors import UsageError
from lifelog.core.verdicts import SEVERITY, Level

WHERE = "config.toml"


def test_a_toml_table_gives_devices_in_order_with_expect_from_the_url():
    devices = parse_devices({
        "laptop": {"url": "http://127.0.0.1:5600/"},
        "desktop": {"url": "http://desktop.lan:5600", "api_key": "s3cret", "expect": "always"},
        "work": {"url": "https://work.example:5600"},
    }, WHERE)
    assert devices == (
        Device("laptop", "http://127.0.0.1:5600", "", Expect.ALWAYS),
        Device("desktop", "http://desktop.lan:5600", "s3cret", Expect.ALWAYS),
        Device("work", "https://work.example:5600", "", Expect.SOMETIMES),
    )


def test_the_environment_gives_the_same_shape_as_json():
    raw = {"desk": {"url": "http://[::1]:5600", "expect": "sometimes"}}
    assert parse_devices(json.dumps(raw), "LIFELOG_DEVICES") == parse_devices(raw, WHERE)
    assert parse_devices("  ", "LIFELOG_DEVICES") == ()


@pytest.mark.parametrize(("raw", "culprit"), [
    ({"Laptop": {"url": "http://a:1"}}, "'Laptop'"),
    ({"x" * 33: {"url": "http://a:1"}}, "'xxxx"),
    ({"": {"url": "http://a:1"}}, "''"),
    ({"lap top": {"url": "http://a:1"}}, "'lap top'"),
    ({"laptop": {}}, "'laptop' needs a url"),
    ({"laptop": {"url": "ftp://a"}}, "'laptop' has an unusable url"),
    ({"laptop": {"url": "http://"}}, "'laptop' has an unusable url"),
    ({"laptop": {"url": "http://a:99999"}}, "'laptop' has an unusable url"),
    ({"laptop": {"url": 5600}}, "'laptop' needs a url"),
    ({"laptop": {"url": "http://a", "colour": "red"}}, "unknown field 'colour'"),
    ({"laptop": {"url": "http://a", "expect": "often"}}, "expect must be 'always' or 'sometimes'"),
    ({"laptop": "http://a"}, "'laptop' must be a table"),
    (["laptop"], "must be a table"),
    ("{not json", "must be a JSON object"),
])
def test_bad_devices_are_one_line_naming_the_device(raw, culprit):
    with pytest.raises(UsageError) as caught:
        parse_devices(raw, WHERE)
    message = str(caught.value)
    assert culprit in message and message.startswith(WHERE) and "\n" not in message


def test_an_api_key_is_never_in_an_error_or_a_repr():
    with pytest.raises(UsageError) as caught:
        parse_devices({"d": {"url": "http://a", "api_key": "top secret"}}, WHERE)
    assert "top secret" not in str(caught.value)
    with pytest.raises(UsageError) as caught:
        parse_devices({"d": {"url": "http://user:pw-secret@a"}}, WHERE)
    assert "pw-secret" not in str(caught.value)
    (device,) = parse_devices({"d": {"url": "http://a", "api_key": "k-secret"}}, WHERE)
    assert "k-secret" not in repr(device) and "(set)" in repr(device)


@pytest.mark.parametrize(("url", "loopback"), [
    ("http://localhost:5600", True), ("http://LOCALHOST.:5600", True), ("http://127.0.0.1", True),
    ("http://127.9.8.7:1", True), ("http://[::1]:5600", True), ("http://128.0.0.1", False),
    ("http://desktop.lan", False), ("http://[::2]", False), ("http://localhost.example", False),
])
def test_loopback_is_localhost_127_slash_8_or_ipv6_one(url, loopback):
    assert is_loopback(url) is loopback


def test_an_aw_sync_copy_of_a_followed_device_is_known_by_host_or_device_id():
    followed = {"Laptop-Host": "laptop", "3f1e-id": "desktop"}
    assert copy_of("aw-watcher-window_laptop-host-synced-from-laptop-host", followed) == "laptop"
    assert copy_of("aw-watcher-afk_x-synced-from-3f1e-id", followed) == "desktop"
    assert copy_of("aw-watcher-afk_x-synced-from-stranger", followed) is None
    assert copy_of("aw-watcher-afk_laptop-host", followed) is None
    assert synced_from("-synced-from-x") is None and synced_from("a-synced-from-") is None


def test_the_followed_map_keys_ids_and_hosts_lowered_the_first_device_keeping_a_shared_one():
    followed = followed_map([("desktop", "3F1E-id", "Box"), ("laptop", "l1", "BOX"), ("down", None, "")])
    assert followed == {"3f1e-id": "desktop", "box": "desktop", "l1": "laptop"}
    # What copy_of is given: a copy named in any case is its device's.
    assert copy_of("aw-watcher-afk_x-synced-from-box", followed) == "desktop"
    assert copy_of("aw-watcher-afk_x-synced-from-3f1e-ID", followed) == "desktop"
    assert followed_map([]) == {}


@given(st.text(min_size=1), st.text(min_size=1).filter(lambda s: "-synced-from-" not in s))
def test_synced_from_gives_back_the_host_aw_sync_wrote(bucket, host):
    assert synced_from(f"{bucket}-synced-from-{host}") == host


def test_a_later_device_with_the_same_device_id_is_refused_naming_the_first():
    refused = duplicate_ids([("laptop", "A"), ("desktop", "B"), ("clone", "A"), ("down", None),
                             ("alias", "B")])
    assert refused == {"clone": "laptop", "alias": "desktop"}


ALWAYS = Device("desktop", "http://127.0.0.1:5600", "", Expect.ALWAYS)
SOMETIMES = Device("laptop", "http://laptop.lan:5600", "", Expect.SOMETIMES)
NOW = 1_800_000_000.0


def judge(device, seen, now=NOW):
    return judge_device(now, device, seen, unreachable_minutes=15, absent_days=14)


def test_an_always_device_warns_after_its_grace_and_is_critical_after_four_times():
    def at(minutes_down):
        return judge(ALWAYS, DeviceSeen(False, NOW - minutes_down * 60, NOW - 3600 * 5))

    assert at(14.9)[0] is Level.OK
    assert at(15)[0] is Level.WARNING and "desktop unreachable for 15 min" in at(15)[1]
    assert at(59.9)[0] is Level.WARNING
    assert at(60)[0] is Level.CRITICAL


def test_a_sometimes_device_away_is_normal_until_its_absent_days():
    level, reason = judge(SOMETIMES, DeviceSeen(False, NOW - 7200, NOW - 7200))
    assert (level, reason) == (Level.OK, "laptop not seen for 2 h: off or away")
    level, reason = judge(SOMETIMES, DeviceSeen(False, NOW - 60, NOW - 86400 * 14))
    assert level is Level.WARNING and "14 d" in reason
    # Never reached: counted from when LifeLog first tried it (its unreachable_since).
    assert judge(SOMETIMES, DeviceSeen(False, NOW - 86400 * 15, None))[0] is Level.WARNING
    assert judge(SOMETIMES, DeviceSeen(False, NOW - 86400 * 13, None))[0] is Level.OK


def test_a_refused_clone_warns_naming_the_device_that_holds_its_id():
    level, reason = judge(SOMETIMES, DeviceSeen(True, None, NOW, refused_for="desktop"))
    assert level is Level.WARNING and reason.startswith("laptop answers with the device_id of desktop")


@settings(max_examples=300)
@given(
    expect=st.sampled_from(list(Expect)),
    down=st.floats(0, 86400 * 60), more=st.floats(0, 86400 * 60),
    seen_ok=st.one_of(st.none(), st.floats(0, 86400 * 60)),
)
def test_the_verdict_never_improves_as_a_device_stays_away_longer(expect, down, more, seen_ok):
    device = ALWAYS._replace(expect=expect)

    def level_at(now):
        seen = DeviceSeen(False, NOW - down, None if seen_ok is None else NOW - seen_ok)
        return judge(device, seen, now)[0]

    assert SEVERITY[level_at(NOW + more)] >= SEVERITY[level_at(NOW)]
    # A `sometimes` device is never CRITICAL, and a reachable device is always OK.
    if expect is Expect.SOMETIMES:
        assert level_at(NOW + more) is not Level.CRITICAL
    assert judge(device, DeviceSeen(True, None, NOW))[0] is Level.OK


# The setting, loaded as every command loads it.

def test_devices_load_from_a_private_config_file_and_from_the_environment(tmp_path):
    from lifelog.core.settings import load_settings

    config = tmp_path / "config.toml"
    config.write_text('[devices.laptop]\nurl = "http://127.0.0.1:5600"\n'
                      '[devices.desktop]\nurl = "http://desktop.lan:5600"\napi_key = "k-secret"\n')
    config.chmod(0o600)
    loaded = load_settings(config=config, environ={})
    assert [d.name for d in loaded.device_list] == ["laptop", "desktop"]
    assert [d.expect for d in loaded.devices] == [Expect.ALWAYS, Expect.SOMETIMES]
    assert "k-secret" not in repr(loaded)
    from_env = load_settings(config=config, environ={
        "LIFELOG_DEVICES": json.dumps({"desk": {"url": "http://10.0.0.2:5600", "expect": "always"}})})
    assert from_env.devices == (Device("desk", "http://10.0.0.2:5600", "", Expect.ALWAYS),)


def test_a_config_file_holding_a_device_key_must_be_private(tmp_path):
    from lifelog.core.settings import load_settings

    config = tmp_path / "config.toml"
    config.write_text('[devices.desktop]\nurl = "http://desktop.lan:5600"\napi_key = "k-secret"\n')
    config.chmod(0o644)
    with pytest.raises(UsageError) as caught:
        load_settings(config=config, environ={})
    assert "chmod 600" in str(caught.value) and "k-secret" not in str(caught.value)


def test_with_no_devices_the_one_device_is_aw_url():
    from lifelog.core.settings import load_settings

    loaded = load_settings(environ={"LIFELOG_AW_URL": "http://desktop.lan:5600"})
    assert loaded.devices == ()
    (device,) = loaded.device_list
    assert (device.name, device.url, device.expect) == ("local", "http://desktop.lan:5600", Expect.SOMETIMES)
