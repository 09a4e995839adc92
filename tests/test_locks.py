"""The one-process-per-role lock: flock here for real, and the Windows branch
(msvcrt.locking) against a recording stand-in for msvcrt."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time

import pytest

from lifelog.checks.watchdog import PassBusy, PassLock
from lifelog.core.errors import AlreadyRunning
from lifelog.core.locks import LOCK_OFFSET, ProcessLock, lock_path
from lifelog.core.settings import load_settings

HOLD = (
    "import sys, time\n"
    "from lifelog.core.locks import ProcessLock\n"
    "ProcessLock(sys.argv[1], sys.argv[2]).acquire()\n"
    "print('held', flush=True)\n"
    "time.sleep(120)\n"
)


@pytest.fixture
def holder(db_path, spawn):
    """Start a child process that holds the lock of a role; stopped by `spawn`."""
    def start(role: str) -> subprocess.Popen:
        child = spawn([sys.executable, "-c", HOLD, str(db_path), role], stdout=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "held"
        return child

    return start


def refusal(db_path, role: str, pid) -> str:
    return (f"another lifelog {role} (pid {pid}) is already running on {db_path}; "
            f"stop it first, or use another --db")


def test_a_refused_process_names_the_holder(db_path, holder):
    child = holder("watcher")
    with pytest.raises(AlreadyRunning) as refused:
        ProcessLock(db_path, "watcher").acquire()
    assert str(refused.value) == refusal(db_path, "watcher", child.pid)
    assert refused.value.holder == str(child.pid)  # for callers that word their own refusal
    assert refused.value.exit_code == 1
    # Another role on the same database is another lock.
    with ProcessLock(db_path, "daemon") as other:
        assert other.fd is not None


def test_the_lock_of_a_killed_holder_is_free_again(db_path, holder):
    child = holder("watcher")
    child.send_signal(signal.SIGKILL)
    assert child.wait(10) == -signal.SIGKILL
    with ProcessLock(db_path, "watcher"):
        # The new holder's PID replaces the dead one's, whole.
        assert lock_path(db_path, "watcher").read_text() == f"{os.getpid()}\n"


def test_a_released_lock_can_be_taken_again_in_the_same_process(db_path):
    first = ProcessLock(db_path, "watcher").acquire()
    with pytest.raises(AlreadyRunning):
        ProcessLock(db_path, "watcher").acquire()
    first.release()
    first.release()  # twice is harmless
    ProcessLock(db_path, "watcher").acquire().release()


def test_the_pass_lock_waits_boundedly_then_says_who_holds_it(db_path, holder, monkeypatch):
    monkeypatch.setenv("LIFELOG_DB_PATH", str(db_path))
    child = holder("watchdog")
    busy = PassLock(load_settings())
    busy.wait = 0.3
    began = time.monotonic()
    with pytest.raises(PassBusy) as refused:
        busy.__enter__()
    took = time.monotonic() - began
    # Its own wait (pass_lock_wait) would be about a minute: the margin is for a loaded machine.
    assert 0.3 <= took < 0.3 + 9.7, took
    assert f"(pid {child.pid})" in str(refused.value) and "held it over 0.3 s" in str(refused.value)
    child.kill()
    child.wait(10)
    with PassLock(load_settings()):
        assert lock_path(db_path, "watchdog").read_text() == f"{os.getpid()}\n"


# -- the Windows branch, with msvcrt stood in for --------------------------------


class FakeMsvcrt:
    """msvcrt.locking as Windows documents it, for the byte ranges of one
    process's descriptors: a range locked through one descriptor is refused
    (EACCES, as _locking reports it) through another until unlocked."""

    LK_UNLCK, LK_LOCK, LK_NBLCK, LK_RLCK, LK_NBRLCK = 0, 1, 2, 3, 4

    def __init__(self):
        self.calls: list[tuple[str, int, int]] = []  # (what, offset, nbytes)
        self.held: dict[tuple[int, int], int] = {}  # (inode, offset) -> fd

    def locking(self, fd: int, mode: int, nbytes: int) -> None:
        offset = os.lseek(fd, 0, os.SEEK_CUR)
        key = (os.fstat(fd).st_ino, offset)
        if mode == self.LK_UNLCK:
            self.calls.append(("unlock", offset, nbytes))
            if self.held.get(key) != fd:
                raise PermissionError(errno.EACCES, "Permission denied")
            del self.held[key]
            return
        assert mode == self.LK_NBLCK, "a lock that waits would hang a refused process"
        self.calls.append(("lock", offset, nbytes))
        if key in self.held:
            raise PermissionError(errno.EACCES, "Permission denied")
        self.held[key] = fd


@pytest.fixture
def windows(monkeypatch):
    msvcrt = FakeMsvcrt()
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setitem(sys.modules, "msvcrt", msvcrt)
    monkeypatch.setitem(sys.modules, "fcntl", None)  # importing it would now fail
    return msvcrt


def test_on_windows_one_byte_past_the_pid_is_locked_and_a_refused_process_reads_the_pid(db_path, windows):
    first = ProcessLock(db_path, "watcher").acquire()
    assert windows.calls == [("lock", LOCK_OFFSET, 1)]
    pid_text = lock_path(db_path, "watcher").read_bytes()
    assert pid_text == f"{os.getpid()}\n".encode()  # binary: no \r added
    assert LOCK_OFFSET > len(pid_text)  # the PID is readable while the lock is held

    with pytest.raises(AlreadyRunning) as refused:
        ProcessLock(db_path, "watcher").acquire()
    assert str(refused.value) == refusal(db_path, "watcher", os.getpid())
    assert windows.calls[-1] == ("lock", LOCK_OFFSET, 1)

    first.release()
    assert windows.calls[-1] == ("unlock", LOCK_OFFSET, 1) and not windows.held
    again = ProcessLock(db_path, "watcher").acquire()
    assert len(windows.held) == 1
    again.release()


def test_on_windows_an_unexpected_locking_error_is_raised_not_taken_for_a_holder(db_path, windows, monkeypatch):
    def broken(fd, mode, nbytes):
        raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(windows, "locking", broken)
    with pytest.raises(OSError) as failed:
        ProcessLock(db_path, "watcher").acquire()
    assert not isinstance(failed.value, AlreadyRunning) and failed.value.errno == errno.EINVAL



def test_a_watchdog_pass_that_cannot_get_the_lock_exits_1_in_one_line(db_path, holder, cli, monkeypatch):
    # The watchdog itself failed (SPEC's exit codes): 1, naming the holder, nothing else.
    from lifelog.checks import watchdog

    monkeypatch.setattr(watchdog, "pass_lock_wait", lambda settings: 0.3)
    child = holder("watchdog")
    r = cli("watchdog", "--once", "--db", str(db_path))
    assert r.code == 1
    assert r.err.count("\n") == 1 and "Traceback" not in r.err
    assert f"(pid {child.pid})" in r.err and "held it over 0.3 s" in r.err


def test_a_pass_waits_for_the_write_lock_at_most_half_the_heartbeat_timeout(db_path):
    from lifelog.checks import watchdog
    from lifelog.core.settings import Settings
    from lifelog.db.database import BUSY_TIMEOUT_SECONDS, lock_wait, open_db

    assert watchdog.write_wait(Settings(db_path=db_path)) == BUSY_TIMEOUT_SECONDS  # the default 120 s
    assert watchdog.write_wait(Settings(db_path=db_path, heartbeat_timeout_seconds=1.5)) == 0.75
    db = open_db(db_path)
    with lock_wait(db, 0.75):
        assert db.conn.execute("PRAGMA busy_timeout").fetchone()[0] == 750
    assert db.conn.execute("PRAGMA busy_timeout").fetchone()[0] == BUSY_TIMEOUT_SECONDS * 1000
