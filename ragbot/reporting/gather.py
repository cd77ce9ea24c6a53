"""What the content report says, read from the records store as plain dataclasses."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from ragbot.embeddings import Vectors
from ragbot.errors import RagbotError
from ragbot.records import ReplyRecord
from ragbot.reporting.grouping import QuestionGroup, group_questions

STATUSES = ("answered", "no_answer", "refused", "crisis")  # the order of every table and chart
TOP_SECTIONS = 10
TOP_GROUPS = 15
SUGGESTIONS = 5
DURATION = re.compile(r"^\s*(\d+)\s*([hdw])\s*$")
UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """The start of the period: "7d", "12h", "2w" back from now, or an ISO date or time (UTC)."""
    now = now or datetime.now(UTC)
    match = DURATION.match(text)
    if match:
        return now - int(match.group(1)) * UNITS[match.group(2)]
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise RagbotError(
            f"--since {text!r} is neither a duration (7d, 12h, 2w) nor a date (2024-05-01)"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


@dataclass(frozen=True)
class DayCounts:
    """Replies of one day (UTC), by status."""

    day: date
    counts: dict[str, int]


@dataclass(frozen=True)
class SectionCount:
    """A section and how many replies cited it."""

    section: str
    replies: int


@dataclass(frozen=True)
class SectionRating:
    """Ratings of the replies that cited a section."""

    section: str
    up: int
    down: int

    @property
    def down_share(self) -> float:
        """Share of the ratings that were "not helpful"."""
        return self.down / (self.up + self.down)


@dataclass(frozen=True)
class TopicCount:
    """Unanswered replies whose text was not kept, by router intent and nearest section."""

    intent: str
    nearest_section: str | None
    replies: int


@dataclass(frozen=True)
class ContentReport:
    """Everything the content report shows; no field holds the text of a crisis message."""

    generated: datetime
    since: datetime | None
    replies: int
    statuses: dict[str, int]
    channels: dict[str, int]
    by_day: list[DayCounts]
    cited: list[SectionCount]
    least_helpful: list[SectionRating]
    rated_up: int
    rated_down: int
    unanswered: int
    groups: list[QuestionGroup]  # unanswered questions whose text was kept
    topics: list[TopicCount]  # unanswered replies without text
    suggestions: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def crisis(self) -> int:
        """Crisis replies (counted only: their text is never kept)."""
        return self.statuses.get("crisis", 0)

    @property
    def refused(self) -> int:
        """Requests for personal medical advice that were declined."""
        return self.statuses.get("refused", 0)


def gather(
    replies: Sequence[ReplyRecord],
    ratings: dict[str, str],
    *,
    embed: Callable[[list[str]], Vectors] | None,
    max_distance: float,
    since: datetime | None = None,
    now: datetime | None = None,
) -> ContentReport:
    """The report of some reply records and the ratings of them (by request id)."""
    statuses = Counter({s: 0 for s in STATUSES})
    statuses.update(r.status for r in replies)
    rated = [(r, ratings[r.request_id]) for r in replies if r.request_id in ratings]
    unanswered = [r for r in replies if r.status == "no_answer"]
    texts = [r.question for r in unanswered if r.question]
    groups: list[QuestionGroup] = []
    notes: list[str] = []
    if texts and embed is not None:
        groups = group_questions(texts, embed, max_distance)
    elif texts:
        notes.append("question text was kept, but no query encoder could group it")
    without = [r for r in unanswered if not r.question or embed is None]
    topics = Counter((r.intent, r.nearest_section) for r in without)
    topic_list = [
        TopicCount(intent, section, n)
        for (intent, section), n in sorted(
            topics.items(), key=lambda kv: (-kv[1], kv[0][0], kv[0][1] or "")
        )
    ]
    generated = now or datetime.now(UTC)
    return ContentReport(
        generated=generated,
        since=since,
        replies=len(replies),
        statuses=dict(statuses),
        channels=dict(sorted(Counter(r.channel for r in replies).items())),
        by_day=_by_day(replies, since, generated),
        cited=_cited(replies),
        least_helpful=_least_helpful(rated),
        rated_up=sum(v == "up" for _, v in rated),
        rated_down=sum(v == "down" for _, v in rated),
        unanswered=len(unanswered),
        groups=groups[:TOP_GROUPS],
        topics=topic_list,
        suggestions=_suggestions(groups, topic_list),
        notes=notes,
    )


def _by_day(
    replies: Sequence[ReplyRecord], since: datetime | None, generated: datetime
) -> list[DayCounts]:
    """Every day from the start of the period to the report's own day, quiet days included.

    The period ends when the report is made, not at the last reply: a quiet today is news.
    """
    if not replies:
        return []
    days: dict[date, Counter[str]] = {}
    for r in replies:
        days.setdefault(r.time.astimezone(UTC).date(), Counter())[r.status] += 1
    first = since.astimezone(UTC).date() if since is not None else min(days)
    first = min(first, min(days))
    last = max(max(days), generated.astimezone(UTC).date())
    out: list[DayCounts] = []
    day = first
    while day <= last:
        counts = days.get(day, Counter())
        out.append(DayCounts(day, {s: counts.get(s, 0) for s in _statuses(counts)}))
        day += timedelta(days=1)
    return out


def _statuses(counts: Counter[str]) -> list[str]:
    return [*STATUSES, *sorted(set(counts) - set(STATUSES))]


def _cited(replies: Sequence[ReplyRecord]) -> list[SectionCount]:
    counts = Counter(s for r in replies for s in r.sections)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [SectionCount(s, n) for s, n in ranked[:TOP_SECTIONS]]


def _least_helpful(rated: Sequence[tuple[ReplyRecord, str]]) -> list[SectionRating]:
    up: Counter[str] = Counter()
    down: Counter[str] = Counter()
    for record, rating in rated:
        for section in record.sections:
            (down if rating == "down" else up)[section] += 1
    rows = [SectionRating(s, up[s], down[s]) for s in set(up) | set(down)]
    rows.sort(key=lambda r: (-r.down_share, -r.down, r.section))
    return rows[:TOP_SECTIONS]


def _suggestions(groups: Sequence[QuestionGroup], topics: Sequence[TopicCount]) -> list[str]:
    """What to write about next: the biggest unanswered groups, then the busiest topics."""
    out = [f"{g.representative} ({g.size} asked)" for g in groups[:SUGGESTIONS]]
    for t in topics[: SUGGESTIONS - len(out)]:
        near = f"near “{t.nearest_section}”" if t.nearest_section else "off the article"
        out.append(f"{t.replies} unanswered {t.intent} questions {near}")
    return out
