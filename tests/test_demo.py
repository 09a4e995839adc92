"""The README's run command: the demo starts AW, feeds it, runs the daemon,
shows status as it changes, and leaves nothing running when it stops."""

import os
import re
import subprocess
import sys
from pathlib import Path

import psutil

from awserver import free_port

REPO = Path(__file__).resolve().parent.parent


def test_the_demo_runs_end_to_end_and_stops_everything_it_started():
    env = dict(os.environ, LIFELOG_AW_URL=f"http://127.0.0.1:{free_port()}")  # nobody there: it starts its own
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "demo.py"), "--seconds", "14", "--every", "2",
                        "--kill-after", "5"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    home = re.search(r"starting one in (\S+)", r.stdout).group(1)
    assert "=== lifelog status" in r.stdout and "=== lifelog meta show" in r.stdout
    assert re.search(r"^OK: AW healthy", r.stdout, re.M), r.stdout[-3000:]
    assert "killing the watcher" in r.stdout
    # the watchdog replaced the killed watcher, and the status said so
    assert "restart:not_running" in r.stdout
    assert "watcher.last_event_ts" in r.stdout
    aw_pid = int(re.search(r"answers at \S+ \(pid (\d+)\)", r.stdout).group(1))
    assert not psutil.pid_exists(aw_pid) or psutil.Process(aw_pid).status() == psutil.STATUS_ZOMBIE
    left = [p.pid for p in psutil.process_iter(["cmdline"])
            if any(home in part for part in (p.info["cmdline"] or []))]
    assert left == []  # no daemon, no watcher
