"""Timestamps as LifeLog stores them: ISO-8601, UTC, written with `+00:00`.

Every stored timestamp goes through `to_iso`, so they all have the same width
(microseconds always written) and sort correctly as text.
"""

from __future__ import annotations

from datetime import UTC, datetime

from lifelog.core.errors import UsageError

__all__ = ["UTC"]  # imported from here by the rest of lifelog


def utcnow() -> datetime:
    return datetime.now(UTC)


def to_iso(dt: datetime) -> str:
    """`2026-11-28T14:55:03.752000+00:00`: aware UTC with microseconds."""
    if dt.tzinfo is None:
        raise ValueError(f"naive datetime {dt!r}: LifeLog stores only aware UTC times")
    return dt.astimezone(UTC).isoformat(timespec="microseconds")


def now_iso() -> str:
    return to_iso(utcnow())


def parse_iso(text: str) -> datetime:
    """Parse what AW or a person wrote: `Z` or an offset, any precision.

    A naive value is taken as UTC, as AW does. Raises ValueError on garbage.
    """
    if len(text) == 32 and text.endswith("+00:00") and text[19] == ".":
        return datetime.fromisoformat(text)  # the stored form (to_iso): the fast way
    s = text.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    # fromisoformat in 3.11 takes 1-6 fractional digits; AW-rust emits 9.
    if "." in s:
        head, _, rest = s.partition(".")
        digits = len(rest) - len(rest.lstrip("0123456789"))
        if digits > 6:
            rest = rest[:6] + rest[digits:]
        s = f"{head}.{rest}"
    dt = datetime.fromisoformat(s)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def iso_of_epoch(seconds: float) -> str:
    """Unix seconds as LifeLog stores times (to_iso)."""
    return to_iso(datetime.fromtimestamp(seconds, UTC))


def epoch_of(text: str | None) -> float | None:
    """A stored time as unix seconds; None for missing or malformed input."""
    when = try_parse_iso(text)
    return None if when is None else when.timestamp()


def try_parse_iso(text: str | None) -> datetime | None:
    """Like parse_iso, but None for missing or malformed input (hand-edited meta)."""
    if not text:
        return None
    try:
        return parse_iso(text)
    except (ValueError, TypeError, OverflowError):
        return None


def to_aw_param(dt: datetime) -> str:
    """A query parameter both AW servers accept: strict RFC 3339 ending in `Z`."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_since(text: str | None) -> datetime | None:
    """`--since`: a date (UTC midnight) or an ISO time; UsageError otherwise."""
    if text is None:
        return None
    when = try_parse_iso(text)
    if when is None:
        raise UsageError(f"--since {text!r} is not a date; give e.g. 2026-11-01 or 2026-11-01T08:00:00Z")
    return when


def format_span(seconds: float) -> str:
    """`12 s`, `5 min`, `3 h`, `2 d`: a length of time, for people."""
    s = abs(seconds)
    if s < 90:
        return f"{s:.0f} s"
    if s < 90 * 60:
        return f"{s / 60:.0f} min"
    if s < 36 * 3600:
        return f"{s / 3600:.0f} h"
    return f"{s / 86400:.0f} d"


def format_age(seconds: float | None) -> str:
    """`12 s ago`, `5 min ago`, `3 h ago`, `2 d ago`; `in 4 s` for the future."""
    if seconds is None:
        return "-"
    text = format_span(seconds)
    return f"in {text}" if seconds < 0 else f"{text} ago"
