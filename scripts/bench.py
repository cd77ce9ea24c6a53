"""Benchmark the real ragbot server: cold start, memory, the embedding floor and HTTP latency.

One run starts `python -m ragbot.cli serve` on 127.0.0.1 and a free port, times it to ready,
drives POST /v1/ask at each concurrency for --seconds while a separate process probes /healthz,
reads the server's memory, stops it, then measures the model and Pipeline.ask in-process (the
floor the HTTP figures are compared with). `--workers-compare` also runs one level against
`uvicorn --workers 2`, beside `ragbot serve`'s one worker: throughput, latency and memory.

    python scripts/bench.py [--seconds 20] [--concurrency 1,8,32] [--json PATH] [--markdown]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import itertools
import json
import multiprocessing
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"  # the benchmark never talks to anything but loopback
READY_TIMEOUT_S = 300.0  # a first start may build the index
REQUEST_TIMEOUT_S = 30.0
PROBE_RATE_HZ = 10.0
PROBE_TIMEOUT_S = 5.0
HEALTHZ_FAST_P95_MS = 50.0  # what "the event loop stays free" means here
LATENCY_TARGET_RATIO = 2.0  # HTTP p50 at c=1 within 2x of the raw embedding p50
COMPARE_CONCURRENCY = 8
WARMUP_REQUESTS = 24
EMBED_ROUNDS = 2  # passes over the question list per torch thread count
NOISE_CPU_PCT = 15.0  # CPU (% of one core) other processes may use before the figures are suspect


# ---------------------------------------------------------------------------------------------
# Figures


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of unsorted values; nan when empty."""
    if not values:
        return float("nan")
    data = sorted(values)
    pos = (len(data) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def summary_ms(seconds: Sequence[float]) -> dict[str, float | int]:
    """n, p50, p95, p99, max and mean of durations given in seconds, in milliseconds."""
    ms = [s * 1000.0 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 2),
        "p95_ms": round(percentile(ms, 95), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(max(ms), 2) if ms else float("nan"),
        "mean_ms": round(sum(ms) / len(ms), 2) if ms else float("nan"),
    }


# ---------------------------------------------------------------------------------------------
# Questions


def load_questions(count: int, seed: int) -> tuple[list[str], Counter[str]]:
    """About `count` questions from the shipped eval set, every category in proportion, shuffled."""
    text = resources.files("ragbot.data").joinpath("eval_questions.jsonl").read_text("utf-8")
    by_category: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.strip():
            row = json.loads(line)
            by_category.setdefault(row.get("category", "?"), []).append(row["question"])
    total = sum(len(v) for v in by_category.values())
    rng = random.Random(seed)
    chosen: list[tuple[str, str]] = []
    for category, questions in sorted(by_category.items()):
        take = max(1, round(count * len(questions) / total))
        rng.shuffle(questions)
        chosen += [(category, q) for q in questions[:take]]
    rng.shuffle(chosen)
    return [q for _, q in chosen], Counter(c for c, _ in chosen)


# ---------------------------------------------------------------------------------------------
# Processes: the server, its memory and CPU


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def process_tree(root: int) -> list[int]:
    """root and its descendants (uvicorn --workers spawns its workers as children)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def memory(root: int) -> dict[str, Any]:
    """VmRSS, VmHWM and Pss (MB) summed over the server's process tree, and per process."""
    procs = []
    for pid in process_tree(root):
        try:
            procs.append(
                {
                    "pid": pid,
                    "rss_mb": round(_status_kb(pid, "VmRSS") / 1024, 1),
                    "hwm_mb": round(_status_kb(pid, "VmHWM") / 1024, 1),
                    "pss_mb": round(_pss_kb(pid) / 1024, 1),
                }
            )
        except OSError:
            continue
    return {
        "rss_mb": round(sum(p["rss_mb"] for p in procs), 1),
        "hwm_mb": round(sum(p["hwm_mb"] for p in procs), 1),
        "pss_mb": round(sum(p["pss_mb"] for p in procs), 1),
        "processes": procs,
    }


def cpu_seconds(root: int) -> dict[int, float]:
    """User + system CPU seconds used so far by each process of the server's tree."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for pid in process_tree(root):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        out[pid] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return out


def system_busy_seconds() -> float:
    """CPU seconds all processes have used (every core), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


def http_get(port: int, path: str, timeout: float) -> int:
    """Status of a GET on a fresh connection, as a probe (a kubelet, a load balancer) makes it."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


class Server:
    """A server subprocess in its own session, so that stopping it stops its workers too."""

    def __init__(self, argv: list[str], port: int, env: dict[str, str], workers: int = 1) -> None:
        self.argv = argv
        self.port = port
        self.env = env
        self.workers = workers
        self.lines: list[str] = []
        self.started_apps = 0
        self.proc: subprocess.Popen[str] | None = None
        self.spawned_at = 0.0
        self.timing: dict[str, float] = {}

    def start(self) -> None:
        """Spawn the process and drain its log in a thread (a full pipe would block it)."""
        self.spawned_at = time.perf_counter()
        self.proc = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            if "Application startup complete" in line:
                self.started_apps += 1

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> dict[str, float]:
        """Seconds from spawn to the first HTTP answer and to /readyz 200 (in every worker)."""
        assert self.proc is not None
        first_answer = None
        deadline = self.spawned_at + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise ServerDied(self.proc.returncode, self.lines[-30:])
            try:
                status = http_get(self.port, "/readyz", timeout=2.0)
            except OSError:
                status = 0
            now = time.perf_counter() - self.spawned_at
            if status and first_answer is None:
                first_answer = now
            if status == 200 and self.started_apps >= self.workers:
                return {"first_response_s": round(first_answer or now, 3), "ready_s": round(now, 3)}
            time.sleep(0.025)
        raise TimeoutError(
            f"server not ready after {timeout:.0f} s:\n" + "\n".join(self.lines[-30:])
        )

    def stop(self) -> None:
        """SIGTERM to the session (graceful), SIGKILL if it lingers; idempotent."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    return
                try:
                    self.proc.wait(wait)
                    return
                except subprocess.TimeoutExpired:
                    continue
        except KeyboardInterrupt:
            os.killpg(self.proc.pid, signal.SIGKILL)
            raise


class ServerDied(RuntimeError):
    """The server exited before it was ready."""

    def __init__(self, code: int, tail: list[str]) -> None:
        super().__init__(f"server exited with code {code}:\n" + "\n".join(tail))
        self.code = code


def ensure_index(env: dict[str, str]) -> bool:
    """Run `ragbot build-index` when there is no index; True when it ran."""
    from ragbot.config import Settings

    current = Settings().index_dir / "current"
    if (current / "manifest.json").exists():
        return False
    print(f"no index in {current.parent}: running `ragbot build-index`", file=sys.stderr)
    subprocess.run(
        [sys.executable, "-m", "ragbot.cli", "build-index"], cwd=ROOT, env=env, check=True
    )
    return True


def start_server(argv: list[str], port: int, env: dict[str, str], workers: int = 1) -> Server:
    """Start and wait for ready; a stale index (exit 3) is rebuilt once and the start retried."""
    for attempt in range(2):
        server = Server(argv, port, env, workers)
        server.start()
        try:
            server.timing = server.wait_ready()
            return server
        except ServerDied as exc:
            server.stop()
            if exc.code != 3 or attempt:
                raise
            print("the index is stale or mismatched: running `ragbot build-index`", file=sys.stderr)
            subprocess.run(
                [sys.executable, "-m", "ragbot.cli", "build-index"], cwd=ROOT, env=env, check=True
            )
        except BaseException:
            server.stop()
            raise
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------------------------------
# Load and probes


def probe(port: int, seconds: float, rate: float, start_at: float = 0.0) -> tuple[list[float], int]:
    """GET /healthz `rate` times a second for `seconds` from time.time() `start_at`.

    Returns the latencies and the number of failures (an error, a timeout or not 200).
    """
    time.sleep(max(0.0, start_at - time.time()))
    latencies: list[float] = []
    failures = 0
    interval = 1.0 / rate
    start = time.perf_counter()
    next_at = start
    while time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        try:
            ok = http_get(port, "/healthz", PROBE_TIMEOUT_S) == 200
        except OSError:
            ok = False
        latencies.append(time.perf_counter() - t0)
        failures += not ok
        next_at += interval
        time.sleep(max(0.0, next_at - time.perf_counter()))
    return latencies, failures


def _probe_to_pipe(conn: Any, *args: Any) -> None:
    conn.send(probe(*args))
    conn.close()


class Prober:
    """probe() in its own process, so the load generator's event loop and GIL cannot slow it."""

    def __init__(self, port: int, seconds: float, start_at: float) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._recv, send = ctx.Pipe(duplex=False)
        self._proc = ctx.Process(
            target=_probe_to_pipe,
            args=(send, port, seconds, PROBE_RATE_HZ, start_at),
            daemon=True,
        )
        self._proc.start()
        send.close()

    def result(self, timeout: float) -> dict[str, Any]:
        """The probes' latency summary and failure count."""
        if not self._recv.poll(timeout):
            self.kill()
            return {**summary_ms([]), "failures": 0, "error": "the prober did not report"}
        latencies, failures = self._recv.recv()
        self._proc.join(5)
        return {**summary_ms(latencies), "failures": failures}

    def kill(self) -> None:
        """Stop the prober process (idempotent)."""
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5)


