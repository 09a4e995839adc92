"""lifelog.aw.transport: requests, every call bounded, against the real
aw-server and fakes for what a real server will not do; proxies only where
asked for; and errors and logs without secrets."""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
import traceback
from datetime import UTC
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.awserver import free_port
from support.fakeaw import HTML_500, INFO, FakeAW, RawServer, SilentSocket, answer, reset
from support.localhttp import ForwardProxy, LocalHTTPServer, QuietHandler

from lifelog.aw import transport
from lifelog.aw.client import AWBadAnswer, AWClient, AWUnreachable
from lifelog.core.redact import redact_url
from lifelog.outward import ping

CERT = Path(__file__).parent / "data" / "localhost-cert.pem"
KEY = Path(__file__).parent / "data" / "localhost-key.pem"
SECRET_HEADERS = {"Authorization": "Bearer s3cret-KEY-in-a-header"}
SECRETS = ("s3cret-KEY", "pa55word", "Secr3tToken", "querySecret")


@pytest.fixture
def raw():
    servers = []

    def make(handle, tls=None):
        server = RawServer(handle, tls)
        servers.append(server)
        return server

    yield make
    for s in servers:
        s.close()


@pytest.fixture
def session():
    with transport.session() as s:
        yield s


def request(method: str, url: str, **kw):
    """One call on a session of its own (closed afterwards)."""
    with transport.session(ssl_context=kw.pop("ssl_context", None)) as s:
        return transport.call(s, method, url, **kw)


def serve_forever(body: bytes = b'{"ok": true}', extra: str = ""):
    """A handler answering every request on the connection, kept alive."""
    def handle(server, conn):
        while server.read_request(conn) is not None:
            conn.sendall(answer(200, body, extra=extra))
    return handle


def trickle(head: bytes):
    """A handler that sends `head`, then a byte every 0.2 s for ever."""
    def handle(server, conn):
        server.read_request(conn)
        conn.sendall(head)
        while not server.stopping.wait(0.2):
            conn.sendall(b"X")
    return handle


# -- the real aw-server ----------------------------------------------------------------


def test_a_real_aw_server_answers_with_status_headers_and_body(aw_server, session):
    info = transport.call(session, "GET", aw_server.url + "/api/0/info", headers={"Accept": "application/json"},
                          timeout=5)
    buckets = transport.call(session, "GET", aw_server.url + "/api/0/buckets/", timeout=5)
    assert info.status_code == 200 and info.headers["content-type"] == "application/json"
    assert json.loads(info.content)["version"].startswith("v0.12")
    assert buckets.status_code == 200 and isinstance(json.loads(buckets.content), dict)


def test_the_aw_client_reads_events_with_encoded_parameters_from_the_real_server(aw_server):
    from datetime import datetime

    bucket = "http-layer-test_host"
    aw_server.create_bucket(bucket)
    aw_server.insert(bucket, [{"timestamp": "2026-01-10T10:00:00+00:00", "duration": 60, "data": {"a": 1}}])
    with AWClient(aw_server.url, 5) as client:
        # `+00:00` must reach AW encoded: a bare `+` is a space to it (HTTP 500).
        got = client.events(bucket, start=datetime(2026, 1, 10, 9, tzinfo=UTC))
        assert client.count(bucket, start=datetime(2026, 1, 10, 9, tzinfo=UTC)) == 1
        assert client.event(bucket, got[0]["id"])["data"] == {"a": 1}
        assert client.event(bucket, 999999) is None
    assert [e["data"] for e in got] == [{"a": 1}]


def test_a_window_sends_aw_only_the_edges_it_has():
    from datetime import datetime

    from lifelog.aw.client import _window
    from lifelog.core.timeutil import to_aw_param

    start, end = datetime(2026, 1, 10, 9, tzinfo=UTC), datetime(2026, 1, 11, tzinfo=UTC)
    assert _window(None, None) == {}
    assert _window(start, None) == {"start": to_aw_param(start)}
    assert _window(None, end) == {"end": to_aw_param(end)}
    assert _window(start, end) == {"start": to_aw_param(start), "end": to_aw_param(end)}


