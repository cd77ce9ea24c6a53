"""SqliteStore: the embedded, durable default; safe for threads and for processes on one file."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ragbot.errors import StoreUnavailable
from ragbot.store import check_ttl

# A writer waits this long for another process's write to finish before giving up.
BUSY_TIMEOUT_S = 5.0
# Expired rows are deleted at most this often: a claim or put pays for it once a minute.
PURGE_EVERY_S = 60.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, expires_at REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS claims_expiry ON claims (expires_at);
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_expiry ON entries (expires_at);
"""

# One statement, so SQLite's write lock makes it atomic across threads and processes: it inserts
# the key, or takes over an expired one; a live claim changes no row.
CLAIM = """
INSERT INTO claims (key, expires_at) VALUES (?, ?)
ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at WHERE claims.expires_at <= ?
"""
PUT = """
INSERT INTO entries (key, value, expires_at) VALUES (?, ?, ?)
ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
"""


class SqliteStore:
    """Keys with a TTL in one SQLite file (WAL); expiry uses the wall clock, shared by processes."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.where = f"sqlite {path}"
        self._clock = clock
        self._lock = threading.Lock()  # one connection, used by one thread at a time
        self._next_purge = 0.0
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            # WAL with synchronous=NORMAL survives a process crash; a power cut may lose the last
            # claims, which costs at most a duplicate reply.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
        except OSError as exc:
            raise StoreUnavailable(
                f"cannot open the state store: {exc.strerror or exc}; check RAGBOT_STATE_PATH"
            ) from exc
        except sqlite3.Error as exc:
            raise StoreUnavailable(
                f"cannot open the state store: {exc}; check RAGBOT_STATE_PATH"
            ) from exc

    def claim(self, key: str, ttl_s: float) -> bool:
        """True for the first caller within `ttl_s` seconds (see CLAIM)."""
        check_ttl(ttl_s)
        with self._lock:
            now = self._clock()
            self._purge(now)
            changed = self._run(CLAIM, (key, now + ttl_s, now)).rowcount
        return changed == 1

    def put(self, key: str, value: dict[str, Any], ttl_s: float) -> None:
        """Store a JSON object under `key` for `ttl_s` seconds."""
        check_ttl(ttl_s)
        text = json.dumps(value)
        with self._lock:
            now = self._clock()
            self._purge(now)
            self._run(PUT, (key, text, now + ttl_s))

    def get(self, key: str) -> dict[str, Any] | None:
        """The object under `key`, or None when absent or expired."""
        with self._lock:
            row = self._run(
                "SELECT value FROM entries WHERE key = ? AND expires_at > ?", (key, self._clock())
            ).fetchone()
        if row is None:
            return None
        value: dict[str, Any] = json.loads(row[0])
        return value

    def close(self) -> None:
        """Close the connection (the file and its rows stay)."""
        with self._lock:
            self._db.close()

    def _purge(self, now: float) -> None:
        if now < self._next_purge:
            return
        self._next_purge = now + PURGE_EVERY_S
        self._run("DELETE FROM claims WHERE expires_at <= ?", (now,))
        self._run("DELETE FROM entries WHERE expires_at <= ?", (now,))

    def _run(self, sql: str, params: tuple[Any, ...]) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, params)
        except sqlite3.Error as exc:  # a locked file past the busy timeout, a full disk, closed
            raise StoreUnavailable(f"the state store failed: {exc}") from exc
