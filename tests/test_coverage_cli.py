"""`lifelog coverage` on a planted history: the JSON, the terminal picture,
and the HTML page as a person sees it (a screenshot in headless Chromium)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import timedelta

import pytest
from PIL import Image, ImageColor
from rich.console import Console
from support.coverage_history import HOST, local_iso, plant

from lifelog.coverage.html import CAUSE_COLOUR, CLASS_COLOUR
from lifelog.coverage.model import Cause, Kind
from lifelog.db.database import open_db


@pytest.fixture
def planted(db_path):
    db = open_db(db_path)
    history = plant(db)
    db.close()
    return history


def range_args(h) -> list[str]:
    return ["--since", h.day.isoformat(), "--until", local_iso(h.until)]


def test_the_json_gives_the_planted_stretches_and_causes(db_path, planted, lifelog):
    r = lifelog("coverage", "--db", str(db_path), *range_args(planted), "--json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["stretches"] == planted.expected_stretches()
    assert doc["since"] == local_iso(planted.since) and doc["until"] == local_iso(planted.until)
    assert doc["slot_minutes"] == 15
    first, second = doc["days"]
    assert first == {"date": planted.day.isoformat(), "host": HOST, "active_seconds": 4 * 3600,
                     "away_seconds": 0, "gap_seconds": 3600,
                     "no_data_seconds": planted.next_midnight - planted.midnight - 5 * 3600}
    assert second == {"date": (planted.day + timedelta(days=1)).isoformat(), "host": HOST, "active_seconds": 0,
                      "away_seconds": 0, "gap_seconds": 0, "no_data_seconds": 8 * 3600}


def test_without_since_and_until_the_range_is_local_midnight_seven_days_ago_to_now(db_path, lifelog):
    import time
    from datetime import datetime
    from datetime import time as clock
    from zoneinfo import ZoneInfo

    open_db(db_path).close()
    zone = ZoneInfo("America/New_York")  # the machine's TZ, as the command sees it
    before = time.time()
    r = lifelog("coverage", "--db", str(db_path), "--json", env=dict(os.environ, TZ=zone.key))
    after = time.time()
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    # (Either side of a midnight, should the command straddle one.)
    expected = {datetime.combine(datetime.fromtimestamp(t, zone).date() - timedelta(days=7), clock(0), zone)
                .isoformat(timespec="seconds") for t in (before, after)}
    assert doc["since"] in expected, (doc["since"], expected)
    until = datetime.fromisoformat(doc["until"])
    assert until.utcoffset() == datetime.fromtimestamp(after, zone).utcoffset()
    assert before - 60 < until.timestamp() <= after  # now, as a whole minute


def test_the_terminal_picture_shows_one_cell_per_slot_coloured_by_class(db_path, planted):
    from lifelog.core.settings import load_settings
    from lifelog.coverage.picture import print_picture
    from lifelog.coverage.query import coverage_of

    with open_db(db_path) as db:
        cov = coverage_of(db, load_settings(overrides={"db_path": str(db_path)}), planted.since, planted.until, 15)
    console = Console(file=io.StringIO(), record=True, width=200, force_terminal=True, color_system="256")
    print_picture(cov, console)
    text = console.export_text(clear=False)
    day_line = next(line for line in text.splitlines() if line.startswith(planted.day.strftime("%a %m-%d")))
    cells = day_line[11:11 + 96]
    hours = (planted.next_midnight - planted.midnight) // 3600  # 23 or 25 on a DST day: shifted by an hour
    if hours == 24:
        assert cells == "·" * 32 + "█" * 16 + "S" * 4 + "a" * 20 + "·" * 24
    assert "█" * 16 + "S" * 4 + "a" * 20 in cells
    assert "active 4:00" in day_line and "without window data 1:00" in day_line
    assert "aw_down" in text and "source_silent" in text and "lifelog_down" in text  # the legend
    styled = console.export_text(styles=True)
    assert "\x1b[32m" + "█" * 16 + "\x1b[0m" in styled  # the morning in green
    assert "\x1b[1;37;48;5;160mSSSS\x1b[0m" in styled  # the gap, white on red
    assert "\x1b[1;38;5;208m" + "a" * 20 + "\x1b[0m" in styled  # AW down, orange


def _picture(db_path, planted, width: int) -> list[str]:
    from lifelog.core.settings import load_settings
    from lifelog.coverage.picture import print_picture
    from lifelog.coverage.query import coverage_of

    with open_db(db_path) as db:
        cov = coverage_of(db, load_settings(overrides={"db_path": str(db_path)}), planted.since, planted.until, 15)
    console = Console(file=io.StringIO(), record=True, width=width)
    print_picture(cov, console)
    return console.export_text().splitlines()


def test_at_80_columns_a_cell_shows_two_slots_and_the_totals_go_under_the_day(db_path, planted):
    lines = _picture(db_path, planted, 80)
    assert all(len(line) <= 80 for line in lines), "\n".join(lines)
    at = next(i for i, line in enumerate(lines) if line.startswith(planted.day.strftime("%a %m-%d")))
    cells = lines[at][11:]
    if (planted.next_midnight - planted.midnight) // 3600 == 24:
        assert cells == "·" * 16 + "█" * 8 + "S" * 2 + "a" * 10 + "·" * 12, "\n".join(lines)  # 48 half-hours
    assert "█" * 8 + "S" * 2 + "a" * 10 in cells
    assert lines[at + 1] == " " * 11 + "active 4:00  without window data 1:00"  # whole words, a line of their own
    assert "15-minute slots, 2 to a cell" in " ".join(" ".join(lines[:2]).split())  # wrapped at words
    assert any(line.startswith("A cell shows 2 slots (30 minutes)") for line in lines)


def test_at_120_columns_every_slot_has_its_cell(db_path, planted):
    lines = _picture(db_path, planted, 120)
    assert all(len(line) <= 120 for line in lines), "\n".join(lines)
    at = next(i for i, line in enumerate(lines) if line.startswith(planted.day.strftime("%a %m-%d")))
    assert "█" * 16 + "S" * 4 + "a" * 20 in lines[at]
    assert "active 4:00" in lines[at] + lines[at + 1]
    assert "to a cell" not in lines[0]


def test_the_command_prints_the_picture_and_writes_the_html(db_path, planted, lifelog, tmp_path):
    page = tmp_path / "coverage.html"
    r = lifelog("coverage", "--db", str(db_path), *range_args(planted), "--html", str(page))
    assert r.code == 0, r.err
    assert "█" * 16 + "S" * 4 + "a" * 20 in r.out and "\x1b[" not in r.out  # no colour codes in a pipe
    assert f"coverage written to {page}" in r.err
    html = page.read_text()
    assert html.startswith("<!doctype html>") and "<svg" in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")  # nothing fetched
    assert "<script" not in html and "<link" not in html
    assert CLASS_COLOUR[Kind.GAP] in html
    # One card per cause planted (AW down, a silent source, the unexplained night), each with its fix;
    # no LifeLog-down stretch is planted, so neither its card nor its fix ('lifelog reconcile') is there.
    for heading, fix in (("ActivityWatch was down", "Keep AW running under a supervisor"),
                         ("A watcher was silent", "Restart the watcher (aw-watcher-window, aw-watcher-afk)"),
                         ("No record explains it", "Nothing, if the machine was off.")):
        assert f"<h3>{heading}</h3>" in html and fix in html, heading
    assert html.count('<div class="cause" ') == 3
    assert "LifeLog was not running" not in html and "lifelog reconcile" not in html


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def screenshot(page, png, width=1100, height=1300) -> None:
    browser = chromium()
    if browser is None:  # a missing tool fails, never skips: .ci/run installs it
        pytest.fail("chromium is not installed: apt-get install chromium (.ci/run does it as root)")
    with tempfile.TemporaryDirectory() as profile:
        r = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                            "--no-first-run", "--disable-background-networking", "--disable-component-update",
                            "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}",
                            f"--screenshot={png}", f"--window-size={width},{height}", page.as_uri()],
                           capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 0 and png.exists(), r.stderr[-2000:]


def rgb_rows(png) -> list[list[tuple[int, int, int]]]:
    """The screenshot's pixels, row by row, without alpha (the page is opaque)."""
    with Image.open(png) as image:
        # What Chromium writes: an 8-bit RGB(A) PNG (anything else means a different screenshot path).
        assert image.format == "PNG" and image.mode in ("RGB", "RGBA"), (image.format, image.mode)
        width, data = image.width, image.convert("RGB").tobytes()
    stride = 3 * width
    lines = [data[y:y + stride] for y in range(0, len(data), stride)]
    return [list(zip(line[0::3], line[1::3], line[2::3], strict=True)) for line in lines]


