"""One live process per role and database: an exclusive lock on a file.

The lock is `flock` on `<db>.<role>.lock`; the kernel drops it when the holder
dies, even by SIGKILL, so a crash never leaves a stale lock to clear by hand.
The holder writes its PID into the file so a refused process can name it.
"""

from __future__ import annotations

import os
from pathlib import Path

from lifelog.errors import AlreadyRunning


def lock_path(db_path: Path, role: str) -> Path:
    return db_path.with_name(db_path.name + f".{role}.lock")


class ProcessLock:
    def __init__(self, db_path: Path, role: str):
        self.role = role
        self.db_path = Path(db_path)
        self.path = lock_path(self.db_path, role)
        self.fd: int | None = None

    def acquire(self) -> "ProcessLock":
        """Take the lock or raise AlreadyRunning naming the holder."""
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise AlreadyRunning(
                f"another lifelog {self.role} (pid {holder}) is already running on "
                f"{self.db_path}; stop it first, or use another --db"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock
            self.fd = None

    def __enter__(self) -> "ProcessLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
