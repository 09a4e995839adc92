"""What a real aw-server cannot be made to do, faked: a socket that accepts
and never answers, a 500 on the bucket list, an HTML page, garbage JSON.

Each fake is a tiny http.server in a thread, stopped by the fixture."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeAW:
    """Answers each path with a fixed (status, content type, body); 404 otherwise."""

    def __init__(self, routes: dict[str, tuple[int, str, bytes]]):
        self.routes = routes
        routes_ = routes

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                status, ctype, body = routes_.get(self.path.split("?")[0], (404, "text/plain", b"nope"))
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


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
