"""How ranking signals combine: reciprocal rank fusion, and the learned sentence ranker.

The sentence ranker is a logistic regression over a few signals per (question, sentence):
cosine similarity, keyword score, heading match, position, and the votes of the labelled example
questions nearest to this one (each votes for the sentences that answer it). It is trained by the
build from the same batches as the router (`learn.py`), with every example's votes cast only by
other batches, so the weights learn how far to trust a vote on wording nobody wrote.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from ragbot.embeddings import Vectors
from ragbot.errors import IndexCorrupt

K = TypeVar("K")
ArrayF = npt.NDArray[np.float64]

RRF_K = 60  # Cormack, Clarke & Buettcher 2009
RANKER_FILE = "ranker.npz"
# Nearest example questions that vote, and how sharply a closer one counts more (sim ** power).
VOTE_NEIGHBOURS = 10
VOTE_POWER = 4
RANKER_C = 1.0  # inverse regularisation; the features are few and on similar scales


class Signal(StrEnum):
    """The ranker's features, in column order."""

    COSINE = "cosine"  # question vs heading + sentence
    VOTE = "vote"  # nearest example questions' votes, scaled to the best sentence's
    HEADING = "heading"  # question vs the section heading
    KEYWORD = "keyword"  # BM25, scaled to the best sentence's
    OPENER = "opener"  # first sentence of its section: often restates the heading
    DENSE_RANK = "dense_rank"  # 1 / (1 + rank by cosine)
    COSINE_GAP = "cosine_gap"  # cosine less the best cosine
    VOTE_X_COSINE = "vote_x_cosine"
    DEFINES = (
        "defines"  # the sentence defines a word of the question ("glutamate, a neurotransmitter")
    )


SIGNALS: tuple[Signal, ...] = tuple(Signal)


def rrf(
    rankings: Mapping[str, Sequence[K]], weights: Mapping[str, float], k: int = RRF_K
) -> dict[K, float]:
    """Weighted reciprocal rank fusion: sum of weight / (k + rank) over the lists that hold a key;
    a list without a weight counts 1."""
    fused: dict[K, float] = {}
    for name, ranking in rankings.items():
        w = weights.get(name, 1.0)
        for rank, key in enumerate(ranking, start=1):
            fused[key] = fused.get(key, 0.0) + w / (k + rank)
    return fused


@dataclass(frozen=True)
class ExamplePool:
    """Labelled example questions and the sentence rows that answer each (the voters)."""

    vectors: Vectors  # (examples, dim)
    answers: tuple[tuple[int, ...], ...]  # sentence rows per example
    groups: tuple[str, ...]  # batch of each example: votes in training come from other batches

    @cached_property
    def _group_array(self) -> npt.NDArray[np.str_]:
        return np.array(self.groups)  # once, not at each of the build's 2,000 votes

    def votes(self, query: Vectors, sentences: int, exclude_group: str | None = None) -> ArrayF:
        """Each sentence's share of the nearest examples' similarity, scaled so the best is 1."""
        out = np.zeros(sentences)
        if not len(self.answers):
            return out
        sims = np.asarray(self.vectors @ query, dtype=np.float64)
        if exclude_group is not None:
            sims = np.where(self._group_array == exclude_group, -1.0, sims)
        k = min(VOTE_NEIGHBOURS, len(sims))
        for j in np.argpartition(-sims, k - 1)[:k]:
            if sims[j] > 0:
                rows = self.answers[j]
                for row in rows:
                    out[row] += sims[j] ** VOTE_POWER / len(rows)
        top = out.max()
        return out / top if top > 0 else out


def answers_as_ids(
    answers: Sequence[tuple[int, ...]], sentence_ids: Sequence[str]
) -> dict[str, Any]:
    """A pool's answers for an .npz: sentence ids (stable across builds), flat, and counts."""
    return {
        "answer_ids": np.array([sentence_ids[r] for rows in answers for r in rows], dtype=str),
        "answer_counts": np.array([len(a) for a in answers], dtype=np.int64),
    }


def answers_from_ids(
    flat: Sequence[str], counts: Sequence[int], sentence_ids: Sequence[str]
) -> tuple[tuple[int, ...], ...] | None:
    """The answers `answers_as_ids` stored, as this index's sentence rows; None when one of them
    is not a sentence of this index (the file belongs to another build)."""
    row_of = {sid: i for i, sid in enumerate(sentence_ids)}
    if any(s not in row_of for s in flat):
        return None
    answers: list[tuple[int, ...]] = []
    start = 0
    for count in counts:
        answers.append(tuple(row_of[s] for s in flat[start : start + count]))
        start += count
    return tuple(answers)


