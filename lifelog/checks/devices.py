"""The devices as the watcher recorded them (SPEC section 14), read from meta
for the view side: the `devices` status component, sources and coverage per
device, the per-device metrics. Pure functions of the meta table and the
settings; with `devices` empty there is nothing here to show.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import NamedTuple

from lifelog.core import keys
from lifelog.core.devices import Device, DeviceSeen, duplicate_ids, followed_map, judge_device
from lifelog.core.settings import Settings
from lifelog.core.timeutil import try_parse_iso
from lifelog.core.verdicts import Level

Meta = Mapping[str, "str | None"]


def _get(meta: Meta, name: str, field: str) -> str | None:
    return meta.get(keys.device_key(name, field)) or None


def _epoch(meta: Meta, name: str, field: str) -> float | None:
    t = try_parse_iso(_get(meta, name, field))
    return None if t is None else t.timestamp()


class DeviceView(NamedTuple):
    device: Device
    seen: DeviceSeen
    device_id: str | None
    hostname: str | None
    last_event_ts: str | None
    last_error: str

    @property
    def name(self) -> str:
        return self.device.name

    @property
    def answers(self) -> bool:
        """Reached at its latest poll, and not a refused clone: its rows are its own."""
        return bool(self.seen.reachable) and self.seen.refused_for is None


def refused(meta: Meta, devices: tuple[Device, ...]) -> dict[str, str]:
    """Devices refused for another's device_id (later name -> first name), by the ids recorded."""
    return duplicate_ids((d.name, _get(meta, d.name, "device_id")) for d in devices)


def views(meta: Meta, settings: Settings) -> list[DeviceView]:
    """Every device of the `devices` setting, in the table's order; [] without it."""
    devices = settings.devices
    clones = refused(meta, devices)
    out = []
    for d in devices:
        reachable_text = _get(meta, d.name, "reachable")
        reachable = None if reachable_text is None else reachable_text == "yes"
        since = _epoch(meta, d.name, "unreachable_since")
        ok_at = _epoch(meta, d.name, "last_poll_ok_at")
        seen = DeviceSeen(reachable, since, ok_at, clones.get(d.name))
        out.append(DeviceView(d, seen, _get(meta, d.name, "device_id"), _get(meta, d.name, "hostname"),
                              _get(meta, d.name, "last_event_ts"), _get(meta, d.name, "last_error") or ""))
    return out


class DeviceLine(NamedTuple):
    """One device's line of the `devices` status component."""

    name: str
    expect: str
    level: Level
    reason: str

    def to_json(self) -> dict:
        return {"name": self.name, "expect": self.expect, "level": self.level.name, "reason": self.reason}


def judge_all(meta: Meta, settings: Settings, now: datetime) -> list[DeviceLine]:
    """Each device's verdict at `now` (core.devices.judge_device)."""
    at = now.timestamp()
    return [DeviceLine(v.name, v.device.expect.value,
                       *judge_device(at, v.device, v.seen, unreachable_minutes=settings.device_unreachable_minutes,
                                     absent_days=settings.device_absent_days))
            for v in views(meta, settings)]


def followed(meta: Meta, settings: Settings) -> dict[str, str]:
    """Every followed device's device_id and host name (lowered) -> its name,
    for core.devices.copy_of; a refused clone follows nothing."""
    clones = refused(meta, settings.devices)
    return followed_map((d.name, _get(meta, d.name, "device_id"), _get(meta, d.name, "hostname"))
                        for d in settings.devices if d.name not in clones)
