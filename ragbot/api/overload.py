"""Overload protection for POST /v1/ask: a bounded queue for the model, and a per-client rate.

`AskGate` lets at most `workers` questions run at once. Others wait in a queue of at most `queue`
places, each for at most `timeout_s`; a question that finds the queue full, or waits too long,
gets a fast 503 with Retry-After instead of a reply many seconds late. `RateLimit` counts each
client's questions with the `limits` library, in memory or in Redis (shared by replicas).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio

from ragbot import metrics
from ragbot.config import Settings
from ragbot.errors import Overloaded, RateLimited

log = logging.getLogger("ragbot.api")

RETRY_AFTER_S = 1  # a shed question is worth retrying soon: the queue drains in about a second


@dataclass
class AskGate:
    """At most `workers` questions at once, at most `queue` waiting, none waiting past the budget."""

    workers: int
    queue: int
    timeout_s: float
    waiting: int = 0
    shed: int = 0  # questions turned away so far by this gate (ragbot_shed_total counts all)
    _slots: anyio.CapacityLimiter = field(init=False)
    threads: anyio.CapacityLimiter = field(init=False)  # the worker threads ask() runs on

    def __post_init__(self) -> None:
        self._slots = anyio.CapacityLimiter(self.workers)
        # Never the bottleneck (the slots are): only keeps anyio's default pool out of it.
        self.threads = anyio.CapacityLimiter(self.workers)

    @classmethod
    def from_settings(cls, settings: Settings) -> AskGate:
        """The gate the settings describe."""
        return cls(
            workers=settings.ask_workers,
            queue=settings.ask_queue,
            timeout_s=settings.ask_queue_timeout_ms / 1000,
        )

    def full(self) -> bool:
        """Every worker busy and every queue place taken: a new question would be shed."""
        return self._slots.borrowed_tokens >= self.workers and self.waiting >= self.queue

    def refuse(self) -> Overloaded:
        """Count a shed question and the error that tells its client."""
        self.shed += 1
        metrics.SHED.inc()
        return Overloaded("the service is busy; try again in a moment", retry_after=RETRY_AFTER_S)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold a worker slot for the block, or raise Overloaded at once (queue full) or after
        the budget (no slot freed in time)."""
        if self.full():
            raise self.refuse()
        self.waiting += 1
        acquired = False
        try:
            with anyio.move_on_after(self.timeout_s):
                await self._slots.acquire()
                acquired = True
        finally:
            self.waiting -= 1
        if not acquired:
            raise self.refuse()
        try:
            yield
        finally:
            self._slots.release()


class RateLimit:
    """Each client's questions, counted in moving windows ("20/minute;200/hour")."""

    def __init__(self, spec: str, storage_uri: str) -> None:
        from limits import parse_many
        from limits.aio.strategies import MovingWindowRateLimiter
        from limits.storage import storage_from_string

        self.items = parse_many(spec)
        # redis-py, which the shared store already uses, rather than limits' default coredis.
        options = {"implementation": "redispy"} if "redis" in storage_uri else {}
        self.storage = storage_from_string(storage_uri, **options)
        self._limiter = MovingWindowRateLimiter(self.storage)

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimit | None:
        """The configured limit, or None when it is off (an empty RAGBOT_RATE_LIMIT)."""
        if not settings.rate_limit.strip():
            return None
        # Redis, when configured, makes the limit one for all replicas.
        uri = f"async+{settings.redis_url}" if settings.redis_url else "async+memory://"
        return cls(settings.rate_limit, uri)

    async def aclose(self) -> None:
        """Close the Redis connections of the counters, if any (at shutdown)."""
        bridge = getattr(self.storage, "bridge", None)
        client = getattr(bridge, "storage", None)
        if client is not None and hasattr(client, "aclose"):
            try:
                await client.aclose()
            except Exception as exc:  # shutting down: a failed close is only worth a line
                log.warning("rate limit store not closed", extra={"error": str(exc)})

    async def check(self, client: str) -> None:
        """Count one question for `client`; RateLimited, with Retry-After, over any window.
        When the counters cannot be reached (Redis down), the question goes through: an outage
        of the limiter must not become an outage of the answers."""
        try:
            await self._check(client)
        except RateLimited:
            metrics.RATE_LIMITED.inc()
            raise
        except Exception as exc:  # redis-py's errors, and whatever the storage raises
            log.warning("rate limit not checked", extra={"error": str(exc)})

    async def _check(self, client: str) -> None:
        for item in self.items:
            if not await self._limiter.hit(item, "ask", client):
                stats = await self._limiter.get_window_stats(item, "ask", client)
                retry = max(1, math.ceil(stats.reset_time - time.time()))
                raise RateLimited(
                    f"too many questions from this client (limit {item}); try again in {retry} s",
                    retry_after=retry,
                )
