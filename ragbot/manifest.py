"""The manifest of an index build: what was built, with what, from what.

`Manifest.read(folder)` and `Manifest.write(folder)` are the only reader and writer of a build's
`manifest.json`; the rest of ragbot reads its typed fields. The JSON keys are those of index
format 2, in the same order, so builds made before this module load unchanged. Fields added to
format 2 after its first builds (`encoder`, `model.stat`, `encoder.export_version`) may be
absent and read as None.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from ragbot.errors import IndexCorrupt, IndexMismatch

# 2: router.npz, ranker.npz and examples.npz in every build; 3: turns.npz; 4: keywords.npz;
# 5: followups.npz
FORMAT_VERSION = 5
MANIFEST_FILE = "manifest.json"
_T = TypeVar("_T")


@dataclass(frozen=True)
class ModelInfo:
    """The embedding model the vectors were made with."""

    stat: (
        Mapping[str, tuple[int, int]] | None
    )  # weight file -> (size, mtime_ns); None: not a folder
    name: str
    fingerprint: str
    dim: int
    max_tokens: int | None


@dataclass(frozen=True)
class IndexParams:
    """The FAISS index type and its build parameters (None for a flat index)."""

    type: str
    hnsw_m: int | None
    hnsw_ef_construction: int | None


@dataclass(frozen=True)
class ChunkerInfo:
    """The chunker settings; a difference at load means rebuild."""

    budget_tokens: int
    overlap_sentences: int
    encoding: str
    splitter_version: int


@dataclass(frozen=True)
class DocumentInfo:
    """One article of the corpus as it was when built."""

    source: str  # file name in the corpus folder
    content_hash: str
    title: str
    url: str | None


@dataclass(frozen=True)
class Counts:
    """How many records the build holds."""

    documents: int
    sections: int
    sentences: int
    chunks: int
    tokens: int


@dataclass(frozen=True)
class RouterInfo:
    """The learned router: its training data, hold-out scores, parameters and thresholds."""

    examples: int
    data_sha256: str
    batches: tuple[str, ...]
    held_out_accuracy: float
    held_out_crisis_recall: float
    held_out_crisis_false_alarms: float
    C: float  # inverse regularisation, scikit-learn's name
    ngram_range: tuple[int, int]
    hash_features: int
    embedding_weight: float
    word_weight: float
    word_ngrams: tuple[int, int]
    seed: int
    crisis_threshold: float
    distress_threshold: float
    clause_threshold: float


@dataclass(frozen=True)
class RankerInfo:
    """The learned sentence ranker: its signals and their weights."""

    examples: int
    signals: tuple[str, ...]
    weights: Mapping[str, float]
    C: float  # inverse regularisation, scikit-learn's name
    neighbours: int
    power: int


@dataclass(frozen=True)
class TurnsInfo:
    """The learned turn classifier (new, follow-up, more): its data and hold-out scores."""

    examples: int
    by_kind: Mapping[str, int]
    held_out_accuracy: float
    held_out_followup_more_accuracy: float
    held_out_more_recall: float
    C: float  # inverse regularisation, scikit-learn's name
    ngram_range: tuple[int, int]
    hash_features: int
    embedding_weight: float
    word_weight: float
    word_ngrams: tuple[int, int]
    seed: int


@dataclass(frozen=True)
class Learned:
    """What the build trained."""

    router: RouterInfo
    ranker: RankerInfo
    turns: TurnsInfo


@dataclass(frozen=True)
class EncoderInfo:
    """The ONNX export of the model, served instead of torch."""

    name: str
    fingerprint: str
    dim: int
    max_tokens: int
    model_sha256: str
    int8_sha256: str | None
    parity_min_cosine: float
    opset: int
    export_version: int | None  # None: exported before exports were versioned


@dataclass(frozen=True)
class Manifest:
    """Everything recorded about one build; fields in the order of the JSON keys."""

    format: int
    build_id: str
    built_at: str  # ISO 8601, with its time zone
    build_seconds: float
    model: ModelInfo
    metric: str
    normalized: bool
    index: IndexParams
    chunker: ChunkerInfo
    documents: Mapping[str, DocumentInfo]  # doc_id ->
    counts: Counts
    versions: Mapping[str, str]  # package -> version
    files: Mapping[str, str]  # file name in the build folder -> SHA-256
    learned: Learned | None  # None only in the draft a build hands to the training step
    encoder: EncoderInfo | None  # None: the embedder was not a sentence-transformers model

    def to_json(self) -> dict[str, Any]:
        """The manifest as JSON-ready data (the keys of manifest.json, in its order)."""
        data: dict[str, Any] = _plain(asdict(self))
        return data

    @classmethod
    def from_json(cls, data: object, *, folder: Path | None = None) -> Manifest:
        """Parse manifest data (read from `folder`, for messages); IndexMismatch for another
        format, IndexCorrupt naming the field that is missing or of the wrong type."""
        where = "the manifest" if folder is None else str(folder / MANIFEST_FILE)
        if not isinstance(data, dict):
            raise IndexCorrupt(
                f"{where} is malformed (it should be an object, got {_kind(data)}): "
                "run `ragbot build-index`"
            )
        if data.get("format") != FORMAT_VERSION:
            raise IndexMismatch(
                f"{folder or 'the manifest'} has index format {data.get('format')!r}, this "
                f"ragbot reads {FORMAT_VERSION}: run `ragbot build-index`"
            )
        try:
            return _manifest(_Object(data, ""))
        except _Malformed as exc:
            raise IndexCorrupt(f"{where} is malformed ({exc}): run `ragbot build-index`") from None

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        """The manifest of the build in `folder`; IndexCorrupt when it is missing, unreadable or
        malformed, IndexMismatch when it is of another format."""
        path = folder / MANIFEST_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise IndexCorrupt(
                f"{folder} has no {MANIFEST_FILE}: run `ragbot build-index`"
            ) from exc
        except (OSError, ValueError) as exc:  # ValueError: not JSON, or not UTF-8
            raise IndexCorrupt(f"{path} is unreadable ({exc}): run `ragbot build-index`") from exc
        return cls.from_json(data, folder=folder)

    def write(self, folder: Path) -> None:
        """Write manifest.json into `folder` atomically: a reader sees the old file or the new
        one, and a failed write leaves no partial file behind."""
        tmp = folder / f".{MANIFEST_FILE}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            with tmp.open("w", encoding="utf-8") as fh:
                json.dump(self.to_json(), fh, ensure_ascii=False, indent=1)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, folder / MANIFEST_FILE)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise


# ---------------------------------------------------------------------------------------------
# Parsing: every field checked for presence and type, so a bad file is IndexCorrupt naming the
# field, never a KeyError or TypeError far from the file.


class _Malformed(ValueError):
    """What is wrong with the manifest data, naming the field by its JSON path."""


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


class _Object:
    """A JSON object and its path in the manifest, with typed getters."""

    def __init__(self, data: object, path: str) -> None:
        if not isinstance(data, dict):
            raise _Malformed(f"{path} should be an object, got {_kind(data)}")
        self.data: dict[str, Any] = data
        self.path = path

    def _where(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def _get(self, key: str) -> object:
        if key not in self.data:
            raise _Malformed(f"{self._where(key)} is missing")
        return self.data[key]

    def _wrong(self, key: str, want: str, value: object) -> _Malformed:
        return _Malformed(f"{self._where(key)} should be {want}, got {_kind(value)}")

    def obj(self, key: str) -> _Object:
        value = self._get(key)
        if not isinstance(value, dict):
            raise self._wrong(key, "an object", value)
        return _Object(value, self._where(key))

    def opt_obj(self, key: str) -> _Object | None:
        """None when the key is absent or null."""
        return None if self.data.get(key) is None else self.obj(key)

    def text(self, key: str) -> str:
        value = self._get(key)
        if not isinstance(value, str):
            raise self._wrong(key, "a string", value)
        return value

    def opt_text(self, key: str) -> str | None:
        return None if self._get(key) is None else self.text(key)

    def integer(self, key: str) -> int:
        value = self._get(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._wrong(key, "an integer", value)
        return value

    def opt_integer(self, key: str, *, absent: bool = False) -> int | None:
        """None when null (or, with `absent`, when the key is missing)."""
        if absent and key not in self.data:
            return None
        return None if self._get(key) is None else self.integer(key)

    def number(self, key: str) -> float:
        value = self._get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._wrong(key, "a number", value)
        return float(value)

    def flag(self, key: str) -> bool:
        value = self._get(key)
        if not isinstance(value, bool):
            raise self._wrong(key, "true or false", value)
        return value

    def texts(self, key: str) -> tuple[str, ...]:
        value = self._get(key)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._wrong(key, "a list of strings", value)
        return tuple(value)

    def integers(self, key: str, length: int) -> tuple[int, ...]:
        value = self._get(key)
        if (
            not isinstance(value, list)
            or len(value) != length
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        ):
            raise self._wrong(key, f"a list of {length} integers", value)
        return tuple(value)

    def names(self) -> list[str]:
        return list(self.data)


def _model(m: _Object) -> ModelInfo:
    stat_obj = m.opt_obj("stat")  # absent in builds made before weights were stat'ed
    stat: dict[str, tuple[int, int]] | None = None
    if stat_obj is not None:
        stat = {}
        for name in stat_obj.names():
            size, mtime = stat_obj.integers(name, 2)
            stat[name] = (size, mtime)
    return ModelInfo(
        stat=stat,
        name=m.text("name"),
        fingerprint=m.text("fingerprint"),
        dim=m.integer("dim"),
        max_tokens=m.opt_integer("max_tokens"),
    )


def _router(r: _Object) -> RouterInfo:
    return RouterInfo(
        examples=r.integer("examples"),
        data_sha256=r.text("data_sha256"),
        batches=r.texts("batches"),
        held_out_accuracy=r.number("held_out_accuracy"),
        held_out_crisis_recall=r.number("held_out_crisis_recall"),
        held_out_crisis_false_alarms=r.number("held_out_crisis_false_alarms"),
        C=r.number("C"),
        ngram_range=_pair(r.integers("ngram_range", 2)),
        hash_features=r.integer("hash_features"),
        embedding_weight=r.number("embedding_weight"),
        word_weight=r.number("word_weight"),
        word_ngrams=_pair(r.integers("word_ngrams", 2)),
        seed=r.integer("seed"),
        crisis_threshold=r.number("crisis_threshold"),
        distress_threshold=r.number("distress_threshold"),
        clause_threshold=r.number("clause_threshold"),
    )


def _ranker(r: _Object) -> RankerInfo:
    weights = r.obj("weights")
    return RankerInfo(
        examples=r.integer("examples"),
        signals=r.texts("signals"),
        weights={k: weights.number(k) for k in weights.names()},
        C=r.number("C"),
        neighbours=r.integer("neighbours"),
        power=r.integer("power"),
    )


def _encoder(e: _Object) -> EncoderInfo:
    return EncoderInfo(
        name=e.text("name"),
        fingerprint=e.text("fingerprint"),
        dim=e.integer("dim"),
        max_tokens=e.integer("max_tokens"),
        model_sha256=e.text("model_sha256"),
        int8_sha256=e.opt_text("int8_sha256"),
        parity_min_cosine=e.number("parity_min_cosine"),
        opset=e.integer("opset"),
        export_version=e.opt_integer("export_version", absent=True),
    )


def _pair(values: Sequence[int]) -> tuple[int, int]:
    low, high = values
    return low, high


def _turns(t: _Object) -> TurnsInfo:
    by_kind = t.obj("by_kind")
    return TurnsInfo(
        examples=t.integer("examples"),
        by_kind={k: by_kind.integer(k) for k in by_kind.names()},
        held_out_accuracy=t.number("held_out_accuracy"),
        held_out_followup_more_accuracy=t.number("held_out_followup_more_accuracy"),
        held_out_more_recall=t.number("held_out_more_recall"),
        C=t.number("C"),
        ngram_range=_pair(t.integers("ngram_range", 2)),
        hash_features=t.integer("hash_features"),
        embedding_weight=t.number("embedding_weight"),
        word_weight=t.number("word_weight"),
        word_ngrams=_pair(t.integers("word_ngrams", 2)),
        seed=t.integer("seed"),
    )


def _learned(data: _Object) -> Learned:
    return Learned(
        router=_router(data.obj("router")),
        ranker=_ranker(data.obj("ranker")),
        turns=_turns(data.obj("turns")),
    )


def encoder_info(data: Mapping[str, object]) -> EncoderInfo:
    """The encoder part from the export's record (encoder.json and the build's checks)."""
    return _part(_encoder, data, "encoder")


def learned_info(data: Mapping[str, object]) -> Learned:
    """The learned part from the router's, the ranker's and the turn classifier's records."""
    return _part(_learned, data, "learned")


