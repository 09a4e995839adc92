"""Several devices, one life log (SPEC section 14): the watcher, health and the
watchdog over real aw-servers, each with its own data dir and so its own
device_id, as a laptop, a desktop and a home server would be."""

from __future__ import annotations

import json
import os
import secrets
import signal
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.helpers import FAST, meta, wait_for
from test_apikey import AuthProxy

from lifelog.checks.health import run_check
from lifelog.core.settings import load_settings
from lifelog.core.timeutil import parse_iso, to_iso, utcnow
from lifelog.db.database import open_db

WINDOW = "aw-watcher-window_testhost"


def devices_json(**devices: dict) -> str:
    return json.dumps(devices)


def env_for(db_path: Path, devices: str, **extra: str) -> dict[str, str]:
    return dict(os.environ, **FAST, LIFELOG_DB_PATH=str(db_path), LIFELOG_DEVICES=devices, **extra)


def feed(aw, bucket_id: str, n: int, *, start=None, step: float = 60.0, tag: str = "") -> None:
    """n events a step apart, from `start` (default: n steps ago)."""
    start = start or utcnow() - timedelta(seconds=step * (n + 1))
    aw.insert(bucket_id, [{"timestamp": to_iso(start + timedelta(seconds=step * i)), "duration": step / 2,
                           "data": {"app": f"app{tag}{i % 7}", "title": f"{tag} {i}"}} for i in range(n)])


def truth(aw, bucket_id: str) -> dict:
    return {e["id"]: (to_iso(parse_iso(e["timestamp"])), e["duration"], e["data"]) for e in aw.events(bucket_id)}


def stored_on(db_path: Path, server: str, bucket_id: str) -> dict:
    """What LifeLog holds for one device's bucket: id -> (timestamp, duration, data)."""
    conn = sqlite3.connect(db_path, timeout=15)
    try:
        return {r[0]: (r[1], r[2], json.loads(r[3])) for r in conn.execute(
            "SELECT event_id, timestamp, duration, data FROM events "
            "WHERE server = ? AND bucket_id = ? AND deleted_in_aw_at IS NULL", (server, bucket_id))}
    except sqlite3.OperationalError:  # no schema yet
        return {}
    finally:
        conn.close()


def rows(db_path: Path, sql: str, args: tuple = ()) -> list[tuple]:
    conn = sqlite3.connect(db_path, timeout=15)
    try:
        return conn.execute(sql, args).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def watcher(spawn, env):
    return spawn.lifelog("watcher", env=env, log="watcher")


def stop(p) -> int:
    p.send_signal(signal.SIGTERM)
    return p.wait(30)


# -- one watcher, every device ---------------------------------------------------------------


def test_every_device_is_ingested_exactly_under_its_own_device_id(aw_servers, db_path, spawn):
    laptop, desktop, server = aw_servers(3)
    ids = [aw.device_id() for aw in (laptop, desktop, server)]
    assert len(set(ids)) == 3, "separate data dirs make separate device_ids"
    for n, aw in enumerate((laptop, desktop, server)):
        aw.create_bucket(WINDOW)
        aw.create_bucket("aw-watcher-afk_testhost", "afkstatus")
        feed(aw, WINDOW, 20 + 10 * n, tag=f"d{n}")
        feed(aw, "aw-watcher-afk_testhost", 5 + n, tag=f"a{n}")
    devices = devices_json(laptop={"url": laptop.url, "expect": "sometimes"}, desktop={"url": desktop.url},
                           server={"url": server.url})
    w = watcher(spawn, env_for(db_path, devices))
    for aw, device_id in zip((laptop, desktop, server), ids, strict=True):
        for bucket in (WINDOW, "aw-watcher-afk_testhost"):
            expected = truth(aw, bucket)
            wait_for(lambda: stored_on(db_path, device_id, bucket) == expected,  # noqa: B023
                     what=f"{bucket} of {aw.url} stored exactly")
    wait_for(lambda: meta(db_path, "device.server.last_poll_ok_at"), what="a good poll recorded")
    # Nothing else: every row belongs to one of the three, each event once.
    assert {r[0] for r in rows(db_path, "SELECT DISTINCT server FROM events")} == set(ids)
    assert rows(db_path, "SELECT count(*) FROM events_replaced") == [(0,)]
    for name, device_id in zip(("laptop", "desktop", "server"), ids, strict=True):
        assert meta(db_path, f"device.{name}.device_id") == device_id
        assert meta(db_path, f"device.{name}.reachable") == "yes"
        assert meta(db_path, f"device.{name}.last_error") == ""
        assert meta(db_path, f"device.{name}.unreachable_since") == ""
        assert meta(db_path, f"device.{name}.hostname")
    newest = max(meta(db_path, f"device.{n}.last_event_ts") for n in ("laptop", "desktop", "server"))
    assert meta(db_path, "watcher.last_event_ts") == newest
    assert meta(db_path, "watcher.last_error") == ""
    assert stop(w) == 0


