"""`lifelog coverage`'s facts, read from the database, and the classification
(lifelog.coverage.model) over them.

Hosts come from the `buckets` table: each hostname with an `afkstatus` or a
`currentwindow` bucket (on any AW server, copies included). What the events
cover comes from the summary (lifelog.coverage.cells); the causes from
LifeLog's own records: `health_checks`, `source_log` and `watcher_runs`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING

from lifelog.aw.buckets import AFK_TYPE, WINDOW_TYPE
from lifelog.core import keys
from lifelog.core.errors import UsageError
from lifelog.core.settings import Settings
from lifelog.core.timeutil import epoch_of, iso_of_epoch
from lifelog.coverage.cells import Summary
from lifelog.coverage.model import (
    CELL_SECONDS,
    Coverage,
    HostInput,
    Run,
    Spans,
    Units,
    add_units,
    aw_down_spans,
    classify,
    lifelog_down_spans,
    local_date,
    local_midnight,
    make_slots,
    per_device,
    silent_spans,
    slot_measures,
    to_local_iso,
    unit_seconds,
)

if TYPE_CHECKING:
    from lifelog.checks.devices import DeviceView

DEFAULT_DAYS = 7
MAX_SLOT_MINUTES = 24 * 60


@dataclass(frozen=True)
class Bucket:
    server: str
    bucket_id: str
    type: str
    host: str

    @property
    def afk(self) -> bool:
        return self.type == AFK_TYPE


def parse_when(text: str, option: str, tz: tzinfo | None) -> float:
    """A date (its local midnight) or an ISO time; UsageError naming the option otherwise."""
    text = text.strip()
    try:
        return local_midnight(date.fromisoformat(text), tz)
    except ValueError:
        pass
    try:
        if "T" not in text and " " not in text:
            raise ValueError(text)
        dt = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise UsageError(f"{option} {text!r} is not a date or time; give e.g. 2026-11-01 or "
                         "2026-11-01T08:00") from None
    if dt.tzinfo is None:  # a local time, as the dates are
        dt = dt.astimezone() if tz is None else dt.replace(tzinfo=tz)
    return dt.timestamp()


def resolve_range(since: str | None, until: str | None, slot_minutes: int, now: float,
                  tz: tzinfo | None) -> tuple[float, float]:
    """--since/--until/--slot-minutes checked, as whole minutes; UsageError otherwise."""
    if not 1 <= slot_minutes <= MAX_SLOT_MINUTES:
        raise UsageError(f"--slot-minutes {slot_minutes} is out of range; give 1 to {MAX_SLOT_MINUTES}")
    hi = parse_when(until, "--until", tz) if until else now
    lo = (parse_when(since, "--since", tz) if since
          else local_midnight(local_date(now, tz) - timedelta(days=DEFAULT_DAYS), tz))
    lo, hi = _minute(lo), _minute(hi)
    if hi <= lo:
        raise UsageError(f"--until ({to_local_iso(hi, tz)}) is not after --since ({to_local_iso(lo, tz)}); "
                         "give a later --until or an earlier --since")
    return lo, hi


def _minute(t: float) -> float:
    return float(int(t // CELL_SECONDS) * CELL_SECONDS)


def read_buckets(db) -> list[Bucket]:
    rows = db.conn.execute(
        "SELECT server, bucket_id, type, hostname FROM buckets WHERE type IN (?, ?) ORDER BY hostname, bucket_id",
        (AFK_TYPE, WINDOW_TYPE)).fetchall()
    return [Bucket(server, bucket_id, type_, hostname or "(no hostname)") for server, bucket_id, type_, hostname in rows]


def read_health(db, lo: float, hi: float) -> list[tuple[float, str]]:
    rows = db.conn.execute("SELECT checked_at, status FROM health_checks WHERE checked_at >= ? AND checked_at < ?"
                           " ORDER BY checked_at", (iso_of_epoch(lo), iso_of_epoch(hi)))
    return [(t, status) for at, status in rows if (t := epoch_of(at)) is not None]


def read_source_changes(db, bucket: Bucket, hi: float) -> list[tuple[float, str]]:
    rows = db.conn.execute("SELECT at, server, state FROM source_log WHERE bucket_id = ? AND at < ? ORDER BY at",
                           (bucket.bucket_id, iso_of_epoch(hi)))
    # Rows written before the server column existed, or by hand, name no server.
    return [(t, state) for at, server, state in rows
            if server in ("", bucket.server) and (t := epoch_of(at)) is not None]


def read_runs(db) -> list[Run]:
    runs = []
    for started, last, boot in db.conn.execute(
            "SELECT started_at, last_heartbeat_at, boot_at FROM watcher_runs ORDER BY started_at"):
        s, e = epoch_of(started), epoch_of(last)
        if s is not None and e is not None:
            runs.append(Run(s, max(s, e), epoch_of(boot)))
    return runs


def read_device_health(db, name: str, lo: float, hi: float) -> list[tuple[float, str, bool]]:
    """A device's health checks: (checked_at, status, whether its AW answered at all)."""
    rows = db.conn.execute("SELECT checked_at, status, version FROM health_checks WHERE device = ? AND checked_at >= ?"
                           " AND checked_at < ? ORDER BY checked_at", (name, iso_of_epoch(lo), iso_of_epoch(hi)))
    return [(t, status, answered(status, version)) for at, status, version in rows if (t := epoch_of(at)) is not None]


