"""One store for state shared by requests, restarts and replicas: Slack dedupe today.

__init__.py  the Store protocol and open_store(settings), which picks one
sqlite.py    SqliteStore: embedded and durable, the default (a file beside the index builds)
redis.py     RedisStore: selected by RAGBOT_REDIS_URL, shared by replicas
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from ragbot.config import Settings
from ragbot.errors import StoreUnavailable

log = logging.getLogger("ragbot.store")

__all__ = ["Store", "StoreUnavailable", "open_store"]


class Store(Protocol):
    """Keys with a time to live. Every method raises StoreUnavailable when the store is down."""

    def claim(self, key: str, ttl_s: float) -> bool:
        """True for the first caller within `ttl_s` seconds, in any thread, process or replica."""
        ...

    def put(self, key: str, value: dict[str, Any], ttl_s: float) -> None:
        """Store a JSON object under `key` for `ttl_s` seconds (replacing any earlier value)."""
        ...

    def get(self, key: str) -> dict[str, Any] | None:
        """The object stored under `key`, or None when there is none or it expired."""
        ...

    def close(self) -> None:
        """Release the connection; the store is not used afterwards."""
        ...


def open_store(settings: Settings) -> Store:
    """Redis when RAGBOT_REDIS_URL is set, otherwise the SQLite file at settings.resolved_state_path.

    Raises StoreUnavailable when the store cannot be opened at all (a bad URL, an unwritable
    folder). A Redis server that does not answer yet is only logged: the client reconnects.
    """
    if settings.redis_url:
        from ragbot.store.redis import RedisStore

        redis_store = RedisStore(settings.redis_url)
        try:
            redis_store.ping()
        except StoreUnavailable as exc:
            log.warning(
                "state store not answering yet; Slack events get 503 until it does",
                extra={"store": redis_store.where, "error": exc.message},
            )
        else:
            log.info("state store", extra={"store": redis_store.where})
        return redis_store

    from ragbot.store.sqlite import SqliteStore

    sqlite_store = SqliteStore(settings.resolved_state_path)
    log.info("state store", extra={"store": sqlite_store.where})
    return sqlite_store


def check_ttl(ttl_s: float) -> None:
    """A TTL must be positive: a key that never expires would grow the store for ever."""
    if not ttl_s > 0:
        raise ValueError(f"ttl_s must be positive, not {ttl_s}")