def test_a_device_stopped_and_back_is_caught_up_once_while_the_other_keeps_arriving(aw_servers, db_path, spawn,
                                                                                    lifelog):
    desktop, laptop = aw_servers(2)
    for aw in (desktop, laptop):
        aw.create_bucket(WINDOW)
    feed(desktop, WINDOW, 10)
    # The laptop's last events before it left, four days ago.
    feed(laptop, WINDOW, 10, start=utcnow() - timedelta(days=4))
    lid = laptop.device_id()
    did = desktop.device_id()
    devices = devices_json(desktop={"url": desktop.url}, laptop={"url": laptop.url, "expect": "sometimes"})
    w = watcher(spawn, env_for(db_path, devices))
    wait_for(lambda: stored_on(db_path, lid, WINDOW) == truth(laptop, WINDOW), what="laptop stored")
    laptop.stop()
    wait_for(lambda: meta(db_path, "device.laptop.reachable") == "no", what="the laptop seen away")
    away_since = meta(db_path, "device.laptop.unreachable_since")
    assert away_since and laptop.url in meta(db_path, "device.laptop.last_error")
    assert meta(db_path, "device.desktop.reachable") == "yes"
    # A sometimes device away: the watcher's poll is still good.
    wait_for(lambda: meta(db_path, "watcher.last_error") == "", what="the poll good without the laptop")
    # The desktop's events keep arriving while the laptop is away.
    feed(desktop, WINDOW, 3, start=utcnow() - timedelta(seconds=5), step=1, tag="live")
    wait_for(lambda: stored_on(db_path, did, WINDOW) == truth(desktop, WINDOW), what="desktop live while away")
    assert meta(db_path, "device.laptop.unreachable_since") == away_since, "counted from the first failure"
    # Its newest event is four days old, and it does not answer: never a restart.
    def watchdog_pass() -> dict | None:
        r = lifelog("watchdog", "--once", "--json", env=env_for(db_path, devices))
        assert r.code == 0, r.err
        verdict = json.loads(r.out)
        return None if verdict["verdict"] == "wait:startup_grace" else verdict

    verdict = wait_for(watchdog_pass, what="a pass past the watcher's startup grace")
    assert verdict["verdict"] == "ok", verdict

    # Back with three days of events recorded while away (more than one
    # page: the live poll takes the newest, history the rest).
    laptop.start()
    feed(laptop, WINDOW, 6000, start=utcnow() - timedelta(days=3), step=40, tag="trip")
    feed(desktop, WINDOW, 2, start=utcnow() - timedelta(seconds=3), step=1, tag="live2")
    wait_for(lambda: stored_on(db_path, did, WINDOW) == truth(desktop, WINDOW), what="desktop live meanwhile")
    expected = truth(laptop, WINDOW)
    assert len(expected) == 6010
    wait_for(lambda: stored_on(db_path, lid, WINDOW) == expected, timeout=120, what="the laptop caught up")
    wait_for(lambda: meta(db_path, "device.laptop.reachable") == "yes", what="the laptop back")
    assert meta(db_path, "device.laptop.unreachable_since") == ""
    # Once: each event one row, none replaced, and no gap left.
    assert rows(db_path, "SELECT count(*) FROM events WHERE server = ?", (lid,)) == [(6010,)]
    assert rows(db_path, "SELECT count(*) FROM events_replaced") == [(0,)]
    wait_for(lambda: rows(db_path, "SELECT count(*) FROM sync_gaps") == [(0,)], what="no gap left")
    assert stop(w) == 0


