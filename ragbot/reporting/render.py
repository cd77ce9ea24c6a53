"""The content report as Markdown and as one self-contained HTML page (charts inline, no URLs)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from ragbot.reporting import charts
from ragbot.reporting.gather import STATUSES, ContentReport

TITLE = "What visitors asked: content report"

STYLE = """
body { font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1b1b1b;
  background: #fafafa; margin: 0; }
main { max-width: 60rem; margin: 0 auto; padding: 1.5rem 1.25rem 3rem; background: #fff; }
h1 { font-size: 1.7rem; margin: 0 0 .25rem; }
h2 { font-size: 1.25rem; margin: 2rem 0 .5rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
p.meta, p.note { color: #555; margin: .2rem 0; }
table { border-collapse: collapse; margin: .5rem 0 1rem; width: 100%; }
th, td { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid #e5e5e5; vertical-align: top; }
th { background: #f2f2f2; font-weight: 600; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
img { max-width: 100%; height: auto; display: block; margin: .5rem 0; }
.tiles { display: flex; flex-wrap: wrap; gap: .75rem; margin: 1rem 0; }
.tile { border: 1px solid #ddd; border-radius: 6px; padding: .5rem .9rem; min-width: 7rem; }
.tile b { display: block; font-size: 1.5rem; }
ol li { margin: .25rem 0; }
"""


def _period(report: ContentReport) -> str:
    since = report.since.strftime("%Y-%m-%d %H:%M UTC") if report.since else "the first record"
    return f"from {since} to {report.generated.strftime('%Y-%m-%d %H:%M UTC')}"


def _share(n: int, total: int) -> str:
    return f"{n / total:.0%}" if total else "–"


def _tables(report: ContentReport) -> list[tuple[str, list[str], list[list[str]], str]]:
    """Every section of the report: (heading, columns, rows, what it means)."""
    statuses = [*STATUSES, *sorted(set(report.statuses) - set(STATUSES))]
    out: list[tuple[str, list[str], list[list[str]], str]] = []
    out.append(
        (
            "Replies by status",
            ["status", "replies", "share"],
            [
                [
                    s,
                    str(report.statuses.get(s, 0)),
                    _share(report.statuses.get(s, 0), report.replies),
                ]
                for s in statuses
            ],
            "answered: quoted the article; no_answer: the article holds no answer; refused: a "
            "request for personal medical advice, declined; crisis: the crisis resources were shown.",
        )
    )
    out.append(
        (
            "Replies per day",
            ["day (UTC)", *statuses],
            [
                [d.day.isoformat(), *(str(d.counts.get(s, 0)) for s in statuses)]
                for d in report.by_day
            ],
            "",
        )
    )
    out.append(
        (
            "Most-cited sections",
            ["section", "replies citing it"],
            [[c.section, str(c.replies)] for c in report.cited],
            "",
        )
    )
    out.append(
        (
            "Least helpful sections",
            ["section", "not helpful", "helpful", "share not helpful"],
            [
                [r.section, str(r.down), str(r.up), f"{r.down_share:.0%}"]
                for r in report.least_helpful
            ],
            f"From {report.rated_up + report.rated_down} rated replies "
            f"({report.rated_up} helpful, {report.rated_down} not helpful); a reply counts for "
            "every section it cited.",
        )
    )
    out.append(
        (
            "Unanswered topics: questions grouped by meaning",
            ["asked", "representative question", "also asked"],
            [[str(g.size), g.representative, " · ".join(g.examples)] for g in report.groups],
            "Questions that got no_answer and whose text was kept (RAGBOT_KEEP_QUESTIONS), "
            "grouped by the meaning of the question; largest groups first.",
        )
    )
    out.append(
        (
            "Unanswered topics: by intent and nearest section",
            ["intent", "nearest section", "replies"],
            [[t.intent, t.nearest_section or "–", str(t.replies)] for t in report.topics],
            "no_answer replies whose text was not kept: the router's intent and the section that "
            "came closest.",
        )
    )
    return out


def render_markdown(report: ContentReport) -> str:
    """report.md."""
    lines = [f"# {TITLE}", "", f"{report.replies} replies {_period(report)}."]
    lines += [
        "",
        f"- crisis replies: {report.crisis} (counted only; their text is never kept)",
        f"- refusals of personal medical advice: {report.refused}",
        f"- unanswered (no_answer): {report.unanswered}",
        "- channels: " + (", ".join(f"{c} {n}" for c, n in report.channels.items()) or "none"),
    ]
    for heading, columns, rows, about in _tables(report):
        lines += ["", f"## {heading}", ""]
        if about:
            lines += [about, ""]
        lines += _md_table(columns, rows) if rows else ["None in this period."]
    lines += ["", "## Suggested next questions to write about", ""]
    lines += [f"{i}. {s}" for i, s in enumerate(report.suggestions, 1)] or ["None in this period."]
    lines += [f"\n_{n}_" for n in report.notes]
    return "\n".join(lines) + "\n"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
        *("| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows),
    ]


def render_html(report: ContentReport) -> str:
    """report.html: one file, its stylesheet and charts inline, nothing fetched from elsewhere."""
    pictures = {
        "Replies per day": (charts.statuses_by_day(report), "Replies per day, stacked by status"),
        "Most-cited sections": (charts.cited_sections(report), "Most-cited sections"),
        "Least helpful sections": (
            charts.least_helpful(report),
            "Share of ratings that were not helpful, per section",
        ),
    }
    tiles = [
        ("replies", report.replies),
        ("answered", report.statuses.get("answered", 0)),
        ("unanswered", report.unanswered),
        ("refused", report.refused),
        ("crisis", report.crisis),
        ("rated not helpful", report.rated_down),
    ]
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(TITLE)}</title><style>{STYLE}</style></head><body><main>",
        f"<h1>{escape(TITLE)}</h1>",
        f'<p class="meta">{report.replies} replies {escape(_period(report))}. Channels: '
        + escape(", ".join(f"{c} {n}" for c, n in report.channels.items()) or "none")
        + ".</p>",
        '<div class="tiles">'
        + "".join(f'<div class="tile"><b>{n}</b>{escape(label)}</div>' for label, n in tiles)
        + "</div>",
        '<p class="note">Crisis replies are counted only: their text is never kept.</p>',
    ]
    for heading, columns, rows, about in _tables(report):
        parts.append(f"<h2>{escape(heading)}</h2>")
        if about:
            parts.append(f'<p class="note">{escape(about)}</p>')
        picture, alt = pictures.get(heading, (None, ""))
        if picture is not None:
            parts.append(f'<img alt="{escape(alt)}" src="data:image/png;base64,{picture}">')
        parts.append(_html_table(columns, rows) if rows else "<p>None in this period.</p>")
    parts.append("<h2>Suggested next questions to write about</h2>")
    if report.suggestions:
        parts.append(
            "<ol>" + "".join(f"<li>{escape(s)}</li>" for s in report.suggestions) + "</ol>"
        )
    else:
        parts.append("<p>None in this period.</p>")
    parts += [f'<p class="note">{escape(n)}</p>' for n in report.notes]
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"


def _html_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def cell(tag: str, text: str) -> str:
        numeric = text.replace("%", "").isdigit()
        return f"<{tag}{' class=n' if numeric else ''}>{escape(text)}</{tag}>"

    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(cell("td", c) for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
