"""Two system-wide clocks whose difference tells how long the machine slept.

`awake` stops while the machine is suspended; `since_boot` keeps counting.
Readings taken by different processes are comparable (both are per-machine),
so the watcher stores them with each heartbeat and the watchdog can tell "the
watcher hung" from "the lid was closed".
"""

from __future__ import annotations

import sys
import time


def readings() -> tuple[float, float] | None:
    """(awake, since_boot) in seconds, or None where the OS has no such pair."""
    if sys.platform.startswith("linux"):
        return time.clock_gettime(time.CLOCK_MONOTONIC), time.clock_gettime(time.CLOCK_BOOTTIME)
    if sys.platform == "darwin":
        # macOS: UPTIME_RAW stops in sleep, MONOTONIC does not.
        return time.clock_gettime(time.CLOCK_UPTIME_RAW), time.clock_gettime(time.CLOCK_MONOTONIC)
    return None
