"""What a real aw-server cannot be made to do, faked: a socket that accepts
and never answers, a 500 on the bucket list, an HTML page, garbage JSON.

Each fake is a tiny http.server in a thread (support.localhttp), stopped by the fixture."""

from __future__ import annotations

import socket
import threading

from support.localhttp import LocalHTTPServer, QuietHandler


class FakeAW(LocalHTTPServer):
    """Answers each path with a fixed (status, content type, body); 404 otherwise."""

    def __init__(self, routes: dict[str, tuple[int, str, bytes]]):
        self.routes = routes
        routes_ = routes

        class Handler(QuietHandler):
            def do_GET(self):  # noqa: N802
                status, ctype, body = routes_.get(self.path.split("?")[0], (404, "text/plain", b"nope"))
                self.answer(status, body, ctype)

        self.serve(Handler)


class SilentSocket:
    """Listens, so connections complete in the kernel's backlog, and never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def close(self):
        self.sock.close()


INFO = (200, "application/json", b'{"hostname": "fake", "version": "v0.12.0-fake", "testing": true, "device_id": "x"}')
BUCKETS = (200, "application/json", b"{}")
HTML_500 = (500, "text/html", b"<!doctype html><html><title>Traceback</title><body>Werkzeug debugger</body></html>")


class RawServer:
    """A TCP server that runs `handle(conn)` for each connection, in a thread
    of its own: for answers http.server will not give (chunked bodies,
    resets, a kept-alive connection closed by the server, garbage, trickles).

    `connections` counts accepted connections; `heads` holds every request
    head read through `read_request`. With `tls` (a server-side SSLContext)
    each connection is wrapped in TLS first."""

    def __init__(self, handle, tls=None):
        self.handle, self.tls = handle, tls
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)  # the accept loop looks at `stopping` this often
        self.port = self.sock.getsockname()[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.connections = 0
        self.heads: list[bytes] = []
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(t)
            t.start()

    def _serve(self, conn):
        conn.settimeout(10)  # no handler waits for ever on a client
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            self.handle(self, conn)
        except OSError:
            pass  # the client went away: what several tests do on purpose
        finally:
            conn.close()

    def read_request(self, conn) -> bytes | None:
        """One request head (and its body, by Content-Length); None at the end."""
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
                while len(body) < length:
                    body += conn.recv(65536)
        self.heads.append(head)
        return head

    def close(self):
        self.stopping.set()
        self.thread.join(5)
        self.sock.close()
        for t in self.threads:
            t.join(5)


def reset(conn) -> None:
    """Close with an RST instead of a FIN (SO_LINGER 0)."""
    import struct

    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def answer(status: int, body: bytes, *, content_type: str = "application/json", extra: str = "") -> bytes:
    """An HTTP/1.1 answer with a Content-Length, kept alive unless `extra` says otherwise."""
    return (f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            f"{extra}\r\n").encode() + body
