"""The `lifelog` command line: typer parses, one function per command calls
the library and renders its answer.

A command is a function registered with `@command(...)`: its typed
parameters are its options (the shared ones, `--db` and `--config`, are the
`Db` and `Config` aliases below), its return value the exit code. `run` is
the one place that turns every error, typer's complaints about the command
line included, into one line on stderr and an exit code.

Every command, the watchdog's cron pass every minute above all, starts a new
Python, so startup time counts: library modules are imported inside the
commands (each command loads only what it uses), and the help is plain
click formatting, not rich (`rich_markup_mode=None`), so rich is never
imported to parse a command line.
"""

import copy
import functools
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup
from typer.main import get_command

from lifelog import __version__
from lifelog.core.errors import LifelogError, UsageError
from lifelog.core.redact import scrub, scrubbed_traceback

PROG = "lifelog"

# Every command's name, in the order `lifelog --help` lists them.
COMMANDS = ("init", "meta", "watcher", "daemon", "health", "watchdog", "status", "coverage", "sources",
            "backfill", "reconcile", "backup", "restore", "config", "paths")


class _Group(TyperGroup):
    """typer lists a group's plain commands before its sub-groups; LifeLog's
    order is COMMANDS (a sub-group's own commands keep their order)."""

    def list_commands(self, ctx: Any) -> list[str]:  # click's Context, which typer does not re-export
        names = super().list_commands(ctx)
        return sorted(names, key=lambda name: COMMANDS.index(name) if name in COMMANDS else len(COMMANDS))


def _typer(help: str, *, completion: bool = False) -> typer.Typer:
    return typer.Typer(
        help=help,
        cls=_Group,
        # Plain help and errors: rich's would import rich, and its error box is not one line.
        rich_markup_mode=None,
        # run() reports every error; typer's own traceback view is never wanted.
        pretty_exceptions_enable=False,
        add_completion=completion,
        context_settings={"help_option_names": ["-h", "--help"]},
    )


# The root's completion adds `--install-completion` and `--show-completion`.
app = _typer("A faithful, self-watching copy of your ActivityWatch data in SQLite.", completion=True)
meta_app = _typer("Read the meta table, where every part records its state.")
watchdog_app = _typer("Decide whether the watcher needs a restart, and act: one pass (--once), or a loop every "
                      "watchdog_interval_seconds. 'pause' and 'resume' stop and restart acting.")
app.add_typer(meta_app, name="meta", short_help="read the meta table, where every part records its state")
app.add_typer(watchdog_app, name="watchdog",
              short_help="decide whether the watcher needs a restart, and act: one pass (--once), or a loop")
config_app = _typer("LifeLog's settings: 'show' lists each one's value in force and where it came from.")
app.add_typer(config_app, name="config", short_help="LifeLog's settings: each value in force and where it came from")


# -- the options shared by the commands ----------------------------------------------

Db = Annotated[str | None, typer.Option("--db", metavar="PATH", help="database file (setting db_path)")]
Config = Annotated[str | None, typer.Option(
    "--config", metavar="PATH",
    help="TOML config file (default: $LIFELOG_CONFIG, or lifelog/config.toml in your config directory)")]
Json = Annotated[bool, typer.Option("--json", help="print one JSON document on stdout")]
Verbose = Annotated[bool, typer.Option(
    "-v", "--verbose", help="also show on stderr what LifeLog logs on the way (it always goes to the log file "
                            "that 'lifelog paths' names)")]
AwUrl = Annotated[str | None, typer.Option("--aw-url", metavar="URL", help="ActivityWatch server URL (setting aw_url)")]
Since = Annotated[str | None, typer.Option("--since", metavar="DATE",
                                           help="from this UTC date or ISO time (e.g. 2026-11-01)")]


class Interrupted(LifelogError):
    """Ctrl-C in a command that has no use for it (the long-running ones stop on it cleanly)."""

    exit_code = 130