def runs(row: list[tuple[int, int, int]], colour: tuple[int, ...], tolerance: int = 3) -> list[tuple[int, int]]:
    """[start, end) of each horizontal run of `colour` in one row."""
    out, start = [], None
    for x, px in enumerate(row + [(-99, -99, -99)]):
        hit = all(abs(a - b) <= tolerance for a, b in zip(px, colour, strict=False))
        if hit and start is None:
            start = x
        elif not hit and start is not None:
            out.append((start, x))
            start = None
    return out


def test_the_html_shows_the_planted_history_in_a_browser(db_path, planted, lifelog, tmp_path):
    page, png = tmp_path / "coverage.html", tmp_path / "shot.png"
    r = lifelog("coverage", "--db", str(db_path), *range_args(planted), "--html", str(page), "--json")
    assert r.code == 0, r.err
    json.loads(r.out)  # --json keeps stdout to the document
    screenshot(page, png)
    rows = rgb_rows(png)
    assert len({px for row in rows[::20] for px in row[::20]}) > 20  # not blank

    gap, active = ImageColor.getrgb(CLASS_COLOUR[Kind.GAP]), ImageColor.getrgb(CLASS_COLOUR[Kind.ACTIVE])
    # The timeline's day row is where the gap colour runs longest (legend dots and table bars are small).
    y = max(range(len(rows)), key=lambda y: max((b - a for a, b in runs(rows[y], gap)), default=0))
    (g0, g1), = runs(rows[y], gap)
    (a0, a1), = [r for r in runs(rows[y], active) if r[1] - r[0] > 20]
    hour = (a1 - a0) / 4  # the morning: 08:00-12:00
    assert hour > 20
    assert abs(g0 - a1) <= 2 and abs((g1 - g0) - hour) <= 2  # the gap: 12:00-13:00, right after the morning
    # Under the bars, the cause strips: source_silent under the gap, aw_down for 13:00-18:00.
    silent, aw = ImageColor.getrgb(CAUSE_COLOUR[Cause.SOURCE_SILENT]), ImageColor.getrgb(CAUSE_COLOUR[Cause.AW_DOWN])
    strip = next(yy for yy in range(y, y + 40) if runs(rows[yy], silent))
    (s0, s1), = runs(rows[strip], silent)
    (w0, w1), = [r for r in runs(rows[strip], aw) if r[1] - r[0] > 20]
    assert abs(s0 - g0) <= 2 and abs(s1 - g1) <= 2
    assert abs(w0 - g1) <= 2 and abs((w1 - w0) - 5 * hour) <= 3


