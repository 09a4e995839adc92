"""The wiring: what each capability adds to the monitoring core, in order,
read in one place.

- COMPONENTS: the status components, in the order `lifelog status` shows
  them; each is a pure function `(snapshot, settings) -> Component`
  (lifelog.checks.status.evaluate).
- PASS_STEPS: work each watchdog pass does inside its lock, after the
  watcher's verdict: `(db, settings, PassContext) -> None`
  (lifelog.checks.watchdog.run_pass).
- OUTPUTS: what runs after each refresh of the overall status, the alert
  done: `(db, settings, report, trigger, context, meta=...) -> None`, where
  `trigger` is "health", "watchdog" or "status" and `meta` the table as the
  refresh read it (lifelog.monitor.refresh).

The daemon's timetable is lifelog.daemon.JOBS: its jobs call the monitor,
which sits above this module. A new capability is a folder of its own and a
line here per part it adds. Its modules keep their heavy imports inside
functions: the cron pass imports every module named here every minute.
"""

from lifelog.backups import status as backup_status
from lifelog.checks import status
from lifelog.outward import metrics, ping
from lifelog.sources import watch as source_watch

COMPONENTS = (
    status.aw_component,
    status.watcher_component,
    status.data_component,
    status.devices_component,  # only with the devices setting
    status.restarts_component,
    status.watchdog_component,
    source_watch.sources_component,
    backup_status.backup_component,
)

PASS_STEPS = (
    source_watch.pass_step,  # judge and record the sources; restart a silent one
)

OUTPUTS = (
    metrics.write_metrics,  # the Prometheus file, when metrics_file is set
    ping.ping_after_pass,  # the dead man's switch, after watchdog passes
)
