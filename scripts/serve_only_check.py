"""Prove the serve-only install: a second virtual environment with `pip install .` (no torch, no
sentence-transformers) serves an index built by the full install, on 127.0.0.1.

Run by `make serve-only` (part of `make test`). Prints what it did; exits 1 on any failure.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT_S = 60.0


def run(cmd: list[str], **kwargs: object) -> None:
    """Run a command, echoing it; stop the check when it fails."""
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kwargs)  # type: ignore[call-overload]


def free_port() -> int:
    """A port nothing listens on, on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> int:
    """Build with the full install, serve with the serve-only one, ask, check no torch."""
    work = Path(tempfile.mkdtemp(prefix="ragbot-serve-only-"))
    env = {
        **os.environ,
        "RAGBOT_INDEX_DIR": str(work / "index"),
        "HF_HUB_OFFLINE": "1",
    }
    full = ROOT / ".venv" / "bin"
    run([str(full / "ragbot"), "build-index"], env=env)

    venv = work / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    pip = [str(venv / "bin" / "python"), "-m", "pip", "-q", "--disable-pip-version-check"]
    run([*pip, "install", f"{ROOT}[serve]"])
    probe = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import torch"], capture_output=True, check=False
    )
    if probe.returncode == 0:
        print("FAIL: torch is importable in the serve-only environment", file=sys.stderr)
        return 1
    print("torch is not installed in the serve-only environment", flush=True)

    port = free_port()
    started = time.perf_counter()
    server = subprocess.Popen(
        [str(venv / "bin" / "ragbot"), "serve", "--no-build", "--port", str(port)],
        env=env,
        cwd=work,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(timeout=10) as client:
            deadline = time.monotonic() + READY_TIMEOUT_S
            while True:
                try:
                    if client.get(base + "/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    print("FAIL: the serve-only server never became ready", file=sys.stderr)
                    return 1
                time.sleep(0.1)
            ready_s = time.perf_counter() - started
            reply = client.post(base + "/v1/ask", json={"question": "how long does k last"})
            body = reply.json()
            print(json.dumps({k: body[k] for k in ("status", "answer")})[:300])
            if reply.status_code != 200 or body["status"] != "answered":
                print(f"FAIL: {reply.status_code} {body}", file=sys.stderr)
                return 1
        print(f"serve-only install: ready in {ready_s:.2f} s and answered, without torch")
        return 0
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    raise SystemExit(main())
