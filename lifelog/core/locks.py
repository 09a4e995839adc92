"""One live process per role and database: an exclusive lock on a file.

The lock is on `<db>.<role>.lock`: `flock` on POSIX, `msvcrt.locking` on
Windows. Either way the OS drops it when the holder dies, even by SIGKILL or
TerminateProcess, so a crash never leaves a stale lock to clear by hand. The
holder writes its PID at the start of the file so a refused process can name
it. Windows byte-range locks are mandatory (a locked byte cannot be read by
another process), so there the lock is one byte far past the PID, the way
SQLite keeps its lock bytes apart from its data.

Not filelock or portalocker: importing either adds 40-50 ms to the cron
pass, which imports this every minute (fcntl: under 1 ms), and on Windows
both lock from byte 0 (filelock 4.3 byte 0, portalocker 4.4 the first
64 KiB), where the PID is, so a refused process could not read it.
"""

from __future__ import annotations

import errno
import os
import sys
import time
from pathlib import Path

from lifelog.core.errors import AlreadyRunning

# Windows only: where the locked byte is. Past any PID, and locking beyond
# the end of a file is allowed, so the file stays a few bytes long.
LOCK_OFFSET = 1 << 30

# How often a bounded wait for a lock tries again.
RETRY_SECONDS = 0.05


def lock_path(db_path: Path, role: str) -> Path:
    return db_path.with_name(db_path.name + f".{role}.lock")


def _windows() -> bool:
    # Read at call time, so tests can run the Windows branch here.
    return sys.platform == "win32"


def _try_lock(fd: int) -> bool:
    """Take the exclusive lock without waiting; False if another holds it."""
    if _windows():
        import msvcrt

        os.lseek(fd, LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]  # Windows only; mypy checks as Linux
        except OSError as e:
            if e.errno in (errno.EACCES, errno.EDEADLK):  # what _locking says for "held"
                return False
            raise
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _unlock(fd: int) -> None:
    # Closing drops either lock, but Windows may release a lock left to the
    # close only some time later: unlock it there first.
    if _windows():
        import msvcrt

        os.lseek(fd, LOCK_OFFSET, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)  # type: ignore[attr-defined]  # Windows only; mypy checks as Linux


def _read_holder(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, 64).decode(errors="replace").strip() or "unknown"


def _write_holder(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, f"{os.getpid()}\n".encode())


class ProcessLock:
    def __init__(self, db_path: Path, role: str):
        self.role = role
        self.db_path = Path(db_path)
        self.path = lock_path(self.db_path, role)
        self.fd: int | None = None

    def acquire(self, wait: float = 0.0) -> ProcessLock:
        """Take the lock, trying again for up to `wait` seconds while another
        holds it; then raise AlreadyRunning naming the holder (`.holder`)."""
        deadline = time.monotonic() + wait
        while True:
            try:
                return self._acquire_now()
            except AlreadyRunning:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(RETRY_SECONDS)

    def _acquire_now(self) -> ProcessLock:
        # O_BINARY: no newline translation on Windows (0 elsewhere).
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o600)
        try:
            if not _try_lock(fd):
                holder = _read_holder(fd)
                raise AlreadyRunning(
                    f"another lifelog {self.role} (pid {holder}) is already running on "
                    f"{self.db_path}; stop it first, or use another --db",
                    holder,
                )
            _write_holder(fd)
        except BaseException:
            os.close(fd)  # also drops a lock just taken
            raise
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            try:
                _unlock(fd)
            finally:
                os.close(fd)

    def __enter__(self) -> ProcessLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
