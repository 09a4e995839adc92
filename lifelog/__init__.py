"""LifeLog: a faithful, self-watching copy of ActivityWatch data in SQLite.

The CLI (`lifelog.cli`) is a thin layer over these modules; each can be
imported and used on its own. The README's "The code, module by module"
says what each module owns; the ones to start from:

- `lifelog.settings`  settings from options, environment, TOML and defaults
- `lifelog.db`        opening the database, the schema, `get_meta`/`set_meta`
- `lifelog.watcher`   the long-running watcher process
- `lifelog.watchdog`  `decide()`, pure, and the pass that records and acts
- `lifelog.monitor`   one refresh of the overall status, used by every part
- `lifelog.registry`  where a capability (sources, backups, outward signals) plugs in
"""

__version__ = "0.1.0"
