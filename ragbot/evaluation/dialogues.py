"""Dialogues: conversations of two to four turns, replayed turn by turn with the replies the
service itself gave as history, scored per kind of turn (ragbot/data/dialogues/SPEC.md)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ragbot.conversation import Turn
from ragbot.models import Answer

FOLDER = "dialogues"
TUNES = ("tune.jsonl", "tune_v2.jsonl", "tune_v3.jsonl", "tune_v4.jsonl")
# Hold-outs, oldest first: the newest is measured once and never trained on (the others are
# turns.RETIRED_DIALOGUES).
HOLDOUTS = tuple(f"holdout_v{n}.jsonl" for n in range(1, 22))
KINDS = ("new", "followup", "more", "advice", "crisis", "off_topic")


@dataclass(frozen=True)
class DialogueTurn:
    question: str
    kind: str
    expected_status: str
    gold_section: str | None
    gold_sentences: tuple[str, ...]


@dataclass(frozen=True)
class Dialogue:
    id: str
    persona: str
    channel: str
    turns: tuple[DialogueTurn, ...]


@dataclass(frozen=True)
class TurnResult:
    dialogue: str
    number: int
    turn: DialogueTurn
    answer: Answer
    shown_before: frozenset[str]  # quotes of every earlier reply in the dialogue

    @property
    def quotes(self) -> list[str]:
        return [c.quote for c in self.answer.citations]

    @property
    def hit(self) -> bool:
        """The reply quotes a gold sentence (answered turns with gold sentences)."""
        return self.answer.status == "answered" and any(
            g in q or q in g for g in self.turn.gold_sentences for q in self.quotes
        )

    @property
    def only_new(self) -> bool:
        """An answered reply that quotes nothing shown before in the dialogue."""
        return self.answer.status == "answered" and not set(self.quotes) & self.shown_before


def dialogue_path(name: str) -> Path:
    return Path(str(resources.files("ragbot.data").joinpath(FOLDER, name)))


def load_dialogues(path: Path) -> list[Dialogue]:
    """The dialogues of one JSONL file."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row: dict[str, Any] = json.loads(line)
        turns = tuple(
            DialogueTurn(
                t["question"],
                t["kind"],
                t["expected_status"],
                t.get("gold_section"),
                tuple(t.get("gold_sentences") or ()),
            )
            for t in row["turns"]
        )
        out.append(Dialogue(row["id"], row["persona"], row["channel"], turns))
    return out


Ask = Callable[[str, Sequence[Turn]], Answer]


def replay(
    dialogues: Sequence[Dialogue], ask: Ask, *, with_history: bool = True
) -> list[TurnResult]:
    """Every turn asked in order, the service's own earlier replies as history (or none)."""
    results = []
    for dialogue in dialogues:
        history: list[Turn] = []
        shown: set[str] = set()
        for number, turn in enumerate(dialogue.turns, start=1):
            answer = ask(turn.question, history if with_history else [])
            results.append(TurnResult(dialogue.id, number, turn, answer, frozenset(shown)))
            quotes = tuple(c.quote for c in answer.citations)
            history.append(Turn(turn.question, quotes))
            shown.update(quotes)
    return results


def _rate(flags: Sequence[bool]) -> float | None:
    return round(sum(flags) / len(flags), 4) if flags else None


def summarize(results: Sequence[TurnResult]) -> dict[str, Any]:
    """The figures `ragbot eval` reports for dialogues."""
    by_kind = {k: [r for r in results if r.turn.kind == k] for k in KINDS}
    follow = [r for r in by_kind["followup"] if r.turn.expected_status == "answered"]
    first = [r for r in by_kind["new"] if r.turn.expected_status == "answered"]
    more = by_kind["more"]
    return {
        "turns": len(results),
        "followup_hit": _rate([r.hit for r in follow]),
        "followup_n": len(follow),
        "new_turn_hit": _rate([r.hit for r in first]),
        "more_answered": _rate([r.answer.status == "answered" for r in more]),
        "more_only_new": _rate([r.only_new for r in more if r.answer.status == "answered"]),
        "more_n": len(more),
        "crisis_recall": _rate([r.answer.status == "crisis" for r in by_kind["crisis"]]),
        "crisis_n": len(by_kind["crisis"]),
        "advice_declined": _rate([r.answer.status == "refused" for r in by_kind["advice"]]),
        "off_topic_not_answered": _rate(
            [r.answer.status != "answered" for r in by_kind["off_topic"]]
        ),
        "resources_after_crisis": _rate(
            [
                r.answer.resources is not None
                for r in results
                if r.turn.kind != "crisis"
                and any(
                    p.dialogue == r.dialogue and p.number < r.number and p.turn.kind == "crisis"
                    for p in results
                )
            ]
        ),
    }
