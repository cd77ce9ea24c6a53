"""Build, save and load the FAISS index and its manifest.

Layout under the index folder:

    current -> builds/<build_id>      a symlink, swapped atomically when a build completes
    builds/<build_id>/manifest.json   what was built, with what, from what (checked at load)
    builds/<build_id>/records.json    documents (stored text, sections), sentences, chunks
    builds/<build_id>/{chunks,sentences,headings}.faiss   one vector per record, same order

A build writes into `builds/.tmp-*` and only then points `current` at it, so a build that fails
or is killed half way leaves the previous index as it was.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ragbot import __version__
from ragbot.chunking import ChunkerConfig, split_document, tiktoken_counter
from ragbot.config import Settings
from ragbot.corpus import corpus_files, file_hash, load_corpus
from ragbot.embeddings import (
    Embedder,
    Vectors,
    fingerprint,
    fits_model,
    weights_fingerprint,
    weights_stat,
)
from ragbot.errors import BuildError, IndexCorrupt, IndexMismatch, IndexMissing, IndexStale
from ragbot.fusion import Ranker
from ragbot.keywords import KeywordIndex, index_records, load_keywords, save_keywords
from ragbot.manifest import (
    FORMAT_VERSION,
    MANIFEST_FILE,
    ChunkerInfo,
    Counts,
    DocumentInfo,
    EncoderInfo,
    IndexParams,
    Manifest,
    ModelInfo,
    encoder_info,
    learned_info,
)
from ragbot.models import Chunk, Document, Section, Sentence
from ragbot.router import Router
from ragbot.turns import TurnClassifier

SPLITTER_VERSION = 3  # bump when splitting, cleaning or what is embedded changes
KINDS: tuple[str, ...] = ("chunks", "sentences", "headings")  # one FAISS file each
HNSW_EF_CONSTRUCTION = 80  # FAISS default is 40; 80 buys recall for a one-off build cost


@dataclass
class Index:
    """A loaded index: records, their vectors in FAISS, and the manifest they were built with."""

    manifest: Manifest
    documents: dict[str, Document]
    sections: dict[str, Section]
    sentences: list[Sentence]
    chunks: list[Chunk]
    faiss: dict[str, Any]  # kind -> faiss.Index
    path: Path
    router: Router | None = None  # learned at build (router.npz); None only mid-build
    ranker: Ranker | None = None  # learned at build (ranker.npz)
    turns: TurnClassifier | None = None  # learned at build (turns.npz)
    keywords: dict[str, KeywordIndex] | None = None  # BM25 by record kind (keywords.npz)
    # Why this index is served although the corpus changed (a rebuild failed); None when fresh.
    stale: str | None = None
    headings: list[Section] = field(default_factory=list)
    sentence_by_id: dict[str, Sentence] = field(default_factory=dict)
    section_sentences: dict[str, list[Sentence]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.headings = [s for d in self.documents.values() for s in d.sections]
        self.sentence_by_id = {s.sentence_id: s for s in self.sentences}
        for sent in self.sentences:
            self.section_sentences.setdefault(sent.section_id, []).append(sent)

    def search(self, kind: str, query: Vectors, k: int) -> list[tuple[int, float]]:
        """Rows and inner-product scores of the k nearest records of one kind."""
        index = self.faiss[kind]
        k = min(k, index.ntotal)
        if k <= 0:
            return []
        scores, rows = index.search(np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32), k)
        return [(int(r), float(s)) for r, s in zip(rows[0], scores[0], strict=True) if r >= 0]

    def keyword_index(self, kind: str) -> KeywordIndex:
        """BM25 over one kind of record (see keywords.KINDS)."""
        if self.keywords is None:
            raise IndexCorrupt(f"{self.path} lacks its keyword index: run `ragbot build-index`")
        return self.keywords[kind]

    @property
    def build_id(self) -> str:
        """The build's name, as in index/builds/<build_id>."""
        return self.manifest.build_id

    def summary(self) -> dict[str, Any]:
        """What /readyz and `ragbot inspect` show."""
        m = self.manifest
        return {
            "build_id": m.build_id,
            "built_at": m.built_at,
            "model": m.model.name,
            "index_type": m.index.type,
            "counts": asdict(m.counts),
            "documents": [{"doc_id": k, "title": v.title} for k, v in m.documents.items()],
            # Whether the corpus changed since this build and a rebuild failed (the log says why).
            "stale": self.stale is not None,
        }


