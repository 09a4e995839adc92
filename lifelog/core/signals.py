"""Stopping on SIGTERM/SIGINT: the handlers only record; the loop acts.

A long run (the watcher, the daemon, a backfill or reconcile, the watchdog
loop) checks the returned Event between steps and stops cleanly, with every
committed page kept.
"""

from __future__ import annotations

import signal
import threading


def stop_on_signals(stop: threading.Event | None = None) -> threading.Event:
    """`stop` (or a new Event), set by SIGTERM and SIGINT from now on."""
    stop = stop if stop is not None else threading.Event()

    def on_signal(signum, frame):  # only record it; the loop acts
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    return stop
