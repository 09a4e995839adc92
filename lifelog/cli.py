"""The `lifelog` command line: parse, call one library function, render.

argparse, not typer: every command, the watchdog's cron pass every minute
above all, starts a new Python, and typer (with rich and pydantic) costs
~130 ms to import before any work is done (README "Speed"). One parser
serves every command line, so there is one implementation of each command
and one place (`main`) that turns errors into one line and an exit code.

Every command takes `--db` and `--config` after its name. Library modules
are imported inside the commands, so each command loads only what it uses.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from lifelog.core.errors import LifelogError, UsageError
from lifelog.core.redact import scrub, scrubbed_traceback

PROG = "lifelog"


class CommandLineError(UsageError):
    """An unknown option, a missing value: argparse's complaint, on one line."""

    def __init__(self, message: str, prog: str):
        super().__init__(f"{message} (see '{prog} --help')")


class Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kw: Any):
        kw.setdefault("allow_abbrev", False)  # a typo must not match another option
        super().__init__(*args, **kw)

    def error(self, message: str):  # argparse would print usage and exit 2 itself
        raise CommandLineError(message, self.prog)


# -- shared options and helpers ----------------------------------------------------


def _common() -> Parser:
    common = Parser(add_help=False)
    common.add_argument("--db", metavar="PATH", help="database file (setting db_path)")
    common.add_argument("--config", metavar="PATH",
                        help="TOML config file (default: $LIFELOG_CONFIG, or lifelog/config.toml in "
                             "your config directory)")
    return common


def _settings(args: argparse.Namespace, **overrides: Any):
    from lifelog.core.settings import load_settings

    return load_settings(config=args.config, overrides={"db_path": args.db, **overrides})


