"""Devices (SPEC section 14): the AW servers one database follows.

Pure parts only: reading the `devices` setting, what counts as a loopback
URL, which buckets are aw-sync copies of a device followed directly, and the
`devices` status component's verdict for one device at `now`. The code that
polls, records and prints builds on these.
"""

from __future__ import annotations

import enum
import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from lifelog.core.errors import UsageError
from lifelog.core.timeutil import format_span
from lifelog.core.urls import BadURL, http_url
from lifelog.core.verdicts import Level

SETTING = "devices"
# The one device of `aw_url` when `devices` is empty.
LOCAL = "local"
NAME_PATTERN = re.compile(r"[a-z0-9_-]{1,32}")
FIELDS = frozenset({"url", "api_key", "expect"})
# aw-sync names the buckets it copies `<bucket>-synced-from-<host>`.
SYNC_MARK = "-synced-from-"


class Expect(enum.StrEnum):
    """How often a device should answer."""

    ALWAYS = "always"  # a desktop, a home server: not answering is a problem
    SOMETIMES = "sometimes"  # a laptop that sleeps and travels: not answering is normal


class Device(NamedTuple):
    name: str
    url: str
    api_key: str
    expect: Expect

    def __repr__(self) -> str:
        # The key is a secret: never in a repr that may reach a log or an error.
        key = "(set)" if self.api_key else ""
        return f"Device(name={self.name!r}, url={self.url!r}, api_key={key!r}, expect={self.expect.value!r})"


