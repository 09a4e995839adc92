"""Sources, recorded and acted on: each watchdog pass judges every source
(lifelog.sources.judge), records its state, and runs a silent source's restart
command when the user gave one (README "When an ActivityWatch watcher goes quiet").

- `read_facts()` reads what the judgment needs from the database only, never
  from AW: the buckets AW listed (with AW's hint of their newest end) and
  LifeLog's newest end per bucket, then, only for sources past the
  threshold, the afk and window events of the recent window through the
  (server, bucket_id, timestamp) index. A year of history costs nothing more.
- `record()` writes `source.<bucket_id>.state/.since/.newest_end/.reason` and
  a `source_log` row per change, in one transaction. With the `devices`
  setting a source is (device, bucket_id), and a device other than the first
  writes `source.<bucket_id>@<device>.*` (lifelog.core.keys): two devices
  with one host name list the same bucket ids.
- `restart_due()` (pure) and `restart()`: the opt-in repair, backed off per
  source exactly as the watcher's restarts (lifelog.checks.watchdog.backoff_*).
- The `sources` status component, worked out from the recorded states and
  the clock, and `survey()` for `lifelog sources`, which judges now.
"""

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import NamedTuple

from lifelog.aw.buckets import AFK_TYPE, WEB_TYPE, WINDOW_TYPE
from lifelog.checks.liveness import age, ts
from lifelog.checks.status import Component, Snapshot, component_at
from lifelog.checks.watchdog import MAX_LEVEL, PassContext, backoff_level, backoff_remaining
from lifelog.core import commands, keys
from lifelog.core.clocks import format_clocks, parse_clocks
from lifelog.core.identity import WatcherFacts
from lifelog.core.settings import Settings
from lifelog.core.terminal import Col
from lifelog.core.terminal import table as terminal_table
from lifelog.core.timeutil import format_span, to_iso, try_parse_iso, utcnow
from lifelog.core.verdicts import Level, SourceState, Verdict
from lifelog.db.database import transaction
from lifelog.db.meta import delete_meta, read_meta, set_meta
from lifelog.ingest import servers
from lifelog.sources import judge as sources

log = logging.getLogger("lifelog.sources")

Meta = Mapping[str, "str | None"]

# A restart command is killed after this long (README "When an ActivityWatch watcher goes quiet").
RESTART_TIMEOUT = 30.0
# Events that started before the evidence window may still overlap it: the
# latest few before it are read too (an afk bucket alternates afk / not-afk).
OVERLAP_ROWS = 8


# -- facts from the database ------------------------------------------------------------


def current_server(db) -> tuple[str | None, str | None]:
    """(device_id, AW's host name) of the server LifeLog copies now."""
    server = servers.current(db)
    if server is not None:
        return server.device_id, server.hostname
    # A database from before the servers table: its newest buckets, host unknown.
    row = db.conn.execute("SELECT server FROM buckets WHERE deleted_in_aw_at IS NULL"
                          " ORDER BY last_seen_at DESC LIMIT 1").fetchone()
    return (row[0] if row else None), None


def read_buckets(db, settings: Settings, server: tuple[str | None, str | None] | None = None,
                 ) -> tuple[str | None, str | None, list[sources.Bucket]]:
    """(server device_id, AW's host name, the selected buckets AW lists) from
    the tables: of `server` (device_id, host name), else the current one."""
    from lifelog.aw.buckets import selected

    device, hostname = current_server(db) if server is None else server
    if device is None:
        return None, hostname, []
    rows = db.conn.execute(
        "SELECT b.bucket_id, b.type, b.hostname, b.last_updated, b.created, s.newest_end"
        " FROM buckets b LEFT JOIN sync_state s ON s.server = b.server AND s.bucket_id = b.bucket_id"
        " WHERE b.server = ? AND b.deleted_in_aw_at IS NULL ORDER BY b.bucket_id", (device,)).fetchall()
    chosen = set(selected((r[0] for r in rows), settings.bucket_patterns))
    found = []
    for bucket_id, type_, host, hint, created, stored_end in rows:
        if bucket_id not in chosen:
            continue
        ends = [t for t in (try_parse_iso(hint), try_parse_iso(stored_end)) if t is not None]
        found.append(sources.Bucket(bucket_id, type_ or "", host or "", max(ends) if ends else None,
                                    try_parse_iso(created)))
    return device, hostname, found