def _print_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2) + "\n")


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _print_table(rows: Sequence[tuple[str, ...]]) -> None:
    """Columns padded to their widest cell; the last one (a reason, an age) left free."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        _out("  ".join([cell.ljust(w) for cell, w in zip(row, widths, strict=False)] + [row[-1]]).rstrip())


def _quiet_logging() -> None:
    """One-shot commands print their result on stdout; the log shows only
    trouble on stderr unless LIFELOG_LOG_LEVEL asks for more."""
    from lifelog.core.logs import setup_logging

    setup_logging(os.environ.get("LIFELOG_LOG_LEVEL") or "WARNING")


def _open_existing(settings):
    from lifelog.db.database import open_db

    return open_db(settings.db_path, create=False)


# -- the commands ------------------------------------------------------------------


def cmd_init(args) -> int:
    from lifelog.db.database import open_db

    settings = _settings(args)
    open_db(settings.db_path).close()
    _out(str(settings.db_path))
    return 0


def cmd_meta_show(args) -> int:
    from lifelog.core.timeutil import format_age
    from lifelog.db.meta import meta_rows

    settings = _settings(args)
    with _open_existing(settings) as db:
        rows = meta_rows(db, args.prefixes)
    if args.json:
        _print_json({"db": str(settings.db_path),
                     "meta": {r["key"]: {"value": r["value"], "updated_at": r["updated_at"],
                                         "age_seconds": r["age_seconds"]} for r in rows}})
        return 0
    if not rows:
        _out("(no meta keys" + (f" starting with {', '.join(args.prefixes)})" if args.prefixes else ")"))
        return 0
    table = [("KEY", "VALUE", "UPDATED_AT", "AGE")] + [
        (r["key"], _clip(r["value"] or ""), r["updated_at"], format_age(r["age_seconds"])) for r in rows
    ]
    _print_table(table)
    return 0


def _clip(value: str, width: int = 60) -> str:
    """One screen wide: long values (command lines) are cut; --json and get give them whole."""
    value = value.replace("\n", " ")
    return value if len(value) <= width else value[: width - 1] + "…"


def cmd_meta_get(args) -> int:
    from lifelog.db.meta import get_meta

    settings = _settings(args)
    with _open_existing(settings) as db:
        value = get_meta(db, args.key)
    if value is None:
        sys.stderr.write(f"lifelog: no meta key {args.key!r} in {settings.db_path}\n")
        return 1
    _out(value)
    return 0


def cmd_watcher(args) -> int:
    from lifelog.core.logs import setup_logging
    from lifelog.ingest import watcher

    settings = _settings(args, aw_url=args.aw_url)
    setup_logging()
    return watcher.run(settings)


def cmd_daemon(args) -> int:
    from lifelog import daemon
    from lifelog.core.logs import setup_logging

    settings = _settings(args, aw_url=args.aw_url)
    setup_logging()
    return daemon.run(settings)


def cmd_health(args) -> int:
    from lifelog import monitor
    from lifelog.db.database import open_db

    settings = _settings(args)
    _quiet_logging()
    with open_db(settings.db_path) as db:
        result, _ = monitor.check_health(db, settings)
    if args.json:
        _print_json(result.to_json())
    else:
        _out(result.line())
    return result.exit_code


def cmd_watchdog(args) -> int:
    from lifelog import monitor
    from lifelog.db.database import open_db

    settings = _settings(args)

    def show(result) -> None:
        _out(json.dumps(result.to_json()) if args.json else result.line())
        sys.stdout.flush()

    if args.once:
        _quiet_logging()
        with open_db(settings.db_path) as db:
            show(monitor.watchdog_pass(db, settings, actor="cron"))
        return 0
    from lifelog.core.logs import setup_logging
    from lifelog.core.signals import stop_on_signals

    setup_logging()
    stop = stop_on_signals()
    with open_db(settings.db_path) as db:
        monitor.loop(db, settings, show, stop=stop, actor="loop")
    return 0


def cmd_watchdog_pause(args) -> int:
    from lifelog.checks import watchdog

    with _open_existing(_settings(args)) as db:
        watchdog.pause(db)
    _out("watchdog paused; 'lifelog watchdog resume' to resume")
    return 0


def cmd_watchdog_resume(args) -> int:
    from lifelog.checks import watchdog

    with _open_existing(_settings(args)) as db:
        watchdog.resume(db)
    _out("watchdog resumed")
    return 0


def cmd_status(args) -> int:
    from lifelog import monitor
    from lifelog.checks import status
    from lifelog.db.database import DatabaseMissing, DatabaseUnusable

    settings = _settings(args)
    if args.watch:
        return _watch_status(args, settings)
    _quiet_logging()
    try:
        db = _open_existing(settings)
    except (DatabaseMissing, DatabaseUnusable) as e:
        report = status.unknown(str(e), str(settings.db_path))
    else:
        with db:
            report = monitor.status_now(db, settings)
    if args.json:
        _print_json(report.to_json())
    else:
        _out(report.render())
    return report.exit_code


def cmd_coverage(args) -> int:
    import time
    from pathlib import Path

    from lifelog.core.clocks import boot_time
    from lifelog.coverage.query import coverage_of, resolve_range

    settings = _settings(args)
    since, until = resolve_range(args.since, args.until, args.slot_minutes, time.time(), None)
    if args.html and not Path(args.html).resolve().parent.is_dir():
        raise UsageError(f"--html {args.html}: its folder does not exist; create it or give another path")
    _quiet_logging()
    with _open_existing(settings) as db:
        cov = coverage_of(db, settings, since, until, args.slot_minutes, boot_now=boot_time())
    if args.html:
        from lifelog.coverage.html import write_html

        sys.stderr.write(f"coverage written to {write_html(cov, args.html)}\n")
    if args.json:
        _print_json(cov.to_json())
    else:
        from lifelog.coverage.picture import print_picture

        print_picture(cov)
    return 0


def _watch_status(args, settings) -> int:
    from lifelog import status_screen

    if args.json:
        raise UsageError("--watch draws a screen for people; leave out --json (or --watch)")
    if not args.interval > 0:
        raise UsageError(f"--interval {args.interval:g} must be more than 0 seconds")
    from lifelog.core.logs import setup_logging

    # The screen shows every failure; log lines on the terminal would tear it.
    setup_logging(os.environ.get("LIFELOG_LOG_LEVEL") or "CRITICAL")
    return status_screen.watch(settings, args.interval)


def cmd_sources(args) -> int:
    from lifelog.core.timeutil import format_age, utcnow
    from lifelog.core.verdicts import SourceState
    from lifelog.sources import watch as source_watch

    settings = _settings(args)
    _quiet_logging()
    now = utcnow()
    with _open_existing(settings) as db:
        views = source_watch.survey(db, settings, now)
    silent = any(v.judgement.state is SourceState.SILENT for v in views)
    if args.json:
        _print_json([v.to_json(now) for v in views])
        return 1 if silent else 0
    if not views:
        _out("(no sources yet: LifeLog's watcher lists AW's buckets when it polls)")
        return 0
    table = [("BUCKET", "TYPE", "HOST", "STATE", "NEWEST END", "AGE", "REASON")]
    for v in views:
        j = v.judgement
        table.append((j.bucket_id, j.type, j.hostname, str(j.state),
                      j.newest_end.isoformat(timespec="seconds") if j.newest_end else "-",
                      format_age(j.age(now)), j.reason))
    _print_table(table)
    return 1 if silent else 0


def _ingest_setup(args):
    """Parse everything before opening the database: bad input writes nothing."""
    from lifelog.aw.client import AWClient
    from lifelog.core.timeutil import parse_since
    from lifelog.db.database import open_db

    when = parse_since(args.since)
    settings = _settings(args, aw_url=args.aw_url)
    return open_db(settings.db_path), AWClient.from_settings(settings), settings, when


def _aw_error(e) -> LifelogError:
    err = LifelogError(f"ActivityWatch: {e}; progress so far is kept, run the command again to resume")
    err.exit_code = 1
    return err


class _Progress:
    """A progress line on a terminal (stderr, redrawn in place); off a
    terminal, plain lines on stdout, for a log."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.total = 0
        self.done = 0

    def start(self, totals: dict[str, int]) -> None:
        self.total = sum(totals.values())
        if not self.tty:
            _out(f"backfill: about {self.total} events in {len(totals)} buckets")

    def page(self, bucket_id: str, counts, reached: str | None) -> None:
        self.done += counts.fetched
        if self.tty:
            share = f"{min(self.done / self.total, 1):4.0%}" if self.total else ""
            sys.stderr.write(f"\rbackfill {share} {self.done:,} of about {self.total:,} events  ")
            sys.stderr.flush()
        else:
            _out(f"{bucket_id}: {counts.fetched} events fetched, {counts.inserted} new"
                 + (f", back to {reached}" if reached else ""))

    def close(self) -> None:
        if self.tty and self.done:
            sys.stderr.write("\n")


