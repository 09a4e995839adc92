"""The README's run command: the demo starts AW, feeds it, runs the daemon,
shows it through `lifelog status --watch`, ends with the coverage picture,
and leaves nothing running when it stops."""

import os
import re
import subprocess
import sys
from pathlib import Path

import psutil
from support.awserver import free_port

REPO = Path(__file__).resolve().parent.parent


def test_the_demo_runs_end_to_end_and_stops_everything_it_started():
    env = dict(os.environ, LIFELOG_AW_URL=f"http://127.0.0.1:{free_port()}")  # nobody there: it starts its own
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "demo.py"), "--seconds", "14", "--every", "2",
                        "--kill-after", "5"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    home = re.search(r"starting one in (\S+)", r.stdout).group(1)
    # The status screen, redrawn (printed one after another, as stdout is not a terminal).
    assert "=== lifelog status --watch" in r.stdout and "=== lifelog meta show" not in r.stdout
    assert r.stdout.count("LifeLog status ") >= 4
    assert re.search(r"^OK: AW healthy", r.stdout, re.M), r.stdout[-3000:]
    assert "killed the watcher" in r.stdout
    # the watchdog replaced the killed watcher, and the screen said so
    assert re.search(r"^\S+\s+restart:not_running\s+daemon", r.stdout, re.M), r.stdout[-3000:]
    # It ends with the coverage picture of its own minutes: the history it fed (active, a break away,
    # a stretch without window data) and the live minutes.
    picture = r.stdout.split("=== lifelog coverage")[1]
    days = [line for line in picture.splitlines() if re.match(r"\w{3} \d\d-\d\d ", line)]  # two after midnight
    cells = "".join(days)
    assert "█" in cells and "░" in cells and "?" in cells, picture
    active = sum(int(h) * 60 + int(m) for line in days for h, m in re.findall(r"active (\d+):(\d\d)", line))
    assert 140 <= active <= 175, picture  # 3 h fed, less the 20 min away and the slots without window data
    aw_pid = int(re.search(r"answers at \S+ \(pid (\d+)\)", r.stdout).group(1))
    assert not psutil.pid_exists(aw_pid) or psutil.Process(aw_pid).status() == psutil.STATUS_ZOMBIE
    left = [p.pid for p in psutil.process_iter(["cmdline"])
            if any(home in part for part in (p.info["cmdline"] or []))]
    assert left == []  # no daemon, no watcher
