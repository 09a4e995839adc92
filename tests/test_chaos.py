"""The fault-injection suite: LifeLog's promise (nothing lost, every failure
seen, no needless restarts) checked against a seeded random schedule of
faults on real processes, a real aw-server and real signals.

Run alone with `scripts/test -m chaos`; the seed is printed and can be fixed
with LIFELOG_CHAOS_SEED. `scripts/chaos.py` runs the same schedule and prints
the figures the README quotes."""

from __future__ import annotations

import json
import os
import random

import pytest

from chaos_harness import DETECTION_BOUND, Chaos

pytestmark = pytest.mark.chaos


@pytest.fixture
def chaos(tmp_path):
    seed = int(os.environ.get("LIFELOG_CHAOS_SEED") or random.randrange(1 << 30))
    c = Chaos(tmp_path / "chaos", seed, faults=12)
    yield c
    c.teardown()


def test_a_random_schedule_of_kills_stops_outages_and_locks_loses_nothing_and_restarts_only_when_needed(
        chaos, tmp_path):
    summary = chaos.run()
    (tmp_path / "chaos-summary.json").write_text(json.dumps(summary, indent=2))
    seed = f"seed {summary['seed']}; summary in {tmp_path / 'chaos-summary.json'}"
    failed = [f"{f['kind']}: {f['problem']}" for f in summary["faults"] if not f["ok"]]
    assert failed == [], seed
    assert summary["faults_survived"] == summary["faults_injected"] >= 8, seed
    assert set(summary["fault_kinds"]) >= {"watcher_kill", "watcher_stop_long", "daemon_kill", "aw_restart",
                                           "db_lock", "system_suspend"}, seed
    # LifeLog equals AW: nothing lost, doubled or clipped.
    assert summary["events_compared"] > 500, seed
    assert (summary["lost"], summary["extra"], summary["differing"]) == (0, 0, 0), (seed, summary["examples"])
    assert summary["reconcile_exit"] == 0, seed
    # Restarts only where a fault called for one; never two watchers at once.
    assert summary["false_restarts"] == 0, (seed, summary["false_restart_rows"])
    assert summary["max_concurrent_watchers"] == 1, seed
    # A hung watcher is seen within its bound (plus slack for a loaded 2-core CI machine).
    assert summary["hung_detection_seconds"], seed
    assert max(summary["hung_detection_seconds"]) <= DETECTION_BOUND + 1.5, seed
    # Every process accounted for, and none left after the daemon's SIGTERM.
    assert summary["stray_processes"] == [], seed
    assert summary["daemon_exit_on_sigterm"] == 0, seed
    assert summary["processes_left_after_stop"] == [], seed
