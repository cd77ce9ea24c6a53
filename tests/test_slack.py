"""The Slack surface: Block Kit replies, dedupe, and the real service against a local Slack stub.

Real Slack is unreachable here: `tests/slack_stub.py` stands in for the Web API and response_url,
and the service runs for real (uvicorn on 127.0.0.1, a free port, the real model and index).
Dedupe state lives in the real store: a SQLite file, or a real redis-server (tests/redis_server.py).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import sqlalchemy as sa
import yaml
from hypothesis import given
from hypothesis import strategies as st
from live_server import free_port, serve
from redis_server import RedisServer
from slack_bolt import BoltRequest
from slack_stub import BOT_ID, BOT_USER_ID, TEAM_ID, Call, SlackStub, sign

from ragbot.api.app import create_app
from ragbot.config import Settings
from ragbot.errors import InvalidQuestion
from ragbot.guardrails import CRISIS_MESSAGE, DISCLAIMER
from ragbot.models import Answer, Citation, Status
from ragbot.pipeline import Pipeline
from ragbot.records import MAX_COMMENT_CHARS, Records
from ragbot.records import replies as reply_table
from ragbot.slack.blocks import (
    COMMENT_ACTION_ID,
    COMMENT_BLOCK_ID,
    COMMENT_CALLBACK_ID,
    CONTEXT_TEXT_LIMIT,
    FALLBACK_TEXT_LIMIT,
    MAX_BLOCKS,
    RATE_DOWN_ACTION,
    RATE_UP_ACTION,
    RATED_BLOCK_ID,
    RATING_BLOCK_ID,
    SECTION_TEXT_LIMIT,
    answer_reply,
    escape_mrkdwn,
    fit,
    notice_reply,
    question_from_slack,
    rated_blocks,
    usage_reply,
)
from ragbot.slack.bolt import (
    ERROR_MESSAGE,
    LOADING_MESSAGE,
    WORKING_REACTION,
    WORKING_TEXT,
    build_bolt_app,
)
from ragbot.slack.comments import TOO_LONG
from ragbot.slack.ratings import THANKS, UNKNOWN_REPLY
from ragbot.store.sqlite import SqliteStore

SECRET = "test-signing-secret"
TOKEN = "xoxb-test-token"
QUESTION = "How does ketamine work in the brain?"
ESCAPED_DISCLAIMER = escape_mrkdwn(DISCLAIMER)
ACK_BUDGET_SECONDS = 3.0  # Slack shows an error when a request is not acknowledged within 3 s
WAIT = 15.0  # generous upper bound for a reply to reach the stub


# ---------------------------------------------------------------------------------------------
# Helpers


def citation(
    n: int = 1,
    *,
    quote: str = "Ketamine blocks NMDA receptors.",
    section: str = "How It Works",
    url: str | None = None,
) -> Citation:
    return Citation(
        id=n,
        doc_id="d",
        title="The Article",
        section=section,
        quote=quote,
        start=0,
        end=len(quote),
        url=url,
        score=0.9,
    )


def texts_of(value: Any) -> list[str]:
    """Every "text" string inside a Block Kit structure."""
    if isinstance(value, dict):
        found = [value["text"]] if isinstance(value.get("text"), str) else []
        return found + [t for v in value.values() for t in texts_of(v)]
    if isinstance(value, list | tuple):
        return [t for v in value for t in texts_of(v)]
    return []


def assert_within_slack_limits(
    blocks: list[dict[str, Any]] | tuple[dict[str, Any], ...], text: str
) -> None:
    assert 0 < len(blocks) <= MAX_BLOCKS
    for block in blocks:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= SECTION_TEXT_LIMIT
        if block["type"] == "context":
            assert all(len(e["text"]) <= CONTEXT_TEXT_LIMIT for e in block["elements"])
    assert len(text) <= FALLBACK_TEXT_LIMIT


def ends_with_disclaimer(blocks: list[dict[str, Any]] | tuple[dict[str, Any], ...]) -> bool:
    return blocks[-1] == {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": ESCAPED_DISCLAIMER}],
    }


_ids = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}{next(_ids):06d}"


def message_ts() -> str:
    return f"{int(time.time())}.{next(_ids):06d}"


def event_body(event: dict[str, Any], event_id: str | None = None) -> bytes:
    """An Events API callback as Slack sends it."""
    return json.dumps(
        {
            "token": "legacy-token",
            "team_id": TEAM_ID,
            "api_app_id": "A0TEST",
            "type": "event_callback",
            "event": event,
            "event_id": event_id or unique("Ev"),
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": TEAM_ID,
                    "user_id": BOT_USER_ID,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
        }
    ).encode()


def mention(channel: str, ts: str, text: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "app_mention",
        "user": "U0HUMAN01",
        "text": f"<@{BOT_USER_ID}> {text}",
        "ts": ts,
        "channel": channel,
        "event_ts": ts,
        **extra,
    }


def direct_message(channel: str, ts: str, text: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "message",
        "channel_type": "im",
        "user": "U0HUMAN01",
        "text": text,
        "ts": ts,
        "channel": channel,
        "event_ts": ts,
        **extra,
    }


def post_signed(
    base: str,
    body: bytes,
    *,
    content_type: str = "application/json",
    extra_headers: dict[str, str] | None = None,
    timestamp: int | None = None,
    secret: str = SECRET,
) -> httpx.Response:
    headers = {
        "Content-Type": content_type,
        **sign(secret, body, timestamp),
        **(extra_headers or {}),
    }
    return httpx.post(f"{base}/slack/events", content=body, headers=headers, timeout=10)


def in_channel(calls: list[Call], method: str, channel: str) -> list[Call]:
    return [c for c in calls if c.method == method and c.payload.get("channel") == channel]


def replies(stub: SlackStub, channel: str, count: int = 1) -> list[Call]:
    """Wait for `count` chat.postMessage calls in `channel` and return them."""
    calls = stub.wait_for(
        lambda calls: len(in_channel(calls, "chat.postMessage", channel)) >= count, WAIT
    )
    return in_channel(calls, "chat.postMessage", channel)


def settle(stub: SlackStub, channel: str, ts: str) -> None:
    """Wait until the work on message `ts` is over: its reply posted and the reaction removed."""
    stub.wait_for(
        lambda calls: any(
            c.payload.get("timestamp") == ts for c in in_channel(calls, "reactions.remove", channel)
        ),
        WAIT,
    )


def slack_settings(real_settings: Settings, stub: SlackStub, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "corpus_dir": real_settings.corpus_dir,
        "index_dir": real_settings.index_dir,
        "slack_bot_token": TOKEN,
        "slack_signing_secret": SECRET,
        "slack_api_url": stub.api_url,
    }
    values.update(overrides)
    return Settings(**values)


# ---------------------------------------------------------------------------------------------
# Block Kit replies (pure functions)


def test_mrkdwn_escaping_covers_ampersand_and_angle_brackets() -> None:
    assert escape_mrkdwn("a & b < c > d &amp;") == "a &amp; b &lt; c &gt; d &amp;amp;"


def test_answer_quote_and_section_title_are_escaped_but_the_quote_markup_is_kept() -> None:
    answer = Answer(
        "answered",
        "Tom & Jerry <script> [1]",
        (citation(quote="x < y & y > z", section="Q&A <1>"),),
        DISCLAIMER,
    )
    blocks = answer_reply(answer).blocks
    assert blocks[0]["text"]["text"] == "Tom &amp; Jerry &lt;script&gt; [1]"
    quote_block = blocks[2]["text"]["text"]
    assert quote_block == "*[1]* Q&amp;A &lt;1&gt;\n>x &lt; y &amp; y &gt; z"


@given(
    st.text(alphabet=st.sampled_from("ab&<>… \n"), max_size=200),
    st.integers(min_value=2, max_value=60),
)
def test_fit_never_exceeds_the_limit_nor_splits_an_entity(text: str, limit: int) -> None:
    cut = fit(text, limit)
    assert len(cut) <= limit
    if cut != escape_mrkdwn(text):
        assert cut.endswith("…")
        # What is left is the escape of a prefix of the text: no half entity such as "&am".
        body = cut.removesuffix("…")
        assert any(escape_mrkdwn(text[:i]).rstrip() == body for i in range(len(text)))


def test_a_very_long_answer_is_cut_within_slack_limits() -> None:
    long = "Ketamine & the brain <NMDA>. " * 400
    answer = Answer(
        "answered",
        long,
        tuple(
            citation(n, quote=long, section="S&" * 400, url="https://example.org/a?b=1&c=2")
            for n in range(1, 120)
        ),
        DISCLAIMER,
        tuple(f"Question {n} & more?" * 30 for n in range(40)),
    )
    reply = answer_reply(answer)
    assert_within_slack_limits(reply.blocks, reply.text)
    assert reply.blocks[0]["text"]["text"].endswith("…")
    assert ends_with_disclaimer(reply.blocks)
    assert reply.text.endswith(ESCAPED_DISCLAIMER)


@pytest.mark.parametrize("status", ["answered", "no_answer", "refused", "crisis"])
def test_every_status_carries_the_disclaimer_as_the_last_context_block(status: str) -> None:
    cites = (citation(),) if status == "answered" else ()
    reply = answer_reply(
        Answer(status, "Some reply [1].", cites, DISCLAIMER, ("Another question?",))
    )  # type: ignore[arg-type]
    assert ends_with_disclaimer(reply.blocks)
    assert ESCAPED_DISCLAIMER in reply.text


@pytest.mark.parametrize("reply", [notice_reply("Still loading."), usage_reply("/ketamine-faq")])
def test_usage_and_notices_also_carry_the_disclaimer(reply: Any) -> None:
    assert ends_with_disclaimer(reply.blocks)


def test_crisis_reply_holds_only_the_crisis_message_and_the_disclaimer() -> None:
    # Even if a crisis Answer were built with article material, none of it may reach Slack.
    answer = Answer(
        "crisis", "article text", (citation(),), DISCLAIMER, ("A question from the article?",)
    )
    reply = answer_reply(answer)
    assert [b["type"] for b in reply.blocks] == ["section", "context"]
    assert reply.blocks[0]["text"]["text"] == escape_mrkdwn(CRISIS_MESSAGE)
    assert "article" not in json.dumps(reply.as_kwargs()).replace("article, not medical", "")


def test_an_answer_with_resources_opens_with_the_crisis_message_then_answers_as_usual() -> None:
    answer = Answer(
        "answered",
        "Ketamine blocks NMDA receptors [1].",
        (citation(),),
        DISCLAIMER,
        ("Another question?",),
        resources=CRISIS_MESSAGE,
    )
    reply = answer_reply(answer)
    assert [b["type"] for b in reply.blocks] == [
        "section",  # the crisis resources, before anything from the article
        "section",  # the answer
        "divider",
        "section",  # citation [1]
        "section",  # suggestions
        "context",  # the disclaimer, last as always
    ]
    assert reply.blocks[0]["text"]["text"] == escape_mrkdwn(CRISIS_MESSAGE)
    assert reply.blocks[1]["text"]["text"] == "Ketamine blocks NMDA receptors [1]."
    assert reply.blocks[3]["text"]["text"].startswith("*[1]* How It Works\n>")
    assert ends_with_disclaimer(reply.blocks)
    # The notification text too: the resources first, then the answer, then the disclaimer.
    assert reply.text.startswith(escape_mrkdwn(CRISIS_MESSAGE) + "\n\nKetamine blocks NMDA")
    assert reply.text.endswith(ESCAPED_DISCLAIMER)
    assert_within_slack_limits(reply.blocks, reply.text)


@pytest.mark.parametrize("status", ["no_answer", "refused"])
def test_no_answer_and_refusal_with_resources_also_open_with_the_crisis_message(
    status: Status,
) -> None:
    reply = answer_reply(Answer(status, "Not in the article.", (), DISCLAIMER, resources="x"))
    # The fixed message, never the text the Answer happens to carry in `resources`.
    assert reply.blocks[0]["text"]["text"] == escape_mrkdwn(CRISIS_MESSAGE)
    assert reply.blocks[1]["text"]["text"] == "Not in the article."
    assert ends_with_disclaimer(reply.blocks)


def test_an_answer_without_resources_has_no_crisis_message() -> None:
    answer = Answer("answered", "Ketamine blocks NMDA receptors [1].", (citation(),), DISCLAIMER)
    reply = answer_reply(answer)
    assert [b["type"] for b in reply.blocks] == ["section", "divider", "section", "context"]
    assert reply.blocks[0]["text"]["text"] == "Ketamine blocks NMDA receptors [1]."
    assert "988" not in json.dumps(reply.as_kwargs())
    assert reply.text == "Ketamine blocks NMDA receptors [1].\n\n" + ESCAPED_DISCLAIMER


def test_a_crisis_reply_with_resources_still_holds_the_crisis_message_once() -> None:
    answer = Answer("crisis", CRISIS_MESSAGE, (), DISCLAIMER, resources=CRISIS_MESSAGE)
    reply = answer_reply(answer)
    assert [b["type"] for b in reply.blocks] == ["section", "context"]
    assert reply.blocks[0]["text"]["text"] == escape_mrkdwn(CRISIS_MESSAGE)


def test_a_very_long_answer_with_resources_keeps_them_whole_within_slack_limits() -> None:
    long = "Ketamine & the brain <NMDA>. " * 400
    answer = Answer(
        "answered",
        long,
        tuple(citation(n, quote=long) for n in range(1, 120)),
        DISCLAIMER,
        tuple(f"Question {n}?" for n in range(6)),
        resources=CRISIS_MESSAGE,
    )
    reply = answer_reply(answer)
    assert_within_slack_limits(reply.blocks, reply.text)
    assert reply.blocks[0]["text"]["text"] == escape_mrkdwn(CRISIS_MESSAGE)
    assert reply.text.startswith(escape_mrkdwn(CRISIS_MESSAGE))
    assert ends_with_disclaimer(reply.blocks)


def test_a_citation_links_its_section_only_to_a_safe_http_url() -> None:
    linked = answer_reply(
        Answer("answered", "A [1]", (citation(url="https://ex.org/p?a=1&b=|>"),), DISCLAIMER)
    )
    assert linked.blocks[2]["text"]["text"].startswith(
        "*[1]* <https://ex.org/p?a=1&amp;b=%7C%3E|How It Works>\n>"
    )
    for url in (None, "javascript:alert(1)", "ftp://ex.org/x", "https://ex.org/" + "a" * 5000):
        plain = answer_reply(Answer("answered", "A [1]", (citation(url=url),), DISCLAIMER))
        assert plain.blocks[2]["text"]["text"].startswith("*[1]* How It Works\n>")


@pytest.mark.parametrize(
    ("text", "question"),
    [
        (f"<@{BOT_USER_ID}> How does it work?", "How does it work?"),
        (f"<@{BOT_USER_ID}|ragbot>   what &amp; why &lt;3", "what & why <3"),
        (
            f"hey <@{BOT_USER_ID}> see <https://ex.org|ex.org> in <#C123|general>",
            "hey see ex.org in #general",
        ),
        (f"<@{BOT_USER_ID}>", ""),
        ("  <!here>  ", ""),
    ],
)
def test_question_from_slack_drops_mentions_and_unescapes(text: str, question: str) -> None:
    assert question_from_slack(text) == question


# ---------------------------------------------------------------------------------------------
# Rating buttons (pure functions)


def rating_block(blocks: list[dict[str, Any]] | tuple[dict[str, Any], ...]) -> dict[str, Any]:
    [block] = [b for b in blocks if b.get("block_id") == RATING_BLOCK_ID]
    return block


def test_an_answered_reply_carries_helpful_and_not_helpful_buttons_valued_with_its_request_id() -> (
    None
):
    answer = Answer("answered", "Ketamine blocks NMDA receptors [1].", (citation(),), DISCLAIMER)
    reply = answer_reply(answer, "req-1")
    assert [b["type"] for b in reply.blocks] == [
        "section",
        "divider",
        "section",
        "actions",  # the buttons, just above the disclaimer
        "context",
    ]
    buttons = rating_block(reply.blocks)["elements"]
    assert [(b["action_id"], b["text"]["text"], b["value"]) for b in buttons] == [
        (RATE_UP_ACTION, "Helpful", "req-1"),
        (RATE_DOWN_ACTION, "Not helpful", "req-1"),
    ]
    assert not any("style" in b for b in buttons)  # nothing chosen yet
    assert ends_with_disclaimer(reply.blocks)


@pytest.mark.parametrize("status", ["no_answer", "refused", "crisis"])
def test_only_an_answer_can_be_rated_as_in_the_widget(status: Status) -> None:
    reply = answer_reply(Answer(status, "Not in the article.", (), DISCLAIMER), "req-1")
    assert all(b["type"] != "actions" for b in reply.blocks)


def test_a_rating_highlights_the_choice_and_a_second_one_replaces_it_with_one_thank_you_line() -> (
    None
):
    answer = Answer("answered", "Ketamine blocks NMDA receptors [1].", (citation(),), DISCLAIMER)
    blocks = list(answer_reply(answer, "req-1").blocks)
    down = rated_blocks(blocks, "req-1", "down")
    up = rated_blocks(down, "req-1", "up")
    for rated, chosen in ((down, RATE_DOWN_ACTION), (up, RATE_UP_ACTION)):
        styled = [b["action_id"] for b in rating_block(rated)["elements"] if "style" in b]
        assert styled == [chosen]
        thanks = [b for b in rated if b.get("block_id") == RATED_BLOCK_ID]
        assert len(thanks) == 1
        assert ends_with_disclaimer(rated)
    assert "*Not helpful*" in texts_of(down)[-2] and "*Helpful*" in texts_of(up)[-2]
    assert [b["type"] for b in up] == [
        "section",
        "divider",
        "section",
        "actions",
        "context",
        "context",
    ]


def test_a_rated_reply_with_the_most_citations_still_fits_slacks_block_limit() -> None:
    answer = Answer(
        "answered",
        "Ketamine [1].",
        tuple(citation(n) for n in range(1, 120)),
        DISCLAIMER,
        ("Another question?",),
        resources=CRISIS_MESSAGE,
    )
    reply = answer_reply(answer, "req-1")
    rated = rated_blocks(reply.blocks, "req-1", "up")
    assert len(reply.blocks) < len(rated) == MAX_BLOCKS
    assert_within_slack_limits(rated, reply.text)


# ---------------------------------------------------------------------------------------------
# The Bolt app on its own


def test_bolt_itself_rejects_a_bad_signature_before_any_web_api_call() -> None:
    with SlackStub() as stub:
        settings = Settings(
            slack_bot_token=TOKEN, slack_signing_secret=SECRET, slack_api_url=stub.api_url
        )
        bolt = build_bolt_app(settings, lambda: None, lambda: None)
        body = event_body(mention("C0BOLT", message_ts(), QUESTION)).decode()
        headers = {"content-type": "application/json", **sign("another-secret", body.encode())}
        assert bolt.dispatch(BoltRequest(body=body, headers=headers)).status == 401
        assert stub.calls == []


class FailingPipeline:
    """Stands in for a Pipeline whose ask() raises."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def ask(self, question: str, history: Any = ()) -> Answer:
        raise self.error

    def ask_traced(self, question: str, history: Any = ()) -> Any:
        raise self.error


