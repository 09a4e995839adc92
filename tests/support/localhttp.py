"""Small HTTP servers on a free port of 127.0.0.1, for what a test stands
between LifeLog and the world: a fake AW, an authenticating proxy, a counting
proxy, a recorder of pings, a forward proxy (what HTTP_PROXY names). Each serves in threads until `close()`."""

from __future__ import annotations

import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that keeps the test's output clean."""

    def log_message(self, *args):
        pass

    def answer(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class LocalHTTPServer:
    """Serves `handler` on 127.0.0.1 at a free port (`url`) until `close()`."""

    def serve(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def forward(handler: BaseHTTPRequestHandler, upstream: str, *, timeout: float = 30,
            headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    """The upstream server's (status, content type, body) for the handler's GET."""
    target = urlsplit(upstream)
    conn = http.client.HTTPConnection(target.hostname, target.port, timeout=timeout)
    try:
        conn.request("GET", handler.path, headers=headers or {"Accept": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type", "application/json"), resp.read()
    finally:
        conn.close()


class CountingProxy(LocalHTTPServer):
    """A proxy in front of a real aw-server that records every GET (path,
    query); with `version`, it poses as another server in /api/0/info."""

    def __init__(self, upstream: str, *, version: str | None = None, timeout: float = 30):
        self.requests: list[tuple[str, dict[str, str]]] = []
        seen = self.requests

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802
                parts = urlsplit(self.path)
                seen.append((unquote(parts.path), {k: v[0] for k, v in parse_qs(parts.query).items()}))
                status, content_type, body = forward(self, upstream, timeout=timeout)
                if version is not None and parts.path == "/api/0/info":
                    body = json.dumps(dict(json.loads(body), version=version)).encode()
                self.answer(status, body, content_type)

        self.serve(Handler)

    def of(self, bucket_id: str, endpoint: str) -> list[dict[str, str]]:
        """The query parameters of each request to one bucket's endpoint (`events`, `events/count`)."""
        path = f"/api/0/buckets/{bucket_id}/{endpoint}"
        return [q for p, q in self.requests if p == path]

    def summary(self) -> str:
        paths = [p for p, _ in self.requests]
        counts = sum(p.endswith("/events/count") for p in paths)
        fetches = sum(p.endswith("/events") for p in paths)
        return f"{len(paths)} requests ({counts} counts, {fetches} window fetches)"


class ForwardProxy(LocalHTTPServer):
    """A plain HTTP forward proxy, as HTTP_PROXY names one: it takes requests
    in absolute form (`POST http://host:port/path HTTP/1.1`), records
    (method, absolute URL), and passes them on to that server."""

    def __init__(self, *, timeout: float = 30):
        self.seen: list[tuple[str, str]] = []
        seen = self.seen

        class Handler(QuietHandler):
            def _forward(self):
                seen.append((self.command, self.path))
                target = urlsplit(self.path)
                if target.scheme != "http" or not target.hostname:
                    self.answer(400, b"absolute http URLs only", "text/plain")
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=timeout)
                try:
                    headers = {k: v for k, v in self.headers.items()
                               if k.lower() not in ("connection", "proxy-connection", "keep-alive")}
                    path = target.path + (f"?{target.query}" if target.query else "")
                    conn.request(self.command, path or "/", body=body, headers=headers)
                    resp = conn.getresponse()
                    self.answer(resp.status, resp.read(), resp.getheader("Content-Type", "text/plain"))
                finally:
                    conn.close()

            do_GET = do_POST = _forward

        self.serve(Handler)
