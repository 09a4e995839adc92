"""Two system-wide clocks whose difference tells how long the machine slept.

`awake` stops while the machine is suspended; `since_boot` keeps counting.
Readings taken by different processes are comparable (both are per-machine),
so the watcher stores them with each heartbeat and the watchdog can tell "the
watcher hung" from "the lid was closed".
"""

from __future__ import annotations

import math
import sys
import time


def readings() -> tuple[float, float] | None:
    """(awake, since_boot) in seconds, or None where the OS has no such pair."""
    if sys.platform.startswith("linux"):
        return time.clock_gettime(time.CLOCK_MONOTONIC), time.clock_gettime(time.CLOCK_BOOTTIME)
    if sys.platform == "darwin":
        # macOS: UPTIME_RAW stops in sleep, MONOTONIC does not.
        return time.clock_gettime(time.CLOCK_UPTIME_RAW), time.clock_gettime(time.CLOCK_MONOTONIC)
    if sys.platform == "win32":
        return _windows_readings()
    return None


def boot_time() -> float | None:
    """When the machine booted (unix seconds). The watcher records it per run;
    coverage compares it with the current one to tell a reboot from a LifeLog
    that was down. On Linux the kernel's own figure; elsewhere the wall clock
    less the since-boot clock (which is how the kernel reckons it)."""
    if sys.platform.startswith("linux"):
        try:
            return kernel_boot_time()
        except (OSError, ValueError, IndexError):
            pass  # an odd /proc: reckon it from the clocks
    now = readings()
    return None if now is None else time.time() - now[1]


def kernel_boot_time() -> float:
    """Linux: when the machine booted, as /proc/stat's `btime` states it (whole
    unix seconds). psutil adds a process's start ticks to this same figure, so
    lifelog.core.identity reads start times against it too."""
    with open("/proc/stat", "rb") as f:
        for line in f:
            if line.startswith(b"btime "):
                return float(line.split()[1])
    raise OSError("no btime in /proc/stat")


def format_clocks(readings: tuple[float, float]) -> str:
    """(awake, since boot) as recorded in meta; parse_clocks reads it back."""
    return f"{readings[0]!r} {readings[1]!r}"


def parse_clocks(text: str | None) -> tuple[float, float] | None:
    try:
        awake, since_boot = (float(x) for x in str(text).split())
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(awake) and math.isfinite(since_boot)):
        return None
    return awake, since_boot


def _windows_readings() -> tuple[float, float] | None:
    """Windows: the unbiased interrupt time (100 ns units) leaves out sleep
    and hibernation; the tick count (ms) is the same interrupt time with
    them, at the system timer's resolution (10-16 ms), far below the 2 s a
    sleep must exceed to count."""
    import ctypes

    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]  # Windows only; mypy checks as Linux
    unbiased = ctypes.c_ulonglong()
    if not kernel32.QueryUnbiasedInterruptTime(ctypes.byref(unbiased)):
        return None
    kernel32.GetTickCount64.restype = ctypes.c_ulonglong  # the default, int, would cut it to 32 bits
    ticks = kernel32.GetTickCount64()
    return unbiased.value / 1e7, ticks / 1e3
