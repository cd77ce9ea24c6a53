"""The pipeline's seams: the stage hook the benchmark reads, and warming up before serving."""

from __future__ import annotations

from collections.abc import Callable

from ragbot.config import Settings
from ragbot.embeddings import HashingEmbedder
from ragbot.index import build_index, load_index
from ragbot.pipeline import STAGES, Pipeline


def test_each_stage_of_ask_is_reported_to_the_hook_in_order(
    settings: Callable[..., Settings], hashing_embedder: HashingEmbedder
) -> None:
    s = settings()
    build_index(s, hashing_embedder)
    pipeline = Pipeline.from_index(s, hashing_embedder, load_index(s, hashing_embedder))
    seen: list[tuple[str, float]] = []
    pipeline.on_stage = lambda stage, seconds: seen.append((stage, seconds))
    pipeline.ask("metabolites fourteen days")
    assert [stage for stage, _ in seen] == list(STAGES)
    assert all(seconds >= 0 for _, seconds in seen)
    seen.clear()
    pipeline.on_stage = None
    pipeline.ask("metabolites fourteen days")
    assert seen == []
    pipeline.encoder.close()
