"""The load generator: its own process, so that it shares no GIL with the server or the bench.

Closed loop: `concurrency` users each send a request, wait for the reply and send the next, until
`seconds` pass or `max_requests` are sent, through one httpx.AsyncClient with one connection per
user. With `rate`, a single user paces itself to that many requests a second instead (the /healthz
sampler). The parent calls start() and finish(); the child reads the questions as one line of
JSON on stdin and writes its figures as JSON on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

HOST = "127.0.0.1"  # loopback only, whatever the caller asks
REQUEST_TIMEOUT_S = 30.0
MAX_REQUESTS = 100_000  # a bound on any one run, far above what two cores answer in a minute
TARGETS = {"ask": ("POST", "/v1/ask"), "healthz": ("GET", "/healthz")}


@dataclass(frozen=True)
class LoadResult:
    """Latencies of the 200 replies, errors by kind (any other status or a failure), wall time."""

    latencies: list[float]
    errors: dict[str, int]
    wall_s: float


def start(
    port: int,
    target: str,
    questions: Sequence[str],
    concurrency: int,
    seconds: float,
    max_requests: int = MAX_REQUESTS,
    rate: float | None = None,
) -> subprocess.Popen[str]:
    """Start the generator in a child process; finish() collects what it measured."""
    argv = [sys.executable, str(Path(__file__)), str(port), target, str(concurrency)]
    argv += ["--seconds", str(seconds), "--max-requests", str(max_requests)]
    if rate is not None:
        argv += ["--rate", str(rate)]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None
    # One line of JSON, read by the child first thing (so this cannot block for long); the pipe
    # stays open for finish() to close.
    proc.stdin.write(json.dumps(list(questions)) + "\n")
    proc.stdin.flush()
    return proc


def finish(proc: subprocess.Popen[str], seconds: float) -> LoadResult:
    """Wait for the generator (bounded in time) and read its result."""
    try:
        out, _ = proc.communicate(timeout=seconds + REQUEST_TIMEOUT_S + 30)
    except BaseException:  # a timeout or Ctrl-C: leave no generator behind
        proc.kill()
        proc.communicate()
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"the load generator exited with {proc.returncode}")
    return LoadResult(**json.loads(out))


def run(
    port: int,
    target: str,
    questions: Sequence[str],
    concurrency: int,
    seconds: float,
    max_requests: int = MAX_REQUESTS,
) -> LoadResult:
    """start() then finish(): one closed-loop run."""
    proc = start(port, target, questions, concurrency, seconds, max_requests)
    return finish(proc, seconds)


async def generate(
    port: int,
    target: str,
    questions: list[str],
    concurrency: int,
    seconds: float,
    max_requests: int,
    rate: float | None,
) -> LoadResult:
    """Send requests as the users described above; return what came back."""
    method, path = TARGETS[target]
    cycle = itertools.cycle(questions)
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    sent = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=f"http://{HOST}:{port}", limits=limits, timeout=REQUEST_TIMEOUT_S, trust_env=False
    ) as client:
        started = time.perf_counter()
        deadline = started + seconds
        last_done = started

        async def user() -> None:
            nonlocal sent, last_done
            next_at = time.perf_counter()
            while time.perf_counter() < deadline and sent < max_requests:
                sent += 1
                body = {"question": next(cycle)} if method == "POST" else None
                t0 = time.perf_counter()
                try:
                    resp = await client.request(method, path, json=body)
                    if resp.status_code == 200:
                        latencies.append(time.perf_counter() - t0)
                    else:
                        errors[f"HTTP {resp.status_code}"] += 1
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] += 1
                last_done = time.perf_counter()
                if rate:
                    next_at += 1.0 / rate
                    await asyncio.sleep(max(0.0, next_at - time.perf_counter()))

        async with asyncio.timeout(seconds + REQUEST_TIMEOUT_S + 10), asyncio.TaskGroup() as tg:
            for _ in range(concurrency):
                tg.create_task(user())
    return LoadResult(latencies, dict(errors), max(last_done - started, 1e-9))


def main() -> None:
    """The child: arguments from argv, questions from stdin, the result to stdout."""
    p = argparse.ArgumentParser(description="closed-loop HTTP load on 127.0.0.1")
    p.add_argument("port", type=int)
    p.add_argument("target", choices=sorted(TARGETS))
    p.add_argument("concurrency", type=int)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--max-requests", type=int, default=MAX_REQUESTS)
    p.add_argument("--rate", type=float, default=None)
    args = p.parse_args()
    questions = json.loads(sys.stdin.readline()) or ["how does ketamine work"]
    result = asyncio.run(
        generate(
            args.port,
            args.target,
            questions,
            args.concurrency,
            args.seconds,
            min(args.max_requests, MAX_REQUESTS),
            args.rate,
        )
    )
    json.dump(asdict(result), sys.stdout)


if __name__ == "__main__":
    main()