@pytest.mark.parametrize(
    ("real_pipeline", "expected"),
    [
        (None, LOADING_MESSAGE),
        (FailingPipeline(RuntimeError("boom")), ERROR_MESSAGE),
        (
            FailingPipeline(InvalidQuestion("question is 2000 characters; the limit is 1000")),
            "I can't take that question: question is 2000 characters; the limit is 1000.",
        ),
    ],
    ids=["index-loading", "unexpected-error", "invalid-question"],
)
def test_a_mention_still_gets_a_reply_with_the_disclaimer_when_no_answer_can_be_made(
    real_pipeline: Any, expected: str, tmp_path: Path
) -> None:
    store = SqliteStore(tmp_path / "state.sqlite3")
    with SlackStub() as stub:
        settings = Settings(
            slack_bot_token=TOKEN, slack_signing_secret=SECRET, slack_api_url=stub.api_url
        )
        bolt = build_bolt_app(settings, lambda: real_pipeline, lambda: store)
        channel, ts = unique("C0FAIL"), message_ts()
        body = event_body(mention(channel, ts, QUESTION))
        headers = {"content-type": "application/json", **sign(SECRET, body)}
        assert bolt.dispatch(BoltRequest(body=body.decode(), headers=headers)).status == 200
        [reply] = replies(stub, channel)
        settle(stub, channel, ts)
    store.close()
    assert reply.payload["blocks"][0]["text"]["text"] == escape_mrkdwn(expected)
    assert ends_with_disclaimer(reply.payload["blocks"])


