"""The records store as the service sees it: opened in the background once the service is up.

Opening it imports SQLAlchemy and checks the schema, a sixth of the cold start (README:
Benchmarks), and nothing needs it before the first reply is kept. Until it is open, whoever needs
it waits (a bounded wait, off the event loop); a store that cannot be opened is one error line,
and the API answers anyway. Reply records go through a queue (api/writer.py): a reply never
waits for its record, and whoever reads the store gets it with every queued record written.
"""

from __future__ import annotations

import logging
import threading
from functools import partial
from typing import TYPE_CHECKING

from ragbot.api.writer import ReplyWriter
from ragbot.config import Settings
from ragbot.errors import StoreUnavailable

if TYPE_CHECKING:
    from ragbot.pipeline import Pipeline, Trace
    from ragbot.records import Channel, Records

log = logging.getLogger("ragbot.api")

# How long a reply's record or a rating waits for the store to open. SQLite opens in a fraction
# of a second; a database that does not answer within this is logged as not opened anyway.
OPEN_WAIT_S = 15.0


class RecordsSlot:
    """The records store, once `open()` (run in a worker thread) has finished."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._records: Records | None = None
        self._done = threading.Event()
        self._closed = False
        self._lock = threading.Lock()
        self._writer = ReplyWriter(self._opened)

    def open(self) -> None:
        """Open the store (blocking: call it from a worker thread)."""
        from ragbot.records import Records

        try:
            records = Records.open(self._settings)
        except StoreUnavailable as exc:
            log.error("records store not opened", extra={"error": exc.message})
            records = None
        with self._lock:
            if self._closed and records is not None:
                records.close()  # the service stopped while it opened
                records = None
            self._records = records
        self._done.set()

    def get(self, timeout: float = OPEN_WAIT_S) -> Records | None:
        """The open store with every queued reply record written, waiting for both (blocking);
        None if it cannot be used."""
        records = self._opened(timeout)
        if records is not None:
            self._writer.flush(timeout)
        return records

    def keep_reply(
        self,
        pipeline: Pipeline,
        trace: Trace,
        request_id: str,
        channel: Channel,
        question: str,
        latency_ms: float,
        *,
        keep_questions: bool,
    ) -> None:
        """Queue a reply's record (see records.keep.record_of); returns at once."""
        from ragbot.records.keep import record_of

        self._writer.submit(
            partial(
                record_of,
                pipeline,
                trace,
                request_id,
                channel,
                question,
                latency_ms,
                keep_questions=keep_questions,
            )
        )

    def close(self) -> None:
        """Write the queued records, then close the store; one still opening is closed when it
        is done."""
        self._writer.close(OPEN_WAIT_S)
        with self._lock:
            self._closed = True
            records, self._records = self._records, None
        if records is not None:
            records.close()

    def _opened(self, timeout: float = OPEN_WAIT_S) -> Records | None:
        self._done.wait(timeout)
        return self._records
