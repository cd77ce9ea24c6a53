"""Dense (FAISS) and keyword (BM25) search over chunks, sentences and headings, fused by RRF."""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, TypeVar

import numpy as np

from ragbot.embeddings import Vectors
from ragbot.index import Index, is_title_section
from ragbot.models import Chunk, Hit

K = TypeVar("K", bound=Hashable)

RRF_K = 60  # Cormack, Clarke & Buettcher 2009
# Weights of each ranked list in the fusion, chosen on the evaluation set (README). Sentence lists decide which sentence is quoted; chunk
# and heading lists add their context (a question that matches a heading is a strong signal).
FUSION_WEIGHTS: dict[str, float] = {
    "dense_sentence": 1.0,
    "bm25_sentence": 0.3,
    "dense_chunk": 0.7,
    "bm25_chunk": 0.5,
    "dense_heading": 0.7,
    "bm25_heading": 0.5,
}
# Re-scoring: score = cosine(question, heading + sentence) + LEXICAL_WEIGHT * BM25 / best BM25
#                    + HEADING_WEIGHT * cosine(question, heading). Chosen on the evaluation set (README).
LEXICAL_WEIGHT = 0.1
HEADING_WEIGHT = 0.4
TITLE_HEADING_MATCH = (
    0.5  # the introduction has no heading of its own; it counts as a middling match
)
CANDIDATE_SECTIONS = 5  # sections from the fused ranking whose every sentence is re-scored
# Curly quotes, dashes and the like, mapped so that keyword search sees plain ASCII.
_PUNCT = str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"', "–": "-", "—": "-", "\u00a0": " "})
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
MIN_TYPO_LENGTH = 4  # shorter words have too many near neighbours to correct safely
TYPO_SCORE = 80.0  # rapidfuzz ratio (0-100) at which a word is taken for a misspelt corpus word


def normalize(text: str) -> str:
    """Case-fold, straighten quotes and dashes, and collapse whitespace."""
    text = unicodedata.normalize("NFKC", text).translate(_PUNCT).casefold()
    return " ".join(text.split())


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


@lru_cache(maxsize=1)
def generic_words() -> frozenset[str]:
    """Everyday words that name no topic (ragbot/data/generic_words.json)."""
    raw = json.loads(
        resources.files("ragbot.data").joinpath("generic_words.json").read_text("utf-8")
    )
    return frozenset(raw["words"])


@lru_cache(maxsize=1)
def foreign_topics() -> frozenset[str]:
    """Other drugs, agencies, insurers, prices (ragbot/data/foreign_topics.json)."""
    raw = json.loads(
        resources.files("ragbot.data").joinpath("foreign_topics.json").read_text("utf-8")
    )
    return frozenset(raw["topics"])


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


def words(text: str) -> list[str]:
    """Content words of a text: normalised, possessives dropped, stop words removed."""
    out = []
    for tok in _TOKEN.findall(normalize(text)):
        tok = tok.removesuffix("'s").replace("'", "")
        if len(tok) > 1 and tok not in _stopwords():
            out.append(tok)
    return out


def stems(tokens: Sequence[str]) -> list[str]:
    """Snowball stems, so "effects" finds "effect"."""
    return list(_stemmer().stemWords(list(tokens)))


def rrf(
    rankings: Mapping[str, Sequence[K]], weights: Mapping[str, float], k: int = RRF_K
) -> dict[K, float]:
    """Weighted reciprocal rank fusion: sum of weight / (k + rank) over the lists that hold a key."""
    fused: dict[K, float] = {}
    for name, ranking in rankings.items():
        w = weights.get(name, 1.0)
        for rank, key in enumerate(ranking, start=1):
            fused[key] = fused.get(key, 0.0) + w / (k + rank)
    return fused


class Bm25:
    """A bm25s index over one kind of record, queried with pre-stemmed tokens."""

    def __init__(self, texts: list[str]) -> None:
        import bm25s

        # bm25s sets its own logger to DEBUG on import; its per-index chatter is noise here.
        logging.getLogger("bm25s").setLevel(logging.WARNING)
        self._corpus = [stems(words(t)) for t in texts]
        self._model = bm25s.BM25()
        self.vocab: set[str] = {tok for doc in self._corpus for tok in doc}
        self._empty = not self.vocab
        self._size = len(texts)
        if not self._empty:
            self._model.index(self._corpus, show_progress=False)

    def scores(self, tokens: list[str]) -> Vectors:
        """BM25 score of every record (zeros when no token is known)."""
        query = [t for t in tokens if t in self.vocab]
        if self._empty or not query:
            return np.zeros(self._size, dtype=np.float32)
        return np.asarray(self._model.get_scores(query), dtype=np.float32)

    def search(self, tokens: list[str], k: int) -> list[tuple[int, float]]:
        """Rows and BM25 scores of the best k records holding any of the tokens."""
        return top_k(self.scores(tokens), k)