def test_the_manifest_declares_the_scopes_events_command_and_request_urls(repo_root: Path) -> None:
    manifest = yaml.safe_load((repo_root / "slack-app-manifest.yaml").read_text("utf-8"))
    assert set(manifest["oauth_config"]["scopes"]["bot"]) == {
        "app_mentions:read",
        "channels:history",
        "groups:history",
        "chat:write",
        "im:history",
        "im:read",
        "reactions:write",
        "commands",
    }
    events = manifest["settings"]["event_subscriptions"]
    assert set(events["bot_events"]) == {
        "app_mention",
        "message.channels",
        "message.groups",
        "message.im",
    }
    [command] = manifest["features"]["slash_commands"]
    assert command["command"] == Settings.model_fields["slack_command"].default
    interactivity = manifest["settings"]["interactivity"]  # the rating buttons
    assert interactivity["is_enabled"] is True
    for url in (events["request_url"], command["url"], interactivity["request_url"]):
        assert url.endswith("/slack/events")


# ---------------------------------------------------------------------------------------------
# The running service against the stub (real model)


@pytest.fixture(scope="module")
def stub() -> Iterator[SlackStub]:
    with SlackStub() as running:
        yield running


@pytest.fixture(scope="module")
def records_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The service's records store: a SQLite file of its own (the real index folder stays as is)."""
    return f"sqlite:///{tmp_path_factory.mktemp('slack-records') / 'records.sqlite3'}"


