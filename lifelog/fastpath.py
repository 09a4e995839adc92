"""The `lifelog` entry point, with a fast path for the watchdog's cron pass.

`lifelog watchdog --once` runs every minute for years. Through typer it
spends most of its time importing typer (which pulls in rich and pydantic)
and sqlite-utils, not watching. So exactly this command line,

    lifelog watchdog --once [--json] [--db PATH] [--config PATH]

(options in any order, `--opt=value` accepted, each at most once) runs
without either; anything else (--help, an unknown option, a repeated one)
goes to the typer CLI, which owns every message and exit code. The pass
itself is the same function on both paths (`lifelog.cli.run_watchdog` uses
`lifelog.watchdog.run_pass` too), and a test runs both and compares.
"""

from __future__ import annotations

import os
import sys


def parse(argv: list[str]) -> dict | None:
    """The options of an exact `watchdog --once` command line, or None."""
    if argv[:1] != ["watchdog"]:
        return None
    opts: dict = {"once": False, "json": False, "db": None, "config": None}
    seen: set[str] = set()
    rest = argv[1:]
    i = 0
    while i < len(rest):
        arg = rest[i]
        name, eq, value = arg.partition("=")
        if name in seen:
            return None
        if arg in ("--once", "--json"):
            opts[arg[2:]] = True
        elif name in ("--db", "--config"):
            if not eq:
                if i + 1 >= len(rest) or rest[i + 1].startswith("-"):
                    return None
                i += 1
                value = rest[i]
            if not value:
                return None
            opts[name[2:]] = value
        else:
            return None
        seen.add(name)
        i += 1
    return opts if opts["once"] else None


class _Table:
    """Enough of a sqlite-utils Table for set_meta: upsert by primary key."""

    def __init__(self, conn, name: str):
        self.conn, self.name = conn, name

    def upsert(self, record: dict, pk: str) -> None:
        cols = list(record)
        updates = ", ".join(f"{c} = excluded.{c}" for c in cols if c != pk)
        self.conn.execute(
            f"INSERT INTO {self.name} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})"
            f" ON CONFLICT ({pk}) DO UPDATE SET {updates}",
            [record[c] for c in cols],
        )


class LiteDB:
    """What the monitoring code uses of sqlite_utils.Database (`.conn` and
    `db["meta"].upsert`), over the same connection settings as open_db."""

    def __init__(self, conn):
        self.conn = conn

    def __getitem__(self, name: str) -> _Table:
        return _Table(self.conn, name)


def open_lite(path: str | os.PathLike[str]):
    """An existing, current database opened without sqlite-utils; anything
    else (missing, old schema, not a database) goes through open_db, which
    creates it or reports the trouble as usual."""
    import sqlite3

    from lifelog import db as dbmod

    try:
        if os.path.isfile(path):
            conn = dbmod.connect(path)
            if conn.execute("PRAGMA user_version").fetchone()[0] >= dbmod.SCHEMA_VERSION:
                conn.execute("PRAGMA synchronous = NORMAL")
                return LiteDB(conn)
            conn.close()
    except sqlite3.DatabaseError:
        pass
    return dbmod.open_db(path)


def run_once(opts: dict) -> int:
    from lifelog.settings import load_settings
    from lifelog.logs import setup_logging
    from lifelog import watchdog

    settings = load_settings(config=opts["config"], overrides={"db_path": opts["db"]})
    setup_logging(os.environ.get("LIFELOG_LOG_LEVEL") or "WARNING")
    result = watchdog.run_pass(open_lite(settings.db_path), settings, actor="cron")
    watchdog.print_pass(result, opts["json"])
    return 0


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    opts = parse(args)
    if opts is None:
        from lifelog.cli import main as cli_main

        cli_main(argv)
        return
    from lifelog.errors import LifelogError
    from lifelog.redact import scrub, scrubbed_traceback

    try:
        code = run_once(opts)
    except LifelogError as e:
        sys.stderr.write(scrub(f"lifelog: error: {e}\n"))
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("lifelog: interrupted\n")
        sys.exit(130)
    except Exception as e:  # same contract as lifelog.cli.main
        if os.environ.get("LIFELOG_DEBUG"):  # the traceback, with no secret in it
            sys.stderr.write(scrubbed_traceback(e))
            sys.exit(1)
        first = scrub(str(e).splitlines()[0]) if str(e) else ""
        sys.stderr.write(f"lifelog: error: {type(e).__name__}: {first} (set LIFELOG_DEBUG=1 for the traceback)\n")
        sys.exit(1)
    sys.exit(code)


if __name__ == "__main__":
    main()
