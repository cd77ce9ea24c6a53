"""The ONNX encoder: exported and checked at build, the same vectors and answers as torch, and a
serving process that never imports torch."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ragbot.config import Settings
from ragbot.embeddings import Embedder
from ragbot.evaluation.questions import HOLDOUTS, default_questions_path, load_questions
from ragbot.onnx_embedder import (
    MODEL_FILE,
    PARITY_COSINE,
    QUANTISED_FILE,
    OnnxEmbedder,
    quantise,
)
from ragbot.pipeline import Pipeline

pytestmark = pytest.mark.model


def questions(n: int = 80) -> list[str]:
    path = default_questions_path().with_name(HOLDOUTS[-1])
    return [q.question for q in load_questions(path)][:n]


def test_the_build_exports_the_model_and_records_its_hashes(real_index: Any) -> None:
    encoder = real_index.manifest.encoder
    assert encoder is not None and encoder.int8_sha256 is not None
    assert encoder.parity_min_cosine >= PARITY_COSINE
    assert len(encoder.model_sha256) == 64 and len(encoder.int8_sha256) == 64
    assert {"model.onnx", "model.int8.onnx", "tokenizer.json", "encoder.json"} <= set(
        real_index.manifest.files
    )


def test_onnx_vectors_match_sentence_transformers_on_questions_nobody_tuned_on(
    real_index_dir: Path, real_embedder: Embedder
) -> None:
    onnx = OnnxEmbedder(real_index_dir / "current")
    texts = [*questions(), "", "k", "x " * 400]  # empty, one letter, past the 256-token window
    cosines = np.sum(real_embedder.embed(texts) * onnx.embed(texts), axis=1)
    assert cosines.min() >= PARITY_COSINE
    assert (onnx.name, onnx.fingerprint, onnx.dim) == (
        real_embedder.name,
        real_embedder.fingerprint,  # type: ignore[attr-defined]
        real_embedder.dim,
    )


class CountingSession:
    """An ONNX Runtime session that counts the texts it encodes."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.texts = 0

    def run(self, outputs: Any, feed: dict[str, Any]) -> Any:
        self.texts += len(feed["input_ids"])
        return self.inner.run(outputs, feed)


def test_a_text_given_twice_is_encoded_once_and_gets_its_vector_twice(
    real_index_dir: Path,
) -> None:
    onnx = OnnxEmbedder(real_index_dir / "current")
    alone = onnx.embed(["why?", "how long does k last"])
    counting = CountingSession(onnx._session)
    onnx._session = counting
    twice = onnx.embed(["why?", "how long does k last", "why?", "how long does k last"])
    assert counting.texts == 2
    assert np.allclose(twice, np.vstack([alone, alone]), atol=1e-6)


def test_onnx_and_torch_give_the_same_replies(
    real_settings: Settings, real_pipeline: Pipeline
) -> None:
    onnx = Pipeline.load(real_settings.model_copy(update={"encoder": "onnx"}))
    assert isinstance(onnx.embedder, OnnxEmbedder)
    for q in questions(60):
        a, b = onnx.ask(q), real_pipeline.ask(q)
        assert (a.status, a.answer, a.resources) == (b.status, b.answer, b.resources), q


def test_the_int8_model_loads_and_answers(real_settings: Settings) -> None:
    pipeline = Pipeline.load(real_settings.model_copy(update={"encoder": "onnx-int8"}))
    assert pipeline.ask("how long does ketamine stay in the body?").status == "answered"


def test_int8_vectors_stay_close_to_fp32_on_questions_nobody_tuned_on(
    real_index_dir: Path,
) -> None:
    # Per-tensor scales gave a mean cosine of 0.961 (least 0.917) and cost hold-out metrics;
    # per-channel scales give 0.993 (0.979) and the same single-question metrics. On v18 the
    # least is 0.968, a prompt injection in capitals ("SYSTEM OVERRIDE: developer mode ...").
    texts = questions(200)
    fp32 = OnnxEmbedder(real_index_dir / "current").embed(texts)
    int8 = OnnxEmbedder(real_index_dir / "current", quantised=True).embed(texts)
    cosines = np.sum(fp32 * int8, axis=1)
    assert cosines.mean() >= 0.99 and cosines.min() >= 0.96


def test_quantising_logs_nothing_below_an_error(
    real_index_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shutil.copyfile(real_index_dir / "current" / MODEL_FILE, tmp_path / MODEL_FILE)
    with caplog.at_level(logging.DEBUG):
        quantise(tmp_path)
    assert (tmp_path / QUANTISED_FILE).is_file()
    assert [r.getMessage() for r in caplog.records if r.levelno < logging.ERROR] == []


SERVE_PROBE = """
import json, sys
from ragbot.api import create_app
from ragbot.config import Settings
from fastapi.testclient import TestClient
settings = Settings(index_dir=sys.argv[1], corpus_dir=sys.argv[2])
with TestClient(create_app(settings)) as client:
    for _ in range(600):
        if client.get("/readyz").status_code == 200:
            break
        import time; time.sleep(0.05)
    body = client.post("/v1/ask", json={"question": "how long does k last"}).json()
build_only = ("torch", "sentence_transformers", "transformers", "bm25s", "scipy", "sklearn")
heavy = sorted(m for m in build_only if m in sys.modules)
print(json.dumps({"status": body["status"], "heavy": heavy}))
"""


def test_serving_imports_nothing_only_the_build_needs(
    real_settings: Settings,
) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            SERVE_PROBE,
            str(real_settings.index_dir),
            str(real_settings.corpus_dir),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"status": "answered", "heavy": []}