@pytest.fixture(scope="module")
def service(
    real_settings: Settings,
    real_pipeline: Pipeline,
    stub: SlackStub,
    records_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    state = tmp_path_factory.mktemp("slack-state") / "state.sqlite3"
    # Questions kept (redacted) on purpose, so that a crisis message not kept means something.
    settings = slack_settings(
        real_settings, stub, state_path=state, database_url=records_url, keep_questions=True
    )
    with serve(create_app(settings, real_pipeline)) as base:
        yield base


@pytest.fixture
def records(records_url: str, tmp_path: Path) -> Iterator[Records]:
    """The service's records store, opened as the clinic's team would read it."""
    store = Records.open(Settings(index_dir=tmp_path, database_url=records_url))
    yield store
    store.close()


@pytest.mark.model
def test_a_signed_mention_gets_exactly_one_threaded_reply_with_answer_quote_and_disclaimer(
    service: str, stub: SlackStub
) -> None:
    channel, ts = unique("C0MENTION"), message_ts()
    response = post_signed(service, event_body(mention(channel, ts, QUESTION)))
    assert response.status_code == 200

    [reply] = replies(stub, channel)
    settle(stub, channel, ts)
    assert reply.payload["thread_ts"] == ts
    blocks = reply.payload["blocks"]
    assert "[1]" in blocks[0]["text"]["text"]
    assert any(t.startswith("*[1]* ") and "\n>" in t for t in texts_of(blocks))
    assert ends_with_disclaimer(blocks)
    assert_within_slack_limits(blocks, reply.payload["text"])
    [reaction] = in_channel(stub.calls_to("reactions.add"), "reactions.add", channel)
    assert reaction.payload["name"] == WORKING_REACTION and reaction.payload["timestamp"] == ts
    assert len(replies(stub, channel)) == 1


@pytest.mark.model
def test_a_mention_inside_a_thread_is_answered_in_that_thread(
    service: str, stub: SlackStub
) -> None:
    channel, parent, ts = unique("C0THREAD"), message_ts(), message_ts()
    post_signed(service, event_body(mention(channel, ts, QUESTION, thread_ts=parent)))
    [reply] = replies(stub, channel)
    assert reply.payload["thread_ts"] == parent


@pytest.mark.model
def test_retried_or_duplicated_deliveries_never_get_a_second_reply(
    service: str, stub: SlackStub
) -> None:
    channel, ts, event_id = unique("C0RETRY"), message_ts(), unique("Ev")
    body = event_body(mention(channel, ts, QUESTION), event_id)
    assert post_signed(service, body).status_code == 200
    assert post_signed(service, body).status_code == 200  # a duplicate while the first is in flight
    replies(stub, channel)
    retry = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    assert post_signed(service, body, extra_headers=retry).status_code == 200
    # The same message delivered again under another event_id (e.g. mention and message.im).
    assert post_signed(service, event_body(mention(channel, ts, QUESTION))).status_code == 200

    # A later message in the same channel is answered; by then any duplicate would have shown.
    sentinel = message_ts()
    post_signed(service, event_body(mention(channel, sentinel, QUESTION)))
    replies(stub, channel, count=2)
    settle(stub, channel, sentinel)
    settle(stub, channel, ts)
    posts = in_channel(stub.calls, "chat.postMessage", channel)
    assert [p.payload["thread_ts"] for p in posts] == [ts, sentinel]
    reactions = in_channel(stub.calls, "reactions.add", channel)
    assert sorted(r.payload["timestamp"] for r in reactions) == sorted([ts, sentinel])


@pytest.mark.model
@pytest.mark.parametrize(
    "forgery", ["wrong_secret", "stale_timestamp", "body_altered", "no_signature"]
)
def test_forged_stale_or_altered_requests_get_401_and_reach_no_slack_api(
    service: str, stub: SlackStub, forgery: str
) -> None:
    channel, ts, event_id = unique("C0FORGED"), message_ts(), unique("Ev")
    body = event_body(mention(channel, ts, QUESTION), event_id)
    headers = {"Content-Type": "application/json", **sign(SECRET, body)}
    sent = body
    if forgery == "wrong_secret":
        headers.update(sign("not-the-secret", body))
    elif forgery == "stale_timestamp":
        headers.update(sign(SECRET, body, timestamp=int(time.time()) - 6 * 60))
    elif forgery == "body_altered":
        sent = body.replace(QUESTION.encode(), b"I want to end my life")
    else:
        headers = {"Content-Type": "application/json"}
    response = httpx.post(f"{service}/slack/events", content=sent, headers=headers, timeout=10)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_signature"
    # The genuine delivery of that same event_id is then answered: the forgery recorded nothing.
    sentinel_ts = message_ts()
    post_signed(service, event_body(mention(channel, sentinel_ts, QUESTION), event_id))
    replies(stub, channel)
    settle(stub, channel, sentinel_ts)
    touched = [c for c in stub.calls if c.payload.get("channel") == channel]
    assert {c.payload.get("thread_ts") or c.payload.get("timestamp") for c in touched} == {
        sentinel_ts
    }


@pytest.mark.model
def test_url_verification_challenge_is_answered(service: str) -> None:
    body = json.dumps(
        {
            "token": "legacy",
            "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
            "type": "url_verification",
        }
    ).encode()
    response = post_signed(service, body)
    assert response.status_code == 200
    assert response.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}


def command_body(stub: SlackStub, name: str, text: str, command: str = "/ketamine-faq") -> bytes:
    return urlencode(
        {
            "token": "legacy",
            "team_id": TEAM_ID,
            "team_domain": "test",
            "channel_id": "C0CMD",
            "channel_name": "general",
            "user_id": "U0HUMAN01",
            "user_name": "pat",
            "command": command,
            "text": text,
            "api_app_id": "A0TEST",
            "response_url": stub.response_url(name),
            "trigger_id": "1.2.3",
        }
    ).encode()


