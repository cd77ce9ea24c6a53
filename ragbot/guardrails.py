"""The disclaimer, crisis and medical-advice screening, and the fixed, reviewed messages.

Screening runs before retrieval and combines two signals. The reviewed pattern table
(`ragbot/data/guardrail_patterns.json`) is a floor for explicit statements ("I want to kill
myself"): a message it flags always gets the emergency resources first, and the crisis reply
unless the router reads no distress in it at all ("two years ago my brother overdosed ... how
does ketamine work?": the resources, then the answer). The learned router (`router.py`) adds
recall on top of it for indirect and misspelt wording, and tells personal advice from questions
about the article.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources
from typing import Literal

from ragbot.router import Route

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
NOTHING_MORE_MESSAGE = (
    "That is everything the article says on this. "
    "You could try one of the article's own questions below."
)
NO_ANSWER_MESSAGE = (
    "The article does not answer that question, so I can't quote an answer. "
    "You could try one of the article's own questions below."
)

DATA = "ragbot.data"


@dataclass(frozen=True)
class Rule:
    """One reviewed pattern: what it flags, the regex, and why it is there."""

    label: Literal["crisis", "refused"]
    pattern: re.Pattern[str]
    why: str


@dataclass(frozen=True)
class Screening:
    """The verdict and what decided it (for logs and tests; never shown to users)."""

    verdict: Verdict
    reason: str  # "pattern: <why>" or "router: p=<probability>"
    resources: bool = False  # the emergency resources go first, whatever the reply


@lru_cache(maxsize=1)
def pattern_table() -> tuple[Rule, ...]:
    """The reviewed pattern table, read from ragbot/data/guardrail_patterns.json."""
    raw = json.loads(resources.files(DATA).joinpath("guardrail_patterns.json").read_text("utf-8"))
    return tuple(
        Rule(r["label"], re.compile(r["pattern"], re.IGNORECASE), r["why"]) for r in raw["rules"]
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
class ScreenPolicy:
    """When the router's advice probability declines a question (Settings.advice_threshold)."""

    advice_threshold: float
    # A reviewed advice pattern needs less from the router, but never decides alone: "what dosing
    # schedules have studies used?" matches a dose pattern and asks about the article's subject.
    advice_pattern_threshold: float


def screen(question: str, route: Route, policy: ScreenPolicy) -> Screening:
    """crisis, refused, or ok; the router's crisis verdict always wins, and so does a crisis
    pattern the router reads any distress in. A crisis pattern the router reads none in is a
    past event or someone else's story far more often than a crisis (the router's held-out
    folds: 36 of the pattern's 48 false alarms, against 1 of the 355 crisis messages it caught):
    it keeps the resources first and gets the reply the message asks for."""
    rule = match_rules(question)
    if rule is not None and rule.label == "crisis":
        if route.distress or route.crisis:
            return Screening("crisis", f"pattern: {rule.why}")
        verdict = _advice_or_ok(route, policy, None)
        return replace(verdict, reason=f"pattern: {rule.why}; {verdict.reason}", resources=True)
    if route.crisis:
        return Screening("crisis", f"router: p={route.p('crisis'):.3f}")
    return _advice_or_ok(route, policy, rule)


def _advice_or_ok(route: Route, policy: ScreenPolicy, rule: Rule | None) -> Screening:
    advice = route.p("advice")
    if advice >= policy.advice_threshold:
        return Screening("refused", f"router: p={advice:.3f}")
    if rule is not None and advice >= policy.advice_pattern_threshold:
        return Screening("refused", f"pattern: {rule.why}; router: p={advice:.3f}")
    return Screening("ok", f"router: {route.intent}")
