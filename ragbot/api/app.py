"""The app factory: settings and the pipeline loaded once in the lifespan, one error shape."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ragbot.api.routes import router
from ragbot.config import Settings
from ragbot.errors import RagbotError
from ragbot.pipeline import Pipeline

log = logging.getLogger("ragbot.api")
REQUEST_ID = re.compile(
    r"^[A-Za-z0-9._-]{1,64}$"
)  # accept a caller's id only if it is harmless in logs


def create_app(settings: Settings | None = None, pipeline: Pipeline | None = None) -> FastAPI:
    """The FastAPI app; tests hand in a ready pipeline, production loads one in the lifespan."""
    settings = settings or (pipeline.settings if pipeline else Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One thread per question that may share a model call (Settings.batch_max); a flood of
        # requests waits here, off the event loop.
        app.state.ask_limiter = anyio.CapacityLimiter(max(2, settings.batch_max))
        await _open_store(app, settings)
        try:
            if pipeline is not None:
                app.state.pipeline = pipeline
                yield
                return
            # Model and index take seconds to load: load them in the background so the server
            # binds at once, /healthz answers, and /readyz and /v1/ask say 503 until it is in.
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(_load_pipeline, app, settings)
                yield
                tasks.cancel_scope.cancel()
        finally:
            _close_store(app)

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
    app.state.store = None
    app.include_router(router)
    _mount_surfaces(app, settings)
    _install_error_handlers(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID"],
            max_age=600,
        )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestIdMiddleware, log_questions=settings.log_questions)
    return app


async def _load_pipeline(app: FastAPI, settings: Settings) -> None:
    started = time.perf_counter()
    try:
        app.state.pipeline = await anyio.to_thread.run_sync(
            lambda: Pipeline.load(settings, build_if_needed=settings.auto_build),
            abandon_on_cancel=True,
        )
    except Exception as exc:
        message = (
            exc.message if isinstance(exc, RagbotError) else f"could not load the pipeline: {exc}"
        )
        app.state.load_error = message  # logged in full; clients get a message without paths
        log.error("pipeline not loaded", extra={"error": message})
        return
    log.info("ready", extra={"seconds": round(time.perf_counter() - started, 2)})


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


def _close_store(app: FastAPI) -> None:
    store = app.state.store
    app.state.store = None
    if store is not None:
        store.close()


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


def error_response(
    request: Request | None,
    status: int,
    code: str,
    message: str,
    detail: Any = None,
    request_id: str | None = None,
) -> JSONResponse:
    """The one JSON error shape: {"error": {code, message, status, request_id, detail}}."""
    rid = (
        request_id
        or (getattr(request.state, "request_id", None) if request is not None else None)
        or "-"
    )
    body = {
        "error": {
            "code": code,
            "message": message,
            "status": status,
            "request_id": rid,
            "detail": detail,
        }
    }
    return JSONResponse(body, status_code=status, headers={"X-Request-ID": rid})


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RagbotError)
    async def ragbot_error(request: Request, exc: RagbotError) -> JSONResponse:
        if exc.status_code >= 500:
            log.error("error", extra={"code": exc.code, "error": exc.message})
        return error_response(request, exc.status_code, exc.code, exc.message, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return error_response(
                request, 400, "invalid_json", "the request body is not valid JSON"
            )
        detail = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
            for e in errors
        ]
        first = detail[0] if detail else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"] if p != "body") or "body"
        return error_response(request, 422, "invalid_request", f"{where}: {first['msg']}", detail)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # FastAPI raises a bare 400 when the body cannot be read as JSON at all (not UTF-8,
        # nested past the parser's depth, numbers past its limits).
        codes = {
            400: "invalid_json",
            404: "not_found",
            405: "method_not_allowed",
            413: "payload_too_large",
        }
        code = codes.get(exc.status_code, "http_error")
        message = {
            400: "the request body is not valid JSON (it must be UTF-8 JSON of reasonable depth)",
            404: f"no route {request.url.path}: see /openapi.json",
            405: f"{request.method} is not allowed on {request.url.path}: see /openapi.json",
        }.get(exc.status_code, str(exc.detail))
        response = error_response(request, exc.status_code, code, message)
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return error_response(
            request, 500, "internal_error", "something went wrong on our side; try again"
        )


class RequestIdMiddleware:
    """Gives every request an id (the caller's X-Request-ID if sane), echoes it, logs one line."""

    def __init__(self, app: ASGIApp, log_questions: bool = False) -> None:
        self.app = app
        self.log_questions = log_questions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        rid = incoming if REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        started = time.perf_counter()
        status_holder = {"status": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"
                ]
                headers.append((b"x-request-id", rid.encode()))
                if not any(k.lower() == b"x-content-type-options" for k, _ in headers):
                    # Browsers must not guess a type: a JSON answer is never rendered as HTML.
                    headers.append((b"x-content-type-options", b"nosniff"))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            log.info(
                "request",
                extra={
                    "request_id": rid,
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status_holder["status"],
                    "ms": round((time.perf_counter() - started) * 1000, 1),
                },
            )


class BodyLimitMiddleware:
    """Rejects bodies over the limit with 413 before they reach a route (Content-Length or streamed)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = scope.get("state", {}).get("request_id", "-")
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.max_bytes
            except ValueError:
                await error_response(
                    None, 400, "bad_request", "Content-Length is not a number", request_id=rid
                )(scope, receive, send)
                return
            if too_big:
                await self._reject(scope, receive, send, rid)
                return
        # Bodies here are small (a question, a Slack event): read up to the limit, then replay.
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._reject(scope, receive, send, rid)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send, rid: str) -> None:
        response = error_response(
            None,
            413,
            "payload_too_large",
            f"the request body is larger than {self.max_bytes} bytes",
            request_id=rid,
        )
        await response(scope, receive, send)


def json_log_formatter() -> logging.Formatter:
    """Structured logs: one JSON object a line, extra fields included."""

    class JsonFormatter(logging.Formatter):
        SKIP = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}

        def format(self, record: logging.LogRecord) -> str:
            data = {
                "time": self.formatTime(record),
                "level": record.levelname,
                "logger": record.name,
                "event": record.getMessage(),
            }
            data.update({k: v for k, v in record.__dict__.items() if k not in self.SKIP})
            if record.exc_info:
                data["exc"] = self.formatException(record.exc_info)
            return json.dumps(data, default=str)

    return JsonFormatter()