def _part(parse: Callable[[_Object], _T], data: Mapping[str, object], key: str) -> _T:
    try:
        return parse(_Object(dict(data), key))
    except _Malformed as exc:
        raise IndexCorrupt(f"the build's record of its {key} is malformed ({exc})") from None


def _manifest(m: _Object) -> Manifest:
    index = m.obj("index")
    chunker = m.obj("chunker")
    documents = m.obj("documents")
    counts = m.obj("counts")
    versions = m.obj("versions")
    files = m.obj("files")
    encoder = m.opt_obj("encoder")  # absent in builds made before the ONNX export
    return Manifest(
        format=m.integer("format"),
        build_id=m.text("build_id"),
        built_at=m.text("built_at"),
        build_seconds=m.number("build_seconds"),
        model=_model(m.obj("model")),
        metric=m.text("metric"),
        normalized=m.flag("normalized"),
        index=IndexParams(
            type=index.text("type"),
            hnsw_m=index.opt_integer("hnsw_m"),
            hnsw_ef_construction=index.opt_integer("hnsw_ef_construction"),
        ),
        chunker=ChunkerInfo(
            budget_tokens=chunker.integer("budget_tokens"),
            overlap_sentences=chunker.integer("overlap_sentences"),
            encoding=chunker.text("encoding"),
            splitter_version=chunker.integer("splitter_version"),
        ),
        documents={doc_id: _document(documents.obj(doc_id)) for doc_id in documents.names()},
        counts=Counts(
            documents=counts.integer("documents"),
            sections=counts.integer("sections"),
            sentences=counts.integer("sentences"),
            chunks=counts.integer("chunks"),
            tokens=counts.integer("tokens"),
        ),
        versions={k: versions.text(k) for k in versions.names()},
        files={k: files.text(k) for k in files.names()},
        learned=_learned(m.obj("learned")),
        encoder=None if encoder is None else _encoder(encoder),
    )


def _document(d: _Object) -> DocumentInfo:
    return DocumentInfo(
        source=d.text("source"),
        content_hash=d.text("content_hash"),
        title=d.text("title"),
        url=d.opt_text("url"),
    )


def _plain(value: Any) -> Any:
    """asdict()'s output as JSON types: tuples as lists, mappings as dicts."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