def _rows_since(db, device: str, bucket_id: str, since: datetime, path: str) -> list[tuple]:
    """(timestamp, ended_at, data at `path`) of the events overlapping [since, ...):
    those that started since, and the latest few that started before."""
    at = to_iso(since)
    sql = ("SELECT timestamp, ended_at, json_extract(data, ?) FROM events"
           " WHERE server = ? AND bucket_id = ? AND deleted_in_aw_at IS NULL AND timestamp {} ?")
    rows = db.conn.execute(sql.format(">="), (path, device, bucket_id, at)).fetchall()
    before = db.conn.execute(sql.format("<") + " ORDER BY timestamp DESC LIMIT ?",
                             (path, device, bucket_id, at, OVERLAP_ROWS)).fetchall()
    return rows + [r for r in before if r[1] > at]


def _span(start: str, end: str) -> sources.Span | None:
    a, b = try_parse_iso(start), try_parse_iso(end)
    return sources.Span(a, b) if a is not None and b is not None and b > a else None


def read_not_afk(db, device: str, bucket_id: str, since: datetime) -> tuple[sources.Span, ...]:
    spans = (_span(t, e) for t, e, status in _rows_since(db, device, bucket_id, since, "$.status")
             if status == "not-afk")
    return tuple(s for s in spans if s is not None)


def read_windows(db, device: str, bucket_id: str, since: datetime,
                 browsers: frozenset[str]) -> tuple[tuple[sources.Span, str], ...]:
    """The events showing one of `browsers` in focus (the others are not parsed)."""
    found = []
    for t, e, app in _rows_since(db, device, bucket_id, since, "$.app"):
        if isinstance(app, str) and sources.browsers_in(app) & browsers:
            span = _span(t, e)
            if span is not None:
                found.append((span, app))
    return tuple(found)


def read_awake(meta: Meta) -> sources.Awake | None:
    since = ts(meta, keys.SOURCES_AWAKE_SINCE)
    clocks = parse_clocks(meta.get(keys.SOURCES_CLOCKS))
    return None if since is None or clocks is None else sources.Awake(since, clocks)


class Recorded(NamedTuple):
    bucket_id: str
    state: str
    since: datetime | None
    newest_end: datetime | None
    reason: str
    device: str | None = None  # with the `devices` setting: the device whose source it is


def device_names(settings: Settings) -> tuple[str, ...]:
    """The `devices` setting's names in table order (empty without it)."""
    return tuple(d.name for d in settings.devices)


def recorded(meta: Meta, devices: Sequence[str] = ()) -> list[Recorded]:
    """The sources as the latest pass recorded them. `devices`: the `devices`
    setting's names in table order (device_names); a plain key is then the
    first device's, a `@<device>` one that device's (lifelog.core.keys)."""
    others = frozenset(devices[1:])
    found = []
    for key, value in meta.items():
        sid = keys.source_of_state_key(key)
        if sid is None or not value:
            continue
        bucket_id, keyed = keys.split_source_id(sid, others)
        found.append(Recorded(bucket_id, value, ts(meta, keys.source_since(bucket_id, keyed)),
                              ts(meta, keys.source_newest_end(bucket_id, keyed)),
                              meta.get(keys.source_reason(bucket_id, keyed)) or "",
                              keyed or (devices[0] if devices else None)))
    # The first device's sources first, then the others in table order.
    order = {name: i for i, name in enumerate(devices)}
    return sorted(found, key=lambda r: (order.get(r.device or "", 0), r.bucket_id))


class PerDevice(NamedTuple):
    """With the `devices` setting: one device's facts, judged on their own."""

    name: str
    server: str
    facts: sources.Facts


