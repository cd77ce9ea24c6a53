"""Prometheus metrics: GET /metrics only when asked for, labels that stay bounded, and totals that
are right across processes (two real `ragbot serve` processes sharing PROMETHEUS_MULTIPROC_DIR).

Metric objects are global to a process, so in-process tests compare a value before and after.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from live_server import free_port, serve
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from server_process import ragbot_serve
from slack_stub import SlackStub
from starlette.types import Message, Receive, Scope, Send
from test_deploy import nginx
from test_slack import QUESTION as SLACK_QUESTION
from test_slack import (
    event_body,
    mention,
    message_ts,
    post_signed,
    replies,
    settle,
    slack_settings,
    unique,
)

from ragbot import metrics
from ragbot.api import create_app
from ragbot.api.middleware import MetricsMiddleware
from ragbot.api.overload import AskGate
from ragbot.batching import BatchingEmbedder
from ragbot.config import Settings
from ragbot.embeddings import HashingEmbedder
from ragbot.pipeline import Pipeline

QUESTION = {"question": "How long do the effects of ketamine last?"}


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus text exposition (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


def label_values(text: str, name: str, label: str) -> set[str]:
    return {
        s.labels[label]
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and label in s.labels
    }


@pytest.fixture
def client(real_pipeline: Pipeline) -> Iterator[TestClient]:
    settings = real_pipeline.settings.model_copy(update={"metrics": True, "rate_limit": ""})
    with TestClient(create_app(settings, real_pipeline)) as c:
        yield c


def test_metrics_are_not_served_unless_turned_on() -> None:
    assert Settings().metrics is False
    # No lifespan: the route table alone decides, and nothing is loaded.
    assert TestClient(create_app(Settings())).get("/metrics").status_code == 404


@pytest.mark.model
def test_metrics_are_served_in_the_prometheus_text_format_and_kept_out_of_the_schema(
    client: TestClient,
) -> None:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert {"ragbot_http_requests", "ragbot_replies", "ragbot_index_build"} <= names
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]


@pytest.mark.model
def test_requests_are_counted_by_route_template_method_and_status(client: TestClient) -> None:
    before = client.get("/metrics").text
    assert client.post("/v1/ask", json=QUESTION).status_code == 200
    assert client.post("/v1/ask", json={"question": ""}).status_code == 422
    assert client.get("/v1/ask").status_code == 405
    # Refused by the body limit before any route is chosen: still counted under its route.
    assert client.post("/v1/ask", content=b"x" * 20_000).status_code == 413
    assert client.get("/no/such/path/12345").status_code == 404
    assert client.get("/another-unknown-path").status_code == 404
    after = client.get("/metrics").text

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    requests = "ragbot_http_requests_total"
    assert delta(requests, route="/v1/ask", method="POST", status="200") == 1
    assert delta(requests, route="/v1/ask", method="POST", status="422") == 1
    assert delta(requests, route="/v1/ask", method="GET", status="405") == 1
    assert delta(requests, route="/v1/ask", method="POST", status="413") == 1
    assert delta(requests, route="other", method="GET", status="404") == 2
    timed = "ragbot_http_request_duration_seconds_count"
    assert delta(timed, route="/v1/ask", method="POST", status="200") == 1
    # Unknown paths never become label values of their own.
    routes = label_values(after, requests, "route")
    assert "other" in routes
    assert not {r for r in routes if "12345" in r or "unknown" in r}, routes


@pytest.mark.model
def test_replies_are_counted_by_status_and_router_intent(
    client: TestClient, real_pipeline: Pipeline
) -> None:
    questions = [QUESTION["question"], "Should I stop taking my antidepressants?"]
    expected = [real_pipeline.ask_traced(q) for q in questions]
    before = client.get("/metrics").text
    statuses = [client.post("/v1/ask", json={"question": q}).json()["status"] for q in questions]
    after = client.get("/metrics").text
    assert statuses == [t.answer.status for t in expected]
    assert {t.answer.status for t in expected} == {"answered", "refused"}
    for trace in expected:
        labels = {"status": trace.answer.status, "intent": trace.route.intent}
        got = sample(after, "ragbot_replies_total", **labels)
        assert got - sample(before, "ragbot_replies_total", **labels) == 1, labels


@pytest.mark.model
def test_a_rate_limited_question_is_counted_as_429(real_pipeline: Pipeline) -> None:
    settings = real_pipeline.settings.model_copy(update={"metrics": True, "rate_limit": "1/minute"})
    with TestClient(create_app(settings, real_pipeline), client=("192.0.2.9", 5000)) as c:
        before = c.get("/metrics").text
        assert [c.post("/v1/ask", json=QUESTION).status_code for _ in range(2)] == [200, 429]
        after = c.get("/metrics").text
    assert (
        sample(after, "ragbot_rate_limited_total") - sample(before, "ragbot_rate_limited_total")
        == 1
    )
    labels = {"route": "/v1/ask", "method": "POST", "status": "429"}
    requests = "ragbot_http_requests_total"
    assert sample(after, requests, **labels) - sample(before, requests, **labels) == 1


@pytest.mark.model
def test_a_question_shed_by_a_busy_service_is_counted_as_503(client: TestClient) -> None:
    # One worker, no queue, and its only slot held: the next question is turned away at once.
    gate = AskGate(workers=1, queue=0, timeout_s=5.0)
    client.app.state.gate = gate  # type: ignore[attr-defined]
    assert client.portal is not None
    client.portal.call(gate._slots.acquire_on_behalf_of_nowait, "holder")
    before = client.get("/metrics").text
    try:
        response = client.post("/v1/ask", json=QUESTION)
    finally:
        client.portal.call(gate._slots.release_on_behalf_of, "holder")
    after = client.get("/metrics").text
    assert response.status_code == 503 and response.json()["error"]["code"] == "overloaded"
    assert sample(after, "ragbot_shed_total") - sample(before, "ragbot_shed_total") == 1
    labels = {"route": "/v1/ask", "method": "POST", "status": "503"}
    requests = "ragbot_http_requests_total"
    assert sample(after, requests, **labels) - sample(before, requests, **labels) == 1


def test_model_time_and_queue_wait_are_observed_per_call_and_per_question() -> None:
    def count(name: str) -> float:
        return REGISTRY.get_sample_value(f"{name}_count") or 0.0

    model, wait = count("ragbot_model_seconds"), count("ragbot_model_queue_wait_seconds")
    encoder = BatchingEmbedder(HashingEmbedder(dim=16))
    try:
        encoder.embed(["one question"])
        encoder.embed(["another", "and its clause"])
    finally:
        encoder.close()
    assert count("ragbot_model_seconds") - model == 2
    assert count("ragbot_model_queue_wait_seconds") - wait == 2


def test_a_request_is_counted_when_its_response_is_complete_before_its_background_work() -> None:
    """A reply's record is written after the response: a scrape right after the response must
    already count the request, and its time is the response's, not the record's."""
    labels = {"route": metrics.OTHER_ROUTE, "method": "GET", "status": "200"}

    def counted() -> float:
        return REGISTRY.get_sample_value("ragbot_http_requests_total", labels) or 0.0

    before = counted()
    during_background: list[float] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})
        during_background.append(counted())  # what a scrape would see now

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_message: Message) -> None:
        return None

    scope: Scope = {"type": "http", "method": "GET", "path": "/nowhere", "headers": []}
    asyncio.run(MetricsMiddleware(app, routes=[])(scope, receive, send))
    assert during_background == [before + 1]
    assert counted() == before + 1  # once, not again when the app returns


@pytest.mark.model
def test_the_live_index_build_is_exposed_and_a_swapped_out_build_goes_to_zero(
    client: TestClient, real_pipeline: Pipeline
) -> None:
    live = real_pipeline.index.build_id
    assert sample(client.get("/metrics").text, "ragbot_index_build", build_id=live) == 1
    metrics.index_build_live("20990101T000000Z-newer", previous=live)
    try:
        text = client.get("/metrics").text
        assert sample(text, "ragbot_index_build", build_id="20990101T000000Z-newer") == 1
        assert sample(text, "ragbot_index_build", build_id=live) == 0
    finally:
        metrics.index_build_live(live, previous="20990101T000000Z-newer")


# ---------------------------------------------------------------------------------------------
# Several processes


@pytest.mark.model
def test_two_server_processes_sharing_a_multiprocess_dir_both_report_the_total(
    tmp_path: Path, real_index_dir: Path, shipped_corpus_dir: Path
) -> None:
    shared = tmp_path / "prometheus"
    shared.mkdir()  # empty at start, as the README says it must be
    env = {
        "RAGBOT_INDEX_DIR": str(real_index_dir),
        "RAGBOT_CORPUS_DIR": str(shipped_corpus_dir),
        "RAGBOT_RATE_LIMIT": "",
        "RAGBOT_METRICS": "true",
        "RAGBOT_RELOAD_INTERVAL_S": "0",
        "PROMETHEUS_MULTIPROC_DIR": str(shared),
    }
    asked = {"first": 3, "second": 2}
    with (
        ragbot_serve(env, tmp_path / "first.log") as first,
        ragbot_serve(env, tmp_path / "second.log") as second,
    ):
        assert first.proc.pid != second.proc.pid
        for server, n in ((first, asked["first"]), (second, asked["second"])):
            with server.client() as c:
                for _ in range(n):
                    assert c.post("/v1/ask", json=QUESTION).status_code == 200
        texts = [httpx.get(f"{s.url}/metrics", trust_env=False).text for s in (first, second)]
        build = first.build_id()
    total = sum(asked.values())
    labels = {"route": "/v1/ask", "method": "POST", "status": "200"}
    for text in texts:
        assert sample(text, "ragbot_http_requests_total", **labels) == total
        assert sample(text, "ragbot_replies_total", status="answered") == total
        assert sample(text, "ragbot_http_request_duration_seconds_count", **labels) == total
        # A gauge is not summed: both processes serve the build, and it reads 1.
        assert sample(text, "ragbot_index_build", build_id=build) == 1


# ---------------------------------------------------------------------------------------------
# Slack, and the proxy


@pytest.mark.model
def test_slack_events_are_counted_as_answered_duplicate_or_rejected(
    real_settings: Settings, real_pipeline: Pipeline, tmp_path: Path
) -> None:
    with SlackStub() as stub:
        settings = slack_settings(
            real_settings, stub, state_path=tmp_path / "state.sqlite3", metrics=True
        )
        with serve(create_app(settings, real_pipeline)) as base:
            before = httpx.get(f"{base}/metrics", trust_env=False).text
            channel, ts, event_id = unique("C0METRICS"), message_ts(), unique("Ev")
            body = event_body(mention(channel, ts, SLACK_QUESTION), event_id)
            assert post_signed(base, body).status_code == 200
            assert post_signed(base, body).status_code == 200  # the same event again
            forged = {"X-Slack-Signature": "v0=" + "0" * 64}
            assert post_signed(base, body, extra_headers=forged).status_code == 401
            replies(stub, channel)
            settle(stub, channel, ts)
            after = httpx.get(f"{base}/metrics", trust_env=False).text
    for outcome in ("answered", "duplicate", "rejected"):
        got = sample(after, "ragbot_slack_events_total", outcome=outcome)
        assert got - sample(before, "ragbot_slack_events_total", outcome=outcome) == 1, outcome


def test_the_shipped_proxy_answers_404_for_metrics_in_the_error_shape(tmp_path: Path) -> None:
    # No replica is needed: the proxy answers /metrics itself, and never forwards it.
    with nginx(tmp_path / "nginx", [free_port()]) as proxy:
        response = httpx.get(f"{proxy.url}/metrics", trust_env=False, timeout=10)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert response.json()["error"]["request_id"] == response.headers["x-request-id"]
