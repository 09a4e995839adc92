"""One watcher, every device (SPEC section 14): one poll over all the AW
servers of the `devices` setting.

A poll asks every device's `/api/0/info` first (each call bounded by
`aw_timeout_seconds`, so a device that does not answer costs the others at
most that), then tells clones apart (two names answering with one
`device_id`: the later one in the table is refused, nothing of it stored),
then polls every answering device's live buckets. History is not fetched
inside the poll: a device with gaps (back after days, or seen for the first
time) is handed to a catch-up thread of its own (lifelog.ingest.catchup),
which fills them from where LifeLog left it (its sync_state and sync_gaps
rows) while the next polls keep every device's live events coming at the
poll's pace. aw-sync copies of a followed device
(`<bucket>-synced-from-<host or device_id>`) are never chosen: that device's
own bucket is stored, directly.

Each device has its own AWClient, kept across polls (one kept-alive
connection per server). Per-device meta (`device.<name>.*`) is written with
the watcher's heartbeat (lifelog.ingest.watcher.record_heartbeat).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lifelog.aw.client import AWClient, AWError
from lifelog.core import keys
from lifelog.core.devices import Device, Expect, copy_of, duplicate_ids, followed_map, refused_reason
from lifelog.core.settings import Settings
from lifelog.core.timeutil import now_iso
from lifelog.db.meta import device_meta, recorded_identity, set_meta
from lifelog.ingest import history, livepoll, servers
from lifelog.ingest.catchup import CatchUp, failure
from lifelog.ingest.store import ShouldStop, connect, last_event_ts, never

log = logging.getLogger("lifelog.watcher")


@dataclass
class Link:
    """A device and its client, kept across polls."""

    device: Device
    client: AWClient
    catch_up: CatchUp | None = None  # its history being fetched, when it has gaps

    @property
    def name(self) -> str:
        return self.device.name

    def stop_catching_up(self) -> None:
        if self.catch_up is not None:
            self.catch_up.cancel()


def links_of(settings: Settings) -> list[Link]:
    return [Link(d, AWClient(d.url, settings.aw_timeout_seconds, api_key=d.api_key))
            for d in settings.device_list]


@dataclass
class DevicePoll:
    """What one poll found of one device."""

    name: str
    expect: Expect
    answered: bool = False  # /api/0/info answered
    ok: bool = False  # answered, and its buckets were polled and stored
    error: str = ""
    device_id: str | None = None
    hostname: str | None = None
    last_event_ts: str | None = None
    refused_for: str | None = None  # the device holding its device_id first
    gaps_left: int = 0
    polled: bool = True  # False: a stop came first; nothing is recorded of it


def poll_devices(db, links: Sequence[Link], settings: Settings, *,
                 should_stop: ShouldStop = never) -> list[DevicePoll]:
    """One poll of every device, in the table's order; never raises for what
    a device or the database does (each device's failure is its own)."""
    polls = [DevicePoll(link.name, link.device.expect) for link in links]
    # 1-2. Who answers, and as whom; clones.
    infos, refused, is_copy = _identify(db, [link.client for link in links], polls, should_stop)
    # 3. Live polls of every answering device. A catch-up under way for a
    # device not answering now as the same device_id (away, refused, or AW
    # reinstalled) is stopped: its pages must not land under the old id.
    work = []
    for link, p in zip(links, polls, strict=True):
        catch_up = link.catch_up
        if catch_up is not None and catch_up.running and (
                not p.answered or p.name in refused or p.device_id != catch_up.server):
            catch_up.cancel()
        if not p.answered:
            continue
        if p.name in refused:
            p.refused_for = refused[p.name]
            p.error = refused_reason(p.name, p.refused_for, p.device_id)
            continue
        if should_stop():
            p.polled = False
            continue
        try:
            src, listing, chosen = connect(db, link.client, settings, infos[p.name], skip=is_copy)
            livepoll.poll_live(db, src, listing, chosen, should_stop)
        except Exception as e:
            p.error = failure(e, "poll")
            continue
        work.append((link, p, src, chosen))
    # 4. History: each device with gaps has a catch-up of its own, begun in
    # the poll that finds them (a device back after days: the poll it answers
    # in), so no device's history waits for another's, nor holds up a poll.
    for link, p, src, chosen in work:
        try:
            p.last_event_ts = last_event_ts(db, src.server, chosen)
            p.gaps_left = history.gaps_left(db, src.server, chosen)
        except sqlite3.Error as e:
            p.error = p.error or f"database: {e}"
        catch_up = link.catch_up
        if catch_up is not None and not catch_up.running:
            link.catch_up = None
            if catch_up.error:  # said once; the next catch-up resumes where it stopped
                p.error = p.error or f"catching up: {catch_up.error}"
        if link.catch_up is None and p.gaps_left and not p.error and not should_stop():
            link.catch_up = CatchUp.start(p.name, settings.db_path, src, chosen, should_stop)
        p.ok = not p.error
    return polls


def _identify(db, clients: Sequence[AWClient], polls: Sequence[DevicePoll], should_stop: ShouldStop
              ) -> tuple[dict[str, dict[str, Any]], dict[str, str], Callable[[str], bool]]:
    """The first steps of a poll over every device (the watcher's and each_device's).

    1. Who answers, and as whom: each device's `/api/0/info` (its client in
    `clients`), in order, filling its poll's answered, device_id, hostname
    and error; once a stop is asked, the devices left are not polled.
    2. Clones: a device not answering now counts with the id it last had.
    Returns the answers by device name, the refused (later name -> first
    name) and the test for aw-sync copies of the devices followed."""
    infos: dict[str, dict[str, Any]] = {}
    for client, p in zip(clients, polls, strict=True):
        if should_stop():
            p.polled = False
            continue
        try:
            info = client.info()
        except Exception as e:
            p.error = failure(e, "poll")
            continue
        p.answered = True
        p.device_id, p.hostname = servers.identity_of(info)
        infos[p.name] = info
    identities = []
    for p in polls:
        device_id, hostname = (p.device_id, p.hostname) if p.answered else recorded_identity(db, p.name)
        identities.append((p.name, device_id, hostname))
    refused = duplicate_ids((name, device_id) for name, device_id, _ in identities)
    followed = followed_map([i for i in identities if i[0] not in refused])

    def is_copy(bucket_id: str) -> bool:
        return copy_of(bucket_id, followed) is not None

    return infos, refused, is_copy


def summary(polls: Sequence[DevicePoll]) -> tuple[bool, str]:
    """(ok, error) of a poll over every device, for watcher.last_poll_ok_at
    and watcher.last_error: ok when every `always` device was polled well
    or, with none, any device was. A refused clone does not count (its reason
    is its own, in device.<name>.last_error and the health check). When not
    ok, the error names every failing device."""
    counted = [p for p in polls if p.refused_for is None and p.polled]
    always = [p for p in counted if p.expect is Expect.ALWAYS]
    ok = all(p.ok for p in always) if always else any(p.ok for p in counted)
    if ok:
        return True, ""
    failing = [f"{p.name}: {p.error or 'not polled'}" for p in counted if not p.ok]
    return False, "; ".join(failing) or "no device to poll"


def record_devices(db, polls: Sequence[DevicePoll], now: str) -> str | None:
    """Each device's meta after a poll, inside the heartbeat's transaction.
    A key is rewritten only when its value changed (but last_poll_ok_at,
    the time of this good poll). Returns the newest event over every device."""

    newest: str | None = None
    for p in polls:
        if not p.polled:
            continue
        stored = device_meta(db, p.name)  # one query a device, not one a key
        want = {"last_error": p.error}
        if p.answered:
            if p.refused_for is None and p.device_id:
                servers.remember_device(db, p.name, p.device_id, stored.get("device_id"), now)
            want["device_id"] = p.device_id or ""
            want["hostname"] = p.hostname or ""
        if p.ok:
            want["reachable"] = "yes"
            want["unreachable_since"] = ""
            if p.last_event_ts is not None:
                want["last_event_ts"] = p.last_event_ts
        elif p.refused_for is not None:
            want["reachable"] = "yes"  # it answers; it is refused, not away
            want["unreachable_since"] = ""
        else:
            want["reachable"] = "no"
            if not stored.get("unreachable_since"):
                # The first failed poll after the last good one (or the first try).
                want["unreachable_since"] = now
        for field, value in want.items():
            if stored.get(field) != value:
                set_meta(db, keys.device_key(p.name, field), value)
        if p.ok:
            set_meta(db, keys.device_key(p.name, "last_poll_ok_at"), now)
        if p.refused_for is None:
            ts = want.get("last_event_ts", stored.get("last_event_ts"))
            if ts and (newest is None or ts > newest):
                newest = ts
    return newest


@dataclass
class DeviceRun:
    """One device's part in a command over every device (backfill, reconcile)."""

    name: str
    ok: bool  # covered; False: skipped (not answering, a refused clone) or stopped by AW
    line: str  # what was done or why not, each line beginning with the device's name


def each_device(db, settings: Settings, work: Callable[[AWClient, dict[str, Any], Callable[[str], bool]], str],
                *, should_stop: ShouldStop = never, verb: str = "read") -> list[DeviceRun]:
    """Run `work(client, info, skip)` (it returns what it did, in lines) over every device of the `devices`
    setting, in order, each through a client of its own (every request
    bounded by aw_timeout_seconds). Every device's info is asked first, as
    the watcher does, so that clones are told apart by what the servers say
    now (a device not answering counts with the device_id it last had): a
    refused clone is not read. A device that does not answer is skipped with
    its reason; AW failing half-way stops that device only (what was stored
    stays: the commands resume). `skip` leaves out aw-sync copies of every
    followed device. A stop asked leaves the devices not begun out."""
    devices = settings.devices
    clients = [AWClient(d.url, settings.aw_timeout_seconds, api_key=d.api_key) for d in devices]
    polls = [DevicePoll(d.name, d.expect) for d in devices]
    runs: list[DeviceRun] = []
    try:
        infos, refused, skip = _identify(db, clients, polls, should_stop)
        for client, p in zip(clients, polls, strict=True):
            name = p.name
            if should_stop() or not p.polled:
                break
            if not p.answered:
                runs.append(DeviceRun(name, False, f"{name}: not {verb}, not answering: {p.error}"))
            elif name in refused:
                runs.append(DeviceRun(name, False, f"{name}: not {verb}: "
                                      + refused_reason(name, refused[name], p.device_id)))
            else:
                servers.remember_device(db, name, servers.key_of(infos[name]), recorded_identity(db, name)[0],
                                        now_iso())  # its rows are stored under that id now: coverage reads it
                try:
                    done = work(client, infos[name], skip)
                    runs.append(DeviceRun(name, True, "\n".join(f"{name}: {line}" for line in done.splitlines())))
                except AWError as e:
                    runs.append(DeviceRun(name, False, f"{name}: stopped: {e}; what was stored stays, "
                                                       "run the command again to resume"))
    finally:
        for client in clients:
            client.close()
    return runs


def reconcile_devices(db, settings: Settings, *, should_stop: ShouldStop = never) -> list[str]:
    """The daemon's reconciliation over every device (each_device): one line
    per device; reconcile.summary holds the last device's."""
    from lifelog.ingest import reconcile

    def work(client: AWClient, info: dict[str, Any], skip: Callable[[str], bool]) -> str:
        return reconcile.reconcile(db, client, settings, should_stop=should_stop, info=info, skip=skip).summary()

    return [run.line for run in each_device(db, settings, work, should_stop=should_stop, verb="reconciled")]
