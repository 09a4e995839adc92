"""`lifelog daemon`: the watcher as its own process, and the periodic jobs.

The daemon owns the watcher of its database: at launch it adopts a healthy
watcher that is already running, or starts one (a start, not a restart); on
SIGTERM/SIGINT it stops that watcher and exits. On a `schedule` timetable it
runs the jobs of JOBS, in that order: the AW health check, the watchdog pass
and reconciliation (here) and the capabilities' (backups).

Each job runs in a thread of its own with its own database connection, and a
job still running when its next turn comes is skipped, not queued: a long
reconcile or a health check waiting out its timeout never delays the
watchdog. A job that raises is logged and the daemon goes on (`schedule`
itself would stop at the first exception).

The timetable runs on elapsed time. `schedule` keeps it in naive local time
(`datetime.now()`), so a daylight-saving change or a stepped clock (NTP, a
manual change) would move every job: an hour back stalls them all for the
hour, an hour forward runs each at once. Each turn of the loop reads the wall
clock beside a clock no one sets; when the two disagree on how much time
passed, the wall clock was stepped, and every job's time is moved by the
step, so each keeps its place in elapsed time (`run_turn`).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple

from lifelog import monitor
from lifelog.backups import status as backup_status
from lifelog.checks import procs, watchdog
from lifelog.checks.liveness import age, heartbeat_age, in_window
from lifelog.core import clocks, keys
from lifelog.core.identity import watcher_facts
from lifelog.core.locks import ProcessLock
from lifelog.core.settings import Settings
from lifelog.core.signals import stop_on_signals
from lifelog.core.timeutil import now_iso, try_parse_iso, utcnow
from lifelog.core.verdicts import DaemonState
from lifelog.db.database import open_db, transaction
from lifelog.db.meta import get_meta, read_meta, set_meta

if TYPE_CHECKING:
    from sqlite_utils import Database

log = logging.getLogger("lifelog.daemon")

# How long the daemon waits for running jobs at shutdown before it goes on
# to stop the watcher; jobs are daemon threads and die with the process.
JOB_JOIN_SECONDS = 2.0
# The wall clock counts as stepped when it disagrees with elapsed time by more
# than this between two turns. The two clocks are read a moment apart, which a
# busy machine can stretch to milliseconds, and NTP slewing adds at most 0.5 ms
# a second: no step. A smaller step leaves each job under half a second off,
# which no interval here notices; a daylight-saving change (an hour) or an NTP
# step of a second is corrected at the next turn.
STEP_TOLERANCE = 0.5


@dataclass
class Job:
    """One periodic job, run in its own thread, skipped while still running."""

    name: str
    func: Callable[[Settings, threading.Event], object]
    thread: threading.Thread | None = None
    runs: int = 0
    failures: int = 0
    skipped: int = 0
    last_error: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, settings: Settings, stop: threading.Event) -> None:
        if self.thread is not None and self.thread.is_alive():
            self.skipped += 1
            log.debug("%s still running; skipping this turn", self.name)
            return
        self.thread = threading.Thread(target=self._run, args=(settings, stop),
                                       name=f"job-{self.name}", daemon=True)
        self.thread.start()

    def _run(self, settings: Settings, stop: threading.Event) -> None:
        try:
            self.func(settings, stop)
        except Exception as e:  # one bad run must not stop the daemon
            with self.lock:
                self.failures += 1
                self.last_error = f"{type(e).__name__}: {e}"
            log.exception("job %s failed", self.name)
        finally:
            with self.lock:
                self.runs += 1


def _due_always(db, settings: Settings) -> bool:
    return True


def _reconcile_due(db, settings: Settings) -> bool:
    """`schedule` forgets across restarts; the last run's time in meta does not."""
    last = try_parse_iso(get_meta(db, keys.RECONCILE_FINISHED_AT))
    return not in_window(age(last, utcnow()), settings.reconcile_interval_hours * 3600)


def _health_job(settings: Settings, stop: threading.Event) -> None:
    with open_db(settings.db_path) as db:
        monitor.check_health(db, settings)


def _watchdog_job(settings: Settings, stop: threading.Event) -> None:
    if stop.is_set():  # shutting down: the daemon stops the watcher itself
        return
    with open_db(settings.db_path) as db:
        result = monitor.watchdog_pass(db, settings, actor="daemon")
    if str(result.verdict) != "ok":
        log.info("watchdog: %s (%s) %s", result.verdict, result.reason, result.action or "")


def _reconcile_job(settings: Settings, stop: threading.Event) -> None:
    from lifelog.aw.client import AWClient
    from lifelog.ingest import reconcile

    if settings.devices:  # every device, each on its own (SPEC section 14)
        from lifelog.ingest import fleet

        with open_db(settings.db_path) as db:
            for line in fleet.reconcile_devices(db, settings, should_stop=stop.is_set):
                log.info("reconcile %s", line)
        return
    with open_db(settings.db_path) as db, AWClient.from_settings(settings) as client:
        report = reconcile.reconcile(db, client, settings, should_stop=stop.is_set)
    log.info("reconcile: %s", report.summary())


