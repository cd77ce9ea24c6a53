"""Prometheus metrics: every metric object, defined once, and the text the /metrics route serves.

The objects count whether or not /metrics is served (an increment is a few nanoseconds).
With several processes (workers or replicas on one host), prometheus-client's multiprocess mode
keeps each process's values in files under PROMETHEUS_MULTIPROC_DIR, and /metrics adds them up,
so any process answers with the totals of all. That directory must be emptied before the
processes start: values left by an earlier run would be counted again.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

# prometheus-client's own variable (read by the library at import time), not a ragbot setting.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST
OTHER_ROUTE = "other"  # every path no route matches: raw paths would make unbounded labels

# Requests take milliseconds (/healthz) to a few seconds (a queued question).
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# One model call encodes a batch of short texts: about 5-50 ms on two cores (README: Benchmarks).
MODEL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)

HTTP_REQUESTS = Counter(
    "ragbot_http_requests",
    "HTTP requests by route template, method and status.",
    ["route", "method", "status"],
)
HTTP_SECONDS = Histogram(
    "ragbot_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template, method and status.",
    ["route", "method", "status"],
    buckets=REQUEST_BUCKETS,
)
REPLIES = Counter(
    "ragbot_replies",
    "Replies to questions (API and Slack) by status and router intent.",
    ["status", "intent"],
)
MODEL_SECONDS = Histogram(
    "ragbot_model_seconds",
    "Time of one call of the query encoder (a batch of texts).",
    buckets=MODEL_BUCKETS,
)
QUEUE_WAIT_SECONDS = Histogram(
    "ragbot_model_queue_wait_seconds",
    "Time a question's texts waited for the encoder thread.",
    buckets=MODEL_BUCKETS,
)
RATE_LIMITED = Counter("ragbot_rate_limited", "Questions refused with 429 (RAGBOT_RATE_LIMIT).")
SHED = Counter("ragbot_shed", "Questions turned away with 503 because the service was busy.")
SLACK_EVENTS = Counter(
    "ragbot_slack_events",
    "Slack requests by outcome: answered (handed to a listener), duplicate (a redelivery "
    "already handled), rejected (bad signature, not a Slack payload, state store down).",
    ["outcome"],
)
# 1 for the build a process serves, 0 for one it served before. Across processes the highest
# value of the live ones: 1 while any running process serves that build.
INDEX_BUILD = Gauge(
    "ragbot_index_build",
    "The index build being served (1) or served before (0), by build id.",
    ["build_id"],
    multiprocess_mode="livemax",
)


def index_build_live(build_id: str, previous: str | None = None) -> None:
    """Record that this process now serves `build_id` (and no longer `previous`)."""
    if previous is not None and previous != build_id:
        INDEX_BUILD.labels(build_id=previous).set(0)
    INDEX_BUILD.labels(build_id=build_id).set(1)


def multiprocess_dir() -> str | None:
    """The shared directory of multiprocess mode, or None when each process counts alone."""
    return os.environ.get(MULTIPROC_ENV) or None


def exposition() -> bytes:
    """All metrics in the Prometheus text format: this process's, or every process's sum."""
    if multiprocess_dir() is None:
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def process_exiting() -> None:
    """Drop this process's live gauges (the build it served) from the shared directory."""
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
