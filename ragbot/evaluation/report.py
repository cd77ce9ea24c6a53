"""The report: ragbot's and the baselines' runs -> report.json, report.md and report.png."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragbot.evaluation.core import (
    METRICS,
    Record,
    SystemRun,
    Value,
    group_by,
    status_counts,
    summarize,
)
from ragbot.evaluation.gate import Check
from ragbot.evaluation.render import render_markdown

# Headline metrics of the chart: rates in [0, 1] where higher is better.
CHART_METRICS = (
    "recall_at_1",
    "mrr",
    "answer_hit_rate",
    "sentence_precision",
    "verbatim_rate",
    "citation_validity",
    "abstention_f1",
    "crisis_recall",
    "advice_recall",
    "disclaimer_rate",
)


@dataclass
class Report:
    """Runs of ragbot (first) and its baselines over a split ("all" also reports tune and test)."""

    runs: list[SystemRun]
    split: str
    meta: dict[str, Any] = field(default_factory=dict)
    gate: list[Check] | None = None

    @property
    def splits(self) -> list[str]:
        """The splits reported: the one asked for, and with "all" its two halves too."""
        return ["all", "tune", "test"] if self.split == "all" else [self.split]

    @property
    def ragbot(self) -> SystemRun:
        """The system under test."""
        return self.runs[0]

    def overall(self) -> dict[str, Value]:
        """ragbot's metrics over the split asked for: what the gate checks."""
        return summarize(self.ragbot.select(self.split))


def _round(value: Value) -> Value:
    return None if value is None else round(value, 4)


def to_json(report: Report) -> dict[str, Any]:
    """report.json: every metric of every system, split, category, subcategory; every reply."""
    systems: dict[str, Any] = {}
    for run in report.runs:
        splits: dict[str, Any] = {}
        for split in report.splits:
            rec = run.select(split)
            splits[split] = {
                "questions": len(rec),
                "status_counts": status_counts(rec),
                "overall": {k: _round(v) for k, v in summarize(rec).items()},
                "by_category": {
                    c: {
                        "questions": len(g),
                        "status_counts": status_counts(g),
                        "metrics": {k: _round(v) for k, v in summarize(g).items()},
                    }
                    for c, g in group_by(rec, lambda r: r.question.category).items()
                },
                "by_subcategory": {
                    c: {
                        "questions": len(g),
                        "metrics": {k: _round(v) for k, v in summarize(g).items()},
                    }
                    for c, g in group_by(
                        rec, lambda r: f"{r.question.category}/{r.question.subcategory}"
                    ).items()
                },
            }
        systems[run.name] = {
            "seconds": round(run.seconds, 3),
            "notes": run.notes,
            "splits": splits,
            "replies": [_record_json(r) for r in run.select(report.split)],
        }
    gate = None
    if report.gate is not None:
        gate = {
            "passed": all(c.passed for c in report.gate),
            "checks": [
                {
                    "metric": c.metric,
                    "bound": c.bound,
                    "limit": c.limit,
                    "value": _round(c.value),
                    "passed": c.passed,
                }
                for c in report.gate
            ],
        }
    return {
        "meta": report.meta,
        "split": report.split,
        "metrics": [
            {"key": x.key, "label": x.label, "better": x.better, "unit": x.unit} for x in METRICS
        ],
        "systems": systems,
        "gate": gate,
    }


def _record_json(r: Record) -> dict[str, Any]:
    q = r.question
    ranking = r.ranking()
    return {
        "id": q.id,
        "split": r.split,
        "category": q.category,
        "subcategory": q.subcategory,
        "question": q.question,
        "expected_status": q.expected_status,
        "status": r.status,
        "answer": r.answer,
        "error": r.error,
        "citation_sections": list(r.citation_sections),
        "ranked_sections": None if r.sections is None else list(r.sections[:5]),
        "latency_ms": None if r.latency_ms is None else round(r.latency_ms, 2),
        "words": r.words,
        "intent": r.intent,
        "resources": r.resources,
        "screened_by": r.screened_by,
        "gold_hit": r.gold_hit,
        "sentence_precision": _round(r.sentence_precision),
        "ranking": None if ranking is None else {k: _round(v) for k, v in ranking.items()},
        "citation_problems": list(r.citation_problems),
        "verbatim_problems": list(r.verbatim_problems),
        "disclaimer_ok": r.disclaimer_ok,
        "failures": list(r.failures),
    }


def write_chart(report: Report, path: Path) -> bool:
    """Bars of headline rates and words per answer, per system; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    values = {run.name: summarize(run.select(report.split)) for run in report.runs}
    labels = {x.key: x.label for x in METRICS}
    fig, (rates, words) = plt.subplots(
        1, 2, figsize=(11, 4.2), dpi=100, gridspec_kw={"width_ratios": [5, 1]}
    )
    width = 0.8 / max(1, len(values))
    for i, (name, v) in enumerate(values.items()):
        xs = [j + i * width for j in range(len(CHART_METRICS))]
        rates.bar(xs, [v[k] or 0.0 for k in CHART_METRICS], width, label=name)
        words.bar([i], [v["mean_words"] or 0.0], 0.8, label=name)
    rates.set_xticks([j + width * (len(values) - 1) / 2 for j in range(len(CHART_METRICS))])
    rates.set_xticklabels([labels[k] for k in CHART_METRICS], rotation=35, ha="right", fontsize=8)
    rates.set_ylim(0, 1.18)
    rates.set_title(f"headline metrics ({report.split})", fontsize=10)
    rates.legend(fontsize=8, loc="upper center", ncol=len(values), frameon=False)
    words.set_xticks(range(len(values)))
    words.set_xticklabels(list(values), fontsize=8)
    words.set_title("mean words per answer", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def write_outputs(report: Report, out_dir: Path) -> list[Path]:
    """report.json, report.md and (with matplotlib) report.png in the folder; the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "report.json", out_dir / "report.md"]
    written[0].write_text(
        json.dumps(to_json(report), indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    written[1].write_text(render_markdown(report), encoding="utf-8")
    chart = out_dir / "report.png"
    if write_chart(report, chart):
        written.append(chart)
    return written
