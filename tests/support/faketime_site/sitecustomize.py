"""Loaded at start-up (through PYTHONPATH) by the Python processes a test
runs under libfaketime, and by no other.

libfaketime 0.9.10 (Debian 12's) breaks Python 3.11's `time.sleep` when it
leaves the monotonic clock alone (FAKETIME_DONT_FAKE_MONOTONIC=1, which the
tests need: the faked clock is the wall clock only): it turns the absolute
monotonic deadline of `clock_nanosleep` into a negative one and the call
fails with EINVAL (wolfcw/libfaketime#426). `subprocess` waits with
`time.sleep`, so the daemon could not even start its watcher. A wait on an
event sleeps the same time on the monotonic clock, which libfaketime passes
through untouched.
"""

import threading
import time

_never = threading.Event()


def _sleep(seconds: float) -> None:
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    _never.wait(seconds)


time.sleep = _sleep
