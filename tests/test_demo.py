"""The README's run command: with no AW server answering, the demo starts two
(a laptop and a desktop), feeds both, follows them with the `devices`
setting, runs the daemon, shows it through `lifelog status --watch`, stops the
laptop's AW for a while (a whole minute of the clock) and starts it again,
ends with `lifelog status` and the coverage picture of both devices and the
merged row, where the laptop's stop shows as no data with the cause
device_unreachable, and leaves nothing running when it stops. A feeder that
fails ends the demo with exit 1, one line naming it, and nothing left
running."""

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
from contextlib import closing
from datetime import datetime
from pathlib import Path

import psutil
import pytest
from support.awserver import free_port
from support.helpers import stop_process, wait_for

REPO = Path(__file__).resolve().parent.parent
DEMO = [sys.executable, str(REPO / "scripts" / "demo.py")]
DAY = re.compile(r"\w{3} \d\d-\d\d ")
LABEL = 11  # the day's label before a row's cells: "Mon 12-07  "


def coverage_rows(picture: str) -> dict[str, list[str]]:
    """Each device's day lines in the coverage picture, by the heading above
    them; a day's totals, on a line of their own when the cells fill the
    width, joined to its line."""
    rows: dict[str, list[str]] = {}
    heading = None
    for line in picture.splitlines():
        if line in ("desktop", "laptop", "all devices"):
            heading = line
            rows[heading] = []
        elif heading is not None and DAY.match(line):
            rows[heading].append(line)
        elif heading is not None and rows[heading] and line.startswith(" " * LABEL + "active "):
            rows[heading][-1] += "  " + line.strip()
    return rows


def active_minutes(days: list[str]) -> int:
    return sum(int(h) * 60 + int(m) for line in days for h, m in re.findall(r"active (\d+):(\d\d)", line))


def cells(days: list[str]) -> str:
    """A row's cells, without the day's label and totals."""
    return "".join(line[LABEL:].split("  active ")[0] for line in days)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:  # reaped, by the demo or, once it is gone, by init
        return True


def left_running(home: str) -> list[str]:
    """The processes that name the demo's folder (its daemon, watcher, status screen)."""
    return [f"{p.pid} {' '.join(p.info['cmdline'])}" for p in psutil.process_iter(["cmdline"])
            if any(home in part for part in (p.info["cmdline"] or []))]


# The laptop stays stopped until a whole minute of the clock has passed (60 to
# 120 s), so the demo runs two to three minutes, longer on a loaded machine.
@pytest.mark.timeout(600)
def test_the_demo_runs_two_devices_end_to_end_and_stops_everything_it_started():
    env = dict(os.environ, LIFELOG_AW_URL=f"http://127.0.0.1:{free_port()}")  # nobody there: it starts its own
    r = subprocess.run([*DEMO, "--seconds", "400", "--every", "2", "--kill-after", "5", "--laptop-stop-after", "10",
                        "--laptop-away", "10", "--end-after-back", "5"],
                       env=env, capture_output=True, text=True, timeout=540)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "feeder failed" not in r.stderr, r.stderr[-2000:]
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

    # The laptop's stop, in the picture: its minute without data is a `d` (no data, the
    # device did not answer) in the laptop's row alone; the merged row is the desktop's there.
    assert "d" in cells(rows["laptop"]), picture
    assert "d" not in cells(rows["desktop"]) + cells(rows["all devices"]), picture
    assert "Dd device_unreachable" in picture

    # The same in `lifelog coverage --json`, and LifeLog's health checks of the laptop agree.
    home_db = Path(home) / "lifelog.db"
    devices = re.search(r"^LIFELOG_DEVICES=(.+)$", out, re.M).group(1)
    since = re.search(r"=== lifelog coverage --since (\S+) --slot-minutes 1$", out, re.M).group(1)
    report = subprocess.run([str(Path(sys.executable).parent / "lifelog"), "coverage", "--json", "--since", since,
                             "--slot-minutes", "1"],
                            env=dict(env, LIFELOG_DB_PATH=str(home_db), LIFELOG_DEVICES=devices),
                            capture_output=True, text=True, timeout=60)
    assert report.returncode == 0, report.stderr
    stretches = json.loads(report.stdout)["stretches"]
    stops = [s for s in stretches if s["device"] == "laptop" and s["cause"] == "device_unreachable"]
    assert len(stops) == 1, stretches
    stop = stops[0]
    start, end = datetime.fromisoformat(stop["start"]), datetime.fromisoformat(stop["end"])
    assert stop["class"] == "no_data" and (end - start).total_seconds() >= 60, stop
    merged_there = [s for s in stretches if s["device"] is None
                    and datetime.fromisoformat(s["start"]) < end and start < datetime.fromisoformat(s["end"])]
    assert merged_there and {s["class"] for s in merged_there} == {"active"}, merged_there
    assert not [s for s in stretches if s["device"] == "desktop" and s["cause"] == "device_unreachable"], stretches
    with closing(sqlite3.connect(f"file:{home_db}?mode=ro", uri=True)) as conn:
        checks = [(datetime.fromisoformat(at), device, status)
                  for at, device, status in conn.execute("SELECT checked_at, device, status FROM health_checks")]
    during = [status for at, device, status in checks if device == "laptop" and start <= at < end]
    assert during and set(during) == {"unreachable"}, checks  # real checks while its AW was gone
    assert (f"the laptop's stop is the `d` in its row: no_data from {stop['start'][11:16]} to {stop['end'][11:16]}, "
            "cause device_unreachable") in out

    # Every AW server it started (the laptop's twice) is gone, and nothing else of it runs.
    aw_pids = [int(p) for p in re.findall(r"answers at \S+ \(pid (\d+)\)", out)]
    aw_pids += [int(p) for p in re.findall(r"started the laptop's ActivityWatch again \(pid (\d+)\)", out)]
    assert len(aw_pids) == 3, out[:2000]
    for pid in aw_pids:
        assert gone(pid)
    assert left_running(home) == []  # no daemon, no watcher