async def _load(
    port: int,
    questions: list[str],
    concurrency: int,
    seconds: float,
    max_requests: int,
    keepalive: bool = True,
) -> dict[str, Any]:
    import httpx

    latencies: list[float] = []
    by_status: dict[str, list[float]] = {}
    errors: Counter[str] = Counter()
    cycle = itertools.cycle(questions)
    sent = 0
    # keepalive=False: a new connection per request, so that every request is accepted afresh
    # (with keep-alive, which uvicorn worker accepted a connection decides where all its requests go).
    limits = httpx.Limits(
        max_connections=concurrency, max_keepalive_connections=concurrency if keepalive else 0
    )
    async with httpx.AsyncClient(
        base_url=f"http://{HOST}:{port}", limits=limits, trust_env=False, timeout=REQUEST_TIMEOUT_S
    ) as client:
        started = time.perf_counter()
        deadline = started + seconds
        last_done = started

        async def user() -> None:
            nonlocal sent, last_done
            while time.perf_counter() < deadline and sent < max_requests:
                sent += 1
                question = next(cycle)
                t0 = time.perf_counter()
                try:
                    resp = await client.post("/v1/ask", json={"question": question})
                    status = resp.json().get("status") if resp.status_code == 200 else None
                except (httpx.HTTPError, ValueError) as exc:
                    errors[type(exc).__name__] += 1
                    continue
                elapsed = time.perf_counter() - t0
                last_done = time.perf_counter()
                if status is None:
                    errors[f"HTTP {resp.status_code}"] += 1
                    continue
                latencies.append(elapsed)
                by_status.setdefault(status, []).append(elapsed)

        async with asyncio.timeout(seconds + REQUEST_TIMEOUT_S + 10), asyncio.TaskGroup() as tg:
            for _ in range(concurrency):
                tg.create_task(user())
        wall = max(last_done - started, 1e-9)
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": sum(errors.values()),
        "error_kinds": dict(errors),
        "seconds": round(wall, 2),
        "rps": round(len(latencies) / wall, 1),
        **{k: v for k, v in summary_ms(latencies).items() if k != "n"},
        "by_status": {
            k: {"n": len(v), "p50_ms": round(percentile(v, 50) * 1000, 2)}
            for k, v in sorted(by_status.items())
        },
    }


