"""Part 1: Pipeline.ask() in this process, each query encoder over the same questions."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any, Literal

from figures import rounded, share, summary_ms

from ragbot.config import Settings
from ragbot.pipeline import STAGES, Pipeline

Encoder = Literal["torch", "onnx", "onnx-int8"]
ENCODERS: tuple[Encoder, ...] = ("torch", "onnx", "onnx-int8")
WARM_UP_QUESTIONS = 10  # first calls pay for lazy set-up; keep them out of the figures


class StageTimes:
    """The pipeline's on_stage hook: every stage's durations, in seconds."""

    def __init__(self) -> None:
        """Empty lists, one per stage."""
        self.seconds: dict[str, list[float]] = {stage: [] for stage in STAGES}

    def __call__(self, stage: str, seconds: float) -> None:
        """Record one stage of one ask()."""
        self.seconds.setdefault(stage, []).append(seconds)


def measure(
    questions: Sequence[str], rounds: int, encoders: Sequence[Encoder] = ENCODERS
) -> dict[str, Any]:
    """ask() and its stages for each encoder; the encoders take turns question by question, so
    a noisy moment on the machine falls on all of them alike."""
    pipelines: dict[str, Pipeline] = {}
    load_s: dict[str, float] = {}
    stages: dict[str, StageTimes] = {}
    for name in encoders:
        print(f"in-process: loading the {name} pipeline", file=sys.stderr)
        started = time.perf_counter()
        pipelines[name] = Pipeline.load(Settings(encoder=name))
        load_s[name] = time.perf_counter() - started
        for question in questions[:WARM_UP_QUESTIONS]:
            pipelines[name].ask(question)
        stages[name] = StageTimes()
        pipelines[name].on_stage = stages[name]  # from here on, every stage is timed

    asks: dict[str, list[float]] = {name: [] for name in encoders}
    print(f"in-process: {rounds} x {len(questions)} questions per encoder", file=sys.stderr)
    for _ in range(rounds):
        for i, question in enumerate(questions):
            for name in rotated(encoders, i):
                started = time.perf_counter()
                pipelines[name].ask(question)
                asks[name].append(time.perf_counter() - started)
    for pipeline in pipelines.values():
        pipeline.on_stage = None
        pipeline.encoder.close()

    out: dict[str, Any] = {
        name: {
            "load_s": round(load_s[name], 2),
            "ask": summary_ms(asks[name]),
            "stages": stage_figures(stages[name], asks[name]),
        }
        for name in encoders
    }
    if "torch" in out:
        for name in encoders:
            out[name]["p50_vs_torch"] = share(
                out[name]["ask"]["p50_ms"], out["torch"]["ask"]["p50_ms"]
            )
            out[name]["p95_vs_torch"] = share(
                out[name]["ask"]["p95_ms"], out["torch"]["ask"]["p95_ms"]
            )
    return out


def stage_figures(stages: StageTimes, asks: Sequence[float]) -> dict[str, Any]:
    """Per stage: calls, p50, p95, and ms per ask (a stage some questions skip counts 0 there);
    `outside stages` is what ask() spends between the laps (its log line, the trace)."""
    out: dict[str, Any] = {}
    for stage, seconds in stages.seconds.items():
        figures = summary_ms(seconds)
        out[stage] = {
            "calls": figures["n"],
            "p50_ms": figures["p50_ms"],
            "p95_ms": figures["p95_ms"],
            "ms_per_ask": rounded(1000 * sum(seconds) / len(asks)),
        }
    in_stages = sum(sum(seconds) for seconds in stages.seconds.values())
    out["outside stages"] = {"ms_per_ask": rounded(1000 * (sum(asks) - in_stages) / len(asks))}
    return out


def rotated(items: Sequence[Encoder], by: int) -> list[Encoder]:
    """items, starting at position `by` and wrapping around."""
    k = by % len(items)
    return [*items[k:], *items[:k]]
