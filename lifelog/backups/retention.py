"""Which backups to keep: a pure function of the backups' file names and the
`backup_keep_*` settings (README "Backups"), with restic's `forget` semantics.

A backup's time is read from its name, `lifelog-YYYYMMDDTHHMMSSZ.db` (UTC);
a file whose name does not match that pattern, or names no real moment, is
not a backup here and is never removed.

Walking the backups newest first, each rule (daily, weekly by ISO week,
monthly) keeps a backup whose day (week, month) differs from that of the
last backup it kept, until it has kept its count: so it keeps the newest
backup of each of the N most recent days (weeks, months) that have one. A
backup kept by one rule counts for the others too. As restic does, a rule
that has kept fewer than its count when the walk reaches the oldest backup
keeps that one as well, so the history reaches back as far as it can while
the rule is not yet full. The newest backup is always kept, whatever the
counts (all three at 0 keep the newest alone).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from lifelog.core.timeutil import UTC

NAME_RE = re.compile(r"lifelog-(\d{8}T\d{6}Z)\.db")
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"


class Reason(enum.StrEnum):
    NEWEST = "newest"
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    # Kept as the oldest of all while a rule had count left (restic's rule).
    OLDEST = "oldest"


def backup_name(at: datetime) -> str:
    """`lifelog-YYYYMMDDTHHMMSSZ.db` for a moment (UTC, to the second)."""
    return f"lifelog-{at.astimezone(UTC).strftime(STAMP_FORMAT)}.db"


def backup_time(name: str) -> datetime | None:
    """The UTC moment a backup's name gives, or None when it is not a backup's name."""
    m = NAME_RE.fullmatch(name)
    if m is None:
        return None
    try:
        return datetime.strptime(m.group(1), STAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:  # matches the digits, names no moment (month 13): not ours
        return None


@dataclass(frozen=True)
class Policy:
    daily: int
    weekly: int
    monthly: int

    @classmethod
    def from_settings(cls, settings: Any) -> Policy:
        return cls(settings.backup_keep_daily, settings.backup_keep_weekly, settings.backup_keep_monthly)

    def describe(self) -> str:
        return f"keep_daily {self.daily}, keep_weekly {self.weekly}, keep_monthly {self.monthly}"


def _day(t: datetime) -> date:
    return t.date()


def _iso_week(t: datetime) -> tuple[int, int]:
    year, week, _ = t.isocalendar()
    return year, week


def _month(t: datetime) -> tuple[int, int]:
    return t.year, t.month


# Each rule: its reason, its count in the policy, and the period of a moment.
RULES: tuple[tuple[Reason, Callable[[Policy], int], Callable[[datetime], Any]], ...] = (
    (Reason.DAILY, lambda p: p.daily, _day),
    (Reason.WEEKLY, lambda p: p.weekly, _iso_week),
    (Reason.MONTHLY, lambda p: p.monthly, _month),
)


@dataclass(frozen=True)
class Kept:
    name: str
    reasons: tuple[Reason, ...]


@dataclass(frozen=True)
class RetentionPlan:
    """Newest first, both lists; names that are not backups are in neither."""

    keep: tuple[Kept, ...]
    remove: tuple[str, ...]

    @property
    def kept_names(self) -> tuple[str, ...]:
        return tuple(k.name for k in self.keep)


def plan_retention(names: Iterable[str], policy: Policy) -> RetentionPlan:
    """Which of `names` to keep (and why) and which to remove."""
    backups = sorted(((t, n) for n in set(names) if (t := backup_time(n)) is not None), reverse=True)
    left = {reason: count(policy) for reason, count, _ in RULES}
    last: dict[Reason, Any] = {}
    keep: list[Kept] = []
    remove: list[str] = []
    for i, (at, name) in enumerate(backups):
        oldest = i == len(backups) - 1
        reasons = [Reason.NEWEST] if i == 0 else []
        for reason, _, period_of in RULES:
            if left[reason] <= 0:
                continue
            period = period_of(at)
            if reason not in last or period != last[reason]:
                reasons.append(reason)
            elif oldest:
                reasons.append(Reason.OLDEST)
            else:
                continue
            last[reason] = period
            left[reason] -= 1
        if reasons:
            keep.append(Kept(name, tuple(dict.fromkeys(reasons))))
        else:
            remove.append(name)
    return RetentionPlan(tuple(keep), tuple(remove))