def cmd_backfill(args) -> int:
    from lifelog.aw.client import AWError
    from lifelog.core.signals import stop_on_signals
    from lifelog.ingest import history

    db, client, settings, when = _ingest_setup(args)
    stop = stop_on_signals()
    progress = _Progress()
    try:
        report = history.backfill(db, client, settings, since=when, should_stop=stop.is_set,
                               on_page=progress.page, on_start=progress.start)
    except AWError as e:
        raise _aw_error(e) from None
    finally:
        progress.close()
        client.close()
        db.close()
    c = report.counts
    state = "complete" if report.complete else "interrupted; run it again to resume"
    _out(f"backfill {state}: {len(report.buckets)} buckets, {c.fetched} events fetched, "
         f"{c.inserted} inserted, {c.updated} updated, {c.replaced} replaced")
    return 0


def cmd_reconcile(args) -> int:
    from lifelog.aw.client import AWError
    from lifelog.core.signals import stop_on_signals
    from lifelog.ingest import reconcile

    db, client, settings, when = _ingest_setup(args)
    stop = stop_on_signals()
    try:
        report = reconcile.reconcile(db, client, settings, since=when, should_stop=stop.is_set)
    except AWError as e:
        raise _aw_error(e) from None
    finally:
        client.close()
        db.close()
    for b in report.buckets:
        _out(b.summary())
    _out(f"reconcile: {report.summary()}")
    return 0


def cmd_backup(args) -> int:
    from lifelog.backups import backup

    if args.dest is not None and not args.dest.strip():
        raise UsageError("--dest must name a folder")
    settings = _settings(args)
    _quiet_logging()
    if args.dry_run:
        plan = backup.dry_run(settings, args.dest)
        if args.json:
            _print_json(plan.to_json())
            return 0
        _out(f"dry run: nothing written or removed. A backup now would copy {settings.db_path} "
             f"({backup.mib(plan.bytes)}, {plan.events:,} events) to {plan.path}")
        _out(f"retention ({plan.policy.describe()}) would then keep:")
        for kept in plan.plan.keep:
            new = " (this backup)" if kept.name == plan.path.name else ""
            _out(f"  {kept.name}{new}  {', '.join(kept.reasons)}")
        _out("and remove:" if plan.plan.remove else "and remove nothing")
        for name in plan.plan.remove:
            _out(f"  {name}")
        return 0
    result = backup.run(settings, args.dest)
    for error in result.retention_errors:
        sys.stderr.write(f"lifelog: warning: retention: {error}\n")
    if args.json:
        _print_json(result.to_json())
        return 0
    _out(f"backup verified: {result.path} ({backup.mib(result.bytes)}, {result.events:,} events, "
         f"{result.seconds:.1f} s)")
    removed = f": {', '.join(result.removed)}" if result.removed else ""
    _out(f"retention: kept {len(result.plan.keep)}, removed {len(result.removed)}{removed}")
    return 0


