"""Overload protection: a bounded queue for the model (503 + Retry-After) and a per-client rate
limit (429 + Retry-After), both in the API's one error shape."""

from __future__ import annotations

import anyio
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from ragbot.api import create_app
from ragbot.api.overload import AskGate
from ragbot.config import Settings
from ragbot.errors import Overloaded
from ragbot.pipeline import Pipeline

QUESTION = {"question": "How long do the effects of ketamine last?"}


def test_a_question_that_finds_the_queue_full_is_turned_away_at_once() -> None:
    gate = AskGate(workers=1, queue=1, timeout_s=30.0)
    outcomes: list[str] = []

    async def hold(release: anyio.Event) -> None:
        async with gate.slot():
            await release.wait()

    async def ask() -> None:
        try:
            async with gate.slot():
                outcomes.append("answered")
        except Overloaded as exc:
            assert exc.retry_after is not None and exc.retry_after >= 1
            outcomes.append("shed")

    async def scenario() -> None:
        release = anyio.Event()
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(hold, release)
            await anyio.sleep(0.01)
            tasks.start_soon(ask)  # waits: the one queue place
            await anyio.sleep(0.01)
            await ask()  # the queue is full: shed without waiting for the 30 s budget
            assert outcomes == ["shed"]
            release.set()
        assert outcomes == ["shed", "answered"]
        assert gate.shed == 1 and gate.waiting == 0

    anyio.run(scenario)


def test_a_question_that_waits_past_the_budget_is_turned_away_and_counted_as_shed() -> None:
    gate = AskGate(workers=1, queue=10, timeout_s=0.05)
    before = REGISTRY.get_sample_value("ragbot_shed_total") or 0.0

    async def scenario() -> None:
        release = anyio.Event()

        async def hold() -> None:
            async with gate.slot():
                await release.wait()

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(hold)
            while gate._slots.borrowed_tokens == 0:  # until the holder has its slot
                await anyio.sleep(0)
            with pytest.raises(Overloaded):
                async with gate.slot():
                    pass
            release.set()
        async with gate.slot():  # the slot is free again
            pass
        assert gate.waiting == 0

    anyio.run(scenario)
    assert (REGISTRY.get_sample_value("ragbot_shed_total") or 0.0) - before == 1


@pytest.mark.model
def test_a_client_over_its_rate_limit_gets_429_with_retry_after_and_others_are_not_affected(
    real_settings: Settings, real_pipeline: Pipeline
) -> None:
    settings = real_settings.model_copy(update={"rate_limit": "3/minute"})
    app = create_app(settings, real_pipeline)
    with TestClient(app, client=("192.0.2.1", 5000)) as first:
        statuses = [first.post("/v1/ask", json=QUESTION).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        refused = first.post("/v1/ask", json=QUESTION)
        body = refused.json()["error"]
        assert refused.status_code == 429 and body["code"] == "rate_limited"
        assert body["request_id"] == refused.headers["x-request-id"]
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        # Health and readiness are never rate limited.
        assert first.get("/healthz").status_code == 200
    with TestClient(app, client=("192.0.2.2", 5000)) as second:
        assert second.post("/v1/ask", json=QUESTION).status_code == 200


def test_an_unreadable_rate_limit_setting_is_named() -> None:
    with pytest.raises(ValueError, match="rate_limit"):
        Settings(rate_limit="lots please")


def test_an_empty_rate_limit_turns_it_off() -> None:
    from ragbot.api.overload import RateLimit

    assert RateLimit.from_settings(Settings(rate_limit="")) is None
    limit = RateLimit.from_settings(Settings(rate_limit="20/minute;200/hour"))
    assert limit is not None and [str(i) for i in limit.items] == [
        "20 per 1 minute",
        "200 per 1 hour",
    ]


@pytest.mark.model
def test_the_openapi_document_names_429_and_503_with_retry_after(
    real_settings: Settings, real_pipeline: Pipeline
) -> None:
    with TestClient(create_app(real_settings, real_pipeline)) as client:
        responses = client.get("/openapi.json").json()["paths"]["/v1/ask"]["post"]["responses"]
    for status in ("429", "503"):
        assert "Retry-After" in responses[status]["headers"]


@pytest.mark.model
def test_replicas_sharing_redis_share_each_clients_rate_limit(
    real_settings: Settings, real_pipeline: Pipeline, redis_url: str
) -> None:
    settings = real_settings.model_copy(update={"rate_limit": "2/minute", "redis_url": redis_url})
    client = ("192.0.2.9", 5000)
    with (
        TestClient(create_app(settings, real_pipeline), client=client) as first,
        TestClient(create_app(settings, real_pipeline), client=client) as second,
    ):
        assert first.post("/v1/ask", json=QUESTION).status_code == 200
        assert second.post("/v1/ask", json=QUESTION).status_code == 200
        # The third question, to either replica, is over the shared limit.
        refused = first.post("/v1/ask", json=QUESTION)
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"


@pytest.mark.model
# redis-py leaves the socket of a refused connection to the garbage collector.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_rate_limit_whose_redis_is_down_lets_questions_through(
    real_settings: Settings, real_pipeline: Pipeline
) -> None:
    from live_server import free_port

    down = f"redis://127.0.0.1:{free_port()}/0"
    settings = real_settings.model_copy(update={"rate_limit": "1/minute", "redis_url": down})
    with TestClient(create_app(settings, real_pipeline)) as client:
        assert [client.post("/v1/ask", json=QUESTION).status_code for _ in range(2)] == [200, 200]


@pytest.mark.model
def test_a_question_arriving_at_a_full_queue_is_refused_before_its_body_is_read(
    real_settings: Settings, real_pipeline: Pipeline
) -> None:
    with TestClient(create_app(real_settings, real_pipeline)) as client:
        gate = AskGate(workers=1, queue=0, timeout_s=5.0)
        client.app.state.gate = gate  # type: ignore[attr-defined]
        assert client.portal is not None
        client.portal.call(gate._slots.acquire_on_behalf_of_nowait, "holder")
        try:
            # Not even JSON: had the body been read, this would be 400 invalid_json.
            refused = client.post(
                "/v1/ask", content=b"{not json", headers={"content-type": "application/json"}
            )
        finally:
            client.portal.call(gate._slots.release_on_behalf_of, "holder")
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "overloaded"
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["request_id"] == refused.headers["x-request-id"]
        assert client.post("/v1/ask", json=QUESTION).status_code == 200  # the slot is free again
