"""The README's run command: with no AW server answering, the demo starts two
(a laptop and a desktop), feeds both, follows them with the `devices`
setting, runs the daemon, shows it through `lifelog status --watch`, stops the
laptop's AW for a while and starts it again, ends with `lifelog status` and
the coverage picture of both devices and the merged row, and leaves nothing
running when it stops."""

import os
import re
import subprocess
import sys
from pathlib import Path

import psutil
from support.awserver import free_port

REPO = Path(__file__).resolve().parent.parent
DAY = re.compile(r"\w{3} \d\d-\d\d ")


def coverage_rows(picture: str) -> dict[str, list[str]]:
    """Each device's day lines in the coverage picture, by the heading above them."""
    rows: dict[str, list[str]] = {}
    heading = None
    for line in picture.splitlines():
        if line in ("desktop", "laptop", "all devices"):
            heading = line
            rows[heading] = []
        elif heading is not None and DAY.match(line):
            rows[heading].append(line)
    return rows


def active_minutes(days: list[str]) -> int:
    return sum(int(h) * 60 + int(m) for line in days for h, m in re.findall(r"active (\d+):(\d\d)", line))


def test_the_demo_runs_two_devices_end_to_end_and_stops_everything_it_started():
    env = dict(os.environ, LIFELOG_AW_URL=f"http://127.0.0.1:{free_port()}")  # nobody there: it starts its own
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "demo.py"), "--seconds", "30", "--every", "2",
                        "--kill-after", "5", "--laptop-stop-after", "10", "--laptop-away", "10"],
                       env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    out = r.stdout
    home = re.search(r"starting two, a laptop and a desktop, in (\S+)", out).group(1)
    # The status screen, redrawn (printed one after another, as stdout is not a terminal).
    assert "=== lifelog status --watch" in out and "=== lifelog meta show" not in out
    assert out.count("LifeLog status ") >= 4
    assert re.search(r"^OK: AW healthy", out, re.M), out[-3000:]
    assert "killed the watcher" in out
    # the watchdog replaced the killed watcher, and the screen said so
    assert re.search(r"^\S+\s+restart:not_running\s+daemon", out, re.M), out[-3000:]

    # The laptop's stop, as the screens showed it: both answering, then the laptop away
    # (a `sometimes` device: OK, off or away), then answering again once started anew.
    watching = out.split("=== lifelog status --watch")[1].split("=== demo: killed")[0]
    stopped = watching.index("stopped the laptop's ActivityWatch")
    again = watching.index("started the laptop's ActivityWatch again")
    assert re.search(r"^\s+laptop\s+OK\s+laptop answers", watching[:stopped], re.M), watching[:stopped][-3000:]
    assert re.search(r"^\s+laptop\s+OK\s+laptop not seen for \d+ s: off or away", watching[stopped:again], re.M), \
        watching[stopped:again][-3000:]
    assert re.search(r"^\s+desktop\s+OK\s+desktop answers", watching[stopped:again], re.M)
    assert re.search(r"^\s+laptop\s+OK\s+laptop answers", watching[again:], re.M), watching[again:][-3000:]

    # It ends with `lifelog status`: one line per device in the devices component.
    status = out.split("=== lifelog status\n")[1].split("=== lifelog coverage")[0]
    assert re.search(r"^\s+devices\s+OK\s+2 devices$", status, re.M), status
    assert re.search(r"^\s+desktop\s+OK\s+desktop answers$", status, re.M), status
    assert re.search(r"^\s+laptop\s+OK\s+laptop answers$", status, re.M), status

    # Then the coverage picture of its own minutes: one row per device, then the merged row.
    picture = out.split("=== lifelog coverage")[1]
    assert [line for line in picture.splitlines() if line in ("desktop", "laptop", "all devices")] == [
        "desktop", "laptop", "all devices"], picture
    rows = coverage_rows(picture)
    laptop, desktop, merged = "".join(rows["laptop"]), "".join(rows["desktop"]), "".join(rows["all devices"])
    # The laptop: active, a break away, a stretch without window data.
    assert "█" in laptop and "░" in laptop and "?" in laptop, picture
    assert 140 <= active_minutes(rows["laptop"]) <= 175, picture  # 3 h, less 20 min away and the slots without
    # The desktop: an hour, away for an hour and a half while the laptop was used, then active again.
    assert "█" in desktop and "░" in desktop and "?" not in desktop, picture
    assert 80 <= active_minutes(rows["desktop"]) <= 105, picture
    # Merged: active when any device was; the laptop's gap stays a gap (the desktop was away then).
    assert "?" in merged, picture
    assert active_minutes(rows["laptop"]) <= active_minutes(rows["all devices"]) <= 175, picture

    # Every AW server it started (the laptop's twice) is gone, and nothing else of it runs.
    aw_pids = [int(p) for p in re.findall(r"answers at \S+ \(pid (\d+)\)", out)]
    aw_pids += [int(p) for p in re.findall(r"started the laptop's ActivityWatch again \(pid (\d+)\)", out)]
    assert len(aw_pids) == 3, out[:2000]
    for pid in aw_pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    left = [p.pid for p in psutil.process_iter(["cmdline"])
            if any(home in part for part in (p.info["cmdline"] or []))]
    assert left == []  # no daemon, no watcher