@dataclass(frozen=True)
class BuildReport:
    """What `ragbot build-index` prints."""

    build_id: str
    path: Path
    documents: int
    sections: int
    sentences: int
    chunks: int
    tokens: int
    embedded: int
    reused: int
    seconds: float
    examples_embedded: int = 0  # the router's and ranker's labelled questions
    examples_reused: int = 0


def chunker_config(settings: Settings, embedder: Embedder) -> ChunkerConfig:
    """The chunker as settings and the model's input limit define it."""
    return ChunkerConfig(
        budget=settings.chunk_tokens,
        overlap=settings.chunk_overlap,
        count_tokens=tiktoken_counter(settings.encoding),
        fits_model=fits_model(embedder),
    )


def expected_chunker(settings: Settings) -> ChunkerInfo:
    """The chunker part of the manifest; a difference at load means rebuild."""
    return ChunkerInfo(
        budget_tokens=settings.chunk_tokens,
        overlap_sentences=settings.chunk_overlap,
        encoding=settings.encoding,
        splitter_version=SPLITTER_VERSION,
    )


def corpus_state(corpus_dir: Path) -> dict[str, str]:
    """File name -> content hash of every article in the corpus folder."""
    return {p.name: file_hash(p) for p in corpus_files(corpus_dir)}


# ---------------------------------------------------------------------------------------------
# Build


def builds_folder(root: Path) -> Path:
    """The index folder's builds/, created; BuildError naming the folder when it cannot be."""
    builds = root / "builds"
    try:
        builds.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BuildError(
            f"cannot write the index folder {root} ({exc.strerror}): set RAGBOT_INDEX_DIR to a "
            "writable folder"
        ) from exc
    return builds


def build_index(
    settings: Settings,
    embedder: Embedder,
    *,
    progress: Callable[[str], None] | None = None,
) -> BuildReport:
    """Build the index from the corpus, train the router and the ranker on it, and make it
    current atomically; reuse unchanged vectors."""
    from ragbot.learn import learn
    from ragbot.retrieval import RetrievalPolicy

    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    root = settings.index_dir
    builds = builds_folder(root)
    with _build_lock(root):
        _remove_leftovers(builds)
        documents = load_corpus(settings.corpus_dir)
        cfg = chunker_config(settings, embedder)
        sentences: list[Sentence] = []
        chunks: list[Chunk] = []
        for doc in documents:
            s, c = split_document(doc, cfg)
            sentences.extend(s)
            chunks.extend(c)
        headings = [sec for doc in documents for sec in doc.sections]
        say(
            f"{len(documents)} documents, {len(headings)} sections, {len(sentences)} sentences, {len(chunks)} chunks"
        )

        cache = _previous_vectors(root, fingerprint(embedder))
        texts = embedding_texts(documents, sentences, chunks)
        build_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]
        tmp = builds / f".tmp-{build_id}"
        tmp.mkdir()
        try:
            embedded = reused = 0
            indexes = {}
            for kind, items in texts.items():
                vectors, fresh = _embed_with_cache(embedder, kind, items, cache)
                embedded += fresh
                reused += len(items) - fresh
                indexes[kind] = _write_faiss(tmp / f"{kind}.faiss", vectors, settings)
            say(f"embedded {embedded} texts, reused {reused} unchanged vectors")
            records = {
                "documents": [_document_record(d) for d in documents],
                "sentences": [asdict(s) for s in sentences],
                "chunks": [asdict(c) for c in chunks],
            }
            _write_json(tmp / "records.json", records)
            keywords = index_records(sentences, chunks)
            save_keywords(tmp, keywords)
            sections = {s.section_id: s for s in headings}
            # Not yet trained, exported or hashed: completed below, once those files exist.
            draft = _manifest(settings, embedder, build_id, documents, headings, sentences, chunks)
            built = Index(
                draft,
                {d.doc_id: d for d in documents},
                sections,
                sentences,
                chunks,
                indexes,
                tmp,
                keywords=keywords,
            )
            learned = learn(
                built,
                embedder,
                RetrievalPolicy.from_settings(settings),
                previous=root / "current",
                cache_dir=settings.cache_dir,
                say=say,
            )
            encoder = _export_encoder(tmp, settings, embedder, texts, indexes, say)
            router, ranker = learned.router, learned.ranker
            manifest = replace(
                draft,
                built_at=datetime.now(UTC).isoformat(timespec="seconds"),
                build_seconds=round(time.perf_counter() - started, 3),
                files={p.name: file_hash(p) for p in sorted(tmp.iterdir())},
                learned=learned_info(
                    {
                        "router": {
                            **router.meta,
                            "crisis_threshold": round(router.crisis_threshold, 6),
                            "distress_threshold": round(router.distress_threshold, 6),
                            "clause_threshold": round(router.clause_threshold, 6),
                        },
                        "ranker": ranker.meta,
                        "turns": learned.turns.meta,
                    }
                ),
                encoder=encoder,
            )
            manifest.write(tmp)
            _fsync_dir(tmp)
            final = builds / build_id
            tmp.rename(final)
            _point_current(root, final)
        except BaseException as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(exc, Exception) and not isinstance(exc, BuildError):
                raise BuildError(
                    f"index build failed, previous index left as it was: {exc}"
                ) from exc
            raise
        _prune_builds(builds, keep=final)
    return BuildReport(
        build_id=build_id,
        path=final,
        documents=len(documents),
        sections=len(headings),
        sentences=len(sentences),
        chunks=len(chunks),
        tokens=sum(c.tokens for c in chunks),
        embedded=embedded,
        reused=reused,
        seconds=time.perf_counter() - started,
        examples_embedded=learned.embedded,
        examples_reused=learned.reused,
    )


