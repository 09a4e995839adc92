"""HTTP through `requests`, every call bounded, errors one line and secret-free.

LifeLog's HTTP is small: GETs to the ActivityWatch server on one kept-alive
connection, and a GET or POST to a monitoring URL (`ping_url`). `requests`
does the HTTP; this module adds what it lacks:

- A whole-call deadline. requests' `timeout` bounds each socket operation,
  so a server that trickles a byte now and then holds a call for ever. Here
  every read of the answer (status line, headers, body) waits at most the
  per-read timeout and at most until the call's deadline: the connections
  of `session()` read through `_DeadlineResponse`, which sets the socket's
  timeout before each recv from the deadline of the call in progress
  (`_CALL`, per thread). Connecting is bounded by the timeout too.
- Nothing from the environment: `trust_env` is off, so a loopback AW never
  goes through `HTTP_PROXY` and no `~/.netrc` is read. A caller that wants
  the environment's proxies (the ping) asks for them (`env_proxies`).
- Sent once: no request is retried (requests' default, kept), and redirects
  are not followed (a 3xx is an answer like any other).
- Errors are `NoAnswer` or `BadAnswer`, one line, naming the server only as
  `redact_url` shows it. They are raised outside the `except` that caught
  requests' exception, whose text can hold the whole URL: it is not chained.
  urllib3's own log lines hold the URL's path and query (a ping token), so
  its logger is silenced. HTTPS checks certificates against the system's
  store (`ssl.create_default_context`).

`requests` costs ~150 ms to import, so the modules that use this one import
it when they make a request, not before (`lifelog watchdog --once` on a
healthy machine makes none).
"""

from __future__ import annotations

import contextvars
import functools
import http.client
import io
import logging
import re
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests
import requests.adapters
import urllib3.connection
import urllib3.connectionpool
import urllib3.exceptions

from lifelog.core.redact import redact_url
from lifelog.core.urls import BadURL, http_url

# urllib3 logs each request's path and query (DEBUG) and, for headers it
# cannot parse, the URL (WARNING): a ping URL's token must reach no log.
logging.getLogger("urllib3").setLevel(logging.CRITICAL)

_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


class HTTPError(Exception):
    """A request failed; str() is one line: what happened and where (redacted)."""

    def __init__(self, reason: str, url: str = ""):
        self.reason = reason
        self.where = redact_url(url) if url else ""
        super().__init__(f"{reason} at {self.where}" if self.where else reason)


class NoAnswer(HTTPError):
    """No HTTP answer: refused, name not found, timeout, reset, TLS failure."""


class BadAnswer(HTTPError):
    """Something answered, but not in HTTP that can be read."""


# -- the whole-call deadline ------------------------------------------------------


@dataclass
class _Call:
    """The call in progress in this thread: its bounds and what its reads saw."""

    timeout: float
    deadline: float
    got_any: bool = False  # a byte of an answer arrived
    timed_out: bool = False  # a read waited out its bound
    out_of_time: bool = False  # ...and that bound was the deadline

    def wait(self) -> float:
        """How long the next read may wait; TimeoutError once the deadline has passed."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            self.timed_out = self.out_of_time = True
            raise TimeoutError("the call's deadline passed")
        return min(self.timeout, left)


_CALL: contextvars.ContextVar[_Call | None] = contextvars.ContextVar("lifelog_http_call", default=None)


class _DeadlineReads(io.RawIOBase):
    """The socket's reads, each bounded by the per-read timeout and the deadline."""

    def __init__(self, raw: io.RawIOBase, sock: socket.socket, call: _Call):
        super().__init__()
        self._raw, self._sock, self._call = raw, sock, call

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int | None:
        self._sock.settimeout(self._call.wait())
        try:
            n = self._raw.readinto(b)
        except TimeoutError:
            self._call.timed_out = True
            if time.monotonic() >= self._call.deadline:
                self._call.out_of_time = True
            raise
        if n:
            self._call.got_any = True
        return n

    def fileno(self) -> int:
        return self._raw.fileno()

    def close(self) -> None:
        try:
            self._raw.close()  # releases the socket's reference (socket.makefile)
        finally:
            super().close()