# -- no answer: bounded, one line ------------------------------------------------------


def test_a_socket_that_accepts_and_never_answers_is_bounded_by_the_timeout():
    silent = SilentSocket()
    try:
        began = time.monotonic()
        with pytest.raises(transport.NoAnswer) as e:
            request("GET", silent.url + "/api/0/info", timeout=0.5)
        elapsed = time.monotonic() - began
    finally:
        silent.close()
    assert e.value.reason == "no answer within 0.5 s"
    assert str(e.value) == f"no answer within 0.5 s at {silent.url}/api/0/info"
    # Unbounded, it would wait for ever: the margin is for a loaded machine.
    assert 0.5 <= elapsed < 0.5 + 4.5


def test_a_refused_connection_is_no_answer():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(transport.NoAnswer) as e:
        request("GET", url + "/", timeout=1)
    assert str(e.value) == f"connection refused at {url}/"


def test_a_name_that_does_not_resolve_is_no_answer():
    with pytest.raises(transport.NoAnswer) as e:
        request("GET", "http://no-such-host.invalid/", timeout=2)
    assert e.value.reason == "name not found"


def test_a_reset_is_no_answer(raw):
    def handle(server, conn):
        server.read_request(conn)
        reset(conn)

    server = raw(handle)
    with pytest.raises(transport.NoAnswer) as e:
        request("GET", server.url + "/", timeout=2)
    assert e.value.reason == "connection reset"


def test_a_connection_closed_before_an_answer_is_no_answer(raw):
    server = raw(lambda server, conn: server.read_request(conn))
    with pytest.raises(transport.NoAnswer) as e:
        request("GET", server.url + "/", timeout=2)
    assert e.value.reason == "connection closed without an answer"


def test_a_body_cut_short_is_no_answer(raw):
    def handle(server, conn):
        server.read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"partial\":")

    server = raw(handle)
    with pytest.raises(transport.NoAnswer) as e:
        request("GET", server.url + "/", timeout=2)
    assert e.value.reason == "connection closed in the middle of the answer"