def signals(
    cosine: ArrayF,
    votes: ArrayF,
    heading: ArrayF,
    keyword: ArrayF,
    opener: npt.NDArray[np.bool_],
    defines: npt.NDArray[np.bool_],
) -> ArrayF:
    """The feature matrix, one row per sentence, columns in SIGNALS order."""
    rank = np.empty(len(cosine))
    rank[np.argsort(-cosine, kind="stable")] = np.arange(len(cosine))
    top_keyword = keyword.max() if len(keyword) else 0.0
    kw = keyword / top_keyword if top_keyword > 0 else np.zeros_like(keyword)
    best = cosine.max() if len(cosine) else 0.0
    return np.stack(
        [
            cosine,
            votes,
            heading,
            kw,
            opener.astype(np.float64),
            1.0 / (1.0 + rank),
            cosine - best,
            votes * cosine,
            defines.astype(np.float64),
        ],
        axis=1,
    )


@dataclass(frozen=True)
class Ranker:
    """The learned weights of the signals and the example pool that votes."""

    weights: ArrayF  # (len(SIGNALS),)
    bias: float
    pool: ExamplePool
    meta: dict[str, Any]

    def probabilities(self, features: ArrayF) -> ArrayF:
        """How likely each sentence is to answer the question (0-1)."""
        z = features @ self.weights + self.bias
        out: ArrayF = 1.0 / (1.0 + np.exp(-z))
        return out

    def save(self, folder: Path, sentence_ids: Sequence[str]) -> Path:
        """Write ranker.npz; the pool's answers are stored as sentence ids, stable across builds."""
        path = folder / RANKER_FILE
        with path.open("wb") as fh:
            np.savez(
                fh,
                weights=self.weights,
                bias=np.array([self.bias]),
                vectors=self.pool.vectors.astype(np.float32),
                **answers_as_ids(self.pool.answers, sentence_ids),
                meta=np.array(json.dumps(self.meta, sort_keys=True)),
            )
        return path

    @classmethod
    def load(cls, folder: Path, sentence_ids: Sequence[str]) -> Ranker:
        """Read ranker.npz, mapping its sentence ids back to this index's rows."""
        path = folder / RANKER_FILE
        try:
            with np.load(path, allow_pickle=False) as data:
                weights = data["weights"].astype(np.float64)
                bias = float(data["bias"][0])
                vectors = np.ascontiguousarray(data["vectors"], dtype=np.float32)
                flat = [str(x) for x in data["answer_ids"]]
                counts = [int(c) for c in data["answer_counts"]]
                meta = json.loads(str(data["meta"]))
        except (OSError, KeyError, ValueError) as exc:
            raise IndexCorrupt(
                f"{folder}/{RANKER_FILE} cannot be read ({exc}): run `ragbot build-index`"
            ) from exc
        answers = answers_from_ids(flat, counts, sentence_ids)
        if weights.shape != (len(SIGNALS),) or answers is None:
            raise IndexCorrupt(
                f"{folder}/{RANKER_FILE} does not match this index: run `ragbot build-index`"
            )
        pool = ExamplePool(vectors, answers, ("",) * len(answers))
        return cls(weights, bias, pool, meta)


# Without labelled examples: a probability that rises with cosine similarity (0.5 at 0.5) and,
# a little, with the keyword score. Only a corpus none of the batches answers gets this.
FALLBACK_WEIGHTS = {Signal.COSINE: 10.0, Signal.KEYWORD: 1.0}
FALLBACK_BIAS = -5.0


def untrained_ranker(pool: ExamplePool) -> Ranker:
    """The ranker of a corpus with no labelled answers."""
    weights = np.array([FALLBACK_WEIGHTS.get(s, 0.0) for s in SIGNALS])
    return Ranker(weights, FALLBACK_BIAS, pool, {"examples": 0, "fallback": True})


def train_ranker(
    pool: ExamplePool, features: Sequence[ArrayF], gold: Sequence[Sequence[int]]
) -> Ranker:
    """Fit the weights on every example's sentences (label: the sentence answers it)."""
    from sklearn.linear_model import LogisticRegression

    x = np.concatenate(features)
    y = np.concatenate(
        [np.isin(np.arange(len(f)), list(g)) for f, g in zip(features, gold, strict=True)]
    )
    model = LogisticRegression(C=RANKER_C, max_iter=2000)
    model.fit(x, y)
    weights = np.asarray(model.coef_[0], dtype=np.float64)
    meta = {
        "examples": len(features),
        "signals": [s.value for s in SIGNALS],
        "weights": {s.value: round(float(w), 4) for s, w in zip(SIGNALS, weights, strict=True)},
        "C": RANKER_C,
        "neighbours": VOTE_NEIGHBOURS,
        "power": VOTE_POWER,
    }
    return Ranker(weights, float(model.intercept_[0]), pool, meta)
