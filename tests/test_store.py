"""The state store: atomic claims and small TTL'd values, in SQLite and in a real redis-server."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from live_server import free_port

from ragbot.config import Settings
from ragbot.errors import StoreUnavailable
from ragbot.store import Store, open_store
from ragbot.store.redis import KEY_PREFIX, RedisStore, _without_password
from ragbot.store.sqlite import PURGE_EVERY_S, SqliteStore

EXPIRY_WAIT_S = 10.0  # upper bound for a short Redis TTL to pass on a loaded machine


def wait_until(condition: Callable[[], bool], timeout: float = EXPIRY_WAIT_S) -> bool:
    """Poll `condition` until it holds or `timeout` passes; its last value."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture(params=["sqlite", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The store's location: a SQLite file, or the URL of a real, emptied redis-server."""
    if request.param == "sqlite":
        return str(tmp_path / "state.sqlite3")
    url: str = request.getfixturevalue("redis_url")
    return url


def connect(backend: str) -> Store:
    """A new store (a new connection) on `backend`, as another process or replica would open."""
    if backend.startswith("redis://"):
        return RedisStore(backend)
    return SqliteStore(Path(backend))


@pytest.fixture
def store(backend: str) -> Iterator[Store]:
    opened = connect(backend)
    yield opened
    opened.close()


def race(attempt: Callable[[int], bool], threads: int = 32) -> list[bool]:
    """Run attempt(i) in `threads` threads released at the same moment; the results."""
    start = threading.Barrier(threads)
    results: list[bool] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        start.wait()
        won = attempt(i)
        with lock:
            results.append(won)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return results


# ---------------------------------------------------------------------------------------------
# Both stores


def test_a_key_is_claimed_once_and_other_keys_are_free(store: Store) -> None:
    assert store.claim("Ev1", 600) is True
    assert store.claim("Ev1", 600) is False
    assert store.claim("Ev2", 600) is True


def test_exactly_one_of_many_racing_threads_claims_a_key(store: Store) -> None:
    results = race(lambda _: store.claim("Ev-race", 600))
    assert results.count(True) == 1 and len(results) == 32


def test_exactly_one_of_many_racing_connections_claims_a_key(backend: str) -> None:
    stores = [connect(backend) for _ in range(8)]
    try:
        results = race(lambda i: stores[i % len(stores)].claim("Ev-race", 600))
    finally:
        for s in stores:
            s.close()
    assert results.count(True) == 1


CLAIMER = """
import sys
from pathlib import Path
from ragbot.store.redis import RedisStore
from ragbot.store.sqlite import SqliteStore
where, count = sys.argv[1], int(sys.argv[2])
store = RedisStore(where) if where.startswith("redis://") else SqliteStore(Path(where))
sys.stdin.readline()  # every process starts claiming at the same moment
print(" ".join(str(i) for i in range(count) if store.claim(f"key-{i}", 600)))
store.close()
"""


def test_processes_sharing_a_store_claim_each_key_exactly_once(backend: str) -> None:
    count, processes = 200, 3
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, backend, str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    for p in procs:  # all started (imports done or not), then released together
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    won = [int(i) for out in outputs for i in out.split()]
    assert sorted(won) == list(range(count))  # every key once: none twice, none lost


def test_a_value_round_trips_and_a_later_put_replaces_it(store: Store) -> None:
    turns = {"turns": [{"q": "What is ketamine?", "a": "An anaesthetic [1]."}], "n": 1}
    assert store.get("thread:C1:1.1") is None
    store.put("thread:C1:1.1", turns, 600)
    assert store.get("thread:C1:1.1") == turns
    store.put("thread:C1:1.1", {"n": 2}, 600)
    assert store.get("thread:C1:1.1") == {"n": 2}


def test_claims_and_values_live_apart(store: Store) -> None:
    store.put("k", {"v": 1}, 600)
    assert store.claim("k", 600) is True  # a value is not a claim
    assert store.get("k") == {"v": 1}  # and a claim does not hide the value


def test_a_new_connection_sees_earlier_claims_and_values(backend: str) -> None:
    first = connect(backend)
    assert first.claim("Ev-restart", 600)
    first.put("thread", {"n": 1}, 600)
    first.close()
    second = connect(backend)  # a restart, or another replica
    try:
        assert second.claim("Ev-restart", 600) is False
        assert second.get("thread") == {"n": 1}
    finally:
        second.close()


def test_claims_and_values_expire_after_their_ttl(store: Store) -> None:
    assert store.claim("short", 0.2)
    store.put("short", {"v": 1}, 0.2)
    assert wait_until(lambda: store.get("short") is None)
    assert wait_until(lambda: store.claim("short", 600))
    assert store.claim("short", 600) is False


@pytest.mark.parametrize("ttl", [0, -1.0])
def test_a_ttl_must_be_positive(store: Store, ttl: float) -> None:
    with pytest.raises(ValueError, match="ttl_s"):
        store.claim("k", ttl)
    with pytest.raises(ValueError, match="ttl_s"):
        store.put("k", {}, ttl)


