"""A bounded, thread-safe set of recently seen keys: Slack delivers an event more than once."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

# Slack retries a delivery three times: at once, after 1 minute and after 5 minutes
# (docs.slack.dev/apis/events-api: "Retries"). Ten minutes covers them all.
DEDUPE_TTL_SECONDS = 600.0
DEDUPE_MAX_KEYS = 10_000


class RecentKeys:
    """Keys seen in the last `ttl` seconds, at most `max_keys` of them (oldest dropped first)."""

    def __init__(
        self,
        ttl: float = DEDUPE_TTL_SECONDS,
        max_keys: int = DEDUPE_MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl <= 0 or max_keys <= 0:
            raise ValueError("ttl and max_keys must be positive")
        self.ttl = ttl
        self.max_keys = max_keys
        self._clock = clock
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, key: str) -> bool:
        """Record `key`; True when it was not seen within the TTL (so the caller should act)."""
        with self._lock:
            now = self._clock()
            self._expire(now)
            if key in self._seen:
                return False
            self._seen[key] = now
            while len(self._seen) > self.max_keys:
                self._seen.popitem(last=False)
            return True

    def __len__(self) -> int:
        with self._lock:
            self._expire(self._clock())
            return len(self._seen)

    def _expire(self, now: float) -> None:
        # Insertion order is time order (a key is never refreshed), so expiry pops from the front.
        while self._seen:
            key, seen_at = next(iter(self._seen.items()))
            if now - seen_at < self.ttl:
                break
            del self._seen[key]
