"""The report's charts (matplotlib), as PNG bytes encoded for inline data: URIs."""

from __future__ import annotations

import base64
import io
from typing import Any

from ragbot.reporting.gather import ContentReport

# Colour-blind-safe (Okabe-Ito), one colour per status in every chart.
COLOURS = {"answered": "#009E73", "no_answer": "#E69F00", "refused": "#0072B2", "crisis": "#D55E00"}
OTHER = "#999999"
DPI = 110
LABEL_CHARS = 48  # section headings are shortened to keep the bars readable


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:  # the report's extra, not needed to serve
        from ragbot.errors import RagbotError

        raise RagbotError(
            "the report's charts need matplotlib: pip install 'ragbot[report]'"
        ) from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    fig.clf()
    _pyplot().close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _short(text: str) -> str:
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"


def statuses_by_day(report: ContentReport) -> str | None:
    """Stacked bars: replies per day by status; None without replies."""
    if not report.by_day:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.2))
    days = [d.day.isoformat() for d in report.by_day]
    bottom = [0] * len(days)
    for status in report.by_day[0].counts:
        values = [d.counts.get(status, 0) for d in report.by_day]
        if not any(values):
            continue
        colour = COLOURS.get(status, OTHER)
        ax.bar(days, values, bottom=bottom, label=status, color=colour)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_ylabel("replies")
    ax.legend(frameon=False, ncols=4, loc="upper left", bbox_to_anchor=(0, 1.18))
    ax.spines[["top", "right"]].set_visible(False)
    step = max(1, len(days) // 12)
    ax.set_xticks(range(0, len(days), step), days[::step], rotation=30, ha="right")
    return _png(fig)


def horizontal_bars(labels: list[str], values: list[float], xlabel: str, colour: str) -> str | None:
    """Horizontal bars, the first label on top; None without data."""
    if not labels:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(labels) + 0.8))
    ax.barh(labels[::-1], values[::-1], color=colour)
    ax.set_xlabel(xlabel)
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def cited_sections(report: ContentReport) -> str | None:
    """The most-cited sections."""
    rows = report.cited
    return horizontal_bars(
        [_short(r.section) for r in rows],
        [r.replies for r in rows],
        "replies citing it",
        COLOURS["answered"],
    )


def least_helpful(report: ContentReport) -> str | None:
    """Share of "not helpful" ratings per section."""
    rows = report.least_helpful
    return horizontal_bars(
        [f"{_short(r.section)} ({r.down}/{r.up + r.down})" for r in rows],
        [r.down_share for r in rows],
        "share rated not helpful",
        COLOURS["crisis"],
    )