class Gathered(NamedTuple):
    device: str | None
    facts: sources.Facts
    awake: sources.Awake
    devices: tuple[PerDevice, ...] = ()  # with the `devices` setting; `facts` is then unused
    names: tuple[str, ...] = ()  # the `devices` setting's names in table order (the keys' scheme)

    def judge(self, now: datetime, settings: Settings) -> list[sources.Judgement]:
        """Every source judged; with the `devices` setting each one names its device."""
        if not self.devices:
            return sources.judge(self.facts, now, settings)
        return [j._replace(device=d.name) for d in self.devices for j in sources.judge(d.facts, now, settings)]

    def server_of(self, j: sources.Judgement) -> str:
        """The device_id of the AW that lists a judged source."""
        for d in self.devices:
            if d.name == j.device:
                return d.server
        return self.device or ""


def read_facts(db, settings: Settings, meta: Meta, watcher: WatcherFacts, now: datetime,
               now_clocks: tuple[float, float] | None, verdict: Verdict | None = None) -> Gathered:
    """Everything `sources.judge` needs, from the database and the clocks."""
    awake = sources.track_awake(read_awake(meta), now, now_clocks)
    if settings.devices:
        return _read_device_facts(db, settings, meta, watcher, now, now_clocks, verdict, awake)
    device, hostname, buckets = read_buckets(db, settings)
    trouble = sources.lifelog_trouble(meta, watcher, now, now_clocks, settings, verdict)
    previous = {r.bucket_id: sources.Previous(r.state, r.newest_end) for r in recorded(meta)}
    facts = _facts(db, settings, now, device, hostname, buckets, trouble, awake.since, previous)
    return Gathered(device, facts, awake)


def _read_device_facts(db, settings: Settings, meta: Meta, watcher: WatcherFacts, now: datetime,
                       now_clocks: tuple[float, float] | None, verdict: Verdict | None,
                       awake: sources.Awake) -> Gathered:
    """Per device (SPEC section 14): its own buckets, judged against its own
    afk bucket, only while it answers. A refused clone has no rows of its own
    (its device_id is another's): it has no sources. This machine's sleep
    clocks speak only for the first device, and only when it is this machine
    (a loopback URL); another machine's afk bucket is unjudged."""
    from lifelog.checks.devices import followed as followed_of
    from lifelog.checks.devices import views
    from lifelog.core.devices import is_loopback

    followed = followed_of(meta, settings)
    names = device_names(settings)
    mine: dict[str | None, dict[str, sources.Previous]] = {}
    for r in recorded(meta, names):
        mine.setdefault(r.device, {})[r.bucket_id] = sources.Previous(r.state, r.newest_end)
    per = []
    for i, v in enumerate(views(meta, settings)):
        if v.device_id is None or v.seen.refused_for is not None:
            continue
        device, hostname, buckets = read_buckets(db, settings, (v.device_id, v.hostname))
        trouble = sources.device_trouble(meta, watcher, now, now_clocks, settings, v.name, i == 0, verdict)
        local = i == 0 and is_loopback(v.device.url)
        facts = _facts(db, settings, now, device, hostname, buckets, trouble, awake.since if local else None,
                       mine.get(v.name, {}))._replace(followed=followed, elsewhere=not local)
        per.append(PerDevice(v.name, v.device_id, facts))
    first = per[0] if per else None
    return Gathered(first.server if first else None, first.facts if first else sources.Facts(None), awake,
                    tuple(per), names)


def _facts(db, settings: Settings, now: datetime, device: str | None, hostname: str | None,
           buckets: list[sources.Bucket], trouble: str, awake_since: datetime | None,
           previous: Mapping[str, sources.Previous]) -> sources.Facts:
    afk_from, window_from = sources.evidence_needed(buckets, hostname, trouble, now, settings)
    not_afk: dict[str, tuple[sources.Span, ...]] = {}
    windows: dict[str, tuple[tuple[sources.Span, str], ...]] = {}
    browsers = frozenset(filter(None, (sources.browser_of(b.bucket_id) for b in buckets
                                       if b.type == WEB_TYPE)))
    if device is not None:
        for b in buckets:
            local = sources.is_local(b, hostname)
            if local and b.type == AFK_TYPE and afk_from is not None:
                not_afk[b.bucket_id] = read_not_afk(db, device, b.bucket_id, afk_from)
            elif local and b.type == WINDOW_TYPE and window_from is not None:
                windows[b.bucket_id] = read_windows(db, device, b.bucket_id, window_from, browsers)
    return sources.Facts(hostname, tuple(buckets), not_afk, windows, sources.evidence_horizon(now, settings),
                         trouble, awake_since, previous)


