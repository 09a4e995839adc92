"""Sources: is each of ActivityWatch's own watchers recording?
(README "When an ActivityWatch watcher goes quiet")

A source is one AW bucket selected by `buckets`. AW's watchers die, hang or
lose their OS permission while the AW server keeps answering; this module
judges each source from facts alone, and never reads a clock, a file or the
database: `judge(facts, now, settings)` gives one state and its reason per
source (lifelog.sources.watch gathers the facts, records and acts).

What is expected of a source is told by the evidence of the same host:

- `afkstatus` records while the machine is awake: silent after more than
  `source_silence_minutes` of awake time (no sleep seen) since its newest end;
- `currentwindow`, `os.hid.input` record while you are active: silent after
  more than `source_silence_minutes` of `not-afk` time since their newest end;
- `web.tab.current` records while its browser is in focus: silent after more
  than `source_silence_minutes` in which the window bucket shows that browser
  in focus while `not-afk`.

Rules, first match wins: a `-synced-from-` bucket is `copy`; another host's
bucket is `remote`; nothing is judged while LifeLog's own watcher is not
healthy or AW does not answer (`unjudged`, with the reason); a newest end
within the threshold is `live`; then the type's rule (`silent` or `idle`),
or `unjudged` when the type has no rule or its evidence is missing (no afk
bucket, or the evidence is not `live`/`idle` itself).

A source judged `silent` stays `silent` until its newest end moves: the
silence it was judged on does not shrink when you then walk away (and the
evidence read each pass is only the recent window, `evidence_horizon`).
"""

import functools
import math
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import NamedTuple

from lifelog.aw.buckets import AFK_TYPE, INPUT_TYPE, WEB_TYPE, WINDOW_TYPE
from lifelog.checks.liveness import SLEEP_MIN, ts, watcher_down, watcher_started
from lifelog.core import keys
from lifelog.core.devices import copy_of
from lifelog.core.identity import WatcherFacts
from lifelog.core.settings import Settings
from lifelog.core.timeutil import format_span
from lifelog.core.verdicts import EVIDENCE_STATES, RESTART_VERDICTS, AWStatus, SourceState, Verdict

Meta = Mapping[str, "str | None"]

# aw-sync's copies of another device's buckets: `<bucket id>-synced-from-<device>`.
SYNCED_MARK = "-synced-from-"
WEB_PREFIX = "aw-watcher-web-"
# The host name aw-watcher-web gave its bucket before it learnt the real one
# (its extension cannot read it): such a bucket is taken as this host's.
UNKNOWN_HOST = "unknown"

# A web bucket's browser (`aw-watcher-web-<browser>_<host>`) -> the words of
# the window watcher's `app` that mean that browser is in focus, matched
# case-insensitively word by word ("Google-chrome", "chrome.exe",
# "org.mozilla.firefox", "Microsoft Edge", "msedge.exe", "Brave-browser").
BROWSERS: dict[str, tuple[str, ...]] = {
    "firefox": ("firefox",),
    "chrome": ("chrome", "chromium"),
    "chromium": ("chromium", "chrome"),
    "brave": ("brave",),
    "edge": ("edge", "msedge"),
    "opera": ("opera",),
    "vivaldi": ("vivaldi",),
    "safari": ("safari",),
}

# -- the facts ----------------------------------------------------------------------
# Named tuples, not dataclasses, and annotations evaluated (no `from
# __future__ import annotations`, whose strings a NamedTuple compiles one by
# one): the cron pass imports this module every minute, and so defined its
# records cost ~1 ms, not ~15.

_EMPTY: Mapping = MappingProxyType({})


class Bucket(NamedTuple):
    """One source as AW lists it, with its newest end (AW's hint or LifeLog's copy, the later)."""

    bucket_id: str
    type: str
    hostname: str
    newest_end: datetime | None = None
    created: datetime | None = None  # counts as its start when it has no event yet


class Span(NamedTuple):
    start: datetime
    end: datetime


class Previous(NamedTuple):
    """What the latest pass recorded for a source."""

    state: str
    newest_end: datetime | None = None


