"""ReplyWriter: reply records written by one thread, many to a transaction.

Under load the service answers dozens of questions a second. One transaction per reply cost
about 1 ms of CPU each (SQLite, WAL: a commit per row), a twentieth of an answer; a batch of 16
costs 0.06 ms a record (README: Benchmarks). A reply's record is queued, never waited for, and
whoever reads the records (a rating, the reports) flushes the queue first, so a rating sent right
after its reply still finds it. At shutdown the queue is drained: nothing queued is lost.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # SQLAlchemy stays out of the start path (api/records.py)
    from ragbot.records import Records, ReplyRecord

log = logging.getLogger("ragbot.records")

MAX_BATCH = 64  # records in one transaction: a second of replies at full load, at most
_STOP = None


class ReplyWriter:
    """A queue of reply records and the thread that writes them, as many as wait at once."""

    def __init__(self, store: Callable[[], Records | None], name: str = "ragbot-records") -> None:
        """`store` returns the open store (it may block while the store opens) or None."""
        self._store = store
        self._queue: queue.SimpleQueue[Callable[[], ReplyRecord] | None] = queue.SimpleQueue()
        self._done = threading.Condition()
        self._submitted = 0
        self._finished = 0  # written, or dropped with a logged error
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, make: Callable[[], ReplyRecord]) -> None:
        """Queue a record (`make` builds it in the writer's thread); returns at once."""
        with self._done:
            self._submitted += 1
        self._queue.put(make)

    def flush(self, timeout: float) -> bool:
        """Wait until every record queued before the call is written; False on timeout."""
        with self._done:
            target = self._submitted
            return self._done.wait_for(lambda: self._finished >= target, timeout)

    def close(self, timeout: float) -> None:
        """Write what is queued, then stop the thread."""
        self._queue.put(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("reply records not all written at shutdown")

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            # Waiting for the store (still opening) lets the records behind this one queue up.
            records = self._store() if batch[0] is not _STOP else None
            while batch[-1] is not _STOP and len(batch) < MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            makers = [m for m in batch if m is not None]
            if makers:
                self._write(records, makers)
            if batch[-1] is _STOP:
                return

    def _write(self, records: Records | None, makers: list[Callable[[], ReplyRecord]]) -> None:
        built = []
        for make in makers:
            try:
                built.append(make())
            except Exception as exc:  # one bad record must not cost the others in its batch
                log.error("reply record not built", extra={"error": str(exc)})
        try:
            if records is not None:  # None: the store failed to open, and that was logged
                records.add_replies(built)
        except Exception as exc:  # nothing a record does may reach a visitor or stop the thread
            log.error("reply records not written", extra={"records": len(built), "error": str(exc)})
        finally:
            with self._done:
                self._finished += len(makers)
                self._done.notify_all()