# -- recording ----------------------------------------------------------------------------


def record(db, gathered: Gathered, judged: list[sources.Judgement], meta: Meta, now: datetime) -> list[sources.Judgement]:
    """Each source's state, since, newest end and reason; a source_log row per
    change (the first judgement included). Returns the sources that changed.

    A key is written only when its value changes (as the watcher does with
    `watcher.last_event_ts`), and nothing at all when nothing changed: a
    steady pass takes no write lock for the sources. `watchdog.checked_at`
    says which pass judged them last."""
    at = to_iso(now)
    names = gathered.names
    changed: list[sources.Judgement] = []
    writes: dict[str, str] = {}
    for j in judged:
        kd = keys.key_device(names, j.device)
        since = meta.get(keys.source_since(j.bucket_id, kd))
        if meta.get(keys.source_state(j.bucket_id, kd)) != j.state or not since:
            changed.append(j)
            since = at
        values = {keys.source_state(j.bucket_id, kd): str(j.state), keys.source_since(j.bucket_id, kd): since,
                  keys.source_newest_end(j.bucket_id, kd): to_iso(j.newest_end) if j.newest_end else "",
                  keys.source_reason(j.bucket_id, kd): j.reason}
        writes.update({k: v for k, v in values.items() if meta.get(k) != v})
    awake = gathered.awake
    for key, value in ((keys.SOURCES_AWAKE_SINCE, to_iso(awake.since) if awake.since else ""),
                       (keys.SOURCES_CLOCKS, format_clocks(awake.clocks) if awake.clocks else "")):
        if (meta.get(key) or "") != value:
            writes[key] = value
    # A bucket AW no longer lists (or `buckets` no longer selects) is no
    # source; nor is one of a device no longer in the table. A source is
    # (bucket_id, device): another device listing the same bucket id keeps its own.
    gone = ({(r.bucket_id, r.device) for r in recorded(meta, names)}
            - {(j.bucket_id, j.device) for j in judged})
    if not (writes or gone):
        return changed
    with transaction(db):
        for j in changed:
            db.conn.execute("INSERT INTO source_log (at, server, bucket_id, state, reason, device)"
                            " VALUES (?, ?, ?, ?, ?, ?)",
                            (at, gathered.server_of(j), j.bucket_id, str(j.state), j.reason, j.device))
        for key, value in writes.items():
            set_meta(db, key, value)
        for bucket_id, device in gone:
            for name in keys.SOURCE_FIELDS:
                delete_meta(db, keys.source_key(bucket_id, name, keys.key_device(names, device)))
    for j in changed:
        level = logging.WARNING if j.state is SourceState.SILENT else logging.INFO
        log.log(level, "source %s is %s: %s", named(j.bucket_id, j.device), j.state, j.reason)
    return changed


def named(bucket_id: str, device: str | None) -> str:
    """A source as people read it: its bucket id, and with the `devices`
    setting its device (two devices may list one bucket id)."""
    return f"{bucket_id} of {device}" if device else bucket_id


# -- the opt-in repair ------------------------------------------------------------------------


class Restart(NamedTuple):
    bucket_id: str
    command: str
    level: int  # the backoff level this restart brings
    device: str | None = None  # with the `devices` setting: the source's device
    keyed: str | None = None  # the device its keys name (keys.key_device)


