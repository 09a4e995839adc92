"""The `lifelog` command line: parse, call one library function, render.

Every command takes `--db` and `--config` after its name. Known errors become
one line on stderr and an exit code (2 for bad input); a traceback is shown
only when LIFELOG_DEBUG is set. Heavy modules are imported inside the
commands, so `lifelog watchdog --once` (run by cron every minute) stays fast.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated, Any, Optional

import typer

from lifelog.errors import LifelogError

app = typer.Typer(
    name="lifelog",
    help="A faithful, self-watching copy of your ActivityWatch data in SQLite.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
meta_app = typer.Typer(help="Read the meta table, where every part records its state.", no_args_is_help=True)
app.add_typer(meta_app, name="meta")

DbOpt = Annotated[
    Optional[str],
    typer.Option("--db", metavar="PATH", help="Database file (setting db_path).", show_default=False),
]
ConfigOpt = Annotated[
    Optional[str],
    typer.Option("--config", metavar="PATH", help="TOML config file (default: $LIFELOG_CONFIG, "
                 "or lifelog/config.toml in your config dir).", show_default=False),
]
AwUrlOpt = Annotated[Optional[str], typer.Option("--aw-url", help="ActivityWatch server URL.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


def _settings(db: str | None, config: str | None, **overrides: Any):
    from lifelog.settings import load_settings

    return load_settings(config=config, overrides={"db_path": db, **overrides})


def _print_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=False) + "\n")


@app.command()
def init(db: DbOpt = None, config: ConfigOpt = None) -> None:
    """Create the database and its schema (idempotent) and print its path."""
    from lifelog.db import open_db

    settings = _settings(db, config)
    open_db(settings.db_path).conn.close()
    typer.echo(str(settings.db_path))


@meta_app.command("show")
def meta_show(
    prefixes: Annotated[Optional[list[str]], typer.Argument(metavar="[PREFIX]...",
                                                            help="Only keys starting with these, e.g. watcher.")] = None,
    db: DbOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the meta table: key, value, updated_at and age."""
    from lifelog.db import meta_rows, open_db
    from lifelog.timeutil import format_age

    settings = _settings(db, config)
    database = open_db(settings.db_path, create=False)
    rows = meta_rows(database, prefixes or ())
    if as_json:
        _print_json({
            "db": str(settings.db_path),
            "meta": {r["key"]: {"value": r["value"], "updated_at": r["updated_at"],
                                "age_seconds": r["age_seconds"]} for r in rows},
        })
        return
    if not rows:
        typer.echo("(no meta keys" + (f" starting with {', '.join(prefixes)})" if prefixes else ")"))
        return
    table = [("KEY", "VALUE", "UPDATED_AT", "AGE")] + [
        (r["key"], _clip(r["value"] or ""), r["updated_at"], format_age(r["age_seconds"])) for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    for row in table:
        typer.echo("  ".join(cell.ljust(widths[i]) if i < 3 else cell for i, cell in enumerate(row)))


def _clip(value: str, width: int = 60) -> str:
    """One screen wide: long values (command lines) are cut; --json and get give them whole."""
    value = value.replace("\n", " ")
    return value if len(value) <= width else value[: width - 1] + "…"


@meta_app.command("get")
def meta_get(
    key: Annotated[str, typer.Argument(help="The meta key, e.g. watcher.heartbeat_at.")],
    db: DbOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Print one meta value alone; exit 1 when the key is absent."""
    from lifelog.db import get_meta, open_db

    settings = _settings(db, config)
    value = get_meta(open_db(settings.db_path, create=False), key)
    if value is None:
        typer.echo(f"lifelog: no meta key {key!r} in {settings.db_path}", err=True)
        raise typer.Exit(1)
    typer.echo(value)


@app.command()
def daemon(
    db: DbOpt = None,
    config: ConfigOpt = None,
    aw_url: AwUrlOpt = None,
) -> None:
    """Run everything: the watcher process, health checks, watchdog, reconcile."""
    from lifelog import daemon as daemon_mod
    from lifelog.logs import setup_logging

    settings = _settings(db, config, aw_url=aw_url)
    setup_logging()
    raise typer.Exit(daemon_mod.run(settings))


@app.command()
def watcher(
    db: DbOpt = None,
    config: ConfigOpt = None,
    aw_url: AwUrlOpt = None,
) -> None:
    """Run the watcher in the foreground: poll AW, store events, heartbeat."""
    from lifelog import watcher as watcher_mod
    from lifelog.logs import setup_logging

    settings = _settings(db, config, aw_url=aw_url)
    setup_logging()
    raise typer.Exit(watcher_mod.run(settings))

# -- monitoring: health, watchdog, status (issue 4) ----------------------------------

watchdog_app = typer.Typer(help="Watch the watcher: one pass (--once), or a loop.")
app.add_typer(watchdog_app, name="watchdog")


def _quiet_logging() -> None:
    """One-shot commands print their result on stdout; the log shows only
    trouble on stderr unless LIFELOG_LOG_LEVEL asks for more."""
    from lifelog.logs import setup_logging

    setup_logging(os.environ.get("LIFELOG_LOG_LEVEL") or "WARNING")


@app.command()
def health(db: DbOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Check the AW server now and record it; exit 0 healthy, 1 degraded, 2 unhealthy."""
    from lifelog.db import open_db
    from lifelog.health import run_check

    settings = _settings(db, config)
    _quiet_logging()
    result = run_check(open_db(settings.db_path), settings)
    if as_json:
        _print_json(result.to_json())
    else:
        typer.echo(result.line())
    raise typer.Exit(result.exit_code)


def run_watchdog(db: str | None, config: str | None, once: bool, as_json: bool) -> int:
    """`lifelog watchdog [--once]` (lifelog.fastpath runs the same pass without typer)."""
    from lifelog import watchdog as wd
    from lifelog.db import open_db
    from lifelog.settings import load_settings

    settings = load_settings(config=config, overrides={"db_path": db})
    _quiet_logging() if once else _loop_logging()
    database = open_db(settings.db_path)
    if once:
        wd.print_pass(wd.run_pass(database, settings, actor="cron"), as_json)
        return 0
    import signal
    import threading

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())  # only record it; the loop acts
    wd.loop(database, settings, lambda r: wd.print_pass(r, as_json), stop=stop, actor="loop")
    return 0


def _loop_logging() -> None:
    from lifelog.logs import setup_logging

    setup_logging()


@watchdog_app.callback(invoke_without_command=True)
def watchdog(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="One pass, then exit (for cron and timers).")] = False,
    db: DbOpt = None,
    config: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document per pass, one per line.")] = False,
) -> None:
    """Decide whether the watcher needs a restart, and act; --once for one pass."""
    if ctx.invoked_subcommand is not None:
        return
    raise typer.Exit(run_watchdog(db, config, once, as_json))


