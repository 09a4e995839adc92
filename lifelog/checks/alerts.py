"""Never silent: run `alert_command` once per change of the overall status.

Every refresh of the overall status (after a health check, a watchdog pass,
or `lifelog status`; lifelog.monitor.refresh) calls `notify_if_changed` once.
The change is a compare-and-swap on the meta key `status.level` inside one
BEGIN IMMEDIATE transaction (taken only when a plain read sees another
level): of two processes that notice the same change, the first swaps and
runs the command; the second finds the level already recorded and does nothing.
"""

from __future__ import annotations

import logging
import os

from lifelog.core import commands, keys
from lifelog.core.settings import Settings
from lifelog.core.timeutil import now_iso
from lifelog.core.verdicts import Level
from lifelog.db.database import transaction
from lifelog.db.meta import get_meta, set_meta

log = logging.getLogger("lifelog.alerts")

ALERT_TIMEOUT = 30.0  # seconds an alert command may take before it is killed


def notify_if_changed(db, settings: Settings, report) -> bool:
    """Record a new overall level and run the alert command; True if it changed.

    The first level ever recorded is a baseline: it alerts only when it is
    not OK (an install that starts broken is news; one that starts fine is not).
    UNKNOWN reports (the database could not be read) are not recorded."""
    if report.level is Level.UNKNOWN:
        return False
    # A plain read first: a steady level (nearly every refresh) takes no write lock.
    if get_meta(db, keys.STATUS_LEVEL) == report.level.name:
        return False
    with transaction(db):
        previous_text = get_meta(db, keys.STATUS_LEVEL)
        if previous_text == report.level.name:
            return False
        previous = Level.parse(previous_text)
        set_meta(db, keys.STATUS_LEVEL, report.level.name)
        set_meta(db, keys.STATUS_SINCE, report.at)
        set_meta(db, keys.STATUS_SUMMARY, report.summary)
        set_meta(db, keys.STATUS_PREVIOUS, previous.name if previous is not None else "")
    if previous is None and report.level is Level.OK:
        return True
    prev_name = previous.name if previous is not None else "UNKNOWN"
    log.warning("status changed from %s: %s", prev_name, report.summary)
    run_alert(db, settings, report.level.name, prev_name, report.summary)
    return True


def run_alert(db, settings: Settings, level: str, previous: str, summary: str) -> None:
    """Run alert_command (no shell), bounded; its output goes to our stderr."""
    argv = settings.alert_command_argv
    if not argv:
        return
    env = dict(os.environ, LIFELOG_STATUS=level, LIFELOG_PREVIOUS_STATUS=previous,
               LIFELOG_SUMMARY=summary.splitlines()[0] if summary else "")
    outcome = commands.run(argv, ALERT_TIMEOUT, env=env, output_to_stderr=True).text
    if outcome != "exit 0":
        log.error("alert_command %s", outcome)
    set_meta(db, keys.STATUS_ALERTED_AT, now_iso())
    set_meta(db, keys.STATUS_ALERT_RESULT, outcome)
