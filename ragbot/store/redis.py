"""RedisStore: the shared store of several replicas, selected by RAGBOT_REDIS_URL."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from ragbot.errors import StoreUnavailable
from ragbot.store import check_ttl

KEY_PREFIX = "ragbot:"
# Slack wants an answer within 3 s: a Redis that does not answer within 1 s is down, and the
# event gets 503 (Slack retries). redis-py's own default retries back off for seconds.
TIMEOUT_S = 1.0
RETRIES = 1
RETRY_BACKOFF = ExponentialBackoff(cap=0.2, base=0.05)


class RedisStore:
    """Keys with a TTL in Redis: `SET NX PX` claims, JSON values, every key under `prefix`."""

    def __init__(self, url: str, *, prefix: str = KEY_PREFIX) -> None:
        self.prefix = prefix
        self.where = f"redis {_without_password(url)}"
        try:
            self._redis = redis.Redis.from_url(
                url,
                socket_timeout=TIMEOUT_S,
                socket_connect_timeout=TIMEOUT_S,
                retry=Retry(RETRY_BACKOFF, RETRIES),
            )
        except ValueError as exc:  # not a redis://, rediss:// or unix:// URL
            raise StoreUnavailable(f"RAGBOT_REDIS_URL is not a Redis URL: {exc}") from exc

    def ping(self) -> None:
        """Raise StoreUnavailable unless the server answers."""
        self._call(self._redis.ping)

    def claim(self, key: str, ttl_s: float) -> bool:
        """True for the first caller within `ttl_s` seconds: SET NX with a millisecond expiry."""
        check_ttl(ttl_s)
        won = self._call(self._redis.set, self._key("claim", key), b"1", nx=True, px=_ms(ttl_s))
        return bool(won)

    def put(self, key: str, value: dict[str, Any], ttl_s: float) -> None:
        """Store a JSON object under `key` for `ttl_s` seconds."""
        check_ttl(ttl_s)
        self._call(self._redis.set, self._key("kv", key), json.dumps(value), px=_ms(ttl_s))

    def get(self, key: str) -> dict[str, Any] | None:
        """The object under `key`, or None when absent or expired."""
        raw = self._call(self._redis.get, self._key("kv", key))
        if raw is None:
            return None
        value: dict[str, Any] = json.loads(raw)
        return value

    def close(self) -> None:
        """Close the connection pool."""
        self._redis.close()

    def _key(self, kind: str, key: str) -> str:
        return f"{self.prefix}{kind}:{key}"

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except redis.RedisError as exc:
            raise StoreUnavailable(f"the state store failed: {type(exc).__name__}: {exc}") from exc


def _ms(ttl_s: float) -> int:
    return max(1, round(ttl_s * 1000))


def _without_password(url: str) -> str:
    """The URL as it may be logged: the password, if any, replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()
