"""The Bolt app: listeners for mentions, direct messages and the slash command, and event dedupe.

Every reply the pipeline makes gets a request id and a record (channel "slack", written after the
reply is posted, never delaying or breaking it); an answered one carries the rating buttons, whose
clicks ratings.py handles, and comments.py the comment modal a "Not helpful" click opens.

Bolt runs with process_before_response=False: an event is acknowledged before its listener runs,
and every listener runs on Bolt's own thread pool, so the CPU-bound Pipeline.ask never runs on the
event loop. The slash command listener acknowledges first thing ("Looking that up…") and answers
through response_url once the pipeline has replied.

Dedupe lives in the shared store (ragbot.store), so a retry after a restart, or the same event
delivered to another replica, is not answered twice: an event is claimed by its event_id before it
is acknowledged, and a message by its channel and ts before it is answered (a direct message that
mentions the bot arrives as two events).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

from slack_bolt import App, BoltRequest, BoltResponse
from slack_bolt.middleware import Middleware
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from ragbot.config import Settings
from ragbot.conversation import Turn
from ragbot.errors import InvalidQuestion, StoreUnavailable
from ragbot.models import Answer
from ragbot.pipeline import Pipeline
from ragbot.records import Records
from ragbot.records.keep import keep_reply, record_of
from ragbot.slack.blocks import Reply, answer_reply, notice_reply, question_from_slack, usage_reply
from ragbot.slack.comments import listen_for_comments
from ragbot.slack.ratings import RecordsGetter, listen_for_ratings
from ragbot.store import Store

log = logging.getLogger("ragbot.slack")

WORKING_REACTION = "hourglass_flowing_sand"
WORKING_TEXT = "Looking that up…"
LOADING_MESSAGE = "I'm still loading the article index; please ask again in a minute."
ERROR_MESSAGE = "Sorry, something went wrong on our side and I couldn't answer. Please try again."
# Listener threads: the model serialises its calls, so more threads only queue; a few let replies
# to Slack overlap with the next model call.
SLACK_THREADS = 4
# Slack retries a delivery three times: at once, after 1 minute and after 5 minutes
# (docs.slack.dev/apis/events-api: "Retries"). Ten minutes covers them all.
DEDUPE_TTL_SECONDS = 600.0
# A thread's turns, so that a reply in it is read as a follow-up: the last few, for a week.
THREAD_TURNS = 10
THREAD_TTL_SECONDS = 7 * 24 * 3600.0

PipelineGetter = Callable[[], Pipeline | None]
StoreGetter = Callable[[], Store | None]


DUPLICATE = "ragbot_duplicate"  # the request context key DedupeEvents sets on a redelivery


class DedupeEvents(Middleware):
    """Acknowledges, without processing, an Events API delivery whose event_id was already claimed.

    Runs after Bolt's signature check, so a forged request can never claim an event_id. When the
    store is down the delivery is refused with 503, so Slack retries it later.
    """

    def __init__(self, get_store: StoreGetter) -> None:
        self.get_store = get_store

    # `next` shadows the builtin because Bolt passes it by that name.
    def process(
        self, *, req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]
    ) -> BoltResponse:
        event_id = req.body.get("event_id") if req.body.get("type") == "event_callback" else None
        if not isinstance(event_id, str):
            return next()
        try:
            first = claim(self.get_store, f"slack:event:{event_id}")
        except StoreUnavailable as exc:
            log.error(
                "slack event refused: state store unavailable",
                extra={"event_id": event_id, "error": exc.message},
            )
            return BoltResponse(status=503, body="")
        if not first:
            retry = req.headers.get("x-slack-retry-num", ["0"])[0]
            log.info("slack duplicate", extra={"event_id": event_id, "retry": retry})
            req.context[DUPLICATE] = True  # read by the route, which counts the outcome
            return BoltResponse(status=200, body="")
        return next()


def claim(get_store: StoreGetter, key: str) -> bool:
    """Claim a dedupe key in the store; StoreUnavailable when there is no store or it is down."""
    store = get_store()
    if store is None:
        raise StoreUnavailable("the state store is not open (see the start-up log)")
    return store.claim(key, DEDUPE_TTL_SECONDS)


def _no_records() -> Records | None:
    return None


def build_bolt_app(
    settings: Settings,
    get_pipeline: PipelineGetter,
    get_store: StoreGetter,
    get_records: RecordsGetter = _no_records,
) -> App:
    """A Bolt app answering with the pipeline, deduping with the store and keeping records and
    ratings in the records store, all three read per request."""
    if not (settings.slack_bot_token and settings.slack_signing_secret):
        raise ValueError(
            "Slack is not configured: set RAGBOT_SLACK_BOT_TOKEN and RAGBOT_SLACK_SIGNING_SECRET"
        )
    base_url = (
        settings.slack_api_url
        if settings.slack_api_url.endswith("/")
        else settings.slack_api_url + "/"
    )
    app = App(
        name="ragbot",
        signing_secret=settings.slack_signing_secret,
        client=WebClient(token=settings.slack_bot_token, base_url=base_url),
        # No auth.test at start-up: the bot's own ids come from a lazy auth.test against
        # slack_api_url on the first event, which Bolt caches.
        token_verification_enabled=False,
        process_before_response=False,
        listener_executor=ThreadPoolExecutor(SLACK_THREADS, thread_name_prefix="ragbot-slack"),
    )
    app.use(DedupeEvents(get_store))
    answers = _Answers(settings, get_pipeline, get_store, get_records)
    listen_for_ratings(app, get_records)
    listen_for_comments(app, get_records)

    def first_time(channel: str, ts: str) -> bool:
        try:
            return claim(get_store, f"slack:message:{channel}:{ts}")
        except StoreUnavailable as exc:
            # The event was claimed a moment ago and already acknowledged, so Slack will not
            # retry it: answering risks a rare duplicate, not answering loses the question.
            log.warning("slack message not deduped", extra={"error": exc.message})
            return True

    @app.event("app_mention")
    def on_mention(event: dict[str, Any], client: WebClient) -> None:
        if event.get("bot_id") or event.get("subtype"):
            return  # another bot mentioning us: never start a conversation between bots
        channel, ts = event.get("channel"), event.get("ts")
        if not (isinstance(channel, str) and isinstance(ts, str)):
            return
        if first_time(channel, ts):
            answers.reply_in_channel(client, event, thread_ts=event.get("thread_ts") or ts)

    @app.event("message")
    def on_message(event: dict[str, Any], client: WebClient, context: dict[str, Any]) -> None:
        # Edits, deletions, joins, files, bot posts (ours included): not a question to answer.
        if event.get("subtype") or event.get("bot_id") or event.get("hidden"):
            return
        bot = context.get("bot_user_id")
        if not event.get("user") or event.get("user") == bot:
            return
        channel, ts = event.get("channel"), event.get("ts")
        if not (isinstance(channel, str) and isinstance(ts, str)):
            return
        if event.get("channel_type") == "im":
            if first_time(channel, ts):
                answers.reply_in_channel(client, event, thread_ts=event.get("thread_ts"))
            return
        # In a channel, a plain reply in a thread the bot answered is a follow-up; a message
        # that mentions the bot arrives as app_mention as well and is answered there.
        thread = event.get("thread_ts")
        if not isinstance(thread, str) or (bot and f"<@{bot}>" in str(event.get("text") or "")):
            return
        if answers.in_conversation(channel, thread) and first_time(channel, ts):
            answers.reply_in_channel(client, event, thread_ts=thread)

    @app.event(re.compile(".*"))
    def on_other_event() -> None:
        """Acknowledge any other subscribed event, so Slack does not retry it."""

    @app.command(settings.slack_command)
    def on_command(
        ack: Callable[..., None], command: dict[str, Any], respond: Callable[..., Any]
    ) -> None:
        response_type = "in_channel" if settings.slack_command_public else "ephemeral"
        question = question_from_slack(str(command.get("text") or ""))
        if not question:
            ack(response_type="ephemeral", **usage_reply(settings.slack_command).as_kwargs())
            return
        ack(text=WORKING_TEXT, response_type=response_type)
        made = answers.answer(question)
        try:
            respond(response_type=response_type, replace_original=False, **made.reply.as_kwargs())
        except Exception:
            log.exception("slack response_url post failed")
        made.keep()

    return app


def _nothing_to_keep() -> None:
    """A reply the pipeline did not make (usage, loading, an error) has no record."""


@dataclass(frozen=True)
class Made:
    """A reply, the Answer behind it if any, and `keep`, which writes its record once it is sent."""

    reply: Reply
    answer: Answer | None = None
    keep: Callable[[], None] = _nothing_to_keep


class _Answers:
    """Turns a question into a Reply and posts it; every failure still ends in a reply."""

    def __init__(
        self,
        settings: Settings,
        get_pipeline: PipelineGetter,
        get_store: StoreGetter,
        get_records: RecordsGetter,
    ) -> None:
        self.settings = settings
        self.get_pipeline = get_pipeline
        self.get_store = get_store
        self.get_records = get_records

    def in_conversation(self, channel: str, thread: str) -> bool:
        """Whether the bot has answered in this thread (its turns are in the store)."""
        return bool(self._turns(channel, thread))

    def _turns(self, channel: str, thread: str | None) -> list[Turn]:
        store = self.get_store()
        if store is None or thread is None:
            return []
        try:
            saved = store.get(_thread_key(channel, thread))
        except StoreUnavailable:
            return []  # answered as a new question: better than no answer
        rows = saved.get("turns", []) if saved else []
        return [Turn(str(r["question"]), tuple(r["shown"])) for r in rows]

    def _remember(self, channel: str, thread: str, turns: list[Turn]) -> None:
        store = self.get_store()
        if store is None:
            return
        rows = [{"question": t.question, "shown": list(t.shown)} for t in turns[-THREAD_TURNS:]]
        try:
            store.put(_thread_key(channel, thread), {"turns": rows}, THREAD_TTL_SECONDS)
        except StoreUnavailable as exc:
            log.warning("slack thread not remembered", extra={"error": exc.message})

    def answer(self, question: str, history: Sequence[Turn] = ()) -> Made:
        """The reply to a question (runs on a listener thread: the model call blocks)."""
        if not question:
            return Made(usage_reply(self.settings.slack_command))
        pipeline = self.get_pipeline()
        if pipeline is None:
            return Made(notice_reply(LOADING_MESSAGE))
        started = time.perf_counter()
        try:
            trace = pipeline.ask_traced(question, history)
        except InvalidQuestion as exc:
            return Made(notice_reply(f"I can't take that question: {exc.message}."))
        except Exception:
            log.exception("slack answer failed")
            return Made(notice_reply(ERROR_MESSAGE))
        latency_ms = (time.perf_counter() - started) * 1000
        answer = trace.answer
        request_id = uuid.uuid4().hex  # the rating buttons carry it back
        if self.settings.log_questions:
            log.info(
                "slack ask",
                extra={"question": question, "status": answer.status, "request_id": request_id},
            )

        def keep() -> None:
            records = self.get_records()
            if records is not None:
                make = partial(
                    record_of,
                    pipeline,
                    trace,
                    request_id,
                    "slack",
                    question,
                    latency_ms,
                    keep_questions=self.settings.keep_questions,
                )
                keep_reply(records, make, request_id)

        return Made(answer_reply(answer, request_id), answer, keep)

    def reply_in_channel(
        self, client: WebClient, event: dict[str, Any], *, thread_ts: str | None
    ) -> None:
        """Mark the message as being worked on, answer it, post the reply, clear the mark."""
        channel, ts = event["channel"], event["ts"]
        reacted = _call(client.reactions_add, channel=channel, timestamp=ts, name=WORKING_REACTION)
        question = question_from_slack(str(event.get("text") or ""))
        # A thread is one conversation (a DM without threads: the DM itself), kept in the store.
        conversation = thread_ts or (channel if event.get("channel_type") == "im" else None)
        history = self._turns(channel, conversation)
        made = self.answer(question, history)
        if conversation is not None and made.answer is not None:
            shown = tuple(c.ref for c in made.answer.citations)
            self._remember(channel, conversation, [*history, Turn(question, shown)])
        extra = {"thread_ts": thread_ts} if thread_ts else {}
        _call(
            client.chat_postMessage,
            channel=channel,
            unfurl_links=False,
            unfurl_media=False,
            **extra,
            **made.reply.as_kwargs(),
        )
        made.keep()
        if reacted:
            _call(client.reactions_remove, channel=channel, timestamp=ts, name=WORKING_REACTION)


def _thread_key(channel: str, thread: str) -> str:
    return f"slack:thread:{channel}:{thread}"


def _call(method: Callable[..., Any], **kwargs: Any) -> bool:
    """One Web API call; a failure is logged, never raised (the user should still get a reply)."""
    try:
        method(**kwargs)
        return True
    except SlackApiError as exc:
        log.warning("slack api error", extra={"error": exc.response.get("error")})
    except Exception:
        log.exception("slack api call failed")
    return False