@watchdog_app.command("pause")
def watchdog_pause(db: DbOpt = None, config: ConfigOpt = None) -> None:
    """Stop acting (maintenance) until 'lifelog watchdog resume'."""
    from lifelog import watchdog as wd
    from lifelog.db import open_db

    settings = _settings(db, config)
    wd.pause(open_db(settings.db_path, create=False))
    typer.echo("watchdog paused; 'lifelog watchdog resume' to resume")


@watchdog_app.command("resume")
def watchdog_resume(db: DbOpt = None, config: ConfigOpt = None) -> None:
    """Act again after 'lifelog watchdog pause'."""
    from lifelog import watchdog as wd
    from lifelog.db import open_db

    settings = _settings(db, config)
    wd.resume(open_db(settings.db_path, create=False))
    typer.echo("watchdog resumed")


@app.command()
def status(db: DbOpt = None, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """One verdict over everything: exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.

    Checks AW now (recorded like 'lifelog health'), then reads the rest from
    the database. With no database it answers UNKNOWN and creates nothing."""
    from lifelog import status as status_mod
    from lifelog.db import DatabaseMissing, DatabaseUnusable, open_db

    settings = _settings(db, config)
    _quiet_logging()
    try:
        database = open_db(settings.db_path, create=False)
    except (DatabaseMissing, DatabaseUnusable) as e:
        report = status_mod.unknown(str(e), str(settings.db_path))
    else:
        report = status_mod.check_and_report(database, settings)
    if as_json:
        _print_json(report.to_json())
    else:
        typer.echo(report.render())
    raise typer.Exit(report.exit_code)


SinceOpt = Annotated[
    Optional[str],
    typer.Option("--since", metavar="DATE", help="From this UTC date or ISO time (e.g. 2026-11-01).",
                 show_default=False),
]


def _ingest_setup(db, config, aw_url, since):
    """Parse everything before opening the database: bad input writes nothing."""
    from lifelog.aw import AWClient
    from lifelog.db import open_db
    from lifelog.sync import parse_since

    when = parse_since(since)
    settings = _settings(db, config, aw_url=aw_url)
    return open_db(settings.db_path), AWClient.from_settings(settings), settings, when


def _aw_error(e) -> LifelogError:
    err = LifelogError(f"ActivityWatch: {e}; progress so far is kept, run the command again to resume")
    err.exit_code = 1
    return err


@app.command()
def backfill(db: DbOpt = None, config: ConfigOpt = None, aw_url: AwUrlOpt = None, since: SinceOpt = None) -> None:
    """Fetch AW's history into the database in pages; resumable, safe beside the watcher."""
    from lifelog import sync
    from lifelog.aw import AWError

    database, client, settings, when = _ingest_setup(db, config, aw_url, since)
    stop = sync.stop_on_signals()
    progress = _Progress()
    try:
        report = sync.backfill(database, client, settings, since=when, should_stop=stop.is_set,
                               on_page=progress.page, on_start=progress.start)
    except AWError as e:
        raise _aw_error(e) from None
    finally:
        progress.close()
    c = report.counts
    state = "complete" if report.complete else "interrupted; run it again to resume"
    typer.echo(f"backfill {state}: {len(report.buckets)} buckets, {c.fetched} events fetched, "
               f"{c.inserted} inserted, {c.updated} updated, {c.replaced} replaced")


class _Progress:
    """A progress bar on a terminal, plain lines otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.bar = None
        self.done = 0

    def start(self, totals: dict[str, int]) -> None:
        total = sum(totals.values())
        if self.tty:
            self.bar = typer.progressbar(length=max(total, 1), label="backfill", file=sys.stderr)
            self.bar.__enter__()
        else:
            typer.echo(f"backfill: about {total} events in {len(totals)} buckets")

    def page(self, bucket_id: str, counts, reached: str | None) -> None:
        self.done += counts.fetched
        if self.bar is not None:
            self.bar.update(counts.fetched)
        else:
            typer.echo(f"{bucket_id}: {counts.fetched} events fetched, {counts.inserted} new"
                       + (f", back to {reached}" if reached else ""))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


@app.command()
def reconcile(db: DbOpt = None, config: ConfigOpt = None, aw_url: AwUrlOpt = None, since: SinceOpt = None) -> None:
    """Compare LifeLog with AW per bucket and day; fetch what differs, mark what AW lost."""
    from lifelog import sync
    from lifelog.aw import AWError

    database, client, settings, when = _ingest_setup(db, config, aw_url, since)
    stop = sync.stop_on_signals()
    try:
        report = sync.reconcile(database, client, settings, since=when, should_stop=stop.is_set)
    except AWError as e:
        raise _aw_error(e) from None
    for b in report.buckets:
        c = b.counts
        typer.echo(f"{b.bucket_id}: {b.days_checked} days checked, {b.days_differing} differed; "
                   f"{c.inserted} inserted, {c.updated} updated, {c.replaced} replaced, "
                   f"{c.marked_deleted} marked deleted in AW")
    t = report.totals
    typer.echo(f"reconcile: {len(report.buckets)} buckets, {report.days_differing} days differed; "
               f"{t.inserted} inserted, {t.updated} updated, {t.replaced} replaced, "
               f"{t.marked_deleted} marked deleted in AW")


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning known errors into one line and a code."""
    from lifelog.redact import scrub, scrubbed_traceback

    try:
        rv = app(args=argv, prog_name="lifelog", standalone_mode=False)
    except typer.TyperException as e:  # usage errors: unknown option, bad value
        ctx = getattr(e, "ctx", None)
        where = ctx.command_path if ctx is not None else "lifelog"
        sys.stderr.write(f"lifelog: error: {e.format_message()} (see '{where} --help')\n")
        sys.exit(getattr(e, "exit_code", 2))
    except LifelogError as e:
        sys.stderr.write(scrub(f"lifelog: error: {e}\n"))
        sys.exit(e.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        sys.stderr.write("lifelog: interrupted\n")
        sys.exit(130)
    except Exception as e:
        if os.environ.get("LIFELOG_DEBUG"):  # the traceback, with no secret in it
            sys.stderr.write(scrubbed_traceback(e))
            sys.exit(1)
        first = scrub(str(e).splitlines()[0]) if str(e) else ""
        sys.stderr.write(
            f"lifelog: error: {type(e).__name__}: {first} (set LIFELOG_DEBUG=1 for the traceback)\n"
        )
        sys.exit(1)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