def read_device_ids(db) -> dict[str, set[str]]:
    """Every device_id each device name has answered with (table device_ids)."""
    out: dict[str, set[str]] = {}
    for name, device_id in db.conn.execute("SELECT device, device_id FROM device_ids"):
        out.setdefault(name, set()).add(device_id)
    return out


def series_of(every: Sequence[DeviceView], recorded: Mapping[str, set[str]]) -> dict[str, set[str]]:
    """The device_ids whose rows are each device's (SPEC section 14: AW
    reinstalled starts a new series, the old rows stay, and are still that
    device's): the ids it answered with (`recorded`) and the one meta holds,
    unless it is a refused clone now. An id two names claim is the first
    one's in the table, as a clone is told apart: a clone's id (written
    before its original was first seen, say) is never another device's.
    `every`: all devices, in the table's order."""
    out: dict[str, set[str]] = {}
    taken: set[str] = set()
    for v in every:
        claimed = set(recorded.get(v.name, ()))
        if v.device_id is not None and v.seen.refused_for is None:
            claimed.add(v.device_id)
        out[v.name] = claimed - taken
        taken |= claimed
    return out


# SPEC section 4: `unhealthy` is no answer (connection refused, timeout,
# reset); with `devices`, a `sometimes` device's no answer is `unreachable`.
NOT_ANSWERING = ("unreachable", "unhealthy")


def answered(status: str, version: str | None) -> bool:
    """Whether a device's AW answered a health check at all: a device that did
    not is `device_unreachable` (SPEC section 14), an AW that answered but
    badly is `aw_down` (section 13). A check asks /api/0/info first and
    records the version it gave before it asks for the bucket list, so an
    `unhealthy` row with a version is an AW that answered /info and then
    not the bucket list (a hung or crashing storage): there, and broken."""
    return status not in NOT_ANSWERING or bool(version)


def check_device(settings: Settings, device: str | None) -> None:
    """`--device NAME` must name a device of the `devices` setting (UsageError otherwise)."""
    if device is None:
        return
    names = [d.name for d in settings.devices]
    if not names:
        raise UsageError(f"--device {device!r}: no devices setting; set devices in the config file, "
                         "or leave out --device")
    if device not in names:
        raise UsageError(f"--device {device!r} is not a device of the devices setting (known: {', '.join(names)})")


def coverage_of(db, settings: Settings, since: float, until: float, slot_minutes: int, *,
                now: float | None = None, boot_now: float | None = None, tz: tzinfo | None = None,
                device: str | None = None) -> Coverage:
    """Classify [since, until) (whole minutes) for every host LifeLog holds;
    with the `devices` setting, for every device (or `device` alone) and the
    `all devices` row."""
    check_device(settings, device)
    if settings.devices:
        return _device_coverage(db, settings, since, until, slot_minutes, now=now, boot_now=boot_now, tz=tz,
                                device=device)
    now = time.time() if now is None else now
    slot_seconds = slot_minutes * 60
    slots = make_slots(since, until, slot_seconds, tz)
    unit = unit_seconds(slots, since)
    buckets = read_buckets(db)
    summary = Summary(db)
    summary.refresh([(b.server, b.bucket_id, b.afk) for b in buckets], since, until)

    reach = settings.aw_health_check_interval_minutes * 60.0
    lead = settings.source_silence_minutes * 60.0
    aw_down = aw_down_spans(read_health(db, since - 2 * reach, until + 2 * reach), reach)
    lifelog_down = lifelog_down_spans(read_runs(db), settings.heartbeat_timeout_seconds, now, boot_now)

    hosts: list[HostInput] = []
    for host in sorted({b.host for b in buckets}):
        mine = [b for b in buckets if b.host == host]
        afk_units, window_units, silent = _measure(db, summary, mine, since, until, unit, lead, now)
        hosts.append(HostInput(host, slot_measures(slots, since, unit, afk_units, window_units),
                               window_silent=silent[False], afk_silent=silent[True]))
    return classify(since, until, slot_seconds, tz, slots, hosts, aw_down, lifelog_down)



