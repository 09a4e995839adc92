"""Human output fitted to the terminal (lifelog.core.terminal, SPEC section 7):
the width read from a real terminal or COLUMNS, and tables that wrap their
reasons in their column, cut values with `…`, and leave columns out, but are
laid out as always when they fit."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios

from lifelog.core.terminal import Col, clip, hanging, output_width, table, wrap

REASON = ("silent: the machine is awake and the user active, but no window event for 45 min; "
          "restart with 'systemctl --user restart aw-watcher-window'")
COLS = (Col("BUCKET", "clip", min_width=24), Col("TYPE", drop=2), Col("STATE"), Col("WHEN", drop=1),
        Col("REASON", "wrap", min_width=24))
ROWS = [("aw-watcher-window_vm", "currentwindow", "live", "2026-11-29T00:22:18+00:00", "recording"),
        ("aw-watcher-afk_vm", "afkstatus", "silent", "2026-11-29T00:22:18+00:00", REASON)]


def test_without_a_terminal_the_width_is_columns_or_no_limit():
    with open(os.devnull, "w") as pipe:
        assert output_width(pipe, {"COLUMNS": "80"}) == 80
        assert output_width(pipe, {"COLUMNS": "132"}) == 132
        assert output_width(pipe, {}) is None  # a pipe into grep, a log: whole lines
        assert output_width(pipe, {"COLUMNS": "wide"}) is None
        assert output_width(pipe, {"COLUMNS": "10"}) == 40  # narrower is not laid out for


def test_on_a_real_terminal_the_width_is_the_terminals_not_columns():
    # A pseudo-terminal 97 columns wide, as a terminal emulator makes one; a
    # child process asks for the width on it, with COLUMNS saying otherwise.
    leader, follower = pty.openpty()
    try:
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 97, 0, 0))
        code = "from lifelog.core.terminal import output_width; import sys; sys.stderr.write(str(output_width()))"
        r = subprocess.run([sys.executable, "-c", code], stdout=follower, stderr=subprocess.PIPE, text=True,
                           env=dict(os.environ, COLUMNS="80"), timeout=60)
    finally:
        os.close(follower)
        os.close(leader)
    assert r.returncode == 0 and r.stderr == "97"


def test_a_table_that_fits_is_laid_out_as_always():
    lines = table(COLS, ROWS[:1], 200)
    assert lines == table(COLS, ROWS[:1], None) == [
        "BUCKET                TYPE           STATE  WHEN                       REASON",
        "aw-watcher-window_vm  currentwindow  live   2026-11-29T00:22:18+00:00  recording",
    ]


def test_too_wide_it_leaves_out_the_droppable_columns_first_and_wraps_the_reason_at_words():
    lines = table(COLS, ROWS, 80)
    assert all(len(line) <= 80 for line in lines), lines
    assert lines[0].split() == ["BUCKET", "STATE", "REASON"]  # WHEN went first, then TYPE
    reason_at = lines[0].index("REASON")
    assert lines[1][reason_at:] == "recording"
    wrapped = [line[reason_at:] for line in lines[2:]]
    assert " ".join(wrapped) == REASON  # every word there, whole, in order
    assert all(line[:reason_at].strip() == "" for line in lines[3:])  # continuation lines: the column only
    assert lines[2].startswith("aw-watcher-afk_vm") and "silent" in lines[2]


def test_a_wider_terminal_keeps_more_columns():
    lines = table(COLS, ROWS, 120)
    assert all(len(line) <= 120 for line in lines), lines
    assert lines[0].split() == ["BUCKET", "TYPE", "STATE", "WHEN", "REASON"]  # the reason keeps 36 columns


def test_a_value_column_is_cut_with_an_ellipsis_only_when_wrapping_alone_cannot_fit():
    cols = (Col("KEY"), Col("VALUE", "clip", min_width=12), Col("AGE"))
    rows = [("watcher.restart_command", "x" * 100, "2 s ago")]
    lines = table(cols, rows, 60)
    assert all(len(line) <= 60 for line in lines), lines
    assert "…" in lines[1] and lines[1].endswith("2 s ago")


def test_wrap_folds_only_a_word_longer_than_its_column_and_never_a_path():
    assert wrap("one two three", 7) == ["one two", "three"]
    assert wrap("a " + "b" * 10, 4) == ["a", "bbbb", "bbbb", "bb"]
    path = "/home/ada/.local/share/lifelog/lifelog.db"
    assert wrap(f"database {path}", 20) == ["database", path]
    assert wrap("aw-watcher-window_vm is quiet", 20) == ["aw-watcher-window_vm", "is quiet"]  # not at hyphens
    assert wrap("anything", None) == ["anything"]


def test_hanging_puts_every_line_under_the_first():
    assert hanging("WARNING: ", "one two three four", 20) == ["WARNING: one two", "         three four"]
    assert hanging("  aw  ", "text", None) == ["  aw  text"]


def test_clip():
    assert clip("short", 10) == "short"
    assert clip("a longer value", 8) == "a longe…"
    assert clip("two\nlines", 20) == "two lines"
