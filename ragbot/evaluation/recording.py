"""`ragbot eval --record`: each evaluated question kept as a reply record (channel "eval").

The content report then reads an evaluation run like any day of real traffic, which is how the
tests check that its counts agree with the evaluation's own.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from ragbot.config import Settings
from ragbot.evaluation.core import Record
from ragbot.records import Records, ReplyRecord, now_utc, reply_record

SCREENED = frozenset({"crisis", "refused"})  # no retrieval behind the reply: no nearest section


def eval_reply_records(
    records: Iterable[Record],
    *,
    build_id: str,
    keep_questions: bool,
    at: datetime | None = None,
) -> list[ReplyRecord]:
    """A reply record per evaluated question that got a reply (errors have none to keep)."""
    at = at or now_utc()
    run = at.strftime("%Y%m%dT%H%M%S%f")  # a second run adds records, it never replaces the first
    out: list[ReplyRecord] = []
    for r in records:
        if r.error is not None:
            continue
        out.append(
            reply_record(
                request_id=f"eval-{run}-{r.question.id}",
                channel="eval",
                status=r.status,
                intent=r.intent or "unknown",
                turn="new",
                sections=r.citation_sections,
                build_id=build_id,
                latency_ms=r.latency_ms or 0.0,
                question=r.question.question,
                crisis=r.status == "crisis" or r.intent == "crisis",
                keep_questions=keep_questions,
                nearest_section=(
                    r.sections[0] if r.sections and r.status not in SCREENED else None
                ),
                at=at,
            )
        )
    return out


def record_run(records: Iterable[Record], settings: Settings, build_id: str) -> tuple[int, str]:
    """Write the run's reply records to the settings' records store; (how many, where)."""
    kept = eval_reply_records(records, build_id=build_id, keep_questions=settings.keep_questions)
    store = Records.open(settings)
    try:
        for record in kept:
            store.add_reply(record)
        return len(kept), store.where
    finally:
        store.close()