def _interruptible(func: Callable[..., int]) -> Callable[..., int]:
    """Ctrl-C becomes `Interrupted`, which run() reports on one line; typer
    would turn it into a silent exit 130. (typer reads the signature through
    functools.wraps.)"""

    @functools.wraps(func)
    def body(*args: Any, **kw: Any) -> int:
        try:
            return func(*args, **kw)
        except KeyboardInterrupt:
            raise Interrupted("interrupted") from None

    return body


def command(group: typer.Typer, name: str, help: str, *, description: str | None = None
            ) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Register `func` as `lifelog [GROUP] NAME`: `help` is its line in the
    list of commands, `description` (default: `help`) the top of its --help."""

    def register(func: Callable[..., int]) -> Callable[..., int]:
        group.command(name, help=description or help[0].upper() + help[1:] + ".", short_help=help)(
            _interruptible(func))
        return func

    return register


def _settings(db: str | None, config: str | None, **overrides: Any):
    from lifelog.core.settings import load_settings

    return load_settings(config=config, overrides={"db_path": db, **overrides})


def _print_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2) + "\n")


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _quiet_logging() -> None:
    """One-shot commands print their result on stdout; the log shows only
    trouble on stderr unless LIFELOG_LOG_LEVEL asks for more."""
    from lifelog.core.logs import setup_logging

    setup_logging(default="WARNING")


def _reading(verbose: bool) -> None:
    """A reading command (status, meta, sources, coverage, config, paths)
    prints its answer and no log line: what logs on the way (a health check,
    an alert) goes to LifeLog's log file, and with -v to stderr too."""
    from lifelog.core.logs import setup_quiet_logging

    setup_quiet_logging(verbose)


def _width() -> int | None:
    """The columns human output may use (lifelog.core.terminal): None, no limit."""
    from lifelog.core.terminal import output_width

    return output_width()


def _open_existing(settings):
    from lifelog.db.database import open_db

    return open_db(settings.db_path, create=False)


# -- the groups: what they do with no command ----------------------------------------


def _show_version(value: bool) -> None:
    if value:
        _out(f"{PROG} {__version__}")
        raise typer.Exit(0)


def _help_when_bare(ctx: typer.Context) -> int:
    """A group called with no command prints its help (the groups' help
    texts are their Typer's, which typer prefers to this docstring)."""
    if ctx.invoked_subcommand is None:
        _out(ctx.get_help())
    return 0


@app.callback(invoke_without_command=True)
def root(ctx: typer.Context,
         version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_show_version,
                                               help="print the version and exit")] = False) -> int:
    return _help_when_bare(ctx)


meta_app.callback(invoke_without_command=True)(_help_when_bare)
config_app.callback(invoke_without_command=True)(_help_when_bare)


# -- the commands, in the order `lifelog --help` lists them --------------------------


@command(app, "init", "create the database and its schema (idempotent) and print its path")
def cmd_init(db: Db = None, config: Config = None) -> int:
    from lifelog.db.database import open_db

    settings = _settings(db, config)
    open_db(settings.db_path).close()
    _out(str(settings.db_path))
    return 0


@command(meta_app, "show", "show the meta table: key, value, updated_at and age")
def cmd_meta_show(prefixes: Annotated[list[str] | None, typer.Argument(
                      metavar="[PREFIX]...", help="only keys starting with these, e.g. watcher.", show_default=False)]
                  = None,
                  as_json: Json = False, verbose: Verbose = False, db: Db = None, config: Config = None) -> int:
    from lifelog.core.terminal import Col, clip, table
    from lifelog.core.timeutil import format_age
    from lifelog.db.meta import meta_rows

    prefixes = prefixes or []
    settings = _settings(db, config)
    _reading(verbose)
    with _open_existing(settings) as database:
        rows = meta_rows(database, prefixes)
    if as_json:
        _print_json({"db": str(settings.db_path),
                     "meta": {r["key"]: {"value": r["value"], "updated_at": r["updated_at"],
                                         "age_seconds": r["age_seconds"]} for r in rows}})
        return 0
    if not rows:
        _out("(no meta keys" + (f" starting with {', '.join(prefixes)})" if prefixes else ")"))
        return 0
    # Too wide for the terminal: UPDATED_AT goes first (AGE says it), then values are cut with `…`.
    cols = (Col("KEY"), Col("VALUE", "clip", min_width=16), Col("UPDATED_AT", drop=1), Col("AGE"))
    # 60: one screen wide (command lines are cut); --json and `meta get` give values whole.
    _out("\n".join(table(cols, [(r["key"], clip(r["value"] or "", 60), r["updated_at"], format_age(r["age_seconds"]))
                                for r in rows], _width())))
    return 0


