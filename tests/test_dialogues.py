"""The dialogue sets (ragbot/data/dialogues/SPEC.md): every shipped file keeps the format, its
gold sentences are the article's own, and the replay scores each kind of turn."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from ragbot.conversation import Turn
from ragbot.corpus import load_corpus
from ragbot.evaluation.dialogues import (
    HOLDOUTS,
    KINDS,
    TUNES,
    Dialogue,
    DialogueTurn,
    dialogue_path,
    load_dialogues,
    replay,
    summarize,
)
from ragbot.models import Answer, Citation, Status

SHIPPED = sorted(
    p.name for p in dialogue_path("SPEC.md").parent.glob("*.jsonl")
)  # tune and hold-out sets, measured or not
STATUS = {"advice": "refused", "crisis": "crisis", "off_topic": "no_answer"}


def test_every_set_the_evaluation_replays_is_shipped() -> None:
    assert set(TUNES) | set(HOLDOUTS) <= set(SHIPPED)


def test_retired_dialogue_sets_teach_the_turn_kinds_and_the_newest_never_does() -> None:
    from ragbot.turns import RETIRED_DIALOGUES, load_turn_examples

    assert HOLDOUTS[-1] not in RETIRED_DIALOGUES and set(RETIRED_DIALOGUES) < set(HOLDOUTS)
    batches = {ex.batch for ex in load_turn_examples([])}
    assert {f"dialogues-{name.removesuffix('.jsonl')}" for name in RETIRED_DIALOGUES} <= batches
    assert f"dialogues-{HOLDOUTS[-1].removesuffix('.jsonl')}" not in batches


@pytest.mark.parametrize("name", SHIPPED)
def test_each_shipped_dialogue_set_keeps_the_format_and_quotes_the_article(
    name: str, shipped_corpus_dir: Path
) -> None:
    docs = load_corpus(shipped_corpus_dir)
    text = " ".join(d.text for d in docs)
    headings = {s.heading for d in docs for s in d.sections}
    dialogues = load_dialogues(dialogue_path(name))
    assert len(dialogues) >= 30
    assert len({d.id for d in dialogues}) == len(dialogues), "ids are unique"
    for d in dialogues:
        assert 2 <= len(d.turns) <= 4, d.id
        assert d.turns[0].kind == "new", d.id
        for t in d.turns:
            assert t.kind in KINDS, (d.id, t.kind)
            assert t.expected_status == STATUS.get(t.kind, "answered"), (d.id, t.question)
            assert all(g in text for g in t.gold_sentences), (d.id, t.question)
            if t.kind in ("new", "followup"):
                assert t.gold_sentences and t.gold_section in headings, (d.id, t.question)


def answer(status: Status, quotes: Sequence[str] = (), resources: bool = False) -> Answer:
    citations = tuple(
        Citation(n, "doc", "Title", "Section", q, 0, len(q), None, 1.0)
        for n, q in enumerate(quotes, 1)
    )
    help_text = "call 988" if resources else None
    return Answer(status, " ".join(quotes), citations, "disclaimer", (), help_text)


def test_replay_sends_the_replies_as_history_and_scores_each_kind_of_turn() -> None:
    turns = (
        DialogueTurn("what does ketamine do", "new", "answered", "h", ("A.",)),
        DialogueTurn("why?", "followup", "answered", "h", ("B.",)),
        DialogueTurn("tell me more", "more", "answered", "h", ()),
        DialogueTurn("i want to die", "crisis", "crisis", None, ()),
        DialogueTurn("and the bladder?", "followup", "answered", "h", ("C.",)),
    )
    seen: list[tuple[str, tuple[Turn, ...]]] = []
    replies = {
        "what does ketamine do": answer("answered", ["A."]),
        "why?": answer("answered", ["B."]),
        "tell me more": answer("answered", ["A.", "D."]),  # repeats A: not only new
        "i want to die": answer("crisis"),
        "and the bladder?": answer("answered", ["E."], resources=True),  # a miss, with resources
    }

    def ask(question: str, history: Sequence[Turn]) -> Answer:
        seen.append((question, tuple(history)))
        return replies[question]

    results = replay([Dialogue("d-1", "p", "widget", turns)], ask)
    assert seen[1] == ("why?", (Turn("what does ketamine do", ("A.",)),))
    assert [t.question for t in seen[4][1]] == [t.question for t in turns[:4]]
    figures = summarize(results)
    assert figures["followup_hit"] == 0.5 and figures["followup_n"] == 2
    assert figures["new_turn_hit"] == 1.0
    assert figures["more_only_new"] == 0.0
    assert figures["crisis_recall"] == 1.0
    assert figures["resources_after_crisis"] == 1.0

    without = replay([Dialogue("d-1", "p", "widget", turns)], ask, with_history=False)
    assert len(without) == len(turns) and seen[-1] == ("and the bladder?", ())