def test_an_always_device_away_makes_the_poll_fail_naming_it(aw_servers, db_path, spawn):
    (desktop,) = aw_servers(1)
    desktop.create_bucket(WINDOW)
    feed(desktop, WINDOW, 3)
    from support.awserver import free_port

    gone = f"http://127.0.0.1:{free_port()}"
    devices = devices_json(desktop={"url": desktop.url}, nas={"url": gone, "expect": "always"})
    w = watcher(spawn, env_for(db_path, devices))
    wait_for(lambda: stored_on(db_path, desktop.device_id(), WINDOW) == truth(desktop, WINDOW), what="stored")
    wait_for(lambda: (meta(db_path, "watcher.last_error") or "").startswith("nas: "), what="the poll fails on nas")
    # Never reached: away since LifeLog first tried it.
    assert meta(db_path, "device.nas.reachable") == "no"
    assert meta(db_path, "device.nas.unreachable_since")
    assert meta(db_path, "device.nas.device_id") is None
    assert stop(w) == 0


def test_a_device_that_never_answers_costs_the_others_one_timeout_per_poll(aw_servers, db_path, spawn):
    from support.fakeaw import SilentSocket

    (desktop,) = aw_servers(1)
    desktop.create_bucket(WINDOW)
    hung = SilentSocket()  # connects, then silence: each call waits its whole timeout
    try:
        devices = devices_json(hung={"url": hung.url, "expect": "sometimes"}, desktop={"url": desktop.url})
        w = watcher(spawn, env_for(db_path, devices))  # FAST: aw_timeout_seconds 1
        wait_for(lambda: "no answer within 1 s" in (meta(db_path, "device.hung.last_error") or ""),
                 what="the hung device timed out")
        for n in range(3):
            feed(desktop, WINDOW, 1, start=utcnow() - timedelta(seconds=2), step=1, tag=f"live{n}")
            # Listed first, the hung device is asked first in every poll; the
            # desktop's events still arrive, a poll (one timeout) later.
            wait_for(lambda: stored_on(db_path, desktop.device_id(), WINDOW) == truth(desktop, WINDOW),
                     timeout=15, what="the desktop's event stored despite the hung device")
        assert meta(db_path, "device.hung.reachable") == "no"
        assert meta(db_path, "watcher.last_error") == ""
        assert stop(w) == 0
    finally:
        hung.close()


# -- identity ----------------------------------------------------------------------------------


def test_a_second_name_for_the_same_server_is_refused_with_the_reason(aw_servers, db_path, spawn, lifelog):
    (aw,) = aw_servers(1)
    aw.create_bucket(WINDOW)
    feed(aw, WINDOW, 5)
    device_id = aw.device_id()
    # The same server under another host name: a clone as LifeLog sees it.
    clone_url = aw.url.replace("127.0.0.1", "localhost")
    devices = devices_json(desktop={"url": aw.url}, clone={"url": clone_url})
    w = watcher(spawn, env_for(db_path, devices))
    wait_for(lambda: stored_on(db_path, device_id, WINDOW) == truth(aw, WINDOW), what="desktop stored")
    wait_for(lambda: "desktop" in (meta(db_path, "device.clone.last_error") or ""), what="the clone refused")
    reason = meta(db_path, "device.clone.last_error")
    assert "clone" in reason and device_id in reason and "nothing of clone is stored" in reason
    assert meta(db_path, "device.clone.last_event_ts") is None
    assert meta(db_path, "device.clone.last_poll_ok_at") is None
    assert meta(db_path, "watcher.last_error") == "", "a refused clone is its own trouble, not the poll's"
    assert stop(w) == 0
    r = lifelog("health", "--json", env=env_for(db_path, devices))
    doc = json.loads(r.out)
    clone = [d for d in doc["devices"] if d["device"] == "clone"][0]
    assert clone["status"] == "degraded" and "desktop" in clone["error"]
    assert r.code == 1, r.err  # the clone is an `always` device (loopback), degraded
    assert rows(db_path, "SELECT device, status FROM health_checks ORDER BY id") == [
        ("desktop", "healthy"), ("clone", "degraded")]