@command(meta_app, "get", "print one meta value alone; exit 1 when the key is absent")
def cmd_meta_get(key: Annotated[str, typer.Argument(metavar="KEY", help="the meta key, e.g. watcher.heartbeat_at")],
                 db: Db = None, config: Config = None) -> int:
    from lifelog.db.meta import get_meta

    settings = _settings(db, config)
    with _open_existing(settings) as database:
        value = get_meta(database, key)
    if value is None:
        sys.stderr.write(f"lifelog: no meta key {key!r} in {settings.db_path}\n")
        return 1
    _out(value)
    return 0


@command(app, "watcher", "run the watcher in the foreground: poll AW, store events, heartbeat")
def cmd_watcher(aw_url: AwUrl = None, db: Db = None, config: Config = None) -> int:
    from lifelog.core.logs import setup_logging
    from lifelog.ingest import watcher

    settings = _settings(db, config, aw_url=aw_url)
    setup_logging()
    return watcher.run(settings)


@command(app, "daemon", "run everything: the watcher process, health checks, watchdog, reconcile and backups")
def cmd_daemon(aw_url: AwUrl = None, db: Db = None, config: Config = None) -> int:
    from lifelog import daemon
    from lifelog.core.logs import setup_logging

    settings = _settings(db, config, aw_url=aw_url)
    setup_logging()
    return daemon.run(settings)


@command(app, "health", "check the AW server now and record it; exit 0 healthy, 1 degraded, 2 unhealthy")
def cmd_health(as_json: Json = False, db: Db = None, config: Config = None) -> int:
    from lifelog import monitor
    from lifelog.db.database import open_db

    settings = _settings(db, config)
    _quiet_logging()
    with open_db(settings.db_path) as database:
        result, _ = monitor.check_health(database, settings)
    if as_json:
        _print_json(result.to_json())
    else:
        _out(result.line())
    return result.exit_code


@watchdog_app.callback(invoke_without_command=True)
@_interruptible
def cmd_watchdog(ctx: typer.Context,
                 once: Annotated[bool, typer.Option("--once", help="one pass, then exit (for cron and timers)")] = False,
                 as_json: Annotated[bool, typer.Option("--json", help="one JSON document per pass, one per line")] = False,
                 db: Db = None, config: Config = None) -> int:
    if ctx.invoked_subcommand is not None:  # pause or resume: they act, not this
        if once or as_json:
            raise UsageError(f"--once and --json go with the pass; 'watchdog {ctx.invoked_subcommand}' takes neither")
        return 0
    from lifelog import monitor
    from lifelog.db.database import open_db

    settings = _settings(db, config)

    def show(result) -> None:
        _out(json.dumps(result.to_json()) if as_json else result.line())
        sys.stdout.flush()

    if once:
        _quiet_logging()
        with open_db(settings.db_path) as database:
            show(monitor.watchdog_pass(database, settings, actor="cron"))
        return 0
    from lifelog.core.logs import setup_logging
    from lifelog.core.signals import stop_on_signals

    setup_logging()
    stop = stop_on_signals()
    with open_db(settings.db_path) as database:
        monitor.loop(database, settings, show, stop=stop, actor="loop")
    return 0


def _inherited(ctx: typer.Context, db: str | None, config: str | None) -> tuple[str | None, str | None]:
    """`lifelog watchdog --db X pause` means the same as `lifelog watchdog pause --db X`."""
    parent = ctx.parent.params if ctx.parent is not None else {}
    return db or parent.get("db"), config or parent.get("config")


