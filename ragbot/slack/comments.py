"""The comment modal's submission: what was missing from a reply rated "Not helpful".

ratings.py opens the modal (built in blocks.py) after a stored "Not helpful" click; it carries the
reply's request id in its private_metadata. The submission (view_submission) comes to the same
signed route as every Slack request. The comment is stored on that reply's rating, redacted like a
comment sent to POST /v1/feedback, before the acknowledgement, so that a comment too long or not
stored is shown as an error under the field. Closing the modal sends nothing (notify_on_close is
off), so the rating stays as it is.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from slack_bolt import App

from ragbot.records import MAX_COMMENT_CHARS, FeedbackRecord, Rating, Records
from ragbot.slack.blocks import COMMENT_ACTION_ID, COMMENT_BLOCK_ID, COMMENT_CALLBACK_ID
from ragbot.slack.ratings import NOT_STORED, RecordsGetter, Write, store_feedback

TOO_LONG = f"Please keep it to {MAX_COMMENT_CHARS} characters or fewer."
COMMENT_NOT_STORED = "Sorry, your comment could not be saved right now. Please try again later."


def submitted(view: dict[str, Any]) -> tuple[object, str | None]:
    """The request id a submitted modal carries, and its comment (None when left empty)."""
    try:
        metadata = json.loads(str(view.get("private_metadata") or "{}"))
    except ValueError:
        metadata = None
    request_id = metadata.get("request_id") if isinstance(metadata, dict) else None
    values = (view.get("state") or {}).get("values") or {}
    field = (values.get(COMMENT_BLOCK_ID) or {}).get(COMMENT_ACTION_ID) or {}
    comment = field.get("value") if isinstance(field, dict) else None
    return request_id, comment if isinstance(comment, str) and comment.strip() else None


def add_comment(comment: str) -> Write:
    """Write the comment on a reply's rating: "down", unless the rating was changed since."""

    def write(records: Records, request_id: str) -> FeedbackRecord | None:
        current = records.feedback(request_id)
        rating: Rating = current.rating if current is not None else "down"
        return records.add_feedback(request_id, rating, comment)

    return write


def listen_for_comments(app: App, get_records: RecordsGetter) -> None:
    """Register the listener for the comment modal's submission on the Bolt app."""

    @app.view(COMMENT_CALLBACK_ID)
    def on_comment(ack: Callable[..., None], view: dict[str, Any]) -> None:
        request_id, comment = submitted(view)
        if comment is None:
            ack()  # nothing to write: the rating stays as it is
            return
        if len(comment) > MAX_COMMENT_CHARS:  # Slack enforces max_length; a forged client may not
            ack(response_action="errors", errors={COMMENT_BLOCK_ID: TOO_LONG})
            return
        # Stored before the acknowledgement, so that a failure shows under the field: one
        # upsert is well within Slack's 3 s.
        problem = store_feedback(get_records, request_id, add_comment(comment))
        if problem is None:
            ack()
            return
        shown = COMMENT_NOT_STORED if problem == NOT_STORED else problem
        ack(response_action="errors", errors={COMMENT_BLOCK_ID: shown})
