"""Block Kit replies built from an Answer: escaped for Slack mrkdwn and cut to Slack's limits.

Every reply ends with the disclaimer as a context block, whatever its status. A crisis reply holds
the fixed crisis message and the disclaimer only: nothing from the article. Any other reply that
carries the crisis resources (distress below the crisis threshold) opens with the same fixed
message, then goes on as usual. An answered reply given a request id carries "Helpful" / "Not
helpful" buttons just above the disclaimer, their value the reply's request id; once rated, the
chosen button is highlighted and a thank-you line follows it. "Not helpful" also opens a modal
asking, optionally, what was missing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from ragbot.guardrails import CRISIS_MESSAGE, DISCLAIMER
from ragbot.models import Answer, Citation
from ragbot.records import MAX_COMMENT_CHARS

# Limits from Slack's Block Kit reference (docs.slack.dev/reference/block-kit):
MAX_BLOCKS = 50  # blocks in one message
SECTION_TEXT_LIMIT = 3000  # section block text
CONTEXT_TEXT_LIMIT = 3000  # text of one context element
# chat.postMessage truncates `text` at 40,000 characters and advises staying under 4,000; when
# blocks are present `text` is only the notification fallback, so keep it short.
FALLBACK_TEXT_LIMIT = 3000
ELLIPSIS = "…"
MAX_TITLE_CHARS = 300  # a section title in a citation line
MAX_URL_CHARS = (
    1000  # longer links are dropped (the title is still shown) to keep room for the quote
)

# The rating buttons: ids the interactivity listener matches, stable across releases because
# messages already posted keep them.
RATE_UP_ACTION = "ragbot_rate_up"
RATE_DOWN_ACTION = "ragbot_rate_down"
RATING_BLOCK_ID = "ragbot_rating"
RATED_BLOCK_ID = "ragbot_rated"  # the thank-you line shown once a reply is rated
RATING_LABELS = {"up": "Helpful", "down": "Not helpful"}
RATING_ACTIONS = {"up": RATE_UP_ACTION, "down": RATE_DOWN_ACTION}
RATED_TEXT = "Thanks for your feedback. You rated this answer *{label}*; click again to change it."
RATING_BLOCKS = 2  # the buttons and, once rated, the thank-you line

# The comment modal after "Not helpful". A modal's title, submit and close labels hold at most 24
# characters (docs.slack.dev/reference/views/modal-views).
COMMENT_CALLBACK_ID = "ragbot_comment"
COMMENT_BLOCK_ID = "ragbot_comment"
COMMENT_ACTION_ID = "ragbot_comment_text"
COMMENT_TITLE = "What was missing?"
COMMENT_SUBMIT = "Send"
COMMENT_CLOSE = "Skip"
COMMENT_LABEL = "What should the answer have said? (optional)"
COMMENT_HINT = "Emails and phone numbers are removed before it is kept."

_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_LINK_TOKEN = re.compile(r"<([^<>]*)>")
_USER_MENTION = re.compile(r"^[@!]")
_SPACES = re.compile(r"[ \t]+")

Block = dict[str, Any]


@dataclass(frozen=True)
class Reply:
    """One Slack message: the Block Kit blocks and the plain fallback `text`."""

    text: str
    blocks: tuple[Block, ...]

    def as_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for chat.postMessage / respond()."""
        return {"text": self.text, "blocks": [dict(b) for b in self.blocks]}


def escape_mrkdwn(text: str) -> str:
    """Escape the three characters Slack reserves for its markup: & < >."""
    return "".join(_ESCAPES.get(ch, ch) for ch in text)


def fit(text: str, limit: int) -> str:
    """`text` escaped for mrkdwn; if longer than `limit`, cut and ended with an ellipsis.

    The cut is made on the raw text, so an entity such as `&amp;` is never split in half.
    """
    escaped = escape_mrkdwn(text)
    if len(escaped) <= limit:
        return escaped
    budget = limit - len(ELLIPSIS)
    out: list[str] = []
    used = 0
    for ch in text:
        piece = _ESCAPES.get(ch, ch)
        if used + len(piece) > budget:
            break
        out.append(piece)
        used += len(piece)
    return "".join(out).rstrip() + ELLIPSIS