@command(watchdog_app, "pause", "stop acting (maintenance) until 'lifelog watchdog resume'")
def cmd_watchdog_pause(ctx: typer.Context, db: Db = None, config: Config = None) -> int:
    from lifelog.checks import watchdog

    with _open_existing(_settings(*_inherited(ctx, db, config))) as database:
        watchdog.pause(database)
    _out("watchdog paused; 'lifelog watchdog resume' to resume")
    return 0


@command(watchdog_app, "resume", "act again after 'lifelog watchdog pause'")
def cmd_watchdog_resume(ctx: typer.Context, db: Db = None, config: Config = None) -> int:
    from lifelog.checks import watchdog

    with _open_existing(_settings(*_inherited(ctx, db, config))) as database:
        watchdog.resume(database)
    _out("watchdog resumed")
    return 0


@command(app, "status", "one verdict over everything: exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN",
         description="One verdict over everything: exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. Checks AW now "
                     "(recorded like 'lifelog health'), then works out the rest from the database. With no "
                     "database it answers UNKNOWN and creates nothing.")
def cmd_status(as_json: Json = False,
               watch: Annotated[bool, typer.Option(
                   "--watch", help="redraw the status screen (components, sources, latest watchdog verdicts) in "
                                   "place until Ctrl-C; exit 0")] = False,
               interval: Annotated[float, typer.Option(
                   "--interval", metavar="SECONDS", help="with --watch: seconds between redraws")] = 2.0,
               verbose: Verbose = False, db: Db = None, config: Config = None) -> int:
    from lifelog import monitor
    from lifelog.checks import status
    from lifelog.db.database import DatabaseMissing, DatabaseUnusable

    settings = _settings(db, config)
    if watch:
        return _watch_status(settings, as_json, interval, verbose)
    _reading(verbose)
    try:
        database = _open_existing(settings)
    except (DatabaseMissing, DatabaseUnusable) as e:
        report = status.unknown(str(e), str(settings.db_path))
    else:
        with database:
            report = monitor.status_now(database, settings)
    if as_json:
        _print_json(report.to_json())
    else:
        _out(report.render(_width()))
    return report.exit_code


def _watch_status(settings, as_json: bool, interval: float, verbose: bool) -> int:
    from lifelog import status_screen

    if as_json:
        raise UsageError("--watch draws a screen for people; leave out --json (or --watch)")
    if not interval > 0:
        raise UsageError(f"--interval {interval:g} must be more than 0 seconds")
    # The screen shows every failure; log lines on the terminal would tear it.
    _reading(verbose)
    return status_screen.watch(settings, interval)


@command(app, "coverage", "what is known about each stretch of time, and why data is missing",
         description="What is known about each stretch of time, per host and slot: active, away, no_data or "
                     "gap, and for gaps and no data the most likely cause (aw_down, source_silent, "
                     "lifelog_down, unknown). Days are local days.")
def cmd_coverage(since: Annotated[str | None, typer.Option(
                     "--since", metavar="DATE",
                     help="from this local date's midnight (or an ISO time); default 7 days ago")] = None,
                 until: Annotated[str | None, typer.Option(
                     "--until", metavar="DATE",
                     help="up to this local date's midnight (or an ISO time), exclusive; default now")] = None,
                 slot_minutes: Annotated[int, typer.Option("--slot-minutes", metavar="N", help="slot length")] = 15,
                 html: Annotated[str | None, typer.Option(
                     "--html", metavar="FILE", help="also write the picture as one self-contained HTML file")] = None,
                 device: Annotated[str | None, typer.Option(
                     "--device", metavar="NAME",
                     help="with the devices setting: that device alone (no all devices row)")] = None,
                 as_json: Json = False, verbose: Verbose = False, db: Db = None, config: Config = None) -> int:
    import time
    from pathlib import Path

    from lifelog.core.clocks import boot_time
    from lifelog.coverage.query import check_device, coverage_of, resolve_range

    settings = _settings(db, config)
    start, end = resolve_range(since, until, slot_minutes, time.time(), None)
    check_device(settings, device)
    if html and not Path(html).resolve().parent.is_dir():
        raise UsageError(f"--html {html}: its folder does not exist; create it or give another path")
    _reading(verbose)
    with _open_existing(settings) as database:
        cov = coverage_of(database, settings, start, end, slot_minutes, boot_now=boot_time(), device=device)
    if html:
        from lifelog.coverage.html import write_html

        sys.stderr.write(f"coverage written to {write_html(cov, html)}\n")
    if as_json:
        _print_json(cov.to_json())
    else:
        from lifelog.coverage.picture import print_picture

        print_picture(cov, width=_width())
    return 0