class _DeadlineResponse(http.client.HTTPResponse):
    """http.client's answer, read through `_DeadlineReads` during a call of
    this module (also the answer to a proxy's CONNECT, read the same way)."""

    def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any):
        super().__init__(sock, *args, **kwargs)
        call = _CALL.get()
        if call is not None:
            raw = self.fp.detach()  # the socket's reader, unbuffered
            self.fp = io.BufferedReader(_DeadlineReads(raw, sock, call))


class _Connection(urllib3.connection.HTTPConnection):
    response_class = _DeadlineResponse


class _TLSConnection(urllib3.connection.HTTPSConnection):
    response_class = _DeadlineResponse


class _Pool(urllib3.connectionpool.HTTPConnectionPool):
    ConnectionCls = _Connection


class _TLSPool(urllib3.connectionpool.HTTPSConnectionPool):
    ConnectionCls = _TLSConnection


_POOLS = {"http": _Pool, "https": _TLSPool}


@functools.cache
def _system_trust() -> ssl.SSLContext:
    """The system's certificate store, loaded once per process and only for
    an https URL: loading it costs 40-100 ms, more than the AW calls it
    would sit in front of (AW is usually plain http on loopback)."""
    return ssl.create_default_context()


class _Adapter(requests.adapters.HTTPAdapter):
    """Every pool (direct or through a proxy) made of the deadline-bound
    connections; TLS verified with one SSL context (the system's store)."""

    def __init__(self, ssl_context: ssl.SSLContext | None):
        self._ssl_context = ssl_context
        super().__init__()  # max_retries stays 0: nothing is sent twice

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        super().init_poolmanager(connections, maxsize, block, **pool_kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = _POOLS
        return manager

    def build_connection_pool_key_attributes(self, request: Any, verify: Any, cert: Any = None) -> Any:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        if host_params["scheme"] == "https":
            # (some requests 2.32 releases put a context of their own here)
            pool_kwargs["ssl_context"] = self._ssl_context or _system_trust()
        return host_params, pool_kwargs

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        # requests would add certifi's bundle to the SSL context of every new
        # connection; the context already trusts the system's store.
        super().cert_verify(conn, url, verify, cert)
        conn.ca_certs = conn.ca_cert_dir = None


def session(*, ssl_context: ssl.SSLContext | None = None) -> requests.Session:
    """A Session for `call`: keep-alive per server, nothing read from the environment."""
    s = requests.Session()
    s.trust_env = False
    adapter = _Adapter(ssl_context)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    return s


# -- one call ---------------------------------------------------------------------------


def call(
    s: requests.Session,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    timeout: float,
    total: float | None = None,
    env_proxies: bool = False,
) -> requests.Response:
    """Send one request on the session and read the whole answer.

    No wait is longer than `timeout` (connecting, each read) and the whole
    call ends within `total` (default: `timeout`). With `env_proxies`, through
    the proxy the environment names for the URL (HTTP_PROXY, HTTPS_PROXY,
    NO_PROXY, lower-case too); else directly. Raises NoAnswer or
    BadAnswer; ValueError (without the URL's secrets or a header's value)
    for a request that cannot be made."""
    _check_request(method, url, headers or {})
    proxies = requests.utils.get_environ_proxies(url) if env_proxies else {}
    total = timeout if total is None else total
    this = _Call(timeout, time.monotonic() + total)
    token = _CALL.set(this)
    failure: HTTPError | ValueError | None = None
    try:
        response = s.request(
            method, url, headers={"Accept-Encoding": "identity", **(headers or {})}, data=body,
            timeout=(min(timeout, total), timeout), allow_redirects=False, proxies=proxies,
        )
    except requests.RequestException as e:
        failure = _explain(e, this, url, total)
        if isinstance(e, requests.exceptions.ProxyError) and isinstance(failure, HTTPError):
            failure = type(failure)(f"{failure.reason} (at the proxy the environment names)", url)
    except ValueError:  # urllib3 or http.client on an answer it cannot frame (a chunk size)
        failure = BadAnswer("answered with a malformed body", url)
    finally:
        _CALL.reset(token)
    if failure is not None:
        # Raised here, not in the except: requests' exception (its text holds
        # the whole URL) must not ride along as __context__.
        raise failure
    return response


def check_url(url: str) -> None:
    """ValueError, naming the URL as `redact_url` shows it, unless it is an http(s) URL with a host."""
    try:
        http_url(url)
    except BadURL:
        raise ValueError(f"not a usable http(s) URL: {redact_url(url)}") from None


def _check_request(method: str, url: str, headers: Mapping[str, str]) -> None:
    """What requests would refuse with the URL or a header's value in its message."""
    check_url(url)
    if not re.fullmatch(r"[A-Z]+", method):
        raise ValueError("HTTP method must be upper-case letters only")
    for name, value in headers.items():
        # Checked without echoing the value: it may be an API key.
        if not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"header name {name!r} is not a valid HTTP token")
        if any(c in str(value) for c in "\r\n\0") or str(value) != str(value).strip():
            raise ValueError(f"header {name} holds a line break, NUL or surrounding space")
        try:
            str(value).encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(f"header {name} holds a character that is not Latin-1") from None


