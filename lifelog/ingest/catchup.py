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

Two fetches run at once (WORKERS): a long gap is cut in two by time
(lifelog.ingest.history.split_gaps) and each part has its own page
pipeline, connection and client. One pipeline leaves AW idle while LifeLog
receives and decodes each page (AW cannot be asked for the next page before
this one's oldest event is known); two keep it busy.

Every wait is bounded: each request by `aw_timeout_seconds`, each write by
the busy timeout. A stop asked (the watcher's, or `cancel()` when the
device stops answering as the same device_id) is seen between pages.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections import deque
from collections.abc import Callable, Sequence
from datetime import timedelta
from os import PathLike

from lifelog.aw.client import AWError
from lifelog.db.database import open_db
from lifelog.ingest import history
from lifelog.ingest.store import AWServer, Counts

log = logging.getLogger("lifelog.watcher")

# Fetches at once per device, and the shortest gap worth cutting for them
# (a gap of minutes is a page or two: one pipeline is as quick).
WORKERS = 2
SPLIT_MIN = timedelta(hours=1)


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
        self._lock = threading.Lock()
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
        try:
            db = open_db(self._db_path)
        except Exception as e:  # the database gone or locked past the busy timeout: the next poll retries
            self.error = f"database: {e}"
            self._src.close()
            return
        try:
            queue = deque(history.split_gaps(db, self._src.server, self._bucket_ids, WORKERS, SPLIT_MIN))
        except Exception as e:
            self.error = failure(e, f"catch-up of {self.name}")
            queue = deque()
        finally:
            db.conn.close()
        helpers = [threading.Thread(target=self._work, args=(queue, self._src.clone()), daemon=True,
                                    name=f"{self._thread.name}-{k}") for k in range(1, min(WORKERS, len(queue)))]
        for helper in helpers:
            helper.start()
        self._work(queue, self._src)
        for helper in helpers:
            helper.join()  # each ends within a page: every request and write is bounded

    def _work(self, queue: deque[history.Gap], src: AWServer) -> None:
        """Fill gaps from the queue until it is empty, a stop is asked or
        one fails (the first failure is kept; the next poll's catch-up resumes)."""
        db = None
        try:
            db = open_db(self._db_path)
            while queue and not self._stop_asked() and not self.error:
                try:
                    gap = queue.popleft()
                except IndexError:  # the other worker took the last one
                    break
                _, counts = history.fill_gap(db, src, gap, should_stop=self._stop_asked)
                with self._lock:
                    self.counts.add(counts)
        except Exception as e:
            self.error = self.error or failure(e, f"catch-up of {self.name}")
        finally:
            src.close()
            if db is not None:
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