def test_bad_input_is_one_line_exit_2_and_creates_nothing(tmp_path, lifelog, db_path, planted):
    missing = tmp_path / "nothing.db"
    for args, culprit in ((["--since", "last week"], "--since"), (["--until", "2026-13-45"], "--until"),
                          (["--slot-minutes", "0"], "--slot-minutes"), (["--slot-minutes", "ten"], "--slot-minutes"),
                          (["--since", "2026-11-02", "--until", "2026-11-01"], "--until"),
                          (["--html", str(tmp_path / "no" / "such" / "x.html")], "--html")):
        r = lifelog("coverage", "--db", str(db_path), *args)
        assert r.code == 2 and culprit in r.err and len(r.err.strip().splitlines()) == 1, (args, r.err)
    r = lifelog("coverage", "--db", str(missing))
    assert r.code == 2 and "lifelog init" in r.err and not missing.exists()
    assert not (tmp_path / "no").exists()


def test_status_and_the_cron_pass_stay_light(db_path):
    """Only coverage and status --watch load rich."""
    open_db(db_path).close()
    code = ("import sys; from lifelog.cli import run; "
            f"run(['status', '--db', {str(db_path)!r}]); run(['watchdog', '--once', '--db', {str(db_path)!r}]); "
            "print('rich' in sys.modules)")
    env = dict(os.environ, LIFELOG_AW_URL="http://127.0.0.1:9", LIFELOG_AW_TIMEOUT_SECONDS="1",
               LIFELOG_WATCHER_RESTART_COMMAND="true")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert r.stdout.strip().splitlines()[-1] == "False", r.stdout + r.stderr


def test_a_gap_while_lifelog_was_not_running_on_the_same_boot_says_lifelog_down(db_path):
    """Runs of one boot with an hour between them; the user at the keyboard
    all along, window data only while LifeLog ran (AW lost the rest)."""
    from support.coverage_history import AFK_BUCKET, SERVER, WINDOW_BUCKET, History, iso

    from lifelog.core.settings import load_settings
    from lifelog.coverage.query import coverage_of
    from lifelog.db.database import transaction

    h = History(planted_day())
    db = open_db(db_path)
    stamp = iso(h.at(20))
    with transaction(db):
        for bucket, type_ in ((AFK_BUCKET, "afkstatus"), (WINDOW_BUCKET, "currentwindow")):
            db.conn.execute("INSERT INTO buckets (server, bucket_id, type, hostname, first_seen_at, last_seen_at)"
                            " VALUES (?, ?, ?, ?, ?, ?)", (SERVER, bucket, type_, HOST, stamp, stamp))
        rows = [(AFK_BUCKET, 1, h.at(9), 3 * 3600, '{"status":"not-afk"}'),
                (WINDOW_BUCKET, 1, h.at(9), 3600, '{"app":"a"}'), (WINDOW_BUCKET, 2, h.at(11), 3600, '{"app":"a"}')]
        db.conn.executemany("INSERT INTO events (server, bucket_id, event_id, timestamp, duration, data, ended_at,"
                            " ingested_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            [(SERVER, b, i, iso(t), d, data, iso(t + d), stamp, stamp) for b, i, t, d, data in rows])
        boot = iso(h.at(8))
        db.conn.executemany("INSERT INTO watcher_runs (pid, started_at, last_heartbeat_at, boot_at) VALUES (?, ?, ?, ?)",
                            [(1, iso(h.at(8.5)), iso(h.at(10) - 120), boot), (2, iso(h.at(11)), iso(h.at(12)), boot)])
    cov = coverage_of(db, load_settings(overrides={"db_path": str(db_path)}), h.at(9), h.at(12), 15,
                      now=h.at(12), boot_now=h.at(8))
    assert [(s["class"], s["cause"], s["start"][11:16], s["end"][11:16]) for s in cov.to_json()["stretches"]] == [
        ("active", None, "09:00", "10:00"), ("gap", "lifelog_down", "10:00", "11:00"), ("active", None, "11:00", "12:00")]


def planted_day():
    from support.coverage_history import default_day

    return default_day()