def _export_encoder(
    folder: Path,
    settings: Settings,
    embedder: Embedder,
    texts: dict[str, list[tuple[str, str]]],
    indexes: dict[str, Any],
    say: Callable[[str], None],
) -> EncoderInfo | None:
    """Export the model to ONNX (and int8) for serving, checked against the index's own vectors
    on every corpus text; None for an embedder that is not a sentence-transformers model."""
    from ragbot.embeddings import SentenceTransformerEmbedder

    if not isinstance(embedder, SentenceTransformerEmbedder):
        return None
    from ragbot import onnx_embedder as ox

    ox.export(embedder.model, folder, settings.cache_dir / "onnx", embedder.fingerprint, say)
    ox.quantise(folder)
    ox.write_meta(folder, embedder.model_path, embedder, quantised=True)
    onnx = ox.OnnxEmbedder(folder, threads=os.cpu_count() or 1)
    worst = (
        min(
            ox.check_parity(
                indexes[kind].reconstruct_n(0, indexes[kind].ntotal), onnx, [t for _, t in items]
            )
            for kind, items in texts.items()
            if items
        )
        if any(texts.values())
        else 1.0
    )
    say(f"ONNX encoder exported and checked on {sum(map(len, texts.values()))} texts")
    meta = json.loads((folder / ox.ENCODER_FILE).read_text(encoding="utf-8"))
    return encoder_info(
        {
            **meta,
            "parity_min_cosine": round(worst, 7),
            "opset": ox.OPSET,
            "export_version": ox.EXPORT_VERSION,
        }
    )