@command(app, "sources", "every AW bucket as a source: is its watcher recording? exit 1 when one is silent",
         description="Every AW bucket as a source, judged now from the database: live, idle, silent, copy, "
                     "remote or unjudged, and why. Exit 0 when none is silent, 1 when one or more is.")
def cmd_sources(as_json: Json = False, verbose: Verbose = False, db: Db = None, config: Config = None) -> int:
    from lifelog.core.timeutil import utcnow
    from lifelog.core.verdicts import SourceState
    from lifelog.sources import watch as source_watch

    settings = _settings(db, config)
    _reading(verbose)
    now = utcnow()
    with _open_existing(settings) as database:
        views = source_watch.survey(database, settings, now)
    silent = any(v.judgement.state is SourceState.SILENT for v in views)
    if as_json:
        _print_json([v.to_json(now) for v in views])
        return 1 if silent else 0
    _out(source_watch.render_table(views, now, _width()))
    return 1 if silent else 0


@command(config_app, "show", "every setting's value in force and where it came from",
         description="Every setting's value in force and where it came from: option, environment, file "
                     "(the config file named on the first line) or default. Secrets (aw_api_key, ping_url) "
                     "are shown as (set), never their value.")
def cmd_config_show(as_json: Json = False, verbose: Verbose = False, db: Db = None, config: Config = None) -> int:
    from lifelog.core.settings import explain_settings

    explained = explain_settings(config=config, overrides={"db_path": db})
    _reading(verbose)
    if as_json:
        _print_json(explained.to_json())
    else:
        _out(explained.render(_width()))
    return 0


@command(app, "paths", "where things are: database, config file, logs, backups, metrics file")
def cmd_paths(as_json: Json = False, verbose: Verbose = False, db: Db = None, config: Config = None) -> int:
    from lifelog.core.settings import explain_settings, paths, render_paths

    where = paths(explain_settings(config=config, overrides={"db_path": db}))
    _reading(verbose)
    if as_json:
        _print_json(where)
    else:
        _out(render_paths(where))
    return 0


def _ingest_setup(since: str | None, aw_url: str | None, db: str | None, config: str | None):
    """Parse everything before opening the database: bad input writes nothing.
    The client is the caller's to make: over every device, each has its own."""
    from lifelog.core.timeutil import parse_since
    from lifelog.db.database import open_db

    when = parse_since(since)
    settings = _settings(db, config, aw_url=aw_url)
    return open_db(settings.db_path), settings, when


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


@command(app, "backfill", "fetch AW's history into the database in pages; resumable, safe beside the watcher")
def cmd_backfill(aw_url: AwUrl = None, since: Since = None, db: Db = None, config: Config = None) -> int:
    from lifelog.aw.client import AWClient, AWError
    from lifelog.core.signals import stop_on_signals
    from lifelog.ingest import history

    database, settings, when = _ingest_setup(since, aw_url, db, config)
    if settings.devices and aw_url is None:
        return _backfill_devices(database, settings, when)
    client = AWClient.from_settings(settings)
    stop = stop_on_signals()
    progress = _Progress()
    try:
        report = history.backfill(database, client, settings, since=when, should_stop=stop.is_set,
                                  on_page=progress.page, on_start=progress.start)
    except AWError as e:
        raise _aw_error(e) from None
    finally:
        progress.close()
        client.close()
        database.close()
    _out(_backfilled(report))
    _interrupted_if(stop.is_set() and not report.complete)
    return 0


def _interrupted_if(stopped: bool) -> None:
    """A backfill or reconcile stopped by Ctrl-C (or SIGTERM) says so as every
    command does (`lifelog: interrupted`, exit 130), after the lines of what
    it stored, which stays: one form for a single AW and for `devices`."""
    if stopped:
        raise Interrupted("interrupted")


