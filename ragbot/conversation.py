"""Conversations: what earlier turns showed, and whether a message follows up on them.

The service stays stateless: the client sends the earlier turns (`Turn`: the question, and the
quotes or sentence ids its reply showed). The turn classifier (`turns.py`) tells a follow-up
("why?", "and how long does it last?", "what about long term?") and a request for more ("tell
me more") from a new, self-contained question; the pipeline then retrieves with the earlier
question as context, or continues the section already shown. Every reply still quotes only the
article.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from ragbot.index import Index
from ragbot.models import Hit
from ragbot.query import normalize
from ragbot.retrieval import Retrieval


@dataclass(frozen=True)
class Turn:
    """An earlier turn: the question, and what its reply showed (quotes or sentence ids)."""

    question: str
    shown: tuple[str, ...] = ()


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


def last_shown(index: Index, history: Sequence[Turn]) -> set[str]:
    """The sentence ids the last reply showed."""
    return shown_sentences(index, history[-1:]) if history else set()


def last_section(index: Index, history: Sequence[Turn]) -> str | None:
    """The section of the last reply's first quoted sentence, if the last reply quoted any."""
    ids = last_shown(index, history)
    if not ids:
        return None
    first = min((index.sentence_by_id[i] for i in ids), key=lambda s: (s.doc_id, s.start))
    return first.section_id


# How much a follow-up's retrieval leans on the question it follows (chosen on the tuning
# dialogues; README: Conversations). The message itself keeps the larger share: "what about
# long term?" is about the long term first.
CONTEXT_WEIGHT = 0.3


def blend(own: Retrieval, context: Retrieval, weight: float = CONTEXT_WEIGHT) -> Retrieval:
    """The two rankings of a follow-up mixed: each sentence's probability on its own and with
    the earlier question, weighted."""
    scores: dict[str, float] = {h.ref: (1 - weight) * h.score for h in own.sentences}
    for h in context.sentences:
        scores[h.ref] = scores.get(h.ref, 0.0) + weight * h.score
    hits = {h.ref: h for h in (*context.sentences, *own.sentences)}
    return _ranked(replace(hits[ref], score=score) for ref, score in scores.items())


# A follow-up asks for something new, but the answer is often a sentence the reply before
# already quoted among its three: shown sentences keep this share of their score rather than
# being left out (chosen on both dialogue tuning sets: leaving them out cost 12 points, halving
# them gained 3; README: Conversations).
SHOWN_WEIGHT = 0.5


# "what else can it damage?", "any other risks?", "besides that?": the asker has read what was
# shown and wants something else, so nothing shown is quoted again.
_ASKS_FOR_OTHER = re.compile(r"\b(?:else|other|others|besides)\b")


def shown_weight(question: str) -> float:
    """The share of its score a sentence already shown keeps for this follow-up."""
    return 0.0 if _ASKS_FOR_OTHER.search(normalize(question)) else SHOWN_WEIGHT


# A follow-up often asks what the article says next: "and after that?", "what does that do?",
# "how does it promote it?" after a quoted sentence are answered by the sentence that follows it
# in its section (a third of the follow-ups of the dialogue sets). That sentence gains this share
# of the best score. Chosen on the dialogue tuning sets (0.3 and 0.7 tied, 0.5 and 1.0 worse;
# the sentence before gained nothing) and checked on the measured dialogue hold-outs v1-v7:
# 0.711 -> 0.737, none worse (README: Conversations).
NEXT_BONUS = 0.3


def toward_next(
    retrieval: Retrieval, index: Index, last_shown: set[str], bonus: float = NEXT_BONUS
) -> Retrieval:
    """The ranking with the sentence after each one the last reply quoted raised by `bonus`
    times the best score (a sentence the reply itself quoted is not raised)."""
    if not last_shown or not retrieval.sentences:
        return retrieval
    following = set()
    for sid in last_shown:
        sentence = index.sentence_by_id[sid]
        for after in index.section_sentences[sentence.section_id]:
            if after.ordinal == sentence.ordinal + 1 and after.sentence_id not in last_shown:
                following.add(after.sentence_id)
    if not following:
        return retrieval
    lift = bonus * retrieval.sentences[0].score
    return _ranked(
        replace(h, score=h.score + lift) if h.ref in following else h for h in retrieval.sentences
    )


def demote(retrieval: Retrieval, shown: set[str], weight: float = SHOWN_WEIGHT) -> Retrieval:
    """The ranking with the scores of sentences already shown multiplied by `weight`."""
    if not shown:
        return retrieval
    return _ranked(
        replace(h, score=h.score * weight) if h.ref in shown else h for h in retrieval.sentences
    )


def _ranked(hits: Iterable[Hit]) -> Retrieval:
    """Rescored sentences as a Retrieval: best first, each section scored by its best."""
    ranked = sorted(hits, key=lambda h: -h.score)
    sections: dict[str, float] = {}
    for hit in ranked:
        sections.setdefault(hit.section_id, hit.score)
    return Retrieval(ranked, list(sections.items()))
