"""Bounded HTTP/1.1 requests over a plain socket.

LifeLog's HTTP needs are small: GETs to the ActivityWatch server on one
kept-alive connection, and later a GET or POST to a monitoring URL. Both
`requests` (about 150 ms to import) and `http.client` (about 35 ms, most of
it `email.parser`) cost more than `lifelog status` can spend, so this module
speaks the little HTTP/1.1 it needs itself: a request line and headers out;
a status line, headers and a body framed by Content-Length, chunked coding
or the connection's end back. https wraps the same socket in TLS (with the
system's certificate checks, as `http.client` does); `ssl` is imported only
then. `scripts/bench_http.py` measures the choice.

Every wait is bounded: connecting by `timeout`, and every read by `timeout`
of silence; `total`, when given, bounds the whole exchange as well.

Errors are one line. They never hold a request header (an API key travels in
one), and they name the server only as `redact_url` (lifelog.core.redact) shows it.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple
from urllib.parse import urlsplit

from lifelog.core.redact import redact_url  # also offered here: `lifelog.aw.http.redact_url`

MAX_HEAD_BYTES = 64 * 1024  # status line and headers; more is not an HTTP server we know
_IDEMPOTENT = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"}
_NO_BODY_STATUS = {204, 304}
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3})(?: ([^\r\n]*))?\r?\n")


class HTTPError(Exception):
    """A request failed; str() is one line: what happened and where (redacted)."""

    def __init__(self, reason: str, url: str = ""):
        self.reason = reason
        self.where = redact_url(url) if url else ""
        super().__init__(f"{reason} at {self.where}" if self.where else reason)


class NoAnswer(HTTPError):
    """No HTTP answer: refused, name not found, timeout, reset, TLS failure."""


class BadAnswer(HTTPError):
    """Something answered, but not in HTTP this module can read."""


class Response(NamedTuple):
    status: int
    reason: str
    # Lower-case names; a repeated header's values joined with ", ".
    headers: Mapping[str, str] = MappingProxyType({})
    body: bytes = b""


# -- the connection ---------------------------------------------------------------


class Origin(NamedTuple):
    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, url: str) -> Origin:
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise ValueError(f"not a usable http(s) URL: {redact_url(url)}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not a usable http(s) URL: {redact_url(url)}")
        return cls(parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80))

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


class _Closed(Exception):
    """The peer closed or reset the connection before any byte of an answer;
    on a reused connection that means it was closed while idle."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Connection:
    """One kept-alive connection to one server (one per thread: not shared).

    `request` reconnects when the server has closed the connection since the
    last answer, and retries an idempotent request once when a reused
    connection turns out dead before any byte of the answer arrived.
    """

    def __init__(self, url: str, timeout: float, *, ssl_context=None):
        self.url = url
        self.origin = Origin.of(url)
        self.timeout = timeout
        self.ssl_context = ssl_context
        self._sock: socket.socket | None = None

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        target: str,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        *,
        total: float | None = None,
    ) -> Response:
        """Send one request for `target` (path and query) and read the whole answer."""
        method = method.upper()
        head = _request_head(method, target, self.origin.host_header, headers or {}, body)
        deadline = None if total is None else time.monotonic() + total
        reused = self._sock is not None
        try:
            try:
                return self._exchange(method, head, body, deadline, total)
            except _Closed as e:
                self.close()
                if not (reused and method in _IDEMPOTENT):
                    raise NoAnswer(e.reason, self.url) from None
            # The server closed the kept-alive connection (an idle timeout, a
            # restart): a fresh one, once.
            try:
                return self._exchange(method, head, body, deadline, total)
            except _Closed as e:
                self.close()
                raise NoAnswer(e.reason, self.url) from None
        except BaseException:
            self.close()  # a half-read answer must not be read as the next one
            raise

    # -- inside ------------------------------------------------------------------

    def _exchange(self, method: str, head: bytes, body: bytes | None, deadline: float | None,
                  total: float | None) -> Response:
        if self._sock is None:
            self._sock = self._connect(deadline)
        reader = _Reader(self._sock, self.timeout, deadline, total, self.url)
        try:
            self._sock.settimeout(reader.wait())
            self._sock.sendall(head + (body or b""))
        except (BrokenPipeError, ConnectionResetError):
            raise _Closed("connection reset") from None
        except OSError as e:
            raise _no_answer(e, self.timeout, self.url) from None
        response, keep = reader.response(method)
        if not keep:
            self.close()
        return response

    def _connect(self, deadline: float | None) -> socket.socket:
        timeout = self.timeout if deadline is None else max(0.001, min(self.timeout, deadline - time.monotonic()))
        try:
            sock = socket.create_connection((self.origin.host, self.origin.port), timeout=timeout)
        except OSError as e:
            raise _no_answer(e, self.timeout, self.url) from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.origin.scheme != "https":
            return sock
        import ssl  # only for https: it costs 10-20 ms to import

        context = self.ssl_context or ssl.create_default_context()
        try:
            return context.wrap_socket(sock, server_hostname=self.origin.host)
        except ssl.SSLCertVerificationError as e:
            sock.close()
            raise NoAnswer(f"TLS certificate not accepted ({e.verify_message})", self.url) from None
        except (ssl.SSLError, OSError) as e:
            sock.close()
            if isinstance(e, (socket.timeout, TimeoutError)):
                raise _no_answer(e, self.timeout, self.url) from None
            raise NoAnswer(f"TLS handshake failed ({getattr(e, 'reason', None) or type(e).__name__})",
                           self.url) from None


