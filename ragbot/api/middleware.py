"""ASGI middleware: a request id and one log line per request, request metrics, the body limit."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Sequence

from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ragbot import metrics
from ragbot.api.errors import error_response
from ragbot.errors import BadRequest, PayloadTooLarge

log = logging.getLogger("ragbot.api")
# A caller's X-Request-ID is kept only if it is harmless in logs.
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# Any token is a method to HTTP: others are one label value, like unknown paths.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


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
        status = 500
        logged = False

        def log_request() -> None:
            nonlocal logged
            if logged:
                return
            logged = True
            log.info(
                "request",
                extra={
                    "request_id": rid,
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "ms": round((time.perf_counter() - started) * 1000, 1),
                },
            )

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"
                ]
                headers.append((b"x-request-id", rid.encode()))
                if not any(k.lower() == b"x-content-type-options" for k, _ in headers):
                    # Browsers must not guess a type: a JSON answer is never rendered as HTML.
                    headers.append((b"x-content-type-options", b"nosniff"))
                message["headers"] = headers
            await send(message)
            if completes_response(message):
                log_request()

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            log_request()  # a request that ended without completing its response


class MetricsMiddleware:
    """Counts and times every request by route template (never the raw path), method, status."""

    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.routes = routes  # the app's own list: routes added later are matched too

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        counted = False

        def count() -> None:
            nonlocal counted
            if counted:
                return
            counted = True
            labels = {
                "route": route_template(self.routes, scope),
                "method": scope["method"] if scope["method"] in METHODS else metrics.OTHER_ROUTE,
                "status": str(status),
            }
            metrics.HTTP_REQUESTS.labels(**labels).inc()
            metrics.HTTP_SECONDS.labels(**labels).observe(time.perf_counter() - started)

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)
            if completes_response(message):
                count()

        try:
            await self.app(scope, receive, send_counted)
        finally:
            count()  # a request that ended without completing its response


def completes_response(message: Message) -> bool:
    """Whether a message is the last of its response. Logged and counted then, not when the
    app returns: background work after it (a reply's record) is not the request's time, and a
    scrape or a log read right after the response must already see it."""
    return message["type"] == "http.response.body" and not message.get("more_body", False)


def route_template(routes: Sequence[BaseRoute], scope: Scope) -> str:
    """The path template of the route that took the request ("/v1/ask"), or "other"."""
    taken = scope.get("route")  # set by the router once it has chosen a route
    path = getattr(taken, "path", None)
    if isinstance(path, str) and path:
        return path
    # Not routed (a 413 from the body limit, a 404): find the route that would have matched.
    return _matching(routes, scope) or metrics.OTHER_ROUTE


def _matching(routes: Sequence[BaseRoute], scope: Scope) -> str | None:
    for route in routes:
        # PARTIAL: the path matches but not the method (a 405): still that route.
        if route.matches(scope)[0] is Match.NONE:
            continue
        path = getattr(route, "path", None)
        if isinstance(path, str) and path:
            return path
        # An included router (FastAPI wraps include_router's routes): look inside it.
        inner = getattr(getattr(route, "original_router", route), "routes", None)
        found = _matching(inner, scope) if inner else None
        if found:
            return found
    return None


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
                    None, BadRequest, "Content-Length is not a number", request_id=rid
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
            PayloadTooLarge,
            f"the request body is larger than {self.max_bytes} bytes",
            request_id=rid,
        )
        await response(scope, receive, send)


class ShedMiddleware:
    """Turns a question away with 503 before its body is read when the model's queue is full:
    under overload, a refusal should cost the server as little as it can (README: unattended)."""

    def __init__(self, app: ASGIApp, path: str = "/v1/ask") -> None:
        self.app = app
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == self.path:
            gate = getattr(scope["app"].state, "gate", None)
            if gate is not None and gate.full():
                rid = scope.get("state", {}).get("request_id", "-")
                await error_response(None, gate.refuse(), request_id=rid)(scope, receive, send)
                return
        await self.app(scope, receive, send)
