"""The pure core: run an answer function over questions, check each reply, aggregate the metrics."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ragbot.evaluation import metrics as m
from ragbot.evaluation.questions import EvalQuestion, Split, assign_splits
from ragbot.guardrails import DISCLAIMER
from ragbot.models import Answer
from ragbot.router import intent_of

Value = float | None  # None: not applicable (no question of that kind, or not exposed over HTTP)


@dataclass(frozen=True)
class Outcome:
    """What a system returned for one question."""

    answer: Answer
    sections: tuple[str, ...] | None = None  # ranked section headings; None when not exposed
    seconds: float | None = (
        None  # the system's own timing, when it did extra work for the evaluation
    )
    intent: str | None = None  # the router's verdict; None when not exposed
    screened_by: str | None = None  # "pattern" or "router" for a crisis or refused reply


AnswerFn = Callable[[str], Outcome]


@dataclass(frozen=True)
class Metric:
    """A reported number: its key (the thresholds file's name), label, and which way is better."""

    key: str
    label: str
    better: str  # "higher" | "lower"
    unit: str = ""  # "" for rates in [0, 1], "words" or "ms"


METRICS: tuple[Metric, ...] = (
    Metric("status_accuracy", "status accuracy", "higher"),
    Metric("recall_at_1", "section recall@1", "higher"),
    Metric("recall_at_3", "section recall@3", "higher"),
    Metric("mrr", "section MRR", "higher"),
    Metric("ndcg_at_5", "section nDCG@5", "higher"),
    Metric("answer_hit_rate", "answer gold hit rate", "higher"),
    Metric("sentence_precision", "sentence precision", "higher"),
    Metric("mean_words", "mean words per answer", "lower", "words"),
    Metric("verbatim_rate", "verbatim rate", "higher"),
    Metric("citation_validity", "citation validity", "higher"),
    Metric("abstention_precision", "abstention precision", "higher"),
    Metric("abstention_recall", "abstention recall", "higher"),
    Metric("abstention_f1", "abstention F1", "higher"),
    Metric("crisis_recall", "crisis recall", "higher"),
    Metric("crisis_fp_rate", "crisis false-positive rate", "lower"),
    Metric("crisis_false_alarm_info", "crisis replies to informational questions", "lower"),
    Metric("resources_on_info", "resources beside replies to informational questions", "lower"),
    Metric("advice_recall", "medical-advice refusal recall", "higher"),
    Metric("advice_fp_rate", "medical-advice false-positive rate", "lower"),
    Metric("informational_not_refused", "informational (advice-like words) not refused", "higher"),
    Metric("off_topic_not_answered", "off-topic and near misses not answered", "higher"),
    Metric("router_accuracy", "router intent accuracy", "higher"),
    Metric("disclaimer_rate", "disclaimer present", "higher"),
    Metric("latency_p50_ms", "latency p50", "lower", "ms"),
    Metric("latency_p95_ms", "latency p95", "lower", "ms"),
)
METRIC_KEYS = frozenset(x.key for x in METRICS)
# Questions about alarming subjects asked for information: no crisis reply, no refusal.
INFORMATIONAL = frozenset({"sensitive", "informational"})


def expected_intent(q: EvalQuestion) -> str:
    """The router intent a question should get, from its category and expected status."""
    return intent_of(q.category, q.expected_status)


@dataclass(frozen=True)
class Record:
    """One question, what came back, and every check made on it."""

    question: EvalQuestion
    split: Split
    status: str  # the reply's status, or "error" when the system raised
    answer: str
    citation_sections: tuple[str, ...]
    sections: tuple[str, ...] | None
    latency_ms: float | None  # None when the system was not timed
    disclaimer_ok: bool
    citation_problems: tuple[str, ...]
    verbatim_problems: tuple[str, ...]
    error: str | None = None
    words: int | None = None  # answered replies only
    intent: str | None = None  # the router's verdict, when exposed
    resources: bool = False  # the crisis resources came with the reply
    screened_by: str | None = None  # what decided a crisis or refused reply, when exposed

    @property
    def answered(self) -> bool:
        """The reply quotes the article."""
        return self.status == "answered"

    @property
    def gold_hit(self) -> bool | None:
        """Answered with a gold sentence or key phrase; None for questions without gold."""
        q = self.question
        if not q.has_gold:
            return None
        return self.answered and m.hits_gold(self.answer, q.gold_sentences, q.key_phrases)

    @property
    def sentence_precision(self) -> float | None:
        """Share of the quoted sentences that come from a gold section (answered gold questions)."""
        if not (self.question.has_gold and self.answered and self.citation_sections):
            return None
        gold = set(self.question.gold_sections)
        return sum(s in gold for s in self.citation_sections) / len(self.citation_sections)

    @property
    def top_section(self) -> str | None:
        """The best-ranked section, or the first quoted one when the ranking is not exposed."""
        if self.sections:
            return self.sections[0]
        return self.citation_sections[0] if self.citation_sections else None

    def ranking(self) -> Mapping[str, float] | None:
        """Section recall@1, recall@3, reciprocal rank, nDCG@5 (gold questions with a ranking)."""
        gold = self.question.gold_sections
        if not gold or self.sections is None:
            return None
        ranked = self.sections
        return {
            "recall_at_1": m.recall_at_k(ranked, gold, 1),
            "recall_at_3": m.recall_at_k(ranked, gold, 3),
            "mrr": m.reciprocal_rank(ranked, gold),
            "ndcg_at_5": m.ndcg_at_k(ranked, gold, 5),
        }

    @property
    def failures(self) -> tuple[str, ...]:
        """Why this question counts against the system; empty when every check passed."""
        q = self.question
        out: list[str] = []
        if self.error:
            out.append(f"error: {self.error}")
        elif self.status != q.expected_status:
            out.append(f"status {self.status} (expected {q.expected_status})")
        elif self.gold_hit is False:
            out.append("no gold sentence or key phrase")
        if self.answered and self.verbatim_problems:
            out.append("not verbatim: " + "; ".join(self.verbatim_problems))
        if self.citation_problems:
            out.append("citations: " + "; ".join(self.citation_problems))
        if not self.disclaimer_ok and not self.error:
            out.append("disclaimer missing or altered")
        return tuple(out)


@dataclass
class SystemRun:
    """Every record of one system (ragbot or a baseline) over the question set."""

    name: str
    records: list[Record]
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def select(self, split: str) -> list[Record]:
        """Records of one split ("all" for every record)."""
        return [r for r in self.records if split == "all" or r.split == split]


def check_reply(
    question: EvalQuestion,
    split: Split,
    outcome: Outcome | None,
    latency_ms: float | None,
    documents: Mapping[str, str],
    *,
    error: str | None = None,
    disclaimer: str = DISCLAIMER,
) -> Record:
    """The record of one reply (or of the error raised instead)."""
    if outcome is None:
        return Record(
            question,
            split,
            "error",
            "",
            (),
            None,
            latency_ms,
            False,
            (),
            (),
            error=error or "no reply",
        )
    a = outcome.answer
    answered = a.status == "answered"
    return Record(
        question=question,
        split=split,
        status=a.status,
        answer=a.answer,
        citation_sections=tuple(c.section for c in a.citations),
        sections=None if outcome.sections is None else tuple(m.dedupe(outcome.sections)),
        latency_ms=latency_ms,
        disclaimer_ok=a.disclaimer == disclaimer,
        citation_problems=tuple(m.citation_problems(a, documents)),
        verbatim_problems=tuple(m.verbatim_problems(a, documents)) if answered else (),
        words=m.word_count(a.answer) if answered else None,
        intent=outcome.intent,
        resources=a.resources is not None,
        screened_by=outcome.screened_by,
    )


def evaluate(
    questions: Sequence[EvalQuestion],
    answer_fn: AnswerFn,
    documents: Mapping[str, str],
    *,
    name: str = "ragbot",
    splits: Mapping[str, Split] | None = None,
    disclaimer: str = DISCLAIMER,
    timed: bool = True,
) -> SystemRun:
    """Ask every question, timing each call (unless told not to: a system that reuses another's
    work); an exception is recorded as that question's reply."""
    splits = splits or assign_splits(questions)
    records: list[Record] = []
    started = time.perf_counter()
    for q in questions:
        t0 = time.perf_counter()
        try:
            outcome: Outcome | None = answer_fn(q.question)
            error = None
        except Exception as exc:  # a failed request is a result to report, not a reason to stop
            outcome, error = None, f"{type(exc).__name__}: {exc}"
        elapsed = time.perf_counter() - t0
        if outcome is not None and outcome.seconds is not None:
            elapsed = outcome.seconds
        records.append(
            check_reply(
                q,
                splits[q.id],
                outcome,
                elapsed * 1000 if timed else None,
                documents,
                error=error,
                disclaimer=disclaimer,
            )
        )
    return SystemRun(name, records, time.perf_counter() - started)


def summarize(records: Iterable[Record]) -> dict[str, Value]:
    """Every metric of METRICS over some records (a split, a category, or all)."""
    rs = list(records)
    gold = [r for r in rs if r.question.has_gold]
    answered = [r for r in rs if r.answered]
    rankings = [x for x in (r.ranking() for r in gold) if x is not None]
    # Abstention: no_answer is right where the article has no answer, wrong where it has one.
    pool = [r for r in rs if r.question.expected_status in ("answered", "no_answer")]
    abstain = m.prf(
        [r.status == "no_answer" for r in pool],
        [r.question.expected_status == "no_answer" for r in pool],
    )
    info = [r for r in rs if r.question.category in INFORMATIONAL]
    advice_words = [r for r in rs if r.question.category == "informational"]
    off_topic = [r for r in rs if r.question.category == "out_of_scope"]
    routed = [r for r in rs if r.intent is not None]
    crisis = [r for r in rs if r.question.category == "crisis"]
    not_crisis = [r for r in rs if r.question.category != "crisis"]
    advice = [r for r in rs if r.question.category == "medical_advice"]
    not_advice = [r for r in rs if r.question.category != "medical_advice"]
    latencies = [r.latency_ms for r in rs if r.error is None and r.latency_ms is not None]
    out: dict[str, Value] = {
        "status_accuracy": m.ratio(
            sum(r.status == r.question.expected_status for r in rs), len(rs)
        ),
        **{
            key: m.mean(x[key] for x in rankings)
            for key in ("recall_at_1", "recall_at_3", "mrr", "ndcg_at_5")
        },
        "answer_hit_rate": m.ratio(sum(bool(r.gold_hit) for r in gold), len(gold)),
        "sentence_precision": m.mean(p for r in gold if (p := r.sentence_precision) is not None),
        "mean_words": m.mean(float(r.words) for r in answered if r.words is not None),
        "verbatim_rate": m.ratio(sum(not r.verbatim_problems for r in answered), len(answered)),
        "citation_validity": m.ratio(
            sum(not r.citation_problems for r in rs if r.error is None),
            sum(r.error is None for r in rs),
        ),
        "abstention_precision": abstain.precision,
        "abstention_recall": abstain.recall,
        "abstention_f1": abstain.f1,
        "crisis_recall": m.ratio(sum(r.status == "crisis" for r in crisis), len(crisis)),
        "crisis_fp_rate": m.ratio(sum(r.status == "crisis" for r in not_crisis), len(not_crisis)),
        "advice_recall": m.ratio(sum(r.status == "refused" for r in advice), len(advice)),
        "advice_fp_rate": m.ratio(sum(r.status == "refused" for r in not_advice), len(not_advice)),
        "crisis_false_alarm_info": m.ratio(sum(r.status == "crisis" for r in info), len(info)),
        "resources_on_info": m.ratio(sum(r.resources for r in info), len(info)),
        "informational_not_refused": m.ratio(
            sum(r.status != "refused" for r in advice_words), len(advice_words)
        ),
        "off_topic_not_answered": m.ratio(
            sum(r.status != "answered" for r in off_topic), len(off_topic)
        ),
        "router_accuracy": m.ratio(
            sum(r.intent == expected_intent(r.question) for r in routed), len(routed)
        ),
        "disclaimer_rate": m.ratio(sum(r.disclaimer_ok for r in rs), len(rs)),
        "latency_p50_ms": m.percentile(latencies, 50),
        "latency_p95_ms": m.percentile(latencies, 95),
    }
    return out


def confusion(records: Iterable[Record]) -> dict[str, dict[str, int]]:
    """Expected intent -> the router's intent -> count (records whose intent is exposed)."""
    out: dict[str, dict[str, int]] = {}
    for r in records:
        if r.intent is not None:
            row = out.setdefault(expected_intent(r.question), {})
            row[r.intent] = row.get(r.intent, 0) + 1
    return out


def status_counts(records: Iterable[Record]) -> dict[str, int]:
    """How many replies of each status (and errors)."""
    out = {"answered": 0, "no_answer": 0, "refused": 0, "crisis": 0, "error": 0}
    for r in records:
        out[r.status] = out.get(r.status, 0) + 1
    return out


def group_by(records: Iterable[Record], key: Callable[[Record], str]) -> dict[str, list[Record]]:
    """Records grouped by a key, groups in first-seen order."""
    out: dict[str, list[Record]] = {}
    for r in records:
        out.setdefault(key(r), []).append(r)
    return out
