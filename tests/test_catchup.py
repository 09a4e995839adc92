"""A catch-up's gaps cut for two fetches at once (lifelog.ingest.history.split_gaps):
the parts cover the gap exactly, the top part keeps the row, short or
open-ended gaps stay whole. The catch-up itself, against real aw-servers:
tests/test_devices_fair.py."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from lifelog.core.timeutil import parse_iso, to_iso
from lifelog.db.database import open_db, transaction
from lifelog.ingest import history

HI = "2026-12-04T12:00:00.000000+00:00"
SERVER, BUCKET = "dev-1", "aw-watcher-window_x"


def gaps_of(db) -> list[tuple[str | None, str]]:
    return [(g.lo, g.hi) for g in history.load_gaps(db, SERVER, [BUCKET])]


def add(db, lo: str | None, hi: str) -> None:
    with transaction(db):
        history.add_gap(db, SERVER, BUCKET, lo, hi, HI)


def test_a_long_gap_is_cut_in_two_equal_parts_the_top_one_keeping_its_row(tmp_path):
    db = open_db(tmp_path / "l.db")
    lo = to_iso(parse_iso(HI) - timedelta(days=3))
    add(db, lo, HI)
    (row,) = history.load_gaps(db, SERVER, [BUCKET])
    parts = history.split_gaps(db, SERVER, [BUCKET], 2, timedelta(hours=1))
    mid = to_iso(parse_iso(HI) - timedelta(days=1, hours=12))
    assert [(p.lo, p.hi) for p in parts] == [(mid, HI), (lo, mid)]
    assert parts[0].id == row.id
    assert sorted(gaps_of(db)) == sorted([(mid, HI), (lo, mid)]), "what is stored is what is returned"


def test_a_short_or_open_ended_gap_stays_whole(tmp_path):
    db = open_db(tmp_path / "s.db")
    short = to_iso(parse_iso(HI) - timedelta(minutes=30))
    add(db, short, HI)
    add(db, None, to_iso(parse_iso(HI) - timedelta(days=9)))
    before = sorted(gaps_of(db), key=str)
    assert sorted(((p.lo, p.hi) for p in history.split_gaps(db, SERVER, [BUCKET], 2, timedelta(hours=1))),
                  key=str) == before
    assert sorted(gaps_of(db), key=str) == before


@settings(max_examples=60, deadline=None)
@given(span_minutes=st.integers(min_value=61, max_value=60 * 24 * 400), parts=st.integers(min_value=2, max_value=5))
def test_the_parts_tile_the_gap_with_no_hole_and_no_overlap(tmp_path_factory, span_minutes, parts):
    db = open_db(tmp_path_factory.mktemp("h") / "h.db")
    lo = to_iso(parse_iso(HI) - timedelta(minutes=span_minutes))
    add(db, lo, HI)
    cut = sorted(((p.lo, p.hi) for p in history.split_gaps(db, SERVER, [BUCKET], parts, timedelta(hours=1))),
                 key=lambda g: g[1])
    assert len(cut) == parts
    assert cut[0][0] == lo and cut[-1][1] == HI
    for (_, below_hi), (above_lo, _) in zip(cut, cut[1:], strict=False):
        assert below_hi == above_lo
    assert all(parse_iso(a) < parse_iso(b) for a, b in cut if a is not None)
    db.conn.close()