def responses(stub: SlackStub, name: str) -> list[Call]:
    calls = stub.wait_for(lambda calls: any(c.path.endswith(f"/{name}") for c in calls), WAIT)
    return [c for c in calls if c.path.endswith(f"/{name}")]


@pytest.mark.model
def test_slash_command_is_acknowledged_within_3_seconds_and_answered_via_response_url(
    service: str, stub: SlackStub
) -> None:
    name = unique("cmd")
    started = time.perf_counter()
    ack = post_form(service, command_body(stub, name, QUESTION))
    elapsed = time.perf_counter() - started

    assert ack.status_code == 200
    assert elapsed < ACK_BUDGET_SECONDS
    assert ack.json() == {"text": WORKING_TEXT, "response_type": "ephemeral"}
    [reply] = responses(stub, name)
    assert reply.payload["response_type"] == "ephemeral"
    assert reply.payload["replace_original"] is False
    assert "[1]" in reply.payload["blocks"][0]["text"]["text"]
    assert ends_with_disclaimer(reply.payload["blocks"])


@pytest.mark.model
def test_an_empty_slash_command_gets_the_usage_with_the_disclaimer_at_once(
    service: str, stub: SlackStub
) -> None:
    ack = post_form(service, command_body(stub, unique("cmd"), "   "))
    assert ack.status_code == 200
    assert "/ketamine-faq" in ack.json()["text"]
    assert ends_with_disclaimer(ack.json()["blocks"])


@pytest.mark.model
def test_a_public_slash_command_answers_in_channel(
    real_settings: Settings, real_pipeline: Pipeline, stub: SlackStub, tmp_path: Path
) -> None:
    settings = slack_settings(
        real_settings,
        stub,
        slack_command="/ask-article",
        slack_command_public=True,
        state_path=tmp_path / "state.sqlite3",  # the real index folder stays untouched
    )
    with serve(create_app(settings, real_pipeline)) as base:
        name = unique("pub")
        ack = post_form(base, command_body(stub, name, QUESTION, command="/ask-article"))
        assert ack.json()["response_type"] == "in_channel"
        [reply] = responses(stub, name)
    assert reply.payload["response_type"] == "in_channel"
    assert ends_with_disclaimer(reply.payload["blocks"])


def request_id_of(blocks: list[dict[str, Any]]) -> str:
    """The request id the rating buttons carry (the same in both)."""
    values = {b["value"] for b in rating_block(blocks)["elements"]}
    [request_id] = values
    return str(request_id)


def click_body(
    stub: SlackStub,
    name: str,
    action_id: str,
    request_id: str,
    message: dict[str, Any] | None,
    channel: str = "C0RATE",
    trigger_id: str = "1.2.3",
) -> bytes:
    """A block_actions payload as Slack sends it when a button is clicked (a form with `payload`).

    `message` is None for an ephemeral message: Slack then sends only its container."""
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": "U0HUMAN01", "username": "pat", "team_id": TEAM_ID},
        "api_app_id": "A0TEST",
        "token": "legacy-token",
        "container": {
            "type": "message",
            "message_ts": message["ts"] if message else message_ts(),
            "channel_id": channel,
            "is_ephemeral": message is None,
        },
        "trigger_id": trigger_id,
        "team": {"id": TEAM_ID, "domain": "test"},
        "channel": {"id": channel, "name": "general"},
        "response_url": stub.response_url(name),
        "actions": [
            {
                "action_id": action_id,
                "block_id": RATING_BLOCK_ID,
                "text": {"type": "plain_text", "text": "Helpful"},
                "value": request_id,
                "type": "button",
                "action_ts": str(time.time()),
            }
        ],
    }
    if message is not None:
        payload["message"] = message
    return urlencode({"payload": json.dumps(payload)}).encode()


def post_form(base: str, body: bytes, secret: str = SECRET) -> httpx.Response:
    """A signed form post, as Slack sends slash commands, button clicks and modal submissions."""
    return post_signed(base, body, content_type="application/x-www-form-urlencoded", secret=secret)


