"""The tables: plain-text columns for the terminal and GitHub Markdown for report.md."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ragbot.evaluation.core import (
    METRICS,
    Metric,
    Record,
    SystemRun,
    Value,
    confusion,
    group_by,
    status_counts,
    summarize,
)
from ragbot.evaluation.gate import Check

if TYPE_CHECKING:
    from ragbot.evaluation.report import Report

ANSWER_PREVIEW = 120  # characters of a failed reply shown in the failure table
_SHORT = {"answered": "a", "no_answer": "n", "refused": "r", "crisis": "c", "error": "e"}


def fmt(value: Value, metric: Metric | None = None) -> str:
    """A metric as the tables print it: n/a, 0.873, 41.2 words or 12.3 ms."""
    if value is None:
        return "n/a"
    if metric is not None and metric.unit:
        return f"{value:.1f}"
    return f"{value:.3f}"


def _statuses(records: Sequence[Record]) -> str:
    counts = status_counts(records)
    return " ".join(f"{_SHORT[k]}{v}" for k, v in counts.items() if v or k != "error")


# ---------------------------------------------------------------------------------------------
# Tables


def text_table(headers: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> str:
    """Plain-text columns; the first `left` columns align left, the others right."""
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < left else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def md_table(headers: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> str:
    """A GitHub Markdown table; numbers right-aligned."""

    def esc(cell: str) -> str:
        return cell.replace("|", "\\|").replace("\n", " ")

    align = [":--" if i < left else "--:" for i in range(len(headers))]
    lines = ["| " + " | ".join(esc(h) for h in headers) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def headline(report: Report, *, baseline_splits: bool) -> tuple[list[str], list[list[str]]]:
    """Metric rows; a column per system and split (baselines: the asked split only, unless told)."""
    columns: list[tuple[SystemRun, str]] = []
    for i, run in enumerate(report.runs):
        shown = report.splits if i == 0 or baseline_splits else [report.split]
        columns += [(run, s) for s in shown]
    values = [summarize(run.select(s)) for run, s in columns]
    headers = ["metric", *(f"{run.name} {s}" for run, s in columns)]
    rows = [["questions", *(str(len(run.select(s))) for run, s in columns)]]
    for metric in METRICS:
        label = metric.label + (f" ({metric.unit})" if metric.unit else "")
        rows.append([label, *(fmt(v[metric.key], metric) for v in values)])
    return headers, rows


GROUP_COLUMNS = (
    "status_accuracy",
    "answer_hit_rate",
    "recall_at_1",
    "recall_at_3",
    "mrr",
    "sentence_precision",
    "mean_words",
    "abstention_recall",
    "latency_p50_ms",
)
_GROUP_HEADERS = (
    "status acc",
    "hit",
    "R@1",
    "R@3",
    "MRR",
    "sent prec",
    "words",
    "abst rec",
    "p50 ms",
)


def by_group(records: Sequence[Record], *, subcategory: bool) -> tuple[list[str], list[list[str]]]:
    """One row per category (or category/subcategory): counts of each status and the key metrics."""

    def key(r: Record) -> str:
        return (
            f"{r.question.category}/{r.question.subcategory}"
            if subcategory
            else r.question.category
        )

    by_metric = {x.key: x for x in METRICS}
    headers = ["subcategory" if subcategory else "category", "n", "got (a/n/r/c)", *_GROUP_HEADERS]
    rows = []
    for name, group in group_by(records, key).items():
        v = summarize(group)
        rows.append(
            [
                name,
                str(len(group)),
                _statuses(group),
                *(fmt(v[k], by_metric[k]) for k in GROUP_COLUMNS),
            ]
        )
    return headers, rows


def failures(records: Sequence[Record]) -> tuple[list[str], list[list[str]]]:
    """What came back for every question that failed a check."""
    headers = ["id", "split", "expected", "got", "top section", "why", "answer"]
    rows = []
    for r in records:
        if r.failures:
            preview = " ".join((r.error or r.answer).split())[:ANSWER_PREVIEW]
            rows.append(
                [
                    r.question.id,
                    r.split,
                    r.question.expected_status,
                    r.status,
                    r.top_section or "-",
                    "; ".join(r.failures),
                    preview,
                ]
            )
    return headers, rows


INTENT_ORDER = ("crisis", "advice", "article", "other")


def router_tables(records: Sequence[Record]) -> list[tuple[list[str], list[list[str]]]]:
    """The router's confusion matrix (rows: expected intent) and what decided each crisis and
    refused reply (pattern table or router); [] when the router is not exposed (over HTTP)."""
    matrix = confusion(records)
    if not matrix:
        return []
    headers = ["expected \\ router", *INTENT_ORDER]
    rows = [
        [want, *(str(matrix.get(want, {}).get(got, 0)) for got in INTENT_ORDER)]
        for want in INTENT_ORDER
        if want in matrix
    ]
    decided: dict[tuple[str, str], int] = {}
    for r in records:
        if r.screened_by is not None:
            key = (r.status, r.screened_by)
            decided[key] = decided.get(key, 0) + 1
    sources = [[status, by, str(n)] for (status, by), n in sorted(decided.items())]
    return [(headers, rows), (["reply", "decided by", "n"], sources)]


def gate_lines(checks: Sequence[Check]) -> list[str]:
    """PASS/FAIL per bound."""
    return [f"{'PASS' if c.passed else 'FAIL'}  {c.describe()}" for c in checks]


# ---------------------------------------------------------------------------------------------
# Renderings


def render_text(report: Report, *, max_failures: int | None = None) -> str:
    """What the terminal shows."""
    meta = report.meta
    rec = report.ragbot.select(report.split)
    out = [
        f"ragbot eval: {len(rec)} questions ({report.split}), {meta.get('mode', '?')}, "
        f"{meta.get('seconds', 0):.1f} s",
        "",
    ]
    out += [text_table(*headline(report, baseline_splits=False)), ""]
    out += [
        f"{report.ragbot.name} by category ({report.split})",
        text_table(*by_group(rec, subcategory=False)),
        "",
    ]
    out += [
        f"{report.ragbot.name} by subcategory ({report.split})",
        text_table(*by_group(rec, subcategory=True)),
        "",
    ]
    for headers, rows in router_tables(rec):
        out += [f"{report.ragbot.name} router ({report.split})", text_table(headers, rows), ""]
    headers, rows = failures(rec)
    shown = rows if max_failures is None else rows[:max_failures]
    out += [f"{report.ragbot.name} failures: {len(rows)} of {len(rec)} questions"]
    if shown:
        out.append(text_table(headers, shown, left=len(headers)))
    if len(shown) < len(rows):
        out.append(f"... {len(rows) - len(shown)} more in report.md")
    for run in report.runs:
        out += [f"note ({run.name}): {n}" for n in run.notes]
    if report.gate is not None:
        out += ["", "gate:", *gate_lines(report.gate)]
    return "\n".join(out)


def render_markdown(report: Report) -> str:
    """report.md: the same tables, tune and test per category, every failure."""
    meta = report.meta
    out = ["# ragbot evaluation", ""]
    out += [f"- {k}: {v}" for k, v in meta.items()]
    out += [
        "",
        "## Headline metrics",
        "",
        "Retrieval is ranked at section level; `n/a` marks what a system does not expose "
        "(ranked sections over HTTP) or a split without such questions.",
        "",
        md_table(*headline(report, baseline_splits=True)),
        "",
    ]
    for split in report.splits:
        rec = report.ragbot.select(split)
        out += [
            f"## {report.ragbot.name} by category ({split})",
            "",
            md_table(*by_group(rec, subcategory=False)),
            "",
        ]
    rec = report.ragbot.select(report.split)
    out += [
        f"## {report.ragbot.name} by subcategory ({report.split})",
        "",
        md_table(*by_group(rec, subcategory=True)),
        "",
    ]
    for headers, rows in router_tables(rec):
        out += [f"## {report.ragbot.name} router ({report.split})", "", md_table(headers, rows), ""]
    headers, rows = failures(rec)
    out += [
        f"## {report.ragbot.name} failures ({len(rows)} of {len(rec)})",
        "",
        md_table(headers, rows, left=len(headers)) if rows else "None.",
        "",
    ]
    notes = [f"- {run.name}: {n}" for run in report.runs for n in run.notes]
    if notes:
        out += ["## Notes", "", *notes, ""]
    if report.gate is not None:
        out += ["## Gate", "", *(f"- {line}" for line in gate_lines(report.gate)), ""]
    return "\n".join(out)
