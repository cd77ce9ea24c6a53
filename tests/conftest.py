"""Shared fixtures: paths, a Settings factory, the fast fake embedder and the real model.

Fixtures that need the real model (`real_embedder`, `real_index_dir`, `real_settings`,
`real_index`) are session-scoped, so the model loads once and the shipped corpus is embedded
once per run; a test that uses any of them is marked `model` automatically, so
`pytest -m "not model"` stays fast. Treat the real index as read-only: copy it to change it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ragbot import learn
from ragbot.config import Settings
from ragbot.config import shipped_corpus_dir as default_corpus_dir
from ragbot.embeddings import Embedder, HashingEmbedder
from ragbot.router import Example, load_examples

REAL_MODEL_FIXTURES = frozenset(
    {"real_embedder", "real_index_dir", "real_settings", "real_index", "real_pipeline"}
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that loads the real model `model`, so `-m "not model"` deselects it."""
    for item in items:
        if REAL_MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.model)


@pytest.fixture(scope="session", autouse=True)
def private_build_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Builds in tests fill a cache of their own (counting what a build embeds stays exact),
    except the real index's build: see `real_index_dir`."""
    folder = tmp_path_factory.mktemp("build-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAGBOT_CACHE_DIR", str(folder))
        yield folder


@pytest.fixture(scope="session")
def few_examples() -> list[Example]:
    """Every tenth labelled question: every intent and batch, a tenth of the training time."""
    return load_examples()[::10]


@pytest.fixture(scope="session", autouse=True)
def _fake_builds_learn_from_few_examples(few_examples: list[Example]) -> Iterator[None]:
    """A build with the fake embedder trains on every tenth labelled question.

    What such a build stores, reuses and answers does not depend on how many questions its
    router learns from (it learns nothing real from hashed words), and training on all of them
    was a minute and a half of every CI run. Builds with the real model train on all of them."""
    learn_all = learn.learn

    def learn_some(index: Any, embedder: Embedder, *args: Any, **kwargs: Any) -> Any:
        if isinstance(embedder, HashingEmbedder) and kwargs.get("examples") is None:
            kwargs["examples"] = few_examples
        return learn_all(index, embedder, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(learn, "learn", learn_some)
        yield


# ---------------------------------------------------------------------------------------------
# Paths


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The project root of this clone (wherever it was cloned)."""
    return Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def shipped_corpus_dir() -> Path:
    """The corpus folder that ships inside the package (the default `corpus_dir`)."""
    return default_corpus_dir()


@pytest.fixture(scope="session")
def corpus_source_dir(repo_root: Path) -> Path:
    """`../shared/corpus-source`: the article as published, page furniture included."""
    folder = repo_root.parent / "shared" / "corpus-source"
    if not folder.is_dir():
        pytest.fail(f"{folder} is missing: every checkout of ragbot has ../shared next to it")
    return folder


# ---------------------------------------------------------------------------------------------
# Settings and embedders

# The suites send hundreds of questions from one client; the rate limit has tests of its own.
NO_RATE_LIMIT = ""


@pytest.fixture
def settings(tmp_path: Path, shipped_corpus_dir: Path) -> Callable[..., Settings]:
    """A factory: `settings(**overrides)` -> Settings over the shipped corpus, index in tmp_path.

    Every call with the same overrides points at the same index folder, so a test can build with
    one Settings and load with another (say, a different `chunk_tokens`).
    """

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "corpus_dir": shipped_corpus_dir,
            "index_dir": tmp_path / "index",
            "rate_limit": NO_RATE_LIMIT,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def hashing_embedder() -> HashingEmbedder:
    """The deterministic bag-of-words fake: no model, milliseconds per build."""
    return HashingEmbedder()


@pytest.fixture(scope="session")
def real_embedder() -> Embedder:
    """all-MiniLM-L6-v2 from the installed package, loaded once per test session."""
    from ragbot.pipeline import load_embedder

    return load_embedder(Settings())


@pytest.fixture(scope="session")
def real_index_dir(
    tmp_path_factory: pytest.TempPathFactory, shipped_corpus_dir: Path, real_embedder: Embedder
) -> Path:
    """An index folder holding the shipped corpus built with the real model (read-only).

    Built with the user's build cache, as `ragbot build-index` would: the wheel check, run next
    by `make test`, then embeds none of the examples again."""
    from ragbot.config import user_cache_dir
    from ragbot.index import build_index

    index_dir = tmp_path_factory.mktemp("real-index") / "index"
    cfg = Settings(corpus_dir=shipped_corpus_dir, index_dir=index_dir, cache_dir=user_cache_dir())
    build_index(cfg, real_embedder)
    return index_dir


@pytest.fixture(scope="session")
def real_settings(shipped_corpus_dir: Path, real_index_dir: Path) -> Settings:
    """Settings that point at the shipped corpus and the real-model index."""
    return Settings(
        corpus_dir=shipped_corpus_dir, index_dir=real_index_dir, rate_limit=NO_RATE_LIMIT
    )


@pytest.fixture(scope="session")
def real_index(real_settings: Settings, real_embedder: Embedder) -> Any:
    """The real-model index of the shipped corpus, loaded and checked (ragbot.index.Index)."""
    from ragbot.index import load_index

    return load_index(real_settings, real_embedder)


@pytest.fixture(scope="session")
def real_pipeline(real_settings: Settings, real_embedder: Embedder) -> Any:
    """The pipeline over the real index, loaded once for the API, guardrail and surface tests."""
    from ragbot.pipeline import Pipeline

    return Pipeline.load(real_settings, embedder=real_embedder)


# ---------------------------------------------------------------------------------------------
# A real Redis


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One redis-server on 127.0.0.1 for the session (tests/redis_server.py); stopped after."""
    from redis_server import RedisServer

    if RedisServer.binary() is None:
        pytest.skip("redis-server is not installed: `make servers` installs Debian's package")
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: Any) -> str:
    """The URL of the session's redis-server, emptied for this test."""
    redis_server.flush()
    url: str = redis_server.url
    return url


# ---------------------------------------------------------------------------------------------
# A real PostgreSQL


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Any]:
    """One throwaway PostgreSQL cluster on 127.0.0.1 for the session (tests/postgres_server.py)."""
    from postgres_server import PostgresServer, missing_reason

    reason = missing_reason()
    if reason is not None:
        pytest.skip(reason)
    server = PostgresServer()
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    yield server
    server.stop()