def _backfilled(report) -> str:
    c = report.counts
    state = "complete" if report.complete else "interrupted; run it again to resume"
    return (f"backfill {state}: {len(report.buckets)} buckets, {c.fetched} events fetched, "
            f"{c.inserted} inserted, {c.updated} updated, {c.replaced} replaced")


def _over_devices(database, settings, verb: str, work: Callable[..., str]) -> int:
    """`backfill` and `reconcile` with `devices` set (and no --aw-url): every
    device in turn, each through its own client (lifelog.ingest.fleet.each_device),
    one line each. Exit 1 when a device was not covered (not answering, a
    refused clone, AW failing half-way): as one AW failing is today; a stop
    (Ctrl-C, SIGTERM) is exit 130, as with one AW."""
    from lifelog.core.signals import stop_on_signals
    from lifelog.ingest import fleet

    stop = stop_on_signals()
    try:
        runs = fleet.each_device(database, settings, functools.partial(work, should_stop=stop.is_set),
                                 should_stop=stop.is_set, verb=verb)
    finally:
        database.close()
    for run in runs:
        _out(run.line)
    _interrupted_if(stop.is_set())
    covered = {r.name for r in runs if r.ok}
    missed = [d.name for d in settings.devices if d.name not in covered]
    if missed:
        err = LifelogError(f"{len(missed)} of {len(settings.devices)} devices not {verb}: {', '.join(missed)}")
        err.exit_code = 1
        raise err
    return 0


def _backfill_devices(database, settings, when) -> int:
    from lifelog.ingest import history

    def work(client, info, skip, *, should_stop) -> str:
        progress = _Progress()
        try:
            report = history.backfill(database, client, settings, since=when, should_stop=should_stop,
                                      on_page=progress.page, on_start=progress.start, info=info, skip=skip)
        finally:
            progress.close()
        return _backfilled(report)

    return _over_devices(database, settings, "backfilled", work)


@command(app, "reconcile", "compare LifeLog with AW per bucket; fetch what differs, mark what AW lost")
def cmd_reconcile(aw_url: AwUrl = None, since: Since = None, db: Db = None, config: Config = None) -> int:
    from lifelog.aw.client import AWClient, AWError
    from lifelog.core.signals import stop_on_signals
    from lifelog.ingest import reconcile

    database, settings, when = _ingest_setup(since, aw_url, db, config)
    if settings.devices and aw_url is None:
        return _reconcile_devices(database, settings, when)
    client = AWClient.from_settings(settings)
    stop = stop_on_signals()
    try:
        report = reconcile.reconcile(database, client, settings, since=when, should_stop=stop.is_set)
    except AWError as e:
        raise _aw_error(e) from None
    finally:
        client.close()
        database.close()
    for b in report.buckets:
        _out(b.summary())
    _out(f"reconcile: {report.summary()}")
    _interrupted_if(stop.is_set())
    return 0


def _reconcile_devices(database, settings, when) -> int:
    from lifelog.ingest import reconcile

    def work(client, info, skip, *, should_stop) -> str:
        report = reconcile.reconcile(database, client, settings, since=when, should_stop=should_stop,
                                     info=info, skip=skip)
        return "\n".join([b.summary() for b in report.buckets] + [f"reconcile: {report.summary()}"])

    return _over_devices(database, settings, "reconciled", work)


@command(app, "backup", "one verified backup now, then retention; exit 0 done, 1 failed",
         description="One verified backup now: a consistent copy while the watcher writes, checked "
                     "(integrity_check, event count), synced, named lifelog-YYYYMMDDTHHMMSSZ.db; then retention "
                     "(backup_keep_daily/weekly/monthly). Exit 0 done, 1 failed, 2 bad input.")