class Facts(NamedTuple):
    server_hostname: str | None  # AW's own host name (/api/0/info); None: not known yet
    buckets: tuple[Bucket, ...] = ()
    # afk bucket id -> its `not-afk` spans since `horizon`
    not_afk: Mapping[str, tuple[Span, ...]] = _EMPTY
    # window bucket id -> (span, app) of its events since `horizon`
    windows: Mapping[str, tuple[tuple[Span, str], ...]] = _EMPTY
    # The evidence covers [horizon, now]; nothing before it was read.
    horizon: datetime | None = None
    # Why LifeLog cannot vouch for what it holds of AW now; "" when it can.
    trouble: str = ""
    # Since when the machine has been awake without a sleep; None: cannot tell.
    awake_since: datetime | None = None
    previous: Mapping[str, Previous] = _EMPTY
    # With the `devices` setting: each followed device's device_id and host
    # name (lowered) -> its name; an aw-sync copy of one is `copy` "followed
    # directly as <name>" (core.devices.copy_of).
    followed: Mapping[str, str] = _EMPTY
    # A device other than the machine LifeLog runs on: its sleep is not known here.
    elsewhere: bool = False


class Judgement(NamedTuple):
    bucket_id: str
    type: str
    hostname: str
    state: SourceState
    reason: str
    newest_end: datetime | None = None
    # With the `devices` setting: the device whose AW lists it (a source is
    # (device, bucket_id): two devices may list one bucket id).
    device: str | None = None

    def age(self, now: datetime) -> float | None:
        return None if self.newest_end is None else (now - self.newest_end).total_seconds()


# -- small pure helpers -----------------------------------------------------------------


def watcher_name(bucket_id: str) -> str:
    """The bucket id before its last `_` (`aw-watcher-window`, `aw-watcher-web-firefox`):
    the key of `source_restart_commands`."""
    return bucket_id.rsplit("_", 1)[0] if "_" in bucket_id else bucket_id


def browser_of(bucket_id: str) -> str | None:
    """`firefox` for `aw-watcher-web-firefox_laptop` (or the older `aw-watcher-web-firefox`)."""
    name = watcher_name(bucket_id)
    if not name.startswith(WEB_PREFIX):
        return None
    return name[len(WEB_PREFIX):].lower() or None


@functools.lru_cache(maxsize=1024)
def browsers_in(app: str) -> frozenset[str]:
    """The browsers of BROWSERS that a window watcher's `app` names. Cached:
    a window bucket names a handful of apps over and over."""
    words = set("".join(c if c.isalnum() else " " for c in app.lower()).split())
    return frozenset(b for b, names in BROWSERS.items() if any(w in words for w in names))


def app_is_browser(app: str, browser: str) -> bool:
    return browser in browsers_in(app)


def merge_spans(spans: Iterable[Span]) -> list[Span]:
    """Sorted, disjoint spans covering the same time (empty spans dropped)."""
    out: list[Span] = []
    for s in sorted((s for s in spans if s.end > s.start), key=lambda s: s.start):
        if out and s.start <= out[-1].end:
            if s.end > out[-1].end:
                out[-1] = Span(out[-1].start, s.end)
        else:
            out.append(s)
    return out


def intersect(a: list[Span], b: list[Span]) -> list[Span]:
    """Intersection of two sorted, disjoint span lists."""
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        start, end = max(a[i].start, b[j].start), min(a[i].end, b[j].end)
        if end > start:
            out.append(Span(start, end))
        if a[i].end <= b[j].end:
            i += 1
        else:
            j += 1
    return out


def measure(spans: list[Span], start: datetime, end: datetime) -> float:
    """Seconds of `spans` (sorted, disjoint) inside [start, end]."""
    total = 0.0
    for s in spans:
        lo, hi = max(s.start, start), min(s.end, end)
        if hi > lo:
            total += (hi - lo).total_seconds()
    return total


# -- LifeLog's own health, and the machine's sleep --------------------------------------------


