"""Which AW buckets LifeLog follows, and what AW's bucket list hints about them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any, NamedTuple

from lifelog.core.timeutil import try_parse_iso

# AW's bucket types (the `type` of a bucket) that LifeLog's judgments and
# coverage read: the afk and window watchers', the input watcher's and the
# browser extension's.
AFK_TYPE = "afkstatus"
WINDOW_TYPE = "currentwindow"
INPUT_TYPE = "os.hid.input"
WEB_TYPE = "web.tab.current"


class AWView(NamedTuple):
    """What AW's bucket list said about the selected buckets, when asked."""

    ok: bool  # AW answered /api/0/buckets/ properly
    error: str = ""
    newest_end: datetime | None = None  # max of the selected buckets' newest ends
    has_events: bool = False


def selected(bucket_ids: Iterable[str], patterns: list[str]) -> list[str]:
    """The bucket ids matching any glob of the `buckets` setting, sorted."""
    return sorted(b for b in bucket_ids if any(fnmatchcase(b, p) for p in patterns))


def newest_end_hint(bucket: dict[str, Any]) -> datetime | None:
    """AW's hint of a bucket's newest data, from `GET /api/0/buckets/`.

    aw-server (Python) gives `last_updated`: the end of the newest-starting
    event, absent for an empty bucket. aw-server-rust gives null there and
    `metadata.end` instead. A hint that something changed, never proof that
    nothing did (back-dated inserts do not move it).
    """
    hint = try_parse_iso(bucket.get("last_updated"))
    if hint is None:
        metadata = bucket.get("metadata")
        if isinstance(metadata, dict):
            hint = try_parse_iso(metadata.get("end"))
    return hint


def aw_view_of(listing: dict[str, Any], patterns: list[str]) -> AWView:
    """Pure: what AW's bucket list says about the selected buckets' newest data."""
    hints = [newest_end_hint(listing[b]) for b in selected(listing, patterns) if isinstance(listing[b], dict)]
    known = [h for h in hints if h is not None]
    return AWView(ok=True, newest_end=max(known) if known else None, has_events=bool(known))
