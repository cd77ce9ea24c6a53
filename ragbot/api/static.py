"""The chat widget surface: GET /widget.js, the demo page at GET /, and GET /v1/meta.

The files live in `ragbot/static/` and are read once, when the app is built. `/v1/meta` gives the
widget what it shows before the first question: the article's title and its own questions.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

from fastapi import FastAPI, Request, Response
from pydantic import BaseModel, Field

from ragbot.answer import default_suggestions
from ragbot.api.routes import PipelineDep
from ragbot.api.schemas import ErrorResponse
from ragbot.config import Settings
from ragbot.guardrails import DISCLAIMER

# The widget changes only on deploy: caches may keep it an hour, then revalidate by ETag.
WIDGET_CACHE = "public, max-age=3600, stale-while-revalidate=86400"
PAGE_CACHE = "no-cache"
# Before the first question the panel has room for more of the article's questions than a reply.
FIRST_SCREEN_SUGGESTIONS = 6
# The demo page loads only its own script, stylesheet and API; the widget styles its shadow
# root with constructed stylesheets, which style-src does not govern, so no 'unsafe-inline'.
DEMO_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


class Meta(BaseModel):
    """What the widget shows before the first question."""

    title: str = Field(description="Title of the article the service answers about.")
    suggestions: list[str] = Field(
        description="The article's own questions (its headings ending in ?)."
    )
    disclaimer: str = Field(description="The fixed disclaimer sent with every reply.")
    max_question_chars: int = Field(
        description="Longest question accepted (RAGBOT_MAX_QUESTION_CHARS)."
    )


@dataclass(frozen=True)
class Asset:
    """A file of ragbot/static/ held in memory with its ETag."""

    body: bytes
    media_type: str
    etag: str

    @classmethod
    def read(cls, name: str, media_type: str) -> Asset:
        """Read ragbot/static/<name>."""
        body = resources.files("ragbot").joinpath("static", name).read_bytes()
        return cls(body, media_type, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')

    def response(self, request: Request, headers: dict[str, str]) -> Response:
        """200 with the body, or 304 when the caller already holds this version."""
        headers = {"ETag": self.etag, "X-Content-Type-Options": "nosniff", **headers}
        if self.etag in _etags(request.headers.get("if-none-match", "")):
            return Response(status_code=304, headers=headers)
        return Response(self.body, media_type=self.media_type, headers=headers)


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


def mount_static(app: FastAPI, settings: Settings) -> None:
    """Add the widget, the demo page and /v1/meta to the app."""
    widget = Asset.read("widget.js", "text/javascript; charset=utf-8")
    page = Asset.read("index.html", "text/html; charset=utf-8")
    css = Asset.read("demo.css", "text/css; charset=utf-8")

    @app.get("/widget.js", include_in_schema=False)
    async def widget_js(request: Request) -> Response:
        # Other sites load it with a <script> tag; CORP lets pages that set COEP embed it too.
        return widget.response(
            request, {"Cache-Control": WIDGET_CACHE, "Cross-Origin-Resource-Policy": "cross-origin"}
        )

    @app.get("/", include_in_schema=False)
    async def demo_page(request: Request) -> Response:
        return page.response(
            request,
            {
                "Cache-Control": PAGE_CACHE,
                "Content-Security-Policy": DEMO_CSP,
                "Referrer-Policy": "no-referrer",
            },
        )

    @app.get("/demo.css", include_in_schema=False)
    async def demo_css(request: Request) -> Response:
        return css.response(request, {"Cache-Control": PAGE_CACHE})

    @app.get(
        "/v1/meta",
        response_model=Meta,
        responses={503: {"model": ErrorResponse, "description": "Index not loaded yet"}},
        summary="What the chat widget shows first",
    )
    async def meta(pipeline: PipelineDep) -> Meta:
        """The article's title, its own questions and the disclaimer."""
        titles = [doc.title for doc in pipeline.index.documents.values()]
        wanted = pipeline.settings.suggestions and max(
            pipeline.settings.suggestions, FIRST_SCREEN_SUGGESTIONS
        )
        return Meta(
            title=" · ".join(titles),
            suggestions=default_suggestions(pipeline.index, wanted),
            disclaimer=DISCLAIMER,
            max_question_chars=pipeline.settings.max_question_chars,
        )