def lifelog_trouble(meta: Meta, facts: WatcherFacts, now: datetime, now_clocks: tuple[float, float] | None,
                    settings: Settings, verdict: Verdict | None = None) -> str:
    """Why LifeLog cannot vouch for its copy of AW now ("" when it can).

    Sources are judged only while LifeLog's watcher runs, heartbeats, and its
    latest poll (by this process) read AW: a lagging copy must never make a
    source look silent."""
    if verdict in RESTART_VERDICTS or verdict is Verdict.WAIT_BACKOFF:
        return f"the watchdog is replacing LifeLog's watcher ({verdict})"
    down = watcher_down(meta, facts, now, now_clocks, settings.heartbeat_timeout_seconds)
    if down is not None and not down.running:
        return f"LifeLog's watcher is not running ({down.detail or 'no process'})"
    if down is not None:
        return f"LifeLog's watcher heartbeat is stale ({down.detail})"
    heartbeat = ts(meta, keys.WATCHER_HEARTBEAT_AT)
    started = watcher_started(meta, facts, now)
    if heartbeat is None or (started is not None and heartbeat < started):
        return "LifeLog's watcher has not read AW since it started"
    error = meta.get(keys.WATCHER_LAST_ERROR) or ""
    if error:
        return f"LifeLog's watcher cannot read AW ({error})"
    if meta.get(keys.WATCHER_LAST_POLL_OK_AT) != meta.get(keys.WATCHER_HEARTBEAT_AT):
        return "LifeLog's latest poll of AW did not succeed"
    checked = ts(meta, keys.AW_CHECKED_AT)
    aw_status = meta.get(keys.AW_STATUS)
    if aw_status in (AWStatus.UNHEALTHY, AWStatus.DEGRADED) and checked is not None and checked > heartbeat:
        return f"AW is {aw_status} ({meta.get(keys.AW_ERROR) or 'no reason given'})"
    return ""


def device_trouble(meta: Meta, facts: WatcherFacts, now: datetime, now_clocks: tuple[float, float] | None,
                   settings: Settings, name: str, first: bool, verdict: Verdict | None = None) -> str:
    """With the `devices` setting: why LifeLog cannot vouch for its copy of
    device `name` now ("" when it can). LifeLog's watcher must be healthy,
    and the device must have answered its latest poll: a device away is
    never judged on what LifeLog could not read. The `aw` health check is the
    first device's (SPEC section 14), so only it speaks for that one."""
    heartbeat = meta.get(keys.WATCHER_HEARTBEAT_AT)
    # The watcher's own keys name every failing device; each device is judged on its own keys below.
    own = {**meta, keys.WATCHER_LAST_ERROR: "", keys.WATCHER_LAST_POLL_OK_AT: heartbeat}
    if not first:
        own[keys.AW_STATUS] = None
    general = lifelog_trouble(own, facts, now, now_clocks, settings, verdict)
    if general:
        return general
    error = meta.get(keys.device_key(name, "last_error")) or ""
    if meta.get(keys.device_key(name, "reachable")) != "yes":
        return f"{name} does not answer ({error or 'not polled yet'})"
    if error:
        return f"LifeLog's watcher cannot read {name} ({error})"
    if meta.get(keys.device_key(name, "last_poll_ok_at")) != heartbeat:
        return f"LifeLog's latest poll of {name} did not succeed"
    return ""


class Awake(NamedTuple):
    since: datetime | None  # None: cannot tell (no clocks on this OS)
    clocks: tuple[float, float] | None


def track_awake(previous: Awake | None, now: datetime, now_clocks: tuple[float, float] | None) -> Awake:
    """Since when the machine has been awake without a sleep, from the awake and
    since-boot clocks (lifelog.core.clocks).

    `previous` holds the clocks read when its `since` was set: a sleep since
    then (since-boot gained more than SLEEP_MIN on awake) moves `since` to
    `now`, the wake being at most a pass ago and late the safe side; else it
    stands, unchanged (nothing to record). With no previous reading: since
    boot when the machine never slept since, else from now on."""
    if now_clocks is None:
        return Awake(None, None)
    if previous is not None and previous.since is not None and previous.clocks is not None:
        awake = now_clocks[0] - previous.clocks[0]
        total = now_clocks[1] - previous.clocks[1]
        if awake >= 0 and total >= 0 and math.isfinite(awake + total):
            return Awake(now, now_clocks) if total - awake > SLEEP_MIN else previous
        # The clocks went back: another boot. Start again.
    slept = now_clocks[1] - now_clocks[0]
    if 0 <= slept <= SLEEP_MIN and math.isfinite(now_clocks[1]):
        return Awake(now - timedelta(seconds=max(now_clocks[1], 0.0)), now_clocks)
    return Awake(now, now_clocks)


# -- the judgment ---------------------------------------------------------------------------


