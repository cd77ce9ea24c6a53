"""mount_slack(): POST /slack/events for events, slash commands, interactivity and url_verification.

The route checks Slack's v0 signature over the raw body before anything else reads it, and Bolt
checks it again in its own middleware. A request that fails is answered 401 in the API's error
shape and never reaches a listener or the Web API. Signed requests are dispatched to Bolt on a
worker thread, because Bolt's dispatch is synchronous (it waits for ack() and may call auth.test).
Event dedupe needs the state store that the app's lifespan opens (app.state.store); while it is
missing or down, events are answered 503 in the error shape, and Slack retries them. Replies are
recorded, and ratings stored, in the records store the lifespan opens (app.state.records).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio
from fastapi import FastAPI, Request, Response

from ragbot import metrics
from ragbot.api.errors import error_response
from ragbot.config import Settings
from ragbot.errors import BadRequest, InvalidSignature, StoreUnavailable
from ragbot.pipeline import Pipeline
from ragbot.store import Store

if TYPE_CHECKING:
    from slack_bolt import App, BoltResponse
    from slack_sdk.signature import SignatureVerifier

    from ragbot.api.records import RecordsSlot
    from ragbot.records import Records

log = logging.getLogger("ragbot.slack")

SLACK_PATH = "/slack/events"
# Headers Bolt reads to re-enter its own lazy listeners; a caller must never set them.
BOLT_INTERNAL_HEADER_PREFIX = "x-slack-bolt-"
BAD_SIGNATURE = (
    "the request is not signed with this app's Slack signing secret, or is over 5 minutes old: "
    "check RAGBOT_SLACK_SIGNING_SECRET and the server clock"
)
STORE_DOWN = "the event cannot be checked for duplicates right now; Slack will retry it"
# Outcomes of a request, counted in ragbot_slack_events_total.
ANSWERED, DUPLICATE, REJECTED = "answered", "duplicate", "rejected"


def mount_slack(app: FastAPI, settings: Settings) -> None:
    """Add POST /slack/events when both Slack secrets are set; otherwise add nothing (404)."""
    if not settings.slack_enabled or settings.slack_signing_secret is None:
        log.info(
            "slack off: set RAGBOT_SLACK_BOT_TOKEN and RAGBOT_SLACK_SIGNING_SECRET to turn it on"
        )
        return

    # Slack Bolt is imported only when Slack is on: it is 0.15 s of every cold start.
    from slack_bolt.adapter.starlette.handler import to_starlette_response
    from slack_sdk.signature import SignatureVerifier

    from ragbot.slack.bolt import build_bolt_app

    def current_pipeline() -> Pipeline | None:
        pipeline: Pipeline | None = app.state.pipeline
        return pipeline

    def current_store() -> Store | None:
        store: Store | None = app.state.store
        return store

    def current_records() -> Records | None:
        # Called from Bolt's threads: waits while the store is still opening (api/records.py).
        slot: RecordsSlot | None = app.state.records
        return None if slot is None else slot.get()

    bolt = build_bolt_app(settings, current_pipeline, current_store, current_records)
    verifier = SignatureVerifier(settings.slack_signing_secret)
    app.state.slack_bolt = bolt

    async def slack_events(request: Request) -> Response:
        """Slack's Request URL: events, slash commands, button clicks and url_verification."""
        response, outcome = await handle(request)
        metrics.SLACK_EVENTS.labels(outcome=outcome).inc()
        return response

    async def handle(request: Request) -> tuple[Response, str]:
        """The response, and its outcome for the metrics: answered, duplicate or rejected."""
        body = await request.body()  # BodyLimitMiddleware replays the buffered body unchanged
        if not _signed(verifier, body, request):
            return error_response(request, InvalidSignature, BAD_SIGNATURE), REJECTED
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return error_response(request, BadRequest, "the request body is not UTF-8"), REJECTED
        headers = {
            k: v
            for k, v in request.headers.items()
            if not k.startswith(BOLT_INTERNAL_HEADER_PREFIX)
        }
        retry = headers.get("x-slack-retry-num")
        if retry is not None:
            log.info(
                "slack retry", extra={"retry": retry, "reason": headers.get("x-slack-retry-reason")}
            )
        try:
            bolt_response, duplicate = await anyio.to_thread.run_sync(
                _dispatch, bolt, text, headers, request.url.query
            )
        except ValueError:
            not_slack = "the request body is not a Slack payload"
            return error_response(request, BadRequest, not_slack), REJECTED
        if bolt_response.status == 401:  # Bolt's own check disagreed: keep the API's error shape
            failed = "the Slack signature check failed"
            return error_response(request, InvalidSignature, failed), REJECTED
        if bolt_response.status == 503:  # DedupeEvents: the state store is down (reason logged)
            return error_response(request, StoreUnavailable, STORE_DOWN), REJECTED
        outcome = DUPLICATE if duplicate else ANSWERED if bolt_response.status < 400 else REJECTED
        return to_starlette_response(bolt_response), outcome

    app.add_api_route(
        SLACK_PATH,
        slack_events,
        methods=["POST"],
        summary="Slack events, slash commands, interactivity and url_verification (signed)",
        tags=["slack"],
        response_class=Response,
        responses={
            400: {"description": "Not a Slack payload"},
            401: {"description": "Not signed with the app's signing secret, or stale"},
            503: {"description": "The state store is down; Slack retries the event"},
        },
    )


def _signed(verifier: SignatureVerifier, body: bytes, request: Request) -> bool:
    timestamp = request.headers.get("x-slack-request-timestamp")
    signature = request.headers.get("x-slack-signature")
    try:
        return bool(verifier.is_valid(body, timestamp, signature))
    except (ValueError, TypeError):  # a timestamp that is not a number
        return False


def _dispatch(
    bolt: App, body: str, headers: dict[str, str], query: str
) -> tuple[BoltResponse, bool]:
    """Parse and dispatch on a worker thread: Bolt's response, and whether the event was a
    duplicate; ValueError when the body is not a Slack payload."""
    from slack_bolt import BoltRequest

    from ragbot.slack.bolt import DUPLICATE as DUPLICATE_KEY

    try:
        request = BoltRequest(body=body, query=query, headers=dict(headers))
    except (ValueError, AttributeError, TypeError) as exc:  # JSON errors are ValueErrors
        raise ValueError(str(exc)) from exc
    payload = request.body
    if not isinstance(payload, dict) or (
        payload.get("type") == "event_callback" and not isinstance(payload.get("event"), dict)
    ):
        # Bolt would fail inside its own middleware ("event": null) and answer an empty 500.
        raise ValueError("an event callback without an event object")
    response: BoltResponse = bolt.dispatch(request)
    return response, bool(request.context.get(DUPLICATE_KEY))
