"""Where a capability plugs into the monitoring core.

A capability (the watcher's own health, AW's watchers as sources, backups,
outward signals) adds itself in its own module, by decorator, instead of
editing lists in the modules that use them:

- `@component(name, order)`: a status component, a pure function of the
  status snapshot and the settings (lifelog.checks.status);
- `@pass_step(name)`: work each watchdog pass does while it holds the pass
  lock, after the watcher's verdict (lifelog.checks.watchdog);
- `@output(name)`: what runs after the overall status is refreshed, e.g. a
  metrics file or a ping (lifelog.monitor);
- `@daemon_job(name)`: a periodic job of `lifelog daemon` (lifelog.daemon).

`lifelog.capabilities` imports every capability module once, so the
registries are complete wherever the core runs. This module imports nothing
of LifeLog's, so anything may import it.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple


class Entry(NamedTuple):
    name: str
    func: Callable[..., Any]
    order: float = 0.0
    # For daemon jobs: seconds between runs, from the settings (None: not scheduled).
    interval: Callable[[Any], float | None] | None = None
    # For daemon jobs: whether a run is due at launch (`schedule` forgets across restarts).
    due_at_launch: Callable[[Any, Any], bool] | None = None


COMPONENTS: list[Entry] = []
PASS_STEPS: list[Entry] = []
OUTPUTS: list[Entry] = []
DAEMON_JOBS: list[Entry] = []


def _add(table: list[Entry], entry: Entry) -> None:
    # A module imported twice (tests reload) replaces its own entry.
    table[:] = [e for e in table if e.name != entry.name]
    table.append(entry)
    table.sort(key=lambda e: e.order)


def component(name: str, order: float):
    """Register `func(snapshot, settings) -> status.Component`."""
    def register(func):
        _add(COMPONENTS, Entry(name, func, order))
        return func
    return register


def pass_step(name: str, order: float = 0.0):
    """Register `func(db, settings, context) -> None`, run inside each watchdog pass."""
    def register(func):
        _add(PASS_STEPS, Entry(name, func, order))
        return func
    return register


def output(name: str, order: float = 0.0):
    """Register `func(db, settings, report, trigger, context, meta=...) -> None`, run
    after each status refresh; `trigger` is "health", "watchdog" or "status";
    `meta` is the table as the refresh read it (all but its own status.* keys)."""
    def register(func):
        _add(OUTPUTS, Entry(name, func, order))
        return func
    return register


def daemon_job(name: str, interval: Callable[[Any], float | None],
               due_at_launch: Callable[[Any, Any], bool] | None = None, order: float = 0.0):
    """Register `func(settings, stop_event) -> None` as a periodic daemon job."""
    def register(func):
        _add(DAEMON_JOBS, Entry(name, func, order, interval, due_at_launch))
        return func
    return register
