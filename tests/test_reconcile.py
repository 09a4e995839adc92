"""Reconcile by ranges: years, then months, then days, only where counts differ.

The windows (pure), the local count against the real aw-server's at every
kind of edge, and the cost: a counting proxy between LifeLog and a real
aw-server shows what a reconcile asks for (README "Ingestion": reconcile costs what differs).
"""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from support.localhttp import CountingProxy

from lifelog.aw.client import AWClient
from lifelog.core.settings import Settings
from lifelog.core.timeutil import parse_iso, to_iso
from lifelog.db.database import open_db
from lifelog.ingest import history, livepoll, merge, reconcile
from lifelog.ingest.merge import Window
from lifelog.ingest.reconcile import Unit
from lifelog.ingest.store import AWServer

UTC = UTC
_names = itertools.count()


# -- the windows ------------------------------------------------------------------

moments = st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2040, 1, 1),
                       timezones=st.just(UTC)).map(lambda d: d.replace(microsecond=0))


@hsettings(deadline=None)  # a loaded machine can take longer than Hypothesis' default 200 ms: not a failure
@given(start=moments, seconds=st.integers(0, 800 * 86400), unit=st.sampled_from(list(Unit)))
def test_split_tiles_the_range_with_windows_inside_one_unit_each(start, seconds, unit):
    end = start + timedelta(seconds=seconds)
    parts = reconcile.split(start, end, unit)
    if start == end:
        assert parts == []
        return
    assert parts[0].start == start and parts[-1].end == end
    assert all(p.end == q.start for p, q in zip(parts, parts[1:], strict=False))
    for p in parts:
        assert p.start < p.end <= reconcile.next_boundary(p.start, unit)
    assert all(p.end == reconcile.next_boundary(p.start, unit) for p in parts[:-1])


def test_boundaries_are_utc_years_months_and_days():
    t = datetime(2024, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert reconcile.next_boundary(t, Unit.DAY) == datetime(2025, 1, 1, tzinfo=UTC)
    assert reconcile.next_boundary(t, Unit.MONTH) == datetime(2025, 1, 1, tzinfo=UTC)
    assert reconcile.next_boundary(t, Unit.YEAR) == datetime(2025, 1, 1, tzinfo=UTC)
    assert reconcile.next_boundary(datetime(2025, 1, 1, tzinfo=UTC), Unit.YEAR) == datetime(2026, 1, 1, tzinfo=UTC)
    assert reconcile.next_boundary(datetime(2024, 2, 10, tzinfo=UTC), Unit.MONTH) == datetime(2024, 3, 1, tzinfo=UTC)


NOW = datetime(2026, 11, 28, 12, 30, 15, 250000, tzinfo=UTC)


def test_the_range_starts_at_since_else_the_first_day_else_on_rust_a_week_ago():
    first = datetime(2019, 5, 2, tzinfo=UTC)
    since = datetime(2026, 1, 1, 8, 0, 0, 500, tzinfo=UTC)
    assert reconcile.start_of_range(since, lambda: first, NOW, False, 7) == since.replace(microsecond=0)
    assert reconcile.start_of_range(since, lambda: first, NOW, True, 7) == since.replace(microsecond=0)
    assert reconcile.start_of_range(None, lambda: first, NOW, False, 7) == first
    assert reconcile.start_of_range(None, lambda: first, NOW, True, 7) == datetime(2026, 11, 21, tzinfo=UTC)
    assert reconcile.start_of_range(None, lambda: first, NOW, True, 0.5) == datetime(2026, 11, 28, tzinfo=UTC)


def test_the_live_edge_is_the_polls_lookback_start_never_after_now():
    head = NOW - timedelta(hours=1)
    assert reconcile.live_edge(to_iso(head), NOW) == (head - livepoll.LOOKBACK).replace(microsecond=0)
    assert reconcile.live_edge(to_iso(NOW + timedelta(days=3)), NOW) == NOW.replace(microsecond=0)
    assert reconcile.live_edge(None, NOW) == NOW.replace(microsecond=0)


# -- against the real aw-server ----------------------------------------------------

@pytest.fixture
def bucket(aw_server, request):
    name = f"test-rec-{request.node.name[:30]}-{next(_names)}".replace("[", "-").replace("]", "")
    aw_server.create_bucket(name)
    return name


def ev(ts: datetime, dur: float, **data) -> dict:
    return {"timestamp": ts.isoformat(), "duration": dur, "data": data or {"app": "x"}}


def rows(db, bucket_id):
    return {r[0]: (r[1], r[2], json.loads(r[3])) for r in db.conn.execute(
        "SELECT event_id, timestamp, duration, data FROM events WHERE bucket_id = ? AND deleted_in_aw_at IS NULL",
        (bucket_id,))}


def truth(aw, bucket_id):
    return {e["id"]: (to_iso(parse_iso(e["timestamp"])), e["duration"], e["data"]) for e in aw.events(bucket_id)}


EDGES = [datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC), datetime(2025, 2, 14, tzinfo=UTC)]


