"""Reply records and ratings: redaction, what is kept, retention, and POST /v1/feedback.

Every store test runs twice: on the default SQLite file and on a real PostgreSQL cluster that
tests/postgres_server.py starts on loopback (Debian's postgresql, `make servers`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from ragbot.api.app import create_app
from ragbot.api.records import RecordsSlot
from ragbot.config import Settings
from ragbot.embeddings import HashingEmbedder
from ragbot.index import build_index
from ragbot.pipeline import Pipeline
from ragbot.records import Records, ReplyRecord, metadata, now_utc, redact, reply_record

QUESTION = "How long does ketamine stay in the body?"
CRISIS = "I want to kill myself tonight"


# ---------------------------------------------------------------------------------------------
# Redaction


@pytest.mark.parametrize(
    "text",
    [
        "write to jo.doe+clinic@mail.example.co.uk please",
        "my number is (555) 123-4567",
        "call +44 20 7946 0958 after six",
        "555.123.4567 is my cell",
        "text 5551234567",
        "reach me on +1-555-123-4567",
        "ring 07700 900123",
    ],
)
def test_emails_and_phone_numbers_are_redacted(text: str) -> None:
    redacted = redact(text)
    assert "[email]" in redacted or "[phone]" in redacted
    assert not any(ch.isdigit() for ch in redacted.replace("[phone]", ""))
    assert "@" not in redacted


def test_doses_durations_and_years_are_not_taken_for_phone_numbers() -> None:
    text = "I took 50 mg in 2024; does it last 24 hours or 3 days?"
    assert redact(text) == text


# ---------------------------------------------------------------------------------------------
# What a record keeps


def record(question: str = QUESTION, **overrides: Any) -> ReplyRecord:
    values: dict[str, Any] = {
        "request_id": "r1",
        "channel": "api",
        "status": "answered",
        "intent": "article",
        "turn": "new",
        "sections": ["How long it lasts", "How long it lasts", "Effects"],
        "build_id": "b1",
        "latency_ms": 12.34,
        "question": question,
        "crisis": False,
        "keep_questions": False,
    }
    values.update(overrides)
    return reply_record(**values)


def test_the_question_text_is_absent_unless_opted_in() -> None:
    assert record().question is None
    assert record(keep_questions=True).question == QUESTION


def test_a_kept_question_is_redacted() -> None:
    kept = record("mail me at a@b.org or 555-123-4567", keep_questions=True).question
    assert kept == "mail me at [email] or [phone]"


def test_a_crisis_message_is_never_kept_as_text_even_when_opted_in() -> None:
    assert record(CRISIS, keep_questions=True, status="crisis").question is None
    # A distressing clause under another status is screened by the router's crisis flag too.
    assert record(CRISIS, keep_questions=True, status="refused", crisis=True).question is None


def test_cited_sections_are_kept_once_each_in_citation_order() -> None:
    assert record().sections == ("How long it lasts", "Effects")


# ---------------------------------------------------------------------------------------------
# Both stores


@pytest.fixture(params=["sqlite", "postgresql"])
def store_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings whose records store is a fresh SQLite file, or an emptied PostgreSQL database."""
    if request.param == "sqlite":
        return Settings(index_dir=tmp_path / "index")
    url: str = request.getfixturevalue("postgres_server").url
    engine = sa.create_engine(url)
    metadata.drop_all(engine)
    engine.dispose()
    return Settings(index_dir=tmp_path / "index", database_url=url)


@pytest.fixture
def records(store_settings: Settings) -> Iterator[Records]:
    store = Records.open(store_settings)
    yield store
    store.close()


def test_the_default_store_is_a_sqlite_file_in_the_index_folder(tmp_path: Path) -> None:
    store = Records.open(Settings(index_dir=tmp_path / "index"))
    store.close()
    assert (tmp_path / "index" / "records.sqlite3").is_file()


