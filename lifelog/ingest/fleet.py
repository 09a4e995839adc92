"""One watcher, every device (SPEC section 14): one poll over all the AW
servers of the `devices` setting.

A poll asks every device's `/api/0/info` first (each call bounded by
`aw_timeout_seconds`, so a device that does not answer costs the others at
most that), then tells clones apart (two names answering with one
`device_id`: the later one in the table is refused, nothing of it stored),
then polls every answering device's live buckets, and only then spends the
poll's history budget (lifelog.ingest.livepoll.GAP_BUDGET_SECONDS) on gaps,
starting at another device each poll. So a device back after days is caught
up from where LifeLog left it (its sync_state rows), a page at a time, while
the others' live polls keep their pace. aw-sync copies of a followed device
(`<bucket>-synced-from-<host or device_id>`) are never chosen: that device's
own bucket is stored, directly.

Each device has its own AWClient, kept across polls (one kept-alive
connection per server). Per-device meta (`device.<name>.*`) is written with
the watcher's heartbeat (lifelog.ingest.watcher.record_heartbeat).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from lifelog.aw.client import AWClient, AWError
from lifelog.core import keys
from lifelog.core.devices import Device, Expect, copy_of, duplicate_ids
from lifelog.core.settings import Settings
from lifelog.core.timeutil import now_iso
from lifelog.db.meta import get_meta, set_meta
from lifelog.ingest import history, livepoll, servers
from lifelog.ingest.store import ShouldStop, connect, last_event_ts, never

log = logging.getLogger("lifelog.watcher")


@dataclass
class Link:
    """A device and its client, kept across polls."""

    device: Device
    client: AWClient

    @property
    def name(self) -> str:
        return self.device.name


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


def refused_reason(name: str, first: str, device_id: str | None) -> str:
    return (f"{name} answers with device_id {device_id} of {first}, listed first: nothing of {name} is "
            "stored (a cloned machine, or two names for one server); remove one from devices")


def recorded_identity(db, name: str) -> tuple[str | None, str | None]:
    """The device_id and host name a device last answered with (meta)."""
    return (get_meta(db, keys.device_key(name, "device_id")) or None,
            get_meta(db, keys.device_key(name, "hostname")) or None)


def followed_map(identities: Sequence[tuple[str, str | None, str | None]]) -> dict[str, str]:
    """Every followed device's device_id and host name -> its name (for
    core.devices.copy_of, which compares without case: so does this); the
    first device keeps a key two share."""
    followed: dict[str, str] = {}
    for name, device_id, hostname in identities:
        for key in (device_id, hostname):
            if key:
                followed.setdefault(key.lower(), name)
    return followed


def _failure(e: Exception) -> str:
    if isinstance(e, AWError):
        return str(e)
    if isinstance(e, sqlite3.OperationalError):
        return f"database: {e}"  # typically a user holding the write lock past the busy timeout
    log.exception("poll failed")  # a bug must not kill ingestion; the log has the trace
    return f"{type(e).__name__}: {e}"


def poll_devices(db, links: Sequence[Link], settings: Settings, *, should_stop: ShouldStop = never,
                 turn: int = 0) -> list[DevicePoll]:
    """One poll of every device, in the table's order; never raises for what
    a device or the database does (each device's failure is its own)."""
    polls = [DevicePoll(link.name, link.device.expect) for link in links]
    infos: dict[str, dict[str, Any]] = {}
    # 1. Who answers, and as whom.
    for link, p in zip(links, polls, strict=True):
        if should_stop():
            p.polled = False
            continue
        try:
            info = link.client.info()
        except Exception as e:
            p.error = _failure(e)
            continue
        p.answered = True
        p.device_id = servers.key_of(info)
        host = info.get("hostname")
        p.hostname = str(host) if host else None
        infos[p.name] = info
    # 2. Clones: a device not answering now counts with the id it last had.
    identities = []
    for p in polls:
        device_id, hostname = (p.device_id, p.hostname) if p.answered else recorded_identity(db, p.name)
        identities.append((p.name, device_id, hostname))
    refused = duplicate_ids((name, device_id) for name, device_id, _ in identities)
    followed = followed_map([i for i in identities if i[0] not in refused])

    def is_copy(bucket_id: str) -> bool:
        return copy_of(bucket_id, followed) is not None

    # 3. Live polls of every answering device, before any history.
    work = []
    for link, p in zip(links, polls, strict=True):
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
            p.error = _failure(e)
            continue
        work.append((p, src, chosen))
    # 4. History within one budget, begun at another device each poll, so
    # one device's days of catching up never hold another's back for good.
    deadline = time.monotonic() + livepoll.GAP_BUDGET_SECONDS
    if work:
        at = turn % len(work)
        for p, src, chosen in work[at:] + work[:at]:
            if should_stop() or time.monotonic() >= deadline:
                break
            try:
                history.fill_gaps(db, src, chosen, should_stop=should_stop, deadline=deadline)
            except Exception as e:
                p.error = _failure(e)
    for p, src, chosen in work:
        try:
            p.last_event_ts = last_event_ts(db, src.server, chosen)
            p.gaps_left = history.gaps_left(db, src.server, chosen)
        except sqlite3.Error as e:
            p.error = p.error or f"database: {e}"
        p.ok = not p.error
    return polls


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

    def put(name: str, field: str, value: str) -> None:
        key = keys.device_key(name, field)
        if get_meta(db, key) != value:
            set_meta(db, key, value)

    newest: str | None = None
    for p in polls:
        if not p.polled:
            continue
        put(p.name, "last_error", p.error)
        if p.answered:
            if p.refused_for is None and p.device_id:
                servers.remember_device(db, p.name, p.device_id, get_meta(db, keys.device_key(p.name, "device_id")),
                                        now)
            put(p.name, "device_id", p.device_id or "")
            put(p.name, "hostname", p.hostname or "")
        if p.ok:
            put(p.name, "reachable", "yes")
            put(p.name, "unreachable_since", "")
            set_meta(db, keys.device_key(p.name, "last_poll_ok_at"), now)
            if p.last_event_ts is not None:
                put(p.name, "last_event_ts", p.last_event_ts)
        elif p.refused_for is not None:
            put(p.name, "reachable", "yes")  # it answers; it is refused, not away
            put(p.name, "unreachable_since", "")
        else:
            put(p.name, "reachable", "no")
            if not get_meta(db, keys.device_key(p.name, "unreachable_since")):
                # The first failed poll after the last good one (or the first try).
                set_meta(db, keys.device_key(p.name, "unreachable_since"), now)
        if p.refused_for is None:
            ts = get_meta(db, keys.device_key(p.name, "last_event_ts"))
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
    runs: list[DeviceRun] = []
    try:
        infos: dict[str, dict[str, Any]] = {}
        errors: dict[str, str] = {}
        for device, client in zip(devices, clients, strict=True):
            if should_stop():
                return runs
            try:
                infos[device.name] = client.info()
            except AWError as e:
                errors[device.name] = str(e)
        identities: list[tuple[str, str | None, str | None]] = []
        for device in devices:
            info = infos.get(device.name)
            if info is not None:
                host = info.get("hostname")
                identities.append((device.name, servers.key_of(info), str(host) if host else None))
            else:
                identities.append((device.name, *recorded_identity(db, device.name)))
        refused = duplicate_ids((name, device_id) for name, device_id, _ in identities)
        followed = followed_map([i for i in identities if i[0] not in refused])

        def skip(bucket_id: str) -> bool:
            return copy_of(bucket_id, followed) is not None

        for device, client in zip(devices, clients, strict=True):
            name = device.name
            if should_stop():
                break
            if name in errors:
                runs.append(DeviceRun(name, False, f"{name}: not {verb}, not answering: {errors[name]}"))
            elif name in refused:
                device_id = next(i[1] for i in identities if i[0] == name)
                runs.append(DeviceRun(name, False, f"{name}: not {verb}: "
                                      + refused_reason(name, refused[name], device_id)))
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