# ---------------------------------------------------------------------------------------------
# SQLite


def test_sqlite_expiry_follows_the_clock_exactly(tmp_path: Path) -> None:
    now = [1000.0]
    store = SqliteStore(tmp_path / "state.sqlite3", clock=lambda: now[0])
    assert store.claim("Ev1", 600) is True
    store.put("v", {"n": 1}, 600)
    now[0] += 599.9
    assert store.claim("Ev1", 600) is False
    assert store.get("v") == {"n": 1}
    now[0] += 0.1
    assert store.get("v") is None
    assert store.claim("Ev1", 600) is True
    store.close()


def test_sqlite_deletes_expired_rows(tmp_path: Path) -> None:
    now = [1000.0]
    path = tmp_path / "state.sqlite3"
    store = SqliteStore(path, clock=lambda: now[0])
    for i in range(50):
        store.claim(f"old-{i}", 10)
        store.put(f"old-{i}", {"i": i}, 10)
    now[0] += PURGE_EVERY_S + 11
    store.claim("new", 600)
    store.close()
    import sqlite3

    with sqlite3.connect(path) as db:
        assert db.execute("SELECT key FROM claims").fetchall() == [("new",)]
        assert db.execute("SELECT count(*) FROM entries").fetchone() == (0,)


def test_sqlite_uses_write_ahead_logging(tmp_path: Path) -> None:
    SqliteStore(tmp_path / "state.sqlite3").close()
    import sqlite3

    with sqlite3.connect(tmp_path / "state.sqlite3") as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_an_unusable_state_path_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(StoreUnavailable, match="check RAGBOT_STATE_PATH") as caught:
        SqliteStore(tmp_path / "a-file" / "state.sqlite3")
    assert caught.value.status_code == 503 and "\n" not in caught.value.message


def test_a_closed_store_raises_store_unavailable(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.sqlite3")
    store.close()
    with pytest.raises(StoreUnavailable):
        store.claim("k", 600)


# ---------------------------------------------------------------------------------------------
# Redis


def test_redis_keys_are_namespaced(redis_url: str) -> None:
    store = RedisStore(redis_url)
    store.claim("Ev1", 600)
    store.put("thread", {"n": 1}, 600)
    store.close()
    client = redis.Redis.from_url(redis_url)
    try:
        keys = sorted(k.decode() for k in client.keys("*"))
        ttls = [client.pttl(k) for k in keys]
    finally:
        client.close()
    assert keys == [f"{KEY_PREFIX}claim:Ev1", f"{KEY_PREFIX}kv:thread"]
    assert all(0 < t <= 600_000 for t in ttls)  # every key expires


def test_a_redis_that_is_down_raises_store_unavailable() -> None:
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    for operation in (
        lambda: store.claim("k", 600),
        lambda: store.put("k", {}, 600),
        lambda: store.get("k"),
        store.ping,
    ):
        with pytest.raises(StoreUnavailable, match="state store failed"):
            operation()
    store.close()


def test_a_url_that_is_not_redis_is_one_clear_error() -> None:
    with pytest.raises(StoreUnavailable, match="RAGBOT_REDIS_URL is not a Redis URL"):
        RedisStore("http://127.0.0.1:6379")


def test_a_logged_redis_url_hides_its_password() -> None:
    assert _without_password("redis://user:s3cret@h:6379/0") == "redis://user:***@h:6379/0"
    assert _without_password("redis://:s3cret@h:6379/0") == "redis://:***@h:6379/0"
    assert _without_password("redis://h:6379/0") == "redis://h:6379/0"


# ---------------------------------------------------------------------------------------------
# Choosing and placing the store


def test_the_default_state_file_lives_in_the_index_folder_beside_the_builds(
    tmp_path: Path,
) -> None:
    settings = Settings(index_dir=tmp_path / "index")
    assert settings.resolved_state_path == tmp_path / "index" / "state.sqlite3"
    moved = Settings(index_dir=tmp_path / "index", state_path=tmp_path / "data" / "s.db")
    assert moved.resolved_state_path == tmp_path / "data" / "s.db"


def test_open_store_picks_redis_when_its_url_is_set_else_the_sqlite_file(
    tmp_path: Path, redis_url: str
) -> None:
    sqlite_store: Any = open_store(Settings(index_dir=tmp_path / "index"))
    assert isinstance(sqlite_store, SqliteStore)
    assert (tmp_path / "index" / "state.sqlite3").is_file()
    sqlite_store.close()
    redis_store: Any = open_store(Settings(index_dir=tmp_path / "index", redis_url=redis_url))
    assert isinstance(redis_store, RedisStore)
    redis_store.close()


def test_open_store_with_a_redis_that_is_down_still_returns_a_store(tmp_path: Path) -> None:
    # A replica may start before Redis does: the client reconnects once it answers.
    store: Any = open_store(
        Settings(index_dir=tmp_path, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    )
    assert isinstance(store, RedisStore)
    store.close()