def top_k(scores: Vectors, k: int) -> list[tuple[int, float]]:
    """Rows and scores of the k highest positive scores, best first."""
    k = min(k, len(scores))
    if k <= 0:
        return []
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.argsort(-scores[top], kind="stable")]
    return [(int(i), float(scores[i])) for i in top if scores[i] > 0]


@dataclass(frozen=True)
class Retrieval:
    """What the answer composer works from."""

    sentences: list[Hit]  # re-scored, best first
    sections: list[tuple[str, float]]  # section_id and fused score, best first
    best_dense: float  # highest cosine similarity of any sentence or chunk
    unknown_terms: tuple[str, ...] = ()  # topic words of the query the corpus never uses
    content_terms: int = 0  # topic words of the query, known or not
    foreign_terms: tuple[
        str, ...
    ] = ()  # named subjects (another drug, an insurer) the corpus never names


class Retriever:
    """Hybrid search over a loaded index."""

    def __init__(
        self,
        index: Index,
        *,
        candidates: int = 30,
        rrf_k: int = RRF_K,
        weights: dict[str, float] | None = None,
        lexical_weight: float = LEXICAL_WEIGHT,
        heading_weight: float = HEADING_WEIGHT,
    ) -> None:
        self.index = index
        self.lexical_weight = lexical_weight
        self.heading_weight = heading_weight
        # Vectors in memory for the re-scoring stage (35 sentences here; 61 MB at 40,000).
        self._sentence_vectors = _all_vectors(index.faiss["sentences"])
        self._heading_vectors = _all_vectors(index.faiss["headings"])
        self._heading_row = {h.section_id: i for i, h in enumerate(index.headings)}
        self._rows_of_section: dict[str, list[int]] = {}
        for row, sent in enumerate(index.sentences):
            self._rows_of_section.setdefault(sent.section_id, []).append(row)
        self.weights = weights or FUSION_WEIGHTS
        # A document's title stands as the heading of its introduction; it matches every question
        # about the topic, so it does not count as a heading match.
        self._is_heading = [
            not is_title_section(h, index.documents[h.doc_id]) for h in index.headings
        ]
        self.candidates = candidates
        self.rrf_k = rrf_k
        self.bm25 = {
            "sentence": Bm25([s.text for s in index.sentences]),
            "chunk": Bm25([c.text for c in index.chunks]),
            "heading": Bm25([h.heading for h in index.headings]),
        }
        self.vocabulary = sorted(
            {w for s in index.sentences for w in words(s.text)}
            | {w for h in index.headings for w in words(h.heading)}
        )
        self._vocab_set = frozenset(self.vocabulary)
        self._stem_vocab = frozenset(stems(self.vocabulary))
        self._chunks_of: dict[str, list[int]] = {}
        for row, chunk in enumerate(index.chunks):
            for sid in chunk.sentence_ids:
                self._chunks_of.setdefault(sid, []).append(row)

    def correct(self, tokens: list[str]) -> list[str]:
        """Replace words the corpus does not know by their closest corpus word, if close enough."""
        from rapidfuzz import fuzz, process

        fixed = []
        for tok in tokens:
            if (
                tok in self._vocab_set
                or len(tok) < MIN_TYPO_LENGTH
                or tok.isdigit()
                or tok in foreign_topics()
            ):
                fixed.append(tok)
                continue
            match = process.extractOne(
                tok, self.vocabulary, scorer=fuzz.ratio, score_cutoff=TYPO_SCORE
            )
            fixed.append(match[0] if match else tok)
        return fixed

    def retrieve(self, question: str, query_vector: Vectors) -> Retrieval:
        """Candidates by RRF over six ranked lists, then sentences re-scored on the raw signals."""
        idx = self.index
        k = self.candidates
        tokens = self.correct(words(question))
        query_stems = stems(tokens)
        topical = [
            (t, st) for t, st in zip(tokens, query_stems, strict=True) if t not in generic_words()
        ]
        unknown = tuple(t for t, st in topical if st not in self._stem_vocab)

        dense_s = idx.search("sentences", query_vector, k)
        dense_c = idx.search("chunks", query_vector, k)
        dense_h = idx.search("headings", query_vector, k)
        lexical = self.bm25["sentence"].scores(
            query_stems
        )  # every sentence: stage 2 needs them all
        bm25_s = top_k(lexical, k)
        bm25_c = self.bm25["chunk"].search(query_stems, k)
        bm25_h = self.bm25["heading"].search(query_stems, k)

        # Stage 1, recall: sections fused by RRF; every list votes for the sections it found.
        section_rankings = {
            "dense_sentence": _unique(idx.sentences[r].section_id for r, _ in dense_s),
            "bm25_sentence": _unique(idx.sentences[r].section_id for r, _ in bm25_s),
            "dense_chunk": _unique(idx.chunks[r].section_id for r, _ in dense_c),
            "bm25_chunk": _unique(idx.chunks[r].section_id for r, _ in bm25_c),
            "dense_heading": [
                idx.headings[r].section_id for r, _ in dense_h if self._is_heading[r]
            ],
            "bm25_heading": [idx.headings[r].section_id for r, _ in bm25_h if self._is_heading[r]],
        }
        section_rrf = rrf(section_rankings, self.weights, self.rrf_k)
        top_sections = [
            sid for sid, _ in sorted(section_rrf.items(), key=lambda kv: (-kv[1], kv[0]))
        ]
        rows = dict.fromkeys(r for r, _ in [*dense_s, *bm25_s])
        for sid in top_sections[:CANDIDATE_SECTIONS]:
            rows.update(dict.fromkeys(self._rows_of_section[sid]))
        candidates = list(rows)

        # Stage 2, precision: RRF throws magnitudes away ("far better" and "slightly better" both
        # rank first); the final order weighs the raw cosine, the BM25 score and the heading match.
        top_lexical = float(lexical.max()) if len(lexical) else 0.0
        cosine = self._sentence_vectors[candidates] @ query_vector
        heading_cos = self._heading_vectors @ query_vector
        hits = []
        for row, cos in zip(candidates, cosine, strict=True):
            sent = idx.sentences[row]
            h = self._heading_row[sent.section_id]
            heading = float(heading_cos[h]) if self._is_heading[h] else TITLE_HEADING_MATCH
            lex = float(lexical[row]) / top_lexical if top_lexical > 0 else 0.0
            score = float(cos) + self.lexical_weight * lex + self.heading_weight * heading
            hits.append(
                Hit(
                    "sentence",
                    sent.sentence_id,
                    sent.doc_id,
                    sent.section_id,
                    sent.start,
                    sent.end,
                    sent.text,
                    score,
                    float(cos),
                    float(lexical[row]) if top_lexical > 0 else None,
                )
            )
        hits.sort(key=lambda hit: (-hit.score, hit.start))
        sections: dict[str, float] = {}
        for hit in hits:
            sections.setdefault(hit.section_id, hit.score)
        best_dense = max((s for hits_ in (dense_s, dense_c) for _, s in hits_[:1]), default=-1.0)
        return Retrieval(
            sentences=hits,
            sections=list(sections.items()),
            best_dense=best_dense,
            unknown_terms=unknown,
            foreign_terms=tuple(t for t in unknown if t in foreign_topics()),
            content_terms=len(topical),
        )

    def passages(self, question: str, query_vector: Vectors, k: int = 5) -> list[Hit]:
        """Chunks ranked by fused dense and keyword rank: what `ragbot search` shows."""
        idx = self.index
        tokens = self.correct(words(question))
        dense = idx.search("chunks", query_vector, self.candidates)
        lexical = self.bm25["chunk"].search(stems(tokens), self.candidates)
        fused = rrf(
            {"dense": [r for r, _ in dense], "bm25": [r for r, _ in lexical]}, {}, self.rrf_k
        )
        dense_of = dict(dense)
        lexical_of = dict(lexical)
        out = []
        for row, score in sorted(fused.items(), key=lambda kv: -kv[1])[:k]:
            chunk: Chunk = idx.chunks[row]
            out.append(
                Hit(
                    "chunk",
                    chunk.chunk_id,
                    chunk.doc_id,
                    chunk.section_id,
                    chunk.start,
                    chunk.end,
                    chunk.text,
                    score,
                    dense_of.get(row),
                    lexical_of.get(row),
                )
            )
        return out


def _all_vectors(index: Any) -> Vectors:
    return (
        index.reconstruct_n(0, index.ntotal) if index.ntotal else np.zeros((0, index.d), np.float32)
    )


def _unique(ids: Iterable[str]) -> list[str]:
    """First occurrences, in order: a section's rank is that of its best sentence or chunk."""
    return list(dict.fromkeys(ids))