def test_workers_opening_the_store_together_all_get_it(store_settings: Settings) -> None:
    with ThreadPoolExecutor(4) as pool:
        stores = list(pool.map(lambda _: Records.open(store_settings), range(4)))
    stores[0].add_reply(record(request_id="shared"))
    try:
        assert all(s.reply("shared") is not None for s in stores)
    finally:
        for store in stores:
            store.close()


def test_a_reply_rated_down_is_found_by_its_request_id(records: Records) -> None:
    records.add_reply(record(request_id="abc"))
    assert records.add_feedback("abc", "down", "Too vague, call me 555 123 4567") is not None
    reply, rating = records.reply("abc"), records.feedback("abc")
    assert reply is not None and rating is not None
    assert (reply.status, reply.intent, reply.sections) == (
        "answered",
        "article",
        ("How long it lasts", "Effects"),
    )
    assert (reply.build_id, reply.latency_ms, reply.channel) == ("b1", 12.3, "api")
    assert reply.time.tzinfo is not None
    assert (rating.rating, rating.comment) == ("down", "Too vague, call me [phone]")


def test_a_second_rating_replaces_the_first(records: Records) -> None:
    records.add_reply(record(request_id="abc"))
    records.add_feedback("abc", "down")
    records.add_feedback("abc", "up")
    rating = records.feedback("abc")
    assert rating is not None and (rating.rating, rating.comment) == ("up", None)


def test_feedback_for_a_request_with_no_reply_is_refused(records: Records) -> None:
    assert records.add_feedback("nobody", "up") is None
    assert records.feedback("nobody") is None


def test_question_text_past_retention_is_deleted_and_the_record_stays(records: Records) -> None:
    old = now_utc() - timedelta(days=31)
    records.add_reply(record(request_id="old", keep_questions=True, at=old))
    records.add_reply(record(request_id="new", keep_questions=True))
    assert records.purge() == 1
    gone, kept = records.reply("old"), records.reply("new")
    assert gone is not None and gone.question is None and gone.status == "answered"
    assert kept is not None and kept.question == QUESTION


def test_a_write_after_the_purge_interval_purges_expired_text(
    records: Records, monkeypatch: pytest.MonkeyPatch
) -> None:
    records.add_reply(record(request_id="old", keep_questions=True, at=now_utc() - timedelta(31)))
    still = records.reply("old")
    assert still is not None and still.question == QUESTION  # purged on open, at most hourly after
    monkeypatch.setattr("ragbot.records.PURGE_EVERY_S", 0.0)
    records.add_reply(record(request_id="new"))
    gone = records.reply("old")
    assert gone is not None and gone.question is None


def test_retention_is_applied_when_the_store_opens(store_settings: Settings) -> None:
    store = Records.open(store_settings)
    store.add_reply(
        record(request_id="old", keep_questions=True, at=now_utc() - timedelta(days=40))
    )
    store.close()
    store = Records.open(store_settings)
    try:
        old = store.reply("old")
        assert old is not None and old.question is None
    finally:
        store.close()


# ---------------------------------------------------------------------------------------------
# The API


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory, shipped_corpus_dir: Path) -> Pipeline:
    """A pipeline over the shipped corpus with the hashing embedder: no model, fast."""
    settings = Settings(
        corpus_dir=shipped_corpus_dir, index_dir=tmp_path_factory.mktemp("records") / "index"
    )
    embedder = HashingEmbedder()
    build_index(settings, embedder)
    return Pipeline.load(settings, embedder=embedder)


def api(pipeline: Pipeline, store_settings: Settings, **overrides: Any) -> TestClient:
    settings = pipeline.settings.model_copy(
        update={
            "index_dir": store_settings.index_dir,
            "database_url": store_settings.database_url,
            "rate_limit": "",
            **overrides,
        }
    )
    return TestClient(create_app(settings, pipeline))