def question_from_slack(text: str) -> str:
    """The question in a Slack message: mentions dropped, links and entities made plain text."""

    def plain(match: re.Match[str]) -> str:
        inner = match.group(1)
        target, _, label = inner.partition("|")
        if _USER_MENTION.match(target):  # <@U123>, <@U123|name>, <!here>: not part of the question
            return " "
        if target.startswith("#"):  # <#C123|general>
            return f"#{label}" if label else " "
        return label or target  # <https://x|label> or <https://x>

    text = _LINK_TOKEN.sub(plain, text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    lines = (_SPACES.sub(" ", line).strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line).strip()


def answer_reply(answer: Answer, request_id: str | None = None) -> Reply:
    """The Block Kit reply for any Answer status; an answered one with `request_id` can be rated."""
    if answer.status == "crisis":
        # Only the fixed, reviewed message: nothing from the article, however the answer was built.
        return _reply(CRISIS_MESSAGE, [], (), answer.disclaimer or DISCLAIMER)
    return _reply(
        answer.answer,
        list(answer.citations),
        answer.suggestions,
        answer.disclaimer or DISCLAIMER,
        # The fixed, reviewed text, whatever `resources` holds: it is never built from a reply.
        resources=CRISIS_MESSAGE if answer.resources else None,
        # Like the widget: only an answer is rated, not a refusal or "not in the article".
        rate_id=request_id if answer.status == "answered" else None,
    )


def rating_buttons(request_id: str, chosen: str | None = None) -> Block:
    """The "Helpful" / "Not helpful" actions block; the chosen rating, if any, is highlighted."""
    buttons: list[Block] = []
    for rating, label in RATING_LABELS.items():
        button: Block = {
            "type": "button",
            "action_id": RATING_ACTIONS[rating],
            "text": {"type": "plain_text", "text": label},
            "value": request_id,
        }
        if rating == chosen:
            button["style"] = "primary"
        buttons.append(button)
    return {"type": "actions", "block_id": RATING_BLOCK_ID, "elements": buttons}


def rated_blocks(blocks: Sequence[Block], request_id: str, rating: str) -> list[Block]:
    """A rated message's blocks: its buttons show `rating` and a thank-you line follows them.

    Rating again replaces both, so the message always shows one rating, the one stored."""
    out: list[Block] = []
    for block in blocks:
        if block.get("block_id") == RATED_BLOCK_ID:
            continue
        if block.get("block_id") != RATING_BLOCK_ID:
            out.append(dict(block))
            continue
        out.append(rating_buttons(request_id, chosen=rating))
        thanks = RATED_TEXT.format(label=RATING_LABELS[rating])
        out.append({**_context(thanks), "block_id": RATED_BLOCK_ID})
    return out


def comment_modal(request_id: str) -> Block:
    """The modal asking why a reply was not helpful; its private_metadata holds the request id."""
    return {
        "type": "modal",
        "callback_id": COMMENT_CALLBACK_ID,
        "title": {"type": "plain_text", "text": COMMENT_TITLE},
        "submit": {"type": "plain_text", "text": COMMENT_SUBMIT},
        "close": {"type": "plain_text", "text": COMMENT_CLOSE},
        "private_metadata": json.dumps({"request_id": request_id}),
        "blocks": [
            {
                "type": "input",
                "block_id": COMMENT_BLOCK_ID,
                "optional": True,
                "label": {"type": "plain_text", "text": COMMENT_LABEL},
                "hint": {"type": "plain_text", "text": COMMENT_HINT},
                "element": {
                    "type": "plain_text_input",
                    "action_id": COMMENT_ACTION_ID,
                    "multiline": True,
                    "max_length": MAX_COMMENT_CHARS,
                },
            }
        ],
    }


def notice_reply(message: str) -> Reply:
    """A reply that is not an answer (usage, loading, an error); it too carries the disclaimer."""
    return _reply(message, [], (), DISCLAIMER)


def usage_reply(command: str) -> Reply:
    """What to do when the question is empty."""
    example = "How does ketamine work in the brain?"
    return notice_reply(
        "Ask me a question about the article, for example: mention me in a channel with "
        f"“{example}”, send me a direct message, or type `{command} {example}`."
    )


def _reply(
    message: str,
    citations: list[Citation],
    suggestions: tuple[str, ...],
    disclaimer: str,
    *,
    resources: str | None = None,
    rate_id: str | None = None,
) -> Reply:
    head: list[Block] = [_section(fit(resources, SECTION_TEXT_LIMIT))] if resources else []
    head.append(_section(fit(message, SECTION_TEXT_LIMIT)))
    tail: list[Block] = []
    if suggestions:
        lines = "\n".join(f"• {escape_mrkdwn(s)}" for s in suggestions)
        tail.append(_section(_cut_escaped(f"*You could also ask:*\n{lines}", SECTION_TEXT_LIMIT)))
    if rate_id is not None:
        tail.append(rating_buttons(rate_id))
    tail.append(_context(fit(disclaimer, CONTEXT_TEXT_LIMIT)))
    if citations:
        # 1: the divider; room is kept for the thank-you line a rating adds later.
        later = RATING_BLOCKS - 1 if rate_id is not None else 0
        room = MAX_BLOCKS - len(head) - len(tail) - 1 - later
        head.append({"type": "divider"})
        head.extend(_citation_block(c) for c in citations[: max(room, 0)])
    blocks = tuple(head + tail)
    return Reply(text=_fallback(message, disclaimer, resources), blocks=blocks)


def _citation_block(citation: Citation) -> Block:
    heading = citation.section or citation.title
    title = fit(heading, MAX_TITLE_CHARS)
    link = _safe_url(citation.url)
    label = f"<{link}|{title}>" if link else title
    first = f"*[{citation.id}]* {label}\n"
    lines = citation.quote.splitlines() or [""]
    body = fit("\n".join(lines), SECTION_TEXT_LIMIT - len(first) - len(lines))
    body = "\n".join(f">{line}" for line in body.split("\n"))  # our blockquote markup, unescaped
    return _section(first + body)


def _safe_url(url: str | None) -> str | None:
    """An http(s) URL safe inside Slack's <url|label> markup, or None."""
    if not url:
        return None
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    safe = escape_mrkdwn(quote(url.strip(), safe=":/?#[]@!$&'()*+,;=%~"))
    return safe if len(safe) <= MAX_URL_CHARS else None


def _fallback(message: str, disclaimer: str, resources: str | None = None) -> str:
    """The notification text: the resources first when there are any, the disclaimer last."""
    tail = "\n\n" + escape_mrkdwn(disclaimer)
    head = fit(resources, FALLBACK_TEXT_LIMIT // 2) + "\n\n" if resources else ""
    return head + fit(message, FALLBACK_TEXT_LIMIT - len(head) - len(tail)) + tail


def _cut_escaped(text: str, limit: int) -> str:
    """Cut already-escaped mrkdwn at a line break so no entity or markup is split."""
    if len(text) <= limit:
        return text
    cut = text.rfind("\n", 0, limit - len(ELLIPSIS))
    return text[: max(cut, 0)] + ELLIPSIS


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}