def test_a_device_whose_aw_reports_a_new_device_id_starts_a_new_series_the_old_rows_stay(
        aw_servers, db_path, spawn, tmp_path):
    from support.awserver import AWServer

    (old,) = aw_servers(1)
    old.create_bucket(WINDOW)
    feed(old, WINDOW, 5, tag="old")
    old_id = old.device_id()
    devices = devices_json(laptop={"url": old.url})
    w = watcher(spawn, env_for(db_path, devices))
    before = truth(old, WINDOW)
    wait_for(lambda: stored_on(db_path, old_id, WINDOW) == before, what="the first install stored")
    old.stop()
    # AW reinstalled on the same port: new data, so a new device_id.
    new = AWServer(tmp_path / "aw-reinstalled", port=old.port).start()
    try:
        new.create_bucket(WINDOW)
        feed(new, WINDOW, 3, tag="new")
        new_id = new.device_id()
        assert new_id != old_id
        wait_for(lambda: stored_on(db_path, new_id, WINDOW) == truth(new, WINDOW), what="the new series stored")
        wait_for(lambda: meta(db_path, "device.laptop.device_id") == new_id, what="the new device_id recorded")
        assert stored_on(db_path, old_id, WINDOW) == before, "the old rows stay"
        assert stop(w) == 0
    finally:
        new.stop()


def test_coverage_of_a_reinstalled_device_shows_both_its_series(aw_servers, db_path, spawn, tmp_path, lifelog):
    from support.awserver import AWServer

    afk = "aw-watcher-afk_testhost"
    quarter = int(utcnow().timestamp()) // 900 * 900

    def active_hour(aw, hours_ago: int, tag: str) -> tuple[float, float]:
        """An hour of not-afk with window data, on quarter hours; its span."""
        start = quarter - hours_ago * 3600
        at = to_iso(datetime.fromtimestamp(start, UTC))
        aw.insert(afk, [{"timestamp": at, "duration": 3600.0, "data": {"status": "not-afk"}}])
        aw.insert(WINDOW, [{"timestamp": at, "duration": 3600.0, "data": {"app": tag, "title": tag}}])
        return float(start), float(start + 3600)

    (old,) = aw_servers(1)
    old.create_bucket(afk, "afkstatus")
    old.create_bucket(WINDOW)
    first = active_hour(old, 5, "first install")
    old_id = old.device_id()
    devices = devices_json(laptop={"url": old.url})
    env = env_for(db_path, devices)
    w = watcher(spawn, env)
    wait_for(lambda: all(stored_on(db_path, old_id, b) == truth(old, b) for b in (afk, WINDOW)),
             what="the first install stored")
    old.stop()
    new = AWServer(tmp_path / "aw-reinstalled", port=old.port).start()  # AW reinstalled: a new device_id
    try:
        new.create_bucket(afk, "afkstatus")
        new.create_bucket(WINDOW)
        second = active_hour(new, 2, "second install")
        new_id = new.device_id()
        # Both buckets: a poll may fall between the two inserts of active_hour.
        wait_for(lambda: all(stored_on(db_path, new_id, b) == truth(new, b) for b in (afk, WINDOW)),
                 what="the new series stored")
        wait_for(lambda: meta(db_path, "device.laptop.device_id") == new_id, what="the new device_id recorded")
        assert stop(w) == 0
    finally:
        new.stop()
    r = lifelog("coverage", "--device", "laptop", "--json", env=env)
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    active = [(datetime.fromisoformat(s["start"]).timestamp(), datetime.fromisoformat(s["end"]).timestamp())
              for s in doc["stretches"] if s["class"] == "active"]
    assert active == [first, second], doc["stretches"]
    assert sum(d["active_seconds"] for d in doc["days"]) == 2 * 3600
    assert rows(db_path, "SELECT device, device_id FROM device_ids ORDER BY first_seen_at") == [
        ("laptop", old_id), ("laptop", new_id)]