def cmd_restore(args) -> int:
    from lifelog.backups import backup

    settings = _settings(args)
    _quiet_logging()
    result = backup.restore(settings, args.file)
    _out(f"restored {result.source} to {result.db} ({result.events:,} events)")
    if result.aside is not None:
        _out(f"the database before it is kept as {result.aside} (with its -wal and -shm, if it had them)")
    _out("start LifeLog again ('lifelog daemon', or its service); the watcher fetches what AW "
         "recorded since the backup")
    return 0


# -- the parser ----------------------------------------------------------------------


class _Unused:
    """Stands in for the parser of a command not being run: what would
    configure it is skipped (each command line parses only its own command's
    options; building all of them costs most commands ~10 ms)."""

    def __getattr__(self, name: str):
        return lambda *args, **kw: self


_UNUSED = _Unused()


# Every command's name, in the order `lifelog --help` lists them.
COMMANDS = ("init", "meta", "watcher", "daemon", "health", "watchdog", "status", "coverage", "sources",
            "backfill", "reconcile", "backup", "restore")


def _command_of(argv: list[str] | None) -> str | None:
    """The command named on the command line (its first word), or None: build all."""
    if argv is None or not argv or argv[0] not in COMMANDS:
        return None
    return argv[0]


def build_parser(argv: list[str] | None = None) -> Parser:
    """The parser of every command, or, given an `argv` that names one, of that
    command alone."""
    wanted = _command_of(argv)
    common = _common()
    parser = Parser(prog=PROG, description="A faithful, self-watching copy of your ActivityWatch data in SQLite.")
    # An explicit prog spares argparse formatting the main usage line at every
    # start. (argparse still imports shutil, ~5 ms, for the formatter that
    # add_argument builds.)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", prog=PROG)

    def command(name: str, func: Callable[[argparse.Namespace], int], help: str, *, group=commands,
                description: str | None = None):
        if group is _UNUSED:
            return _UNUSED
        if group is commands and wanted not in (None, name):
            return _UNUSED
        sub = group.add_parser(name, help=help, description=description or help, parents=[common])
        sub.set_defaults(run=func)
        return sub

    def json_flag(sub: Parser, help: str = "print one JSON document on stdout") -> None:
        sub.add_argument("--json", action="store_true", help=help)

    def aw_url(sub: Parser) -> None:
        sub.add_argument("--aw-url", metavar="URL", help="ActivityWatch server URL (setting aw_url)")

    def since(sub: Parser) -> None:
        sub.add_argument("--since", metavar="DATE", help="from this UTC date or ISO time (e.g. 2026-11-01)")

    command("init", cmd_init, "create the database and its schema (idempotent) and print its path")

    meta_help = "read the meta table, where every part records its state"
    meta_commands: argparse._SubParsersAction[Parser] | _Unused
    if wanted in (None, "meta"):
        meta = commands.add_parser("meta", help=meta_help, description=meta_help.capitalize() + ".")
        meta.set_defaults(run=lambda args: _help_of(meta))
        meta_commands = meta.add_subparsers(title="commands", metavar="COMMAND", prog=f"{PROG} meta")
    else:
        meta_commands = _UNUSED
    sub = command("show", cmd_meta_show, "show the meta table: key, value, updated_at and age",
                  group=meta_commands)
    sub.add_argument("prefixes", nargs="*", metavar="PREFIX", help="only keys starting with these, e.g. watcher.")
    json_flag(sub)
    sub = command("get", cmd_meta_get, "print one meta value alone; exit 1 when the key is absent",
                  group=meta_commands)
    sub.add_argument("key", metavar="KEY", help="the meta key, e.g. watcher.heartbeat_at")

    aw_url(command("watcher", cmd_watcher, "run the watcher in the foreground: poll AW, store events, heartbeat"))
    aw_url(command("daemon", cmd_daemon,
                   "run everything: the watcher process, health checks, watchdog, reconcile and backups"))
    json_flag(command("health", cmd_health,
                      "check the AW server now and record it; exit 0 healthy, 1 degraded, 2 unhealthy"))

    sub = command("watchdog", cmd_watchdog,
                  "decide whether the watcher needs a restart, and act: one pass (--once), or a loop")
    sub.add_argument("--once", action="store_true", help="one pass, then exit (for cron and timers)")
    json_flag(sub, "one JSON document per pass, one per line")
    wd_commands = sub.add_subparsers(title="commands", metavar="COMMAND", prog=f"{PROG} watchdog")
    command("pause", cmd_watchdog_pause, "stop acting (maintenance) until 'lifelog watchdog resume'",
            group=wd_commands)
    command("resume", cmd_watchdog_resume, "act again after 'lifelog watchdog pause'", group=wd_commands)

    sub = command("status", cmd_status,
                  "one verdict over everything: exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN",
                  description="One verdict over everything: exit 0 OK, 1 WARNING, 2 CRITICAL, "
                              "3 UNKNOWN. Checks AW now (recorded like 'lifelog health'), then "
                              "works out the rest from the database. With no database it answers "
                              "UNKNOWN and creates nothing.")
    json_flag(sub)
    sub.add_argument("--watch", action="store_true",
                     help="redraw the status screen (components, sources, latest watchdog verdicts) in place "
                          "until Ctrl-C; exit 0")
    sub.add_argument("--interval", metavar="SECONDS", type=float, default=2.0,
                     help="with --watch: seconds between redraws (default 2)")

    sub = command("coverage", cmd_coverage,
                  "what is known about each stretch of time, and why data is missing",
                  description="What is known about each stretch of time, per host and slot: active, away, "
                              "no_data or gap, and for gaps and no data the most likely cause (aw_down, "
                              "source_silent, lifelog_down, unknown). Days are local days.")
    sub.add_argument("--since", metavar="DATE", help="from this local date's midnight (or an ISO time); "
                                                     "default 7 days ago")
    sub.add_argument("--until", metavar="DATE", help="up to this local date's midnight (or an ISO time), "
                                                     "exclusive; default now")
    sub.add_argument("--slot-minutes", metavar="N", type=int, default=15, help="slot length (default 15)")
    sub.add_argument("--html", metavar="FILE", help="also write the picture as one self-contained HTML file")
    json_flag(sub)

    json_flag(command("sources", cmd_sources,
                      "every AW bucket as a source: is its watcher recording? exit 1 when one is silent",
                      description="Every AW bucket as a source, judged now from the database: live, "
                                  "idle, silent, copy, remote or unjudged, and why. Exit 0 when none "
                                  "is silent, 1 when one or more is."))

    sub = command("backfill", cmd_backfill,
                  "fetch AW's history into the database in pages; resumable, safe beside the watcher")
    aw_url(sub)
    since(sub)
    sub = command("reconcile", cmd_reconcile,
                  "compare LifeLog with AW per bucket; fetch what differs, mark what AW lost")
    aw_url(sub)
    since(sub)
    sub = command("backup", cmd_backup,
                  "one verified backup now, then retention; exit 0 done, 1 failed",
                  description="One verified backup now: a consistent copy while the watcher writes, "
                              "checked (integrity_check, event count), synced, named "
                              "lifelog-YYYYMMDDTHHMMSSZ.db; then retention (backup_keep_daily/weekly/"
                              "monthly). Exit 0 done, 1 failed, 2 bad input.")
    sub.add_argument("--dest", metavar="DIR", help="folder for the backup (setting backup_dir)")
    sub.add_argument("--dry-run", action="store_true",
                     help="write and remove nothing; show where the backup would go and what retention "
                          "would keep and remove")
    json_flag(sub)
    sub = command("restore", cmd_restore,
                  "put a backup in place of the database; exit 0 done, 1 refused or failed",
                  description="Put a backup in place of the database. Refused while a watcher or daemon "
                              "holds it; the backup is checked first; the current database and its "
                              "-wal/-shm are moved aside as <db>.before-restore-<UTC time>, nothing deleted. "
                              "Exit 0 done, 1 refused or failed.")
    sub.add_argument("file", metavar="FILE", help="the backup to restore, e.g. a lifelog-*.db file")
    return parser


def _help_of(parser: Parser) -> int:
    parser.print_help()
    return 0


# -- the entry point -----------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Run one command; every known error is one line on stderr and an exit code."""
    code = run(sys.argv[1:] if argv is None else argv)
    sys.exit(code)


def run(argv: list[str]) -> int:
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
        if not hasattr(args, "run"):
            parser.print_help()
            return 0
        return args.run(args)
    except LifelogError as e:
        sys.stderr.write(scrub(f"{PROG}: error: {e}\n"))
        return e.exit_code
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted\n")
        return 130
    except Exception as e:
        if os.environ.get("LIFELOG_DEBUG"):  # the traceback, with no secret in it
            sys.stderr.write(scrubbed_traceback(e))
            return 1
        first = scrub(str(e).splitlines()[0]) if str(e) else ""
        sys.stderr.write(f"{PROG}: error: {type(e).__name__}: {first} (set LIFELOG_DEBUG=1 for the traceback)\n")
        return 1


if __name__ == "__main__":
    main()
