"""The daemon's timetable runs on elapsed time (SPEC section 1): a
daylight-saving change or a stepped wall clock neither stalls its jobs nor
runs them in a burst.

The pure part (how far the wall clock stepped, moving the jobs with it) is
tested on its own; then a real daemon process lives through a real
daylight-saving change (a POSIX TZ rule whose change comes seconds after
its start) and through a wall clock stepped back and forward under
libfaketime (the machine's own clock is shared with everything else
running, so it is not stepped)."""

from __future__ import annotations

import glob
import os
import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import schedule
from hypothesis import assume, given
from hypothesis import strategies as st
from support.helpers import FAST as MONITOR_FAST
from support.helpers import meta, wait_for

from lifelog import daemon as daemon_mod
from lifelog.core.timeutil import parse_iso
from lifelog.daemon import STEP_TOLERANCE, Reading, reschedule_from, run_turn, shift_jobs, wall_step
from lifelog.db.database import open_db

# -- the pure part ------------------------------------------------------------------------

WALL = datetime(2026, 11, 1, 1, 59, 59, 500000)  # a naive local time, as `schedule` keeps them

elapsed_ = st.floats(0, 1e7)
passed_ = st.floats(0, 1e5)  # seconds between two turns (a suspend counts)
step_us_ = st.integers(-2 * 86400 * 10**6, 2 * 86400 * 10**6)  # how far the wall clock moved, in µs
remaining_ = st.lists(st.floats(-60, 86400), min_size=1, max_size=5)


def jobs_due_in(remaining: list[float], wall: datetime):
    """Real `schedule` jobs whose next runs are `remaining` seconds after `wall`."""
    scheduler = schedule.Scheduler()
    for r in remaining:
        job = scheduler.every(30).seconds.do(lambda: None)
        job.next_run = wall + timedelta(seconds=r)
        job.last_run = wall - timedelta(seconds=1)
    return scheduler.jobs


@given(elapsed_, passed_, step_us_)
def test_the_step_is_the_wall_clocks_move_beyond_the_time_that_passed(e0, passed, step_us):
    step = step_us / 1e6
    assume(abs(abs(step) - STEP_TOLERANCE) > 1e-3)  # clear of float rounding at the edge
    then = Reading(e0, WALL)
    now = Reading(e0 + passed, WALL + timedelta(seconds=passed, microseconds=step_us))
    found = wall_step(then, now)
    if abs(step) <= STEP_TOLERANCE:
        assert found is None
    else:
        assert found is not None and abs(found.total_seconds() - step) < 1e-3


@given(elapsed_, passed_, step_us_, remaining_)
def test_each_job_keeps_its_place_in_elapsed_time(e0, passed, step_us, remaining):
    """Whatever the wall clock did, after the correction each job is as far
    from now, by the wall clock `schedule` reads, as its time left in
    elapsed time: never an hour late (a stall), never early (a burst)."""
    then = Reading(e0, WALL)
    now = Reading(e0 + passed, WALL + timedelta(seconds=passed, microseconds=step_us))
    jobs = jobs_due_in(remaining, then.wall)
    gaps = [job.next_run - job.last_run for job in jobs]
    step = wall_step(then, now)
    if step is not None:
        shift_jobs(jobs, step)
    for job, r, gap in zip(jobs, remaining, gaps, strict=False):
        left = (job.next_run - now.wall).total_seconds()
        assert abs(left - (r - passed)) <= STEP_TOLERANCE + 1e-3
        assert job.next_run - job.last_run == gap  # the last run moved with it


def test_a_daylight_saving_change_is_a_step_of_an_hour():
    # 01:59:59.5 daylight time, one second later 01:00:00.5 standard time.
    back = wall_step(Reading(100.0, WALL), Reading(101.0, WALL.replace(hour=1, minute=0, second=0)))
    assert back == timedelta(hours=-1)
    # 01:59:59.5 standard time, one second later 03:00:00.5 daylight time.
    forward = wall_step(Reading(100.0, WALL), Reading(101.0, WALL.replace(hour=3, minute=0, second=0)))
    assert forward == timedelta(hours=1)
    jobs = jobs_due_in([0.7, 900.0], WALL)  # the next health check in 0.7 s, a backup in 15 min
    shift_jobs(jobs, back)
    assert [j.next_run for j in jobs] == [datetime(2026, 11, 1, 1, 0, 0, 200000),
                                           datetime(2026, 11, 1, 1, 14, 59, 500000)]


