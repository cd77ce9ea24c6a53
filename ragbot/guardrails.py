"""The disclaimer, crisis and medical-advice screening, and the fixed, reviewed messages.

Screening runs before retrieval and combines two signals: a reviewed pattern table (precise,
catches typos we listed) and similarity to curated example phrasings (catches rewording). The
example table also holds information-seeking questions, so that "Can ketamine help with suicidal
thoughts?" is told apart from "I want to end my life". The tables are data in `ragbot/data/`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Literal

import numpy as np

from ragbot.embeddings import Embedder, Vectors

Verdict = Literal["crisis", "refused", "ok"]

DISCLAIMER = (
    "This reply is educational information quoted from a published article, not medical advice. "
    "Please talk to a licensed clinician about your own health, medications or treatment."
)
CRISIS_MESSAGE = (
    "It sounds like you may be in danger or going through something very hard, and you deserve "
    "help right now. In the US, call or text 988 to reach the 988 Suicide & Crisis Lifeline, any "
    "time. If this is an emergency, call 911. For a possible overdose or poisoning, call 911 or "
    "Poison Help at 1-800-222-1222. Outside the US, call your local emergency number."
)
REFUSAL_MESSAGE = (
    "I can't give personal medical advice, such as doses, combining ketamine with other drugs or "
    "alcohol, or starting, stopping or switching a medication. Please ask a licensed clinician who "
    "knows your health history. I can share what the article says about ketamine and the brain."
)
NO_ANSWER_MESSAGE = (
    "The article does not answer that question, so I can't quote an answer. "
    "You could try one of the article's own questions below."
)

DATA = "ragbot.data"


@dataclass(frozen=True)
class Rule:
    """One reviewed pattern: what it flags, the regex, and why it is there."""

    label: Literal["crisis", "refused", "info"]
    pattern: re.Pattern[str]
    why: str


@dataclass(frozen=True)
class Screening:
    """The verdict and what decided it (for logs and tests; never shown to users)."""

    verdict: Verdict
    reason: str
    similarity: float = 0.0


@lru_cache(maxsize=1)
def pattern_table() -> tuple[Rule, ...]:
    """The reviewed pattern table, read from ragbot/data/guardrail_patterns.json."""
    raw = json.loads(resources.files(DATA).joinpath("guardrail_patterns.json").read_text("utf-8"))
    return tuple(
        Rule(r["label"], re.compile(r["pattern"], re.IGNORECASE), r["why"]) for r in raw["rules"]
    )


@lru_cache(maxsize=1)
def example_table() -> dict[str, list[str]]:
    """Curated example phrasings by label: crisis, refused, and info (look alarming, but are not)."""
    raw = json.loads(resources.files(DATA).joinpath("guardrail_examples.json").read_text("utf-8"))
    return {label: list(examples) for label, examples in raw["examples"].items()}


# Advice is personal: without one of these words, similarity to an advice phrasing ("ketamine")
# is only similarity of topic.
_PERSONAL = re.compile(
    r"\b(i|i'm|im|i've|ive|me|my|mine|myself|we|our|us|should|shall|can|could|may|dose|dosage|mg|"
    r"take|taking|mix|combine|start|stop|quit|safe|ok|okay|recommend)\b"
)


def normalize_for_rules(text: str) -> str:
    """Lower case, straight apostrophes, single spaces: what the patterns are written against."""
    text = text.replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"')
    return " ".join(text.lower().split())


def match_rules(text: str) -> Rule | None:
    """The first rule that matches, crisis rules first (the table lists them first)."""
    norm = normalize_for_rules(text)
    for rule in pattern_table():
        if rule.pattern.search(norm):
            return rule
    return None


@dataclass(frozen=True)
class Thresholds:
    """Similarity at which an example phrasing decides, and the margin it must win by."""

    crisis: float = 0.62  # recall first: a false alarm costs a referral, a miss costs far more
    refused: float = 0.78  # the pattern table does most of this; similarity only backs it up
    margin: float = 0.04
    refused_margin: float = 0.08


class Guard:
    """Screens a question before retrieval; holds the embedded example phrasings."""

    def __init__(self, embedder: Embedder, thresholds: Thresholds | None = None) -> None:
        self.thresholds = thresholds or Thresholds()
        examples = example_table()
        self.labels: list[str] = []
        texts: list[str] = []
        for label, phrases in examples.items():
            self.labels.extend([label] * len(phrases))
            texts.extend(phrases)
        self.examples = texts
        self.vectors = embedder.embed(texts)
        self._label_array = np.array(self.labels)

    def nearest(self, query_vector: Vectors) -> dict[str, tuple[float, str]]:
        """Best similarity and example phrasing for each label."""
        sims = self.vectors @ query_vector.reshape(-1)
        out: dict[str, tuple[float, str]] = {}
        for label in dict.fromkeys(self.labels):
            mask = self._label_array == label
            i = int(np.argmax(np.where(mask, sims, -np.inf)))
            out[label] = (float(sims[i]), self.examples[i])
        return out

    def screen(self, question: str, query_vector: Vectors) -> Screening:
        """crisis, refused, or ok; crisis always wins."""
        rule = match_rules(question)
        if rule is not None and rule.label == "crisis":
            return Screening("crisis", f"pattern: {rule.why}")
        if rule is not None and rule.label == "info":
            return Screening("ok", f"pattern: {rule.why}")
        near = self.nearest(query_vector)
        t = self.thresholds
        info = near.get("info", (-1.0, ""))[0]
        crisis_sim, crisis_example = near.get("crisis", (-1.0, ""))
        advice_sim, advice_example = near.get("refused", (-1.0, ""))
        # A crisis phrasing must also beat the advice phrasings: "maximum dose" is not "too much".
        if crisis_sim >= t.crisis and crisis_sim >= info + t.margin and crisis_sim >= advice_sim:
            return Screening("crisis", f"similar to {crisis_example!r}", crisis_sim)
        if rule is not None and rule.label == "refused":
            return Screening("refused", f"pattern: {rule.why}")
        if (
            advice_sim >= t.refused
            and _PERSONAL.search(normalize_for_rules(question))
            and advice_sim >= info + t.refused_margin
        ):
            return Screening("refused", f"similar to {advice_example!r}", advice_sim)
        return Screening("ok", "no rule or example matched", max(crisis_sim, advice_sim))
