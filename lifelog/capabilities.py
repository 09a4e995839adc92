"""Every capability's module, imported once here so that its status
component, pass step, outputs and daemon job are registered
(lifelog.registry) wherever the monitoring core runs.

A new capability is one more import below; nothing else in the core changes.
Each module keeps its heavy imports inside functions: the cron pass imports
all of them every minute.
"""

from lifelog.backups import status as backup_status  # noqa: F401  (backups: status component, daemon job)
from lifelog.checks import status  # noqa: F401  (aw, watcher, data, restarts, watchdog)
from lifelog.outward import metrics, ping  # noqa: F401  (outputs: the metrics file, the dead man's switch)
from lifelog.sources import watch as source_watch  # noqa: F401  (sources: AW's own watchers)
