"""lifelog.aw.http: bounded HTTP/1.1 over a socket, against the real aw-server and
fakes for what a real server will not do; and URLs shown without secrets."""

from __future__ import annotations

import json
import ssl
import threading
import time
from datetime import UTC
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.awserver import free_port
from support.fakeaw import HTML_500, INFO, FakeAW, RawServer, SilentSocket, answer, reset

from lifelog.aw import http
from lifelog.aw.client import AWBadAnswer, AWClient, AWUnreachable

CERT = Path(__file__).parent / "data" / "localhost-cert.pem"
KEY = Path(__file__).parent / "data" / "localhost-key.pem"
SECRET_HEADERS = {"Authorization": "Bearer s3cret-KEY-in-a-header"}


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


def serve_forever(body: bytes = b'{"ok": true}', extra: str = ""):
    """A handler answering every request on the connection, kept alive."""
    def handle(server, conn):
        while server.read_request(conn) is not None:
            conn.sendall(answer(200, body, extra=extra))
    return handle


# -- the real aw-server ----------------------------------------------------------------


def test_a_real_aw_server_answers_with_status_headers_and_body(aw_server):
    with http.Connection(aw_server.url, 5) as conn:
        info = conn.request("GET", "/api/0/info", {"Accept": "application/json"})
        buckets = conn.request("GET", "/api/0/buckets/")
    assert info.status == 200 and info.headers["content-type"] == "application/json"
    assert json.loads(info.body)["version"].startswith("v0.12")
    assert buckets.status == 200 and isinstance(json.loads(buckets.body), dict)


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


# -- no answer: bounded, one line ------------------------------------------------------


def test_a_socket_that_accepts_and_never_answers_is_bounded_by_the_timeout():
    silent = SilentSocket()
    try:
        began = time.monotonic()
        with pytest.raises(http.NoAnswer) as e:
            http.request("GET", silent.url + "/api/0/info", timeout=0.5)
        elapsed = time.monotonic() - began
    finally:
        silent.close()
    assert e.value.reason == "no answer within 0.5 s"
    assert str(e.value) == f"no answer within 0.5 s at {silent.url}/api/0/info"
    # Unbounded, it would wait for ever: the margin is for a loaded machine.
    assert 0.5 <= elapsed < 0.5 + 4.5


def test_a_refused_connection_is_no_answer():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(http.NoAnswer) as e:
        http.request("GET", url + "/", timeout=1)
    assert str(e.value) == f"connection refused at {url}/"


def test_a_name_that_does_not_resolve_is_no_answer():
    with pytest.raises(http.NoAnswer) as e:
        http.request("GET", "http://no-such-host.invalid/", timeout=2)
    assert e.value.reason == "name not found"


def test_a_reset_is_no_answer(raw):
    def handle(server, conn):
        server.read_request(conn)
        reset(conn)

    server = raw(handle)
    with pytest.raises(http.NoAnswer) as e:
        http.request("GET", server.url + "/", timeout=2)
    assert e.value.reason == "connection reset"


def test_a_connection_closed_before_an_answer_is_no_answer(raw):
    server = raw(lambda server, conn: server.read_request(conn))
    with pytest.raises(http.NoAnswer) as e:
        http.request("GET", server.url + "/", timeout=2)
    assert e.value.reason == "connection closed without an answer"


def test_a_body_cut_short_is_no_answer(raw):
    def handle(server, conn):
        server.read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"partial\":")

    server = raw(handle)
    with pytest.raises(http.NoAnswer) as e:
        http.request("GET", server.url + "/", timeout=2)
    assert e.value.reason == "connection closed in the middle of the answer"


def test_a_trickling_server_is_bounded_by_the_total_allowed(raw):
    def handle(server, conn):
        server.read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        while not server.stopping.wait(0.05):  # a header byte now and then, for ever
            conn.sendall(b"X")

    server = raw(handle)
    began = time.monotonic()
    with pytest.raises(http.NoAnswer) as e:
        http.request("GET", server.url + "/", timeout=1, total=0.5)
    # The per-read timeout never fires here: without `total` it would wait for ever.
    assert 0.5 <= time.monotonic() - began < 0.5 + 4.5
    assert e.value.reason == "no whole answer within the 0.5 s allowed"


# -- answers ---------------------------------------------------------------------------


def test_a_500_html_page_is_an_answer_and_the_aw_client_calls_it_bad(raw):
    fake = FakeAW({"/api/0/info": HTML_500})
    try:
        resp = http.request("GET", fake.url + "/api/0/info", timeout=2)
        assert resp.status == 500 and resp.headers["content-type"] == "text/html"
        assert resp.body == HTML_500[2]
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
    resp = http.request("GET", server.url + "/", timeout=2)
    assert resp.status == 200 and json.loads(resp.body) == {"a": [1, 2, 3]}


def test_a_body_without_length_ends_with_the_connection(raw):
    def handle(server, conn):
        server.read_request(conn)
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it")

    server = raw(handle)
    with http.Connection(server.url, 2) as conn:
        assert conn.request("GET", "/").body == b"all of it"
        assert conn.request("GET", "/").body == b"all of it"
    assert server.connections == 2


def test_content_length_bodies_reuse_one_kept_alive_connection(raw):
    server = raw(serve_forever(b'{"n": 1}'))
    with http.Connection(server.url, 2) as conn:
        for _ in range(3):
            assert json.loads(conn.request("GET", "/x").body) == {"n": 1}
    assert server.connections == 1 and len(server.heads) == 3


