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
    r"also|for example|for instance|in addition|as a result|therefore|thus|ultimately)\b"
    # ... or points back within its first words: "By blocking these receptors, ..."
    r"|^(\w+[ ,]+){1,3}(these|those|this|such|the same|it|its|they|their)\b(?! is\b)",
    re.IGNORECASE,
)
# An extra sentence joins the reply only if its fused score is this close to the best one's.
EXTRA_SENTENCE_RATIO = 0.85
# ... and, from another section, only if this close: a two-part question may need two sections.
OTHER_SECTION_RATIO = 0.85


@dataclass(frozen=True)
class AnswerPolicy:
    """The tunables of composition (settings; the evaluation chooses them)."""

    max_sentences: int = 3
    min_relevance: float = 0.22
    unknown_penalty: float = 0.6
    extra_ratio: float = EXTRA_SENTENCE_RATIO
    other_section_ratio: float = OTHER_SECTION_RATIO


def leans_on_previous(text: str) -> bool:
    """True for a sentence that only makes sense after its neighbour."""
    return bool(_ANAPHORA.match(text.lstrip("\"'“‘(")))


def relevance(retrieval: Retrieval, policy: AnswerPolicy) -> float:
    """How well the article covers the question: the best passage's cosine similarity, less a
    penalty for the share of the question's topic words that the article never uses ("Is ketamine
    FDA approved?" is close to the article in meaning, but "FDA" and "approved" are not in it)."""
    if retrieval.foreign_terms:
        return (
            -1.0
        )  # it asks about another drug, an insurer, a price: a subject the article never names
    unknown_share = len(retrieval.unknown_terms) / max(1, retrieval.content_terms)
    return retrieval.best_dense - policy.unknown_penalty * unknown_share


def is_answerable(retrieval: Retrieval, policy: AnswerPolicy) -> bool:
    """Whether the article covers the question well enough to quote (README: choosing the threshold)."""
    return bool(retrieval.sentences) and relevance(retrieval, policy) >= policy.min_relevance


_PART_BREAK = re.compile(
    r"\?\s+(?=\S)|;\s+|,?\s+(?:and|also|plus|but)\s+(?=(?:how|what|why|when|where|which|who|is|are|does|do|"
    r"can|could|will|would)\b)",
    re.IGNORECASE,
)
MIN_PART_WORDS = 3  # "and why?" is no question of its own


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
    for each part of a multi-part question, then others of the best section (or near as good)."""
    best_section = retrieval.sections[0][0]
    ranked: list[Hit] = [h for h in retrieval.sentences if h.section_id == best_section]
    if not ranked:  # the section was found by its heading alone: its opening sentence answers
        return [(index.section_sentences[best_section][0], retrieval.sections[0][1])]
    chosen: dict[str, float] = {}

    def add_with_context(sentence_id: str, score: float, limit: int, must: bool = False) -> None:
        sent = index.sentence_by_id[sentence_id]
        group = [sent]
        prev = _previous(index, sent)
        if prev is not None and leans_on_previous(sent.text) and prev.sentence_id not in chosen:
            group.insert(0, prev)
        if len(chosen) + len(group) > limit:
            if not must or len(chosen) >= limit:
                return
            group = group[-1:]  # no room for context: the sentence that answers still goes in
        for s in group:
            chosen.setdefault(s.sentence_id, score)

    budget = policy.max_sentences
    # Each part of a multi-part question is owed its best sentence before any context is added.
    part_tops = [p.sentences[0] for p in parts if p.sentences and is_answerable(p, policy)]
    top = ranked[0]
    add_with_context(top.ref, top.score, limit=max(budget - len(part_tops), 1), must=True)
    for hit in part_tops:
        if hit.ref not in chosen:
            add_with_context(hit.ref, hit.score, limit=budget, must=True)
    for hit in retrieval.sentences:
        if len(chosen) >= budget or hit.score < policy.extra_ratio * top.score:
            break
        same_section = hit.section_id == best_section
        if hit.ref not in chosen and (
            same_section or hit.score >= policy.other_section_ratio * top.score
        ):
            add_with_context(hit.ref, hit.score, limit=budget)
    sentences = [(index.sentence_by_id[sid], score) for sid, score in chosen.items()]
    return sorted(sentences, key=lambda pair: (pair[0].doc_id, pair[0].start))


def _previous(index: Index, sent: Sentence) -> Sentence | None:
    siblings = index.section_sentences.get(sent.section_id, [])
    return siblings[sent.ordinal - 1] if sent.ordinal > 0 else None


def compose(
    retrieval: Retrieval,
    index: Index,
    policy: AnswerPolicy,
    suggestions: int = 3,
    parts: Sequence[Retrieval] = (),
) -> Answer:
    """An answered reply quoting the chosen sentences, or a no_answer reply with no citations."""
    if not is_answerable(retrieval, policy):
        return Answer(
            "no_answer",
            NO_ANSWER_MESSAGE,
            (),
            DISCLAIMER,
            tuple(default_suggestions(index, suggestions)),
        )
    chosen = select_sentences(retrieval, index, policy, parts)
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
            )
        )
    used = {index.sentence_by_id[s.sentence_id].section_id for s, _ in chosen}
    follow_ups = [
        index.sections[sid].heading
        for sid, _ in retrieval.sections
        if sid not in used and index.sections[sid].heading.endswith("?")
    ]
    return Answer(
        "answered", " ".join(quoted), tuple(citations), DISCLAIMER, tuple(follow_ups[:suggestions])
    )


def default_suggestions(index: Index, n: int) -> list[str]:
    """The article's own questions (headings ending in "?"), in document order."""
    out: list[str] = []
    for section in index.headings:
        if section.heading.endswith("?") and section.heading not in out:
            out.append(section.heading)
    return out[:n]