def test_the_steps_edges():
    then = Reading(50.0, WALL)

    def moved(passed: float, wall_moved: timedelta):
        return wall_step(then, Reading(50.0 + passed, WALL + wall_moved))

    assert moved(1.0, timedelta(seconds=1)) is None  # time passed, nothing stepped
    assert moved(0.0, timedelta(0)) is None
    assert moved(1.0, timedelta(seconds=1.5)) is None  # the tolerance itself: not a step
    assert moved(1.0, timedelta(seconds=0.5)) is None
    assert moved(1.0, timedelta(seconds=1.5, microseconds=1)) == timedelta(seconds=0.5, microseconds=1)
    assert moved(1.0, timedelta(seconds=0.5, microseconds=-1)) == timedelta(seconds=-0.5, microseconds=-1)
    # A suspend: both clocks went on for eight hours (the elapsed clock counts it).
    assert moved(8 * 3600.0, timedelta(hours=8)) is None
    # Readings that cannot be compared are no step.
    assert wall_step(then, Reading(float("nan"), WALL)) is None
    assert wall_step(then, Reading(float("inf"), WALL)) is None


def test_jobs_that_ran_across_a_step_are_due_one_interval_after_it():
    scheduler = schedule.Scheduler()
    never = scheduler.every(0.6).seconds.do(lambda: None)
    ran = scheduler.every(30).seconds.do(lambda: None)
    ran.last_run = WALL - timedelta(hours=1)
    reschedule_from(scheduler.jobs, WALL)
    assert (never.last_run, never.next_run) == (None, WALL + timedelta(seconds=0.6))
    assert (ran.last_run, ran.next_run) == (WALL, WALL + timedelta(seconds=30))


def test_a_turn_moves_the_timetable_by_the_step_since_the_last_turn():
    """`run_turn` on a real timetable, told that at the previous turn the wall
    clock read an hour less than it does now (it was stepped forward)."""
    stop = threading.Event()
    job = daemon_mod.Job("probe", lambda settings, stop: None)
    scheduler = schedule.Scheduler()
    scheduler.every(600).seconds.do(job.start, None, stop)
    before = scheduler.jobs[0].next_run
    now = daemon_mod.read_clocks()
    after = run_turn(scheduler, Reading(now.elapsed, now.wall - timedelta(hours=1)))
    moved = (scheduler.jobs[0].next_run - before).total_seconds()
    assert abs(moved - 3600) <= STEP_TOLERANCE
    assert job.runs == 0 and job.thread is None  # ten minutes away still: not run
    assert after.elapsed >= now.elapsed
    # The next turn, with nothing stepped, leaves it where it is.
    placed = scheduler.jobs[0].next_run
    run_turn(scheduler, after)
    assert scheduler.jobs[0].next_run == placed


# -- a real daemon ---------------------------------------------------------------------------

# The health job every 1.2 s: a stall shows within seconds.
CADENCE = dict(MONITOR_FAST, LIFELOG_AW_HEALTH_CHECK_INTERVAL_MINUTES="0.02")
# The health job every 30 min: it runs at launch, and once more only if a
# step forward of an hour made it due early (schedule never replays, so a
# burst is each job run once, at once, long before its time).
SPARSE = dict(MONITOR_FAST, LIFELOG_AW_HEALTH_CHECK_INTERVAL_MINUTES="30")
# How long before its daylight-saving change a daemon is started: time to
# start it, build its timetable and run its launch health check, on a busy
# machine.
LEAD_SECONDS = 8.0


@pytest.fixture
def daemon(db_path, aw_server, spawn, own_buckets):
    def start(settings: dict, **extra):
        # Only this test's buckets: see tests/test_daemon.py's daemon fixture.
        env = dict(os.environ, LIFELOG_AW_URL=aw_server.url, LIFELOG_DB_PATH=str(db_path),
                   LIFELOG_BUCKETS=f"{own_buckets}*", **settings)
        env.update(extra)
        return spawn.lifelog("daemon", "--db", str(db_path), env=env, log="daemon")

    return start


