"""Conversations: what earlier turns showed, and whether a message follows up on them.

The service stays stateless: the client sends the earlier turns (`Turn`: the question, and the
quotes or sentence ids its reply showed). The turn classifier (`turns.py`) tells a follow-up
("why?", "and how long does it last?", "what about long term?") and a request for more ("tell
me more") from a new, self-contained question; the pipeline then retrieves with the earlier
question as context (`followups.py` ranks the sentences), or continues the section already
shown. Every reply still quotes only the article.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ragbot.index import Index


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