def evidence_horizon(now: datetime, settings: Settings) -> datetime:
    """How far back the evidence (afk and window events) is read each pass:
    enough to judge a silence up to past the CRITICAL threshold."""
    minutes = settings.source_silence_critical_minutes + settings.source_silence_minutes
    return now - timedelta(minutes=minutes)


def evidence_needed(buckets: Iterable[Bucket], server_hostname: str | None, trouble: str, now: datetime,
                    settings: Settings) -> tuple[datetime | None, datetime | None]:
    """From when the afk and the window events must be read for this judgment
    (None: not at all). Only sources past the threshold need evidence, so in
    the steady state, every source live, a pass reads no event at all."""
    if trouble or server_hostname is None:
        return None, None
    horizon = evidence_horizon(now, settings)
    threshold = settings.source_silence_minutes * 60.0
    afk_from: datetime | None = None
    window_from: datetime | None = None
    for b in buckets:
        if b.type not in (WINDOW_TYPE, INPUT_TYPE, WEB_TYPE) or not is_local(b, server_hostname):
            continue
        start = b.newest_end or b.created
        if start is None or (now - start).total_seconds() <= threshold:
            continue
        at = max(start, horizon)
        afk_from = at if afk_from is None else min(afk_from, at)
        if b.type == WEB_TYPE:
            window_from = at if window_from is None else min(window_from, at)
    return afk_from, window_from


def same_host(bucket: Bucket, hostname: str) -> bool:
    if bucket.hostname.casefold() == hostname.casefold():
        return True
    return bucket.type == WEB_TYPE and bucket.hostname == UNKNOWN_HOST


def is_local(bucket: Bucket, hostname: str | None) -> bool:
    """Recorded on AW's own machine (`hostname`), and not a copy synced from another."""
    return hostname is not None and SYNCED_MARK not in bucket.bucket_id and same_host(bucket, hostname)


def judge(facts: Facts, now: datetime, settings: Settings) -> list[Judgement]:
    """One state and its reason per source, in the order of `facts.buckets`. Pure."""
    return _Judge(facts, now, settings).all()