def is_loopback(url: str) -> bool:
    """`localhost`, 127.0.0.0/8 or ::1 (SPEC section 14)."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _device_url(name: str, raw: Any, where: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise UsageError(f"{where}: device {name!r} needs a url, e.g. url = \"http://127.0.0.1:5600\"")
    url = raw.strip().rstrip("/")
    try:
        parts = http_url(url)
    except BadURL:
        raise UsageError(f"{where}: device {name!r} has an unusable url {url!r}: "
                         "give http:// or https:// and a host") from None
    if parts.username or parts.password:
        # A password in the URL would be printed wherever the URL is.
        raise UsageError(f"{where}: device {name!r}: put credentials in api_key, not in the url")
    return url


def _device_key(name: str, raw: Any, where: str) -> str:
    if not isinstance(raw, str):
        raise UsageError(f"{where}: device {name!r}: api_key must be text, got a value of type "
                         f"{type(raw).__name__}")
    key = raw.strip()
    if not all("!" <= c <= "~" for c in key):
        # It travels in an HTTP header: printable ASCII, no spaces.
        raise UsageError(f"{where}: device {name!r}: api_key must be printable ASCII without spaces")
    return key


def parse_devices(raw: Any, where: str) -> tuple[Device, ...]:
    """The `devices` setting, checked: a TOML table, or from the environment
    a JSON object, of name -> {url, api_key, expect}. Order is kept: the first
    device is the machine LifeLog runs beside. `where` names the source
    (a file or an environment variable) for the error message."""
    if isinstance(raw, str):
        if not raw.strip():
            return ()
        try:
            raw = json.loads(raw)
        except ValueError:
            raise UsageError(f"{where}: setting {SETTING} must be a JSON object of device name to "
                             '{"url": ..., "api_key": ..., "expect": ...}') from None
    if not isinstance(raw, Mapping):
        raise UsageError(f"{where}: setting {SETTING} must be a table of device name to "
                         f"{{url, api_key, expect}}, got a value of type {type(raw).__name__}")
    devices = []
    for name, fields in raw.items():
        if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
            raise UsageError(f"{where}: device name {name!r} must be 1-32 characters of a-z 0-9 _ -")
        if not isinstance(fields, Mapping):
            raise UsageError(f"{where}: device {name!r} must be a table with a url")
        unknown = sorted(str(f) for f in fields if f not in FIELDS)
        if unknown:
            raise UsageError(f"{where}: device {name!r} has unknown field {unknown[0]!r} "
                             f"(known: {', '.join(sorted(FIELDS))})")
        url = _device_url(name, fields.get("url"), where)
        key = _device_key(name, fields.get("api_key", ""), where)
        expect_raw = fields.get("expect")
        if expect_raw is None:
            expect = Expect.ALWAYS if is_loopback(url) else Expect.SOMETIMES
        else:
            try:
                expect = Expect(expect_raw)
            except ValueError:
                raise UsageError(f"{where}: device {name!r}: expect must be 'always' or 'sometimes', "
                                 f"got {expect_raw!r}") from None
        devices.append(Device(name, url, key, expect))
    return tuple(devices)


def synced_from(bucket_id: str) -> str | None:
    """The host an aw-sync copy came from (`aw-watcher-window_laptop-synced-from-laptop`
    gives `laptop`), or None for a bucket that is not a copy."""
    head, mark, origin = bucket_id.rpartition(SYNC_MARK)
    return origin if mark and head and origin else None


def copy_of(bucket_id: str, followed: Mapping[str, str]) -> str | None:
    """The name of the followed device a bucket is an aw-sync copy of, else None.

    `followed` maps each followed device's host name and `device_id` to its
    name. Host names compare without case: AW's clients and aw-sync spell one
    machine differently (activitywatch#302)."""
    origin = synced_from(bucket_id)
    if origin is None:
        return None
    lowered = {k.lower(): v for k, v in followed.items() if k}
    return lowered.get(origin.lower())


def followed_map(identities: Iterable[tuple[str, str | None, str | None]]) -> dict[str, str]:
    """The `followed` of copy_of: each (name, device_id, host name) given,
    its device_id and host name -> its name. Keys are lowered (copy_of
    compares without case); the first device keeps a key two share. The
    callers leave out a refused clone: it follows nothing."""
    followed: dict[str, str] = {}
    for name, device_id, hostname in identities:
        for key in (device_id, hostname):
            if key:
                followed.setdefault(key.lower(), name)
    return followed


def duplicate_ids(identities: Iterable[tuple[str, str | None]]) -> dict[str, str]:
    """Devices refused because an earlier one in the table answered with the
    same `device_id`: later name -> the name that holds the id first."""
    first: dict[str, str] = {}
    refused: dict[str, str] = {}
    for name, device_id in identities:
        if not device_id:
            continue
        if device_id in first:
            refused[name] = first[device_id]
        else:
            first[device_id] = name
    return refused


def refused_reason(name: str, first: str, device_id: str | None) -> str:
    """Why a clone (duplicate_ids) is refused, and what to do: in its
    last_error, its health check and the commands over every device."""
    return (f"{name} answers with device_id {device_id} of {first}, listed first: nothing of {name} is "
            "stored (a cloned machine, or two names for one server); remove one from devices")


class DeviceSeen(NamedTuple):
    """What the meta table says of one device, as epoch seconds."""

    reachable: bool | None  # None: never polled
    # The first failed poll after the latest good one; for a device never
    # reached, LifeLog's first try (keys.DOCS).
    unreachable_since: float | None
    last_poll_ok_at: float | None
    refused_for: str | None = None  # the device holding its device_id first


def judge_device(now: float, device: Device, seen: DeviceSeen, *,
                 unreachable_minutes: float, absent_days: float) -> tuple[Level, str]:
    """The `devices` component's verdict for one device at `now` (SPEC section 14).

    An `always` device unreachable for `unreachable_minutes` is WARNING, for
    four times that CRITICAL. A `sometimes` device that does not answer is OK
    (off or away) until it has not been seen for `absent_days`."""
    name = device.name
    if seen.refused_for:
        return Level.WARNING, (f"{name} answers with the device_id of {seen.refused_for}: "
                               "nothing of it is stored (a clone, or two names for one server)")
    if seen.reachable is None:
        return Level.OK, f"{name} not polled yet"
    if seen.reachable:
        return Level.OK, f"{name} answers"
    if device.expect is Expect.ALWAYS:
        since = seen.unreachable_since
        down = max(0.0, now - since) if since is not None else 0.0
        limit = unreachable_minutes * 60
        text = f"{name} unreachable for {format_span(down)}"
        if down >= 4 * limit:
            return Level.CRITICAL, text
        if down >= limit:
            return Level.WARNING, text
        return Level.OK, f"{text} (within {format_span(limit)})"
    # Never reached: away since LifeLog first tried it.
    last = seen.last_poll_ok_at if seen.last_poll_ok_at is not None else seen.unreachable_since
    away = max(0.0, now - last) if last is not None else 0.0
    if away >= absent_days * 86400:
        return Level.WARNING, f"{name} not seen for {format_span(away)}: more than {absent_days:g} days"
    return Level.OK, f"{name} not seen for {format_span(away)}: off or away"
