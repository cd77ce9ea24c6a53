"""The HTTP routes: thin translators around Pipeline.ask."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Annotated

import anyio
from fastapi import APIRouter, Depends, Request

from ragbot.api.overload import AskGate, RateLimit
from ragbot.api.schemas import (
    AskRequest,
    AskResponse,
    ErrorResponse,
    FeedbackRequest,
    FeedbackResponse,
    Health,
    Ready,
)
from ragbot.conversation import Turn
from ragbot.errors import IndexError_, InvalidQuestion, StoreUnavailable, UnknownRequest
from ragbot.pipeline import Pipeline, validate_question

if TYPE_CHECKING:
    from ragbot.api.records import RecordsSlot
    from ragbot.records import Channel

router = APIRouter()
log = logging.getLogger("ragbot.api")


def get_pipeline(request: Request) -> Pipeline:
    """The pipeline loaded in the lifespan; 503 until it is."""
    pipeline: Pipeline | None = request.app.state.pipeline
    if pipeline is None:
        if request.app.state.load_error:
            # The full reason, with server paths, is in the server's log, not in the response.
            raise IndexError_(
                "the service has no usable index: its operator must run `ragbot build-index` "
                "(the server log says why)"
            )
        raise IndexError_("the service is still loading its index; try again shortly")
    return pipeline


PipelineDep = Annotated[Pipeline, Depends(get_pipeline)]


RETRY_HEADER = {
    "Retry-After": {
        "description": "Seconds to wait before asking again",
        "schema": {"type": "integer"},
    }
}


@router.post(
    "/v1/ask",
    response_model=AskResponse,
    responses={
        429: {
            "model": ErrorResponse,
            "description": "This client asked too often (RAGBOT_RATE_LIMIT)",
            "headers": RETRY_HEADER,
        },
        503: {
            "model": ErrorResponse,
            "description": "Index not loaded yet, or the service is busy (Retry-After)",
            "headers": RETRY_HEADER,
        },
    },
    summary="Ask a question about the article",
)
async def ask(body: AskRequest, request: Request, pipeline: PipelineDep) -> AskResponse:
    """Answer with verbatim, cited sentences, or say why not; the disclaimer is always included."""
    max_chars = pipeline.settings.max_question_chars
    # The documented maxLength counts the characters sent, surrounding spaces included.
    if len(body.question) > max_chars:
        raise InvalidQuestion(
            f"question is {len(body.question)} characters; the limit is {max_chars}"
        )
    question = validate_question(body.question, max_chars)
    history = [Turn(t.question, tuple(t.citations)) for t in body.history or ()]
    limit: RateLimit | None = request.app.state.rate_limit
    if limit is not None:
        # Behind the documented proxy, uvicorn takes the client from X-Forwarded-For.
        await limit.check(request.client.host if request.client else "-")
    gate: AskGate = request.app.state.gate
    started = time.perf_counter()
    async with gate.slot():
        # The model is CPU-bound: a worker thread, so the event loop keeps serving /healthz.
        trace = await anyio.to_thread.run_sync(
            pipeline.ask_traced, question, history, limiter=gate.threads
        )
    latency_ms = (time.perf_counter() - started) * 1000
    rid: str = request.state.request_id
    records: RecordsSlot | None = request.app.state.records
    if records is not None:
        # Queued, written by the records thread: a slow or broken store never delays a reply.
        channel: Channel = "widget" if request.headers.get(CHANNEL_HEADER) == "widget" else "api"
        records.keep_reply(
            pipeline,
            trace,
            rid,
            channel,
            question,
            latency_ms,
            keep_questions=request.app.state.settings.keep_questions,
        )
    return AskResponse.from_answer(trace.answer, rid)


CHANNEL_HEADER = "X-Ragbot-Channel"  # the widget says "widget"; any other caller counts as "api"


@router.post(
    "/v1/feedback",
    status_code=201,
    response_model=FeedbackResponse,
    responses={
        404: {"model": ErrorResponse, "description": "No reply has this request_id"},
        503: {"model": ErrorResponse, "description": "The records store cannot be used now"},
    },
    summary="Rate a reply helpful or not helpful",
)
async def rate(body: FeedbackRequest, request: Request) -> FeedbackResponse:
    """Store a rating of the reply that carried `request_id`; a second rating replaces the first."""
    slot: RecordsSlot | None = request.app.state.records
    records = None if slot is None else await anyio.to_thread.run_sync(slot.get)
    if records is None:
        raise StoreUnavailable("feedback cannot be stored right now; try again later")
    stored = await anyio.to_thread.run_sync(
        records.add_feedback, body.request_id, body.rating, body.comment
    )
    if stored is None:
        raise UnknownRequest(
            "no reply has this request_id: send the request_id of a reply from /v1/ask"
        )
    return FeedbackResponse()


@router.get("/healthz", response_model=Health, summary="The process is up")
async def healthz() -> Health:
    """Always 200 while the process serves requests."""
    return Health()


@router.get(
    "/readyz",
    response_model=Ready,
    responses={503: {"model": ErrorResponse, "description": "Index not loaded yet"}},
    summary="The index is loaded",
)
async def readyz(request: Request, pipeline: PipelineDep) -> Ready:
    """What the live index holds, a newer build refused if any, and whether Slack is on."""
    return Ready(
        index=pipeline.index.summary(),
        slack=request.app.state.settings.slack_enabled,
        refused_build=request.app.state.refused_build,
    )
