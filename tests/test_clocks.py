"""The awake and since-boot clocks: Linux for real; the macOS and Windows
branches with the platform and its clock calls stood in for."""

from __future__ import annotations

import ctypes
import sys
import time

import pytest

from lifelog.checks.watchdog import clock_gap
from lifelog.core import clocks, keys


def test_on_linux_both_clocks_are_read_and_boot_time_includes_awake_time():
    awake, since_boot = clocks.readings()
    assert 0 < awake <= since_boot


def test_on_linux_the_boot_time_is_the_kernels_and_agrees_with_the_clocks():
    # The one figure the watcher records per run and identity reads start times against.
    assert clocks.boot_time() == clocks.kernel_boot_time()
    reckoned = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
    # btime is whole seconds; the margin is for the two reads of the wall clock.
    assert -0.5 <= reckoned - clocks.boot_time() < 1.5


def test_on_macos_uptime_raw_is_awake_and_monotonic_is_since_boot(monkeypatch):
    values = {"UPTIME_RAW": 100.0, "MONOTONIC": 160.0}
    monkeypatch.setattr(sys, "platform", "darwin")
    monkeypatch.setattr(time, "CLOCK_UPTIME_RAW", "UPTIME_RAW", raising=False)
    monkeypatch.setattr(time, "CLOCK_MONOTONIC", "MONOTONIC")
    monkeypatch.setattr(time, "clock_gettime", values.__getitem__)
    assert clocks.readings() == (100.0, 160.0)


def test_a_platform_without_such_clocks_gives_none(monkeypatch):
    monkeypatch.setattr(sys, "platform", "sunos5")
    assert clocks.readings() is None


class FakeKernel32:
    """The two kernel32 calls, with the machine's interrupt times set by the test."""

    def __init__(self, unbiased_100ns: int, ticks_ms: int, ok: bool = True):
        self.unbiased_100ns, self.ticks_ms, self.ok = unbiased_100ns, ticks_ms, ok

        def tick_count():
            return self.ticks_ms

        self.GetTickCount64 = tick_count  # a function, so `restype` can be set on it

    def QueryUnbiasedInterruptTime(self, ref) -> int:
        assert isinstance(ref._obj, ctypes.c_ulonglong)  # a PULONGLONG, as the API takes
        ref._obj.value = self.unbiased_100ns
        return 1 if self.ok else 0


@pytest.fixture
def windows(monkeypatch):
    kernel32 = FakeKernel32(0, 0)
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(ctypes, "windll", type("WinDLL", (), {"kernel32": kernel32})(), raising=False)
    return kernel32


def test_on_windows_unbiased_interrupt_time_is_awake_and_the_tick_count_since_boot(windows):
    windows.unbiased_100ns, windows.ticks_ms = 36_000_000_000, 7_200_000  # 1 h awake, 2 h since boot
    assert clocks.readings() == (3600.0, 7200.0)
    # 64 bits: left to ctypes' default (int), a tick count past 49.7 days would wrap.
    assert windows.GetTickCount64.restype is ctypes.c_ulonglong


def test_on_windows_a_failed_query_gives_none(windows):
    windows.ok = False
    assert clocks.readings() is None


def test_on_windows_a_sleep_between_two_readings_is_told_apart_from_awake_time(windows):
    windows.unbiased_100ns, windows.ticks_ms = 1_000 * 10**7, 1_000_000
    then = clocks.readings()
    # 20 s awake, then an hour asleep: the tick count goes on, the unbiased time does not.
    windows.unbiased_100ns += 20 * 10**7
    windows.ticks_ms += 20_000 + 3_600_000
    gap = clock_gap({keys.WATCHER_HEARTBEAT_CLOCKS: f"{then[0]!r} {then[1]!r}"}, clocks.readings())
    assert gap == pytest.approx((20.0, 3600.0))