def health_checks(db_path) -> list[tuple[int, datetime]]:
    """(id, checked_at) of each health check the daemon ran, oldest first;
    none while the daemon is still creating the database."""
    try:
        db = open_db(db_path, create=False)
    except Exception:
        return []
    try:
        rows = db.conn.execute("SELECT id, checked_at FROM health_checks ORDER BY id").fetchall()
    except sqlite3.Error:
        return []
    finally:
        db.conn.close()
    return [(row[0], parse_iso(row[1])) for row in rows]


def checked_at(db_path, key="watchdog.checked_at") -> datetime | None:
    value = meta(db_path, key)
    return parse_iso(value) if value else None


def tz_rule(dst_from: datetime, dst_until: datetime) -> str:
    """A POSIX TZ: standard time UTC-5, daylight time UTC-4 from `dst_from`
    until `dst_until` (UTC, whole seconds). A change is written as a
    zero-based day of the year (leap days count) and a time on the clock it
    leaves: standard time for the start, daylight time for the end.

    glibc applies the rule to the year of the UTC date, so the day counts
    from that year's start, and a change whose local date is still the old
    year (the first hours of a UTC year) is day 0 at a negative time. Across
    New Year the start may fall after the end, which is read as daylight
    time over the turn of the year: the same two moments."""
    def when(utc: datetime, offset_hours: int) -> str:
        local = (utc - timedelta(hours=offset_hours)).replace(tzinfo=None)
        seconds = round((local - datetime(utc.year, 1, 1)).total_seconds())
        day, rest = (seconds // 86400, seconds % 86400) if seconds >= 0 else (0, seconds)
        sign, rest = ("-" if rest < 0 else ""), abs(rest)
        return f"{day}/{sign}{rest // 3600}:{rest % 3600 // 60:02}:{rest % 60:02}"

    return f"XST+5XDT+4,{when(dst_from, 5)},{when(dst_until, 4)}"


def assert_local_clock_jumps(tz: str, at: datetime, hours: int) -> None:
    """The premise: under `tz`, the local clock moves by `hours` at `at`."""
    probe = ("import sys, time; t = float(sys.argv[1]); "
             "print(time.localtime(t + 1).tm_gmtoff - time.localtime(t - 1).tm_gmtoff)")
    out = subprocess.run([sys.executable, "-c", probe, str(at.timestamp())], env=dict(os.environ, TZ=tz),
                         capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == str(hours * 3600), (tz, out.stdout, out.stderr)


def utc_now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def launch_check_before(db_path, change: datetime) -> None:
    """The daemon built its timetable (and then ran its launch health check)
    before the clock change; otherwise it never saw the change."""
    first = wait_for(lambda: health_checks(db_path)[:1], timeout=LEAD_SECONDS * 2,
                     what="the daemon's launch health check")[0]
    assert first[1] < change, (f"the daemon took over {LEAD_SECONDS} s to start "
                               f"(launch check at {first[1]}, clock change at {change})")


def assert_ran_only_at_launch(db_path) -> None:
    checks = health_checks(db_path)
    assert len(checks) == 1, f"the health job, due in 30 min, ran again when the clock moved forward: {checks}"


def test_health_checks_go_on_through_the_end_of_daylight_saving_time(db_path, daemon):
    """The local clock goes back an hour: the jobs keep their cadence (before
    the fix `schedule` waited out the repeated hour: no check for an hour)."""
    change = utc_now() + timedelta(seconds=LEAD_SECONDS)
    tz = tz_rule(change - timedelta(hours=12), change)
    assert_local_clock_jumps(tz, change, -1)
    daemon(CADENCE, TZ=tz)
    launch_check_before(db_path, change)
    after = wait_for(lambda: (a := [c for c in health_checks(db_path) if c[1] > change])[2:] and a,
                     timeout=LEAD_SECONDS + 20, what="three health checks after the clock went back")
    # At their cadence (1.2 s), not in a heap: three span two intervals (one,
    # allowing for threads started late on a busy machine).
    assert (after[2][1] - after[0][1]).total_seconds() >= 1.2, after


def test_the_start_of_daylight_saving_time_runs_no_job_early(db_path, daemon):
    """The local clock goes forward an hour: the health job, due in 30 min,
    is not run at once (before the fix every job with less than an hour to
    go ran the moment the clock moved)."""
    change = utc_now() + timedelta(seconds=LEAD_SECONDS)
    tz = tz_rule(change, change + timedelta(hours=12))
    assert_local_clock_jumps(tz, change, 1)
    daemon(SPARSE, TZ=tz)
    launch_check_before(db_path, change)
    # The loop has turned for two seconds since the change (watchdog passes
    # every 0.3 s), long enough for a health check it started to be stored.
    wait_for(lambda: (c := checked_at(db_path)) and c > change + timedelta(seconds=2),
             timeout=LEAD_SECONDS + 20, what="watchdog passes two seconds after the change")
    assert_ran_only_at_launch(db_path)


# -- a stepped wall clock (libfaketime) ---------------------------------------------------

FAKETIME_SITE = Path(__file__).parent / "support" / "faketime_site"
FAKETIME_LIBS = ("/usr/lib/*/faketime/libfaketime.so.1", "/usr/lib/faketime/libfaketime.so.1",
                 "/usr/local/lib/faketime/libfaketime.so.1")


@pytest.fixture
def stepped_clock(tmp_path):
    """The environment that runs a process on a wall clock the test steps:
    libfaketime reads the offset from a file at each reading of the clock,
    and leaves the monotonic and since-boot clocks alone. `step(seconds)`
    sets the offset. The processes load support/faketime_site/sitecustomize.py,
    which works around libfaketime 0.9.10 breaking Python's time.sleep."""
    found = [path for pattern in FAKETIME_LIBS for path in sorted(glob.glob(pattern))]
    if not found:
        pytest.fail("libfaketime is missing: install it (`apt-get install faketime`, as .ci/run does)")
    offset = tmp_path / "faketime-offset"
    offset.write_text("+0\n")

    class Clock:
        env = {"LD_PRELOAD": found[0], "FAKETIME_TIMESTAMP_FILE": str(offset), "FAKETIME_NO_CACHE": "1",
               "FAKETIME_DONT_FAKE_MONOTONIC": "1",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(FAKETIME_SITE), os.environ.get("PYTHONPATH")]))}

        @staticmethod
        def step(seconds: int) -> None:
            tmp = offset.with_suffix(".tmp")
            tmp.write_text(f"{seconds:+d}\n")
            tmp.replace(offset)  # whole: a reader never sees it half written

    return Clock