class JobSpec(NamedTuple):
    """One job of the timetable."""

    name: str
    func: Callable[[Settings, threading.Event], object]
    # Seconds between runs, from the settings (None or 0: not scheduled).
    interval: Callable[[Settings], float | None]
    # Whether a run is due at launch (`schedule` forgets across restarts); None: never.
    due_at_launch: Callable[[Database, Settings], bool] | None = None


# The daemon's jobs, in the order they start when several are due at once.
JOBS = (
    JobSpec("health", _health_job, lambda s: s.aw_health_check_interval_minutes * 60, _due_always),
    # The watchdog's first pass comes after one interval, once the watcher has
    # had time to start.
    JobSpec("watchdog", _watchdog_job, lambda s: s.watchdog_interval_seconds),
    JobSpec("reconcile", _reconcile_job, lambda s: s.reconcile_interval_hours * 3600, _reconcile_due),
    JobSpec("backup", backup_status.backup_job, backup_status.interval_seconds, backup_status.due_at_launch),
)


# -- the timetable on elapsed time -------------------------------------------------------


class Reading(NamedTuple):
    """The two clocks at one moment."""

    elapsed: float  # seconds on a clock no one sets, counting suspend (since boot)
    wall: datetime  # naive local time: the clock `schedule` reads


def read_clocks() -> Reading:
    # Since boot, not the awake clock: a job whose interval passed while the
    # lid was closed is due at wake, as by the wall clock; a suspend is no step.
    now = clocks.readings()
    return Reading(now[1] if now is not None else time.monotonic(), datetime.now())


def wall_step(then: Reading, now: Reading) -> timedelta | None:
    """How far the wall clock was moved between two readings, beyond the time
    that passed: +1 h for a daylight-saving start, -1 h for its end; None when
    within STEP_TOLERANCE (or the readings cannot be compared)."""
    step = (now.wall - then.wall).total_seconds() - (now.elapsed - then.elapsed)
    if not math.isfinite(step) or abs(step) <= STEP_TOLERANCE:
        return None
    return timedelta(seconds=step)


def shift_jobs(jobs, step: timedelta) -> None:
    """Move the jobs' times with a wall clock that moved by `step`: each job
    stays as far from now in elapsed time as it was."""
    for job in jobs:
        if job.next_run is not None:
            job.next_run += step
        if job.last_run is not None:
            job.last_run += step


def run_turn(scheduler, last: Reading) -> Reading:
    """One turn of the timetable: correct it for a step of the wall clock
    since `last` (the previous turn's closing reading), run what is due, and
    return this turn's closing reading.

    `schedule` reads the wall clock again while it runs the due jobs: a step
    that lands in that moment is caught by the closing reading. The jobs that
    did not run still hold times on the clock before it and move with it; the
    jobs that ran were started just now, so their next run is one interval
    from now (by then `schedule` may have set it on either side of the step).
    Such a step forward may have started a job once early; it is not repeated.
    """
    before = read_clocks()
    step = wall_step(last, before)
    if step is not None:
        shift_jobs(scheduler.jobs, step)
        log.info("the wall clock moved %+.1f s (a daylight-saving change or a stepped clock); "
                 "the timetable keeps its place in elapsed time", step.total_seconds())
    last_runs = {job: job.last_run for job in scheduler.jobs}
    scheduler.run_pending()
    after = read_clocks()
    step = wall_step(before, after)
    if step is not None:
        ran = [job for job in scheduler.jobs if job.last_run is not last_runs.get(job)]
        shift_jobs([job for job in scheduler.jobs if job not in ran], step)
        reschedule_from(ran, after.wall)
        log.info("the wall clock moved %+.1f s while jobs were starting; the timetable keeps its place",
                 step.total_seconds())
    return after


def reschedule_from(jobs, now: datetime) -> None:
    """The jobs ran (or were scheduled) just now: the next run is one interval away."""
    for job in jobs:
        job.last_run = now if job.last_run is not None else None
        job.next_run = now + timedelta(**{job.unit: job.interval})


def start_timetable(settings: Settings, jobs: dict[str, Job], stop: threading.Event):
    """The timetable and the clocks it was built on, for the first `run_turn`."""
    before = read_clocks()
    scheduler = build_scheduler(settings, jobs, stop)
    after = read_clocks()
    if wall_step(before, after) is not None:  # the clock moved while the jobs were set
        reschedule_from(scheduler.jobs, after.wall)
    return scheduler, after


def default_jobs() -> dict[str, Job]:
    return {spec.name: Job(spec.name, spec.func) for spec in JOBS}


