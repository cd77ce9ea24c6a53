"""The pipeline's seams: the stage hook the benchmark reads, warming up before serving, and how a
screening's verdict shapes the reply."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ragbot.config import Settings
from ragbot.conversation import Turn
from ragbot.embeddings import HashingEmbedder
from ragbot.errors import BuildError
from ragbot.guardrails import CRISIS_MESSAGE
from ragbot.index import build_index, load_index
from ragbot.pipeline import STAGES, Pipeline, ensure_index
from ragbot.router import Route, Router


@pytest.fixture
def hashing_pipeline(
    settings: Callable[..., Settings], hashing_embedder: HashingEmbedder
) -> Iterator[Pipeline]:
    """A pipeline over a fresh build with the fake embedder; its encoder thread stopped after."""
    s = settings()
    build_index(s, hashing_embedder)
    pipeline = Pipeline.from_index(s, hashing_embedder, load_index(s, hashing_embedder))
    yield pipeline
    pipeline.encoder.close()


def test_each_stage_of_ask_is_reported_to_the_hook_in_order(hashing_pipeline: Pipeline) -> None:
    pipeline = hashing_pipeline
    seen: list[tuple[str, float]] = []
    pipeline.on_stage = lambda stage, seconds: seen.append((stage, seconds))
    pipeline.ask("metabolites fourteen days")
    assert [stage for stage, _ in seen] == list(STAGES)
    assert all(seconds >= 0 for _, seconds in seen)
    seen.clear()
    pipeline.on_stage = None
    pipeline.ask("metabolites fourteen days")
    assert seen == []


def test_a_text_that_recurs_in_a_message_is_encoded_once_and_every_vector_is_its_own(
    hashing_pipeline: Pipeline, hashing_embedder: HashingEmbedder
) -> None:
    pipeline = hashing_pipeline
    encoded: list[str] = []
    embed = pipeline.encoder.embed
    pipeline.encoder.embed = lambda texts: encoded.extend(texts) or embed(texts)  # type: ignore[method-assign]
    texts = ["how long does it last", "why", "how long does it last", "why", "and after"]
    vectors = pipeline.embed_queries(texts)
    assert encoded == ["how long does it last", "why", "and after"]
    assert vectors.shape[0] == len(texts)
    for text, vector in zip(texts, vectors, strict=True):
        assert (vector == hashing_embedder.embed([text])[0]).all(), text


def test_a_failed_rebuild_of_a_changed_corpus_serves_the_previous_index_marked_stale(
    tmp_path: Path,
    shipped_corpus_dir: Path,
    hashing_embedder: HashingEmbedder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(shipped_corpus_dir, corpus)
    s = Settings(corpus_dir=corpus, index_dir=tmp_path / "index")
    build_index(s, hashing_embedder)
    article = corpus / "what-are-the-effects-of-ketamine-on-the-brain.md"
    article.write_text(article.read_text(encoding="utf-8") + "\nA new closing line.\n", "utf-8")

    def fail(*_: object, **__: object) -> None:
        raise BuildError("cannot write the index folder (Read-only file system)")

    monkeypatch.setattr("ragbot.pipeline.build_index", fail)
    index = ensure_index(s, hashing_embedder)
    assert index is not None and index.stale is not None and "rebuild failed" in index.stale
    assert index.summary()["stale"] is True


def test_a_failed_build_with_no_previous_index_is_an_error(
    settings: Callable[..., Settings],
    hashing_embedder: HashingEmbedder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fail(*_: object, **__: object) -> None:
        raise BuildError("cannot write the index folder (Read-only file system)")

    monkeypatch.setattr("ragbot.pipeline.build_index", fail)
    with pytest.raises(BuildError):
        ensure_index(settings(), hashing_embedder)


BLAS_PROBE = """
import json, sys
from threadpoolctl import threadpool_info
from ragbot.config import Settings
from ragbot.conversation import Turn
from ragbot.embeddings import HashingEmbedder
from ragbot.pipeline import Pipeline
before = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
settings = Settings(index_dir=sys.argv[1], corpus_dir=sys.argv[2], blas_threads=int(sys.argv[3]))
Pipeline.load(settings, embedder=HashingEmbedder())
after = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
print(json.dumps({"before": before, "after": after}))
"""


@pytest.mark.parametrize("threads", [1, 3])
def test_loading_a_pipeline_holds_numpys_blas_to_the_set_threads(
    settings: Callable[..., Settings], hashing_embedder: HashingEmbedder, threads: int
) -> None:
    """OpenBLAS's own pool spun against the request threads (README: Benchmarks)."""
    s = settings()
    build_index(s, hashing_embedder)
    out = subprocess.run(
        [sys.executable, "-c", BLAS_PROBE, str(s.index_dir), str(s.corpus_dir), str(threads)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["before"], "numpy loads a BLAS"
    # numpy's, and any loaded with the index (faiss brings its own).
    assert len(seen["after"]) >= len(seen["before"]) and set(seen["after"]) == {threads}


@pytest.mark.parametrize(
    ("distress", "status", "citations"),
    [(False, "answered", True), (True, "crisis", False)],
    ids=["router-reads-no-distress", "router-reads-distress"],
)
def test_a_crisis_pattern_always_puts_the_resources_first_and_the_router_picks_the_reply(
    hashing_pipeline: Pipeline,
    monkeypatch: pytest.MonkeyPatch,
    distress: bool,
    status: str,
    citations: bool,
) -> None:
    # A past event told as past ("two years ago my brother overdosed") is answered after the
    # resources; the crisis reply needs the router to read at least distress in it.
    route = Route({"crisis": 0.01, "advice": 0.0, "article": 0.99, "other": 0.0}, False, distress)
    monkeypatch.setattr(Router, "route", lambda *_a, **_k: route)
    answer = hashing_pipeline.ask("two years ago my brother overdosed. metabolites fourteen days?")
    assert (answer.status, bool(answer.citations)) == (status, citations)
    assert answer.resources == CRISIS_MESSAGE


def test_after_a_crisis_pattern_the_resources_stay_on_the_conversations_later_replies(
    hashing_pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    calm = Route({"crisis": 0.01, "advice": 0.0, "article": 0.99, "other": 0.0}, False, False)
    monkeypatch.setattr(Router, "route", lambda *_a, **_k: calm)
    earlier = Turn("two years ago my brother overdosed. metabolites fourteen days?")
    answer = hashing_pipeline.ask("and how long do the metabolites last?", [earlier])
    assert answer.resources == CRISIS_MESSAGE
    assert hashing_pipeline.ask("how long do the metabolites last?").resources is None
