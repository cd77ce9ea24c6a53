"""`ragbot report`: what visitors asked, for the clinic's content team.

gather.py    reply records and ratings -> ContentReport (plain dataclasses); --since parsing
grouping.py  unanswered questions grouped by meaning (the index's own query encoder)
charts.py    matplotlib charts as inline PNG (the [report] extra)
render.py    ContentReport -> report.md and a self-contained report.html
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ragbot.config import Settings
from ragbot.embeddings import Embedder, Vectors
from ragbot.records import Records
from ragbot.reporting.gather import ContentReport, gather, parse_since
from ragbot.reporting.render import render_html, render_markdown

__all__ = ["ContentReport", "gather", "parse_since", "read_report", "run_report", "write_report"]


def read_report(
    settings: Settings, since: str | None = None, embedder: Embedder | None = None
) -> ContentReport:
    """The report of the settings' records store; the query encoder loads only to group text."""
    start = parse_since(since) if since else None
    store = Records.open(settings)
    try:
        replies = store.replies(start)
        ratings: dict[str, str] = dict(store.ratings())
    finally:
        store.close()
    return gather(
        replies,
        ratings,
        embed=_lazy_embed(settings, embedder),
        max_distance=settings.report_group_distance,
        since=start,
    )


def _lazy_embed(settings: Settings, embedder: Embedder | None) -> Callable[[list[str]], Vectors]:
    loaded: list[Embedder] = [embedder] if embedder is not None else []

    def embed(texts: list[str]) -> Vectors:
        if not loaded:
            from ragbot.pipeline import serving_embedder

            # The index's own query encoder: questions are compared as the retriever sees them.
            loaded.append(serving_embedder(settings))
        return loaded[0].embed(texts)

    return embed


def write_report(report: ContentReport, out: Path) -> list[Path]:
    """report.md and report.html in `out`; the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in (
        ("report.md", render_markdown(report)),
        ("report.html", render_html(report)),
    ):
        path = out / name
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        written.append(path)
    return written


def run_report(settings: Settings, *, since: str | None, out: Path) -> list[Path]:
    """`ragbot report`: read the store, write report.md and report.html."""
    return write_report(read_report(settings, since), out)