def build_scheduler(settings: Settings, jobs: dict[str, Job], stop: threading.Event):
    """The timetable; a fresh `schedule.Scheduler` (never the module global)."""
    import schedule

    scheduler = schedule.Scheduler()
    specs = {spec.name: spec for spec in JOBS}
    for name, job in jobs.items():
        interval = specs[name].interval(settings) if name in specs else None
        if interval:  # None or 0: not scheduled (e.g. backups turned off)
            # schedule annotates `interval` as int but takes a float: it becomes timedelta(seconds=interval).
            scheduler.every(interval).seconds.do(job.start, settings, stop).tag(name)  # type: ignore[arg-type]
    return scheduler


def start_due_jobs(db, settings: Settings, jobs: dict[str, Job], stop: threading.Event) -> list[str]:
    """At launch: the jobs whose turn came while no daemon ran."""
    started = []
    for spec in JOBS:
        if spec.name in jobs and spec.due_at_launch is not None and spec.due_at_launch(db, settings):
            jobs[spec.name].start(settings, stop)
            started.append(spec.name)
    return started


def adopt_or_start_watcher(db, settings: Settings) -> str:
    """At launch: keep a heartbeating watcher that is ours, else start one.

    This first start is not a restart: it is not counted, and it is recorded
    with `record_spawned` so the watchdog gives it its startup grace instead
    of starting a second one before it registers."""
    meta = read_meta(db)
    facts = watcher_facts(meta)
    if facts.running:
        age, _ = heartbeat_age(meta, facts, utcnow(), clocks.readings())
        if age <= settings.heartbeat_timeout_seconds:
            log.info("adopting the running watcher (pid %s)", facts.pid)
            return f"adopted pid {facts.pid}"
        log.warning("the running watcher (pid %s) has not heartbeaten for %.0f s; replacing it", facts.pid, age)
        procs.stop_watcher(db, settings)
    pid = procs.start_watcher(settings)
    watchdog.record_spawned(db, pid)
    log.info("started the watcher (pid %s)", pid)
    return f"started pid {pid}"


def _note_unclean_exit(db) -> None:
    """A previous daemon that left `daemon.state = running` died without
    stopping (SIGKILL, a crash, power loss): we hold the daemon lock now, so
    it is gone. Counted in meta, so the failure is seen, not only survived."""
    if get_meta(db, keys.DAEMON_STATE) != DaemonState.RUNNING:
        return
    old = get_meta(db, keys.DAEMON_PID) or "?"
    count = keys.int_of(get_meta(db, keys.DAEMON_UNCLEAN_EXITS)) or 0
    with transaction(db):
        set_meta(db, keys.DAEMON_UNCLEAN_EXITS, max(count, 0) + 1)
        set_meta(db, keys.DAEMON_LAST_UNCLEAN_EXIT, f"pid {old}, noticed {now_iso()}")
    log.warning("the previous daemon (pid %s) did not stop cleanly; carrying on from the database", old)


def run(settings: Settings, stop: threading.Event | None = None, jobs: dict[str, Job] | None = None) -> int:
    """Run until `stop` is set (SIGTERM/SIGINT set it); returns the exit code."""
    if stop is None:
        stop = stop_on_signals()
    db = open_db(settings.db_path)
    lock = ProcessLock(settings.db_path, "daemon").acquire()
    jobs = jobs or default_jobs()
    try:
        _note_unclean_exit(db)
        set_meta(db, keys.DAEMON_PID, os.getpid())
        set_meta(db, keys.DAEMON_STARTED_AT, now_iso())
        set_meta(db, keys.DAEMON_STATE, DaemonState.RUNNING)
        log.info("daemon started (pid %d) on %s", os.getpid(), settings.db_path)
        adopt_or_start_watcher(db, settings)
        scheduler, clock = start_timetable(settings, jobs, stop)
        start_due_jobs(db, settings, jobs, stop)
        while not stop.is_set():
            clock = run_turn(scheduler, clock)
            idle = scheduler.idle_seconds
            stop.wait(min(max(idle if idle is not None else 1.0, 0.01), 1.0))
    finally:
        log.info("daemon stopping")
        deadline = time.monotonic() + JOB_JOIN_SECONDS
        for job in jobs.values():
            if job.thread is not None:
                job.thread.join(max(0.0, deadline - time.monotonic()))
        # Hold the watchdog's lock while stopping and until the end, so a pass
        # still running in a job thread cannot start a watcher behind us.
        pass_lock = watchdog.PassLock(settings)
        held = False
        try:
            pass_lock.__enter__()
            held = True
            procs.stop_watcher(db, settings)
        except Exception:
            log.exception("could not stop the watcher")
        try:
            set_meta(db, keys.DAEMON_STATE, DaemonState.STOPPED)
        except Exception as e:
            log.warning("could not record the stop: %s", e)
        if held:
            pass_lock.__exit__(None, None, None)
        lock.release()
        db.conn.close()
        log.info("daemon stopped")
    return 0
