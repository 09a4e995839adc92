"""The dead man's switch: `ping_url`, pinged after watchdog passes.

A monitor on another machine (healthchecks.io or a self-hosted Healthchecks,
an Uptime Kuma push monitor) expects a ping every so often and alerts when
pings stop: when this machine, or LifeLog, is down, that silence is the
alert nothing local can send.

A pass pings when it is the first, when the overall level changed since the
last ping, or when `ping_interval_seconds` have passed since it. The decision
is claimed in one write transaction (of two passes deciding at once, one
pings), and the ping is sent after the pass has acted and released its lock,
bounded by `aw_timeout_seconds`; its failure is recorded, never raised.

The healthchecks convention: POST the one-line summary to `ping_url` (OK,
WARNING) or `ping_url/fail` (CRITICAL, UNKNOWN). A URL holding `{status}` or
`{msg}` is a template instead (Uptime Kuma): `{status}` becomes `up` or
`down`, `{msg}` the URL-encoded summary, sent as a GET. The URL carries a
token: it is shown only through `redact_url`.

The ping goes out through the proxy the environment names (HTTP_PROXY,
HTTPS_PROXY, NO_PROXY), as other programs on a machine behind one do; AW
calls never do (lifelog.aw.transport).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import NamedTuple
from urllib.parse import quote

from lifelog.checks.liveness import CLOCK_SKEW, age, ts
from lifelog.core import keys
from lifelog.core.redact import redact_url
from lifelog.core.settings import Settings
from lifelog.core.timeutil import to_iso, utcnow
from lifelog.core.verdicts import Level
from lifelog.db.database import transaction
from lifelog.db.meta import read_meta, set_meta

log = logging.getLogger("lifelog.ping")


class Sent(enum.StrEnum):
    OK = "ok"
    FAIL = "fail"
    UP = "up"
    DOWN = "down"


class Ping(NamedTuple):
    method: str
    url: str
    body: bytes | None
    sent: Sent


def is_template(url: str) -> bool:
    return "{status}" in url or "{msg}" in url


def ping_for(url: str, level: Level, summary: str) -> Ping:
    """Pure: what to send for this level and summary."""
    healthy = level in (Level.OK, Level.WARNING)
    line = summary.splitlines()[0] if summary else ""
    if is_template(url):
        status = Sent.UP if healthy else Sent.DOWN
        return Ping("GET", url.replace("{status}", str(status)).replace("{msg}", quote(line, safe="")),
                    None, status)
    if healthy:
        return Ping("POST", url, line.encode("utf-8"), Sent.OK)
    return Ping("POST", url.rstrip("/") + "/fail", line.encode("utf-8"), Sent.FAIL)


def due(meta: Mapping[str, str | None], level: Level, now: datetime, interval_seconds: float) -> bool:
    """Pure: the first ping, a level change, or the interval passed.

    A last ping further in the future than the clock skew (the clock stepped
    back) counts as long ago, so a clock step never silences the switch."""
    last = age(ts(meta, keys.PING_LAST_AT), now)
    if last is None or meta.get(keys.PING_LAST_LEVEL) != level.name:
        return True
    return last >= interval_seconds or last < -CLOCK_SKEW


def send(ping: Ping, timeout: float) -> str:
    """Send it, bounded; the HTTP status as text, or the error (without the URL's token)."""
    from lifelog.aw import transport  # requests: imported only by a pass that pings

    headers = {"Content-Type": "text/plain; charset=utf-8", "User-Agent": "lifelog"}
    with transport.session() as session:
        try:
            response = transport.call(session, ping.method, ping.url, headers=headers, body=ping.body,
                                      timeout=timeout, total=timeout, env_proxies=True)
        except transport.HTTPError as e:
            return str(e)
        except ValueError as e:  # a URL the request cannot be made of
            return str(e)
    return str(response.status_code)


def ping_after_pass(db, settings: Settings, report, trigger: str, context=None, meta=None) -> None:
    """After each watchdog pass, when `ping_url` is set and a ping is due."""
    if not settings.ping_url or trigger != "watchdog":
        return
    now = utcnow()
    ping = ping_for(settings.ping_url, report.level, report.summary)
    with transaction(db):  # the claim: of two passes deciding at once, one pings
        if not due(read_meta(db, ("ping.",)), report.level, now, settings.ping_interval_seconds):
            return
        set_meta(db, keys.PING_LAST_AT, to_iso(now))
        set_meta(db, keys.PING_LAST_LEVEL, report.level.name)
        set_meta(db, keys.PING_LAST_SENT, str(ping.sent))
    result = send(ping, settings.aw_timeout_seconds)
    set_meta(db, keys.PING_LAST_RESULT, result)
    if not result.startswith("2"):
        log.warning("ping to %s: %s", redact_url(settings.ping_url), result)
