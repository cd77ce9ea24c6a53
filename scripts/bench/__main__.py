"""Benchmark ragbot: the query encoders in-process, then the real server's cold start, memory,
HTTP overhead and throughput under load.

    .venv/bin/python scripts/bench [--seconds 15] [--levels 1,8,32] [--rounds 1]
                                   [--batching-grid] [--json reports/bench.json]

Figures only: nothing here passes or fails on timing. The machines are shared and noisy, so
compare ratios within one run, not figures across runs. `python scripts/bench` puts this folder
on sys.path, so its modules import each other by name:

    prepare.py    the question set and a built index
    inprocess.py  part 1: Pipeline.ask() per encoder, stage by stage
    server.py     `ragbot serve` on 127.0.0.1: start, ready, VmRSS, CPU, stop
    loadgen.py    the closed-loop HTTP load generator, in its own process
    serving.py    parts 2 to 4: cold start and memory, HTTP overhead, load levels
    grid.py       part 5: batching settings (--batching-grid)
    figures.py    percentiles and ratios;  tables.py  the printed tables
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grid
import inprocess
import serving
import tables
from prepare import QUESTION_FILES, ensure_index, question_set

from ragbot.config import Settings

ROOT = Path(__file__).resolve().parents[2]  # the checkout: reports/ lies beside ragbot/


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line; --levels becomes a sorted list of positive integers."""
    p = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=15.0, help="duration of each load level")
    p.add_argument("--levels", default="1,8,32", help="comma-separated concurrency levels")
    p.add_argument("--rounds", type=int, default=1, help="in-process passes over the questions")
    p.add_argument(
        "--batching-grid",
        action="store_true",
        help=f"also run c={'/'.join(map(str, grid.LEVELS))} per batching setting (restarts)",
    )
    p.add_argument("--json", type=Path, default=ROOT / "reports" / "bench.json")
    args = p.parse_args(argv)
    try:
        args.levels = sorted({int(c) for c in args.levels.split(",") if c.strip()})
    except ValueError:
        p.error("--levels takes comma-separated integers, e.g. 1,8,32")
    if not args.levels or args.levels[0] < 1 or args.seconds <= 0 or args.rounds < 1:
        p.error("--levels, --seconds and --rounds must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the parts in order, print a table after each, write every figure as JSON."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # unwind: stop the server
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):  # the model is on disk
        os.environ.setdefault(name, "1")
    settings = Settings()
    index_built = ensure_index(settings)
    questions, categories = question_set()
    # The server reads the same index, with the encoder part 3 compares it with. The load comes
    # from one client, so its rate limit is off; the queue holds every level's clients.
    env = {
        "RAGBOT_INDEX_DIR": str(settings.index_dir),
        "RAGBOT_ENCODER": "onnx",
        "RAGBOT_RATE_LIMIT": "",
        "RAGBOT_ASK_QUEUE": str(max(args.levels) + 16),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    log_path = args.json.with_name("bench-server.log")
    log_path.write_text("")
    started = time.perf_counter()
    report: dict[str, Any] = {"meta": meta(args, categories, index_built)}

    report["in_process"] = inprocess.measure(questions, args.rounds)
    print(tables.in_process(report["in_process"], len(questions), args.rounds) + "\n")
    onnx_p50 = report["in_process"]["onnx"]["ask"]["p50_ms"]
    server = serving.measure(questions, args.levels, args.seconds, onnx_p50, env, log_path)
    report.update(server)
    print(tables.cold_start(server["cold_start"]) + "\n")
    print(tables.http_overhead(server["http_overhead"]) + "\n")
    print(tables.load(server["load"], args.seconds) + "\n")
    if args.batching_grid:
        report["batching_grid"] = grid.measure(questions, args.seconds, env, log_path)
        print(tables.batching_grid(report["batching_grid"], args.seconds) + "\n")

    report["meta"]["run_s"] = round(time.perf_counter() - started, 1)
    args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"run took {report['meta']['run_s']:.0f} s; figures in {args.json}", file=sys.stderr)
    return 0


def meta(args: argparse.Namespace, categories: dict[str, int], index_built: bool) -> dict[str, Any]:
    """When, where and with what the run was made."""
    return {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "cpus": len(os.sched_getaffinity(0)),
        "loadavg_at_start": os.getloadavg()[0],
        "python": platform.python_version(),
        "seconds": args.seconds,
        "levels": args.levels,
        "rounds": args.rounds,
        "question_files": list(QUESTION_FILES),
        "questions": categories,
        "index_built_by_the_run": index_built,
    }


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted; the server was stopped", file=sys.stderr)
        sys.exit(130)