def test_a_feeder_that_fails_ends_the_demo_with_one_line_naming_it_and_stops_everything():
    """The laptop's AW killed under its feeder (not by the demo's plan): the
    feeder's next request fails, and the demo stops at once, exit 1."""
    env = dict(os.environ, LIFELOG_AW_URL=f"http://127.0.0.1:{free_port()}")
    demo = subprocess.Popen([*DEMO, "--seconds", "240", "--every", "1", "--kill-after", "0",
                             "--laptop-stop-after", "0"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    errors: list[str] = []
    readers = [threading.Thread(target=lambda s=stream, into=into: into.extend(s), daemon=True)
               for stream, into in ((demo.stdout, lines), (demo.stderr, errors))]
    for reader in readers:
        reader.start()
    try:
        # Its feeder is beating: the status screen shows the laptop's window bucket live.
        wait_for(lambda: any(re.match(r"laptop\s+aw-watcher-window_laptop\s+live", line) for line in lines),
                 timeout=120, what="the laptop's window source live on the status screen")
        laptop_pid = int(next(m.group(1) for line in lines
                              if (m := re.match(r"laptop: ActivityWatch .* answers at \S+ \(pid (\d+)\)", line))))
        desktop_pid = int(next(m.group(1) for line in lines
                               if (m := re.match(r"desktop: ActivityWatch .* answers at \S+ \(pid (\d+)\)", line))))
        os.kill(laptop_pid, signal.SIGKILL)
        rc = demo.wait(120)
    finally:
        stop_process(demo)
    for reader in readers:
        reader.join(10)
    out = "".join(lines)
    assert rc == 1, (out[-2000:], errors)
    failure = [line for line in errors if line.strip()]
    assert len(failure) == 1, errors  # one line, no traceback
    assert re.match(r"demo: the laptop's feeder failed: \w+Error: POST http://127\.0\.0\.1:\d+/api/0/buckets/"
                    r"aw-watcher-\w+_laptop/(heartbeat|events)\S*: .+; its ActivityWatch log is \S+/laptop/aw-server\.log; "
                    r"stopped everything the demo started$", failure[0]), failure[0]
    assert "=== lifelog coverage" not in out  # no pictures of a demo gone wrong
    home = re.search(r"starting two, a laptop and a desktop, in (\S+)", out).group(1)
    assert gone(laptop_pid) and gone(desktop_pid)
    assert left_running(home) == []