def _causes(e: BaseException) -> list[BaseException]:
    """The exception and every exception behind it: urllib3 wraps several
    deep, as a cause, as `reason` (MaxRetryError) or as an argument (ProtocolError)."""
    found: list[BaseException] = []
    todo: list[object] = [e]
    while todo:
        x = todo.pop(0)
        if isinstance(x, BaseException) and all(x is not f for f in found):
            found.append(x)
            todo += [x.__cause__, x.__context__, getattr(x, "reason", None), *x.args]
    return found


def _explain(e: requests.RequestException, this: _Call, url: str, total: float) -> HTTPError | ValueError:
    """requests' exception as the one-line reason people read in meta and logs."""
    causes = _causes(e)

    def has(*kinds: type) -> bool:
        return any(isinstance(c, kinds) for c in causes)

    if isinstance(e, (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema,
                      requests.exceptions.InvalidSchema, requests.exceptions.InvalidHeader)):
        return ValueError(f"not a usable http(s) request: {redact_url(url)}")
    if this.timed_out or isinstance(e, requests.exceptions.Timeout) or has(TimeoutError):
        # Silence from the start is no answer at all, whatever bound ended it.
        if this.out_of_time and this.got_any:
            return NoAnswer(f"no whole answer within the {total:g} s allowed", url)
        return NoAnswer(f"no answer within {this.timeout:g} s", url)
    for c in causes:
        if isinstance(c, ssl.SSLCertVerificationError):
            return NoAnswer(f"TLS certificate not accepted ({c.verify_message})", url)
    if isinstance(e, requests.exceptions.SSLError) or has(ssl.SSLError):
        ssl_error = next((c for c in causes if isinstance(c, ssl.SSLError)), None)
        return NoAnswer(f"TLS handshake failed ({getattr(ssl_error, 'reason', None) or 'SSLError'})", url)
    if has(socket.gaierror, urllib3.exceptions.NameResolutionError):
        return NoAnswer("name not found", url)
    if has(ConnectionRefusedError):
        return NoAnswer("connection refused", url)
    if has(http.client.RemoteDisconnected):
        return NoAnswer("connection closed without an answer", url)
    if has(urllib3.exceptions.InvalidChunkLength):  # (also an IncompleteRead)
        return BadAnswer("answered with a malformed body", url)
    if has(http.client.IncompleteRead, urllib3.exceptions.IncompleteRead):
        return NoAnswer("connection closed in the middle of the answer", url)
    if has(ConnectionResetError, ConnectionAbortedError, BrokenPipeError):
        return NoAnswer("connection reset", url)
    if has(http.client.LineTooLong):
        return BadAnswer("answered with a line too long for HTTP", url)
    if has(http.client.BadStatusLine):
        return BadAnswer("answered something that is not HTTP/1.x", url)
    if has(ValueError):
        return BadAnswer("answered with a malformed body", url)
    if has(http.client.HTTPException, urllib3.exceptions.ProtocolError, urllib3.exceptions.DecodeError):
        return BadAnswer("answered with malformed HTTP", url)
    oserror = next((c for c in causes if isinstance(c, OSError) and c.strerror), None)
    if oserror is not None and oserror.strerror:
        return NoAnswer(oserror.strerror[:1].lower() + oserror.strerror[1:], url)
    return NoAnswer(type(e).__name__, url)