def edge_events() -> list[dict]:
    """Events starting and ending at, just before and just after window edges,
    within AW's millisecond rounding, and longer than 24 h across them."""
    out = []
    near = [0, 0.0004, -0.0004, 0.0005, -0.0005, 0.001, -0.001, 0.0015, -0.0015, 1, -1]
    durations = [0, 0.0004, 0.0005, 0.0006, 0.001, 1, 3600.0004, -1]
    for edge in EDGES:
        for off in near:
            for dur in durations:
                out.append(ev(edge + timedelta(seconds=off), dur, kind="starts", off=off, length=dur))
                out.append(ev(edge + timedelta(seconds=off - dur), dur, kind="ends", off=off, length=dur))
        for off in (0, 0.001, -0.001, 0.0005, 3600, -3600):  # around AW's 24 h cut
            for dur in (24 * 3600, 30 * 3600, 50 * 3600):
                out.append(ev(edge - timedelta(hours=24) + timedelta(seconds=off), dur, kind="long", off=off))
    return out


def test_local_counts_equal_aws_at_every_kind_of_edge(aw_server, bucket, db_path):
    aw_server.insert(bucket, edge_events())
    db = open_db(db_path)
    settings = Settings(db_path=db_path, aw_url=aw_server.url, buckets=bucket)
    with AWClient(aw_server.url, 30) as client:
        assert history.backfill(db, client, settings).complete
        assert rows(db, bucket) == truth(aw_server, bucket)
        src = AWServer.connect(client)
        day, sec = timedelta(days=1), timedelta(seconds=1)
        windows = [Window(a, b) for edge in EDGES for a, b in (
            (edge - day, edge), (edge, edge + day), (edge - 31 * day, edge), (edge, edge + 28 * day),
            (edge - 365 * day, edge), (edge, edge + 365 * day), (edge - sec, edge + sec), (edge - day, edge + day),
            (edge + 23 * 3600 * sec, edge + 2 * day), (edge + day, edge + 2 * day), (edge + 2 * day, edge + 3 * day))]
        mismatched = [(w.start, w.end, src.count(bucket, start=w.start, end=w.end),
                       reconcile.local_count(db, src.server, bucket, w)) for w in windows]
        mismatched = [m for m in mismatched if m[2] != m[3]]
        assert mismatched == []
        # And so a reconcile over them finds nothing to fetch.
        report = reconcile.reconcile(db, client, settings, since=EDGES[0] - timedelta(days=40))
    assert report.days_differing == 0 and report.totals.changed == 0


def test_it_descends_only_where_counts_differ_and_repairs_exactly(aw_server, bucket, db_path):
    t0 = datetime(2024, 3, 5, 10, tzinfo=UTC)
    aw_server.insert(bucket, [ev(t0 + timedelta(days=9 * i, hours=i % 5), 600, n=i) for i in range(70)])
    db = open_db(db_path)
    settings = Settings(db_path=db_path, aw_url=aw_server.url, buckets=bucket)
    with AWClient(aw_server.url, 30) as client:
        history.backfill(db, client, settings)
        victim = min(rows(db, bucket))
        aw_server.api("DELETE", f"/buckets/{bucket}/events/{victim}")
        late = datetime(2024, 11, 17, 13, 0, tzinfo=UTC)
        aw_server.insert(bucket, [ev(late, 30, n="late"), ev(late + timedelta(days=31), 30, n="later")])
        report = reconcile.reconcile(db, client, settings)
        assert rows(db, bucket) == truth(aw_server, bucket)
        assert report.totals.inserted == 2 and report.totals.marked_deleted == 1
        # The days of the deleted event, and of the two late ones.
        assert report.days_differing == 3
        again = reconcile.reconcile(db, client, settings)
    assert again.days_differing == 0 and again.totals.changed == 0


# -- the cost, counted -----------------------------------------------------------

@pytest.fixture
def proxy(aw_server):
    p = CountingProxy(aw_server.url)
    yield p
    p.close()


