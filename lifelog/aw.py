"""Bounded HTTP calls to the ActivityWatch server.

LifeLog does not use aw-client for this: it sets no HTTP timeouts (a hung
server blocks a call for ever) and its constructor takes a per-name lock file
and calls sys.exit when another process holds it. Every call here has a
connect and a read timeout of `aw_timeout_seconds`.

Failures come in two kinds, which the health check tells apart:
`AWUnreachable` (no answer: refused, name not found, timeout, reset) and
`AWBadAnswer` (an answer, but not HTTP 200 with the JSON we expect).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from urllib.parse import quote

import requests

from lifelog.timeutil import to_aw_param


class AWError(Exception):
    """A call to AW failed; str() is a one-line reason for people and meta."""


class AWUnreachable(AWError):
    """No answer: connection refused, name not found, timeout, reset."""


class AWBadAnswer(AWError):
    """The server answered, but not with HTTP 200 and the JSON expected."""

    def __init__(self, reason: str, status_code: int | None = None):
        super().__init__(reason)
        self.status_code = status_code


def _describe_connection_error(exc: requests.RequestException) -> str:
    text = str(exc)
    for needle, reason in (
        ("Connection refused", "connection refused"),
        ("Name or service not known", "name not found"),
        ("nodename nor servname", "name not found"),
        ("Temporary failure in name resolution", "name not found"),
        ("Connection reset", "connection reset"),
        ("RemoteDisconnected", "connection closed without an answer"),
    ):
        if needle in text:
            return reason
    return text.splitlines()[0][:200] if text else type(exc).__name__


class AWClient:
    """A small client for the AW REST API; one requests.Session, reused."""

    def __init__(self, url: str, timeout: float, session: requests.Session | None = None):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()
        # AW rejects Host headers other than localhost/127.0.0.1/its own host
        # name; requests sends the URL's host, which is what the user gave.
        self.session.headers.setdefault("Accept", "application/json")
        # The latest /api/0/info answer: who connects may record it (lifelog.servers).
        self.last_info: dict[str, Any] | None = None

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> "AWClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get_raw(self, path: str, params: dict[str, Any] | None = None) -> requests.Response:
        """GET with both timeouts; raises AWUnreachable when nothing answers."""
        try:
            return self.session.get(
                self.url + path, params=params, timeout=(self.timeout, self.timeout)
            )
        except requests.Timeout:
            raise AWUnreachable(f"no answer within {self.timeout:g} s from {self.url}") from None
        except requests.ConnectionError as e:
            raise AWUnreachable(f"{_describe_connection_error(e)} at {self.url}") from None
        except requests.RequestException as e:
            raise AWUnreachable(f"{type(e).__name__} at {self.url}: {e}") from None

    def get_json(self, path: str, params: dict[str, Any] | None = None, *, expect: type = object) -> Any:
        """GET and decode JSON of the expected type, or raise AWError."""
        resp = self.get_raw(path, params)
        return decode(resp, path, expect)

    # -- the endpoints LifeLog uses -------------------------------------------

    def info(self) -> dict[str, Any]:
        self.last_info = self.get_json("/api/0/info", expect=dict)
        return self.last_info

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
        """Events newest first. AW clips events overlapping start/end: see sync."""
        params: dict[str, Any] = {"limit": limit}
        if start is not None:
            params["start"] = to_aw_param(start)
        if end is not None:
            params["end"] = to_aw_param(end)
        return self.get_json(f"/api/0/buckets/{quote(bucket_id, safe='')}/events", params, expect=list)

    def event(self, bucket_id: str, event_id: int, *, missing_on_500: bool = False) -> dict[str, Any] | None:
        """One event, never clipped; None when AW no longer has it.

        aw-server-python answers 404 for a missing id; aw-server-rust answers
        500 (its lookup error is mapped to InternalError), so a caller talking
        to rust passes missing_on_500.
        """
        path = f"/api/0/buckets/{quote(bucket_id, safe='')}/events/{int(event_id)}"
        resp = self.get_raw(path)
        if resp.status_code == 404 or (missing_on_500 and resp.status_code == 500):
            return None
        body = decode(resp, path, object)
        if body is None:
            return None
        if not isinstance(body, dict):
            raise AWBadAnswer(f"{path} answered JSON {type(body).__name__}, expected dict", resp.status_code)
        return body

    def clone(self) -> "AWClient":
        """A client of its own (requests sessions are not shared across threads)."""
        return AWClient(self.url, self.timeout)

    def count(self, bucket_id: str, *, start: datetime | None = None, end: datetime | None = None) -> int:
        params: dict[str, Any] = {}
        if start is not None:
            params["start"] = to_aw_param(start)
        if end is not None:
            params["end"] = to_aw_param(end)
        return self.get_json(f"/api/0/buckets/{quote(bucket_id, safe='')}/events/count", params, expect=int)


def decode(resp: requests.Response, path: str, expect: type = object) -> Any:
    """The JSON body of a 200 answer, of type `expect`, or AWBadAnswer saying why."""
    if resp.status_code != 200:
        raise AWBadAnswer(f"HTTP {resp.status_code} from {path}", resp.status_code)
    try:
        body = json.loads(resp.content)
    except ValueError:
        kind = "an HTML page" if resp.content.lstrip()[:1] == b"<" else "not JSON"
        raise AWBadAnswer(f"{path} answered {kind}", resp.status_code) from None
    if expect is int:
        ok = isinstance(body, int) and not isinstance(body, bool)
    else:
        ok = isinstance(body, expect)
    if not ok:
        raise AWBadAnswer(
            f"{path} answered JSON {type(body).__name__}, expected {expect.__name__}", resp.status_code
        )
    return body