def restart_due(j: sources.Judgement, meta: Meta, now: datetime, settings: Settings) -> Restart | None:
    """Pure: run this silent source's command now? Only with a command for its
    watcher name, and once its own backoff has elapsed (as for the watcher).
    With the `devices` setting, only a source of the first device (the
    machine LifeLog runs beside): the command runs here, and restarting this
    machine's watcher for another machine's silence would repair nothing."""
    if j.state is not SourceState.SILENT:
        return None
    if settings.devices and j.device != settings.devices[0].name:
        return None
    command = settings.source_restart_commands.get(sources.watcher_name(j.bucket_id))
    if not command:
        return None
    # Backed off per source: another device's source of the same bucket id has its own.
    keyed = keys.key_device(device_names(settings), j.device)
    level_key, last_key = keys.source_restart_level(j.bucket_id, keyed), keys.source_last_restart_at(j.bucket_id, keyed)
    if backoff_remaining(meta, now, settings, level_key=level_key, last_key=last_key) > 0:
        return None
    level = backoff_level(meta, now, settings, level_key=level_key, last_key=last_key)
    return Restart(j.bucket_id, command, min(level + 1, MAX_LEVEL), j.device, keyed)


def run_command(command: str, timeout: float = RESTART_TIMEOUT) -> str:
    """Run a restart command (split as a shell would, no shell), bounded; how it ended."""
    import shlex

    return commands.run(shlex.split(command), timeout).text


def restart(db, r: Restart, reason: str, now: datetime, actor: str) -> str:
    """Run the command; record the intent first (a pass killed meanwhile still
    counts for the backoff), then the watchdog_log row naming the bucket."""
    at = to_iso(now)
    with transaction(db):
        set_meta(db, keys.source_last_restart_at(r.bucket_id, r.keyed), at)
        set_meta(db, keys.source_restart_level(r.bucket_id, r.keyed), r.level)
    outcome = run_command(r.command)
    action = f"ran the restart command of {sources.watcher_name(r.bucket_id)}: {outcome}"
    with transaction(db):
        db.conn.execute(
            "INSERT INTO watchdog_log (at, verdict, reason, action, actor, backoff_level, replaced)"
            " VALUES (?, ?, ?, ?, ?, ?, 0)",
            (at, str(Verdict.RESTART_SOURCE_SILENT), f"{named(r.bucket_id, r.device)} silent: {reason}", action,
             actor, r.level))
    log.warning("%s: %s silent (%s); %s", Verdict.RESTART_SOURCE_SILENT, named(r.bucket_id, r.device), reason,
                action)
    return action


# -- the pass step --------------------------------------------------------------------------


def pass_step(db, settings: Settings, context: PassContext) -> None:
    """Judge every source and record it; then, unless the watchdog is paused,
    run the restart command of one silent source whose backoff has elapsed.
    One per pass keeps the pass (and its lock) bounded by one command's 30 s;
    another silent source gets its turn at the next pass."""
    gathered = read_facts(db, settings, context.meta, context.facts, context.now, context.now_clocks,
                          context.decision.verdict)
    judged = gathered.judge(context.now, settings)
    record(db, gathered, judged, context.meta, context.now)
    if context.decision.verdict is Verdict.PAUSED:
        return
    for j in judged:
        due = restart_due(j, context.meta, context.now, settings)
        if due is not None:
            restart(db, due, j.reason, context.now, context.actor)
            return


# -- `lifelog sources` ------------------------------------------------------------------------


class SourceView(NamedTuple):
    judgement: sources.Judgement
    since: str | None  # when a pass first saw this state; now, when none has yet
    device: str | None = None  # with the `devices` setting: the device whose AW lists it
    per_device: bool = False  # the `devices` setting is set: `device` is shown

    def to_json(self, now: datetime) -> dict:
        j = self.judgement
        a = j.age(now)
        out = {"bucket_id": j.bucket_id, "type": j.type, "hostname": j.hostname, "state": str(j.state),
               "since": self.since, "newest_end": to_iso(j.newest_end) if j.newest_end else None,
               "age_seconds": None if a is None else round(a, 1), "reason": j.reason}
        if self.per_device:
            out["device"] = self.device
        return out


