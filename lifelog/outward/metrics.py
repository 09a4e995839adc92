"""The Prometheus metrics file (`metrics_file`), for node_exporter's textfile
collector: rewritten after every health check and watchdog pass.

Formatted here, not with prometheus_client: importing it costs 110-180 ms on
the development VM (it pulls in http.server and wsgiref), more than the
whole cron pass may take (README "Speed"). The text format is a few lines;
the tests parse what is written with prometheus_client's own parser.

The file is written aside and renamed over the old one, so a scraper never
reads half of it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple

from lifelog.core import keys
from lifelog.core.files import write_atomically
from lifelog.core.settings import Settings
from lifelog.core.timeutil import epoch_of
from lifelog.core.verdicts import AWStatus, Level, SourceState
from lifelog.db.meta import read_meta
from lifelog.sources.watch import current_server, device_names, recorded

if TYPE_CHECKING:
    from lifelog.checks.devices import DeviceView

PREFIX = "lifelog_"


class Metric(NamedTuple):
    name: str
    help: str
    kind: str  # gauge or counter
    samples: tuple[tuple[Mapping[str, str], float], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if value != int(value) else str(int(value))


def render(metrics: Iterable[Metric]) -> str:
    """Pure: the Prometheus text exposition format (version 0.0.4)."""
    lines = []
    for m in metrics:
        if not m.samples:
            continue
        lines.append(f"# HELP {m.name} {m.help}")
        lines.append(f"# TYPE {m.name} {m.kind}")
        for labels, value in m.samples:
            label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            lines.append(f"{m.name}{{{label_text}}} {_number(value)}" if labels else f"{m.name} {_number(value)}")
    return "\n".join(lines) + "\n"


def _gauge(name: str, help: str, value: float | None) -> Metric:
    return Metric(PREFIX + name, help, "gauge", () if value is None else (({}, value),))


def collect(meta: Mapping[str, str | None], level: Level, watcher_up: bool, aw_up: bool,
            sources: Iterable[tuple[Mapping[str, str], float | None, bool]] = (),
            devices: Iterable[tuple[str, bool, float | None]] = ()) -> list[Metric]:
    """Pure: the metrics of one moment. `sources` are (labels, newest end as
    epoch seconds or None, silent) per source; `devices` (name, up, newest
    event end as epoch seconds or None) per device, only with the `devices`
    setting (SPEC section 14)."""
    # None records no sample: a count edited into a word is not a count.
    count = keys.int_of(meta.get(keys.WATCHDOG_RESTART_COUNT) or "0")
    restarts = None if count is None else float(count)
    sources = list(sources)
    devices = list(devices)
    return [
        _gauge("status", "Overall status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.", float(int(level))),
        _gauge("watcher_up", "1 when the watcher process runs and heartbeats.", float(watcher_up)),
        _gauge("watcher_heartbeat_timestamp_seconds", "When the watcher last finished a poll.",
               epoch_of(meta.get(keys.WATCHER_HEARTBEAT_AT))),
        _gauge("last_event_timestamp_seconds", "End of the newest event stored.",
               epoch_of(meta.get(keys.WATCHER_LAST_EVENT_TS))),
        _gauge("aw_up", "1 when the latest ActivityWatch health check was healthy.", float(aw_up)),
        _gauge("watchdog_last_pass_timestamp_seconds", "When the watchdog last made a pass.",
               epoch_of(meta.get(keys.WATCHDOG_CHECKED_AT))),
        Metric(PREFIX + "watchdog_restarts_total", "Restarts of the watcher by the watchdog.", "counter",
               () if restarts is None else (({}, restarts),)),
        Metric(PREFIX + "source_newest_event_timestamp_seconds",
               "End of the newest event of each ActivityWatch bucket (source).", "gauge",
               tuple((labels, end) for labels, end, _ in sources if end is not None)),
        Metric(PREFIX + "source_silent", "1 when the source is silent while it should record.", "gauge",
               tuple((labels, float(silent)) for labels, _, silent in sources)),
        _gauge("backup_last_success_timestamp_seconds", "When the newest verified backup was made.",
               epoch_of(meta.get(keys.BACKUP_LAST_OK_AT))),
        Metric(PREFIX + "device_up", "1 when the device's ActivityWatch answered LifeLog's latest poll.", "gauge",
               tuple(({"device": name}, float(up)) for name, up, _ in devices)),
        Metric(PREFIX + "device_last_event_timestamp_seconds", "End of the newest event stored from the device.",
               "gauge", tuple(({"device": name}, end) for name, _, end in devices if end is not None)),
    ]


def _device_sources(db, devices: Sequence[DeviceView],
                    judged) -> list[tuple[dict[str, str], float | None, bool]]:
    """With devices: each source labelled with its device, and its type and
    host from that device's own buckets (another device may list the same id)."""
    facts: dict[tuple[str, str], tuple[str, str]] = {}
    for v in devices:
        if v.device_id is None or v.seen.refused_for is not None:
            continue
        for bucket_id, type_, host in db.conn.execute(
                "SELECT bucket_id, type, hostname FROM buckets WHERE server = ? AND deleted_in_aw_at IS NULL",
                (v.device_id,)):
            facts[(v.name, bucket_id)] = (type_ or "", host or "")
    out = []
    for r in judged:
        type_, host = facts.get((r.device or "", r.bucket_id), ("", ""))
        end = None if r.newest_end is None else r.newest_end.timestamp()
        out.append(({"bucket": r.bucket_id, "type": type_, "host": host, "device": r.device or ""}, end,
                     r.state == SourceState.SILENT))
    return out


def _sources(db, meta: Mapping[str, str | None], devices: Sequence[DeviceView] = (),
             names: Sequence[str] = ()) -> list[tuple[dict[str, str], float | None, bool]]:
    """Each source as the latest pass recorded it, with its labels (and with
    `devices`, the views of the `devices` setting and their `names` in
    order, its device's)."""
    judged = recorded(meta, names)
    if not judged:
        return []
    if devices:
        return _device_sources(db, devices, judged)
    # The current server's rows: another server's buckets may share the ids.
    facts = {r[0]: (r[1] or "", r[2] or "") for r in db.conn.execute(
        "SELECT bucket_id, type, hostname FROM buckets WHERE server = ? AND deleted_in_aw_at IS NULL",
        (current_server(db)[0],))}
    out = []
    for r in judged:
        type_, host = facts.get(r.bucket_id, ("", ""))
        end = None if r.newest_end is None else r.newest_end.timestamp()
        out.append(({"bucket": r.bucket_id, "type": type_, "host": host}, end, r.state == SourceState.SILENT))
    return out


def write_metrics(db, settings: Settings, report, trigger: str, context=None,
                  meta: Mapping[str, str | None] | None = None) -> None:
    """After every health check and watchdog pass (and `status`), when
    `metrics_file` is set."""
    if settings.metrics_file is None:
        return
    meta = read_meta(db) if meta is None else meta
    devices: list[DeviceView] = []
    if settings.devices:
        from lifelog.checks.devices import views  # only with devices: the cron pass loads no more

        devices = views(meta, settings)
    watcher = report.component("watcher")
    aw_up = meta.get(keys.AW_STATUS) == AWStatus.HEALTHY
    metrics = collect(meta, report.level, watcher is not None and watcher.level is Level.OK, aw_up,
                      _sources(db, meta, devices, device_names(settings)),
                      [(v.name, v.answers, epoch_of(v.last_event_ts)) for v in devices])
    write_atomically(settings.metrics_file, render(metrics))
