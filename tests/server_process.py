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


def ragbot_executable() -> str:
    found = shutil.which("ragbot", path=str(Path(sys.executable).parent))
    assert found, "the ragbot command is not installed beside this Python"
    return found


@contextmanager
def ragbot_serve(env: Mapping[str, str], log: Path) -> Iterator[ServerProcess]:
    """Start `ragbot serve --no-build` on a free loopback port with `env` added; wait for
    /readyz 200; stop it (SIGTERM, then SIGKILL) on the way out."""
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
    server = ServerProcess(proc, port, log)
    try:
        _wait_ready(server)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _wait_ready(server: ServerProcess) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    with server.client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                raise RuntimeError(
                    f"ragbot serve exited with {server.proc.returncode}:\n"
                    + server.log.read_text(errors="replace")[-3000:]
                )
            try:
                if client.get("/readyz").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
    raise TimeoutError("ragbot serve was not ready in time:\n" + server.log.read_text()[-3000:])
