"""Retrieval: every sentence scored by the learned ranker over dense, keyword and example signals."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from ragbot.config import Settings
from ragbot.embeddings import Vectors
from ragbot.fusion import Ranker, rrf, signals
from ragbot.index import Index, is_title_section
from ragbot.keywords import KINDS
from ragbot.models import Chunk, Hit
from ragbot.query import Vocabulary, normalize, stems, words

# "glutamate, a neurotransmitter", "neuroplasticity – the brain's ability", "NMDA (N-methyl-...)":
# a word followed by an appositive or a gloss is being defined.
_DEFINITION = re.compile(
    r"([A-Za-z][\w-]*)(?:,\s+(?:a|an)\s|\s+[–—-]\s+the\s|\s+\(|\s+(?:is|are)\s+(?:a|an)\s|\s+refers\s+to\s)"
)


# "what is X", "wat r X", "define X", "meaning of X", "X meaning": a question asking for a definition.
DEFINITION_QUESTION = re.compile(
    r"\b(?:what|wat|wht|whats|what's)\s+(?:is|are|r|s|does|do)\b|\bwhat's\b|\bdefin|\bmeaning\b|\bmean\?"
)


def defined_terms(sentence: str) -> frozenset[str]:
    """Stems of the words a sentence defines."""
    return frozenset(stems([normalize(m.group(1)) for m in _DEFINITION.finditer(sentence)]))


@dataclass(frozen=True)
class RetrievalPolicy:
    """The tunables of retrieval, built from Settings."""

    candidates: int  # hits per list for `ragbot search`
    rrf_k: int

    @classmethod
    def from_settings(cls, settings: Settings) -> RetrievalPolicy:
        """The policy the settings describe."""
        return cls(candidates=settings.candidates, rrf_k=settings.rrf_k)


@dataclass(frozen=True)
class Retrieval:
    """What the answer composer works from."""

    sentences: list[Hit]  # every sentence, best first; score: probability that it answers
    sections: list[tuple[str, float]]  # section_id and its best sentence's score, best first

    @classmethod
    def from_ranked(cls, hits: list[Hit]) -> Retrieval:
        """Sentences already ranked best first; each section scored by its best sentence."""
        sections: dict[str, float] = {}
        for hit in hits:
            sections.setdefault(hit.section_id, hit.score)
        return cls(hits, list(sections.items()))

    @property
    def best(self) -> float:
        """The best sentence's probability of answering (0 when the index is empty)."""
        return self.sentences[0].score if self.sentences else 0.0


class Retriever:
    """Scores the sentences of a loaded index for a question."""

    def __init__(self, index: Index, ranker: Ranker, policy: RetrievalPolicy) -> None:
        self.index = index
        self.ranker = ranker
        self.policy = policy
        # Every vector in memory: the ranker scores every sentence (35 here; 16 MB at 11,000).
        self._sentence_vectors = _all_vectors(index.faiss["sentences"])
        heading_vectors = _all_vectors(index.faiss["headings"])
        heading_row = {h.section_id: i for i, h in enumerate(index.headings)}
        rows = [heading_row[s.section_id] for s in index.sentences]
        # The introduction's "heading" is the document title: it matches every question.
        self._heading_match = np.array(
            [not is_title_section(h, index.documents[h.doc_id]) for h in index.headings]
        )[rows]
        self._sentence_heading_vectors = heading_vectors[rows] if rows else heading_vectors
        self._opener = np.array([s.ordinal == 0 for s in index.sentences])
        self._defined = [defined_terms(s.text) for s in index.sentences]
        self.bm25 = {kind: index.keyword_index(kind) for kind in KINDS}
        self.vocabulary = Vocabulary(
            [s.text for s in index.sentences] + [h.heading for h in index.headings]
        )

    def keywords(self, question: str) -> list[str]:
        """The question's stemmed content words, misspellings corrected against the corpus."""
        return stems(self.vocabulary.correct(words(question)))

    def features(
        self, question: str, query_vector: Vectors, exclude_group: str | None = None
    ) -> Any:
        """The ranker's signals for every sentence (see fusion.Signal)."""
        cosine = (self._sentence_vectors @ query_vector).astype(np.float64)
        heading = np.where(
            self._heading_match, self._sentence_heading_vectors @ query_vector, 0.0
        ).astype(np.float64)
        terms = self.keywords(question)
        keyword = self.bm25["sentence"].scores(terms).astype(np.float64)
        votes = self.ranker.pool.votes(query_vector, len(cosine), exclude_group)
        asked = set(terms) if DEFINITION_QUESTION.search(normalize(question)) else set()
        defines = np.array([bool(asked & d) for d in self._defined], dtype=bool)
        return signals(cosine, votes, heading, keyword, self._opener, defines)

    def retrieve(self, question: str, query_vector: Vectors) -> Retrieval:
        """Every sentence, ranked by the probability that it answers the question."""
        idx = self.index
        if not idx.sentences:
            return Retrieval([], [])
        feats = self.features(question, query_vector)
        probs = self.ranker.probabilities(feats)
        order = np.argsort(-probs, kind="stable")
        hits = []
        for row in order:
            sent = idx.sentences[row]
            hits.append(
                Hit(
                    "sentence",
                    sent.sentence_id,
                    sent.doc_id,
                    sent.section_id,
                    sent.start,
                    sent.end,
                    sent.text,
                    float(probs[row]),
                    float(feats[row, 0]),
                    float(feats[row, 3]),
                )
            )
        return Retrieval.from_ranked(hits)

    def passages(self, question: str, query_vector: Vectors, k: int = 5) -> list[Hit]:
        """Chunks ranked by fused dense and keyword rank: what `ragbot search` shows."""
        idx = self.index
        n = self.policy.candidates
        dense = idx.search("chunks", query_vector, n)
        lexical = self.bm25["chunk"].search(self.keywords(question), n)
        fused = rrf(
            {"dense": [r for r, _ in dense], "bm25": [r for r, _ in lexical]}, {}, self.policy.rrf_k
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
