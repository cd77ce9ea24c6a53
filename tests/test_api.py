"""The HTTP API against the real real_pipeline and model: answers, citations, guardrails, errors."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from test_guardrails import CRISIS, MEDICAL_ADVICE, OUT_OF_SCOPE, SENSITIVE_BUT_ANSWERABLE

from ragbot.api import create_app
from ragbot.guardrails import DISCLAIMER
from ragbot.pipeline import Pipeline

# Questions taken from the article's sections, each with (a fragment of) the sentence that answers it.
SECTION_QUESTIONS = [
    ("What was ketamine initially developed as?", "initially developed as an anesthetic"),
    (
        "How is ketamine different from traditional antidepressants?",
        "Unlike traditional antidepressants",
    ),
    ("Which receptors does ketamine primarily act on?", "NMDA (N-methyl-D-aspartate) receptors"),
    ("How does ketamine produce an anesthetic effect?", "By blocking these receptors"),
    ("Where do ketamine's antidepressant effects come from?", "increase the levels of glutamate"),
    ("What does the surge in glutamate activity lead to?", "window of neuroplasticity"),
    (
        "What happens to ketamine after administration?",
        "rapidly absorbed and transported to the brain",
    ),
    ("Why does ketamine cause a dissociative state?", "dissociative state"),
    ("What do AMPA receptors do?", "AMPA receptors"),
    ("Is chronic ketamine use linked to cognitive deficits?", "cognitive deficits"),
    ("How does ketamine promote neuroplasticity?", "promotes neuroplasticity"),
    ("How long do ketamine's effects last?", "45 to 90 minutes"),
    ("How long can ketamine metabolites remain in the system?", "fourteen days"),
    ("What share of Nue Life clients report fewer symptoms?", "2/3rds"),
    ("Can ketamine cause bladder issues?", "bladder issues"),
    ("How quickly can clients notice relief?", "within hours of treatment"),
    ("Why is a cautious approach to ketamine needed?", "cautious approach"),
    ("How does Nue Life supervise ketamine experiences?", "directly supervised and monitored"),
]

# No known misses since stop 22. "What was ketamine initially developed as?" read as a history
# question the article does not cover from the eighth batch until the retired hold-outs joined
# the training; "What happens to ketamine after administration?" was a miss until the `coverage`
# batch. A new miss goes here, strictly expected to fail, with the README's reason.
KNOWN_MISSES: frozenset[str] = frozenset()
ANSWERED_QUESTIONS = [
    pytest.param(q, e, marks=pytest.mark.xfail(strict=True, reason="known miss"))
    if q in KNOWN_MISSES
    else (q, e)
    for q, e in SECTION_QUESTIONS
]


@pytest.fixture(scope="module")
def client(real_pipeline: Pipeline) -> Iterator[TestClient]:
    settings = real_pipeline.settings.model_copy(
        update={"cors_origins": ["https://clinic.example"]}
    )
    with TestClient(create_app(settings, real_pipeline)) as c:
        yield c


def ask(client: TestClient, question: str) -> dict:  # type: ignore[type-arg]
    response = client.post("/v1/ask", json={"question": question})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_enough_section_questions() -> None:
    assert len(SECTION_QUESTIONS) >= 15


@pytest.mark.parametrize(("question", "expected"), ANSWERED_QUESTIONS)
def test_answer_holds_the_sentence_that_answers_the_question(
    client: TestClient, question: str, expected: str
) -> None:
    body = ask(client, question)
    assert body["status"] == "answered"
    assert expected in body["answer"]


@pytest.mark.parametrize(
    ("question", "_"), [(q, e) for q, e in SECTION_QUESTIONS if q not in KNOWN_MISSES]
)
def test_answer_quotes_are_verbatim_slices_of_the_document(
    client: TestClient, real_pipeline: Pipeline, question: str, _: str
) -> None:
    body = ask(client, question)
    markers = [int(n) for n in re.findall(r"\[(\d+)\]", body["answer"])]
    ids = [c["id"] for c in body["citations"]]
    assert 1 <= len(ids) <= 3
    assert ids == list(range(1, len(ids) + 1))
    assert markers == ids  # numbered in order of appearance, each used once
    sentences = re.split(r" \[\d+\] ?", body["answer"])
    sentences = [s for s in sentences if s]
    assert len(sentences) == len(set(sentences)), "no sentence repeats"
    previous_end = -1
    for sentence, citation in zip(sentences, body["citations"], strict=True):
        doc = real_pipeline.index.documents[citation["doc_id"]]
        assert doc.text[citation["start"] : citation["end"]] == citation["quote"] == sentence
        assert citation["start"] > previous_end  # document order
        previous_end = citation["end"]
        assert citation["title"] == doc.title
        assert citation["section"] in {s.heading for s in doc.sections}
        assert set(citation) == {
            "id",
            "doc_id",
            "title",
            "section",
            "quote",
            "start",
            "end",
            "url",
            "score",
            "ref",
        }
        assert citation["ref"] in {s.sentence_id for s in real_pipeline.index.sentences}


def test_no_answer_shows_no_sources_and_offers_the_articles_questions(client: TestClient) -> None:
    body = ask(client, "What's the best pizza place in Chicago?")
    assert body["status"] == "no_answer"
    assert body["citations"] == []
    assert body["suggestions"] and all(s.endswith("?") for s in body["suggestions"])


def test_answered_replies_suggest_other_questions_of_the_article(client: TestClient) -> None:
    body = ask(client, "How long does ketamine stay in the body?")
    assert body["suggestions"]
    assert "How Long Does Ketamine Stay in the Body?" not in body["suggestions"]


def test_disclaimer_is_byte_identical_on_every_response_of_every_status(client: TestClient) -> None:
    questions = (
        CRISIS
        + MEDICAL_ADVICE
        + OUT_OF_SCOPE
        + SENSITIVE_BUT_ANSWERABLE
        + [q for q, _ in SECTION_QUESTIONS]
    )
    statuses = set()
    for question in questions:
        body = ask(client, question)
        statuses.add(body["status"])
        assert body["disclaimer"] == DISCLAIMER
    assert statuses == {"answered", "no_answer", "refused", "crisis"}
    assert "not medical advice" in DISCLAIMER and "licensed clinician" in DISCLAIMER


def test_every_response_carries_a_request_id(client: TestClient) -> None:
    response = client.post("/v1/ask", json={"question": "What is ketamine?"})
    body = response.json()
    assert response.headers["X-Request-ID"] == body["request_id"]
    echoed = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["X-Request-ID"] == "abc-123"
    unsafe = client.get("/healthz", headers={"X-Request-ID": "bad id\nwith newline"})
    assert unsafe.headers["X-Request-ID"] != "bad id\nwith newline"


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready"
    assert ready["index"]["counts"]["documents"] == 1
    assert ready["slack"] is False


def test_the_openapi_contract_is_served_with_the_question_limits_and_statuses(
    client: TestClient,
) -> None:
    spec = client.get("/openapi.json").json()
    question = spec["components"]["schemas"]["AskRequest"]["properties"]["question"]
    assert (question["minLength"], question["maxLength"]) == (1, 1000)
    assert {"200", "400", "413", "422", "503"} <= set(spec["paths"]["/v1/ask"]["post"]["responses"])


def test_swagger_ui_is_off_unless_asked_for_as_it_loads_from_a_cdn(
    client: TestClient, real_pipeline: Pipeline
) -> None:
    assert client.get("/docs").status_code == 404
    settings = real_pipeline.settings.model_copy(update={"docs": True})
    with TestClient(create_app(settings, real_pipeline)) as with_docs:
        assert with_docs.get("/docs").status_code == 200


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("not UTF-8", b'{"question": "\xff\xfe"}'),
        ("nested too deep", b"[" * 5000 + b"]" * 5000),
        ("huge integer", b'{"question": ' + b"9" * 5000 + b"}"),
    ],
)
def test_bodies_the_parser_cannot_read_get_invalid_json_in_the_error_shape(
    client: TestClient, name: str, body: bytes
) -> None:
    response = client.post("/v1/ask", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, name
    assert response.json()["error"]["code"] == "invalid_json"


def test_a_trailing_slash_is_not_found_and_never_redirects_to_the_callers_host(
    client: TestClient,
) -> None:
    response = client.post(
        "/v1/ask/", json={"question": "x"}, headers={"host": "evil.example"}, follow_redirects=False
    )
    assert response.status_code == 404 and "location" not in response.headers
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/healthz"), ("POST", "/v1/ask"), ("GET", "/nope")]
)
def test_every_response_tells_browsers_not_to_sniff_its_type(
    client: TestClient, method: str, path: str
) -> None:
    response = client.request(method, path, json={"question": "how long does it last"})
    assert response.headers["x-content-type-options"] == "nosniff"


ERROR_CASES = [
    ("empty", {"json": {"question": ""}}, 422, "invalid_question"),
    ("blank", {"json": {"question": "   \n "}}, 422, "invalid_question"),
    ("too long", {"json": {"question": "a" * 1001}}, 422, "invalid_question"),
    ("control characters", {"json": {"question": "what\x00is\x07this"}}, 422, "invalid_question"),
    ("number", {"json": {"question": 42}}, 422, "invalid_request"),
    ("null", {"json": {"question": None}}, 422, "invalid_request"),
    ("list body", {"json": ["question"]}, 422, "invalid_request"),
    ("missing field", {"json": {}}, 422, "invalid_request"),
    ("extra field", {"json": {"question": "hi", "admin": True}}, 422, "invalid_request"),
    (
        "invalid JSON",
        {"content": b"{not json", "headers": {"content-type": "application/json"}},
        400,
        "invalid_json",
    ),
    (
        "oversized body",
        {"content": b"x" * 20_000, "headers": {"content-type": "application/json"}},
        413,
        "payload_too_large",
    ),
]


@pytest.mark.parametrize(
    ("case", "kwargs", "status", "code"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES]
)
def test_bad_input_gets_a_4xx_in_the_one_error_shape(
    client: TestClient,
    case: str,
    kwargs: dict,
    status: int,
    code: str,  # type: ignore[type-arg]
) -> None:
    response = client.post("/v1/ask", **kwargs)
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "status", "request_id", "detail"}
    assert body["error"]["code"] == code
    assert body["error"]["status"] == status
    assert body["error"]["message"]
    assert body["error"]["request_id"] == response.headers["X-Request-ID"]


def test_a_question_at_the_limit_is_accepted(client: TestClient) -> None:
    assert (
        client.post("/v1/ask", json={"question": "ketamine " * 111}).status_code == 200
    )  # 999 chars


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("get", "/nope", 404),
        ("post", "/v1/nope", 404),
        ("get", "/v1/ask", 405),
        ("delete", "/healthz", 405),
    ],
)
def test_unknown_routes_and_methods_use_the_same_error_shape(
    client: TestClient, method: str, path: str, status: int
) -> None:
    response = getattr(client, method)(path)
    assert response.status_code == status
    assert response.json()["error"]["status"] == status


def test_cors_allows_configured_origins_only(client: TestClient) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    allowed = client.options("/v1/ask", headers={"Origin": "https://clinic.example", **preflight})
    assert allowed.headers.get("access-control-allow-origin") == "https://clinic.example"
    denied = client.options("/v1/ask", headers={"Origin": "https://evil.example", **preflight})
    assert "access-control-allow-origin" not in denied.headers


def test_logs_do_not_store_question_text(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "my private worry about ketamine and zebras"
    with caplog.at_level(logging.INFO):
        client.post("/v1/ask", json={"question": secret})
    logged = " ".join(json.dumps(r.__dict__, default=str) for r in caplog.records)
    assert caplog.records, "requests are logged"
    assert "zebras" not in logged


def test_question_text_is_logged_only_when_the_setting_allows_it(
    real_pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    from dataclasses import replace

    allowed = replace(
        real_pipeline, settings=real_pipeline.settings.model_copy(update={"log_questions": True})
    )
    with caplog.at_level(logging.INFO, logger="ragbot.pipeline"):
        allowed.ask("ketamine and zebras")
    assert any(getattr(r, "question", None) == "ketamine and zebras" for r in caplog.records)


def test_the_service_is_not_ready_until_the_pipeline_is_loaded(real_settings) -> None:  # type: ignore[no-untyped-def]
    app = create_app(
        real_settings
    )  # no real_pipeline handed in, lifespan not yet run: still loading
    loading = TestClient(app)
    assert loading.get("/healthz").status_code == 200  # the process is up...
    for response in (
        loading.post("/v1/ask", json={"question": "What is ketamine?"}),
        loading.get("/readyz"),
    ):
        assert response.status_code == 503  # ...but not ready
        assert response.json()["error"]["code"] == "index_unavailable"


def test_a_pipeline_that_cannot_load_leaves_health_up_and_says_why_it_is_not_ready(
    tmp_path, shipped_corpus_dir
) -> None:  # type: ignore[no-untyped-def]
    import time

    from ragbot.config import Settings

    settings = Settings(
        corpus_dir=shipped_corpus_dir, index_dir=tmp_path / "none", auto_build=False
    )
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").status_code == 200  # up at once, while the model loads
        deadline = time.monotonic() + 60
        while client.app.state.load_error is None and time.monotonic() < deadline:  # type: ignore[attr-defined]
            time.sleep(0.2)
        response = client.get("/readyz")
        assert response.status_code == 503
        message = response.json()["error"]["message"]
        assert "ragbot build-index" in message
        assert str(tmp_path) not in message  # no server path reaches an anonymous client
        assert client.get("/healthz").status_code == 200
