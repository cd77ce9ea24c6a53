"""Concurrent questions share one model call: a single encoder thread takes what is queued.

A caller that finds the model idle and nobody else waiting is encoded at once (no added
latency at concurrency 1). When others are already in flight, the encoder waits at most
`wait_s` for them to queue and encodes up to `max_texts` in one call: one `session.run` for many
questions uses the two cores far better than many calls taking turns (README: Benchmarks).
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ragbot import metrics
from ragbot.embeddings import Embedder, Vectors


@dataclass
class _Job:
    texts: list[str]
    done: threading.Event = field(default_factory=threading.Event)
    result: Vectors | None = None
    error: BaseException | None = None
    queued: float = field(default_factory=time.perf_counter)


@dataclass(frozen=True)
class BatchStats:
    """What the encoder has done (for the benchmark; /metrics has the timings)."""

    calls: int
    texts: int
    largest: int


class BatchingEmbedder:
    """An Embedder whose calls from many threads are merged into few model calls."""

    def __init__(self, inner: Embedder, *, max_texts: int = 16, wait_s: float = 0.001) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.max_texts = max_texts
        self.wait_s = wait_s
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._in_flight = 0
        self._closed = False
        self._count = threading.Lock()
        self._calls = self._texts = self._largest = 0
        self._thread = threading.Thread(target=self._run, name="ragbot-encoder", daemon=True)
        self._thread.start()

    def __getattr__(self, attr: str) -> Any:
        # fingerprint, max_tokens, fits: whatever the index checks ask of the real model.
        return getattr(self.inner, attr)

    def embed(self, texts: list[str]) -> Vectors:
        """Vectors of the texts, computed in a call shared with whoever else is waiting."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        job = _Job(list(texts))
        with self._count:
            if self._closed:  # a pipeline replaced by a new build: its last callers run inline
                return self._timed(list(texts))
            self._in_flight += 1
            # Under the lock, so that no job is queued behind close()'s stop marker.
            self._queue.put(job)
        try:
            job.done.wait()
        finally:
            with self._count:
                self._in_flight -= 1
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result

    @property
    def stats(self) -> BatchStats:
        """Model calls, texts encoded, and the largest batch so far."""
        return BatchStats(self._calls, self._texts, self._largest)

    def close(self) -> None:
        """Stop the encoder thread once the queue is done; later calls are encoded inline."""
        with self._count:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs = [first]
            size = len(first.texts)
            deadline = time.monotonic() + self.wait_s
            while size < self.max_texts:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    # Wait only for callers already in flight; alone, go at once.
                    remaining = deadline - time.monotonic()
                    with self._count:
                        others = self._in_flight > len(jobs)
                    if not others or remaining <= 0:
                        break
                    try:
                        job = self._queue.get(timeout=remaining)
                    except queue.Empty:
                        break
                if job is None:
                    self._queue.put(None)  # stop after this batch
                    break
                jobs.append(job)
                size += len(job.texts)
            self._encode(jobs)

    def _encode(self, jobs: list[_Job]) -> None:
        texts = [t for job in jobs for t in job.texts]
        started = time.perf_counter()
        for job in jobs:
            metrics.QUEUE_WAIT_SECONDS.observe(started - job.queued)
        try:
            vectors = self._timed(texts)
            start = 0
            for job in jobs:
                job.result = vectors[start : start + len(job.texts)]
                start += len(job.texts)
        except BaseException as exc:  # every waiting caller gets the failure, none hangs
            for job in jobs:
                job.error = exc
        finally:
            self._calls += 1
            self._texts += len(texts)
            self._largest = max(self._largest, len(texts))
            for job in jobs:
                job.done.set()

    def _timed(self, texts: list[str]) -> Vectors:
        started = time.perf_counter()
        try:
            return self.inner.embed(texts)
        finally:
            metrics.MODEL_SECONDS.observe(time.perf_counter() - started)