def test_a_cloned_machine_is_refused_even_while_the_original_is_away(aw_servers, db_path, spawn, tmp_path):
    from support.awserver import AWServer

    (desktop,) = aw_servers(1)
    desktop.create_bucket(WINDOW)
    feed(desktop, WINDOW, 4)
    device_id = desktop.device_id()
    # A disk image of the desktop booted as a laptop: its own data, the same device_id.
    laptop = AWServer(tmp_path / "aw-clone")
    id_file = Path("data/activitywatch/aw-server/device_id")
    (laptop.home / id_file).parent.mkdir(parents=True)
    (laptop.home / id_file).write_bytes((desktop.home / id_file).read_bytes())
    laptop.start()
    try:
        assert laptop.device_id() == device_id
        laptop.create_bucket("aw-watcher-window_laptop")
        feed(laptop, "aw-watcher-window_laptop", 6, tag="clone")
        devices = devices_json(desktop={"url": desktop.url}, laptop={"url": laptop.url, "expect": "sometimes"})
        w = watcher(spawn, env_for(db_path, devices))
        wait_for(lambda: stored_on(db_path, device_id, WINDOW) == truth(desktop, WINDOW), what="desktop stored")
        wait_for(lambda: "desktop" in (meta(db_path, "device.laptop.last_error") or ""), what="laptop refused")
        desktop.stop()
        wait_for(lambda: meta(db_path, "device.desktop.reachable") == "no", what="the desktop away")
        # Still refused, by the device_id the desktop last answered with.
        first_poll = meta(db_path, "watcher.heartbeat_at")
        wait_for(lambda: meta(db_path, "watcher.heartbeat_at") > first_poll, what="a poll with the desktop away")
        assert "desktop" in meta(db_path, "device.laptop.last_error")
        assert stored_on(db_path, device_id, "aw-watcher-window_laptop") == {}, "nothing of the clone stored"
        assert rows(db_path, "SELECT count(*) FROM buckets WHERE bucket_id = 'aw-watcher-window_laptop'") == [(0,)]
        assert stop(w) == 0
    finally:
        laptop.stop()


# -- aw-sync copies --------------------------------------------------------------------------------


def plant_copies(desktop, laptop) -> tuple[str, str]:
    """The desktop's own bucket; on the laptop its own, aw-sync's copy of the
    desktop's (named by its device_id) and a copy of a machine LifeLog does
    not follow. Returns (the followed copy, the stranger's copy)."""
    desktop.create_bucket(WINDOW)
    feed(desktop, WINDOW, 4)
    followed_copy = f"{WINDOW}-synced-from-{desktop.device_id()}"
    stranger_copy = "aw-watcher-window_phone-synced-from-phone-4242"
    for bucket in (WINDOW, followed_copy, stranger_copy):
        laptop.create_bucket(bucket)
        feed(laptop, bucket, 3, tag=bucket[-4:])
    return followed_copy, stranger_copy


