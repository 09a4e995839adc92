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

HTTP is `requests`, through `lifelog.aw.transport` (the whole-call bound,
no proxy from the environment: AW is usually on loopback, and errors
without secrets). It is imported when a client is made, not with this
module, which the ingest modules import at their top.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from lifelog.core import redact
from lifelog.core.timeutil import to_aw_param

if TYPE_CHECKING:
    import requests

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
    """A small client for the AW REST API over one kept-alive connection
    (a `requests.Session` of its own).

    Not shared across threads: a thread of its own uses `clone()`. With
    `api_key`, every request carries `Authorization: Bearer <key>`
    (aw-server-rust's `[auth] api_key`); the key is in no message.
    """

    def __init__(self, url: str, timeout: float, *, api_key: str = ""):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._api_key = api_key
        redact.remember(api_key)  # whatever prints an error later must not show it
        from lifelog.aw import transport  # requests: ~150 ms, paid by a client only

        transport.check_url(self.url)
        self._session = transport.session()
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
        return f"AWClient({redact.redact_url(self.url)!r}, {self.timeout!r})"

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> AWClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get_raw(self, path: str, params: dict[str, Any] | None = None, *,
                total_timeouts: float = 1) -> requests.Response:
        """GET, bounded twice: no silence longer than the timeout, and the whole
        answer within `total_timeouts` times it (a server that trickles a byte
        now and then must not hold a health check for ever). Raises
        AWUnreachable when nothing whole answers."""
        from lifelog.aw import transport

        url = self.url + path + (f"?{urlencode(params)}" if params else "")
        try:
            return transport.call(self._session, "GET", url, headers=self._headers, timeout=self.timeout,
                                  total=self.timeout * total_timeouts)
        except transport.HTTPError as e:
            # Where: the server as configured (the path is in the caller's message).
            reason = f"{e.reason} at {redact.redact_url(self.url)}"
            failure = AWUnreachable(reason) if isinstance(e, transport.NoAnswer) else AWBadAnswer(reason)
        raise failure  # outside the except: nothing chained to it

    def get_json(self, path: str, params: dict[str, Any] | None = None, *, expect: type = object,
                 total_timeouts: float = 1) -> Any:
        """GET and decode JSON of the expected type, or raise AWError."""
        resp = self.get_raw(path, params, total_timeouts=total_timeouts)
        self._check_auth(resp, path)
        return decode(resp, path, expect)

    def _check_auth(self, resp: requests.Response, path: str) -> None:
        if resp.status_code in (401, 403):
            raise AWNeedsKey(auth_reason(resp.status_code, path, bool(self._api_key)), resp.status_code)

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
        params: dict[str, Any] = {"limit": limit, **_window(start, end)}
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
        if resp.status_code == 404 or (missing_on_500 and resp.status_code == 500):
            return None
        body = decode(resp, path, object)
        if body is None:
            return None
        if not isinstance(body, dict):
            raise AWBadAnswer(f"{path} answered JSON {type(body).__name__}, expected dict", resp.status_code)
        return body

    def clone(self) -> AWClient:
        """A client of its own, for another thread (a Session is not shared)."""
        return AWClient(self.url, self.timeout, api_key=self._api_key)

    def count(self, bucket_id: str, *, start: datetime | None = None, end: datetime | None = None) -> int:
        return self.get_json(f"/api/0/buckets/{quote(bucket_id, safe='')}/events/count", _window(start, end),
                             expect=int)


def _window(start: datetime | None, end: datetime | None) -> dict[str, str]:
    """The query parameters of a window of events: the edges given, in AW's format."""
    params = {}
    if start is not None:
        params["start"] = to_aw_param(start)
    if end is not None:
        params["end"] = to_aw_param(end)
    return params


def decode(resp: requests.Response, path: str, expect: type = object) -> Any:
    """The JSON body of a 200 answer, of type `expect`, or AWBadAnswer saying why."""
    status, content = resp.status_code, resp.content
    if status != 200:
        raise AWBadAnswer(f"HTTP {status} from {path}", status)
    try:
        body = json.loads(content)
    except ValueError:
        kind = "an HTML page" if content.lstrip()[:1] == b"<" else "not JSON"
        raise AWBadAnswer(f"{path} answered {kind}", status) from None
    if expect is int:
        ok = isinstance(body, int) and not isinstance(body, bool)
    else:
        ok = isinstance(body, expect)
    if not ok:
        raise AWBadAnswer(f"{path} answered JSON {type(body).__name__}, expected {expect.__name__}", status)
    return body