def run_level(
    server: Server,
    questions: list[str],
    concurrency: int,
    seconds: float,
    max_requests: int,
    probe_healthz: bool = False,
    keepalive: bool = True,
) -> dict[str, Any]:
    """One load level, with server and client CPU use; /healthz probed alongside when asked."""
    # The prober's interpreter needs a moment to start; load and probes then begin together.
    start_at = time.time() + (1.0 if probe_healthz else 0.0)
    prober = Prober(server.port, seconds, start_at) if probe_healthz else None
    try:
        time.sleep(max(0.0, start_at - time.time()))
        cpu0, client0, busy0 = cpu_seconds(server.pid), time.process_time(), system_busy_seconds()
        wall0 = time.perf_counter()
        result = asyncio.run(
            _load(server.port, questions, concurrency, seconds, max_requests, keepalive)
        )
        wall = time.perf_counter() - wall0
        cpu1 = cpu_seconds(server.pid)
        per_process = {pid: cpu1[pid] - cpu0.get(pid, 0.0) for pid in cpu1}
        server_s, client_s = sum(per_process.values()), time.process_time() - client0
        result["keepalive"] = keepalive
        result["server_cpu_pct"] = round(100 * server_s / wall, 1)
        # How the work spread over the processes (uvicorn --workers: is one worker idle?).
        result["process_cpu_pct"] = sorted(
            (round(100 * v / wall) for v in per_process.values() if v / wall > 0.02), reverse=True
        )
        result["client_cpu_pct"] = round(100 * client_s / wall, 1)
        # Everything else on the machine (the /healthz prober is a few % of this).
        other = system_busy_seconds() - busy0 - server_s - client_s
        result["other_cpu_pct"] = round(max(0.0, 100 * other / wall), 1)
        if prober is not None:
            result["healthz"] = prober.result(timeout=seconds + 30)
    finally:
        if prober is not None:
            prober.kill()
    return result


