"""The shipped deployment on loopback: two replicas behind deploy/nginx.conf (Debian's nginx).

One built index is shared read-only by two `ragbot serve --no-build` processes; nginx, rendered
from the shipped template, balances between them. One replica is killed (SIGKILL) under load and
no request fails; the proxy cuts off a connection that sends nothing, or trickles its header.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from live_server import free_port
from server_process import ServerProcess, start, stop, wait_ready

from ragbot.api.schemas import AskResponse

NGINX = Path("/usr/sbin/nginx")
TEMPLATE = Path(__file__).resolve().parent.parent / "deploy" / "nginx.conf"
READY_TIMEOUT_S = 180.0  # two replicas load the model at once on a shared two-core machine

THREADS = 4
REQUESTS = 300
KILL_AFTER = 100  # completed requests before one replica is killed


def template_seconds(directive: str) -> float:
    """A `directive Ns;` value of the shipped template, in seconds."""
    found = re.search(rf"^\s*{directive}\s+(\d+)s;", TEMPLATE.read_text(), re.MULTILINE)
    assert found, f"{TEMPLATE} sets no {directive}"
    return float(found.group(1))


def wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float) -> None:
    """Return once 127.0.0.1:port accepts connections; fail if the process exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{what} did not listen on {port} within {timeout} s")


@contextmanager
def replica(settings: Any, log: Path) -> Iterator[ServerProcess]:
    """`ragbot serve --no-build` over the given (already built) index, on a free loopback port;
    started, not waited for, so that two replicas load at once."""
    server = start(
        {
            "RAGBOT_CORPUS_DIR": str(settings.corpus_dir),
            "RAGBOT_INDEX_DIR": str(settings.index_dir),
            # All the load comes from one client (127.0.0.1, forwarded by nginx).
            "RAGBOT_RATE_LIMIT": "",
            "TRANSFORMERS_OFFLINE": "1",
        },
        log,
    )
    try:
        yield server
    finally:
        stop(server.proc)


@dataclass
class Proxy:
    """nginx from the shipped template; its prefix folder holds the pid, logs and temp files."""

    proc: subprocess.Popen[bytes]
    port: int
    prefix: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def access_log(self) -> list[str]:
        return (self.prefix / "access.log").read_text().splitlines()


def logged_requests(proxy: Proxy, expected: int, within_s: float = 5.0) -> dict[str, re.Match[str]]:
    """The proxy's access-log entry of each request, by request id. nginx writes a request's
    line once its response has reached the client, so the last lines may land a moment after
    the load ends: read again until all are there or `within_s` has passed."""
    deadline = time.monotonic() + within_s
    while True:
        log = {
            match.group(1): match
            for line in proxy.access_log()
            if (
                match := re.search(r" (deploy-\d+) upstream=(\S.*?) upstream_status=(\S.*?) ", line)
            )
        }
        if len(log) >= expected or time.monotonic() > deadline:
            return log
        time.sleep(0.05)


def render(listen: str, replica_ports: list[int]) -> str:
    """The shipped template with its two placeholders filled in."""
    servers = "\n        ".join(
        f"server 127.0.0.1:{port} max_fails=2 fail_timeout=5s;" for port in replica_ports
    )
    text = TEMPLATE.read_text()
    assert "{{listen}}" in text and "{{replicas}}" in text
    return text.replace("{{listen}}", listen).replace("{{replicas}}", servers)


