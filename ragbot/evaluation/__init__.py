"""Evaluation of ragbot over the question set: deterministic metrics, baselines, splits, a gate.

questions.py  the question set: schema, corpus checks, tune/test split
metrics.py    pure metric functions (ranking, citations, abstention, percentiles)
core.py       evaluate(questions, answer_fn, documents) -> SystemRun; summarize(records)
gate.py       thresholds file -> pass/fail per metric
render.py     plain-text and Markdown tables (the terminal, report.md)
report.py     Report; writes report.json, report.md, report.png
runner.py     run_cli: in-process, over HTTP (--url), baselines (--baseline)
"""

from ragbot.evaluation.core import (
    METRICS,
    AnswerFn,
    Outcome,
    Record,
    SystemRun,
    evaluate,
    summarize,
)
from ragbot.evaluation.gate import check, load_thresholds
from ragbot.evaluation.questions import EvalQuestion, assign_splits, load_questions
from ragbot.evaluation.report import Report
from ragbot.evaluation.runner import run_cli

__all__ = [
    "METRICS",
    "AnswerFn",
    "EvalQuestion",
    "Outcome",
    "Record",
    "Report",
    "SystemRun",
    "assign_splits",
    "check",
    "evaluate",
    "load_questions",
    "load_thresholds",
    "run_cli",
    "summarize",
]