@pytest.mark.parametrize("where, head", [
    ("headers", b"HTTP/1.1 200 OK\r\n"),  # a header line that never ends
    ("body", b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"),
])
def test_a_server_that_trickles_a_byte_at_a_time_is_cut_off_at_the_whole_call_deadline(raw, where, head):
    server = raw(trickle(head))
    began = time.monotonic()
    with pytest.raises(transport.NoAnswer) as e:
        request("GET", server.url + "/", timeout=1, total=1.5)
    elapsed = time.monotonic() - began
    # A byte every 0.2 s: the per-read timeout (1 s) never fires, and without
    # the whole-call bound the call would last for ever. The margin is for a
    # loaded machine; the bound is met to within one read.
    assert 1.5 <= elapsed < 1.5 + 4.5, elapsed
    assert e.value.reason == "no whole answer within the 1.5 s allowed"
    assert e.value.__context__ is None and e.value.__cause__ is None


def test_the_aw_client_is_cut_off_a_trickling_server_within_its_timeout(raw):
    server = raw(trickle(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"))
    began = time.monotonic()
    with AWClient(server.url, 1) as client, pytest.raises(AWUnreachable) as e:
        client.info()
    assert 1 <= time.monotonic() - began < 1 + 4.5
    assert str(e.value) == f"no whole answer within the 1 s allowed at {server.url}"


# -- answers ---------------------------------------------------------------------------


def test_a_500_html_page_is_an_answer_and_the_aw_client_calls_it_bad():
    fake = FakeAW({"/api/0/info": HTML_500})
    try:
        resp = request("GET", fake.url + "/api/0/info", timeout=2)
        assert resp.status_code == 500 and resp.headers["content-type"] == "text/html"
        assert resp.content == HTML_500[2]
        with AWClient(fake.url, 2) as client, pytest.raises(AWBadAnswer) as e:
            client.info()
        assert str(e.value) == "HTTP 500 from /api/0/info" and e.value.status_code == 500
    finally:
        fake.close()


def test_a_chunked_body_is_joined_and_its_trailers_skipped(raw):
    def handle(server, conn):
        server.read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n")
        for piece in (b"6;name=value\r\n{\"a\": \r\n", b"a\r\n[1, 2, 3]}\r\n", b"0\r\nX-Trailer: yes\r\n\r\n"):
            conn.sendall(piece)
        server.read_request(conn)  # the connection stays usable: wait for the client to end it

    server = raw(handle)
    resp = request("GET", server.url + "/", timeout=2)
    assert resp.status_code == 200 and json.loads(resp.content) == {"a": [1, 2, 3]}


@pytest.mark.parametrize("size", [b"-5", b"zz"])
def test_a_bad_chunk_size_is_a_bad_answer(raw, size):
    def handle(server, conn):
        server.read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + size + b"\r\nhello\r\n0\r\n\r\n")
        server.read_request(conn)

    server = raw(handle)
    with pytest.raises(transport.BadAnswer) as e:
        request("GET", server.url + "/", timeout=2)
    assert e.value.reason == "answered with a malformed body"
    with AWClient(server.url, 2) as client, pytest.raises(AWBadAnswer):
        client.info()


def test_a_body_without_length_ends_with_the_connection(raw, session):
    def handle(server, conn):
        server.read_request(conn)
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it")

    server = raw(handle)
    assert transport.call(session, "GET", server.url + "/", timeout=2).content == b"all of it"
    assert transport.call(session, "GET", server.url + "/", timeout=2).content == b"all of it"
    assert server.connections == 2


def test_content_length_bodies_reuse_one_kept_alive_connection(raw, session):
    server = raw(serve_forever(b'{"n": 1}'))
    for _ in range(3):
        assert json.loads(transport.call(session, "GET", server.url + "/x", timeout=2).content) == {"n": 1}
    assert server.connections == 1 and len(server.heads) == 3


def test_an_interim_100_continue_is_skipped(raw):
    def handle(server, conn):
        server.read_request(conn)
        conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n" + answer(201, b"made", extra="Connection: close\r\n"))

    server = raw(handle)
    resp = request("POST", server.url + "/x", body=b"{}", timeout=2)
    assert (resp.status_code, resp.reason, resp.content) == (201, "X", b"made")


def test_a_head_or_204_answer_has_no_body_and_the_connection_carries_on(raw, session):
    def handle(server, conn):
        server.read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")  # HEAD: no body follows
        server.read_request(conn)
        conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
        server.read_request(conn)
        conn.sendall(answer(200, b"third"))

    server = raw(handle)
    assert transport.call(session, "HEAD", server.url + "/", timeout=2).content == b""
    assert transport.call(session, "GET", server.url + "/", timeout=2).status_code == 204
    assert transport.call(session, "GET", server.url + "/", timeout=2).content == b"third"
    assert server.connections == 1


def test_a_redirect_is_an_answer_not_followed(raw):
    def handle(server, conn):
        server.read_request(conn)
        conn.sendall(answer(308, b"", extra="Location: /elsewhere\r\nConnection: close\r\n"))

    server = raw(handle)
    assert request("GET", server.url + "/api/0/buckets", timeout=2).status_code == 308
    assert len(server.heads) == 1


def test_garbage_is_a_bad_answer(raw):
    def handle(server, conn):
        server.read_request(conn)
        conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")

    server = raw(handle)
    with pytest.raises(transport.BadAnswer) as e:
        request("GET", server.url + "/", timeout=2)
    assert e.value.reason == "answered something that is not HTTP/1.x"
    with AWClient(server.url, 2) as client, pytest.raises(AWBadAnswer):
        client.info()


# -- keep-alive after the server closed the connection ------------------------------------


@pytest.mark.parametrize("how", ["close", "reset"])
def test_a_kept_alive_connection_the_server_closed_is_replaced(raw, session, how):
    read, closed = threading.Event(), threading.Event()

    def handle(server, conn):
        server.read_request(conn)
        conn.sendall(answer(200, b'{"n": %d}' % server.connections))  # says nothing of closing...
        read.wait(5)  # (an RST may discard an answer not yet read)
        reset(conn) if how == "reset" else conn.close()  # ...then closes, as an idle timeout does
        closed.set()

    server = raw(handle)
    assert json.loads(transport.call(session, "GET", server.url + "/", timeout=2).content) == {"n": 1}
    read.set()
    assert closed.wait(5)
    assert json.loads(transport.call(session, "GET", server.url + "/", timeout=2).content) == {"n": 2}
    assert server.connections == 2


@pytest.mark.parametrize("reused", [False, True])
def test_a_post_whose_connection_dies_before_the_answer_is_sent_exactly_once(raw, session, reused):
    def handle(server, conn):
        while (head := server.read_request(conn)) is not None:
            if head.startswith(b"POST"):
                reset(conn)  # read, and no answer: the client cannot know whether it was acted on
                return
            conn.sendall(answer(200, b"ok"))

    server = raw(handle)
    if reused:
        transport.call(session, "GET", server.url + "/", timeout=2)
    with pytest.raises(transport.NoAnswer):
        transport.call(session, "POST", server.url + "/ping", body=b"up", timeout=2)
    assert [h.split(b" ")[0] for h in server.heads].count(b"POST") == 1  # not sent again
    assert transport.call(session, "GET", server.url + "/", timeout=2).status_code == 200  # a fresh connection
    assert server.connections == 2


def test_the_aw_client_keeps_one_connection_and_a_clone_has_its_own(raw):
    def handle(server, conn):
        while (head := server.read_request(conn)) is not None:
            path = head.split(b" ")[1]
            conn.sendall(answer(200, INFO[2] if path == b"/api/0/info" else b"{}"))

    server = raw(handle)
    with AWClient(server.url, 2) as client:
        client.info()
        client.buckets()
        assert server.connections == 1
        with client.clone() as other:
            other.info()
        assert server.connections == 2
        client.buckets()
    assert server.connections == 2
    assert all(b"Host: 127.0.0.1:%d" % server.port in h for h in server.heads)


def test_the_aw_client_says_unreachable_with_the_reason():
    url = f"http://127.0.0.1:{free_port()}"
    with AWClient(url, 1) as client, pytest.raises(AWUnreachable) as e:
        client.buckets()
    assert str(e.value) == f"connection refused at {url}"


# -- proxies: the environment's for the ping, never for AW ----------------------------------


class Pinged(LocalHTTPServer):
    """Records each request's (method, path, body); answers 200."""

    def __init__(self):
        self.calls: list[tuple[str, str, bytes]] = []
        calls = self.calls

        class Handler(QuietHandler):
            def _record(self):
                length = int(self.headers.get("Content-Length") or 0)
                calls.append((self.command, self.path, self.rfile.read(length)))
                self.answer(200, b"OK", "text/plain")

            do_GET = do_POST = _record

        self.serve(Handler)


def ok_ping(url: str, body: bytes) -> ping.Ping:
    return ping.Ping("POST", url, body, ping.Sent.OK)


@pytest.mark.parametrize("var", ["HTTP_PROXY", "http_proxy"])
def test_the_ping_goes_through_the_proxy_the_environment_names(monkeypatch, var):
    with ForwardProxy() as proxy, Pinged() as target:
        monkeypatch.setenv(var, proxy.url)
        url = f"{target.url}/ping/Secr3tTokenXYZ"
        assert ping.send(ok_ping(url, b"OK: fine"), 5) == "200"
        assert proxy.seen == [("POST", url)]
        assert target.calls == [("POST", "/ping/Secr3tTokenXYZ", b"OK: fine")]
        # NO_PROXY: straight there.
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        assert ping.send(ok_ping(url, b"OK: again"), 5) == "200"
        assert len(proxy.seen) == 1 and len(target.calls) == 2


def test_a_ping_through_a_proxy_that_is_down_says_so_without_the_token(monkeypatch):
    with Pinged() as target:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
        result = ping.send(ok_ping(f"{target.url}/ping/Secr3tTokenXYZ", b"OK"), 2)
        assert result == f"connection refused (at the proxy the environment names) at {target.url}/ping/***"
        assert target.calls == []


def test_aw_calls_never_go_through_a_proxy_from_the_environment(monkeypatch):
    with ForwardProxy() as proxy, FakeAW({"/api/0/info": INFO}) as fake:
        for var in ("HTTP_PROXY", "http_proxy", "ALL_PROXY"):
            monkeypatch.setenv(var, proxy.url)
        with AWClient(fake.url, 2) as client:
            assert client.info()["hostname"] == "fake"
        assert proxy.seen == []


# -- https -------------------------------------------------------------------------------


def tls_server_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(CERT, KEY)
    return ctx


def test_https_with_a_trusted_certificate(raw):
    server = raw(serve_forever(b"secure"), tls=tls_server_context())
    client_ctx = ssl.create_default_context(cafile=str(CERT))
    with transport.session(ssl_context=client_ctx) as s:
        assert transport.call(s, "GET", server.url + "/", timeout=2).content == b"secure"
        assert transport.call(s, "GET", server.url + "/", timeout=2).content == b"secure"
    assert server.connections == 1


def test_https_with_an_untrusted_certificate_is_no_answer(raw):
    server = raw(serve_forever(b"secure"), tls=tls_server_context())
    with pytest.raises(transport.NoAnswer) as e:
        request("GET", server.url + "/", timeout=2)
    assert e.value.reason.startswith("TLS certificate not accepted (")
    assert "\n" not in str(e.value)


def test_a_trickle_over_https_is_cut_off_too(raw):
    server = raw(trickle(b"HTTP/1.1 200 OK\r\n"), tls=tls_server_context())
    began = time.monotonic()
    with pytest.raises(transport.NoAnswer) as e:
        request("GET", server.url + "/", timeout=1, total=1.5, ssl_context=ssl.create_default_context(cafile=str(CERT)))
    assert 1.5 <= time.monotonic() - began < 1.5 + 4.5
    assert e.value.reason == "no whole answer within the 1.5 s allowed"


# -- secrets stay out of errors and logs ------------------------------------------------------


def hostile_servers(raw):
    def never(server, conn):
        server.read_request(conn)
        server.stopping.wait(10)

    def resets(server, conn):
        server.read_request(conn)
        reset(conn)

    def garbage(server, conn):
        server.read_request(conn)
        conn.sendall(b"\x00\xffnot http at all\r\n\r\n")

    def bad_chunk(server, conn):
        server.read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n")

    yield f"http://127.0.0.1:{free_port()}"
    for handle in (never, resets, garbage, bad_chunk, trickle(b"HTTP/1.1 200 OK\r\n")):
        yield raw(handle).url


def everything_shown(e: BaseException) -> str:
    """Everything an error can put before a person: its text, its repr, and
    the whole traceback with every exception chained to it."""
    return " ".join([str(e), repr(e), repr(e.args), *traceback.format_exception(e)])


def test_errors_and_logs_never_hold_a_request_header_or_the_secret_parts_of_the_url(raw, caplog):
    caplog.set_level(logging.DEBUG)  # as LIFELOG_LOG_LEVEL=DEBUG would
    failures = []
    for base in hostile_servers(raw):
        url = base.replace("http://", "http://user:pa55word@") + "/Secr3tTokenInThePath?key=querySecret"
        try:
            request("POST", url, headers=SECRET_HEADERS, body=b"x", timeout=0.5, total=1)
        except transport.HTTPError as e:
            failures.append(e)
    assert len(failures) == 6
    for e in failures:
        assert e.__context__ is None and e.__cause__ is None
        text = everything_shown(e) + e.reason + e.where
        for secret in SECRETS:
            assert secret not in text, (secret, text)
        assert "\n" not in str(e)
    logged = caplog.text + " ".join(str(r.args) for r in caplog.records)
    assert not [s for s in SECRETS if s in logged], logged


def test_the_aw_clients_errors_hold_no_api_key_and_nothing_chained(raw):
    for base in hostile_servers(raw):
        with AWClient(base, 0.5, api_key="s3cret-KEY-of-aw") as client, pytest.raises(
                (AWUnreachable, AWBadAnswer)) as e:
            client.buckets()
        assert e.value.__context__ is None and e.value.__cause__ is None
        assert "s3cret-KEY" not in everything_shown(e.value)


def test_a_bad_header_value_is_refused_without_echoing_it():
    with pytest.raises(ValueError) as e:
        request("GET", "http://127.0.0.1:9/", headers={"Authorization": "Bearer abc\r\nX: y"}, timeout=1)
    assert "abc" not in str(e.value) and "Authorization" in str(e.value)


@pytest.mark.parametrize("url", ["ftp://host/Secr3tTokenInThePath", "http://host:99999/Secr3tTokenInThePath",
                                 "not a url Secr3tTokenInThePath", "http:///Secr3tTokenInThePath"])
def test_a_url_that_cannot_be_requested_is_refused_without_its_secrets(url):
    with pytest.raises(ValueError) as e:
        request("GET", url, timeout=1)
    assert "Secr3tToken" not in everything_shown(e.value)
    assert ping.send(ping.Ping("GET", url, None, ping.Sent.UP), 1).startswith("not a usable http(s) URL")


def test_the_aw_client_refuses_a_url_it_cannot_use_when_made():
    with pytest.raises(ValueError) as e:
        AWClient("http://user:pa55word@host:99999/Secr3tTokenInThePath", 1)
    assert str(e.value) == "not a usable http(s) URL: ***"


# -- redact_url ----------------------------------------------------------------------------------


@pytest.mark.parametrize("url, shown", [
    ("http://127.0.0.1:5600", "http://127.0.0.1:5600"),
    ("https://aw.example.org/aw/", "https://aw.example.org/aw/"),
    ("https://hc-ping.com/0b3c1a52-7d0f-4c2e-9a51-3c7d2e5b9f10", "https://hc-ping.com/***"),
    ("https://hc-ping.com/0b3c1a52-7d0f-4c2e-9a51-3c7d2e5b9f10/fail", "https://hc-ping.com/***/fail"),
    ("https://hc-ping.com/fqOOd6-F4MMNuRm2QhbDrg/lifelog-laptop", "https://hc-ping.com/***/lifelog-laptop"),
    ("https://kuma.example:3001/api/push/Xk3PqR7aZb?status=up&msg=OK&ping=",
     "https://kuma.example:3001/api/push/***?status=***&msg=***&ping=***"),
    ("http://user:secret@[::1]:8080/a#frag", "http://***@[::1]:8080/a"),
    ("not a url", "***"),
    ("http://host:99999/", "***"),
])
def test_redact_url_keeps_where_and_hides_tokens(url, shown):
    assert redact_url(url) == shown


TOKEN = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-", min_size=6, max_size=64)


@given(token=TOKEN.filter(lambda t: len(t) > 16 or t != t.lower()), value=TOKEN)
def test_redact_url_never_shows_a_token_or_a_query_value(token, value):
    assert redact_url(f"https://hc-ping.com/{token}/fail?rid={value}") == "https://hc-ping.com/***/fail?rid=***"
    assert redact_url(f"https://me:{value}@kuma.example/api/push/{token}") == "https://***@kuma.example/api/push/***"
