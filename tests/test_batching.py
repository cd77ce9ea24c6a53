"""Batched model calls: concurrent questions share one call; alone, a question never waits."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from ragbot.batching import BatchingEmbedder
from ragbot.embeddings import HashingEmbedder, Vectors


class SlowRecorder(HashingEmbedder):
    """The fake embedder, taking `seconds` per call and recording each call's texts."""

    def __init__(self, seconds: float = 0.0) -> None:
        super().__init__()
        self.seconds = seconds
        self.calls: list[list[str]] = []

    def embed(self, texts: list[str]) -> Vectors:
        self.calls.append(list(texts))
        time.sleep(self.seconds)
        return super().embed(texts)


def test_a_lone_question_is_encoded_at_once_and_alone() -> None:
    inner = SlowRecorder()
    encoder = BatchingEmbedder(inner, max_texts=16, wait_s=1.0)
    started = time.perf_counter()
    vectors = encoder.embed(["how long does it last", "and why"])
    assert time.perf_counter() - started < 0.5  # the 1 s wait applies only when others queue
    np.testing.assert_allclose(vectors, inner.embed(["how long does it last", "and why"]))
    assert inner.calls[0] == ["how long does it last", "and why"]
    encoder.close()


def test_concurrent_questions_share_model_calls_and_each_gets_its_own_vectors() -> None:
    inner = SlowRecorder(seconds=0.05)
    encoder = BatchingEmbedder(inner, max_texts=32, wait_s=0.02)
    questions = [f"question number {i}" for i in range(12)]
    results: dict[str, Vectors] = {}

    def ask(q: str) -> None:
        results[q] = encoder.embed([q])

    threads = [threading.Thread(target=ask, args=(q,)) for q in questions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(inner.calls) < len(questions)
    assert encoder.stats.largest > 1 and encoder.stats.texts == len(questions)
    reference = HashingEmbedder()
    for q in questions:
        np.testing.assert_allclose(results[q], reference.embed([q]))
    encoder.close()


def test_a_batch_never_exceeds_its_maximum_unless_one_question_alone_does() -> None:
    inner = SlowRecorder(seconds=0.02)
    encoder = BatchingEmbedder(inner, max_texts=4, wait_s=0.05)
    threads = [threading.Thread(target=encoder.embed, args=([f"q{i}", "x"],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(len(call) <= 4 for call in inner.calls)
    encoder.embed([f"t{i}" for i in range(6)])  # one question of six texts still goes through
    assert len(inner.calls[-1]) == 6
    encoder.close()


def test_a_failed_model_call_fails_every_question_in_it_and_the_next_call_works() -> None:
    class Flaky(HashingEmbedder):
        fail = True

        def embed(self, texts: list[str]) -> Vectors:
            if self.fail:
                self.fail = False
                raise RuntimeError("model fell over")
            return super().embed(texts)

    encoder = BatchingEmbedder(Flaky(), max_texts=8, wait_s=0.0)
    with pytest.raises(RuntimeError, match="fell over"):
        encoder.embed(["first"])
    assert encoder.embed(["second"]).shape == (1, 256)
    encoder.close()
