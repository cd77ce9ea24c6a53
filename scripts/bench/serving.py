"""Parts 2 to 4 on one server: cold start and memory, HTTP overhead at c=1, load at each level."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import loadgen
from figures import share, summary_ms
from server import Server, serve

WARM_UP_REQUESTS = 40
WARM_UP_CONCURRENCY = 4
OVERHEAD_LIMIT_S = 60.0  # one pass over the questions at c=1 takes ~10 s; this only bounds it
HEALTHZ_REQUESTS = 300
SAMPLER_RATE_HZ = 10.0  # /healthz samples a second during the highest level


def measure(
    questions: Sequence[str],
    levels: Sequence[int],
    seconds: float,
    in_process_p50_ms: float | None,
    env: Mapping[str, str],
    log_path: Path,
) -> dict[str, Any]:
    """Start the server once and measure parts 2, 3 and 4 on it, in that order."""
    print("server: starting `ragbot serve --no-build`", file=sys.stderr)
    with serve(env, log_path) as server:
        warm_up(server, questions)
        rss_warm = server.rss_mb()
        print("server: HTTP overhead at c=1", file=sys.stderr)
        overhead = http_overhead(server, questions, in_process_p50_ms)
        load = []
        for concurrency in levels:
            print(f"server: load at c={concurrency} for {seconds:g} s", file=sys.stderr)
            load.append(level(server, questions, concurrency, seconds, concurrency == max(levels)))
        rss_loaded = server.rss_mb()
    return {
        "cold_start": {
            "ready_s": server.ready_s,
            "rss_after_warm_up_mb": rss_warm,
            "rss_after_load_mb": rss_loaded,
        },
        "http_overhead": overhead,
        "load": load,
    }


def warm_up(server: Server, questions: Sequence[str]) -> None:
    """A few requests first, so that first-call costs stay out of the figures."""
    loadgen.run(server.port, "ask", questions, WARM_UP_CONCURRENCY, 60.0, WARM_UP_REQUESTS)


def http_overhead(
    server: Server, questions: Sequence[str], in_process_p50_ms: float | None
) -> dict[str, Any]:
    """At c=1, p50 of POST /v1/ask (each question once) and of GET /healthz, and
    (ask p50 − healthz p50) ÷ the in-process ask() p50 over the same questions."""
    ask = loadgen.run(server.port, "ask", questions, 1, OVERHEAD_LIMIT_S, len(questions))
    health = loadgen.run(server.port, "healthz", [], 1, OVERHEAD_LIMIT_S, HEALTHZ_REQUESTS)
    ask_ms, health_ms = summary_ms(ask.latencies), summary_ms(health.latencies)
    ask_p50, health_p50 = ask_ms["p50_ms"], health_ms["p50_ms"]
    beyond = None if ask_p50 is None or health_p50 is None else ask_p50 - health_p50
    return {
        "ask": {**ask_ms, "errors": sum(ask.errors.values())},
        "healthz": {**health_ms, "errors": sum(health.errors.values())},
        "in_process_ask_p50_ms": in_process_p50_ms,
        "ask_minus_healthz_over_in_process": share(beyond, in_process_p50_ms),
    }


def level(
    server: Server,
    questions: Sequence[str],
    concurrency: int,
    seconds: float,
    sample_healthz: bool = False,
) -> dict[str, Any]:
    """Closed-loop POST /v1/ask at one concurrency: answers/s, latency, errors, the server's CPU
    (100 % is one core); with sample_healthz, /healthz latency from a second process alongside."""
    sampler = None
    if sample_healthz:
        sampler = loadgen.start(server.port, "healthz", [], 1, seconds, rate=SAMPLER_RATE_HZ)
    cpu_before = server.cpu_s()
    try:
        load = loadgen.run(server.port, "ask", questions, concurrency, seconds)
    except BaseException:
        if sampler is not None:
            sampler.kill()
            sampler.wait()
        raise
    cpu = server.cpu_s() - cpu_before
    out: dict[str, Any] = {
        "concurrency": concurrency,
        "answers_per_s": round(len(load.latencies) / load.wall_s, 1),
        **summary_ms(load.latencies),
        "errors": sum(load.errors.values()),
        "error_kinds": load.errors,
        "server_cpu_pct": round(100 * cpu / load.wall_s),
    }
    if sampler is not None:
        health = loadgen.finish(sampler, seconds)
        out["healthz"] = {**summary_ms(health.latencies), "errors": sum(health.errors.values())}
    return out