def _measure(db, summary: Summary, buckets, since: float, until: float, unit: int, lead: float,
             now: float) -> tuple[Units, Units, dict[bool, Spans]]:
    """One row's input from its buckets: active (afk) and window time per
    unit, and the spans its afk (True) and window (False) sources were silent."""
    afk_units: Units = {}
    window_units: Units = {}
    silent = {True: Spans(), False: Spans()}
    for b in buckets:
        units = summary.units(b.server, b.bucket_id, since, until, unit)
        if b.afk:
            afk_units = add_units(afk_units, units)
        else:
            window_units = add_units(window_units, units)
        silent[b.afk] = silent[b.afk] | silent_spans(read_source_changes(db, b, until + lead), lead, now)
    return afk_units, window_units, silent


def _device_coverage(db, settings: Settings, since: float, until: float, slot_minutes: int, *,
                     now: float | None, boot_now: float | None, tz: tzinfo | None, device: str | None) -> Coverage:
    """One row per device (SPEC section 14): its own afk and window buckets
    (on the server of its device_id, aw-sync copies left out), its own health
    checks, and when it did not answer; then, without `device`, the merged
    `all devices` row (model.per_device)."""
    from lifelog.checks.devices import views
    from lifelog.core.devices import SYNC_MARK
    from lifelog.db.meta import read_meta

    now = time.time() if now is None else now
    slot_seconds = slot_minutes * 60
    slots = make_slots(since, until, slot_seconds, tz)
    unit = unit_seconds(slots, since)
    every = views(read_meta(db, (keys.DEVICE_PREFIX,)), settings)
    chosen = [v for v in every if device is None or v.name == device]
    ids = series_of(every, read_device_ids(db))
    buckets = {v.name: [b for b in read_buckets(db) if b.server in ids[v.name] and SYNC_MARK not in b.bucket_id]
               for v in chosen}
    summary = Summary(db)
    summary.refresh([(b.server, b.bucket_id, b.afk) for mine in buckets.values() for b in mine], since, until)
    reach = settings.aw_health_check_interval_minutes * 60.0
    lead = settings.source_silence_minutes * 60.0
    lifelog_down = lifelog_down_spans(read_runs(db), settings.heartbeat_timeout_seconds, now, boot_now)
    rows: list[HostInput] = []
    for v in chosen:
        afk_units, window_units, silent = _measure(db, summary, buckets[v.name], since, until, unit, lead, now)
        checks = read_device_health(db, v.name, since - 2 * reach, until + 2 * reach)
        broken = [(t, status if answer else "healthy") for t, status, answer in checks]
        unreachable = aw_down_spans([(t, "healthy" if answer else "unhealthy") for t, _, answer in checks], reach)
        since_failed = v.seen.unreachable_since
        # A poll fails as well when AW answers /info and then fails: when the
        # latest check (within its reach of the first failed poll) heard AW
        # answer badly, the failing polls are that (aw_down), not the device away.
        broken_now = (bool(checks) and since_failed is not None and checks[-1][0] >= since_failed - reach
                      and checks[-1][2] and checks[-1][1] != "healthy")
        if v.seen.reachable is False and since_failed is not None and not broken_now:
            # Not answering now: since its first failed poll, whatever the checks' spacing.
            unreachable = unreachable | Spans([(since_failed, max(now, since_failed))])
        rows.append(HostInput(v.name, slot_measures(slots, since, unit, afk_units, window_units),
                              window_silent=silent[False], afk_silent=silent[True], unreachable=unreachable,
                              aw_down=aw_down_spans(broken, reach)))
    cov = classify(since, until, slot_seconds, tz, slots, rows, Spans(), lifelog_down)
    return per_device(cov, [v.name for v in chosen], {v.name: v.hostname for v in chosen}, merge=device is None)
