"""What the `events_by_update` index (README "Finding gaps" coverage summary
finds changed days through it) costs ingestion: LifeLog's CPU time to store
pages of AW events through `store.store_answer`, with and without the index,
in alternating rounds. CPU time of this process, so other load on the
machine matters less than for wall-clock figures.

    .venv/bin/python scripts/bench_update_index.py [--events 100000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lifelog.db.database import open_db  # noqa: E402
from lifelog.ingest import store  # noqa: E402
from lifelog.ingest.merge import OPEN  # noqa: E402

PAGE = 5000
BUCKET = "aw-watcher-window_bench"


class NoFetch:
    """An AWServer whose answers need no fetch by id (an open window has no suspects)."""

    server = "bench"
    is_rust = False

    def fetch_one(self, bucket_id, event_id):  # pragma: no cover - never asked
        raise AssertionError("no fetch by id expected")


def pages(n: int):
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    events = [{"id": i + 1, "timestamp": (t0 + timedelta(seconds=5 * i)).isoformat(), "duration": 5.0,
               "data": {"app": "Code", "title": f"lifelog/module{i % 40}.py"}} for i in range(n)]
    # Normalised here, as the AWServer does on arrival, so that only storing is timed.
    return [[store.normalise(BUCKET, e) for e in events[i:i + PAGE]] for i in range(0, n, PAGE)]


def store_all(with_index: bool, answer_pages) -> float:
    with tempfile.TemporaryDirectory() as d:
        db = open_db(Path(d) / "b.db")
        if not with_index:
            db.conn.execute("DROP INDEX events_by_update")
        began = time.process_time()
        for page in answer_pages:
            store.store_answer(db, NoFetch(), BUCKET, page, OPEN)
        spent = time.process_time() - began
        db.close()
    return spent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    answer_pages = pages(args.events)
    with_, without = [], []
    for r in range(args.rounds):
        without.append(store_all(False, answer_pages))
        with_.append(store_all(True, answer_pages))
        print(f"round {r + 1}: without {without[-1]:.2f} s, with {with_[-1]:.2f} s CPU", flush=True)
    a, b = statistics.median(without), statistics.median(with_)
    print(f"median CPU to store {args.events:,} events: without the index {a:.2f} s "
          f"({a / args.events * 1e6:.1f} us/event), with it {b:.2f} s ({b / args.events * 1e6:.1f} us/event): "
          f"+{(b - a) / a * 100:.0f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
