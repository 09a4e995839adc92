"""Retention (lifelog.backups.retention): which backups to keep, from names alone.

A table of cases worked out by hand, then properties over generated names,
checked against a second, declarative statement of the rule."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lifelog.backups.retention import Policy, Reason, backup_name, backup_time, plan_retention
from lifelog.core.timeutil import UTC


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def names(*times: str) -> list[str]:
    return [backup_name(at(t)) for t in times]


# -- names ------------------------------------------------------------------------------------


def test_a_name_is_the_utc_second_of_its_snapshot():
    moment = datetime.fromisoformat("2026-03-01T02:03:04.999+01:00")
    assert backup_name(moment) == "lifelog-20260301T010304Z.db"
    assert backup_time("lifelog-20260301T010304Z.db") == at("2026-03-01T01:03:04")


@pytest.mark.parametrize("name", [
    "lifelog-20260301T010304Z.db-wal", "lifelog-20260301T010304Z.db.partial",
    ".lifelog-20260301T010304Z.db.partial", "lifelog-20260301T010304.db", "lifelog-20260301T010304Z.sqlite",
    "xlifelog-20260301T010304Z.db", "lifelog-20261301T010304Z.db",  # month 13: no moment
    "lifelog-20260230T010304Z.db", "notes.txt", "lifelog.db",
])
def test_a_file_not_named_like_a_backup_is_not_one(name):
    assert backup_time(name) is None
    assert plan_retention([name, *names("2026-03-01T00:00:00")], Policy(0, 0, 0)).remove == ()


# -- the table ----------------------------------------------------------------------------------

DAILY_10 = names(*(f"2026-03-{d:02d}T03:30:00" for d in range(1, 11)))  # Sun 1 Mar .. Tue 10 Mar


@pytest.mark.parametrize("existing, policy, kept", [
    # nothing to do
    ([], Policy(7, 4, 12), []),
    # one backup: the newest, whatever the counts
    (names("2026-03-01T03:30:00"), Policy(0, 0, 0), names("2026-03-01T03:30:00")),
    # all counts 0: the newest alone
    (DAILY_10, Policy(0, 0, 0), DAILY_10[-1:]),
    # 3 daily of 10 days: the 3 newest days; daily is full, so the oldest goes
    (DAILY_10, Policy(3, 0, 0), DAILY_10[-3:]),
    # 10 daily of 10 days: all of them
    (DAILY_10, Policy(10, 0, 0), DAILY_10),
    # 12 daily of 10 days: all (the oldest also as "oldest while not full")
    (DAILY_10, Policy(12, 0, 0), DAILY_10),
    # weekly of 10 days: ISO weeks 9 (Sun 1 Mar), 10 (2-8 Mar), 11 (9-10 Mar): newest of each
    (DAILY_10, Policy(0, 3, 0), names("2026-03-01T03:30:00", "2026-03-08T03:30:00", "2026-03-10T03:30:00")),
    # weekly 2: weeks 11 and 10; full, so week 9 goes
    (DAILY_10, Policy(0, 2, 0), names("2026-03-08T03:30:00", "2026-03-10T03:30:00")),
    # weekly 4 with 3 weeks: not full, so the oldest stays too (it is week 9's anyway)
    (DAILY_10, Policy(0, 4, 0), names("2026-03-01T03:30:00", "2026-03-08T03:30:00", "2026-03-10T03:30:00")),
    # several a day: the newest of each day; the first of all stays while daily is not full
    (names("2026-03-01T01:00:00", "2026-03-01T02:00:00", "2026-03-02T01:00:00", "2026-03-02T05:00:00"),
     Policy(7, 0, 0), names("2026-03-01T01:00:00", "2026-03-01T02:00:00", "2026-03-02T05:00:00")),
    # ... and once daily is full, only the newest of each day
    (names("2026-03-01T01:00:00", "2026-03-01T02:00:00", "2026-03-02T01:00:00", "2026-03-02T05:00:00"),
     Policy(2, 0, 0), names("2026-03-01T02:00:00", "2026-03-02T05:00:00")),
    # months: newest of each month, across a year boundary, by UTC
    (names("2025-11-30T23:59:59", "2025-12-01T00:00:00", "2025-12-31T23:59:59", "2026-01-01T00:00:00",
           "2026-01-15T12:00:00"),
     Policy(0, 0, 2), names("2025-12-31T23:59:59", "2026-01-15T12:00:00")),
    # daily and monthly together: a backup kept by one rule also counts for the other
    (names("2026-01-31T03:30:00", "2026-02-27T03:30:00", "2026-02-28T03:30:00", "2026-03-01T03:30:00"),
     Policy(2, 0, 3), names("2026-01-31T03:30:00", "2026-02-28T03:30:00", "2026-03-01T03:30:00")),
    # ISO week 1 of 2026 starts Mon 29 Dec 2025: one week across the year boundary
    (names("2025-12-28T10:00:00", "2025-12-29T10:00:00", "2026-01-02T10:00:00", "2026-01-04T10:00:00"),
     Policy(0, 1, 0), names("2026-01-04T10:00:00")),
    (names("2025-12-28T10:00:00", "2025-12-29T10:00:00", "2026-01-02T10:00:00", "2026-01-04T10:00:00"),
     Policy(0, 2, 0), names("2025-12-28T10:00:00", "2026-01-04T10:00:00")),
])
def test_retention_table(existing, policy, kept):
    result = plan_retention(existing + ["notes.txt", ".lifelog-20260301T033000Z.db.partial"], policy)
    assert sorted(result.kept_names) == sorted(kept)
    assert sorted(result.remove) == sorted(set(existing) - set(kept))


def test_reasons_say_which_rule_kept_each_backup():
    result = plan_retention(DAILY_10, Policy(2, 2, 0))
    reasons = {k.name: k.reasons for k in result.keep}
    assert reasons[DAILY_10[-1]] == (Reason.NEWEST, Reason.DAILY, Reason.WEEKLY)
    assert reasons[DAILY_10[-2]] == (Reason.DAILY,)
    assert reasons[DAILY_10[-3]] == (Reason.WEEKLY,)  # Sun 8 Mar: the newest of week 10
    assert [k.name for k in result.keep] == sorted(reasons, reverse=True)  # newest first


def test_the_oldest_is_kept_while_a_rule_is_not_full_and_says_so():
    existing = names("2026-03-01T01:00:00", "2026-03-01T02:00:00")
    result = plan_retention(existing, Policy(7, 0, 0))
    assert {k.name: k.reasons for k in result.keep} == {
        existing[1]: (Reason.NEWEST, Reason.DAILY), existing[0]: (Reason.OLDEST,)}


# -- properties ------------------------------------------------------------------------------------

EPOCH = at("2024-01-01T00:00:00")
moments = st.integers(min_value=0, max_value=3 * 366 * 86400).map(lambda s: EPOCH + timedelta(seconds=s))
# Dense (many a day) and sparse (months apart) sets of backups, and strangers.
backup_sets = st.one_of(
    st.lists(moments, max_size=60),
    st.lists(st.integers(min_value=0, max_value=20 * 86400).map(lambda s: EPOCH + timedelta(seconds=s)),
             max_size=60),
).map(lambda ts: sorted({backup_name(t) for t in ts}))
strangers = st.lists(st.sampled_from(["notes.txt", "lifelog.db", "lifelog-20261301T000000Z.db",
                                      ".lifelog-20240101T000000Z.db.partial", "lifelog-20240101T000000Z.db-wal"]),
                     max_size=3)
policies = st.builds(Policy, st.integers(0, 10), st.integers(0, 6), st.integers(0, 14))


def expected_keep(backups: list[str], policy: Policy) -> set[str]:
    """The rule stated plainly: the newest; for each rule with count n, the
    newest of each of the n most recent periods that have a backup; and the
    oldest, when a rule saw fewer than n periods among the others."""
    by_time = sorted(backups, key=backup_time, reverse=True)
    if not by_time:
        return set()
    keep = {by_time[0]}
    for n, period in ((policy.daily, lambda t: t.date()), (policy.weekly, lambda t: t.isocalendar()[:2]),
                      (policy.monthly, lambda t: (t.year, t.month))):
        if n <= 0:
            continue
        newest_of: dict = {}
        for name in by_time:
            newest_of.setdefault(period(backup_time(name)), name)
        recent = sorted(newest_of, reverse=True)[:n]
        keep |= {newest_of[p] for p in recent}
        others = {period(backup_time(name)) for name in by_time[:-1]}
        if len(others) < n:
            keep.add(by_time[-1])
    return keep


@settings(max_examples=150, deadline=None)
@given(backup_sets, strangers, policies)
def test_the_plan_is_the_rule(backups, other, policy):
    result = plan_retention(backups + other, policy)
    assert set(result.kept_names) == expected_keep(backups, policy)


@settings(max_examples=150, deadline=None)
@given(backup_sets, strangers, policies)
def test_only_backups_are_ever_removed_and_each_is_kept_or_removed_once(backups, other, policy):
    result = plan_retention(backups + other, policy)
    assert set(result.remove) <= set(backups)
    assert not set(result.remove) & set(result.kept_names)
    assert sorted(result.kept_names + result.remove) == sorted(backups)
    assert not set(other) & set(result.kept_names + result.remove)


@settings(max_examples=150, deadline=None)
@given(backup_sets, policies)
def test_the_newest_is_always_kept_and_at_most_the_counts_plus_two(backups, policy):
    result = plan_retention(backups, policy)
    if backups:
        newest = max(backups, key=backup_time)
        assert result.keep[0].name == newest and Reason.NEWEST in result.keep[0].reasons
    assert len(result.keep) <= policy.daily + policy.weekly + policy.monthly + 2


@settings(max_examples=150, deadline=None)
@given(backup_sets, policies)
def test_applying_the_plan_again_removes_nothing_more(backups, policy):
    kept = plan_retention(backups, policy).kept_names
    assert plan_retention(list(kept), policy).remove == ()


@settings(max_examples=150, deadline=None)
@given(backup_sets, policies, moments)
def test_a_new_backup_never_costs_the_newest_of_a_recent_day(backups, policy, new):
    """After one more (newer) backup, every day among the `daily` most recent
    ones still keeps its newest backup."""
    newer = backup_name(max([new] + [backup_time(b) + timedelta(seconds=1) for b in backups]))
    result = plan_retention(backups + [newer], policy)
    days: dict = {}
    for name in sorted(backups + [newer], key=backup_time, reverse=True):
        days.setdefault(backup_time(name).date(), name)
    for day in sorted(days, reverse=True)[:policy.daily]:
        assert days[day] in result.kept_names
