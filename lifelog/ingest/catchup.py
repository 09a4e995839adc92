"""A device's catch-up, in a thread of its own (SPEC section 14).

With several devices, a laptop back after days holds tens of thousands of
events LifeLog has not seen. Fetched inside the watcher's polls, within a
budget per poll, that history made every other device's live events wait
for the budget (seconds), and each poll's pause and restarted page pipeline
slowed the catch-up itself. So the watcher hands a device's gaps to a
CatchUp: a thread with its own database connection and its own AW client,
filling the gaps page after page (lifelog.ingest.history.fill_gap, with
its page fetched ahead) until none is left, while the watcher's loop keeps
polling every device's live buckets at its own pace.

Nothing here is new about correctness: history and live polls already run
side by side (a `backfill` beside the watcher). Every page is committed with
its gap moved in one transaction, a gap only shrinks, and writes merge
idempotently; a kill -9 leaves the gap where the last commit put it.

One page pipeline per device, as in a backfill: the next page is asked for
as soon as this one's oldest event is known, so aw-server prepares it while
LifeLog stores this one, and AW is idle only while a page crosses the socket
and is decoded. Two pipelines at once (a gap cut in two by time) were tried
and measured worse: aw-server (python) then serves two requests in threads
that share one interpreter lock, and spends about a quarter more CPU on the
same events (scripts/bench_devices.py, README "Is catching up fair?").

Every wait is bounded: each request by `aw_timeout_seconds`, each write by
the busy timeout. A stop asked (the watcher's, or `cancel()` when the
device stops answering as the same device_id) is seen between pages.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from os import PathLike

from lifelog.aw.client import AWError
from lifelog.db.database import open_db
from lifelog.ingest import history
from lifelog.ingest.store import AWServer, Counts

log = logging.getLogger("lifelog.watcher")


class CatchUp:
    """One device's gaps being filled by a thread; the watcher's loop asks
    `running`, reads `error` once it is over, and `cancel()`s it."""

    def __init__(self, name: str, db_path: str | PathLike[str], src: AWServer, bucket_ids: Sequence[str],
                 should_stop: Callable[[], bool]) -> None:
        self.name = name
        self.server = src.server  # the device_id its rows are stored under
        self.counts = Counts()
        self.error = ""
        self._db_path = db_path
        self._src = src
        self._bucket_ids = list(bucket_ids)
        self._cancelled = threading.Event()
        self._should_stop = should_stop
        self._thread = threading.Thread(target=self._run, name=f"lifelog-catchup-{name}", daemon=True)

    @classmethod
    def start(cls, name: str, db_path: str | PathLike[str], src: AWServer, bucket_ids: Sequence[str],
              should_stop: Callable[[], bool]) -> CatchUp:
        """A catch-up begun now, through a client of its own (src is cloned)."""
        catch_up = cls(name, db_path, src.clone(), bucket_ids, should_stop)
        catch_up._thread.start()
        return catch_up

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def cancel(self) -> None:
        """Stop after the page being stored (what is committed stays)."""
        self._cancelled.set()

    def join(self, timeout: float) -> bool:
        """Wait at most `timeout` seconds; True when the thread is over."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _stop_asked(self) -> bool:
        return self._cancelled.is_set() or self._should_stop()

    def _run(self) -> None:
        """Fill the gaps, newest first, until none is left, a stop is asked
        or one fails (the error is kept; the next poll's catch-up resumes)."""
        try:
            db = open_db(self._db_path)
        except Exception as e:  # the database gone or locked past the busy timeout: the next poll retries
            self.error = f"database: {e}"
            self._src.close()
            return
        began = time.monotonic()
        try:
            gaps = history.load_gaps(db, self._src.server, self._bucket_ids)
            log.info("device %s: catching up (%d gap%s)", self.name, len(gaps), "" if len(gaps) == 1 else "s")
            for gap in gaps:
                if self._stop_asked():
                    break
                _, counts = history.fill_gap(db, self._src, gap, should_stop=self._stop_asked)
                self.counts.add(counts)
            log.info("device %s: catch-up %s: %d events fetched, %d stored new, in %.1f s", self.name,
                     "stopped" if self._stop_asked() else "over", self.counts.fetched, self.counts.inserted,
                     time.monotonic() - began)
        except Exception as e:  # AW failing, the write lock held past the busy timeout: said once
            self.error = failure(e, f"catch-up of {self.name}")
        finally:
            self._src.close()
            db.conn.close()


def failure(e: Exception, what: str) -> str:
    """A device's failure as one line (for device.<name>.last_error): AW's and
    the database's as they are; anything else is a bug, logged with its trace
    (`what` failed), and must not end ingestion."""
    if isinstance(e, AWError):
        return str(e)
    if isinstance(e, sqlite3.OperationalError):
        return f"database: {e}"  # typically a user holding the write lock past the busy timeout
    log.exception("%s failed", what)
    return f"{type(e).__name__}: {e}"
