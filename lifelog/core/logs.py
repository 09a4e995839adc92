"""Log lines that read well both in journald and in a log file.

Two set-ups. `setup_logging`: the log on stderr, for the processes and the
commands that log as they work (watcher, daemon, health, watchdog). And
`setup_quiet_logging`, for the reading commands (status, meta, sources,
coverage, config, paths; SPEC section 7): a person at a terminal gets the
answer and nothing else, so what logs on the way (a health check, an alert)
goes to LifeLog's log file, and on stderr too only when asked (`-v`).
Either replaces the handlers LifeLog set before, so a process that runs
several commands (the test suite) logs where the latest one says.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from lifelog.core.redact import ScrubbingFormatter

FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"
# The log file is kept under this size: past it, it becomes `lifelog.log.1`
# (the one before that is dropped) when a reading command next starts.
LOG_FILE_MAX_BYTES = 1 << 20


def _level(name: str | None, default: str) -> int:
    name = (name or os.environ.get("LIFELOG_LOG_LEVEL") or default).upper()
    return logging._nameToLevel.get(name, logging._nameToLevel[default])


def _install(handlers: list[logging.Handler], level: int) -> None:
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_lifelog", False)]:
        root.removeHandler(old)
        old.close()
    for handler in handlers:
        # Scrubbed: no secret (aw_api_key, a ping URL's token) reaches a log, even in a traceback.
        handler.setFormatter(ScrubbingFormatter(FORMAT))
        handler._lifelog = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)


def setup_logging(level: str | None = None, default: str = "INFO") -> None:
    """The log on stderr, at `level` (else LIFELOG_LOG_LEVEL, else `default`)."""
    _install([logging.StreamHandler()], _level(level, default))


def setup_quiet_logging(verbose: bool = False, log_file: Path | None = None) -> None:
    """A reading command's logging: to `log_file` (LifeLog's, by default) at
    LIFELOG_LOG_LEVEL or WARNING; with `verbose`, on stderr too, from INFO."""
    if log_file is None:
        from lifelog.core.settings import log_file as default_log_file

        log_file = default_log_file()
    file_level = _level(None, "WARNING")
    _keep_small(log_file)
    to_file = _LogFile(log_file, encoding="utf-8", delay=True)
    to_file.setLevel(file_level)
    handlers: list[logging.Handler] = [to_file]
    level = file_level
    if verbose:
        to_stderr = logging.StreamHandler()
        stderr_level = min(_level(None, "INFO"), logging.INFO)
        to_stderr.setLevel(stderr_level)
        handlers.append(to_stderr)
        level = min(level, stderr_level)
    _install(handlers, level)


class _LogFile(logging.FileHandler):
    """The log file, and its folder, made at the first line logged: a
    command that logs nothing (most runs) creates nothing."""

    def _open(self):
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()

    def handleError(self, record: logging.LogRecord) -> None:
        # A file that cannot be written (a read-only home) costs the line, not
        # the answer, and must not put a traceback on the terminal instead.
        pass


def _keep_small(path: Path) -> None:
    try:
        if path.stat().st_size > LOG_FILE_MAX_BYTES:
            os.replace(path, path.with_name(path.name + ".1"))
    except OSError:  # none yet, or a folder we cannot change
        pass
