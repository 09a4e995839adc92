#!/usr/bin/env python3
"""Several devices, one watcher: is catching up fair? (issue 21 item 2)

    .venv/bin/python scripts/bench_devices.py [--days 3] [--step 3] [--poll 0.5] [--timeout 2] [--cycles 5]

Three real `aw-server --testing` processes, each with its own data dir (so
its own device_id), each a device of one `lifelog watcher` process:

- `desktop`, live: a feeder thread inserts one event every 0.25 s; a sampler
  reads the events table every 20 ms and notes when each one is stored.
  Its poll-to-stored latency is the time from the insert's answer to the
  row being seen.
- `laptop` (`sometimes`): LifeLog reaches it once, then its AW is stopped.
  While it is away, three days of events are planted in its data: its AW is
  started on another port (same data dir, same device_id; LifeLog's URL for
  it still points at the stopped port), fed through aw-client, stopped
  again. Then it is started on its own port: it comes back with three days
  LifeLog has never seen, and is caught up.
- `nas` (`sometimes`): reached once, then stopped (a refused connection
  each poll).

The laptop's part is played `--cycles` times, each cycle with a watcher, a
database and a laptop (data dir, device_id) of its own: this VM's speed
drifts by tens of percent over minutes, so one catch-up against one fetch
says little.

Measured: (a) the desktop's latency, medians and p95, alone (a watcher with
the desktop as its only device, its own database) against with the others
(the nas and the laptop away; the laptop catching up; after), over every
cycle; (b) each cycle's catch-up time against a bare `requests` fetch of
the same buckets with LifeLog's paging (scripts/bench_commands.py's
BARE_FETCH, run the same way for each bucket, timed after its imports),
run right before the laptop comes back and right after its catch-up,
under the same load (the desktop fed, sampled and polled); the catch-up is
timed from the poll that finds the laptop back (the watcher rewrites the
laptop's bucket rows when it reads their listing again, before fetching
any event), and also from the laptop's AW answering and from its first
new row; target: the median over the cycles <= 1.15 of the bare fetch;
(c) a device that accepts connections and never answers
(tests/support/fakeaw.SilentSocket) beside the desktop: the watcher's poll
period (watcher.heartbeat_at, one per poll) and the desktop's latency,
against alone; the cost per poll must stay within `aw_timeout_seconds`.

Only the contract's commands, settings and tables are used.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "scripts")]

from bench_commands import BARE_FETCH, page_size  # noqa: E402
from support.awserver import AWServer, free_port  # noqa: E402
from support.fakeaw import SilentSocket  # noqa: E402
from support.helpers import stop_process, wait_for  # noqa: E402

LIVE = "aw-watcher-window_desktop"
LAPTOP_BUCKETS = {"aw-watcher-window_laptop": "currentwindow", "aw-watcher-afk_laptop": "afkstatus"}
NAS = "aw-watcher-window_nas"
# Runs the bare fetch with its imports done first, and times only the fetch.
TIMED = ("import runpy, sys, time\nimport requests  # noqa: F401\nscript = sys.argv.pop(1)\n"
         "began = time.perf_counter()\nrunpy.run_path(script, run_name='__main__')\n"
         "sys.stderr.write(f'{time.perf_counter() - began:.6f}\\n')\n")


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat()


def feed(aw: AWServer, bucket: str, start: datetime, n: int, step: float, tag: str) -> None:
    batch = []
    for i in range(n):
        batch.append({"timestamp": iso(start + timedelta(seconds=step * i)), "duration": step * 0.8,
                      "data": {"app": f"app{i % 17}", "title": f"{tag} {i} - Editor"}})
        if len(batch) == 5000:
            aw.insert(bucket, batch)
            batch = []
    if batch:
        aw.insert(bucket, batch)


def count(aw: AWServer, bucket: str) -> int:
    return len(aw.events(bucket))


def q(db: Path, sql: str, args: tuple = ()) -> list[tuple]:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    except sqlite3.OperationalError:  # not created yet
        return []
    try:
        return conn.execute(sql, args).fetchall()
    except sqlite3.OperationalError:  # no schema yet
        return []
    finally:
        conn.close()


def meta(db: Path, key: str) -> str | None:
    r = q(db, "SELECT value FROM meta WHERE key = ?", (key,))
    return r[0][0] if r else None


def stored(db: Path, server: str, bucket: str) -> int:
    r = q(db, "SELECT count(*) FROM events WHERE server = ? AND bucket_id = ?", (server, bucket))
    return r[0][0] if r else 0


class Live:
    """Feeds the desktop one event every `every` seconds and notes when each
    is stored; also notes every change of watcher.heartbeat_at (one per poll)."""

    def __init__(self, aw: AWServer, db: Path, tag: str, every: float = 0.25):
        # `tag`: titles unique over the run (a later phase's database ingests the earlier ones too).
        self.aw, self.db, self.tag, self.every = aw, db, tag, every
        self.server = aw.device_id()
        self.sent: dict[str, float] = {}
        self.seen: dict[str, float] = {}
        self.beats: list[float] = []
        self.stop = threading.Event()
        self.n = 0
        self._threads = [threading.Thread(target=self._feed, daemon=True),
                         threading.Thread(target=self._sample, daemon=True)]

    def __enter__(self) -> Live:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self._threads:
            t.join(30)

    def _feed(self) -> None:
        while not self.stop.wait(self.every):
            title = f"{self.tag} {self.n}"
            self.n += 1
            self.aw.insert(LIVE, [{"timestamp": iso(datetime.now(UTC)), "duration": 0.1,
                                   "data": {"app": "live", "title": title}}])
            self.sent[title] = time.monotonic()

    def _sample(self) -> None:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)  # exists: phases wait for rows
        since, beat = "", None
        try:
            while not self.stop.wait(0.02):
                try:
                    got = conn.execute("SELECT timestamp, data FROM events WHERE server = ? AND bucket_id = ? "
                                       "AND timestamp > ? ORDER BY timestamp", (self.server, LIVE, since)).fetchall()
                    now_beat = conn.execute("SELECT value FROM meta WHERE key = 'watcher.heartbeat_at'").fetchone()
                except sqlite3.OperationalError:
                    continue
                at = time.monotonic()
                for ts, data in got:
                    self.seen.setdefault(json.loads(data).get("title", ""), at)
                    since = max(since, ts)
                if now_beat and now_beat[0] != beat:
                    beat = now_beat[0]
                    self.beats.append(at)
        finally:
            conn.close()

    def latencies(self, lo: float = 0.0, hi: float = float("inf")) -> list[float]:
        """Of the events sent within [lo, hi] (monotonic) and stored."""
        return [self.seen[t] - s for t, s in list(self.sent.items()) if lo <= s <= hi and t in self.seen]

    def periods(self, lo: float = 0.0, hi: float = float("inf")) -> list[float]:
        marks = [b for b in self.beats if lo <= b <= hi]
        return [b - a for a, b in zip(marks, marks[1:], strict=False)]


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(p * (len(s) - 1)))]


def row(label: str, xs: list[float]) -> str:
    if not xs:
        return f"| {label} | 0 | | | |"
    return (f"| {label} | {len(xs)} | {statistics.median(xs) * 1000:.0f} ms | {pct(xs, 0.95) * 1000:.0f} ms | "
            f"{max(xs) * 1000:.0f} ms |")


def watcher(env: dict[str, str], devices: dict, db: Path, log: Path) -> subprocess.Popen:
    e = dict(env, LIFELOG_DEVICES=json.dumps(devices), LIFELOG_DB_PATH=str(db))
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "lifelog", "watcher"], env=e, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def bare_fetch(aw: AWServer, bucket: str, home: Path, env: dict[str, str]) -> tuple[float, int]:
    script, timed = home / "bare_fetch.py", home / "timed.py"
    script.write_text(BARE_FETCH)
    timed.write_text(TIMED)
    p = subprocess.run([sys.executable, str(timed), str(script), aw.url, bucket, str(page_size())],
                       env=env, capture_output=True, text=True, timeout=1800)
    if p.returncode != 0:
        raise SystemExit(f"bench: the bare fetch failed: {p.stderr[-500:]}")
    return float(p.stderr.strip().splitlines()[-1]), int(p.stdout.strip())


def fetch_all(aw: AWServer, home: Path, env: dict[str, str], expected: int) -> float:
    """Seconds to fetch every laptop bucket, one bare fetch after the other."""
    total, n = 0.0, 0
    for b in LAPTOP_BUCKETS:
        secs, got = bare_fetch(aw, b, home, env)
        total += secs
        n += got
    if n != expected:
        raise SystemExit(f"bench: the bare fetch got {n} of {expected} events")
    return total


def newest_stored(db: Path, server: str, bucket: str) -> str | None:
    r = q(db, "SELECT max(timestamp) FROM events WHERE server = ? AND bucket_id = ?", (server, bucket))
    return r[0][0] if r else None


def _found_back(db: Path, server: str, since: str) -> str | None:
    """When the watcher found the laptop back: the poll that first reads its
    bucket listing again rewrites its buckets' last_seen_at (the listing
    changed while it was away), before any of its events is fetched."""
    r = q(db, "SELECT min(last_seen_at) FROM buckets WHERE server = ? AND last_seen_at > ?", (server, since))
    return r[0][0] if r else None


def same_time(a: str, b: str) -> bool:
    return datetime.fromisoformat(a.replace("Z", "+00:00")) == datetime.fromisoformat(b.replace("Z", "+00:00"))


@dataclass
class Cycle:
    """One laptop away and back, and what was measured of it."""

    k: int
    laptop: AWServer
    live: Live
    events: int  # in the laptop's buckets once back
    planted_in: float
    bare: tuple[float, float]  # the bare fetch right before it came back, and right after its catch-up
    away: tuple[float, float]  # monotonic windows, for the desktop's latencies
    catching_up: tuple[float, float]
    after: tuple[float, float]
    since_found: float  # catch-up seconds, from the poll that found it back
    since_back: float  # from its AW answering
    since_first_row: float
    doubled: int
    gaps: int
    told: list[str]  # the watcher's log lines about the laptop's catch-up

    def ratio(self, seconds: float) -> float:
        return seconds / statistics.mean(self.bare)


def catch_up_cycle(k: int, args: argparse.Namespace, home: Path, env: dict[str, str], desktop: AWServer,
                   nas: AWServer, procs: list[subprocess.Popen]) -> Cycle:
    """A watcher of the desktop, a laptop and the nas, each reached once; then
    the nas and the laptop away, three days planted in the laptop's data, and
    the laptop back and caught up while the desktop is fed."""
    laptop = AWServer(home / f"laptop{k}").start()
    now = datetime.now(UTC)
    for bucket, kind in LAPTOP_BUCKETS.items():
        laptop.create_bucket(bucket, kind, hostname="laptop")
        feed(laptop, bucket, now - timedelta(days=args.days, hours=1), 10, 60, "before")
    lid = laptop.device_id()
    if not nas.running():
        nas.start()
    db = home / f"fleet{k}.db"
    devices = {"desktop": {"url": desktop.url}, "laptop": {"url": laptop.url, "expect": "sometimes"},
               "nas": {"url": nas.url, "expect": "sometimes"}}
    log = home / "watcher.log"
    log_from = log.stat().st_size if log.exists() else 0
    w = watcher(env, devices, db, log)
    procs.append(w)
    wait_for(lambda: all(meta(db, f"device.{n}.reachable") == "yes" for n in devices)
             and stored(db, lid, "aw-watcher-window_laptop") == 10, 60, what="first contact")
    nas.stop()
    laptop.stop()
    wait_for(lambda: meta(db, "device.laptop.reachable") == "no" and meta(db, "device.nas.reachable") == "no",
             30, what="the laptop and the nas away")
    with Live(desktop, db, f"fleet{k}") as live:
        away_began = time.monotonic()
        # Planted while away: the laptop's AW on another port, its own data.
        planting = AWServer(laptop.home, port=free_port()).start()
        start = datetime.now(UTC) - timedelta(days=args.days)
        t = time.perf_counter()
        feed(planting, "aw-watcher-window_laptop", start, int(args.days * 86400 / args.step), args.step, "trip")
        feed(planting, "aw-watcher-afk_laptop", start, int(args.days * 86400 / 60), 60, "afk")
        planted_in = time.perf_counter() - t
        truth = {b: count(planting, b) for b in LAPTOP_BUCKETS}
        newest = {b: max(e["timestamp"] for e in planting.events(b)) for b in LAPTOP_BUCKETS}
        # The bare fetch before: the planting AW restarted (its writes
        # checkpointed, as the laptop's AW will have them), under the load
        # the catch-up meets.
        planting.stop()
        planting.start()
        before = fetch_all(planting, home, env, sum(truth.values()))
        planting.stop()
        if meta(db, "device.laptop.reachable") != "no":
            raise SystemExit("bench: LifeLog reached the laptop while it was away")
        if stored(db, lid, "aw-watcher-window_laptop") != 10:
            raise SystemExit("bench: LifeLog stored planted events while the laptop was away")
        old_head = newest_stored(db, lid, "aw-watcher-window_laptop")
        away_ended = time.monotonic()
        laptop.start()
        back, back_wall = time.monotonic(), datetime.now(UTC).isoformat(timespec="microseconds")
        first_row = found = None
        # Cheap reads while it runs (a count of 90,000 rows every 50 ms
        # would cost the watcher a core): the newest row of each bucket
        # (an index lookup) and the laptop's gaps; every page is
        # committed with its gap moved, so no gap left and each bucket's
        # newest event stored means done. Counted once at the end.
        while True:
            heads = {b: newest_stored(db, lid, b) for b in LAPTOP_BUCKETS}
            if first_row is None and heads["aw-watcher-window_laptop"] not in (None, old_head):
                first_row = time.monotonic()
            if found is None:
                found = _found_back(db, lid, back_wall)
            left = q(db, "SELECT count(*) FROM sync_gaps WHERE server = ?", (lid,))
            if first_row is not None and left == [(0,)] and all(
                    heads[b] is not None and same_time(heads[b], newest[b]) for b in LAPTOP_BUCKETS):
                break
            if time.monotonic() - back > 1800:
                raise SystemExit(f"bench: the laptop not caught up in 30 min: {heads}")
            time.sleep(0.05)
        caught, caught_wall = time.monotonic(), datetime.now(UTC)
        found = found or _found_back(db, lid, back_wall)
        if found is None:
            raise SystemExit("bench: the laptop's bucket rows were not rewritten when it came back")
        got = {b: stored(db, lid, b) for b in LAPTOP_BUCKETS}
        if got != truth:
            raise SystemExit(f"bench: the laptop's rows {got} are not its AW's {truth}")
        time.sleep(2)  # the steady state after the catch-up, for the record
        steady = time.monotonic()
        after = fetch_all(laptop, home, env, sum(truth.values()))
        wait_for(lambda: all(t in live.seen for t, s in list(live.sent.items()) if s <= steady), 60,
                 what="every live event stored")
    doubled = q(db, "SELECT count(*) FROM (SELECT 1 FROM events GROUP BY server, bucket_id, event_id "
                    "HAVING count(*) > 1)")[0][0]
    gaps = q(db, "SELECT count(*) FROM sync_gaps WHERE server = ?", (lid,))[0][0]
    stop_process(w)
    with open(log, encoding="utf-8", errors="replace") as f:
        f.seek(log_from)
        told = [line.split(": ", 1)[1].strip() for line in f if "device laptop: catch" in line]
    found_at = datetime.fromisoformat(found.replace("Z", "+00:00"))
    return Cycle(k, laptop, live, sum(truth.values()), planted_in, (before, after), (away_began, away_ended),
                 (back, caught), (caught, steady), (caught_wall - found_at).total_seconds(), caught - back,
                 caught - first_row, doubled, gaps, told)



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=3, help="days the laptop was away (default 3)")
    parser.add_argument("--step", type=float, default=3, help="seconds between its window events (default 3)")
    parser.add_argument("--poll", type=float, default=0.5, help="poll_interval_seconds (default 0.5)")
    parser.add_argument("--timeout", type=float, default=2, help="aw_timeout_seconds (default 2)")
    parser.add_argument("--phase-seconds", type=float, default=20, help="length of each steady phase (default 20)")
    parser.add_argument("--cycles", type=int, default=5, help="laptops away and caught up, one after the other "
                        "(default 5)")
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]}, aw-server --testing x3; poll_interval_seconds {args.poll:g}, "
          f"aw_timeout_seconds {args.timeout:g}, history in a catch-up thread per device")
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="lifelog-bench-devices-") as tmp:
        home = Path(tmp)
        desktop, nas = AWServer(home / "desktop"), AWServer(home / "nas")
        cycles: list[Cycle] = []
        hung = SilentSocket()
        env = {k: v for k, v in desktop.env.items() if not k.startswith("LIFELOG_")}
        env.update(HOME=str(home), XDG_STATE_HOME=str(home / "state"), LIFELOG_POLL_INTERVAL_SECONDS=str(args.poll),
                   LIFELOG_AW_TIMEOUT_SECONDS=str(args.timeout), LIFELOG_LOG_LEVEL="INFO")
        try:
            for aw in (desktop, nas):
                aw.start()
            now = datetime.now(UTC)
            desktop.create_bucket(LIVE, hostname="desktop")
            feed(desktop, LIVE, now - timedelta(minutes=30), 10, 60, "before")
            nas.create_bucket(NAS, hostname="nas")
            feed(nas, NAS, now - timedelta(hours=2), 10, 60, "before")
            phases: dict[str, tuple[Live, float, float]] = {}

            # 1. The desktop alone; then beside a device that never answers.
            for label, devices, db in (
                    ("alone", {"desktop": {"url": desktop.url}}, home / "alone.db"),
                    ("beside a silent device", {"hung": {"url": hung.url, "expect": "sometimes"},
                                                "desktop": {"url": desktop.url}}, home / "hung.db")):
                w = watcher(env, devices, db, home / "watcher.log")
                procs.append(w)
                wait_for(lambda db=db: stored(db, desktop.device_id(), LIVE) >= 10, 60, what=f"{label}: ingested")
                with Live(desktop, db, label) as live:
                    began = time.monotonic()
                    time.sleep(args.phase_seconds)  # the phase's length: samples accumulate meanwhile
                    ended = time.monotonic()
                    wait_for(lambda live=live, ended=ended: all(  # type: ignore[misc]
                        t in live.seen for t, s in list(live.sent.items()) if s <= ended), 60,
                        what=f"{label}: every live event stored")
                phases[label] = (live, began, ended)
                stop_process(w)

            # 2. All three, `cycles` times over (the host's speed drifts by
            # tens of percent over minutes: one catch-up against one fetch
            # says little): each cycle a watcher and database of its own, a
            # laptop of its own (its own data dir, so its own device_id) and
            # bare fetches of its data right before and right after it.
            for k in range(1, args.cycles + 1):
                cycles.append(catch_up_cycle(k, args, home, env, desktop, nas, procs))
            idle = fetch_all(cycles[-1].laptop, home, env, cycles[-1].events)
            cycles[-1].laptop.stop()
        finally:
            for p in procs:
                stop_process(p)
            for aw in (desktop, nas, *(c.laptop for c in cycles)):
                aw.stop()
            hung.close()

    alone, a0, a1 = phases["alone"]
    silent, s0, s1 = phases["beside a silent device"]
    c1 = cycles[0]
    print(f"\nplanted in each cycle: {c1.events - 20:,} events in the laptop's data while away "
          f"({args.days:g} days, in {', '.join(f'{c.planted_in:.1f}' for c in cycles)} s)")
    print("\n(a) the desktop's poll-to-stored latency (one event inserted every 0.25 s)\n")
    print("| desktop's events | n | median | p95 | max |\n|---|---|---|---|---|")
    print(row("alone (its own watcher, its own database)", alone.latencies(a0, a1)))
    for label, attr in (("with the others: the nas stopped, the laptop away", "away"),
                        ("with the others: the laptop catching up", "catching_up"),
                        ("with the others: after the catch-up", "after")):
        print(row(label + f" ({len(cycles)} cycles)", [x for c in cycles for x in c.live.latencies(*getattr(c, attr))]))
    print(row("beside a silent device (accepts, never answers)", silent.latencies(s0, s1)))
    exact = all(c.doubled == 0 and c.gaps == 0 for c in cycles)
    print(f"\n(b) catch-up of {c1.events:,} events in {len(LAPTOP_BUCKETS)} buckets, {len(cycles)} cycles "
          f"(stored exactly: {'yes' if exact else 'NO'}; doubled keys "
          f"{', '.join(str(c.doubled) for c in cycles)}, gaps left {', '.join(str(c.gaps) for c in cycles)})\n")
    print("The bare fetch: `requests`, LifeLog's paging, the same buckets, once right before the laptop comes "
          "back and once right after its catch-up, under the same load (the desktop fed, sampled and polled); "
          "each cycle's catch-up is compared with the mean of its two.\n")
    print("| cycle | bare fetch before, after | catch-up from the poll finding the laptop back | "
          "from its AW answering | from its first new row |\n|---|---|---|---|---|")
    for c in cycles:
        print(f"| {c.k} | {c.bare[0]:.2f}, {c.bare[1]:.2f} s | {c.since_found:.2f} s = **{c.ratio(c.since_found):.2f}** | "
              f"{c.since_back:.2f} s = {c.ratio(c.since_back):.2f} | "
              f"{c.since_first_row:.2f} s = {c.ratio(c.since_first_row):.2f} |")
    med = {attr: statistics.median(c.ratio(getattr(c, attr)) for c in cycles)
           for attr in ("since_found", "since_back", "since_first_row")}
    print(f"| median | | **{med['since_found']:.2f}** ({'ok' if med['since_found'] <= 1.15 else 'MISSED'} <= 1.15) | "
          f"{med['since_back']:.2f} | {med['since_first_row']:.2f} |")
    print("\nThe watcher's log, of each cycle's catch-up:\n")
    for c in cycles:
        print(f"- cycle {c.k}: " + "; ".join(c.told))
    print(f"\nThe same bare fetch on the idle machine after the run (the watcher and the feed stopped): "
          f"{idle:.2f} s.")
    pa, ps = alone.periods(a0, a1), silent.periods(s0, s1)
    cost = statistics.median(ps) - statistics.median(pa)
    print(f"\n(c) a silent device, aw_timeout_seconds {args.timeout:g}\n")
    print("| | poll period median | max |\n|---|---|---|")
    print(f"| desktop alone | {statistics.median(pa):.2f} s | {max(pa):.2f} s |")
    print(f"| desktop beside the silent device | {statistics.median(ps):.2f} s | {max(ps):.2f} s |")
    print(f"| cost per poll (difference of medians) | {cost:.2f} s | "
          f"{'ok' if cost <= args.timeout else 'MISSED'} <= {args.timeout:g} s |")


if __name__ == "__main__":
    main()
