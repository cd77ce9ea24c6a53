"""Conversations: what earlier turns showed, and whether a message follows up on them.

The service stays stateless: the client sends the earlier turns (`Turn`: the question, and the
quotes or sentence ids its reply showed). `classify()` tells a follow-up ("why?", "and how long
does it last?", "what about long term?") and a request for more ("tell me more") from a new,
self-contained question; the pipeline then retrieves with the earlier question as context, or
continues the section already shown. Every reply still quotes only the article.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from ragbot.index import Index
from ragbot.query import expand, normalize
from ragbot.retrieval import Retrieval

Kind = Literal["new", "followup", "more"]


@dataclass(frozen=True)
class Turn:
    """An earlier turn: the question, and what its reply showed (quotes or sentence ids)."""

    question: str
    shown: tuple[str, ...] = ()


# "tell me more", "more pls", "go on", "anything else on that?", "what else"
_WHO = (
    r"(?:her|him|them|the (?:patient|pt|client)|my (?:son|daughter|mom|dad|wife|husband|partner))"
)
_MORE = re.compile(
    # a relayed "pt asks:", then "ok", "so", "pls"...
    r"^(?:(?:pt|patient|client|she|he|they)(?: is| are)? ask(?:s|ing|ed)?:?\s+)?"
    r"(?:(?:ok(?:ay)?|and|so|pls|please|can you|could you|cool|thanks)\s+)*"
    r"(?:tell me (?:a (?:bit|little) |some )?more|(?:some |a bit |a little )?more"
    r"(?: (?:info|information|details?))?|go on|keep going|continue|what else|anything else"
    r"|say more|elaborate|expand on (?:that|this|it))"
    r"(?:\s+(?:on|about) (?:that|this|it|this topic|that topic))?"
    rf"(?:\s+(?:for|to tell|i can tell|i could tell|we can tell|to share with) {_WHO})?"
    r"(?:\s+(?:please|pls|thanks))?$"
)
# Openers that lean on what was said before: "and ...", "why?", "what about ...", "is that ...".
_OPENER = re.compile(
    r"^(?:and|but|so|then|also|what about|how about|what if|why|how come|wait|ok(?:ay)?|really"
    r"|is that|is this|are they|are those|does that|does this|do they|can it|can that|will it"
    r"|would it|how so|meaning|as in)\b"
)
_PRONOUN = re.compile(r"\b(?:it|its|that|this|those|these|they|them|their|there)\b")
_SUBJECT = re.compile(r"\bketamine\b")  # after expand(): street names are spelt out
SHORT_WORDS = 3  # "how long?", "side effects?": too short to stand alone after an answer


def classify(text: str, history: Sequence[Turn]) -> Kind:
    """new, followup or more; without history, always new."""
    if not history:
        return "new"
    said = normalize(expand(text)).strip(" ?!.,")
    if _MORE.match(said):
        return "more"
    if _OPENER.match(said):
        return "followup"
    if _SUBJECT.search(said):
        return "new"  # names what it asks about: it stands alone
    if len(said.split()) <= SHORT_WORDS or _PRONOUN.search(said):
        return "followup"
    return "new"


def shown_sentences(index: Index, history: Iterable[Turn]) -> set[str]:
    """The sentence ids the earlier replies showed; quotes that are not the article's are ignored."""
    by_text = {s.text: s.sentence_id for s in index.sentences}
    shown: set[str] = set()
    for turn in history:
        for item in turn.shown:
            item = item.strip()
            if item in index.sentence_by_id:
                shown.add(item)
            elif item in by_text:
                shown.add(by_text[item])
    return shown


def last_section(index: Index, history: Sequence[Turn]) -> str | None:
    """The section of the last reply's first quoted sentence, if the last reply quoted any."""
    if not history:
        return None
    ids = shown_sentences(index, history[-1:])
    if not ids:
        return None
    first = min((index.sentence_by_id[i] for i in ids), key=lambda s: (s.doc_id, s.start))
    return first.section_id


# How much a follow-up's retrieval leans on the question it follows (chosen on the tuning
# dialogues; README: Conversations). The message itself keeps the larger share: "what about
# long term?" is about the long term first.
CONTEXT_WEIGHT = 0.5


def blend(own: Retrieval, context: Retrieval, weight: float = CONTEXT_WEIGHT) -> Retrieval:
    """The two rankings of a follow-up mixed: each sentence's probability on its own and with
    the earlier question, weighted."""
    scores: dict[str, float] = {h.ref: (1 - weight) * h.score for h in own.sentences}
    for h in context.sentences:
        scores[h.ref] = scores.get(h.ref, 0.0) + weight * h.score
    hits = {h.ref: h for h in (*context.sentences, *own.sentences)}
    ranked = sorted(
        (replace(hits[ref], score=score) for ref, score in scores.items()),
        key=lambda h: -h.score,
    )
    sections: dict[str, float] = {}
    for hit in ranked:
        sections.setdefault(hit.section_id, hit.score)
    return Retrieval(ranked, list(sections.items()))
