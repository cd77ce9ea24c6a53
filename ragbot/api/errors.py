"""The one error shape of the HTTP API and the handlers that produce it.

Every error body is {"error": {code, message, status, request_id, detail}}. Codes come from the
exception classes in ragbot.errors, so a code is defined once, beside its status.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ragbot.errors import (
    HttpError,
    InvalidJson,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    RagbotError,
)

log = logging.getLogger("ragbot.api")

# What Starlette's own HTTP errors mean here. FastAPI raises a bare 400 when the body cannot be
# read as JSON at all (not UTF-8, nested past the parser's depth, numbers past its limits).
_STARLETTE: dict[int, type[RagbotError]] = {
    400: InvalidJson,
    404: NotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
}


def error_response(
    request: Request | None,
    error: RagbotError | type[RagbotError],
    message: str | None = None,
    *,
    detail: Any = None,
    request_id: str | None = None,
    status: int | None = None,
) -> JSONResponse:
    """The error shape for an exception (or an exception class and a message)."""
    if isinstance(error, RagbotError):
        message = error.message if message is None else message
        detail = error.detail if detail is None else detail
        headers = dict(error.headers)
    else:
        headers = {}
    rid = (
        request_id
        or (getattr(request.state, "request_id", None) if request is not None else None)
        or "-"
    )
    status = status or error.status_code
    body = {
        "error": {
            "code": error.code,
            "message": message or "",
            "status": status,
            "request_id": rid,
            "detail": detail,
        }
    }
    headers["X-Request-ID"] = rid
    return JSONResponse(body, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    """Every error the app can meet, in the one shape; never an empty 500."""

    @app.exception_handler(RagbotError)
    async def ragbot_error(request: Request, exc: RagbotError) -> JSONResponse:
        if exc.status_code >= 500 and exc.retry_after is None:
            log.error("error", extra={"code": exc.code, "error": exc.message})
        return error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return error_response(request, InvalidJson, "the request body is not valid JSON")
        detail = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
            for e in errors
        ]
        first = detail[0] if detail else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"] if p != "body") or "body"
        return error_response(request, InvalidRequest, f"{where}: {first['msg']}", detail=detail)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = _STARLETTE.get(exc.status_code, RagbotError)
        if kind is RagbotError:  # a status no route raises today; keep it, with a generic code
            response = error_response(request, HttpError, str(exc.detail), status=exc.status_code)
        else:
            message = {
                InvalidJson: "the request body is not valid JSON "
                "(it must be UTF-8 JSON of reasonable depth)",
                NotFound: f"no route {request.url.path}: see /openapi.json",
                MethodNotAllowed: f"{request.method} is not allowed on {request.url.path}: "
                "see /openapi.json",
            }.get(kind, str(exc.detail))
            response = error_response(request, kind, message)
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return error_response(request, RagbotError, "something went wrong on our side; try again")
