"""The HTTP routes: thin translators around Pipeline.ask."""

from __future__ import annotations

from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Request

from ragbot.api.schemas import AskRequest, AskResponse, ErrorResponse, Health, Ready
from ragbot.errors import IndexError_, InvalidQuestion
from ragbot.pipeline import Pipeline, validate_question

router = APIRouter()


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


@router.post(
    "/v1/ask",
    response_model=AskResponse,
    responses={503: {"model": ErrorResponse, "description": "Index not loaded yet"}},
    summary="Ask a question about the article",
)
async def ask(body: AskRequest, request: Request, pipeline: PipelineDep) -> AskResponse:
    """Answer with verbatim, cited sentences, or say why not; the disclaimer is always included."""
    limit = pipeline.settings.max_question_chars
    # The documented maxLength counts the characters sent, surrounding spaces included.
    if len(body.question) > limit:
        raise InvalidQuestion(f"question is {len(body.question)} characters; the limit is {limit}")
    question = validate_question(body.question, limit)
    # The model is CPU-bound: run it in a worker thread so the event loop keeps serving /healthz.
    answer = await anyio.to_thread.run_sync(
        pipeline.ask, question, limiter=request.app.state.ask_limiter
    )
    return AskResponse.from_answer(answer, request.state.request_id)


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
    """What the loaded index holds, and whether Slack is configured."""
    return Ready(index=pipeline.index.summary(), slack=request.app.state.settings.slack_enabled)
