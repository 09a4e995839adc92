"""`lifelog backfill` and `lifelog reconcile` with the `devices` setting
(SPEC section 14): every device, each through its own client, against real
aw-servers; one not answering is skipped with its reason, a clone is not
read, an aw-sync copy of a followed device is not stored, and the exit code
says a device was not covered (1, as one AW failing is today)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from support.awserver import AWServer, free_port
from support.helpers import wait_for
from test_devices_ingest import WINDOW, devices_json, env_for, feed, plant_copies, rows, stored_on, truth

from lifelog.core.timeutil import utcnow


def clone_of(original: AWServer, home: Path) -> AWServer:
    """A disk image of `original` booted elsewhere: its own data, the same device_id."""
    clone = AWServer(home)
    id_file = Path("data/activitywatch/aw-server/device_id")
    (clone.home / id_file).parent.mkdir(parents=True)
    (clone.home / id_file).write_bytes((original.home / id_file).read_bytes())
    return clone.start()


def test_backfill_covers_every_device_skips_one_away_and_reads_no_clone(aw_servers, db_path, lifelog, tmp_path):
    desktop, laptop = aw_servers(2)
    did, lid = desktop.device_id(), laptop.device_id()
    desktop.create_bucket(WINDOW)
    feed(desktop, WINDOW, 40, tag="desk")
    laptop.create_bucket(WINDOW)
    # More than a page (history.PAGE_SIZE 2500): the rest comes as a gap, filled to the end.
    feed(laptop, WINDOW, 3000, start=utcnow() - timedelta(days=3), step=60, tag="trip")
    # aw-sync's copy of the desktop's bucket on the laptop: the desktop is followed directly.
    copy = f"{WINDOW}-synced-from-{did}"
    laptop.create_bucket(copy)
    feed(laptop, copy, 5, tag="copy")
    clone = clone_of(desktop, tmp_path / "aw-clone")
    try:
        clone.create_bucket("aw-watcher-window_clone")
        feed(clone, "aw-watcher-window_clone", 4, tag="clone")
        gone = f"http://127.0.0.1:{free_port()}"
        devices = devices_json(desktop={"url": desktop.url}, laptop={"url": laptop.url, "expect": "sometimes"},
                               clone={"url": clone.url}, gone={"url": gone, "expect": "sometimes"})
        r = lifelog("backfill", env=env_for(db_path, devices))
    finally:
        clone.stop()
    assert r.code == 1, (r.out, r.err)
    assert r.err.strip() == "lifelog: error: 2 of 4 devices not backfilled: clone, gone", r.err
    finals = [line for line in r.out.splitlines() if ": backfill " in line or ": not backfilled" in line]
    assert [line.split(":")[0] for line in finals] == ["desktop", "laptop", "clone", "gone"], r.out
    assert finals[0].startswith("desktop: backfill complete: 1 buckets, 40 events fetched, 40 inserted")
    # (pages meet at one timestamp: its event comes in both, stored once)
    assert finals[1].startswith("laptop: backfill complete: 1 buckets, ") and ", 3000 inserted" in finals[1]
    assert "device_id" in finals[2] and "desktop" in finals[2] and "nothing of clone is stored" in finals[2]
    assert finals[3].startswith("gone: not backfilled, not answering: ") and gone in finals[3]
    # Each device exactly as its AW has it, under its own device_id; nothing else.
    assert stored_on(db_path, did, WINDOW) == truth(desktop, WINDOW)
    assert stored_on(db_path, lid, WINDOW) == truth(laptop, WINDOW)
    assert {r[0] for r in rows(db_path, "SELECT DISTINCT server FROM events")} == {did, lid}
    assert rows(db_path, "SELECT count(*) FROM events WHERE bucket_id IN (?, ?)",
                (copy, "aw-watcher-window_clone")) == [(0,)]
    assert rows(db_path, "SELECT count(*) FROM sync_gaps") == [(0,)]

    # Everyone answering (the clone and the lost one gone from the table): exit 0, nothing doubled.
    devices = devices_json(desktop={"url": desktop.url}, laptop={"url": laptop.url})
    r = lifelog("backfill", env=env_for(db_path, devices))
    assert r.code == 0, (r.out, r.err)
    assert "desktop: backfill complete" in r.out and "laptop: backfill complete" in r.out
    assert rows(db_path, "SELECT count(*) FROM events") == [(3040,)]
    assert rows(db_path, "SELECT count(*) FROM events_replaced") == [(0,)]


def test_reconcile_covers_every_device_and_skips_one_away(aw_servers, db_path, lifelog):
    desktop, laptop, away = aw_servers(3)
    for n, aw in enumerate((desktop, laptop, away)):
        aw.create_bucket(WINDOW)
        feed(aw, WINDOW, 8, tag=f"d{n}")
    devices = devices_json(desktop={"url": desktop.url}, laptop={"url": laptop.url},
                           away={"url": away.url, "expect": "sometimes"})
    env = env_for(db_path, devices)
    r = lifelog("backfill", env=env)
    assert r.code == 0, (r.out, r.err)
    away_url = away.url
    away.stop()
    # Under LifeLog's feet: AW lost an event on the laptop; a back-dated one reached the desktop.
    lost = min(truth(laptop, WINDOW))
    assert laptop.api("DELETE", f"/buckets/{WINDOW}/events/{lost}").status_code == 200
    # (among the stored ones: reconcile looks back to the bucket's oldest event)
    feed(desktop, WINDOW, 1, start=utcnow() - timedelta(seconds=450), tag="late")
    r = lifelog("reconcile", env=env)
    assert r.code == 1, (r.out, r.err)
    assert r.err.strip() == "lifelog: error: 1 of 3 devices not reconciled: away", r.err
    lines = r.out.splitlines()
    assert [line.split(":")[0] for line in lines if ": reconcile: " in line] == ["desktop", "laptop"], r.out
    assert any(line.startswith(f"desktop: {WINDOW}") for line in lines), r.out
    assert lines[-1].startswith("away: not reconciled, not answering: ") and away_url in lines[-1]
    assert stored_on(db_path, desktop.device_id(), WINDOW) == truth(desktop, WINDOW)
    assert stored_on(db_path, laptop.device_id(), WINDOW) == truth(laptop, WINDOW)
    assert rows(db_path, "SELECT deleted_in_aw_at IS NOT NULL FROM events WHERE server = ? AND event_id = ?",
                (laptop.device_id(), lost)) == [(1,)], "kept, marked as lost in AW"
    # `--aw-url` still names one server, as without devices.
    r = lifelog("reconcile", "--aw-url", laptop.url, env=env)
    assert r.code == 0, (r.out, r.err)
    assert r.out.splitlines()[-1].startswith("reconcile: ")


def test_a_device_that_never_answers_is_skipped_after_one_timeout(aw_servers, db_path, lifelog):
    from support.fakeaw import SilentSocket

    (desktop,) = aw_servers(1)
    desktop.create_bucket(WINDOW)
    feed(desktop, WINDOW, 5)
    hung = SilentSocket()  # connects, then silence
    try:
        devices = devices_json(hung={"url": hung.url, "expect": "sometimes"}, desktop={"url": desktop.url})
        r = lifelog("backfill", env=env_for(db_path, devices))  # FAST: aw_timeout_seconds 1
    finally:
        hung.close()
    assert r.code == 1, (r.out, r.err)
    assert "hung: not backfilled, not answering: " in r.out and "no answer within 1 s" in r.out, r.out
    assert "desktop: backfill complete" in r.out
    assert stored_on(db_path, desktop.device_id(), WINDOW) == truth(desktop, WINDOW)


@pytest.mark.parametrize("command", ["backfill", "reconcile"])
def test_bad_devices_are_refused_before_anything_is_written(lifelog, db_path, command):
    r = lifelog(command, env=env_for(db_path, '{"laptop": {"url": "ftp://laptop:5600"}}'))
    assert r.code == 2, (r.out, r.err)
    assert "'laptop'" in r.err and len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err
    assert not db_path.exists()


@pytest.mark.parametrize("single", [False, True], ids=["devices", "aw-url"])
def test_ctrl_c_in_a_backfill_is_exit_130_interrupted_and_a_second_run_finishes_it(aw_servers, db_path, spawn,
                                                                                   single):
    import signal

    desktop, laptop = aw_servers(2)
    desktop.create_bucket(WINDOW)
    # Eight pages (history.PAGE_SIZE 2500): a SIGINT after the first page lands mid-backfill.
    for k in range(4):
        feed(desktop, WINDOW, 5000, start=utcnow() - timedelta(days=60 - 14 * k), step=60, tag=f"p{k}")
    laptop.create_bucket(WINDOW)
    feed(laptop, WINDOW, 5, tag="lap")
    env = env_for(db_path, devices_json(desktop={"url": desktop.url}, laptop={"url": laptop.url}))
    args = ["backfill", "--aw-url", desktop.url] if single else ["backfill"]
    p = spawn.lifelog(*args, env=env, capture=True)
    wait_for(lambda: rows(db_path, "SELECT count(*) FROM events") not in ([], [(0,)]) or p.poll() is not None,
             timeout=60, what="the first page stored")
    p.send_signal(signal.SIGINT)  # as Ctrl-C at a terminal
    out, err = p.communicate(timeout=60)
    assert (p.returncode, err) == (130, "lifelog: interrupted\n"), (out, err)
    last = out.splitlines()[-1]
    assert "backfill interrupted; run it again to resume" in last and last.startswith("" if single else "desktop: ")
    assert "laptop:" not in out, "a device not begun is left for the next run"
    stored = rows(db_path, "SELECT count(*) FROM events")[0][0]
    assert 0 < stored < 20000
    # What was stored stays; the next run finishes it, exactly.
    p = spawn.lifelog(*args, env=env, capture=True)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, (out, err)
    assert stored_on(db_path, desktop.device_id(), WINDOW) == truth(desktop, WINDOW)
    assert stored_on(db_path, laptop.device_id(), WINDOW) == ({} if single else truth(laptop, WINDOW))


def test_a_backfill_of_one_url_before_any_watcher_ran_stores_no_copy_of_a_followed_device(aw_servers, db_path,
                                                                                         lifelog):
    # No watcher ever ran: no device's identity is in meta. The backfill asks
    # the devices' AW who they are, so aw-sync's copy of the desktop on the
    # laptop is known for one and left out.
    desktop, laptop = aw_servers(2)
    lid = laptop.device_id()
    followed_copy, stranger_copy = plant_copies(desktop, laptop)
    gone = f"http://127.0.0.1:{free_port()}"  # a device that does not answer costs one timeout, adds nothing
    devices = devices_json(desktop={"url": desktop.url}, laptop={"url": laptop.url},
                           gone={"url": gone, "expect": "sometimes"})
    for command in ("backfill", "reconcile"):
        r = lifelog(command, "--aw-url", laptop.url, env=env_for(db_path, devices))
        assert r.code == 0, (command, r.out, r.err)
        assert rows(db_path, "SELECT count(*) FROM meta WHERE key LIKE 'device.%'") == [(0,)], "no watcher ran"
        assert stored_on(db_path, lid, followed_copy) == {}, command
        assert rows(db_path, "SELECT count(*) FROM sync_state WHERE bucket_id = ?", (followed_copy,)) == [(0,)]
        assert stored_on(db_path, lid, stranger_copy) == truth(laptop, stranger_copy)
        assert stored_on(db_path, lid, WINDOW) == truth(laptop, WINDOW)