def test_aw_sync_copies_of_a_followed_device_are_not_stored_but_of_others_are(aw_servers, db_path, spawn,
                                                                             lifelog):
    desktop, laptop = aw_servers(2)
    did, lid = desktop.device_id(), laptop.device_id()
    followed_copy, stranger_copy = plant_copies(desktop, laptop)
    devices = devices_json(desktop={"url": desktop.url}, laptop={"url": laptop.url})
    w = watcher(spawn, env_for(db_path, devices))
    wait_for(lambda: stored_on(db_path, lid, stranger_copy) == truth(laptop, stranger_copy),
             what="the copy of an unfollowed device stored")
    wait_for(lambda: stored_on(db_path, lid, WINDOW) == truth(laptop, WINDOW), what="the laptop's own stored")
    wait_for(lambda: stored_on(db_path, did, WINDOW) == truth(desktop, WINDOW), what="the desktop's own stored")
    wait_for(lambda: meta(db_path, "device.laptop.last_poll_ok_at"), what="a good poll")
    assert stored_on(db_path, lid, followed_copy) == {}
    assert rows(db_path, "SELECT count(*) FROM sync_state WHERE bucket_id = ?", (followed_copy,)) == [(0,)]
    assert stop(w) == 0
    # A backfill and a reconciliation of the laptop's AW leave the copy out too.
    for command in ("backfill", "reconcile"):
        r = lifelog(command, "--aw-url", laptop.url, env=env_for(db_path, devices))
        assert r.code == 0, r.err
    assert stored_on(db_path, lid, followed_copy) == {}
    assert stored_on(db_path, lid, stranger_copy) == truth(laptop, stranger_copy)


def test_the_daemons_reconciliation_covers_every_device_and_skips_one_away(aw_servers, db_path, spawn, caplog):
    import logging
    import threading

    from lifelog import daemon

    desktop, laptop, away = aw_servers(3)
    for aw in (desktop, laptop, away):
        aw.create_bucket(WINDOW)
        feed(aw, WINDOW, 6)
    devices = devices_json(desktop={"url": desktop.url}, laptop={"url": laptop.url},
                           away={"url": away.url, "expect": "sometimes"})
    w = watcher(spawn, env_for(db_path, devices))
    for aw in (desktop, laptop, away):
        expected = truth(aw, WINDOW)
        wait_for(lambda: stored_on(db_path, aw.device_id(), WINDOW) == expected, what="stored")  # noqa: B023
    assert stop(w) == 0
    away.stop()
    # AW lost an event on the laptop, under LifeLog's feet.
    lost = min(truth(laptop, WINDOW))
    assert laptop.api("DELETE", f"/buckets/{WINDOW}/events/{lost}").status_code == 200
    assert lost in stored_on(db_path, laptop.device_id(), WINDOW)
    settings = load_settings(overrides={"db_path": str(db_path)}, environ={**FAST, "LIFELOG_DEVICES": devices})
    caplog.set_level(logging.INFO, logger="lifelog")
    daemon._reconcile_job(settings, threading.Event())
    records = caplog.records
    assert stored_on(db_path, laptop.device_id(), WINDOW) == truth(laptop, WINDOW)
    assert lost not in stored_on(db_path, laptop.device_id(), WINDOW)
    assert stored_on(db_path, desktop.device_id(), WINDOW) == truth(desktop, WINDOW)
    lines = [r.getMessage() for r in records if r.getMessage().startswith("reconcile ")]
    assert [line.split(":")[0] for line in lines] == ["reconcile desktop", "reconcile laptop", "reconcile away"]
    assert "not reconciled" in lines[2] and away.url in lines[2]


