"""Where log lines go (lifelog.core.logs): a reading command's to LifeLog's
log file only, or with -v to stderr too; nothing created when nothing is
logged; the file kept small. Each case a real process, as a command runs."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = """
import logging, sys
from lifelog.core.logs import setup_quiet_logging
setup_quiet_logging(verbose=sys.argv[1] == "v")
if sys.argv[2] == "log":
    logging.getLogger("lifelog.health").error("ActivityWatch server unhealthy: connection refused")
    logging.getLogger("lifelog.monitor").info("a detail")
print("the answer")
"""


def run(verbose: bool, log: bool, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", SCRIPT, "v" if verbose else "-", "log" if log else "-"],
                          capture_output=True, text=True, timeout=60, env=env or dict(os.environ))


def test_a_reading_command_logs_to_the_file_only(isolated_env):
    r = run(verbose=False, log=True)
    assert r.returncode == 0 and r.stdout == "the answer\n" and r.stderr == ""
    logged = (isolated_env / "state" / "lifelog" / "log" / "lifelog.log").read_text()
    assert " ERROR lifelog.health[" in logged and "a detail" not in logged  # WARNING and up


def test_verbose_puts_the_log_on_stderr_from_info_and_still_in_the_file(isolated_env):
    r = run(verbose=True, log=True)
    assert r.stdout == "the answer\n"
    assert " ERROR lifelog.health[" in r.stderr and " INFO lifelog.monitor[" in r.stderr
    assert " ERROR lifelog.health[" in (isolated_env / "state" / "lifelog" / "log" / "lifelog.log").read_text()


def test_lifelog_log_level_sets_what_the_file_gets(isolated_env):
    run(verbose=False, log=True, env=dict(os.environ, LIFELOG_LOG_LEVEL="INFO"))
    assert "a detail" in (isolated_env / "state" / "lifelog" / "log" / "lifelog.log").read_text()


def test_nothing_logged_creates_nothing(isolated_env):
    r = run(verbose=False, log=False)
    assert r.stdout == "the answer\n" and not (isolated_env / "state").exists()


def test_an_unwritable_log_folder_costs_the_lines_not_the_answer(isolated_env):
    state = isolated_env / "state"
    state.mkdir(parents=True)
    state.chmod(0o500)
    try:
        r = run(verbose=False, log=True, env=dict(os.environ))
    finally:
        state.chmod(0o700)
    assert r.returncode == 0 and r.stdout == "the answer\n"
    if os.geteuid() != 0:  # root writes anyway
        assert r.stderr == "" and not (state / "lifelog").exists()


def test_the_log_file_is_kept_under_a_mebibyte(isolated_env):
    from lifelog.core.logs import LOG_FILE_MAX_BYTES

    folder = isolated_env / "state" / "lifelog" / "log"
    folder.mkdir(parents=True)
    (folder / "lifelog.log").write_text("x" * (LOG_FILE_MAX_BYTES + 1))
    run(verbose=False, log=True)
    assert (folder / "lifelog.log.1").stat().st_size == LOG_FILE_MAX_BYTES + 1
    assert (folder / "lifelog.log").stat().st_size < 1000
