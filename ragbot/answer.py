"""Choose verbatim sentences for a reply, number the citations -> Answer."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ragbot.config import Settings
from ragbot.guardrails import DISCLAIMER, NO_ANSWER_MESSAGE
from ragbot.index import Index
from ragbot.models import Answer, Citation, Sentence
from ragbot.retrieval import Retrieval


@dataclass(frozen=True)
class AnswerPolicy:
    """The tunables of composition, built from Settings (the evaluation chooses them)."""

    max_sentences: int
    min_answer_score: float  # least ranker probability of the best sentence before quoting
    min_article: float  # least router probability that the question is about the article
    extra_ratio: float  # a further sentence joins if its probability is this share of the best
    followup_extra_ratio: float  # the same for a follow-up, whose ranking is less certain

    @classmethod
    def from_settings(cls, settings: Settings) -> AnswerPolicy:
        """The policy the settings describe."""
        return cls(
            max_sentences=settings.max_sentences,
            min_answer_score=settings.min_answer_score,
            min_article=settings.min_article_probability,
            extra_ratio=settings.extra_sentence_ratio,
            followup_extra_ratio=settings.followup_extra_sentence_ratio,
        )

    def for_followup(self) -> AnswerPolicy:
        """The policy for a follow-up: its runner-up sentences join at the follow-up ratio."""
        return replace(self, extra_ratio=self.followup_extra_ratio)


def is_answerable(retrieval: Retrieval, policy: AnswerPolicy, article: float = 1.0) -> bool:
    """Whether to quote: the router reads the question as one about the article, and some
    sentence is likely enough to answer it (README: choosing the thresholds)."""
    return article >= policy.min_article and retrieval.best >= policy.min_answer_score


_PART_BREAK = re.compile(
    r"\?\s+(?=\S)|;\s+|,?\s+(?:and|also|plus|but)\s+(?=(?:how|what|why|when|where|which|who|is|are|does|do|"
    r"can|could|will|would)\b)",
    re.IGNORECASE,
)
MIN_PART_WORDS = 3
CONTEXT = True  # "and why?" is no question of its own


def split_question(question: str) -> list[str]:
    """The parts of a multi-part question ("How does it work, and how fast does it help?"), or []."""
    parts = [p.strip(" ,.?!") for p in _PART_BREAK.split(question)]
    parts = [p for p in parts if len(p.split()) >= MIN_PART_WORDS]
    return parts if len(parts) > 1 else []


def select_sentences(
    retrieval: Retrieval,
    index: Index,
    policy: AnswerPolicy,
    parts: Sequence[Retrieval] = (),
) -> list[tuple[Sentence, float]]:
    """The sentences to quote, in document order, with their scores: the best one, the best one
    for each part of a multi-part question, then others nearly as likely to answer.

    A sentence that leans on its neighbour ("It primarily acts on...") is quoted alone: measured
    on the labelled batches, bringing the neighbour along cost words and slots that a second
    answering sentence used better (README: evaluation)."""
    top = retrieval.sentences[0]
    chosen: dict[str, float] = {top.ref: top.score}
    for part in parts:
        if part.sentences and is_answerable(part, policy) and len(chosen) < policy.max_sentences:
            chosen.setdefault(part.sentences[0].ref, part.sentences[0].score)
    for hit in retrieval.sentences[1:]:
        if len(chosen) >= policy.max_sentences or hit.score < policy.extra_ratio * top.score:
            break
        chosen.setdefault(hit.ref, hit.score)
    sentences = [(index.sentence_by_id[sid], score) for sid, score in chosen.items()]
    return sorted(sentences, key=lambda pair: (pair[0].doc_id, pair[0].start))


def compose(
    retrieval: Retrieval,
    index: Index,
    policy: AnswerPolicy,
    suggestions: int = 3,
    parts: Sequence[Retrieval] = (),
    article: float = 1.0,
) -> Answer:
    """An answered reply quoting the chosen sentences, or a no_answer reply with no citations."""
    if not is_answerable(retrieval, policy, article):
        return Answer(
            "no_answer",
            NO_ANSWER_MESSAGE,
            (),
            DISCLAIMER,
            tuple(default_suggestions(index, suggestions)),
        )
    chosen = select_sentences(retrieval, index, policy, parts)
    used = {s.section_id for s, _ in chosen}
    follow_ups = [
        index.sections[sid].heading
        for sid, _ in retrieval.sections
        if sid not in used and index.sections[sid].heading.endswith("?")
    ]
    return quote(chosen, index, follow_ups[:suggestions])


def quote(
    chosen: Sequence[tuple[Sentence, float]], index: Index, suggestions: Sequence[str] = ()
) -> Answer:
    """An answered reply quoting `chosen` (in document order) with numbered citations."""
    quoted: list[str] = []
    citations: list[Citation] = []
    for number, (sent, score) in enumerate(chosen, start=1):
        doc = index.documents[sent.doc_id]
        section = index.sections[sent.section_id]
        quoted.append(f"{sent.text} [{number}]")
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
                ref=sent.sentence_id,
            )
        )
    return Answer("answered", " ".join(quoted), tuple(citations), DISCLAIMER, tuple(suggestions))


def default_suggestions(index: Index, n: int) -> list[str]:
    """The article's own questions (headings ending in "?"), in document order."""
    out: list[str] = []
    for section in index.headings:
        if section.heading.endswith("?") and section.heading not in out:
            out.append(section.heading)
    return out[:n]
