"""The app factory: settings and the pipeline loaded once in the lifespan, one error shape.

errors.py      the error shape and its handlers
middleware.py  request ids and log lines, request metrics, the body limit
overload.py    the queue for the model and the per-client rate limit
live.py        the pipeline, loaded in the background and replaced when a new build goes live
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

import anyio
from fastapi import FastAPI, Response
from fastapi.middleware.cors import CORSMiddleware

from ragbot import metrics
from ragbot.api.errors import install_error_handlers
from ragbot.api.live import serve_live
from ragbot.api.middleware import (
    BodyLimitMiddleware,
    MetricsMiddleware,
    RequestIdMiddleware,
    ShedMiddleware,
)
from ragbot.api.overload import AskGate, RateLimit
from ragbot.api.records import RecordsSlot
from ragbot.api.routes import router
from ragbot.config import Settings
from ragbot.pipeline import Pipeline

log = logging.getLogger("ragbot.api")


def create_app(
    settings: Settings | None = None, pipeline: Pipeline | None = None, *, watch: bool = False
) -> FastAPI:
    """The FastAPI app. Without a pipeline, it loads one in the lifespan and keeps it on the
    current build. `ragbot serve --no-build` hands in the pipeline it loaded before binding, with
    `watch` so that new builds still go live; tests hand in a ready one and nothing replaces it."""
    settings = settings or (pipeline.settings if pipeline else Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.gate = AskGate.from_settings(settings)
        app.state.rate_limit = RateLimit.from_settings(settings)
        app.state.records = RecordsSlot(settings)
        await _open_store(app, settings)
        try:
            if pipeline is not None:
                app.state.pipeline = pipeline
                metrics.index_build_live(pipeline.index.build_id)
            async with anyio.create_task_group() as tasks:
                # Once the service is up, not before: nothing needs the store until the first
                # reply is kept, and opening it would delay binding (api/records.py).
                tasks.start_soon(_open_records, app.state.records)
                # Model and index take a second to load: load them in the background so the
                # server binds at once, /healthz answers, and /readyz and /v1/ask say 503 until
                # the pipeline is in; then keep serving whichever build index/current names.
                # Tests hand in a ready pipeline and nothing replaces it.
                if pipeline is None or watch:
                    tasks.start_soon(serve_live, app, settings)
                yield
                tasks.cancel_scope.cancel()
        finally:
            _close_store(app)
            app.state.records.close()
            if app.state.rate_limit is not None:
                await app.state.rate_limit.aclose()
            metrics.process_exiting()

    app = FastAPI(
        title="ragbot",
        version=_version(),
        summary="Answers questions about a health article with cited, verbatim sentences.",
        lifespan=lifespan,
        # Swagger UI and ReDoc load their assets from a CDN: off unless asked for (RAGBOT_DOCS);
        # /openapi.json is always served.
        docs_url="/docs" if settings.docs else None,
        redoc_url=None,
        responses={
            400: {"model": _error_model(), "description": "Invalid JSON or request"},
            413: {"model": _error_model(), "description": "Body too large"},
            422: {"model": _error_model(), "description": "Invalid question"},
        },
    )
    # A redirect to the slash-less path would copy the caller's Host header into Location.
    app.router.redirect_slashes = False
    app.state.settings = settings
    app.state.pipeline = pipeline
    app.state.load_error = None
    app.state.refused_build = None  # a new build that failed to load, named in /readyz
    app.state.store = None
    app.state.records = None  # RecordsSlot: reply records and ratings, opened in the lifespan
    app.include_router(router)
    if settings.metrics:
        _add_metrics(app)
    _mount_surfaces(app, settings)
    install_error_handlers(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Content-Type", "X-Request-ID", "X-Ragbot-Channel"],
            expose_headers=["X-Request-ID", "Retry-After"],
            max_age=600,
        )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(ShedMiddleware)  # outside the body limit: a shed body is never read
    if settings.metrics:
        # Outside the body limit, so that its 413s are counted too.
        app.add_middleware(MetricsMiddleware, routes=app.router.routes)
    app.add_middleware(RequestIdMiddleware, log_questions=settings.log_questions)
    return app


async def _open_store(app: FastAPI, settings: Settings) -> None:
    """The shared state store, opened once; only Slack uses it so far, so only with Slack on.

    A store that cannot be opened is one error line, not a failed start: the API still serves,
    and Slack events get 503 (Slack retries them) until a restart with a working store.
    """
    if not settings.slack_enabled:
        return
    from ragbot.errors import StoreUnavailable
    from ragbot.store import open_store

    try:
        app.state.store = await anyio.to_thread.run_sync(open_store, settings)
    except StoreUnavailable as exc:
        where = "redis" if settings.redis_url else str(settings.resolved_state_path)
        log.error("state store not opened", extra={"store": where, "error": exc.message})


async def _open_records(slot: RecordsSlot) -> None:
    # Not abandoned on cancel: a shutdown while it opens waits for it, then closes the store.
    await anyio.to_thread.run_sync(slot.open)


def _close_store(app: FastAPI) -> None:
    store = app.state.store
    app.state.store = None
    if store is not None:
        store.close()


def _add_metrics(app: FastAPI) -> None:
    """GET /metrics in the Prometheus text format; kept out of the public API's schema."""

    async def metrics_text() -> Response:
        # Reading every process's files in multiprocess mode is file I/O: off the event loop.
        body = await anyio.to_thread.run_sync(metrics.exposition)
        return Response(body, media_type=metrics.CONTENT_TYPE)

    app.add_api_route("/metrics", metrics_text, methods=["GET"], include_in_schema=False)


def _version() -> str:
    from ragbot import __version__

    return __version__


def _error_model() -> Any:
    from ragbot.api.schemas import ErrorResponse

    return ErrorResponse


def _mount_surfaces(app: FastAPI, settings: Settings) -> None:
    """The Slack app and the chat widget, when their modules are present."""
    try:
        from ragbot.slack import mount_slack
    except ImportError:
        pass
    else:
        mount_slack(app, settings)
    if resources.files("ragbot").joinpath("static").is_dir():
        from ragbot.api.static import mount_static

        mount_static(app, settings)