def test_an_interim_100_continue_is_skipped(raw):
    def handle(server, conn):
        server.read_request(conn)
        conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n" + answer(201, b"made", extra="Connection: close\r\n"))

    server = raw(handle)
    resp = http.request("POST", server.url + "/x", body=b"{}", timeout=2)
    assert (resp.status, resp.reason, resp.body) == (201, "X", b"made")


def test_a_head_or_204_answer_has_no_body_and_the_connection_carries_on(raw):
    def handle(server, conn):
        server.read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")  # HEAD: no body follows
        server.read_request(conn)
        conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
        server.read_request(conn)
        conn.sendall(answer(200, b"third"))

    server = raw(handle)
    with http.Connection(server.url, 2) as conn:
        assert conn.request("HEAD", "/").body == b""
        assert conn.request("GET", "/").status == 204
        assert conn.request("GET", "/").body == b"third"
    assert server.connections == 1


def test_garbage_is_a_bad_answer(raw):
    def handle(server, conn):
        server.read_request(conn)
        conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")

    server = raw(handle)
    with pytest.raises(http.BadAnswer) as e:
        http.request("GET", server.url + "/", timeout=2)
    assert e.value.reason == "answered something that is not HTTP/1.x"
    with AWClient(server.url, 2) as client, pytest.raises(AWBadAnswer):
        client.info()


# -- keep-alive after the server closed the connection ------------------------------------


@pytest.mark.parametrize("how", ["close", "reset"])
def test_a_kept_alive_connection_the_server_closed_is_replaced_once(raw, how):
    read, closed = threading.Event(), threading.Event()

    def handle(server, conn):
        server.read_request(conn)
        conn.sendall(answer(200, b'{"n": %d}' % server.connections))  # says nothing of closing...
        read.wait(5)  # (an RST may discard an answer not yet read)
        reset(conn) if how == "reset" else conn.close()  # ...then closes, as an idle timeout does
        closed.set()

    server = raw(handle)
    with http.Connection(server.url, 2) as conn:
        assert json.loads(conn.request("GET", "/").body) == {"n": 1}
        read.set()
        assert closed.wait(5)
        assert json.loads(conn.request("GET", "/").body) == {"n": 2}
    assert server.connections == 2


def test_a_post_on_a_connection_the_server_closed_is_not_sent_twice(raw):
    closed = threading.Event()

    def handle(server, conn):
        server.read_request(conn)
        conn.sendall(answer(200, b"ok"))
        conn.close()
        closed.set()

    server = raw(handle)
    with http.Connection(server.url, 2) as conn:
        conn.request("GET", "/")
        assert closed.wait(5)
        with pytest.raises(http.NoAnswer):
            conn.request("POST", "/ping", body=b"up")
        assert conn.request("GET", "/").status == 200  # and the next request connects afresh
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


def test_the_aw_client_says_unreachable_with_the_reason(raw):
    url = f"http://127.0.0.1:{free_port()}"
    with AWClient(url, 1) as client, pytest.raises(AWUnreachable) as e:
        client.buckets()
    assert str(e.value) == f"connection refused at {url}"


# -- https -------------------------------------------------------------------------------


def tls_server_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(CERT, KEY)
    return ctx


def test_https_with_a_trusted_certificate(raw):
    server = raw(serve_forever(b"secure"), tls=tls_server_context())
    client_ctx = ssl.create_default_context(cafile=str(CERT))
    with http.Connection(server.url, 2, ssl_context=client_ctx) as conn:
        assert conn.request("GET", "/").body == b"secure"
        assert conn.request("GET", "/").body == b"secure"
    assert server.connections == 1


def test_https_with_an_untrusted_certificate_is_no_answer(raw):
    server = raw(serve_forever(b"secure"), tls=tls_server_context())
    with pytest.raises(http.NoAnswer) as e:
        http.request("GET", server.url + "/", timeout=2)
    assert e.value.reason.startswith("TLS certificate not accepted (")
    assert "\n" not in str(e.value)


# -- secrets stay out of errors --------------------------------------------------------------


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

    yield f"http://127.0.0.1:{free_port()}"
    for handle in (never, resets, garbage):
        yield raw(handle).url


def test_errors_never_hold_a_request_header_or_the_secret_parts_of_the_url(raw):
    failures = []
    for base in hostile_servers(raw):
        url = base.replace("http://", "http://user:pa55word@") + "/Secr3tTokenInThePath?key=querySecret"
        try:
            http.request("POST", url, headers=SECRET_HEADERS, body=b"x", timeout=0.5)
        except http.HTTPError as e:
            failures.append(e)
    assert len(failures) == 4
    for e in failures:
        shown = " ".join([str(e), repr(e), repr(e.args), e.reason, e.where])
        for secret in ("s3cret-KEY", "pa55word", "Secr3tToken", "querySecret"):
            assert secret not in shown, (secret, shown)
        assert "\n" not in str(e)


def test_a_bad_header_value_is_refused_without_echoing_it():
    with pytest.raises(ValueError) as e:
        http.request("GET", "http://127.0.0.1:9/", headers={"Authorization": "Bearer abc\r\nX: y"}, timeout=1)
    assert "abc" not in str(e.value) and "Authorization" in str(e.value)


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
    assert http.redact_url(url) == shown


TOKEN = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-", min_size=6, max_size=64)


@given(token=TOKEN.filter(lambda t: len(t) > 16 or t != t.lower()), value=TOKEN)
def test_redact_url_never_shows_a_token_or_a_query_value(token, value):
    assert http.redact_url(f"https://hc-ping.com/{token}/fail?rid={value}") == "https://hc-ping.com/***/fail?rid=***"
    assert http.redact_url(f"https://me:{value}@kuma.example/api/push/{token}") == "https://***@kuma.example/api/push/***"