def test_health_checks_go_on_when_the_wall_clock_is_stepped_back(db_path, daemon, stepped_clock):
    daemon(CADENCE, **stepped_clock.env)
    before = wait_for(lambda: (c := health_checks(db_path))[1:] and c, what="two health checks")
    stepped_clock.step(-3600)
    last_id = health_checks(db_path)[-1][0]
    after = wait_for(lambda: (a := [c for c in health_checks(db_path) if c[0] > last_id + 1])[2:] and a,
                     timeout=20, what="three health checks after the clock went back")
    # The daemon's clock did go back an hour (its checks are stamped by it).
    assert after[0][1] < before[-1][1] - timedelta(minutes=50), (before, after)
    assert (after[2][1] - after[0][1]).total_seconds() >= 1.2, after


def test_a_wall_clock_stepped_forward_runs_no_job_early(db_path, daemon, stepped_clock):
    daemon(SPARSE, **stepped_clock.env)
    launch = wait_for(lambda: health_checks(db_path)[:1], what="the launch health check")[0][1]
    wait_for(lambda: (c := checked_at(db_path)) and c > launch, what="a watchdog pass")
    stepped_clock.step(3600)
    # Two seconds of watchdog passes on the stepped clock: the loop has
    # turned for long enough after the step for a health check it started
    # to be stored.
    stepped = launch + timedelta(minutes=50)
    seen = wait_for(lambda: (c := checked_at(db_path)) and c > stepped and c, what="a pass on the stepped clock")
    wait_for(lambda: (c := checked_at(db_path)) and c > seen + timedelta(seconds=2),
             what="two seconds of passes after the step")
    assert_ran_only_at_launch(db_path)