def request(
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    timeout: float,
    total: float | None = None,
    ssl_context=None,
) -> Response:
    """One request on a connection of its own, closed afterwards."""
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    with Connection(url, timeout, ssl_context=ssl_context) as conn:
        return conn.request(method, target, headers, body, total=total)


def _request_head(method: str, target: str, host: str, headers: dict[str, str], body: bytes | None) -> bytes:
    if not re.fullmatch(r"[A-Z]+", method):
        raise ValueError("HTTP method must be letters only")
    if not target.startswith("/") or any(c in target for c in " \r\n"):
        raise ValueError("request target must be a path without spaces or line breaks")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    given = {name.lower() for name in headers}
    for name, value in headers.items():
        # Checked without echoing the value: it may be an API key.
        if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
            raise ValueError(f"header name {name!r} is not a valid HTTP token")
        if any(c in str(value) for c in "\r\n\0"):
            raise ValueError(f"header {name} holds a line break or NUL")
        lines.append(f"{name}: {value}")
    if "accept-encoding" not in given:
        lines.append("Accept-Encoding: identity")
    if body is not None or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body or b'')}")
    try:
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError("a request header holds a character that is not Latin-1") from None


def _no_answer(e: BaseException, timeout: float, url: str) -> NoAnswer:
    """A socket error as the one-line reason people read in meta and logs."""
    if isinstance(e, (socket.timeout, TimeoutError)):
        return NoAnswer(f"no answer within {timeout:g} s", url)
    if isinstance(e, ConnectionRefusedError):
        return NoAnswer("connection refused", url)
    if isinstance(e, socket.gaierror):
        return NoAnswer("name not found", url)
    if isinstance(e, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
        return NoAnswer("connection reset", url)
    if isinstance(e, OSError) and e.strerror:
        return NoAnswer(e.strerror[:1].lower() + e.strerror[1:], url)
    return NoAnswer(type(e).__name__, url)


class _Reader:
    """Reads one answer from a socket, every read bounded."""

    def __init__(self, sock: socket.socket, timeout: float, deadline: float | None, total: float | None,
                 url: str):
        self.sock, self.timeout, self.deadline, self.total, self.url = sock, timeout, deadline, total, url
        self.buf = bytearray()  # grows in place: a page of events can be megabytes
        self.got_any = False

    def wait(self) -> float:
        if self.deadline is None:
            return self.timeout
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self.out_of_time()
        return min(self.timeout, left)

    def out_of_time(self) -> NoAnswer:
        return NoAnswer(f"no whole answer within the {self.total:g} s allowed", self.url)

    def _fill(self) -> bool:
        """Read more into the buffer; False at the connection's end."""
        try:
            self.sock.settimeout(self.wait())
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, ConnectionAbortedError) as e:
            if not self.got_any:
                raise _Closed("connection reset") from None
            raise _no_answer(e, self.timeout, self.url) from None
        except TimeoutError:
            # Silence from the start is no answer at all, whatever bound ended it.
            if self.got_any and self.deadline is not None and time.monotonic() >= self.deadline:
                raise self.out_of_time() from None
            raise _no_answer(TimeoutError(), self.timeout, self.url) from None
        except OSError as e:
            raise _no_answer(e, self.timeout, self.url) from None
        if chunk:
            self.got_any = True
            self.buf += chunk
        return bool(chunk)

    def line(self, limit: int = MAX_HEAD_BYTES) -> bytes:
        while True:
            end = self.buf.find(b"\n")
            if end >= 0:
                line = bytes(self.buf[: end + 1])
                del self.buf[: end + 1]
                return line
            if len(self.buf) > limit:
                raise BadAnswer("answered with a line too long for HTTP", self.url)
            if not self._fill():
                if not self.got_any:
                    raise _Closed("connection closed without an answer")
                raise NoAnswer("connection closed in the middle of the answer", self.url)

    def exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise NoAnswer("connection closed in the middle of the answer", self.url)
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def rest(self) -> bytes:
        while self._fill():
            pass
        data = bytes(self.buf)
        self.buf.clear()
        return data

    def head(self) -> tuple[int, str, str, dict[str, str]]:
        status_line = self.line()
        m = _STATUS_LINE.fullmatch(status_line)
        if m is None:
            raise BadAnswer("answered something that is not HTTP/1.x", self.url)
        headers: dict[str, str] = {}
        size = len(status_line)
        while True:
            line = self.line()
            size += len(line)
            if size > MAX_HEAD_BYTES:
                raise BadAnswer("answered with headers too long", self.url)
            if line in (b"\r\n", b"\n"):
                break
            name, colon, value = line.decode("latin-1").partition(":")
            if not colon or not name.strip():
                raise BadAnswer("answered with a malformed header line", self.url)
            key, value = name.strip().lower(), value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        version = status_line[5:8].decode()
        reason = (m.group(2) or b"").decode("latin-1").strip()
        return int(m.group(1)), reason, version, headers

    def response(self, method: str) -> tuple[Response, bool]:
        """The whole answer, and whether the connection may carry another request."""
        while True:
            status, reason, version, headers = self.head()
            if not (100 <= status < 200) or status == 101:
                break  # an interim 1xx (100 Continue) is followed by the real answer
        conn_tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
        keep = "close" not in conn_tokens and (version == "1.1" or "keep-alive" in conn_tokens)
        if method == "HEAD" or status in _NO_BODY_STATUS or 100 <= status < 200:
            body = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body = self.chunked()
        elif "content-length" in headers:
            try:
                length = int(headers["content-length"].split(",")[0])
                if length < 0:
                    raise ValueError
            except ValueError:
                raise BadAnswer("answered with a bad Content-Length", self.url) from None
            body = self.exactly(length)
        else:  # the body ends with the connection
            body, keep = self.rest(), False
        return Response(status, reason, headers, body), keep

    def chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size_line = self.line().split(b";", 1)[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise BadAnswer("answered with a bad chunk size", self.url) from None
            if size == 0:
                while self.line() not in (b"\r\n", b"\n"):
                    pass  # trailers: not used
                return b"".join(parts)
            parts.append(self.exactly(size))
            if self.line() not in (b"\r\n", b"\n"):
                raise BadAnswer("answered with a malformed chunk", self.url)
