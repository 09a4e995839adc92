"""What LifeLog takes for a server's URL: http:// or https://, a host, and a
port that parses. One check for the settings (`aw_url`, `ping_url`), the
`devices` table and the HTTP transport; each words its own error, since each
knows where the URL came from and whether it may be shown.
"""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit


class BadURL(ValueError):
    """Not an http(s) URL with a host; `bad_port` when only its port is wrong."""

    def __init__(self, *, bad_port: bool = False) -> None:
        super().__init__("bad port" if bad_port else "not an http(s) URL with a host")
        self.bad_port = bad_port


def http_url(url: str) -> SplitResult:
    """`url` split, or BadURL."""
    try:
        parts = urlsplit(url)
    except ValueError:  # an unclosed IPv6 bracket, say
        raise BadURL() from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadURL()
    try:
        _ = parts.port  # urlsplit parses the port lazily: reading it checks it
    except ValueError:
        raise BadURL(bad_port=True) from None
    return parts
