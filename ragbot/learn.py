"""Build-time learning: the router, the sentence ranker and the turn classifier, trained from the
labelled batches.

All are trained by `ragbot build-index` (deterministic, offline) and saved in the build folder
beside the index; the manifest records their files' hashes and the training data's hash. The
example questions' vectors are kept too (`examples.npz`, and a copy in the build cache), so a
rebuild with the same model, here or in another index folder, only embeds the examples that
changed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from ragbot import build_cache
from ragbot.build_cache import read_vectors, vectors_file
from ragbot.embeddings import Embedder, Vectors, fingerprint
from ragbot.errors import IndexError_
from ragbot.followups import FollowupPool, followup_examples
from ragbot.fusion import RANKER_FILE, ExamplePool, Ranker, train_ranker, untrained_ranker
from ragbot.guardrails import match_rules
from ragbot.manifest import Manifest
from ragbot.query import clauses, expand
from ragbot.router import (
    ROUTER_FILE,
    Example,
    Router,
    examples_hash,
    load_examples,
    train_router,
)
from ragbot.turns import (
    TURNS_FILE,
    TurnClassifier,
    load_turn_examples,
    train_turns,
    turn_examples_hash,
)

if TYPE_CHECKING:
    from ragbot.index import Index
    from ragbot.retrieval import RetrievalPolicy

EXAMPLES_FILE = "examples.npz"
# Models already trained in this process, by what their training reads (the model, the data and,
# for the ranker, the index): training is deterministic, so a rebuild that changes none of that
# need not fit again. The build cache keeps them for builds in other processes.
_TRAINED: dict[str, Any] = {}
# Example vectors met in this process, by model fingerprint (the build folder keeps them too).
_VECTORS: dict[str, dict[str, Vectors]] = {}


@dataclass(frozen=True)
class Learned:
    """What the build trained, and how many example vectors it reused."""

    router: Router
    ranker: Ranker
    turns: TurnClassifier
    embedded: int
    reused: int


def _key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def previous_example_vectors(folder: Path, model_fingerprint: str) -> dict[str, Vectors]:
    """Example vectors of an earlier build with the same model, keyed by text hash."""
    try:
        if Manifest.read(folder).model.fingerprint != model_fingerprint:
            return {}
    except (IndexError_, OSError):
        return {}  # no usable earlier build: every example is embedded
    return read_vectors(folder / EXAMPLES_FILE)


def embed_examples(
    embedder: Embedder, texts: Sequence[str], cache: dict[str, Vectors]
) -> tuple[Vectors, int]:
    """Vectors of the (expanded) example texts, embedding only those the cache lacks (and
    adding them to it)."""
    keys = [_key(t) for t in texts]
    missing = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in cache}.items())
    if missing:
        fresh = embedder.embed([t for _, t in missing])
        cache.update({k: v for (k, _), v in zip(missing, fresh, strict=True)})
    vectors = (
        np.stack([cache[k] for k in keys]) if keys else np.zeros((0, embedder.dim), np.float32)
    )
    return np.ascontiguousarray(vectors, dtype=np.float32), len(missing)


def learn(
    index: Index,
    embedder: Embedder,
    policy: RetrievalPolicy,
    *,
    previous: Path | None = None,
    cache_dir: Path | None = None,
    examples: Sequence[Example] | None = None,
    say: Callable[[str], None] = lambda _msg: None,
) -> Learned:
    """Train the router, the ranker and the turn classifier for this index, and save them (and
    the vectors) into it. Example vectors are reused from the `previous` build and from the
    build cache in `cache_dir`, and left in both for the next build."""
    examples = list(examples if examples is not None else load_examples())
    cache = _VECTORS.setdefault(fingerprint(embedder), {})
    shared = vectors_file(cache_dir, fingerprint(embedder)) if cache_dir is not None else None
    if not cache:
        cache.update(read_vectors(shared) if shared is not None else {})
        cache.update(previous_example_vectors(previous, fingerprint(embedder)) if previous else {})
    texts = [expand(ex.text) for ex in examples]
    vectors, embedded = embed_examples(embedder, texts, cache)
    pairs = [(i, c) for i, ex in enumerate(examples) for c in clauses(ex.text)]
    clause_vectors, clause_embedded = embed_examples(embedder, [expand(c) for _, c in pairs], cache)
    embedded += clause_embedded
    folder = index.path
    reuse = _Reuse(folder, cache_dir, say)

    def fit_router() -> Router:
        floor = [(r := match_rules(ex.text)) is not None and r.label == "crisis" for ex in examples]
        return train_router(examples, vectors, floor, pairs, clause_vectors)

    router = reuse(
        f"router|{fingerprint(embedder)}|{examples_hash(examples)}",
        ROUTER_FILE,
        Router.load,
        fit_router,
        lambda model, to: model.save(to),
    )
    sentence_ids = [s.sentence_id for s in index.sentences]
    ranker = reuse(
        f"ranker|{_ranker_key(index, embedder, examples, policy)}",
        RANKER_FILE,
        lambda at: Ranker.load(at, sentence_ids),
        lambda: _train_ranker(index, embedder, policy, examples, texts, vectors, say),
        lambda model, to: model.save(to, sentence_ids),
    )

    turn_examples = load_turn_examples(examples)
    turn_texts = [expand(ex.text) for ex in turn_examples]
    turn_vectors, turn_embedded = embed_examples(embedder, turn_texts, cache)
    embedded += turn_embedded
    turns = reuse(
        f"turns|{fingerprint(embedder)}|{turn_examples_hash(turn_examples)}",
        TURNS_FILE,
        TurnClassifier.load,
        lambda: train_turns(turn_examples, turn_vectors),
        lambda model, to: model.save(to),
    )

    # The labelled follow-ups that vote for a new follow-up's sentences (followups.py): no
    # training, only their vectors, read in context and alone as the pipeline reads them.
    followups = followup_examples()
    context_texts = [ex.context for ex in followups]
    own_texts = [ex.own for ex in followups]
    context_vectors, context_embedded = embed_examples(embedder, context_texts, cache)
    own_vectors, own_embedded = embed_examples(embedder, own_texts, cache)
    embedded += context_embedded + own_embedded
    pool = FollowupPool.of(
        followups, context_vectors, own_vectors, [s.text for s in index.sentences]
    )
    pool.save(folder, sentence_ids)

    kept = [*texts, *(expand(c) for _, c in pairs), *turn_texts, *context_texts, *own_texts]
    with (folder / EXAMPLES_FILE).open("wb") as fh:
        np.savez(
            fh,
            keys=np.array([_key(t) for t in kept], dtype=str),
            vectors=np.concatenate(
                [vectors, clause_vectors, turn_vectors, context_vectors, own_vectors]
            ),
        )
    if shared is not None and embedded:
        build_cache.keep(shared, folder / EXAMPLES_FILE, say)
    say(
        f"router: {len(examples)} examples, held-out accuracy {router.meta['held_out_accuracy']}, "
        f"crisis threshold {router.crisis_threshold:.3f} (clauses {router.clause_threshold:.3f}); "
        f"ranker: {len(ranker.pool.answers)} examples; turns: {len(turn_examples)} examples, held-out "
        f"follow-up/more accuracy {turns.meta['held_out_followup_more_accuracy']}"
    )
    say(f"follow-ups: {len(pool.context.answers)} labelled follow-ups vote")
    return Learned(router, ranker, turns, embedded, len(kept) - embedded)


M = TypeVar("M")


@dataclass(frozen=True)
class _Reuse:
    """Puts a trained model into the build folder: the one this process trained already, else the
    build cache's, else one trained now; and leaves it in both for the next build."""

    folder: Path
    cache_dir: Path | None
    say: Callable[[str], None]

    def __call__(
        self,
        key: str,
        file_name: str,
        load: Callable[[Path], M],
        train: Callable[[], M],
        save: Callable[[M, Path], Path],
    ) -> M:
        cached = build_cache.learned_folder(self.cache_dir, key) if self.cache_dir else None
        model: M | None = _TRAINED.get(key)
        if model is None and cached is not None and (cached / file_name).is_file():
            try:
                model = load(cached)
            except IndexError_:
                model = None  # unreadable or stale: trained again below, and the copy replaced
        fresh = model is None
        if model is None:
            model = train()
        _TRAINED[key] = model
        path = save(model, self.folder)
        if cached is not None and (fresh or not (cached / file_name).is_file()):
            build_cache.keep(cached / file_name, path, self.say)
        return model