# -- bad settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize("devices, culprit", [
    ('{"Laptop": {"url": "http://127.0.0.1:5600"}}', "'Laptop'"),
    ('{"laptop": {"url": "ftp://laptop:5600"}}', "'laptop'"),
    ('{"laptop": {"url": "http://127.0.0.1:5600", "colour": "red"}}', "'colour'"),
    ('{"laptop": {}}', "'laptop'"),
    ('{"laptop": {"url": "http://127.0.0.1:5600", "expect": "often"}}', "'often'"),
    ("not json", "LIFELOG_DEVICES"),
])
@pytest.mark.parametrize("command", [("watcher",), ("health",)])
def test_bad_devices_settings_are_refused_by_a_real_command_and_nothing_changes(
        lifelog, db_path, devices, culprit, command):
    r = lifelog(*command, "--db", str(db_path), env=env_for(db_path, devices))
    assert r.code == 2, (r.out, r.err)
    assert culprit in r.err and "Traceback" not in r.err
    assert len(r.err.strip().splitlines()) == 1, r.err
    assert not db_path.exists(), "nothing written"


# -- a device's API key ----------------------------------------------------------------------------


@pytest.fixture
def secured(aw_servers):
    (aw,) = aw_servers(1)
    key = "llk-dev-" + secrets.token_hex(16)
    proxy = AuthProxy(aw.url, key)
    yield aw, proxy, key
    proxy.close()


def test_a_devices_api_key_is_sent_but_never_printed_or_stored(secured, aw_servers, db_path, spawn, lifelog,
                                                               tmp_path):
    aw, proxy, key = secured
    (plain,) = aw_servers(1)
    for server in (aw, plain):
        server.create_bucket(WINDOW)
        feed(server, WINDOW, 4)
    config = tmp_path / "config.toml"
    config.write_text(f'[devices.home]\nurl = "{plain.url}"\n\n'
                      f'[devices.secure]\nurl = "{proxy.url}"\napi_key = "{key}"\n')
    config.chmod(0o600)
    env = dict(os.environ, **FAST, LIFELOG_DB_PATH=str(db_path), LIFELOG_LOG_LEVEL="DEBUG")
    w = spawn.lifelog("watcher", "--config", str(config), env=env, log="watcher")
    wait_for(lambda: stored_on(db_path, aw.device_id(), WINDOW) == truth(aw, WINDOW), what="secure stored")
    assert stop(w) == 0
    assert proxy.checked and all(right for _, right in proxy.checked), "every request carries the key"
    outputs = [lifelog("health", "--json", "--config", str(config), env=env),
               lifelog("health", "--config", str(config), env=env),
               lifelog("meta", "show", "--config", str(config), env=env),
               lifelog("status", "--config", str(config), env=env)]
    assert outputs[0].code == 0, outputs[0].err
    for r in outputs:
        assert key not in r.out and key not in r.err
    needle = key.encode()
    for path in tmp_path.rglob("*"):
        if path.is_file() and path != config and not path.is_relative_to(aw.home) \
                and not path.is_relative_to(plain.home):
            assert needle not in path.read_bytes(), f"the key is in {path}"
    # A wrong key: the reason says so, and still shows no key.
    config.write_text(config.read_text().replace(key, key[:-4] + "0000"))
    r = lifelog("health", "--config", str(config), env=env)
    assert "secure: ActivityWatch server degraded" in r.out and "rejected the API key" in r.out
    assert key[:-4] not in r.out + r.err


# -- health per device ----------------------------------------------------------------------------


def test_health_checks_every_device_and_its_exit_is_the_worst_of_the_always_ones(aw_servers, db_path):
    from support.awserver import free_port

    (desktop,) = aw_servers(1)
    gone = f"http://127.0.0.1:{free_port()}"

    def check(**devices):
        settings = load_settings(overrides={"db_path": str(db_path), "aw_timeout_seconds": 1},
                                 environ={"LIFELOG_DEVICES": json.dumps(devices)})
        return run_check(open_db(db_path), settings)

    r = check(desktop={"url": desktop.url}, laptop={"url": gone, "expect": "sometimes"})
    assert [(d.device, str(d.status)) for d in r.devices] == [("desktop", "healthy"), ("laptop", "unreachable")]
    assert r.exit_code == 0, "a sometimes device away is normal"
    assert meta(db_path, "aw.status") == "healthy", "aw.* describe the first device"
    r = check(desktop={"url": desktop.url}, nas={"url": gone, "expect": "always"})
    assert [(d.device, str(d.status)) for d in r.devices] == [("desktop", "healthy"), ("nas", "unhealthy")]
    assert r.exit_code == 2
    assert "nas: ActivityWatch server unhealthy" in r.line()
    assert rows(db_path, "SELECT device, status FROM health_checks ORDER BY id") == [
        ("desktop", "healthy"), ("laptop", "unreachable"), ("desktop", "healthy"), ("nas", "unhealthy")]