def test_two_quiet_years_cost_a_few_counts_and_a_back_dated_insert_one_days_fetch(aw_server, db_path, proxy):
    now = datetime.now(UTC).replace(microsecond=0)
    names = [f"test-rec-years-{next(_names)}-{kind}" for kind in ("window", "afk")]
    for n, name in enumerate(names):
        aw_server.create_bucket(name)
        # Two years of sparse history, then the present.
        aw_server.insert(name, [ev(now - timedelta(days=730) + timedelta(days=3 * i, hours=n), 120, i=i)
                                for i in range(244)])
        aw_server.insert(name, [ev(now - timedelta(minutes=3), 60, i="now")])
    settings = Settings(db_path=db_path, aw_url=proxy.url, buckets=",".join(names))
    db = open_db(db_path)
    with AWClient(aw_server.url, 30) as direct:
        history.backfill(db, direct, settings)
        livepoll.poll(db, direct, settings)

    with AWClient(proxy.url, 30) as client:
        report = reconcile.reconcile(db, client, settings)
    assert report.days_differing == 0 and report.totals.changed == 0
    for name in names:
        counts, fetches = proxy.of(name, "events/count"), proxy.of(name, "events")
        # One count per calendar year (three of them), and one for the newest minutes.
        assert len(counts) <= 5 and fetches == [], (name, counts, fetches)
        assert {b.bucket_id: b for b in report.buckets}[name].days_checked >= 730

    late = (now - timedelta(days=400)).replace(hour=15, minute=20)
    aw_server.insert(names[0], [ev(late, 45, i="late")])
    proxy.requests.clear()
    with AWClient(proxy.url, 30) as client:
        report = reconcile.reconcile(db, client, settings)
    assert report.totals.inserted == 1 and report.days_differing == 1
    assert rows(db, names[0]) == truth(aw_server, names[0])
    day = merge.utc_midnight(late)
    fetches = proxy.of(names[0], "events")
    assert [(parse_iso(q["start"]), parse_iso(q["end"])) for q in fetches] == [(day, day + timedelta(days=1))]
    # Years, then that year's months, then that month's days: a few dozen counts.
    assert len(proxy.of(names[0], "events/count")) <= 3 + 12 + 31 + 2
    assert len(proxy.of(names[1], "events/count")) <= 5 and proxy.of(names[1], "events") == []


def test_on_aw_server_rust_a_reconcile_fetches_the_last_days_and_since_reaches_further(aw_server, db_path):
    # aw-server-rust's count ignores the window: nothing can be compared, so
    # days are fetched, and only recent ones unless --since says otherwise.
    name = f"test-rec-rust-{next(_names)}"
    aw_server.create_bucket(name)
    now = datetime.now(UTC).replace(microsecond=0)
    noon = merge.utc_midnight(now) + timedelta(hours=12)
    fed = [noon - timedelta(days=d) for d in range(1, 40)]
    aw_server.insert(name, [ev(t, 60, d=d) for d, t in enumerate(fed, 1)])
    rust = CountingProxy(aw_server.url, version="v0.13.2 (rust)")
    try:
        settings = Settings(db_path=db_path, aw_url=rust.url, buckets=name, reconcile_rust_days=7)
        db = open_db(db_path)
        with AWClient(rust.url, 30) as client:
            before = datetime.now(UTC)
            report = reconcile.reconcile(db, client, settings)
            after = datetime.now(UTC)
            assert rust.of(name, "events/count") == []
            days = sorted({merge.utc_midnight(parse_iso(q["start"])) for q in rust.of(name, "events")})
            # From the UTC midnight 7 days before the reconcile's now to that now
            # (whole seconds): the day of `now`, unless a UTC midnight passed
            # while the test ran; its now lies between `before` and `after`.
            assert days[0] in (merge.utc_midnight(before - timedelta(days=7)),
                               merge.utc_midnight(after - timedelta(days=7)))
            assert days[-1] in (merge.utc_midnight(before - timedelta(seconds=1)), merge.utc_midnight(after))
            assert days == [days[0] + timedelta(days=i) for i in range(len(days))]
            first = report.totals.inserted
            assert first == len([t for t in fed if t >= days[0]])  # days 1..7 back: 7
            rust.requests.clear()
            report = reconcile.reconcile(db, client, settings, since=now - timedelta(days=45))
        assert first + report.totals.inserted == 39  # and the 32 older ones
        assert rows(db, name) == truth(aw_server, name)
    finally:
        rust.close()