def ask(client: TestClient, question: str, **headers: str) -> dict[str, Any]:
    response = client.post("/v1/ask", json={"question": question}, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def stored(settings: Settings, request_id: str) -> ReplyRecord | None:
    store = Records.open(settings)
    try:
        return store.reply(request_id)
    finally:
        store.close()


def test_an_answer_is_recorded_without_its_question_and_can_be_rated_down(
    pipeline: Pipeline, store_settings: Settings
) -> None:
    with api(pipeline, store_settings) as client:
        reply = ask(client, QUESTION, **{"X-Ragbot-Channel": "widget"})
        rated = client.post(
            "/v1/feedback", json={"request_id": reply["request_id"], "rating": "down"}
        )
    assert rated.status_code == 201 and rated.json() == {"status": "recorded"}
    kept = stored(store_settings, reply["request_id"])
    assert kept is not None
    assert (kept.status, kept.channel, kept.question) == (reply["status"], "widget", None)
    assert kept.build_id == pipeline.index.manifest.build_id
    assert list(kept.sections) == list(dict.fromkeys(c["section"] for c in reply["citations"]))
    store = Records.open(store_settings)
    try:
        rating = store.feedback(reply["request_id"])
    finally:
        store.close()
    assert rating is not None and rating.rating == "down"


def test_with_questions_kept_the_text_is_redacted_and_a_crisis_is_still_not_kept(
    pipeline: Pipeline, store_settings: Settings
) -> None:
    with api(pipeline, store_settings, keep_questions=True) as client:
        plain = ask(client, f"{QUESTION} reply to jo@example.org")
        crisis = ask(client, CRISIS)
    assert crisis["status"] == "crisis"
    kept_plain = stored(store_settings, plain["request_id"])
    kept_crisis = stored(store_settings, crisis["request_id"])
    assert kept_plain is not None and kept_plain.question == f"{QUESTION} reply to [email]"
    assert kept_plain.channel == "api"
    assert kept_crisis is not None and kept_crisis.question is None
    assert kept_crisis.status == "crisis"


def test_feedback_for_an_unknown_request_id_is_404_in_the_error_shape(
    pipeline: Pipeline, store_settings: Settings
) -> None:
    with api(pipeline, store_settings) as client:
        response = client.post("/v1/feedback", json={"request_id": "nope", "rating": "up"})
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "unknown_request" and error["status"] == 404
    assert error["request_id"] == response.headers["X-Request-ID"]


@pytest.mark.parametrize(
    "body",
    [
        {"request_id": "x", "rating": "meh"},
        {"request_id": "x"},
        {"request_id": "x", "rating": "up", "comment": "a" * 501},
        {"request_id": "x", "rating": "up", "stars": 5},
        {"request_id": 7, "rating": "up"},
    ],
)
def test_an_invalid_rating_is_422_in_the_error_shape(
    pipeline: Pipeline, tmp_path: Path, body: dict[str, Any]
) -> None:
    with api(pipeline, Settings(index_dir=tmp_path / "index")) as client:
        response = client.post("/v1/feedback", json=body)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"


def test_a_broken_records_store_never_fails_a_reply(pipeline: Pipeline, tmp_path: Path) -> None:
    unusable = Settings(
        index_dir=tmp_path / "index", database_url="postgresql+psycopg://@127.0.0.1:1/x"
    )
    with api(pipeline, unusable) as client:
        reply = ask(client, QUESTION)
        rated = client.post(
            "/v1/feedback", json={"request_id": reply["request_id"], "rating": "up"}
        )
    assert reply["status"] in {"answered", "no_answer"}
    assert rated.status_code == 503 and rated.json()["error"]["code"] == "store_unavailable"


def test_feedback_is_documented_in_openapi(pipeline: Pipeline, tmp_path: Path) -> None:
    with api(pipeline, Settings(index_dir=tmp_path / "index")) as client:
        spec = client.get("/openapi.json").json()
    route = spec["paths"]["/v1/feedback"]["post"]
    assert {"201", "404", "422"} <= set(route["responses"])


# ---------------------------------------------------------------------------------------------
# The store opens once the service is up (api/records.py)


def _slow_open(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Records.open takes `seconds` longer, as a distant database would."""
    real_open = Records.open

    def slow(settings: Settings) -> Records:
        time.sleep(seconds)
        return real_open(settings)

    monkeypatch.setattr(Records, "open", slow)


def test_a_reply_given_while_the_store_still_opens_is_kept_once_it_opens(
    pipeline: Pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(index_dir=tmp_path / "index")
    _slow_open(monkeypatch, 0.5)
    with api(pipeline, settings) as client:
        reply = ask(client, QUESTION)
        rated = client.post(
            "/v1/feedback", json={"request_id": reply["request_id"], "rating": "up"}
        )
    monkeypatch.undo()
    assert rated.status_code == 201
    assert stored(settings, reply["request_id"]) is not None


def test_a_store_that_finishes_opening_after_the_service_stopped_is_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slot = RecordsSlot(Settings(index_dir=tmp_path / "index"))
    _slow_open(monkeypatch, 0.3)
    opening = threading.Thread(target=slot.open)
    opening.start()
    slot.close()
    opening.join(10)
    assert slot.get(timeout=0) is None


def test_a_store_that_cannot_open_is_one_error_line_and_no_store(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    slot = RecordsSlot(
        Settings(index_dir=tmp_path / "index", database_url="postgresql+psycopg://@127.0.0.1:1/x")
    )
    slot.open()
    assert slot.get(timeout=0) is None
    assert [r.getMessage() for r in caplog.records if r.levelno >= 40] == [
        "records store not opened"
    ]


# ---------------------------------------------------------------------------------------------
# The records queue (api/writer.py): replies never wait for their records


def _reply_inserts(engine_class: Any, counts: list[int]) -> Any:
    """A listener counting the INSERT statements into `replies` and the rows each carried."""

    def listener(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO REPLIES"):
            counts.append(len(parameters) if many else 1)

    sa.event.listen(engine_class, "before_cursor_execute", listener)
    return listener


def test_replies_queued_together_are_written_in_one_statement(
    pipeline: Pipeline, store_settings: Settings
) -> None:
    trace = pipeline.ask_traced(QUESTION)
    slot = RecordsSlot(store_settings)
    for n in range(40):  # the store is not open yet: all of them wait in the queue
        slot.keep_reply(pipeline, trace, f"queued-{n}", "api", QUESTION, 3.0, keep_questions=False)
    inserts: list[int] = []
    listener = _reply_inserts(sa.engine.Engine, inserts)
    try:
        slot.open()
        records = slot.get()
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", listener)
    assert records is not None
    assert inserts == [40]
    assert all(records.reply(f"queued-{n}") is not None for n in range(40))
    slot.close()


def test_every_queued_reply_is_written_before_the_store_closes(
    pipeline: Pipeline, store_settings: Settings
) -> None:
    trace = pipeline.ask_traced(QUESTION)
    slot = RecordsSlot(store_settings)
    slot.open()
    for n in range(300):
        slot.keep_reply(pipeline, trace, f"late-{n}", "api", QUESTION, 3.0, keep_questions=False)
    slot.close()
    store = Records.open(store_settings)
    try:
        assert len(store.replies()) == 300
    finally:
        store.close()


def test_a_record_that_cannot_be_built_costs_only_itself(
    pipeline: Pipeline, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(index_dir=tmp_path / "index")
    trace = pipeline.ask_traced(QUESTION)
    slot = RecordsSlot(settings)
    slot.keep_reply(pipeline, trace, "before", "api", QUESTION, 3.0, keep_questions=False)
    slot.keep_reply(pipeline, None, "broken", "api", QUESTION, 3.0, keep_questions=False)  # type: ignore[arg-type]
    slot.keep_reply(pipeline, trace, "after", "api", QUESTION, 3.0, keep_questions=False)
    slot.open()
    records = slot.get()
    assert records is not None
    assert records.reply("before") is not None and records.reply("after") is not None
    assert records.reply("broken") is None
    assert "reply record not built" in [r.getMessage() for r in caplog.records]
    slot.close()
