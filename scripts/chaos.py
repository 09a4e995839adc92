#!/usr/bin/env python3
"""Run the chaos schedule of tests/test_chaos.py once and print its figures.

    .venv/bin/python scripts/chaos.py [--seed N] [--faults 12] [--json]

A real aw-server (in a temp dir), `lifelog daemon` and its watcher, synthetic
activity, and a seeded random schedule of faults: SIGKILL and SIGSTOP of the
watcher, SIGKILL and SIGTERM of the daemon, AW stopped and started, a held
database write lock, every process suspended at once. Prints faults
injected and survived, events compared with AW and lost / extra / changed,
restarts and false restarts, and the hung-watcher detection time against its
bound. Exit code 0 when every figure is on target, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from support.chaos import Chaos  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=None, help="schedule seed (default: random, printed)")
    parser.add_argument("--faults", type=int, default=12, help="faults to inject (default 12)")
    parser.add_argument("--json", action="store_true", help="print the whole summary as JSON")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    with tempfile.TemporaryDirectory(prefix="lifelog-chaos-") as work:
        chaos = Chaos(Path(work), seed, faults=args.faults, log=lambda m: print(m, file=sys.stderr))
        try:
            summary = chaos.run()
        finally:
            chaos.teardown()
    good = (summary["faults_survived"] == summary["faults_injected"]
            and (summary["lost"], summary["extra"], summary["differing"], summary["false_restarts"]) == (0, 0, 0, 0)
            and summary["max_concurrent_watchers"] == 1 and not summary["stray_processes"]
            and not summary["processes_left_after_stop"])
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0 if good else 1
    det = summary["hung_detection_seconds"]
    rows = [
        ("seed", summary["seed"]),
        ("faults injected / survived", f"{summary['faults_injected']} / {summary['faults_survived']}"),
        ("fault kinds", ", ".join(summary["fault_kinds"])),
        ("events compared with AW", summary["events_compared"]),
        ("lost / extra / changed", f"{summary['lost']} / {summary['extra']} / {summary['differing']}"),
        ("restarts (all attributed to a fault)", summary["restarts"]),
        ("false restarts", summary["false_restarts"]),
        ("most watchers alive at once", summary["max_concurrent_watchers"]),
        ("hung watcher detected after (s)", ", ".join(f"{d:.2f}" for d in det) or "-"),
        ("detection bound (s)", f"{summary['hung_detection_bound_seconds']:g}"),
        ("stray / left-over processes", f"{len(summary['stray_processes'])} / "
                                        f"{len(summary['processes_left_after_stop'])}"),
        ("events found only by the final reconcile", summary["found_by_reconcile"]),
        ("wall time (s)", summary["wall_seconds"]),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k.ljust(width)}  {v}")
    for f in summary["faults"]:
        if not f["ok"]:
            print(f"FAILED {f['kind']}: {f['problem']}")
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