def assert_refused_unless_signed(service: str, body: bytes) -> None:
    """The body signed with the wrong secret, with an empty one, or not at all: 401 each time."""
    for secret in ("another-secret", ""):
        forged = post_form(service, body, secret=secret)
        assert forged.status_code == 401
        assert forged.json()["error"]["code"] == "invalid_signature"
    unsigned = httpx.post(
        f"{service}/slack/events",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    assert unsigned.status_code == 401


def answered_mention(service: str, stub: SlackStub, channel: str) -> Call:
    """Mention the bot with QUESTION in `channel`; its reply once the work on it is over."""
    ts = message_ts()
    assert post_signed(service, event_body(mention(channel, ts, QUESTION))).status_code == 200
    [reply] = replies(stub, channel)
    settle(stub, channel, ts)  # the record is written before the reaction is removed
    return reply


@pytest.mark.model
def test_an_answered_mention_has_rating_buttons_and_a_record_with_channel_slack(
    service: str, stub: SlackStub, records: Records, real_pipeline: Pipeline
) -> None:
    reply = answered_mention(service, stub, unique("C0RECORD"))
    blocks = reply.payload["blocks"]
    assert [b["action_id"] for b in rating_block(blocks)["elements"]] == [
        RATE_UP_ACTION,
        RATE_DOWN_ACTION,
    ]
    assert ends_with_disclaimer(blocks)
    kept = records.reply(request_id_of(blocks))
    assert kept is not None
    assert (kept.channel, kept.status, kept.turn) == ("slack", "answered", "new")
    assert kept.build_id == real_pipeline.index.manifest.build_id
    assert kept.sections and kept.latency_ms > 0
    assert kept.question == QUESTION  # kept because this service opted in


@pytest.mark.model
def test_a_signed_click_stores_the_rating_and_redraws_the_message_and_a_second_click_changes_it(
    service: str, stub: SlackStub, records: Records
) -> None:
    reply = answered_mention(service, stub, unique("C0RATE"))
    request_id = request_id_of(reply.payload["blocks"])
    message = {
        "type": "message",
        "ts": "1700000000.000001",
        "bot_id": BOT_ID,
        "text": reply.payload["text"],
        "blocks": reply.payload["blocks"],
    }
    down = unique("rate")
    ack = post_form(service, click_body(stub, down, RATE_DOWN_ACTION, request_id, message))
    assert ack.status_code == 200
    [redraw] = responses(stub, down)
    rating = records.feedback(request_id)
    assert rating is not None and rating.rating == "down"
    assert redraw.payload["replace_original"] is True
    redrawn = redraw.payload["blocks"]
    assert [b["action_id"] for b in rating_block(redrawn)["elements"] if "style" in b] == [
        RATE_DOWN_ACTION
    ]
    assert any("Thanks for your feedback" in t for t in texts_of(redrawn))
    assert ends_with_disclaimer(redrawn)

    up = unique("rate")
    message["blocks"] = redrawn  # Slack sends the message as it now stands
    assert (
        post_form(service, click_body(stub, up, RATE_UP_ACTION, request_id, message)).status_code
        == 200
    )
    [again] = responses(stub, up)
    rating = records.feedback(request_id)
    assert rating is not None and rating.rating == "up"  # one rating per reply: the last
    thanks = [b for b in again.payload["blocks"] if b.get("block_id") == RATED_BLOCK_ID]
    assert len(thanks) == 1 and "*Helpful*" in texts_of(thanks)[0]


@pytest.mark.model
def test_a_forged_click_is_rejected_and_stores_nothing(
    service: str, stub: SlackStub, records: Records
) -> None:
    reply = answered_mention(service, stub, unique("C0FORGE"))
    request_id = request_id_of(reply.payload["blocks"])
    name = unique("forged")
    body = click_body(stub, name, RATE_DOWN_ACTION, request_id, None)
    assert_refused_unless_signed(service, body)
    assert records.feedback(request_id) is None
    assert [c for c in stub.calls if c.path.endswith(f"/{name}")] == []


@pytest.mark.model
def test_a_click_on_a_reply_with_no_record_stores_nothing_and_says_so_privately(
    service: str, stub: SlackStub, records: Records
) -> None:
    name = unique("nobody")
    assert (
        post_form(
            service, click_body(stub, name, RATE_UP_ACTION, "no-such-reply", None)
        ).status_code
        == 200
    )
    [told] = responses(stub, name)
    assert (told.payload["text"], told.payload["response_type"]) == (UNKNOWN_REPLY, "ephemeral")
    assert records.feedback("no-such-reply") is None


@pytest.mark.model
def test_a_private_slash_command_answer_is_recorded_and_a_click_on_it_thanks_privately(
    service: str, stub: SlackStub, records: Records
) -> None:
    name = unique("cmd")
    body = command_body(stub, name, QUESTION)
    assert post_form(service, body).status_code == 200
    [reply] = responses(stub, name)
    request_id = request_id_of(reply.payload["blocks"])
    # The record is written just after the reply is sent.
    deadline = time.monotonic() + WAIT
    while (kept := records.reply(request_id)) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert kept is not None and kept.channel == "slack"

    rate = unique("rate")
    # An ephemeral message: Slack's payload carries its container, not its blocks.
    assert (
        post_form(service, click_body(stub, rate, RATE_UP_ACTION, request_id, None)).status_code
        == 200
    )
    [thanks] = responses(stub, rate)
    assert (thanks.payload["text"], thanks.payload["response_type"]) == (THANKS, "ephemeral")
    rating = records.feedback(request_id)
    assert rating is not None and rating.rating == "up"


# The optional comment after "Not helpful": a modal (views.open), then its view_submission.


def modals_opened(calls: list[Call], trigger_id: str) -> list[Call]:
    return [c for c in calls if c.method == "views.open" and c.payload["trigger_id"] == trigger_id]


def rated_down(service: str, stub: SlackStub) -> tuple[str, dict[str, Any]]:
    """Mention the bot, click "Not helpful" on its reply: the request id and the modal opened."""
    reply = answered_mention(service, stub, unique("C0MODAL"))
    request_id = request_id_of(reply.payload["blocks"])
    trigger = unique("trigger")
    body = click_body(stub, unique("rate"), RATE_DOWN_ACTION, request_id, None, trigger_id=trigger)
    assert post_form(service, body).status_code == 200
    calls = stub.wait_for(lambda calls: bool(modals_opened(calls, trigger)), WAIT)
    [opened] = modals_opened(calls, trigger)
    return request_id, opened.payload["view"]


def submission_body(view: dict[str, Any], comment: str | None) -> bytes:
    """A view_submission payload as Slack sends it when the modal `view` is submitted."""
    submitted = {
        **view,
        "id": "V0SUBMIT01",
        "team_id": TEAM_ID,
        "state": {
            "values": {
                COMMENT_BLOCK_ID: {
                    COMMENT_ACTION_ID: {"type": "plain_text_input", "value": comment}
                }
            }
        },
        "hash": "1700000000.abcdef",
    }
    payload = {
        "type": "view_submission",
        "team": {"id": TEAM_ID, "domain": "test"},
        "user": {"id": "U0HUMAN01", "username": "pat", "team_id": TEAM_ID},
        "api_app_id": "A0TEST",
        "token": "legacy-token",
        "trigger_id": "4.5.6",
        "view": submitted,
        "response_urls": [],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


@pytest.mark.model
def test_a_signed_not_helpful_click_opens_a_comment_modal_holding_the_request_id(
    service: str, stub: SlackStub, records: Records
) -> None:
    request_id, view = rated_down(service, stub)
    assert view["type"] == "modal" and view["callback_id"] == COMMENT_CALLBACK_ID
    assert json.loads(view["private_metadata"]) == {"request_id": request_id}
    assert len(view["title"]["text"]) <= 24  # Slack's limit for a modal title
    [field] = view["blocks"]
    assert field["block_id"] == COMMENT_BLOCK_ID and field["optional"] is True
    element = field["element"]
    assert (element["type"], element["multiline"], element["max_length"]) == (
        "plain_text_input",
        True,
        MAX_COMMENT_CHARS,
    )
    # Closing the modal sends Slack nothing to us: the rating already stored stays as it is.
    assert not view.get("notify_on_close")
    rating = records.feedback(request_id)
    assert rating is not None and (rating.rating, rating.comment) == ("down", None)


@pytest.mark.model
def test_helpful_opens_no_modal(service: str, stub: SlackStub, records: Records) -> None:
    reply = answered_mention(service, stub, unique("C0NOMODAL"))
    request_id = request_id_of(reply.payload["blocks"])
    name, trigger = unique("rate"), unique("trigger")
    body = click_body(stub, name, RATE_UP_ACTION, request_id, None, trigger_id=trigger)
    assert post_form(service, body).status_code == 200
    responses(stub, name)  # the thank-you comes after a modal would have been opened
    assert modals_opened(stub.calls_to("views.open"), trigger) == []
    rating = records.feedback(request_id)
    assert rating is not None and rating.rating == "up"


@pytest.mark.model
def test_a_signed_comment_is_stored_redacted_on_that_replys_not_helpful_rating(
    service: str, stub: SlackStub, records: Records
) -> None:
    request_id, view = rated_down(service, stub)
    comment = "Nothing on dosing for teenagers. Write to pat.doe@example.org"
    response = post_form(service, submission_body(view, comment))
    assert response.status_code == 200
    assert response.content == b""  # an empty acknowledgement closes the modal
    rating = records.feedback(request_id)
    assert rating is not None and rating.rating == "down"
    assert rating.comment == "Nothing on dosing for teenagers. Write to [email]"

    # Submitted empty, the modal changes nothing.
    empty = post_form(service, submission_body(view, None))
    assert empty.status_code == 200
    assert records.feedback(request_id) == rating


@pytest.mark.model
def test_an_over_long_comment_gets_a_field_error_and_stores_nothing_new(
    service: str, stub: SlackStub, records: Records
) -> None:
    request_id, view = rated_down(service, stub)
    before = records.feedback(request_id)
    response = post_form(service, submission_body(view, "x" * (MAX_COMMENT_CHARS + 1)))
    assert response.status_code == 200
    assert response.json() == {"response_action": "errors", "errors": {COMMENT_BLOCK_ID: TOO_LONG}}
    assert records.feedback(request_id) == before


@pytest.mark.model
def test_a_forged_comment_submission_is_rejected_and_stores_nothing(
    service: str, stub: SlackStub, records: Records
) -> None:
    request_id, view = rated_down(service, stub)
    before = records.feedback(request_id)
    body = submission_body(view, "Forged comment")
    assert_refused_unless_signed(service, body)
    assert records.feedback(request_id) == before


@pytest.mark.model
def test_a_crisis_message_gets_only_the_crisis_reply_and_the_disclaimer(
    service: str, stub: SlackStub, real_pipeline: Pipeline
) -> None:
    channel, ts = unique("C0CRISIS"), message_ts()
    post_signed(service, event_body(mention(channel, ts, "I want to end my life")))
    [reply] = replies(stub, channel)

    blocks = reply.payload["blocks"]
    assert [b["type"] for b in blocks] == ["section", "context"]
    assert blocks[0]["text"]["text"] == escape_mrkdwn(CRISIS_MESSAGE)
    assert ends_with_disclaimer(blocks)
    shown = "\n".join([*texts_of(blocks), reply.payload["text"]])
    article = [s.text for s in real_pipeline.index.sentences if len(s.text) > 25]
    assert article and not [s for s in article if escape_mrkdwn(s) in shown or s in shown]


@pytest.mark.model
def test_a_crisis_message_in_slack_is_recorded_without_its_text_even_with_questions_kept(
    service: str, stub: SlackStub, records: Records
) -> None:
    channel, ts = unique("C0CRISISREC"), message_ts()
    post_signed(service, event_body(mention(channel, ts, "I want to end my life")))
    replies(stub, channel)
    settle(stub, channel, ts)
    with records.engine.connect() as conn:
        rows = conn.execute(
            sa.select(reply_table).where(
                reply_table.c.channel == "slack", reply_table.c.status == "crisis"
            )
        ).all()
    assert rows and all(row.question is None for row in rows)


@pytest.mark.model
def test_an_empty_mention_gets_the_usage_reply_with_the_disclaimer(
    service: str, stub: SlackStub
) -> None:
    channel, ts = unique("C0EMPTY"), message_ts()
    post_signed(service, event_body(mention(channel, ts, "")))
    [reply] = replies(stub, channel)
    assert "Ask me a question" in reply.payload["blocks"][0]["text"]["text"]
    assert ends_with_disclaimer(reply.payload["blocks"])


@pytest.mark.model
def test_a_direct_message_is_answered_in_the_conversation(service: str, stub: SlackStub) -> None:
    channel, ts = unique("D0DM"), message_ts()
    post_signed(service, event_body(direct_message(channel, ts, QUESTION)))
    [reply] = replies(stub, channel)
    assert "thread_ts" not in reply.payload
    assert "[1]" in reply.payload["blocks"][0]["text"]["text"]
    assert ends_with_disclaimer(reply.payload["blocks"])


@pytest.mark.model
def test_bot_own_edited_and_channel_messages_are_ignored(service: str, stub: SlackStub) -> None:
    channel = unique("D0IGNORE")
    ignored = [
        direct_message(channel, message_ts(), QUESTION, bot_id="B0OTHERBOT", subtype="bot_message"),
        direct_message(channel, message_ts(), QUESTION, bot_id="B0OTHERBOT"),
        direct_message(channel, message_ts(), QUESTION, user=BOT_USER_ID, bot_id=BOT_ID),
        direct_message(channel, message_ts(), QUESTION, user=BOT_USER_ID),
        direct_message(channel, message_ts(), QUESTION, subtype="message_changed"),
        direct_message(channel, message_ts(), QUESTION, subtype="message_deleted"),
        direct_message(channel, message_ts(), QUESTION, channel_type="channel"),
        mention(channel, message_ts(), QUESTION, bot_id="B0OTHERBOT"),
    ]
    for event in ignored:
        assert post_signed(service, event_body(event)).status_code == 200

    sentinel = message_ts()
    post_signed(service, event_body(direct_message(channel, sentinel, QUESTION)))
    replies(stub, channel)
    settle(stub, channel, sentinel)
    reacted = [c.payload["timestamp"] for c in in_channel(stub.calls, "reactions.add", channel)]
    assert reacted == [sentinel]
    assert len(in_channel(stub.calls, "chat.postMessage", channel)) == 1


@pytest.mark.model
def test_slack_is_off_without_its_secrets_and_the_rest_still_serves(
    real_settings: Settings, real_pipeline: Pipeline
) -> None:
    settings = Settings(
        corpus_dir=real_settings.corpus_dir,
        index_dir=real_settings.index_dir,
        slack_bot_token=None,
        slack_signing_secret=SECRET,
    )
    with serve(create_app(settings, real_pipeline)) as base:
        body = json.dumps({"type": "url_verification", "challenge": "x"}).encode()
        response = httpx.post(
            f"{base}/slack/events", content=body, headers=sign(SECRET, body), timeout=10
        )
        ready = httpx.get(f"{base}/readyz", timeout=10)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert ready.status_code == 200 and ready.json()["slack"] is False


@pytest.mark.model
@pytest.mark.parametrize("event", [None, [], "text"])
def test_a_signed_callback_whose_event_is_not_an_event_gets_400_in_the_error_shape(
    service: str, stub: SlackStub, event: Any
) -> None:
    body = json.loads(event_body(mention(unique("C0NULL"), message_ts(), QUESTION)))
    body["event"] = event
    response = post_signed(service, json.dumps(body).encode())
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"


# ---------------------------------------------------------------------------------------------
# Shared state: replicas, restarts, and a store that is down (real SQLite, real redis-server)

RETRY_REASON = "http_timeout"


def retry_headers(n: int) -> dict[str, str]:
    return {"X-Slack-Retry-Num": str(n), "X-Slack-Retry-Reason": RETRY_REASON}


@pytest.fixture(params=["sqlite", "redis"])
def shared_state(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """Settings that point replicas at one store: a SQLite file, or a real, emptied Redis."""
    if request.param == "sqlite":
        return {"state_path": tmp_path / "state.sqlite3"}
    return {"redis_url": request.getfixturevalue("redis_url")}


def assert_answered_once_each(stub: SlackStub, channel: str, *timestamps: str) -> None:
    """Every message in `timestamps` got exactly one reply in `channel`, and nothing else did."""
    for ts in timestamps:
        settle(stub, channel, ts)
    posts = in_channel(stub.calls, "chat.postMessage", channel)
    assert sorted(p.payload["thread_ts"] for p in posts) == sorted(timestamps)


@pytest.mark.model
def test_two_replicas_sharing_a_store_post_one_reply_to_an_event_and_all_its_retries(
    real_settings: Settings, real_pipeline: Pipeline, stub: SlackStub, shared_state: dict[str, Any]
) -> None:
    settings = slack_settings(real_settings, stub, **shared_state)
    channel, ts, event_id = unique("C0REPLICA"), message_ts(), unique("Ev")
    body = event_body(mention(channel, ts, QUESTION), event_id)
    with (
        serve(create_app(settings, real_pipeline)) as one,
        serve(create_app(settings, real_pipeline)) as two,
    ):
        # The same delivery reaches both replicas at the same moment.
        statuses: list[int] = []
        start = threading.Barrier(2)

        def deliver(base: str) -> None:
            start.wait()
            statuses.append(post_signed(base, body).status_code)

        racers = [threading.Thread(target=deliver, args=(base,)) for base in (one, two)]
        for t in racers:
            t.start()
        for t in racers:
            t.join()
        replies(stub, channel)
        # Slack's retries, spread over the replicas as a load balancer would.
        for n, base in enumerate([one, two, one], start=1):
            statuses.append(post_signed(base, body, extra_headers=retry_headers(n)).status_code)
        # The same message under another event_id, on the other replica.
        statuses.append(post_signed(two, event_body(mention(channel, ts, QUESTION))).status_code)
        # A later message is answered; by the time it is, a duplicate would have shown.
        sentinel = message_ts()
        statuses.append(
            post_signed(one, event_body(mention(channel, sentinel, QUESTION))).status_code
        )
        replies(stub, channel, count=2)
        assert_answered_once_each(stub, channel, ts, sentinel)
    assert statuses == [200] * 7


@pytest.mark.model
def test_a_restart_followed_by_a_retry_posts_nothing_new(
    real_settings: Settings, real_pipeline: Pipeline, stub: SlackStub, shared_state: dict[str, Any]
) -> None:
    settings = slack_settings(real_settings, stub, **shared_state)
    channel, ts, event_id = unique("C0RESTART"), message_ts(), unique("Ev")
    body = event_body(mention(channel, ts, QUESTION), event_id)
    with serve(create_app(settings, real_pipeline)) as before:
        assert post_signed(before, body).status_code == 200
        replies(stub, channel)
        settle(stub, channel, ts)
    # The process is gone (its store closed); a new one opens the same file or Redis.
    with serve(create_app(settings, real_pipeline)) as after:
        assert post_signed(after, body, extra_headers=retry_headers(1)).status_code == 200
        assert post_signed(after, body, extra_headers=retry_headers(2)).status_code == 200
        sentinel = message_ts()
        post_signed(after, event_body(mention(channel, sentinel, QUESTION)))
        replies(stub, channel, count=2)
        assert_answered_once_each(stub, channel, ts, sentinel)


def assert_store_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "store_unavailable" and error["status"] == 503
    assert error["request_id"] == response.headers["x-request-id"]
    assert "/" not in error["message"]  # no server path, no URL


@pytest.mark.model
def test_while_redis_is_down_events_get_503_and_slacks_retry_is_answered_once_it_is_back(
    real_settings: Settings, real_pipeline: Pipeline, stub: SlackStub, tmp_path: Path
) -> None:
    if RedisServer.binary() is None:
        pytest.skip("redis-server is not installed: `make servers` installs Debian's package")
    server = RedisServer(tmp_path / "redis").start()
    try:
        settings = slack_settings(real_settings, stub, redis_url=server.url)
        channel, ts = unique("C0DOWN"), message_ts()
        body = event_body(mention(channel, ts, QUESTION))
        with serve(create_app(settings, real_pipeline)) as base:
            server.stop()
            down = post_signed(base, body)
            health = httpx.get(f"{base}/healthz", timeout=10)
            server.start()  # the same port: the replica's client reconnects
            back = post_signed(base, body, extra_headers=retry_headers(1))
            [reply] = replies(stub, channel)
            settle(stub, channel, ts)
    finally:
        server.stop()
    assert_store_unavailable(down)
    assert health.status_code == 200
    assert back.status_code == 200 and reply.payload["thread_ts"] == ts


@pytest.mark.model
@pytest.mark.parametrize("store", ["redis-never-up", "sqlite-unwritable"])
def test_a_store_that_cannot_be_opened_does_not_stop_the_service_and_events_get_503(
    real_settings: Settings, real_pipeline: Pipeline, stub: SlackStub, tmp_path: Path, store: str
) -> None:
    if store == "redis-never-up":
        where: dict[str, Any] = {"redis_url": f"redis://127.0.0.1:{free_port()}/0"}
    else:
        (tmp_path / "a-file").write_text("not a folder")
        where = {"state_path": tmp_path / "a-file" / "state.sqlite3"}
    settings = slack_settings(real_settings, stub, **where)
    channel = unique("C0NOSTORE")
    with serve(create_app(settings, real_pipeline)) as base:
        event = post_signed(base, event_body(mention(channel, message_ts(), QUESTION)))
        ask = httpx.post(f"{base}/v1/ask", json={"question": QUESTION}, timeout=30)
        challenge = json.dumps({"type": "url_verification", "challenge": "c"}).encode()
        verification = post_signed(base, challenge)
    assert_store_unavailable(event)
    assert ask.status_code == 200  # the API does not need the store
    assert verification.status_code == 200
    assert in_channel(stub.calls, "chat.postMessage", channel) == []


def thread_reply(channel: str, ts: str, thread: str, text: str) -> dict[str, Any]:
    """A plain message in a channel thread (message.channels), without a mention."""
    return {
        "type": "message",
        "channel_type": "channel",
        "user": "U0HUMAN01",
        "text": text,
        "ts": ts,
        "thread_ts": thread,
        "channel": channel,
        "event_ts": ts,
    }


@pytest.mark.model
def test_a_reply_in_a_thread_the_bot_answered_is_a_follow_up_and_other_threads_are_left_alone(
    service: str, stub: SlackStub, real_pipeline: Pipeline
) -> None:
    from ragbot.conversation import Turn

    question = "How long do the effects of ketamine last?"
    first = real_pipeline.ask(question)
    more = real_pipeline.ask(
        "tell me more", [Turn(question, tuple(c.ref for c in first.citations))]
    )
    assert more.status == "answered"

    channel, root = unique("C0THREAD"), message_ts()
    assert post_signed(service, event_body(mention(channel, root, question))).status_code == 200
    replies(stub, channel)
    settle(stub, channel, root)
    follow_ts = message_ts()
    body = event_body(thread_reply(channel, follow_ts, root, "tell me more"))
    assert post_signed(service, body).status_code == 200
    _, second = replies(stub, channel, count=2)
    settle(stub, channel, follow_ts)
    assert second.payload["thread_ts"] == root
    shown = " ".join(texts_of(second.payload["blocks"]))
    assert escape_mrkdwn(more.citations[0].quote) in shown
    assert all(escape_mrkdwn(c.quote) not in shown for c in first.citations)

    # A thread the bot never answered in: plain replies there are people talking to each other.
    other = unique("C0NOBOT")
    body = event_body(thread_reply(other, message_ts(), message_ts(), "tell me more"))
    assert post_signed(service, body).status_code == 200
    time.sleep(1.0)
    assert in_channel(stub.calls, "chat.postMessage", other) == []
