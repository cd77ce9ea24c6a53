"""Choose verbatim sentences for a reply, number the citations -> Answer."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ragbot.guardrails import DISCLAIMER, NO_ANSWER_MESSAGE
from ragbot.index import Index
from ragbot.models import Answer, Citation, Hit, Sentence
from ragbot.retrieval import Retrieval

# A sentence opening with one of these leans on the sentence before it ("It primarily acts on...").
_ANAPHORA = re.compile(
    r"^(it|its|it's|this|these|that|those|they|their|such|however|additionally|moreover|furthermore|"
    r"also|for example|for instance|in addition|as a result|therefore|thus|ultimately)\b",
    re.IGNORECASE,
)
# An extra sentence joins the reply only if its fused score is this close to the best one's.
EXTRA_SENTENCE_RATIO = 0.8


@dataclass(frozen=True)
class AnswerPolicy:
    """The tunables of composition (settings; the evaluation chooses them)."""

    max_sentences: int = 3
    min_relevance: float = 0.42
    extra_ratio: float = EXTRA_SENTENCE_RATIO


def leans_on_previous(text: str) -> bool:
    """True for a sentence that only makes sense after its neighbour."""
    return bool(_ANAPHORA.match(text.lstrip("\"'“‘(")))


def is_answerable(retrieval: Retrieval, policy: AnswerPolicy) -> bool:
    """Whether the best passage is relevant enough to quote (see README: choosing the threshold)."""
    return bool(retrieval.sentences) and retrieval.best_dense >= policy.min_relevance


def select_sentences(retrieval: Retrieval, index: Index, policy: AnswerPolicy) -> list[tuple[Sentence, float]]:
    """The sentences to quote, in document order, each with the score it was chosen by."""
    hits: Sequence[Hit] = retrieval.sentences
    best = hits[0]
    budget = policy.max_sentences
    chosen: dict[str, float] = {}

    def add_with_context(sentence_id: str, score: float) -> bool:
        sent = index.sentence_by_id[sentence_id]
        group = [sent]
        prev = _previous(index, sent)
        if prev is not None and leans_on_previous(sent.text) and prev.sentence_id not in chosen:
            group.insert(0, prev)
        if len(chosen) + len(group) > budget:
            if len(group) == 2 and not chosen:
                group = group[1:]  # no room for context: the best sentence alone still answers
            else:
                return False
        for s in group:
            chosen.setdefault(s.sentence_id, score)
        return True

    add_with_context(best.ref, best.score)
    for hit in hits[1:]:
        if len(chosen) >= budget or hit.score < policy.extra_ratio * best.score:
            break
        if hit.ref in chosen or hit.section_id != best.section_id:
            continue  # one section per reply keeps it coherent
        add_with_context(hit.ref, hit.score)
    sentences = [(index.sentence_by_id[sid], score) for sid, score in chosen.items()]
    return sorted(sentences, key=lambda pair: (pair[0].doc_id, pair[0].start))


def _previous(index: Index, sent: Sentence) -> Sentence | None:
    siblings = index.section_sentences.get(sent.section_id, [])
    return siblings[sent.ordinal - 1] if sent.ordinal > 0 else None


def compose(retrieval: Retrieval, index: Index, policy: AnswerPolicy, suggestions: int = 3) -> Answer:
    """An answered reply quoting the chosen sentences, or a no_answer reply with no citations."""
    if not is_answerable(retrieval, policy):
        return Answer("no_answer", NO_ANSWER_MESSAGE, (), DISCLAIMER, tuple(default_suggestions(index, suggestions)))
    chosen = select_sentences(retrieval, index, policy)
    parts: list[str] = []
    citations: list[Citation] = []
    for number, (sent, score) in enumerate(chosen, start=1):
        doc = index.documents[sent.doc_id]
        section = index.sections[sent.section_id]
        parts.append(f"{sent.text} [{number}]")
        citations.append(
            Citation(
                id=number,
                doc_id=doc.doc_id,
                title=doc.title,
                section=section.heading,
                quote=doc.text[sent.start : sent.end],
                start=sent.start,
                end=sent.end,
                url=doc.url,
                score=round(score, 6),
            )
        )
    used = {index.sentence_by_id[h.ref].section_id for h in retrieval.sentences[:1]}
    follow_ups = [index.sections[sid].heading for sid, _ in retrieval.sections
                  if sid not in used and index.sections[sid].heading.endswith("?")]
    return Answer("answered", " ".join(parts), tuple(citations), DISCLAIMER, tuple(follow_ups[:suggestions]))


def default_suggestions(index: Index, n: int) -> list[str]:
    """The article's own questions (headings ending in "?"), in document order."""
    out: list[str] = []
    for section in index.headings:
        if section.heading.endswith("?") and section.heading not in out:
            out.append(section.heading)
    return out[:n]