def survey(db, settings: Settings, now: datetime | None = None) -> list[SourceView]:
    """Every source judged now, from the database (nothing is written):
    `lifelog sources`. The since of a state the passes recorded is theirs."""
    from lifelog.core import clocks
    from lifelog.core.identity import watcher_facts

    now = now or utcnow()
    meta = read_meta(db)
    gathered = read_facts(db, settings, meta, watcher_facts(meta), now, clocks.readings())
    views = []
    names = device_names(settings)
    for j in gathered.judge(now, settings):
        kd = keys.key_device(names, j.device)
        recorded = meta.get(keys.source_state(j.bucket_id, kd)) == j.state
        since = meta.get(keys.source_since(j.bucket_id, kd)) if recorded else None
        views.append(SourceView(j, since or to_iso(now), j.device, bool(settings.devices)))
    return views


# The table of `lifelog sources`. Too wide for the terminal, it leaves out
# first the newest end (its age stays), then the type and the host (the
# bucket id names both); the reason wraps in its column (lifelog.core.terminal).
TABLE = (Col("BUCKET", "clip", min_width=24), Col("TYPE", drop=2), Col("HOST", drop=3), Col("STATE"),
         Col("NEWEST END", drop=1), Col("AGE"), Col("REASON", "wrap", min_width=24))
# With the `devices` setting: the device whose AW lists each source first.
DEVICE_TABLE = (Col("DEVICE"),) + TABLE


def render_table(views: list[SourceView], now: datetime, width: int | None = None) -> str:
    """`lifelog sources` for people, fitted to `width` columns (None: no limit)."""
    from lifelog.core.timeutil import format_age

    if not views:
        return "(no sources yet: LifeLog's watcher lists AW's buckets when it polls)"
    per_device = any(v.per_device for v in views)
    rows = []
    for v in views:
        j = v.judgement
        row = (j.bucket_id, j.type, j.hostname, str(j.state),
               j.newest_end.isoformat(timespec="seconds") if j.newest_end else "-",
               format_age(j.age(now)), j.reason)
        rows.append(((v.device or "-",) + row) if per_device else row)
    return "\n".join(terminal_table(DEVICE_TABLE if per_device else TABLE, rows, width))


# -- the status component -----------------------------------------------------------------------


def silent_text(r: Recorded, now: datetime) -> str:
    quiet = age(r.newest_end or r.since, now)
    how_long = f" for {format_span(quiet)}" if quiet is not None else ""
    return f"{named(r.bucket_id, r.device)} silent{how_long} {r.reason}"


def sources_component(snap: Snapshot, settings: Settings) -> Component:
    """WARNING while a source is silent, CRITICAL once one has been silent (from
    its since) longer than source_silence_critical_minutes; OK otherwise."""
    now = snap.now
    found = recorded(snap.meta, device_names(settings))
    # Each watchdog pass judges the sources.
    judged_at = snap.meta.get(keys.WATCHDOG_CHECKED_AT)
    judged_age = age(ts(snap.meta, keys.WATCHDOG_CHECKED_AT), now)
    # The recorder may have stopped (no watchdog pass): say how old the judgement is.
    old = ""
    if judged_age is not None and judged_age > settings.watchdog_stale_minutes * 60:
        old = f" (as judged {format_span(judged_age)} ago: no watchdog pass since)"
    if not found:
        text = "no source judged yet" if judged_at is None else "no sources: AW lists no selected bucket"
        return component_at("sources", Level.OK, text + old, snap, judged_at)
    silent = sorted((r for r in found if r.state == SourceState.SILENT),
                    key=lambda r: r.since or now)
    if silent:
        critical_after = settings.source_silence_critical_minutes * 60
        critical = [r for r in silent if (age(r.since, now) or 0.0) > critical_after]
        shown = critical or silent
        level = Level.CRITICAL if critical else Level.WARNING
        text = "; ".join(silent_text(r, now) for r in shown)
        since = to_iso(shown[0].since) if shown[0].since else None
        return component_at("sources", level, f"{text}; see 'lifelog sources'{old}", snap, since)
    counts: dict[str, int] = {}
    for r in found:
        counts[r.state] = counts.get(r.state, 0) + 1
    order = [str(s) for s in SourceState]
    summary = ", ".join(f"{counts[s]} {s}" for s in sorted(counts, key=lambda s: order.index(s) if s in order else 99))
    return component_at("sources", Level.OK, f"no source silent ({summary}){old}", snap, judged_at)
