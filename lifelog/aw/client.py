"""Bounded HTTP calls to the ActivityWatch server.

LifeLog does not use aw-client for this: it sets no HTTP timeouts (a hung
server blocks a call for ever) and its constructor takes a per-name lock file
and calls sys.exit when another process holds it. Every call here has a
connect and a read timeout of `aw_timeout_seconds`, and the whole answer
must come within it too (a page of events: within EVENTS_TOTAL_TIMEOUTS times it).

Failures come in two kinds, which the health check tells apart:
`AWUnreachable` (no answer: refused, name not found, timeout, reset) and
`AWBadAnswer` (an answer, but not HTTP 200 with the JSON we expect); a 401
or 403 is `AWNeedsKey`, a bad answer whose reason names the fix.

HTTP goes through `lifelog.aw.http` (the standard library only: `requests`
alone took longer to import than `lifelog status` may take in all).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from lifelog.aw import http
from lifelog.core import redact
from lifelog.core.timeutil import to_aw_param

# A page of events may be megabytes; it has this many timeouts to arrive whole.
EVENTS_TOTAL_TIMEOUTS = 10


class AWError(Exception):
    """A call to AW failed; str() is a one-line reason for people and meta."""


class AWUnreachable(AWError):
    """No answer: connection refused, name not found, timeout, reset."""


class AWBadAnswer(AWError):
    """The server answered, but not with HTTP 200 and the JSON expected."""

    def __init__(self, reason: str, status_code: int | None = None):
        super().__init__(reason)
        self.status_code = status_code


class AWNeedsKey(AWBadAnswer):
    """AW answered 401 or 403: it wants an API key, or not the one LifeLog sent."""


def auth_reason(status: int, path: str, key_set: bool) -> str:
    """What a 401/403 means, and the fix (README "A secured ActivityWatch")."""
    if key_set:
        return (f"HTTP {status} from {path}: ActivityWatch rejected the API key set in aw_api_key; "
                "check it against api_key in the [auth] section of AW's config")
    return (f"HTTP {status} from {path}: ActivityWatch requires an API key; "
            "set aw_api_key to the api_key in the [auth] section of AW's config")


class AWClient:
    """A small client for the AW REST API over one kept-alive connection.

    Not shared across threads: a thread of its own uses `clone()`. With
    `api_key`, every request carries `Authorization: Bearer <key>`
    (aw-server-rust's `[auth] api_key`); the key is in no message.
    """

    def __init__(self, url: str, timeout: float, *, api_key: str = ""):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._api_key = api_key
        redact.remember(api_key)  # whatever prints an error later must not show it
        self._conn = http.Connection(self.url, timeout)
        # The path the URL may carry (AW behind a reverse proxy at /aw).
        self._prefix = urlsplit(self.url).path.rstrip("/")
        # The Host header is the URL's host and port: AW rejects any but
        # localhost, 127.0.0.1 and its own host name, which is what users give.
        self._headers = {"Accept": "application/json", "User-Agent": "lifelog"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"

    @classmethod
    def from_settings(cls, settings) -> AWClient:
        """The client every part uses: aw_url, aw_timeout_seconds and aw_api_key."""
        return cls(settings.aw_url, settings.aw_timeout_seconds, api_key=settings.aw_api_key)

    def __repr__(self) -> str:
        return f"AWClient({http.redact_url(self.url)!r}, {self.timeout!r})"

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> AWClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get_raw(self, path: str, params: dict[str, Any] | None = None, *,
                total_timeouts: float = 1) -> http.Response:
        """GET, bounded twice: no silence longer than the timeout, and the whole
        answer within `total_timeouts` times it (a server that trickles a byte
        now and then must not hold a health check for ever). Raises
        AWUnreachable when nothing whole answers."""
        target = self._prefix + path + (f"?{urlencode(params)}" if params else "")
        try:
            return self._conn.request("GET", target, self._headers, total=self.timeout * total_timeouts)
        except http.NoAnswer as e:
            raise AWUnreachable(str(e)) from None
        except http.BadAnswer as e:
            raise AWBadAnswer(str(e)) from None

    def get_json(self, path: str, params: dict[str, Any] | None = None, *, expect: type = object,
                 total_timeouts: float = 1) -> Any:
        """GET and decode JSON of the expected type, or raise AWError."""
        resp = self.get_raw(path, params, total_timeouts=total_timeouts)
        self._check_auth(resp, path)
        return decode(resp, path, expect)

    def _check_auth(self, resp: http.Response, path: str) -> None:
        if resp.status in (401, 403):
            raise AWNeedsKey(auth_reason(resp.status, path, bool(self._api_key)), resp.status)

    # -- the endpoints LifeLog uses -------------------------------------------

    def info(self) -> dict[str, Any]:
        return self.get_json("/api/0/info", expect=dict)

    def buckets(self) -> dict[str, dict[str, Any]]:
        # Without the trailing slash the server answers 308.
        return self.get_json("/api/0/buckets/", expect=dict)

    def events(
        self,
        bucket_id: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = -1,
    ) -> list[dict[str, Any]]:
        """Events newest first. AW clips events overlapping start/end: see lifelog.ingest.merge."""
        params: dict[str, Any] = {"limit": limit}
        if start is not None:
            params["start"] = to_aw_param(start)
        if end is not None:
            params["end"] = to_aw_param(end)
        return self.get_json(f"/api/0/buckets/{quote(bucket_id, safe='')}/events", params, expect=list,
                             total_timeouts=EVENTS_TOTAL_TIMEOUTS)

    def event(self, bucket_id: str, event_id: int, *, missing_on_500: bool = False) -> dict[str, Any] | None:
        """One event, never clipped; None when AW no longer has it.

        aw-server-python answers 404 for a missing id; aw-server-rust answers
        500 (its lookup error is mapped to InternalError), so a caller talking
        to rust passes missing_on_500.
        """
        path = f"/api/0/buckets/{quote(bucket_id, safe='')}/events/{int(event_id)}"
        resp = self.get_raw(path)
        self._check_auth(resp, path)
        if resp.status == 404 or (missing_on_500 and resp.status == 500):
            return None
        body = decode(resp, path, object)
        if body is None:
            return None
        if not isinstance(body, dict):
            raise AWBadAnswer(f"{path} answered JSON {type(body).__name__}, expected dict", resp.status)
        return body

    def clone(self) -> AWClient:
        """A client of its own, for another thread (a connection is not shared)."""
        return AWClient(self.url, self.timeout, api_key=self._api_key)

    def count(self, bucket_id: str, *, start: datetime | None = None, end: datetime | None = None) -> int:
        params: dict[str, Any] = {}
        if start is not None:
            params["start"] = to_aw_param(start)
        if end is not None:
            params["end"] = to_aw_param(end)
        return self.get_json(f"/api/0/buckets/{quote(bucket_id, safe='')}/events/count", params, expect=int)


def decode(resp: http.Response, path: str, expect: type = object) -> Any:
    """The JSON body of a 200 answer, of type `expect`, or AWBadAnswer saying why."""
    if resp.status != 200:
        raise AWBadAnswer(f"HTTP {resp.status} from {path}", resp.status)
    try:
        body = json.loads(resp.body)
    except ValueError:
        kind = "an HTML page" if resp.body.lstrip()[:1] == b"<" else "not JSON"
        raise AWBadAnswer(f"{path} answered {kind}", resp.status) from None
    if expect is int:
        ok = isinstance(body, int) and not isinstance(body, bool)
    else:
        ok = isinstance(body, expect)
    if not ok:
        raise AWBadAnswer(
            f"{path} answered JSON {type(body).__name__}, expected {expect.__name__}", resp.status
        )
    return body