def _ranker_key(
    index: Index, embedder: Embedder, examples: Sequence[Example], policy: RetrievalPolicy
) -> str:
    """What the ranker's training depends on: the examples, the model, the retrieval settings,
    and the sentences and headings of the index with their vectors."""
    digest = hashlib.sha256()
    digest.update(repr((fingerprint(embedder), examples_hash(examples), policy)).encode())
    digest.update(repr((index.sentences, index.headings)).encode())
    digest.update(repr(sorted((d.doc_id, d.title) for d in index.documents.values())).encode())
    for kind in ("sentences", "headings"):
        vectors = index.faiss[kind]
        digest.update(np.ascontiguousarray(vectors.reconstruct_n(0, vectors.ntotal)).tobytes())
    return digest.hexdigest()


def _train_ranker(
    index: Index,
    embedder: Embedder,
    policy: RetrievalPolicy,
    examples: Sequence[Example],
    texts: Sequence[str],
    vectors: Vectors,
    say: Callable[[str], None],
) -> Ranker:
    """The sentence ranker, trained on the article examples whose answers are in this index."""
    from ragbot.retrieval import Retriever

    # The ranker's pool: article examples whose answers are sentences of this index.
    row_of = {s.text: i for i, s in enumerate(index.sentences)}
    members = [
        i
        for i, ex in enumerate(examples)
        if ex.intent == "article" and any(g in row_of for g in ex.gold_sentences)
    ]
    pool = ExamplePool(
        vectors[members] if members else np.zeros((0, embedder.dim), np.float32),
        tuple(tuple(row_of[g] for g in examples[i].gold_sentences if g in row_of) for i in members),
        tuple(examples[i].batch for i in members),
    )
    # The signals need the pool (its votes), not weights: any ranker over it will do.
    retriever = Retriever(index, untrained_ranker(pool), policy)
    features = [
        retriever.features(texts[i], vectors[i], exclude_group=examples[i].batch) for i in members
    ]
    return _fit_ranker(pool, features, say)


def _fit_ranker(pool: ExamplePool, features: list[Any], say: Callable[[str], None]) -> Ranker:
    if not pool.answers:
        # No labelled answers in this corpus (a new article): similarity and keywords only.
        say("ranker: no labelled examples for this corpus; using similarity and keywords only")
        return untrained_ranker(pool)
    return train_ranker(pool, features, pool.answers)
