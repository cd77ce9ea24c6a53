"""Reference systems measured beside ragbot, in the same run, on the same metrics.

- naive: the page as published (front matter stripped, furniture kept) cut into fixed-size
  character chunks, embedded with ragbot's model; the top chunk is the answer. No abstention, no
  guardrails, no disclaimer, no `[n]` markers: what a first RAG tutorial builds.
- bm25: ragbot's own cleaned sentences ranked by BM25 alone (no dense search, no fusion, no typo
  correction); the top sentences are the answer, cited like ragbot's. No abstention, no guardrails.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ragbot.corpus import corpus_files, split_front_matter
from ragbot.embeddings import Embedder, Vectors
from ragbot.evaluation.core import Outcome
from ragbot.evaluation.metrics import dedupe
from ragbot.index import Index
from ragbot.models import Answer, Citation, Document
from ragbot.query import stems, words

# The naive baseline; the same size and overlap as LangChain's RAG tutorial.
NAIVE_CHUNK_CHARS = 1000
NAIVE_OVERLAP_CHARS = 200
_HEADING_LINE = re.compile(r"^[ \t]*#{0,6}[ \t]*(.+?)[ \t#]*$", re.M)


@dataclass(frozen=True)
class RawChunk:
    """A fixed-size slice of a raw file body; `text == body[start:end]` of that file."""

    doc_id: str
    start: int
    end: int
    text: str
    section: str  # heading in force at the chunk's middle
    sections: tuple[str, ...]  # every section the chunk touches, in page order


def raw_body(path: Path) -> str:
    """A corpus file as published: front matter stripped, nothing cleaned."""
    raw = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".html", ".htm"):
        return raw
    return split_front_matter(raw, path)[1]


def char_windows(
    length: int, size: int = NAIVE_CHUNK_CHARS, overlap: int = NAIVE_OVERLAP_CHARS
) -> list[tuple[int, int]]:
    """Fixed-size windows covering `length` characters, consecutive ones overlapping."""
    if not 0 <= overlap < size:
        raise ValueError("overlap must be at least 0 and less than the chunk size")
    if length <= 0:
        return []
    out = []
    start = 0
    while True:
        end = min(start + size, length)
        out.append((start, end))
        if end == length:
            return out
        start = end - overlap


def heading_marks(body: str, headings: list[str]) -> list[tuple[int, str]]:
    """Positions where a line of the raw body is one of the article's headings (any `#` level)."""
    known = set(headings)
    return [
        (match.start(), match.group(1))
        for match in _HEADING_LINE.finditer(body)
        if match.group(1) in known
    ]


def naive_chunks(corpus_dir: Path, documents: dict[str, Document]) -> list[RawChunk]:
    """Every raw file of the corpus cut into windows, each labelled with the sections it spans."""
    by_source = {d.source: d for d in documents.values()}
    out: list[RawChunk] = []
    for path in corpus_files(corpus_dir):
        doc = by_source.get(path.name)
        if doc is None:
            continue
        body = raw_body(path)
        intro = doc.sections[0].heading if doc.sections else doc.title
        marks = heading_marks(body, [s.heading for s in doc.sections])

        def in_force(pos: int, marks: list[tuple[int, str]] = marks, intro: str = intro) -> str:
            return next((h for p, h in reversed(marks) if p <= pos), intro)

        for start, end in char_windows(len(body)):
            spanned = [in_force(start)] + [h for p, h in marks if start < p < end]
            out.append(
                RawChunk(
                    doc.doc_id,
                    start,
                    end,
                    body[start:end],
                    in_force((start + end) // 2),
                    tuple(dedupe(spanned)),
                )
            )
    return out


class NaiveBaseline:
    """Top-1 fixed-size raw chunk by cosine similarity, returned whole."""

    name = "naive"

    def __init__(
        self, embedder: Embedder, corpus_dir: Path, documents: dict[str, Document]
    ) -> None:
        self.embedder = embedder
        self.documents = documents
        self.chunks = naive_chunks(corpus_dir, documents)
        self.vectors = embedder.embed([c.text for c in self.chunks])

    def __call__(self, question: str) -> Outcome:
        """The best chunk as the answer; raw offsets unless the stored text holds the chunk."""
        scores = self.vectors @ self.embedder.embed([question])[0]
        order = [int(i) for i in np.argsort(-scores, kind="stable")]
        best = self.chunks[order[0]]
        doc = self.documents[best.doc_id]
        found = doc.text.find(best.text)
        start, end = (found, found + len(best.text)) if found >= 0 else (best.start, best.end)
        citation = Citation(
            1,
            doc.doc_id,
            doc.title,
            best.section,
            best.text,
            start,
            end,
            doc.url,
            round(float(scores[order[0]]), 6),
        )
        sections = dedupe(h for i in order for h in self.chunks[i].sections)
        return Outcome(Answer("answered", best.text, (citation,), "", ()), tuple(sections))


class SentenceBaseline:
    """Top sentences by one score per sentence, cited in rank order; always answers."""

    name = "sentences"

    def __init__(self, index: Index, max_sentences: int = 3) -> None:
        self.index = index
        self.max_sentences = max_sentences

    def scores(self, question: str) -> Vectors:
        """One score per sentence of the index (higher is better)."""
        raise NotImplementedError

    def __call__(self, question: str) -> Outcome:
        """The top sentences; with no score above zero, the article's first sentences."""
        idx = self.index
        scores = self.scores(question)
        order = [int(i) for i in np.argsort(-scores, kind="stable")]
        parts: list[str] = []
        citations: list[Citation] = []
        for n, row in enumerate(order[: self.max_sentences], start=1):
            sent = idx.sentences[row]
            doc = idx.documents[sent.doc_id]
            parts.append(f"{sent.text} [{n}]")
            citations.append(
                Citation(
                    n,
                    doc.doc_id,
                    doc.title,
                    idx.sections[sent.section_id].heading,
                    doc.text[sent.start : sent.end],
                    sent.start,
                    sent.end,
                    doc.url,
                    round(float(scores[row]), 6),
                )
            )
        sections = dedupe(idx.sections[idx.sentences[row].section_id].heading for row in order)
        return Outcome(
            Answer("answered", " ".join(parts), tuple(citations), "", ()), tuple(sections)
        )


class DenseBaseline(SentenceBaseline):
    """The issue's 20-line baseline: the sentences (heading in front) most similar to the
    question, dense only: no keywords, no fusion, no abstention, no guardrails."""

    name = "dense"

    def __init__(self, index: Index, embedder: Embedder, max_sentences: int = 3) -> None:
        super().__init__(index, max_sentences)
        self.embedder = embedder
        faiss_index = index.faiss["sentences"]
        self.vectors = faiss_index.reconstruct_n(0, faiss_index.ntotal)

    def scores(self, question: str) -> Vectors:
        """Cosine similarity of the question with each heading + sentence."""
        scores: Vectors = self.vectors @ self.embedder.embed([question])[0]
        return scores


class Bm25Baseline(SentenceBaseline):
    """ragbot's sentences ranked by BM25 alone; the top `max_sentences`, cited in rank order."""

    name = "bm25"

    def __init__(self, index: Index, max_sentences: int = 3) -> None:
        super().__init__(index, max_sentences)
        self.bm25 = index.keyword_index("sentence")

    def scores(self, question: str) -> Vectors:
        """BM25 of each sentence (zeros when no word is shared)."""
        return self.bm25.scores(stems(words(question)))
