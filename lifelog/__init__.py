"""LifeLog: a faithful, self-watching copy of ActivityWatch data in SQLite.

The CLI (`lifelog.cli`) is a thin layer over these modules; each can be
imported and used on its own. The folders are layers, each importing only
from those below it (pyproject.toml's import-linter contract, run by
tests/test_layout.py); the README's "The code, folder by folder"
says what each module owns:

- `lifelog.core`      leaves: errors, time, clocks, named states, meta keys, settings
- `lifelog.db`        the SQLite file and its schema (`database`), `get_meta`/`set_meta` (`meta`)
- `lifelog.aw`        talking to ActivityWatch: the bounded HTTP client, the buckets
- `lifelog.ingest`    copying AW's events: the store, live polls, history, reconcile, the watcher
- `lifelog.checks`    liveness, status, AW health, the watchdog, process control, alerts
- one folder per capability: `lifelog.sources`, `lifelog.backups`, `lifelog.coverage`,
  `lifelog.outward`
- on top: `lifelog.wiring` (what each capability adds to the monitoring core, in order),
  `lifelog.monitor` (one refresh of the overall status, used by every part),
  `lifelog.daemon` (its timetable is `JOBS`), `lifelog.status_screen` and `lifelog.cli`
"""

__version__ = "0.1.0"