def cmd_backup(dest: Annotated[str | None, typer.Option(
                   "--dest", metavar="DIR", help="folder for the backup (setting backup_dir)")] = None,
               dry_run: Annotated[bool, typer.Option(
                   "--dry-run", help="write and remove nothing; show where the backup would go and what "
                                     "retention would keep and remove")] = False,
               as_json: Json = False, db: Db = None, config: Config = None) -> int:
    from lifelog.backups import backup

    if dest is not None and not dest.strip():
        raise UsageError("--dest must name a folder")
    settings = _settings(db, config)
    _quiet_logging()
    if dry_run:
        plan = backup.dry_run(settings, dest)
        if as_json:
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
    result = backup.run(settings, dest)
    for error in result.retention_errors:
        sys.stderr.write(f"lifelog: warning: retention: {error}\n")
    if as_json:
        _print_json(result.to_json())
        return 0
    _out(f"backup verified: {result.path} ({backup.mib(result.bytes)}, {result.events:,} events, "
         f"{result.seconds:.1f} s)")
    removed = f": {', '.join(result.removed)}" if result.removed else ""
    _out(f"retention: kept {len(result.plan.keep)}, removed {len(result.removed)}{removed}")
    return 0


@command(app, "restore", "put a backup in place of the database; exit 0 done, 1 refused or failed",
         description="Put a backup in place of the database. Refused while a watcher or daemon holds it; the "
                     "backup is checked first; the current database and its -wal/-shm are moved aside as "
                     "<db>.before-restore-<UTC time>, nothing deleted. Exit 0 done, 1 refused or failed.")
def cmd_restore(file: Annotated[str, typer.Argument(metavar="FILE",
                                                    help="the backup to restore, e.g. a lifelog-*.db file")],
                db: Db = None, config: Config = None) -> int:
    from lifelog.backups import backup

    settings = _settings(db, config)
    _quiet_logging()
    result = backup.restore(settings, file)
    _out(f"restored {result.source} to {result.db} ({result.events:,} events)")
    if result.aside is not None:
        _out(f"the database before it is kept as {result.aside} (with its -wal and -shm, if it had them)")
    _out("start LifeLog again ('lifelog daemon', or its service); the watcher fetches what AW "
         "recorded since the backup")
    return 0


# -- the entry point -----------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Run one command; every known error is one line on stderr and an exit code."""
    code = run(sys.argv[1:] if argv is None else argv)
    sys.exit(code)


def _one_line(text: str) -> str:
    return " ".join(text.splitlines())


def app_for(argv: Sequence[str]) -> typer.Typer:
    """The app with only the command `argv` names (its first word), or the
    whole app when it names none (`--help`, `--version`, a typo, shell
    completion). typer turns every registered command into a click command
    at each start: 5-10 ms of CPU for all of them, 1.5-3 for one, and the
    cron pass needs one."""
    if not argv or argv[0] not in COMMANDS:
        return app
    trimmed = copy.copy(app)
    trimmed.registered_commands = [c for c in app.registered_commands if c.name == argv[0]]
    trimmed.registered_groups = [g for g in app.registered_groups if g.name == argv[0]]
    return trimmed


def run(argv: Sequence[str]) -> int:
    try:
        # standalone_mode=False: typer returns the command's result (our exit
        # code) and raises its errors instead of printing a usage block.
        code = get_command(app_for(argv)).main(args=list(argv), prog_name=PROG, standalone_mode=False)
        return code if isinstance(code, int) else 0
    except Interrupted:
        sys.stderr.write(f"{PROG}: interrupted\n")
        return Interrupted.exit_code
    except LifelogError as e:
        sys.stderr.write(scrub(f"{PROG}: error: {_one_line(str(e))}\n"))
        return e.exit_code
    except typer.TyperException as e:  # click's errors: a bad option or value (exit 2), a file it cannot open
        ctx = getattr(e, "ctx", None)
        see = f" (see '{ctx.command_path} --help')" if ctx is not None and e.exit_code == 2 else ""
        sys.stderr.write(scrub(f"{PROG}: error: {_one_line(e.format_message())}{see}\n"))
        return e.exit_code
    except typer.Abort:  # click's Ctrl-D at a prompt; LifeLog asks none, but one line all the same
        sys.stderr.write(f"{PROG}: interrupted\n")
        return 130
    except SystemExit as e:  # shell completion and --install-completion exit from inside typer
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
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