def warm_up(server: Server, questions: list[str]) -> None:
    """A few requests of every kind, so that first-call costs stay out of the figures."""
    asyncio.run(_load(server.port, questions[:WARMUP_REQUESTS], 4, 60.0, WARMUP_REQUESTS))


# ---------------------------------------------------------------------------------------------
# In-process: the floor


def time_calls(fn: Callable[[str], object], questions: Sequence[str]) -> list[float]:
    """Duration of fn(q) for each question."""
    out = []
    for q in questions:
        t0 = time.perf_counter()
        fn(q)
        out.append(time.perf_counter() - t0)
    return out


def in_process(questions: list[str]) -> dict[str, Any]:
    """embed([q]) at each torch thread count, Pipeline.ask(), and ask() stage by stage."""
    import torch

    import ragbot.pipeline as pipeline_module
    from ragbot.config import Settings
    from ragbot.pipeline import Pipeline, load_embedder

    settings = Settings()
    own0, busy0, wall0 = time.process_time(), system_busy_seconds(), time.perf_counter()
    torch_default = torch.get_num_threads()
    t0 = time.perf_counter()
    embedder = load_embedder(settings)
    load_s = time.perf_counter() - t0
    served_threads = torch.get_num_threads()  # the embedder may set it (RAGBOT_TORCH_THREADS)
    embed_one = lambda q: embedder.embed([q])  # noqa: E731
    for q in questions[:10]:
        embed_one(q)

    samples: dict[int, list[float]] = {}
    for _, threads in itertools.product(range(EMBED_ROUNDS), sorted({1, 2, served_threads})):
        torch.set_num_threads(threads)
        for q in questions[:5]:  # resizing the OpenMP pool makes the next call slow
            embed_one(q)
        samples.setdefault(threads, []).extend(time_calls(embed_one, questions))
    torch.set_num_threads(served_threads)

    t0 = time.perf_counter()
    pipeline = Pipeline.load(settings, embedder=embedder)
    pipeline_s = time.perf_counter() - t0
    for q in questions[:10]:
        pipeline.ask(q)
    ask = time_calls(pipeline.ask, questions)

    # Where ask() spends its time: the same calls, each wrapped with a timer.
    stages: dict[str, list[float]] = {}

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                stages.setdefault(name, []).append(time.perf_counter() - t)

        return wrapper

    original_compose = pipeline_module.compose
    pipeline.embed_queries = timed("embed_queries", pipeline.embed_queries)  # type: ignore[method-assign]
    pipeline.retriever.retrieve = timed("retriever.retrieve", pipeline.retriever.retrieve)  # type: ignore[method-assign]
    pipeline_module.compose = timed("compose", original_compose)
    try:
        stages["ask (total)"] = time_calls(pipeline.ask, questions)
    finally:
        pipeline_module.compose = original_compose
    calls = len(questions)
    stage_summary = {
        name: {**summary_ms(v), "calls": len(v), "ms_per_ask": round(1000 * sum(v) / calls, 2)}
        for name, v in stages.items()
    }
    # Validation, the log line, and any stage this breakdown does not know by name.
    rest = sum(stages["ask (total)"]) - sum(sum(v) for k, v in stages.items() if k != "ask (total)")
    stage_summary["rest"] = {"calls": calls, "ms_per_ask": round(1000 * rest / calls, 2)}
    wall = time.perf_counter() - wall0
    other = system_busy_seconds() - busy0 - (time.process_time() - own0)
    return {
        "other_cpu_pct": round(max(0.0, 100 * other / wall), 1),
        "torch": torch.__version__,
        "torch_default_threads": torch_default,
        "served_threads": served_threads,
        "model_load_s": round(load_s, 2),
        "pipeline_load_s": round(pipeline_s, 2),
        "embed": {**summary_ms(samples[served_threads]), "threads": served_threads},
        "embed_by_threads": {str(t): summary_ms(v) for t, v in sorted(samples.items())},
        "ask": summary_ms(ask),
        "ask_stages": stage_summary,
    }