@contextmanager
def nginx(prefix: Path, replica_ports: list[int]) -> Iterator[Proxy]:
    """Debian's nginx in the foreground on a free loopback port, stopped on the way out."""
    if not NGINX.is_file():
        pytest.fail(f"{NGINX} is missing: `make servers` installs Debian's nginx")
    port = free_port()
    (prefix / "temp").mkdir(parents=True)
    conf = prefix / "nginx.conf"
    conf.write_text(render(f"127.0.0.1:{port}", replica_ports))
    argv = [str(NGINX), "-c", str(conf), "-p", str(prefix), "-e", str(prefix / "error.log")]
    argv += ["-g", "daemon off;"]
    with (prefix / "stderr.log").open("wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    try:
        try:
            wait_for_port(port, proc, "nginx", timeout=20)
        except (RuntimeError, TimeoutError) as exc:
            errors = (prefix / "error.log").read_text() if (prefix / "error.log").exists() else ""
            pytest.fail(f"{exc}\n{(prefix / 'stderr.log').read_text()}{errors}")
        yield Proxy(proc, port, prefix)
    finally:
        stop(proc)


def questions(repo_root: Path) -> list[str]:
    lines = (repo_root / "ragbot" / "data" / "eval_questions.jsonl").read_text().splitlines()
    return [json.loads(line)["question"] for line in lines if line.strip()]


def test_a_replica_killed_under_load_fails_no_request_behind_the_proxy(
    real_settings: Any, repo_root: Path, tmp_path: Path
) -> None:
    asked = questions(repo_root)
    with ExitStack() as stack:
        first = stack.enter_context(replica(real_settings, tmp_path / "replica-1.log"))
        second = stack.enter_context(replica(real_settings, tmp_path / "replica-2.log"))
        wait_ready(first, READY_TIMEOUT_S)
        wait_ready(second, READY_TIMEOUT_S)
        proxy = stack.enter_context(nginx(tmp_path / "nginx", [first.port, second.port]))

        lock = threading.Lock()
        next_request = 0
        done = 0
        killed = threading.Event()
        after_kill: set[str] = set()  # ids of the requests sent once the replica was dead
        failures: list[str] = []

        def worker() -> None:
            nonlocal next_request, done
            with httpx.Client(base_url=proxy.url, trust_env=False, timeout=60) as client:
                while True:
                    with lock:
                        if next_request >= REQUESTS:
                            return
                        n = next_request
                        next_request += 1
                        request_id = f"deploy-{n}"
                        if killed.is_set():
                            after_kill.add(request_id)
                    try:
                        response = client.post(
                            "/v1/ask",
                            json={"question": asked[n % len(asked)]},
                            headers={"X-Request-ID": request_id},
                        )
                        reply = AskResponse.model_validate_json(response.content)
                        if response.status_code != 200 or not reply.answer:
                            failures.append(f"{request_id}: {response.status_code}")
                    except Exception as exc:  # a failure is counted, not raised in a thread
                        failures.append(f"{request_id}: {exc!r}")
                    with lock:
                        done += 1
                        if done == KILL_AFTER:
                            first.proc.send_signal(signal.SIGKILL)
                            first.proc.wait()
                            killed.set()

        threads = [threading.Thread(target=worker) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=600)
        assert not any(thread.is_alive() for thread in threads), "the load did not finish"
        assert killed.is_set() and first.proc.returncode == -signal.SIGKILL

        assert failures == []
        log = logged_requests(proxy, REQUESTS)
        assert len(log) == REQUESTS
        survivor = f"127.0.0.1:{second.port}"
        victim = f"127.0.0.1:{first.port}"
        # Each request's last attempt is the one that answered.
        answered_by = {rid: m.group(2).split(", ")[-1] for rid, m in log.items()}
        before = [answered_by[rid] for rid in log if rid not in after_kill]
        assert {victim, survivor} <= set(before), "both replicas served before the kill"
        assert after_kill, "requests were sent after the kill"
        assert {answered_by[rid] for rid in after_kill} == {survivor}
        retried = sum(1 for m in log.values() if "," in m.group(2))
        print(
            f"\n{REQUESTS} requests through nginx, {THREADS} threads, replica killed after "
            f"{KILL_AFTER}: 0 failed, {len(after_kill)} sent after the kill (all to the survivor), "
            f"{retried} retried on the other replica"
        )


def closed_within(sock: socket.socket, seconds: float, trickle: bytes = b"") -> float | None:
    """Seconds until the peer closes `sock` (sending `trickle` a byte a second), None if never."""
    started = time.monotonic()
    sock.settimeout(1.0)
    sent = 0
    while time.monotonic() - started < seconds:
        try:
            if sent < len(trickle):
                sock.sendall(trickle[sent : sent + 1])
                sent += 1
            data = sock.recv(4096)
        except TimeoutError:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - started
        if data == b"":
            return time.monotonic() - started
        # nginx may answer a timed-out header with a status line before it closes; read on.
    return None


@pytest.mark.parametrize(
    ("kind", "trickle"),
    [
        ("sends nothing", b""),
        ("trickles its header", b"POST /v1/ask HTTP/1.1\r\nHost: ragbot\r\nX-Slow: " + b"a" * 60),
    ],
)
def test_the_proxy_closes_a_connection_that_sends_nothing_or_trickles_its_header(
    tmp_path: Path, kind: str, trickle: bytes
) -> None:
    timeout = template_seconds("client_header_timeout")
    # No replica is needed: nginx closes the connection before it would pick one.
    with (
        nginx(tmp_path / "nginx", [free_port(), free_port()]) as proxy,
        socket.create_connection(("127.0.0.1", proxy.port)) as sock,
    ):
        seconds = closed_within(sock, 3 * timeout, trickle)
    assert seconds is not None, f"a client that {kind} was still connected after {3 * timeout} s"
    print(f"\nnginx closed a client that {kind} after {seconds:.1f} s (timeout {timeout:.0f} s)")
