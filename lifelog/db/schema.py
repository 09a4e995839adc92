"""schema.sql, the tables of a LifeLog database, read from the installation
and split into statements. Below lifelog.db.database (which applies it on
open) and lifelog.db.migrations (which makes a table again from its own
statement), so each imports it and neither imports the other."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

from lifelog.core.errors import LifelogError


def schema_sql() -> str:
    """schema.sql: packaged beside this module in a wheel (pyproject's force-include),
    at the repository root (two folders up) in a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "schema.sql", here.parents[1] / "schema.sql"):
        if candidate.is_file():
            return candidate.read_text(encoding="utf-8")
    raise LifelogError("schema.sql is missing from the LifeLog installation; reinstall LifeLog")


def statements(script: str) -> Iterator[str]:
    """The SQL statements of a script, one by one: run inside our transaction
    (sqlite3's executescript would COMMIT it first; sqlite-utils' splits it
    character by character, ~35 ms for schema.sql)."""
    start = end = 0
    while (end := script.find(";", end) + 1) > 0:
        if sqlite3.complete_statement(script[start:end]):
            yield script[start:end]
            start = end
    if script[start:].strip():
        yield script[start:]