# ---------------------------------------------------------------------------------------------
# Reports


def fmt(value: Any, digits: int = 1) -> str:
    if isinstance(value, list):
        return "/".join(str(v) for v in value)
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def json_safe(value: Any) -> Any:
    """The report with NaN (an empty sample) as null, which JSON can hold."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and value != value:
        return None
    return value


def text_report(r: dict[str, Any]) -> str:
    m, s, ip, v = r["meta"], r["server"], r["in_process"], r["verdicts"]
    w, ld = s["warm"], s["loaded"]
    cats = ", ".join(f"{k} {n}" for k, n in sorted(r["questions"].items()))
    lines = [
        f"ragbot benchmark  {m['date']}  {m['cpus']} CPUs  python {m['python']}  "
        f"torch {ip['torch']}",
        f"questions: {sum(r['questions'].values())} ({cats}); {m['seconds']:g} s per level",
        "",
        "server: 1 uvicorn worker (`python -m ragbot.cli serve --no-build`)",
        f"  cold start to /readyz 200   {s['ready_s']:.2f} s   "
        f"(first HTTP answer {s['first_response_s']:.2f} s)",
        f"  RSS after warm-up           {w['rss_mb']:.0f} MB  (peak {w['hwm_mb']:.0f} MB)",
        f"  RSS after load              {ld['rss_mb']:.0f} MB  (peak {ld['hwm_mb']:.0f} MB)",
        "",
        f"in-process: model import + load {ip['model_load_s']:.1f} s, "
        f"other processes' CPU {ip['other_cpu_pct']:.0f} %",
        "                                 n      p50      p95   ms",
    ]
    for threads, e in ip["embed_by_threads"].items():
        mark = "  <- as served: the floor" if int(threads) == ip["served_threads"] else ""
        lines.append(
            f"  embed([q]), torch {threads} thread{'s' if threads != '1' else ' '}  "
            f"{e['n']:4d}  {e['p50_ms']:7.2f}  {e['p95_ms']:7.2f}{mark}"
        )
    a = ip["ask"]
    lines.append(
        f"  Pipeline.ask()              {a['n']:4d}  {a['p50_ms']:7.2f}  {a['p95_ms']:7.2f}"
    )
    for name, st in ip["ask_stages"].items():
        if name == "rest":
            lines.append(
                f"    {'rest':<22} {'':4}  {'':7}  {'':7}   ({st['ms_per_ask']:.2f} ms per ask)"
            )
        elif name != "ask (total)":
            lines.append(
                f"    {name:<22} {st['calls']:4d}  {st['p50_ms']:7.2f}  {st['p95_ms']:7.2f}"
                f"   ({st['ms_per_ask']:.2f} ms per ask)"
            )
    lines += [
        "",
        "HTTP POST /v1/ask (httpx, keep-alive)",
        "  conc  requests  errors   req/s     p50     p95     p99     max"
        "   server CPU  client CPU  other CPU",
    ]
    for lv in r["http"]:
        lines.append(
            f"  {lv['concurrency']:4d}  {lv['requests']:8d}  {lv['errors']:6d}  {lv['rps']:6.1f}  "
            f"{lv['p50_ms']:6.1f}  {lv['p95_ms']:6.1f}  {lv['p99_ms']:6.1f}  {lv['max_ms']:6.1f}"
            f"   {lv['server_cpu_pct']:7.0f} %   {lv['client_cpu_pct']:7.0f} %"
            f"  {lv['other_cpu_pct']:6.0f} %"
        )
    h, hi = r["healthz"]["under_load"], r["healthz"]["idle"]
    lines += [
        f"  (ms; CPU in % of one core, {m['cpus']} cores in all; the client shares them)",
        "",
        f"GET /healthz, fresh connection each, {PROBE_RATE_HZ:g}/s from its own process",
        f"  idle                 n {hi['n']:4d}  p50 {hi['p50_ms']:6.2f}  p95 {hi['p95_ms']:6.2f}  "
        f"max {hi['max_ms']:7.2f} ms  failures {hi['failures']}",
        f"  /v1/ask at c={r['healthz']['concurrency']:<3d}     n {h['n']:4d}  "
        f"p50 {h['p50_ms']:6.2f}  p95 {h['p95_ms']:6.2f}  max {h['max_ms']:7.2f} ms  "
        f"failures {h['failures']}",
        "",
        "verdicts",
        f"  HTTP p50 at c=1 / embed p50 = {v['ratio']:.2f}x (target <= {LATENCY_TARGET_RATIO:g}x)"
        f"  {'PASS' if v['ratio_ok'] else 'FAIL'}"
        f"   [HTTP {v['http_p50_c1_ms']:.1f} ms, ask {ip['ask']['p50_ms']:.1f} ms, "
        f"embed {ip['embed']['p50_ms']:.1f} ms]",
        f"  errors at c={v['max_concurrency']}: {v['errors_at_max']}  "
        f"{'PASS' if v['zero_errors_at_max'] else 'FAIL'}",
        f"  /healthz p95 under load {h['p95_ms']:.1f} ms "
        f"(<= {HEALTHZ_FAST_P95_MS:g} ms, no failures)  {'PASS' if v['healthz_ok'] else 'FAIL'}",
    ]
    if "workers_compare" in r:
        lines += ["", *compare_lines(r["workers_compare"])]
    noisy = noise(r)
    if noisy:
        lines += [
            "",
            f"WARNING: other processes were busy ({noisy}); "
            "these figures are not reliable, run again on a quiet machine",
        ]
    return "\n".join(lines)


def noise(r: dict[str, Any]) -> str:
    """Where other processes took more than NOISE_CPU_PCT of a core, or '' when nowhere."""
    parts = [
        f"{lv['other_cpu_pct']:.0f} % at c={lv['concurrency']}"
        for lv in r["http"]
        if lv["other_cpu_pct"] > NOISE_CPU_PCT
    ]
    wc = r.get("workers_compare", {"rows": {}, "concurrency": 0})
    in_levels = any(lv["concurrency"] == wc["concurrency"] for lv in r["http"])
    for name, row in wc["rows"].items():
        if row["other_cpu_pct"] > NOISE_CPU_PCT and not (name == "1 worker" and in_levels):
            parts.append(f"{row['other_cpu_pct']:.0f} % in {name}")
    if r["in_process"]["other_cpu_pct"] > NOISE_CPU_PCT:
        parts.append(f"{r['in_process']['other_cpu_pct']:.0f} % in-process")
    return ", ".join(parts)


def compare_lines(wc: dict[str, Any]) -> list[str]:
    rows = wc["rows"]
    names = list(rows)
    out = [
        f"one worker vs two, POST /v1/ask at c={wc['concurrency']}",
        "  " + f"{'':18}" + "".join(f"{n:>22}" for n in names),
    ]
    fields = [
        ("req/s", "rps", 1),
        ("p50 ms", "p50_ms", 1),
        ("p95 ms", "p95_ms", 1),
        ("p99 ms", "p99_ms", 1),
        ("errors", "errors", 0),
        ("server CPU %", "server_cpu_pct", 0),
        ("CPU % by process", "process_cpu_pct", 0),
        ("RSS MB (sum)", "rss_mb", 0),
        ("PSS MB (sum)", "pss_mb", 0),
        ("cold start s", "ready_s", 2),
    ]
    for label, key, digits in fields:
        out.append(
            "  " + f"{label:18}" + "".join(f"{fmt(rows[n][key], digits):>22}" for n in names)
        )
    out.append(
        "  (new conns: a fresh connection per request, so requests spread over the workers;\n"
        "   with keep-alive, the worker that accepted a connection serves all of its requests)"
    )
    return out


def markdown_report(r: dict[str, Any]) -> str:
    s, ip, h = r["server"], r["in_process"], r["healthz"]["under_load"]
    e = ip["embed"]
    out = [
        f"Measured with `python scripts/bench.py` on {r['meta']['cpus']} CPUs "
        f"({r['meta']['seconds']:g} s per level, {sum(r['questions'].values())} varied questions).",
        "",
        "| Measure | Value |",
        "|---|---|",
        f"| Cold start to `/readyz` 200 | {s['ready_s']:.1f} s |",
        f"| RSS after warm-up / after load | {s['warm']['rss_mb']:.0f} MB / "
        f"{s['loaded']['rss_mb']:.0f} MB |",
        f"| Query embedding in-process (torch threads: {e['threads']}), p50 / p95 | "
        f"{e['p50_ms']:.1f} / {e['p95_ms']:.1f} ms |",
        f"| `Pipeline.ask()` in-process, p50 / p95 | {ip['ask']['p50_ms']:.1f} / "
        f"{ip['ask']['p95_ms']:.1f} ms |",
        f"| `/healthz` while `/v1/ask` runs at c={r['healthz']['concurrency']}, p50 / p95 / max | "
        f"{h['p50_ms']:.1f} / {h['p95_ms']:.1f} / {h['max_ms']:.1f} ms |",
        "",
        "| Concurrency | req/s | p50 ms | p95 ms | p99 ms | Errors |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for lv in r["http"]:
        out.append(
            f"| {lv['concurrency']} | {lv['rps']:.1f} | {lv['p50_ms']:.1f} | {lv['p95_ms']:.1f} | "
            f"{lv['p99_ms']:.1f} | {lv['errors']} |"
        )
    if "workers_compare" in r:
        wc = r["workers_compare"]
        names = list(wc["rows"])
        out += [
            "",
            f"| c={wc['concurrency']} | " + " | ".join(names) + " |",
            "|---|" + "---:|" * len(names),
        ]
        for label, key, digits in [
            ("req/s", "rps", 1),
            ("p50 ms", "p50_ms", 1),
            ("p95 ms", "p95_ms", 1),
            ("p99 ms", "p99_ms", 1),
            ("RSS MB", "rss_mb", 0),
        ]:
            out.append(
                f"| {label} | " + " | ".join(fmt(wc["rows"][n][key], digits) for n in names) + " |"
            )
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# Main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--seconds", type=float, default=20.0, help="duration of each load level")
    p.add_argument("--concurrency", default="1,8,32", help="comma-separated levels")
    p.add_argument(
        "--port", type=int, default=0, help="port of `ragbot serve` (default: a free one)"
    )
    p.add_argument("--questions", type=int, default=100, help="how many eval questions to cycle")
    p.add_argument("--max-requests", type=int, default=20_000, help="cap per level")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--json", dest="json_path", default=None, help="write the figures here as JSON")
    p.add_argument("--markdown", action="store_true", help="also print a Markdown table")
    p.add_argument(
        "--workers-compare",
        action="store_true",
        help=f"also run c={COMPARE_CONCURRENCY} against `uvicorn --workers 2`",
    )
    args = p.parse_args(argv)
    args.levels = sorted({int(c) for c in args.concurrency.split(",") if c.strip()})
    if not args.levels or min(args.levels) < 1:
        p.error("--concurrency needs positive integers")
    return args


def measure_server(
    args: argparse.Namespace, env: dict[str, str], questions: list[str], report: dict[str, Any]
) -> None:
    """`ragbot serve`: cold start, memory, /healthz idle and under load, every load level."""
    port = args.port or free_port()
    argv = [sys.executable, "-m", "ragbot.cli", "serve", "--host", HOST, "--port", str(port)]
    argv.append("--no-build")  # ensure_index() built it; a stale one is rebuilt by start_server
    print(f"starting {' '.join(argv[1:])}", file=sys.stderr)
    server = start_server(argv, port, env)
    try:
        report["server"] = dict(server.timing)
        warm_up(server, questions)
        report["server"]["warm"] = memory(server.pid)
        idle, idle_failures = probe(port, 2.0, PROBE_RATE_HZ)
        report["healthz"] = {
            "idle": {**summary_ms(idle), "failures": idle_failures},
            "concurrency": max(args.levels),
        }
        report["http"] = []
        for c in args.levels:
            print(f"  c={c} for {args.seconds:g} s", file=sys.stderr)
            level = run_level(
                server,
                questions,
                c,
                args.seconds,
                args.max_requests,
                probe_healthz=c == max(args.levels),
            )
            if "healthz" in level:
                report["healthz"]["under_load"] = level.pop("healthz")
            report["http"].append(level)
        if args.workers_compare:
            report["one_worker_compare"] = {
                "keepalive": next(
                    (lv for lv in report["http"] if lv["concurrency"] == COMPARE_CONCURRENCY), None
                )
                or run_level(
                    server, questions, COMPARE_CONCURRENCY, args.seconds, args.max_requests
                ),
                "new_connections": run_level(
                    server,
                    questions,
                    COMPARE_CONCURRENCY,
                    args.seconds,
                    args.max_requests,
                    keepalive=False,
                ),
            }
        report["server"]["loaded"] = memory(server.pid)
    finally:
        server.stop()


def workers_compare(
    args: argparse.Namespace, env: dict[str, str], questions: list[str], report: dict[str, Any]
) -> None:
    """The same level against `uvicorn --workers 2`, each worker with the same settings."""
    one = report.pop("one_worker_compare")
    served = {**report["server"]["loaded"], "ready_s": report["server"]["ready_s"]}
    rows = {
        "1 worker": {**one["keepalive"], **served},
        "1 worker, new conns": {**one["new_connections"], **served},
    }
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "--factory", "ragbot.api:create_app"]
    argv += ["--workers", "2", "--host", HOST, "--port", str(port)]
    argv += ["--no-access-log", "--log-level", "info"]
    print(f"starting {' '.join(argv[1:])}", file=sys.stderr)
    server = start_server(argv, port, {**env, "RAGBOT_AUTO_BUILD": "false"}, workers=2)
    try:
        warm_up(server, questions)
        warm_up(server, questions)  # new connections: the requests spread over both workers
        for name, keepalive in (("2 workers", True), ("2 workers, new conns", False)):
            level = run_level(
                server,
                questions,
                COMPARE_CONCURRENCY,
                args.seconds,
                args.max_requests,
                keepalive=keepalive,
            )
            rows[name] = {**level, **memory(server.pid), "ready_s": server.timing["ready_s"]}
    finally:
        server.stop()
    report["workers_compare"] = {"concurrency": COMPARE_CONCURRENCY, "rows": rows}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM too unwinds through the finally blocks that stop the server.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    env = dict(os.environ)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.update({k: env[k] for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")})
    questions, categories = load_questions(args.questions, args.seed)
    started = time.perf_counter()
    report: dict[str, Any] = {
        "meta": {
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "cpus": len(os.sched_getaffinity(0)),
            "loadavg_at_start": os.getloadavg()[0],
            "python": platform.python_version(),
            "seconds": args.seconds,
            "levels": args.levels,
        },
        "questions": dict(categories),
    }
    try:
        report["meta"]["index_built"] = ensure_index(env)
        measure_server(args, env, questions, report)
        if args.workers_compare:
            workers_compare(args, env, questions, report)
        print(
            "in-process: model, embed([q]) at 1 and 2 torch threads, Pipeline.ask()",
            file=sys.stderr,
        )
        report["in_process"] = in_process(questions)
    except KeyboardInterrupt:
        print("interrupted; the server was stopped", file=sys.stderr)
        return 130
    report["meta"]["run_seconds"] = round(time.perf_counter() - started, 1)

    c1 = next((lv for lv in report["http"] if lv["concurrency"] == 1), report["http"][0])
    top = report["http"][-1]
    ratio = c1["p50_ms"] / report["in_process"]["embed"]["p50_ms"]
    h = report["healthz"]["under_load"]
    report["verdicts"] = {
        "http_p50_c1_ms": c1["p50_ms"],
        "ratio": round(ratio, 2),
        "ratio_ok": ratio <= LATENCY_TARGET_RATIO,
        "max_concurrency": top["concurrency"],
        "errors_at_max": top["errors"],
        "zero_errors_at_max": top["errors"] == 0,
        "healthz_ok": h.get("n", 0) > 0
        and h["p95_ms"] <= HEALTHZ_FAST_P95_MS
        and h["failures"] == 0,
    }
    print(text_report(report))
    print(f"\n(run took {report['meta']['run_seconds']:.0f} s)")
    if args.markdown:
        print("\n" + markdown_report(report))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(json_safe(report), indent=2) + "\n")
        print(f"\nwrote {args.json_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
