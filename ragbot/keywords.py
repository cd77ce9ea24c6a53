"""The keyword index: BM25 over each kind of record, computed by bm25s at build, served by numpy.

bm25s computes every (term, record) score when it indexes; a query only sums the columns of its
terms. The build keeps those columns (`keywords.npz`), so serving needs neither bm25s nor the
scipy it imports, which was a quarter of the cold start (README: Benchmarks).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ragbot.embeddings import Vectors
from ragbot.errors import IndexCorrupt
from ragbot.models import Chunk, Sentence
from ragbot.query import stems, words

KEYWORDS_FILE = "keywords.npz"
KINDS = ("sentence", "chunk")  # the records a question's words are looked up in


@dataclass(frozen=True)
class KeywordIndex:
    """BM25 over one kind of record, as a sparse term-by-record matrix (CSC: one column a term)."""

    terms: dict[str, int]  # term -> column
    data: np.ndarray  # float32 BM25 scores, column by column
    rows: np.ndarray  # the record of each score
    starts: np.ndarray  # column j is data[starts[j]:starts[j + 1]]
    size: int  # records

    @classmethod
    def build(cls, corpus: Sequence[Sequence[str]]) -> KeywordIndex:
        """Index records given as their (stemmed) tokens; build time only (imports bm25s)."""
        vocab = sorted({tok for doc in corpus for tok in doc})
        if not vocab:
            empty = np.zeros(0, dtype=np.int32)
            return cls({}, np.zeros(0, dtype=np.float32), empty, np.zeros(1, np.int64), len(corpus))
        import bm25s

        # bm25s sets its own logger to DEBUG on import; its per-index chatter is noise here.
        logging.getLogger("bm25s").setLevel(logging.WARNING)
        model = bm25s.BM25()
        model.index([list(doc) for doc in corpus], show_progress=False)
        scores = model.scores
        columns = {tok: model.vocab_dict[tok] for tok in vocab}
        return cls(
            columns,
            np.asarray(scores["data"], dtype=np.float32),
            np.asarray(scores["indices"], dtype=np.int32),
            np.asarray(scores["indptr"], dtype=np.int64),
            int(scores["num_docs"]),
        )

    def scores(self, tokens: Sequence[str]) -> Vectors:
        """BM25 score of every record: the sum of each known token's column, a token counted as
        often as it occurs (as bm25s does); zeros when no token is known."""
        out = np.zeros(self.size, dtype=np.float32)
        for tok in tokens:
            col = self.terms.get(tok)
            if col is not None:
                start, end = self.starts[col], self.starts[col + 1]
                # A record appears once in a column, so a plain indexed add is exact (and several
                # times faster than np.add.at, which bm25s uses).
                out[self.rows[start:end]] += self.data[start:end]
        return out

    def search(self, tokens: Sequence[str], k: int) -> list[tuple[int, float]]:
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


def index_records(
    sentences: Sequence[Sentence], chunks: Sequence[Chunk]
) -> dict[str, KeywordIndex]:
    """The keyword index of each kind of record, over their stemmed content words."""
    texts = {"sentence": [s.text for s in sentences], "chunk": [c.text for c in chunks]}
    return {kind: KeywordIndex.build([stems(words(t)) for t in texts[kind]]) for kind in KINDS}


def save_keywords(folder: Path, indexes: Mapping[str, KeywordIndex]) -> None:
    """Write every kind's index into one file of the build."""
    arrays: dict[str, Any] = {}
    for kind, index in indexes.items():
        arrays[f"{kind}.terms"] = np.array(list(index.terms), dtype=np.str_)
        arrays[f"{kind}.columns"] = np.array(list(index.terms.values()), dtype=np.int64)
        arrays[f"{kind}.data"] = index.data
        arrays[f"{kind}.rows"] = index.rows
        arrays[f"{kind}.starts"] = index.starts
        arrays[f"{kind}.size"] = np.array(index.size, dtype=np.int64)
    with (folder / KEYWORDS_FILE).open("wb") as fh:
        np.savez(fh, **arrays)


def load_keywords(folder: Path) -> dict[str, KeywordIndex]:
    """The build's keyword indexes, or IndexCorrupt saying what to run."""
    try:
        with np.load(folder / KEYWORDS_FILE, allow_pickle=False) as npz:
            return {
                kind: KeywordIndex(
                    dict(
                        zip(
                            npz[f"{kind}.terms"].tolist(),
                            npz[f"{kind}.columns"].tolist(),
                            strict=True,
                        )
                    ),
                    npz[f"{kind}.data"],
                    npz[f"{kind}.rows"],
                    npz[f"{kind}.starts"],
                    int(npz[f"{kind}.size"]),
                )
                for kind in KINDS
            }
    except (OSError, ValueError, KeyError) as exc:
        raise IndexCorrupt(
            f"{folder} has no readable keyword index ({exc}): run `ragbot build-index`"
        ) from exc
