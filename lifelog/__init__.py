"""LifeLog: a faithful, self-watching copy of ActivityWatch data in SQLite.

The CLI (`lifelog.cli`) is a thin layer over these modules; each can be
imported and used on its own:

- `lifelog.settings`  settings from options, environment, TOML and defaults
- `lifelog.db`        opening the database, the schema, `get_meta`/`set_meta`
- `lifelog.http`      bounded HTTP/1.1 over the standard library; `redact_url`
- `lifelog.aw`        bounded HTTP calls to the ActivityWatch server
- `lifelog.watcher`   the long-running watcher process
- `lifelog.sources`   is each of AW's own watchers recording? (the pure judgment)
- `lifelog.source_watch`  sources judged each watchdog pass, recorded, restarted; `lifelog sources`
- `lifelog.servers`   each AW server's host name, by device_id
"""

__version__ = "0.1.0"
