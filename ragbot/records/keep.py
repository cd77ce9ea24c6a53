"""record_of(): the record of one reply from any surface; keep_reply(): write it, a store error
never reaching the reply."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from ragbot.records import Channel, Records, ReplyRecord, reply_record

if TYPE_CHECKING:
    from ragbot.pipeline import Pipeline, Trace

log = logging.getLogger("ragbot.records")


def record_of(
    pipeline: Pipeline,
    trace: Trace,
    request_id: str,
    channel: Channel,
    question: str,
    latency_ms: float,
    *,
    keep_questions: bool,
) -> ReplyRecord:
    """The record of one reply, as the pipeline that gave it traced it."""
    return reply_record(
        request_id=request_id,
        channel=channel,
        status=trace.answer.status,
        intent=trace.route.intent,
        turn=trace.turn,
        sections=[c.section for c in trace.answer.citations],
        build_id=pipeline.index.manifest.build_id,
        latency_ms=latency_ms,
        question=question,
        crisis=trace.route.crisis,
        keep_questions=keep_questions,
        nearest_section=trace.nearest_section,
    )


def keep_reply(records: Records, make: Callable[[], ReplyRecord], request_id: str) -> None:
    """Write the record `make` builds (record_of, bound to one reply); a store error, or one
    building it, is logged and swallowed: the reply is already sent."""
    try:
        records.add_reply(make())
    except Exception as exc:  # nothing a record does may reach the visitor
        log.error("reply record not written", extra={"request_id": request_id, "error": str(exc)})
