"""`ragbot serve` as a real process on 127.0.0.1, for tests of what only a process shows:
connection deadlines, signals, live index reloads."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from live_server import free_port

READY_TIMEOUT_S = 90.0  # a loaded, shared machine can take long to import and load


@dataclass(frozen=True)
class ServerProcess:
    """A running `ragbot serve`: its process, its port and its log file."""

    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, trust_env=False, timeout=timeout)

    def build_id(self) -> str:
        with self.client() as client:
            response = client.get("/readyz")
        assert response.status_code == 200, response.text
        return str(response.json()["index"]["build_id"])

    def ready(self) -> dict[str, object]:
        with self.client() as client:
            data: dict[str, object] = client.get("/readyz").json()
            return data

    def hup(self) -> None:
        self.proc.send_signal(signal.SIGHUP)

    def tail(self) -> str:
        """The last lines of its log."""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])


def ragbot_executable() -> str:
    found = shutil.which("ragbot", path=str(Path(sys.executable).parent))
    assert found, "the ragbot command is not installed beside this Python"
    return found


def start(env: Mapping[str, str], log: Path) -> ServerProcess:
    """Spawn `ragbot serve --no-build` on a free loopback port with `env` added; not yet ready."""
    port = free_port()
    argv = [ragbot_executable(), "serve", "--no-build", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return ServerProcess(proc, port, log)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it lingers; always reaped."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.wait()


@contextmanager
def ragbot_serve(env: Mapping[str, str], log: Path) -> Iterator[ServerProcess]:
    """A started `ragbot serve`, ready (/readyz 200) on entry and stopped on the way out."""
    server = start(env, log)
    try:
        wait_ready(server)
        yield server
    finally:
        stop(server.proc)


def wait_ready(server: ServerProcess, timeout: float = READY_TIMEOUT_S) -> None:
    """Poll /readyz until 200; RuntimeError with the log's tail if the process exits, or
    TimeoutError."""
    deadline = time.monotonic() + timeout
    with server.client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                raise RuntimeError(
                    f"ragbot serve exited with {server.proc.returncode}:\n" + server.tail()
                )
            try:
                if client.get("/readyz").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
    raise TimeoutError(f"ragbot serve on {server.port} was not ready in time:\n" + server.tail())
