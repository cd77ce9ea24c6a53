"""The real server: `ragbot serve --no-build` on 127.0.0.1, timed to ready, read from /proc."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from prepare import RAGBOT

HOST = "127.0.0.1"  # the benchmark talks to loopback only
READY_TIMEOUT_S = 120.0  # the model loads in ~6 s; a slow shared machine may take far longer
POLL_S = 0.02
STOP_TIMEOUT_S = 15.0
LOG_TAIL_LINES = 30


@dataclass(frozen=True)
class Server:
    """A running server: its process, its port, and seconds from spawn to /readyz 200."""

    proc: subprocess.Popen[bytes]
    port: int
    ready_s: float

    def rss_mb(self) -> float:
        """Resident memory now (VmRSS of /proc/<pid>/status), in MB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
        raise RuntimeError(f"no VmRSS in /proc/{self.proc.pid}/status")

    def cpu_s(self) -> float:
        """User + system CPU seconds the server has used so far (/proc/<pid>/stat)."""
        stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        # The fields after the command name, which may itself hold spaces and parentheses.
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def serve(env: Mapping[str, str], log_path: Path) -> Iterator[Server]:
    """Start `ragbot serve` on a free loopback port with `env` added, wait until /readyz is 200,
    and stop it on the way out; its output goes to log_path."""
    port = free_port()
    argv = [str(RAGBOT), "serve", "--no-build", "--host", HOST, "--port", str(port)]
    with log_path.open("ab") as log:
        started = time.perf_counter()
        proc = subprocess.Popen(
            argv,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_ready(proc, port, log_path)
        yield Server(proc, port, round(time.perf_counter() - started, 3))
    finally:
        stop(proc)


def wait_ready(proc: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
    """Poll GET /readyz until it answers 200; RuntimeError with the log's tail if it never does."""
    deadline = time.perf_counter() + READY_TIMEOUT_S
    with httpx.Client(base_url=f"http://{HOST}:{port}", trust_env=False, timeout=2.0) as client:
        while time.perf_counter() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with {proc.returncode}:\n{tail(log_path)}")
            try:
                if client.get("/readyz").status_code == 200:
                    return
            except httpx.HTTPError:
                pass  # not listening yet
            time.sleep(POLL_S)
    raise RuntimeError(f"the server was not ready in {READY_TIMEOUT_S:.0f} s:\n{tail(log_path)}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (a graceful shutdown), then SIGKILL if it lingers; nothing if it has exited."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def tail(path: Path) -> str:
    """The last lines of a log file."""
    return "\n".join(path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:])
