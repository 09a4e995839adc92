"""The meta table: every part records its state here as key -> text, and
this is the only module that touches `meta` by SQL (the key names are in
lifelog.core.keys).

Reads and writes of one key are plain SQL through `db.execute`: they run at
every poll and in every cron pass, and sqlite-utils' Table API rebuilds its
SQL and asks for the table's columns at each call (measured: a set_meta takes
~27 us, Table.upsert ~170 us; a get_meta ~7 us, Table.get ~78 us).
`meta show` reads through the Table API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lifelog.core import keys
from lifelog.core.timeutil import now_iso
from lifelog.db.database import transaction

if TYPE_CHECKING:
    from sqlite_utils import Database


def get_meta(db: Database, key: str) -> str | None:
    """The value of one meta key, or None when the key is absent."""
    row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else row[0]


def set_meta(db: Database, key: str, value: str | int | float) -> None:
    """Set one meta key (text) and stamp its updated_at."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise TypeError(f"meta values are text; got {type(value).__name__} for {key!r}")
    with transaction(db):
        db.execute(
            "INSERT INTO meta (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE"
            " SET value = excluded.value, updated_at = excluded.updated_at",
            (key, str(value), now_iso()),
        )


def delete_meta(db: Database, key: str) -> None:
    """Remove one meta key (a source AW no longer lists)."""
    with transaction(db):
        db.execute("DELETE FROM meta WHERE key = ?", (key,))


def read_meta(db: Database, prefixes: tuple[str, ...] = ()) -> dict[str, str | None]:
    """Every meta key (or those starting with `prefixes`) and its value: one
    snapshot, so a decision reads one consistent state."""
    rows = db.execute("SELECT key, value FROM meta").fetchall()
    return {k: v for k, v in rows if not prefixes or k.startswith(prefixes)}


def device_meta(db: Database, name: str) -> dict[str, str | None]:
    """A device's keys (`device.<name>.*`, lifelog.core.keys.DEVICE_FIELDS)
    by field, in one query: the watcher reads them at every poll."""
    prefix = f"{keys.DEVICE_PREFIX}{name}."
    # A range of the primary key, not LIKE: `_` (in device names) is LIKE's
    # wildcard, and a range is read through the index. Every key beginning
    # with the prefix sorts before the prefix with its last character
    # incremented ("device.x." < key < "device.x/").
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    rows = db.execute("SELECT key, value FROM meta WHERE key >= ? AND key < ?", (prefix, end)).fetchall()
    return {k[len(prefix):]: v for k, v in rows}


def recorded_identity(db: Database, name: str) -> tuple[str | None, str | None]:
    """The device_id and host name a device last answered with."""
    recorded = device_meta(db, name)
    return recorded.get("device_id") or None, recorded.get("hostname") or None


def meta_rows(db: Database, prefixes: list[str] | tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Rows of meta_ages (key, value, updated_at, age_seconds), sorted by key,
    limited to keys starting with any of `prefixes` when some are given."""
    rows = db.view("meta_ages").rows_where(order_by="key")
    return [r for r in rows if not prefixes or r["key"].startswith(tuple(prefixes))]