class _Judge:
    def __init__(self, facts: Facts, now: datetime, settings: Settings):
        self.facts = facts
        self.now = now
        self.threshold = settings.source_silence_minutes * 60.0
        self.done: dict[str, Judgement] = {}

    def all(self) -> list[Judgement]:
        return [self.of(b) for b in self.facts.buckets]

    def of(self, bucket: Bucket) -> Judgement:
        if bucket.bucket_id not in self.done:
            state, reason = self._judge(bucket)
            self.done[bucket.bucket_id] = Judgement(bucket.bucket_id, bucket.type, bucket.hostname,
                                                    state, reason, bucket.newest_end)
        return self.done[bucket.bucket_id]

    # The evidence: local, non-copy buckets of a type, with their own states.
    def _evidence(self, type_: str) -> list[Bucket]:
        return [b for b in self.facts.buckets if b.type == type_ and is_local(b, self.facts.server_hostname)]

    def _usable(self, type_: str, what: str) -> tuple[list[Bucket], str]:
        """The evidence buckets that may be read, or the reason there are none."""
        found = self._evidence(type_)
        if not found:
            return [], (f"no {type_} bucket of host {self.facts.server_hostname} to tell {what} "
                        f"(is its watcher running, and selected by the buckets setting?)")
        usable = [b for b in found if self.of(b).state in EVIDENCE_STATES]
        if not usable:
            j = self.of(found[0])
            return [], f"its evidence {j.bucket_id} is {j.state} itself"
        return usable, ""

    def _judge(self, b: Bucket) -> tuple[SourceState, str]:
        facts, now = self.facts, self.now
        # -> copy (wins over remote)
        if SYNCED_MARK in b.bucket_id:
            of = copy_of(b.bucket_id, facts.followed) if facts.followed else None
            if of is not None:
                return SourceState.COPY, f"followed directly as {of}"
            return SourceState.COPY, "copied from another device by aw-sync; not judged"
        # -> remote
        if facts.server_hostname is None:
            return SourceState.UNJUDGED, ("AW's own host name is not known yet "
                                          "(LifeLog's watcher records it when it reads AW)")
        if not same_host(b, facts.server_hostname):
            return SourceState.REMOTE, (f"a bucket of host {b.hostname!r}, not of AW's host "
                                        f"{facts.server_hostname!r}; not judged")
        # -> unjudged: LifeLog does not blame a source for its own lag
        if facts.trouble:
            return SourceState.UNJUDGED, f"not judged while {facts.trouble}"
        rule = {AFK_TYPE: self._afk, WINDOW_TYPE: self._active, INPUT_TYPE: self._active,
                WEB_TYPE: self._web}.get(b.type)
        if rule is None:
            return SourceState.UNJUDGED, f"no rule for buckets of type {b.type!r}"
        start = b.newest_end or b.created
        if start is None:
            return SourceState.UNJUDGED, "it holds no event, and AW gives no creation time"
        age = (now - start).total_seconds()
        # -> live
        if age <= self.threshold:
            if b.newest_end is None:
                return SourceState.LIVE, "created within source_silence_minutes, no event yet"
            # No age in the reason: it would change every pass (`lifelog sources` shows it).
            return SourceState.LIVE, "recording: its newest event is within source_silence_minutes"
        state, reason = rule(b, start)
        # -> silent, still: judged so on a silence that has not ended (the
        # evidence read now may no longer reach back to its start)
        prev = facts.previous.get(b.bucket_id)
        if (state is SourceState.IDLE and prev is not None and prev.state == SourceState.SILENT
                and prev.newest_end == b.newest_end):
            return SourceState.SILENT, f"{self._still_why(b)} (judged so before), and nothing since"
        return state, reason

    def _still_why(self, b: Bucket) -> str:
        return {AFK_TYPE: "while the machine was awake", WEB_TYPE: f"while {browser_of(b.bucket_id)} was in focus"
                }.get(b.type, "while you were active")

    def _afk(self, b: Bucket, start: datetime) -> tuple[SourceState, str]:
        if self.facts.awake_since is None and self.facts.elsewhere:
            return SourceState.UNJUDGED, (f"cannot tell whether {self.facts.server_hostname} slept "
                                          "(LifeLog reads the sleep clocks of its own machine only)")
        if self.facts.awake_since is None:
            return SourceState.UNJUDGED, "cannot tell whether the machine slept (no sleep clocks on this OS)"
        awake = (self.now - max(start, self.facts.awake_since)).total_seconds()
        if awake > self.threshold:
            return SourceState.SILENT, f"while the machine was awake ({format_span(awake)} awake since its newest event)"
        return SourceState.IDLE, f"the machine slept; awake {format_span(max(awake, 0))} since its newest event"

    def _not_afk(self, afks: list[Bucket]) -> list[Span]:
        return merge_spans(s for a in afks for s in self.facts.not_afk.get(a.bucket_id, ()))

    def _from(self, start: datetime) -> datetime:
        horizon = self.facts.horizon
        return start if horizon is None else max(start, horizon)

    def _active(self, b: Bucket, start: datetime) -> tuple[SourceState, str]:
        afks, why = self._usable(AFK_TYPE, "whether you were active")
        if not afks:
            return SourceState.UNJUDGED, why
        active = measure(self._not_afk(afks), self._from(start), self.now)
        if active > self.threshold:
            return SourceState.SILENT, f"while you were active ({format_span(active)} not-afk since its newest event)"
        return SourceState.IDLE, f"you were away ({format_span(active)} not-afk since its newest event)"

    def _web(self, b: Bucket, start: datetime) -> tuple[SourceState, str]:
        browser = browser_of(b.bucket_id)
        if browser is None or browser not in BROWSERS:
            return SourceState.UNJUDGED, (f"no rule for the browser of {b.bucket_id} "
                                          f"(known: {', '.join(sorted(BROWSERS))})")
        windows, why = self._usable(WINDOW_TYPE, f"when {browser} is in focus")
        if not windows:
            return SourceState.UNJUDGED, why
        afks, why = self._usable(AFK_TYPE, "whether you were active")
        if not afks:
            return SourceState.UNJUDGED, why
        focus = merge_spans(span for w in windows for span, app in self.facts.windows.get(w.bucket_id, ())
                            if app_is_browser(app, browser))
        seconds = measure(intersect(focus, self._not_afk(afks)), self._from(start), self.now)
        if seconds > self.threshold:
            return SourceState.SILENT, (f"while {browser} was in focus ({format_span(seconds)} in focus, "
                                        f"not-afk, since its newest event)")
        return SourceState.IDLE, f"{browser} in focus only {format_span(seconds)} (not-afk) since its newest event"