@contextlib.contextmanager
def _build_lock(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise BuildError(f"another build of {root} is running; wait for it to finish") from exc
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _remove_leftovers(builds: Path) -> None:
    # Temporary folders of builds that were killed; the lock says no build is running now.
    for path in builds.glob(".tmp-*"):
        shutil.rmtree(path, ignore_errors=True)


def _previous_vectors(
    root: Path, model_fingerprint: str
) -> dict[str, dict[tuple[str, str], Vectors]]:
    """Vectors of the current build keyed by (id, text), when it was built with the same model."""
    try:
        previous = load_index_files(root / "current")
    except Exception:
        return {}
    if previous.manifest.model.fingerprint != model_fingerprint:
        return {}
    if previous.manifest.chunker.splitter_version != SPLITTER_VERSION:
        return {}  # what was embedded for a record may have changed with the code
    keyed = embedding_texts(list(previous.documents.values()), previous.sentences, previous.chunks)
    cache: dict[str, dict[tuple[str, str], Vectors]] = {}
    for kind, keys in keyed.items():
        index = previous.faiss[kind]
        if index.ntotal != len(keys):
            return {}
        vectors = index.reconstruct_n(0, index.ntotal) if keys else np.zeros((0, 0), np.float32)
        cache[kind] = {key: vectors[i] for i, key in enumerate(keys)}
    return cache


def is_title_section(section: Section, doc: Document) -> bool:
    """The introduction, whose "heading" is the document title rather than a heading of its own."""
    return section.ordinal == 0 and section.heading == doc.title


def embedding_texts(
    documents: list[Document], sentences: list[Sentence], chunks: list[Chunk]
) -> dict[str, list[tuple[str, str]]]:
    """(id, text to embed) per kind, in record order.

    A sentence is embedded with its section heading in front: "It primarily acts on..." means
    little alone, and the headings here are the questions the sentences answer.
    """
    sections = {s.section_id: (s, d) for d in documents for s in d.sections}

    def in_context(sent: Sentence) -> str:
        section, doc = sections[sent.section_id]
        return sent.text if is_title_section(section, doc) else f"{section.heading} {sent.text}"

    return {
        "chunks": [(c.chunk_id, c.text) for c in chunks],
        "sentences": [(s.sentence_id, in_context(s)) for s in sentences],
        "headings": [(h.section_id, h.heading) for d in documents for h in d.sections],
    }


def _embed_with_cache(
    embedder: Embedder,
    kind: str,
    items: list[tuple[str, str]],
    cache: dict[str, dict[tuple[str, str], Vectors]],
) -> tuple[Vectors, int]:
    known = cache.get(kind, {})
    missing = [i for i, key in enumerate(items) if key not in known]
    vectors = np.zeros((len(items), embedder.dim), dtype=np.float32)
    for i, key in enumerate(items):
        if key in known:
            vectors[i] = known[key]
    if missing:
        fresh = embedder.embed([items[i][1] for i in missing])
        if fresh.shape != (len(missing), embedder.dim):
            raise BuildError(
                f"embedder returned shape {fresh.shape}, expected ({len(missing)}, {embedder.dim})"
            )
        vectors[missing] = fresh
    return vectors, len(missing)


def _new_faiss(dim: int, settings: Settings) -> Any:
    import faiss

    if settings.index_type == "hnsw":
        index = faiss.IndexHNSWFlat(dim, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        return index
    return faiss.IndexFlatIP(dim)


def _write_faiss(path: Path, vectors: Vectors, settings: Settings) -> Any:
    import faiss

    index = _new_faiss(vectors.shape[1], settings)
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    faiss.write_index(index, str(path))
    return index


def _write_json(path: Path, data: object) -> None:
    with path.open("w", encoding="utf-8") as fh:
        json.dump(data, fh, ensure_ascii=False, indent=1)  # flushed to disk by _fsync_dir


def _fsync_dir(path: Path) -> None:
    """Flush a build's files and the folder itself, so the rename that follows publishes them."""
    for child in path.iterdir():
        _fsync(child)
    _fsync(path)


def _point_current(root: Path, target: Path) -> None:
    link = root / "current"
    tmp_link = root / f".current-{uuid.uuid4().hex[:8]}"
    os.symlink(Path("builds") / target.name, tmp_link)
    os.replace(tmp_link, link)  # atomic: readers see the old build or the new one, never neither
    _fsync(root)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _prune_builds(builds: Path, keep: Path) -> None:
    for path in builds.iterdir():
        if path != keep and not path.name.startswith(".tmp-"):
            shutil.rmtree(path, ignore_errors=True)


def _document_record(doc: Document) -> dict[str, Any]:
    record = asdict(doc)
    record["sections"] = [asdict(s) for s in doc.sections]
    return record


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    import faiss
    import tiktoken

    # Installed versions, read from package metadata: importing sentence-transformers and torch
    # only to record their versions cost a build with another embedder 16 s (a test's fake).
    return {
        "ragbot": __version__,
        "python": sys.version.split()[0],
        "faiss": faiss.__version__,
        "sentence_transformers": version("sentence-transformers"),
        "torch": version("torch"),
        "tiktoken": tiktoken.__version__ if hasattr(tiktoken, "__version__") else "unknown",
        "numpy": np.__version__,
    }


def _manifest(
    settings: Settings,
    embedder: Embedder,
    build_id: str,
    documents: list[Document],
    headings: list[Section],
    sentences: list[Sentence],
    chunks: list[Chunk],
) -> Manifest:
    """The manifest as far as the records define it: no files, nothing learned or exported."""
    model_path = getattr(embedder, "model_path", None)
    hnsw = settings.index_type == "hnsw"
    return Manifest(
        format=FORMAT_VERSION,
        build_id=build_id,
        built_at=datetime.now(UTC).isoformat(timespec="seconds"),
        build_seconds=0.0,
        model=ModelInfo(
            stat=weights_stat(model_path) if isinstance(model_path, Path) else None,
            name=embedder.name,
            fingerprint=fingerprint(embedder),
            dim=embedder.dim,
            max_tokens=getattr(embedder, "max_tokens", None),
        ),
        metric="inner_product",
        normalized=True,
        index=IndexParams(
            type=settings.index_type,
            hnsw_m=settings.hnsw_m if hnsw else None,
            hnsw_ef_construction=HNSW_EF_CONSTRUCTION if hnsw else None,
        ),
        chunker=expected_chunker(settings),
        documents={
            d.doc_id: DocumentInfo(
                source=d.source, content_hash=d.content_hash, title=d.title, url=d.url
            )
            for d in documents
        },
        counts=Counts(
            documents=len(documents),
            sections=len(headings),
            sentences=len(sentences),
            chunks=len(chunks),
            tokens=sum(c.tokens for c in chunks),
        ),
        versions=_versions(),
        files={},
        learned=None,
        encoder=None,
    )


# ---------------------------------------------------------------------------------------------
# Load


def load_index(
    settings: Settings, embedder: Embedder | None = None, *, check_corpus: bool = True
) -> Index:
    """Load the current index and check it against the settings, the model and the corpus."""
    root = settings.index_dir
    if not (root / "current").exists():
        raise IndexMissing(f"no index in {root}: run `ragbot build-index`")
    # The build itself, resolved once: a build going live meanwhile cannot mix its files in.
    current = (root / "current").resolve()
    index = load_index_files(current)
    m = index.manifest
    if embedder is not None:
        want = {"name": embedder.name, "fingerprint": fingerprint(embedder), "dim": embedder.dim}
        got = {"name": m.model.name, "fingerprint": m.model.fingerprint, "dim": m.model.dim}
        if got != want:
            diff = ", ".join(f"{k} {got[k]!r} != {want[k]!r}" for k in want if got[k] != want[k])
            raise IndexMismatch(
                f"{root} was built with a different model ({diff}): run `ragbot build-index`"
            )
    chunker = expected_chunker(settings)
    if m.chunker != chunker:
        diff = ", ".join(
            f"{f.name} {getattr(m.chunker, f.name)!r} != {getattr(chunker, f.name)!r}"
            for f in fields(chunker)
            if getattr(m.chunker, f.name) != getattr(chunker, f.name)
        )
        raise IndexMismatch(
            f"{root} was built with other chunker settings ({diff}): run `ragbot build-index`"
        )
    if m.index.type != settings.index_type:
        raise IndexMismatch(
            f"{root} is a {m.index.type} index but settings ask for {settings.index_type}: "
            "run `ragbot build-index`"
        )
    if check_corpus:
        check_fresh(m, settings.corpus_dir, root)
    if settings.index_type == "hnsw":
        for faiss_index in index.faiss.values():
            faiss_index.hnsw.efSearch = settings.hnsw_ef_search
    return index


def load_manifest(root: Path) -> Manifest:
    """The current build's manifest, or IndexMissing/IndexCorrupt saying what to run."""
    if not (root / "current" / MANIFEST_FILE).exists():
        raise IndexMissing(f"no index in {root}: run `ragbot build-index`")
    return Manifest.read(root / "current")


def check_model(manifest: Manifest, settings: Settings, root: Path) -> None:
    """Raise IndexMismatch when the configured model's weights differ from the build's; without
    torch: a file stat check first, the weights hashed only when a file changed."""
    try:
        path = settings.resolved_model_path
    except ImportError:
        return  # a serve-only install without the model package serves the build as it is
    model = manifest.model
    if model.stat is not None and model.stat == weights_stat(path):
        return
    if weights_fingerprint(path) != model.fingerprint:
        raise IndexMismatch(
            f"{root} was built with other model weights than {path}: run `ragbot build-index`"
        )


def check_fresh(manifest: Manifest, corpus_dir: Path, root: Path) -> None:
    """Raise IndexStale naming the files added, removed or changed since the build."""
    built = {v.source: v.content_hash for v in manifest.documents.values()}
    now = corpus_state(corpus_dir)
    added = sorted(set(now) - set(built))
    removed = sorted(set(built) - set(now))
    changed = sorted(k for k in set(now) & set(built) if now[k] != built[k])
    if added or removed or changed:
        parts = [
            f"{label}: {', '.join(names)}"
            for label, names in (("added", added), ("removed", removed), ("changed", changed))
            if names
        ]
        raise IndexStale(
            f"{root} is stale against {corpus_dir} ({'; '.join(parts)}): run `ragbot build-index`"
        )


VERIFIED_FILE = ".verified.json"  # beside a build: the stat of each file when its hash last held


def verify_files(folder: Path, files: Mapping[str, str]) -> None:
    """Check every file against its manifest hash. A file whose size and modification time are
    those recorded when its hash last held is not read again: the ONNX models are 110 MB, and
    hashing them on every start would double the cold start (README: Benchmarks)."""
    try:
        seen: dict[str, Any] = json.loads((folder / VERIFIED_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        seen = {}
    verified: dict[str, Any] = {}
    for name, digest in files.items():
        path = folder / name
        try:
            stat = path.stat()
        except OSError:
            raise IndexCorrupt(f"{folder} lacks {name}: run `ragbot build-index`") from None
        mark = [digest, stat.st_size, stat.st_mtime_ns]
        if seen.get(name) != mark and file_hash(path) != digest:
            raise IndexCorrupt(
                f"{folder}/{name} does not match its manifest hash: run `ragbot build-index`"
            )
        verified[name] = mark
    if verified != seen:
        with contextlib.suppress(OSError):  # a read-only index is checked in full every time
            (folder / VERIFIED_FILE).write_text(json.dumps(verified), encoding="utf-8")


def load_index_files(folder: Path) -> Index:
    """Read one build folder, checking every file against the hashes in its manifest."""
    import faiss

    manifest = Manifest.read(folder)
    verify_files(folder, manifest.files)
    try:
        records = json.loads((folder / "records.json").read_text(encoding="utf-8"))
        documents = {}
        for raw in records["documents"]:
            raw = dict(raw)
            raw["sections"] = tuple(Section(**s) for s in raw["sections"])
            documents[raw["doc_id"]] = Document(**raw)
        sentences = [Sentence(**s) for s in records["sentences"]]
        chunks = [
            Chunk(**{**c, "sentence_ids": tuple(c["sentence_ids"])}) for c in records["chunks"]
        ]
        indexes = {kind: faiss.read_index(str(folder / f"{kind}.faiss")) for kind in KINDS}
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise IndexCorrupt(f"{folder} cannot be read ({exc}): run `ragbot build-index`") from exc
    sections = {s.section_id: s for d in documents.values() for s in d.sections}
    expected = {"chunks": len(chunks), "sentences": len(sentences), "headings": len(sections)}
    for kind, count in expected.items():
        if indexes[kind].ntotal != count:
            raise IndexCorrupt(
                f"{folder}/{kind}.faiss holds {indexes[kind].ntotal} vectors for {count} records: "
                "run `ragbot build-index`"
            )
    router = Router.load(folder)
    ranker = Ranker.load(folder, [s.sentence_id for s in sentences])
    turns = TurnClassifier.load(folder)
    keywords = load_keywords(folder)
    return Index(
        manifest,
        documents,
        sections,
        sentences,
        chunks,
        indexes,
        folder,
        router,
        ranker,
        turns,
        keywords=keywords,
    )
