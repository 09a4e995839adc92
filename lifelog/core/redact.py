"""Secrets kept out of everything LifeLog prints, logs or records (README "Settings").

Two secrets exist: `aw_api_key`, and the token in a `ping_url` (a
healthchecks UUID or ping key, an Uptime Kuma push token). Code never puts
them in a message on purpose; this module is the net under that rule:

- `redact_url(url)` is how a URL is shown: the token parts as `***`;
- `remember(secret)` / `remember_url(url)` (done when settings are loaded
  and when an AW client is made) list what `scrub(text)` must replace;
- `scrub` runs over every log line (`ScrubbingFormatter`) and over every
  error on its way out of the command line (`scrubbed_traceback`, also the
  traceback LIFELOG_DEBUG asks for).

A leaf: it imports nothing from LifeLog.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit

MASK = "***"

# A path segment shown as is: short, lower-case words (`api`, `push`, `fail`,
# `0`, a healthchecks slug). Tokens (a healthchecks UUID or ping key, an
# Uptime Kuma push token) are long or mixed-case, and are hidden.
_PLAIN_SEGMENT = re.compile(r"[a-z0-9._~-]{0,16}")
# A URL is always shown whole through redact_url; its parts are scrubbed from
# other text only from this length on (`status=up&msg=OK` must not turn every
# "OK" into ***; no real token is this short).
_MIN_SCRUBBED_PART = 6

_secrets: set[str] = set()
_urls: dict[str, str] = {}  # a secret URL -> how it is shown


def redact_url(url: str) -> str:
    """The URL as LifeLog may print or record it: scheme, host and port kept;
    a user name and password, every query value, the fragment and any path
    segment that may be a token replaced by `***`.

    `https://hc-ping.com/2f9a…-…/fail` -> `https://hc-ping.com/***/fail`;
    `https://kuma.example/api/push/Ab3dE?status=up` -> `https://kuma.example/api/push/***?status=***`.
    """
    try:
        parts = urlsplit(str(url).strip())
        port = parts.port
    except ValueError:
        return MASK
    if not parts.scheme or not parts.hostname:
        return MASK
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = (f"{MASK}@" if "@" in parts.netloc else "") + host + (f":{port}" if port is not None else "")
    path = "/".join(s if _PLAIN_SEGMENT.fullmatch(s) else MASK for s in parts.path.split("/"))
    query = "&".join(
        (name if _PLAIN_SEGMENT.fullmatch(name) else MASK) + (f"={MASK}" if eq else "")
        for name, eq, _ in (item.partition("=") for item in parts.query.split("&") if item)
    )
    return f"{parts.scheme}://{netloc}{path}" + (f"?{query}" if query else "")


def secret_parts(url: str) -> list[str]:
    """The pieces of a URL that `redact_url` hides and `scrub` must find
    anywhere: user info, token-like path segments, query values (the short
    ones left out: see _MIN_SCRUBBED_PART)."""
    try:
        parts = urlsplit(str(url).strip())
    except ValueError:
        return [str(url)]
    found = []
    if "@" in parts.netloc:
        userinfo = parts.netloc.rsplit("@", 1)[0]
        found += [userinfo, *userinfo.split(":", 1)]
    found += [s for s in parts.path.split("/") if not _PLAIN_SEGMENT.fullmatch(s)]
    for item in parts.query.split("&"):
        name, _, value = item.partition("=")
        if not _PLAIN_SEGMENT.fullmatch(name):
            found.append(name)
        found.append(value)
    if parts.fragment:
        found.append(parts.fragment)
    return [p for p in found if len(p) >= _MIN_SCRUBBED_PART]


def remember(secret: str) -> None:
    """`scrub` replaces this value from now on, in this process."""
    if secret:
        _secrets.add(secret)


def remember_url(url: str) -> None:
    """`scrub` shows this URL redacted, and hides its secret parts anywhere."""
    if url:
        _urls[url] = redact_url(url)
        for part in secret_parts(url):
            remember(part)


def scrub(text: str) -> str:
    """`text` with every remembered secret replaced."""
    if not (_secrets or _urls) or not text:
        return text
    for url, shown in _urls.items():
        text = text.replace(url, shown)
    for secret in sorted(_secrets, key=len, reverse=True):  # a longer secret may contain a shorter
        text = text.replace(secret, MASK)
    return text


def scrubbed_traceback(exc: BaseException) -> str:
    """The traceback Python would print for `exc` (with its causes), scrubbed."""
    import traceback

    return scrub("".join(traceback.format_exception(exc)))


class ScrubbingFormatter(logging.Formatter):
    """Every log line, its traceback included, scrubbed."""

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))
