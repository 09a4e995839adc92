"""Human output that fits the terminal (SPEC section 7).

The width is the terminal's when stdout is one; otherwise `COLUMNS` when it
is set (a script, a test, `watch`); otherwise there is no limit: a pipe into
`grep` or a log file gets whole lines, as a Nagios check reads the first line
whole. Tables fit that width by, in order: narrowing the free-text columns (a
reason wraps at word boundaries inside its column; a value is cut with `…`),
then leaving out the columns marked droppable (what `--json` and another
column already say, like an absolute time beside its age). Only a word
longer than its whole column is folded, and then inside the column. When the
table fits, it is laid out exactly as it always was.

Plain text, no colour and no cursor movement: these tables are what the
reading commands print, and the cron-speed commands must not load rich. A
leaf: it imports nothing from LifeLog.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import IO, NamedTuple

GAP = "  "  # between two columns
ELLIPSIS = "…"
# Below this a terminal is not laid out for: narrower widths are taken as this.
MIN_WIDTH = 40
# A wrapping column narrower than this reads badly: columns are left out first.
COMFORT = 36


def output_width(stream: IO[str] | None = None, environ: Mapping[str, str] | None = None) -> int | None:
    """The columns human output may use: the terminal's, else `COLUMNS`, else None (no limit)."""
    stream = sys.stdout if stream is None else stream
    try:
        if stream.isatty():
            columns = os.get_terminal_size(stream.fileno()).columns
            if columns > 0:
                return max(columns, MIN_WIDTH)
    except (OSError, ValueError, AttributeError):  # a closed or replaced stream
        pass
    value = (os.environ if environ is None else environ).get("COLUMNS", "").strip()
    if value.isdigit() and int(value) > 0:
        return max(int(value), MIN_WIDTH)
    return None


def no_color(environ: Mapping[str, str] | None = None) -> bool:
    """NO_COLOR (no-color.org: set and not empty): plain text, no colour, no
    bold, and no cursor movement (SPEC section 7)."""
    return bool((os.environ if environ is None else environ).get("NO_COLOR"))


def clip(text: str, width: int) -> str:
    """`text` on one line, cut with `…` when longer than `width`."""
    text = text.replace("\n", " ")
    if len(text) <= width:
        return text
    return text[: max(width - 1, 0)] + ELLIPSIS


def wrap(text: str, width: int | None) -> list[str]:
    """`text` as lines of at most `width`, broken between words. A word
    longer than the width is folded, the only case a word is broken, except
    a path or a URL (a word with a `/`), which runs on whole."""
    text = text.replace("\n", " ")
    if width is None or len(text) <= width:
        return [text]
    import textwrap

    width = max(width, 1)
    words = [" ".join(w[i:i + width] for i in range(0, len(w), width)) if len(w) > width and "/" not in w else w
             for w in text.split(" ")]
    return textwrap.wrap(" ".join(words), width, break_on_hyphens=False, break_long_words=False) or [""]


def hanging(prefix: str, text: str, width: int | None) -> list[str]:
    """`prefix` then `text`, wrapped to `width`, every line of `text` under
    its first (a hanging indent the length of `prefix`)."""
    if width is None:
        return [prefix + text]
    lines = wrap(text, max(width - len(prefix), 1))
    return [prefix + lines[0]] + [" " * len(prefix) + line for line in lines[1:]]


class Col(NamedTuple):
    """A table column and how it gives way when the table is too wide.

    fit: "keep" (never narrowed: names, states, ages), "wrap" (free text, wraps
    at words: a reason) or "clip" (one line, cut with `…`: a value).
    drop: 0, never left out; else left out when the width is short, lowest first.
    min_width: a "wrap" or "clip" column is not narrowed below this.
    """

    header: str
    fit: str = "keep"
    drop: int = 0
    min_width: int = 12


def table(cols: Sequence[Col], rows: Sequence[Sequence[str]], width: int | None = None) -> list[str]:
    """The lines of a table whose header is `cols`, fitted to `width` (None: no limit)."""
    header = [c.header for c in cols]
    natural = [max(len(cell.replace("\n", " ")) for cell in column)
               for column in zip(header, *rows, strict=True)]
    if width is None or _total(natural) <= width:
        return _plain([header, *rows], natural)
    # Fewest columns left out such that the free text keeps a readable width
    # and no value is cut; failing that, such that nothing is cut; failing
    # that, such that it fits at all; failing that, the narrowest.
    order = sorted((i for i in range(len(cols)) if cols[i].drop > 0), key=lambda i: cols[i].drop)
    keeps = [[i for i in range(len(cols)) if i not in order[:n]] for n in range(len(order) + 1)]
    for comfort, cut in ((COMFORT, False), (0, False), (0, True)):
        fitted = next(((keep, widths) for keep in keeps
                       if (widths := _narrowed([cols[i] for i in keep], [natural[i] for i in keep], width,
                                               comfort, cut)) is not None), None)
        if fitted is not None:
            keep, widths = fitted
            break
    else:  # even at their narrowest: the narrowest, a line longer than the width
        keep = keeps[-1]
        widths = [natural[i] if cols[i].fit == "keep" else min(natural[i], max(cols[i].min_width,
                                                                                len(cols[i].header)))
                  for i in keep]
    shown = [cols[i] for i in keep]
    lines = []
    for row in [header, *rows]:
        cells = [row[i] for i in keep]
        parts = [wrap(cell, w) if c.fit == "wrap" else [clip(cell, w)]
                 for c, cell, w in zip(shown, cells, widths, strict=True)]
        for k in range(max(len(p) for p in parts)):
            line = GAP.join((p[k] if k < len(p) else "").ljust(w) for p, w in zip(parts, widths, strict=True))
            lines.append(line.rstrip())
    return lines


def _total(widths: Sequence[int]) -> int:
    return sum(widths) + len(GAP) * (len(widths) - 1)


def _plain(rows: Sequence[Sequence[str]], widths: Sequence[int]) -> list[str]:
    """The layout of old: every column padded to its widest cell, the last left free."""
    return [GAP.join([cell.replace("\n", " ").ljust(w) for cell, w in zip(row[:-1], widths, strict=False)]
                     + [row[-1].replace("\n", " ")]).rstrip() for row in rows]


def _narrowed(cols: Sequence[Col], natural: Sequence[int], width: int, comfort: int,
              cut: bool) -> list[int] | None:
    """Widths that fit `width`, the free columns narrowed (wrapping ones
    first, then clipped ones; of each, the one with the most room to give;
    none below its minimum, a wrapping one not below `comfort`, and a
    clipped one narrowed only when `cut`), or None
    when they cannot."""
    widths = list(natural)
    floor = [w if c.fit == "keep" or (not cut and c.fit == "clip")
             else min(w, max(c.min_width, len(c.header), comfort if c.fit == "wrap" else 0))
             for c, w in zip(cols, widths, strict=True)]
    excess = _total(widths) - width
    if excess > sum(w - f for w, f in zip(widths, floor, strict=True)):
        return None
    # Wrapped text gives way first (it loses nothing), clipped values after.
    for fit in ("wrap", "clip"):
        free = [j for j, c in enumerate(cols) if c.fit == fit]
        while excess > 0 and free:
            i = max(free, key=lambda j: widths[j] - floor[j])
            if widths[i] <= floor[i]:
                break
            widths[i] -= 1
            excess -= 1
    return widths
