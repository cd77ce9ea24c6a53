"""What the service does when pushed, in one run, on 127.0.0.1 only (figures, never a verdict):

    .venv/bin/python scripts/bench/resilience.py [--seconds 8] [--json reports/resilience.json]

1. overload: 96 closed-loop clients against the default queue (16 workers, 32 waiting), first
   retrying at once, then waiting the `Retry-After` they are given, as a visitor does
2. rate limit: one client over RAGBOT_RATE_LIMIT=5/minute
3. slow clients: idle connections and header tricklers against RAGBOT_READ_TIMEOUT_S
4. live reload: a new build made under load, picked up by the interval and by SIGHUP

Killed replicas behind nginx and Slack retries across restarts and replicas are proved by
tests/test_deploy.py and tests/test_slack.py; the README's table cites both.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from figures import summary_ms
from prepare import RAGBOT, ensure_index, question_set
from server import HOST, Server, serve

from ragbot.config import Settings

QUESTION = "How long do the effects of ketamine last?"


def closed_loop(
    server: Server,
    clients: int,
    seconds: float,
    question: Callable[[int], str],
    until: threading.Event | None = None,
    wait_retry_after: bool = False,
) -> list[tuple[int, float]]:
    """(status, seconds) of every POST /v1/ask from `clients` threads for `seconds`, or until
    the event is set, whichever comes first. With `wait_retry_after`, a client told to come back
    later (429, 503) waits the `Retry-After` it was given before its next question."""
    results: list[tuple[int, float]] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds
    halt = until if until is not None else threading.Event()

    def worker(n: int) -> None:
        with httpx.Client(
            base_url=f"http://{HOST}:{server.port}", trust_env=False, timeout=60
        ) as c:
            i = n
            while time.monotonic() < stop and not halt.is_set():
                started = time.perf_counter()
                wait = 0.0
                try:
                    response = c.post("/v1/ask", json={"question": question(i)})
                    status = response.status_code
                    if wait_retry_after and status in (429, 503):
                        wait = float(response.headers.get("retry-after", 0))
                except httpx.HTTPError:
                    status = 0
                with lock:
                    results.append((status, time.perf_counter() - started))
                i += clients
                halt.wait(min(wait, max(0.0, stop - time.monotonic())))

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(worker, range(clients)))
    return results


def overload(
    env: dict[str, str], log: Path, seconds: float, wait_retry_after: bool = False
) -> dict[str, Any]:
    questions, _ = question_set()
    with serve({**env, "RAGBOT_RATE_LIMIT": ""}, log) as server:
        health: list[float] = []
        done = threading.Event()

        def probe() -> None:
            with httpx.Client(base_url=f"http://{HOST}:{server.port}", trust_env=False) as c:
                while not done.is_set():
                    started = time.perf_counter()
                    c.get("/healthz")
                    health.append(time.perf_counter() - started)
                    time.sleep(0.1)

        prober = threading.Thread(target=probe)
        prober.start()
        results = closed_loop(
            server,
            96,
            seconds,
            lambda i: questions[i % len(questions)],
            wait_retry_after=wait_retry_after,
        )
        done.set()
        prober.join()
    statuses = Counter(s for s, _ in results)
    return {
        "clients": 96,
        "wait_retry_after": wait_retry_after,
        "statuses": dict(statuses),
        "answered": summary_ms([t for s, t in results if s == 200]),
        "shed_503": summary_ms([t for s, t in results if s == 503]),
        "healthz": summary_ms(health),
        "answers_per_s": round(statuses[200] / seconds, 1),
    }


def rate_limit(env: dict[str, str], log: Path) -> dict[str, Any]:
    with serve({**env, "RAGBOT_RATE_LIMIT": "5/minute"}, log) as server:
        results = []
        with httpx.Client(base_url=f"http://{HOST}:{server.port}", trust_env=False) as c:
            for _ in range(10):
                started = time.perf_counter()
                response = c.post("/v1/ask", json={"question": QUESTION})
                results.append((response.status_code, time.perf_counter() - started))
                retry_after = response.headers.get("retry-after")
    return {
        "statuses": [s for s, _ in results],
        "limited_429": summary_ms([t for s, t in results if s == 429]),
        "last_retry_after_s": retry_after,
    }


def slow_clients(env: dict[str, str], log: Path, timeout_s: float) -> dict[str, Any]:
    with serve({**env, "RAGBOT_READ_TIMEOUT_S": str(timeout_s)}, log) as server:
        socks: list[tuple[str, socket.socket, float]] = []
        for i in range(300):
            sock = socket.create_connection((HOST, server.port))
            sock.setblocking(False)
            kind = "idle" if i % 2 == 0 else "trickle"
            if kind == "trickle":
                sock.send(b"POST /v1/ask HTTP/1.1\r\nHost: x\r\n")
            socks.append((kind, sock, time.monotonic()))
        closed: dict[int, float] = {}
        deadline = time.monotonic() + 4 * timeout_s + 5
        while len(closed) < len(socks) and time.monotonic() < deadline:
            for n, (kind, sock, opened) in enumerate(socks):
                if n in closed:
                    continue
                try:
                    if kind == "trickle":
                        sock.send(b"X")
                    if sock.recv(1) == b"":
                        closed[n] = time.monotonic() - opened
                except BlockingIOError:
                    pass
                except OSError:
                    closed[n] = time.monotonic() - opened
            time.sleep(0.25)
        for _, sock, _ in socks:
            sock.close()
    by_kind = {
        kind: summary_ms(
            [closed[n] for n, (k, _, _) in enumerate(socks) if k == kind and n in closed]
        )
        for kind in ("idle", "trickle")
    }
    return {"timeout_s": timeout_s, "connections": len(socks), "closed": len(closed), **by_kind}


def live_reload(env: dict[str, str], log: Path, index_dir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "index"
        shutil.copytree(index_dir, copy, symlinks=True)
        env = {**env, "RAGBOT_INDEX_DIR": str(copy), "RAGBOT_RATE_LIMIT": ""}
        for how in ("interval", "sighup"):
            interval = "5" if how == "interval" else "0"
            with serve({**env, "RAGBOT_RELOAD_INTERVAL_S": interval}, log) as server:
                results: list[tuple[int, float]] = []
                finished = threading.Event()

                def run(
                    into: list[tuple[int, float]] = results, done: threading.Event = finished
                ) -> None:
                    into.extend(closed_loop(server, 4, 120.0, lambda i: QUESTION, done))

                load = threading.Thread(target=run)
                old = build_id(server)
                load.start()
                subprocess.run(
                    [str(RAGBOT), "build-index"],
                    env={**os.environ, **env},
                    check=True,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                built = time.monotonic()
                if how == "sighup":
                    server.proc.send_signal(signal.SIGHUP)
                while build_id(server) == old and time.monotonic() - built < 60:
                    time.sleep(0.05)
                live_after = time.monotonic() - built
                time.sleep(1.0)  # some answers from the new build too
                finished.set()
                load.join()
                statuses = Counter(s for s, _ in results)
                out[how] = {
                    "live_after_build_s": round(live_after, 2),
                    "requests": len(results),
                    "failed": sum(n for s, n in statuses.items() if s != 200),
                }
    return out


def build_id(server: Server) -> str:
    with httpx.Client(base_url=f"http://{HOST}:{server.port}", trust_env=False) as c:
        return str(c.get("/readyz").json()["index"]["build_id"])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--json", type=Path, default=Path("reports") / "resilience.json")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    settings = Settings()
    ensure_index(settings)
    env = {"RAGBOT_INDEX_DIR": str(settings.index_dir)}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    log = args.json.with_name("resilience-server.log")
    log.write_text("")
    report = {
        "overload": overload(env, log, args.seconds),
        "overload_waiting_retry_after": overload(env, log, args.seconds, wait_retry_after=True),
        "rate_limit": rate_limit(env, log),
        "slow_clients": slow_clients(env, log, settings.read_timeout_s),
        "live_reload": live_reload(env, log, settings.index_dir),
    }
    print(json.dumps(report, indent=1))
    args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