def test_coverage_calls_a_device_that_did_not_answer_unreachable_and_an_aw_that_answered_badly_down(
        aw_servers, db_path):
    # SPEC section 4: `unhealthy` is no answer at all; section 13's aw_down is
    # AW failing. A device whose AW did not answer (connection refused) is
    # device_unreachable; one whose AW answered /info and then reset the
    # bucket list's connection, or answered it with a 500, is aw_down.
    from support.fakeaw import HTML_500, INFO, FakeAW, RawServer, answer, reset

    from lifelog.core.timeutil import now_iso
    from lifelog.coverage.model import Cause
    from lifelog.coverage.query import coverage_of
    from lifelog.db.database import transaction
    from lifelog.ingest.fleet import links_of, poll_devices, record_devices

    (desk,) = aw_servers(1)
    desk.stop()  # its port now refuses connections: the machine is off

    def info_then_reset(device_id: bytes):
        def handle(server, conn):
            while (head := server.read_request(conn)) is not None:
                if b" /api/0/info" not in head.split(b"\r\n")[0]:
                    reset(conn)
                    return
                conn.sendall(answer(200, INFO[2].replace(b'"x"', b'"' + device_id + b'"')))

        return handle

    hung = RawServer(info_then_reset(b"hung-id"))
    flaky = RawServer(info_then_reset(b"flaky-id"))  # a laptop whose AW is there, and broken
    sick = FakeAW({"/api/0/info": (*INFO[:2], INFO[2].replace(b'"x"', b'"sick-id"')), "/api/0/buckets/": HTML_500})
    try:
        devices = {"desk": {"url": desk.url}, "hung": {"url": hung.url}, "sick": {"url": sick.url},
                   "lap": {"url": desk.url, "expect": "sometimes"}, "flaky": {"url": flaky.url, "expect": "sometimes"}}
        settings = load_settings(overrides={"db_path": str(db_path), "aw_timeout_seconds": 1},
                                 environ={"LIFELOG_DEVICES": json.dumps(devices)})
        db = open_db(db_path)
        result = run_check(db, settings)
        polls = poll_devices(db, links_of(settings), settings)  # the watcher's poll: every one fails
        with transaction(db):
            record_devices(db, polls, now_iso())
    finally:
        for fake in (hung, flaky, sick):
            fake.close()
    # Not even /info answered: a `sometimes` device is away (`unreachable`); it answered, then
    # not the bucket list: it is there, and broken (`unhealthy`, as an `always` one).
    assert [(d.device, str(d.status)) for d in result.devices] == [
        ("desk", "unhealthy"), ("hung", "unhealthy"), ("sick", "degraded"), ("lap", "unreachable"),
        ("flaky", "unhealthy")]
    assert result.exit_code == 2
    assert [meta(db_path, f"device.{n}.reachable") for n in devices] == ["no"] * 5
    now = utcnow().timestamp()
    since = now // 60 * 60 - 600
    cov = coverage_of(db, settings, since, now // 60 * 60 + 60, 1, now=now)
    cause = {s.host: s.cause for s in cov.stretches if s.start <= now < s.end}
    assert cause == {"desk": Cause.DEVICE_UNREACHABLE, "hung": Cause.AW_DOWN, "sick": Cause.AW_DOWN,
                     "lap": Cause.DEVICE_UNREACHABLE, "flaky": Cause.AW_DOWN,
                     "all devices": cause["all devices"]}, cov.stretches
