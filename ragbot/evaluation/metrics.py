"""Deterministic metrics, no LLM judge: section ranking, gold hits, citations, abstention."""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from ragbot.models import Answer

T = TypeVar("T")

MARKER = re.compile(r"\[(\d+)\]")


def dedupe(items: Iterable[T]) -> list[T]:
    """Items in first-seen order, each once (a ranking of sections from a ranking of sentences)."""
    return list(dict.fromkeys(items))


def recall_at_k(ranked: Sequence[str], gold: Collection[str], k: int) -> float:
    """Gold items in the top k over min(k, |gold|): capped recall (BEIR, Thakur et al. 2021).

    Capping keeps 1.0 reachable when a question has more gold sections than k.
    """
    relevant = set(gold)
    if not relevant or k < 1:
        raise ValueError("recall needs at least one gold item and k >= 1")
    return len(relevant & set(ranked[:k])) / min(k, len(relevant))


def reciprocal_rank(ranked: Sequence[str], gold: Collection[str]) -> float:
    """1 / rank of the first gold item; 0 when none is ranked."""
    relevant = set(gold)
    return next((1.0 / rank for rank, item in enumerate(ranked, start=1) if item in relevant), 0.0)


def ndcg_at_k(ranked: Sequence[str], gold: Collection[str], k: int = 5) -> float:
    """nDCG with binary gains and log2 discounts (Järvelin & Kekäläinen 2002)."""
    relevant = set(gold)
    if not relevant:
        raise ValueError("nDCG needs at least one gold item")
    dcg = sum(
        1.0 / math.log2(rank + 1)
        for rank, item in enumerate(ranked[:k], start=1)
        if item in relevant
    )
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(k, len(relevant)) + 1))
    return dcg / ideal


def hits_gold(text: str, gold_sentences: Iterable[str], key_phrases: Iterable[str]) -> bool:
    """The text holds a gold sentence or a key phrase, character for character."""
    return any(s in text for s in gold_sentences) or any(p in text for p in key_phrases)


def word_count(text: str) -> int:
    """Words a reader reads: `[n]` markers are not words."""
    return len(MARKER.sub(" ", text).split())


def citation_problems(answer: Answer, documents: Mapping[str, str]) -> list[str]:
    """Why the `[n]` markers, the citations and the documents disagree; [] when the reply is valid.

    Valid: every marker resolves to a citation, ids run 1..N in order of first appearance, every
    citation is used, and every quote is the document text at its offsets. An answered reply must
    cite; any other status must not.
    """
    problems: list[str] = []
    ids = [c.id for c in answer.citations]
    markers = [int(m) for m in MARKER.findall(answer.answer)]
    if answer.status == "answered" and not ids:
        problems.append("answered without a citation")
    if answer.status != "answered" and (ids or markers):
        problems.append(f"{answer.status} reply carries citations or markers")
    if ids != list(range(1, len(ids) + 1)):
        problems.append(f"citation ids {ids} are not 1..{len(ids)}")
    for n in sorted(set(markers) - set(ids)):
        problems.append(f"marker [{n}] has no citation")
    for n in sorted(set(ids) - set(markers)):
        problems.append(f"citation [{n}] is never marked in the answer")
    first_seen = dedupe(markers)
    if set(first_seen) == set(ids) and first_seen != sorted(first_seen):
        problems.append(f"markers first appear as {first_seen}, not in order")
    for c in answer.citations:
        problems.extend(_quote_problems(c.id, c.doc_id, c.quote, c.start, c.end, documents))
    return problems


def verbatim_problems(answer: Answer, documents: Mapping[str, str]) -> list[str]:
    """Why the reply is not verbatim: a quote unlike its document slice, or not in the answer."""
    if not answer.citations:
        return ["no quote"]
    problems: list[str] = []
    for c in answer.citations:
        problems.extend(_quote_problems(c.id, c.doc_id, c.quote, c.start, c.end, documents))
        if c.quote not in answer.answer:
            problems.append(f"quote [{c.id}] is not in the answer text")
    return problems


def _quote_problems(
    n: int, doc_id: str, quote: str, start: int, end: int, documents: Mapping[str, str]
) -> list[str]:
    text = documents.get(doc_id)
    if text is None:
        return [f"citation [{n}] names unknown document {doc_id!r}"]
    if not 0 <= start < end <= len(text):
        return [f"citation [{n}] offsets {start}:{end} fall outside the document"]
    if text[start:end] != quote:
        return [f"citation [{n}] quote differs from the document text at {start}:{end}"]
    return []


@dataclass(frozen=True)
class Prf:
    """Precision, recall and F1 of one decision; None where the denominator is empty."""

    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float | None:
        """TP / (TP + FP)."""
        return ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float | None:
        """TP / (TP + FN)."""
        return ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float | None:
        """2TP / (2TP + FP + FN): the harmonic mean, 0 (not undefined) when nothing was found."""
        return ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)


def prf(predicted: Sequence[bool], actual: Sequence[bool]) -> Prf:
    """Counts of a binary decision against the truth, item by item."""
    if len(predicted) != len(actual):
        raise ValueError("predicted and actual differ in length")
    pairs = list(zip(predicted, actual, strict=True))
    return Prf(
        tp=sum(p and a for p, a in pairs),
        fp=sum(p and not a for p, a in pairs),
        fn=sum(a and not p for p, a in pairs),
    )


def ratio(numerator: float, denominator: float) -> float | None:
    """numerator / denominator, or None (n/a) when there is nothing to divide by."""
    return numerator / denominator if denominator else None


def mean(values: Iterable[float]) -> float | None:
    """Arithmetic mean, or None for no values."""
    items = list(values)
    return sum(items) / len(items) if items else None


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th percentile with linear interpolation between closest ranks (numpy's default)."""
    items = sorted(values)
    if not items:
        return None
    pos = (len(items) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return items[lo] + (items[hi] - items[lo]) * (pos - lo)
