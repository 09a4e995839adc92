"""Running a user's command: `alert_command`, `watcher_restart_command`, a
source's restart command. Split as a shell would and run with none, bounded.

On timeout the command's whole session is killed (POSIX), so what it
started goes too. Its output goes to a file, not a pipe: a child it left
behind holding a pipe would keep a read waiting past the bound.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import NamedTuple


class Ran(NamedTuple):
    """How a command ended: `text` is one line for meta and logs."""

    code: int | None  # its exit code; None when it could not start or was killed
    pid: int | None  # None when it could not start
    text: str  # "exit 0", "exit 5: <its last line>", "killed after 30 s", "could not run 'x': <why>"


def run(argv: list[str], timeout: float, *, env: Mapping[str, str] | None = None,
        output_to_stderr: bool = False) -> Ran:
    """Run `argv` (no shell), wait at most `timeout` seconds. Its output is
    captured (the last line is kept for `text`), or with `output_to_stderr`
    passed to ours (stdout included: a `--json` stdout stays one document)."""
    import signal
    import subprocess
    import tempfile

    posix = os.name == "posix"
    with tempfile.TemporaryFile() as captured:
        out = 2 if output_to_stderr else captured
        try:
            proc = subprocess.Popen(argv, env=None if env is None else dict(env), stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=2 if output_to_stderr else subprocess.STDOUT,
                                    start_new_session=posix)
        except OSError as e:
            return Ran(None, None, f"could not run {argv[0]!r}: {e.strerror or e}")
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            killed = False
            if posix and hasattr(signal, "SIGKILL"):  # its whole session: what it started goes too
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                    killed = True
                except OSError:
                    pass
            if not killed:
                proc.kill()
            proc.wait()
            return Ran(None, proc.pid, f"killed after {timeout:g} s")
        captured.seek(0)
        lines = captured.read()[-2000:].decode("utf-8", "replace").strip().splitlines()
    return Ran(code, proc.pid, f"exit {code}" + (f": {lines[-1][:200]}" if code and lines else ""))
