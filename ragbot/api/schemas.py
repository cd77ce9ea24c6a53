"""HTTP schemas: pydantic at the edge, built from the pipeline's dataclasses."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from ragbot.config import Settings
from ragbot.models import Answer

# What validate_question accepts, as a JSON Schema pattern (the same in ECMA, Python and Rust
# regex): optional leading and trailing whitespace (as str.strip sees it), then at least one
# visible character, and no control characters but tab, line feed and carriage return inside.
# Spelled with \u escapes, not \s, because the engines disagree on what \s holds.
_SPACE = r"\u0009-\u000d\u001c-\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_NOT_CONTROL = r"[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]"
_VISIBLE = r"[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
QUESTION_PATTERN = f"^[{_SPACE}]*{_VISIBLE}(?:{_NOT_CONTROL}*{_VISIBLE})?[{_SPACE}]*$"


MAX_HISTORY_ITEMS = 20  # turns a client may send; the pipeline reads the last RAGBOT_HISTORY_TURNS


class HistoryTurn(BaseModel):
    """An earlier turn of the conversation, as the client showed it."""

    model_config = ConfigDict(extra="forbid")

    question: StrictStr = Field(
        max_length=Settings.model_fields["max_question_chars"].default,
        description="The question asked then.",
    )
    citations: list[StrictStr] = Field(
        default_factory=list,
        max_length=10,
        description="What its reply showed: each citation's `ref` or its `quote`.",
    )


class AskRequest(BaseModel):
    """A question about the article."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"question": "How long does ketamine stay in the body?"}]},
    )

    question: StrictStr = Field(
        description=(
            "1 to 1,000 characters (RAGBOT_MAX_QUESTION_CHARS), not blank, and no control "
            "characters but tab and line breaks."
        ),
        # Documented for clients; enforced by the route and the pipeline (invalid_question).
        json_schema_extra={
            "minLength": 1,
            "maxLength": Settings.model_fields["max_question_chars"].default,
            "pattern": QUESTION_PATTERN,
        },
    )
    history: list[HistoryTurn] | None = Field(
        None,
        max_length=MAX_HISTORY_ITEMS,
        description=(
            'The conversation so far, oldest first (optional). A follow-up ("why?", "tell me '
            'more") is read with the last few turns (RAGBOT_HISTORY_TURNS); a new question '
            "ignores them. Replies still quote only the article."
        ),
    )


class CitationOut(BaseModel):
    """What a `[n]` marker in the answer resolves to."""

    id: int = Field(description="The n of the [n] marker.")
    doc_id: str
    title: str
    section: str = Field(description="Heading of the section the quote comes from.")
    quote: str = Field(description="The verbatim sentence: document text[start:end].")
    start: int
    end: int
    url: str | None
    score: float
    ref: str = Field(description="The quoted sentence's id: send it back in `history`.")


class AskResponse(BaseModel):
    """The reply of every status; `disclaimer` is always the same fixed text."""

    status: Literal["answered", "no_answer", "refused", "crisis"]
    answer: str
    citations: list[CitationOut]
    disclaimer: str
    suggestions: list[str]
    resources: str | None = Field(
        description=(
            "The crisis resources (988, 911, Poison Help), a fixed message to show before anything "
            "else: on every crisis reply, and beside any other reply to a message that shows "
            "distress. null otherwise."
        )
    )
    more: bool = Field(
        False,
        description='Whether "tell me more" would quote further sentences of the same section.',
    )
    request_id: str

    @classmethod
    def from_answer(cls, answer: Answer, request_id: str) -> AskResponse:
        """The HTTP shape of a pipeline Answer."""
        return cls(
            status=answer.status,
            answer=answer.answer,
            citations=[CitationOut(**c.__dict__) for c in answer.citations],
            disclaimer=answer.disclaimer,
            suggestions=list(answer.suggestions),
            resources=answer.resources,
            more=answer.more,
            request_id=request_id,
        )


class FeedbackRequest(BaseModel):
    """A rating of one reply, named by the request_id it came with."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"request_id": "3f2a9c1e0b7d4e5f", "rating": "down"}]},
    )

    request_id: StrictStr = Field(
        min_length=1, max_length=128, description="The `request_id` of the reply being rated."
    )
    rating: Literal["up", "down"] = Field(description='"up": helpful; "down": not helpful.')
    comment: StrictStr | None = Field(
        None,
        max_length=500,
        description="Optional, at most 500 characters; emails and phone numbers are redacted.",
    )


class FeedbackResponse(BaseModel):
    """The rating is stored (a second rating of the same reply replaces the first)."""

    status: Literal["recorded"] = "recorded"


class ErrorBody(BaseModel):
    """The one error shape of the API."""

    code: str = Field(description="Stable machine-readable code, e.g. invalid_question, not_found.")
    message: str = Field(description="What happened and what to do.")
    status: int
    request_id: str
    detail: Any = None


class ErrorResponse(BaseModel):
    """Every 4xx and 5xx body: {"error": {...}}."""

    error: ErrorBody


class Health(BaseModel):
    """The process is up."""

    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    """The index is loaded; what it holds."""

    status: Literal["ready"] = "ready"
    index: dict[str, Any]
    slack: bool = Field(description="Whether the Slack routes are configured and on.")
    refused_build: str | None = Field(
        None,
        description="A newer build in index/current that failed to load; the index above is "
        "still served.",
    )
