"""Clicks on the rating buttons (Slack interactivity, block_actions): store the rating, say thanks.

A click comes to the same signed route as events (POST /slack/events is also the app's
Interactivity Request URL), so it is verified like every Slack request. It is acknowledged first
(Slack allows 3 s), then stored through the records store the API uses: one rating per reply, a
second click replaces the first. The message is then redrawn through the payload's response_url,
the chosen button highlighted and a thank-you line under it, so everyone sees the rating that
counts. A payload without the message's blocks (an ephemeral slash command reply) gets an
ephemeral thank-you instead. Who clicked is not stored. A stored "Not helpful" also opens the
comment modal (blocks.py; its submission: comments.py), before the redraw: its trigger_id is
honoured for 3 s only.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from ragbot.records import FeedbackRecord, Rating, Records
from ragbot.slack.blocks import RATE_DOWN_ACTION, RATE_UP_ACTION, comment_modal, rated_blocks

log = logging.getLogger("ragbot.slack")

RecordsGetter = Callable[[], Records | None]
Write = Callable[[Records, str], FeedbackRecord | None]  # a rating or a comment, for a request id

RATE_ACTIONS = re.compile(f"^(?:{RATE_UP_ACTION}|{RATE_DOWN_ACTION})$")
MAX_REQUEST_ID_CHARS = 128  # the records table's request_id column
THANKS = "Thanks for your feedback."
NOT_STORED = "Sorry, your rating could not be saved right now. Please try again later."
UNKNOWN_REPLY = "Sorry, this reply can no longer be rated."


def store_feedback(get_records: RecordsGetter, request_id: object, write: Write) -> str | None:
    """Run `write` (a rating or a comment) for a request id; None when stored, otherwise what to
    tell the user."""
    if not isinstance(request_id, str) or not 0 < len(request_id) <= MAX_REQUEST_ID_CHARS:
        return UNKNOWN_REPLY
    records = get_records()
    if records is None:
        return NOT_STORED
    try:
        stored = write(records, request_id)
    except Exception as exc:  # StoreUnavailable, or anything else: the user still hears back
        log.error("slack feedback not stored", extra={"request_id": request_id, "error": str(exc)})
        return NOT_STORED
    return None if stored is not None else UNKNOWN_REPLY


def store_rating(get_records: RecordsGetter, request_id: object, rating: Rating) -> str | None:
    """Store a rating; None when stored, otherwise what to tell the user."""
    return store_feedback(get_records, request_id, lambda r, rid: r.add_feedback(rid, rating))


def open_comment_modal(client: WebClient, trigger_id: object, request_id: str) -> None:
    """Open the comment modal for the user who clicked; a failure is logged, the rating kept."""
    if not isinstance(trigger_id, str) or not trigger_id:
        return
    try:
        client.views_open(trigger_id=trigger_id, view=comment_modal(request_id))
    except Exception:  # an expired trigger, Slack down: the rating stands without a comment
        log.exception("slack comment modal not opened")


def listen_for_ratings(app: App, get_records: RecordsGetter) -> None:
    """Register the listener for both rating buttons on the Bolt app."""

    @app.action(RATE_ACTIONS)
    def on_rate(
        ack: Callable[[], None],
        body: dict[str, Any],
        action: dict[str, Any],
        respond: Callable[..., Any],
        client: WebClient,
    ) -> None:
        ack()  # first: storing may wait on the database, Slack waits 3 s at most
        rating: Rating = "up" if action.get("action_id") == RATE_UP_ACTION else "down"
        request_id = action.get("value")
        problem = store_rating(get_records, request_id, rating)
        if problem is None and rating == "down":
            open_comment_modal(client, body.get("trigger_id"), str(request_id))
        message = body.get("message")
        blocks = message.get("blocks") if isinstance(message, dict) else None
        text = message.get("text") if isinstance(message, dict) else None
        try:
            if problem is None and isinstance(blocks, list) and blocks:
                respond(
                    text=str(text or THANKS),
                    blocks=rated_blocks(blocks, str(request_id), rating),
                    replace_original=True,
                )
            else:
                respond(text=problem or THANKS, response_type="ephemeral", replace_original=False)
        except Exception:
            log.exception("slack rating reply failed")
