"""Plain-text tables of the figures, one per part, for the terminal."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ragbot.pipeline import STAGES

ASK_COLUMNS = (
    ("encoder", "encoder"),
    ("load s", "load_s"),
    ("n", "n"),
    ("p50 ms", "p50_ms"),
    ("p95 ms", "p95_ms"),
    ("p50 ÷ torch", "p50_vs_torch"),
    ("p95 ÷ torch", "p95_vs_torch"),
)
LOAD_COLUMNS = (
    ("c", "concurrency"),
    ("answers/s", "answers_per_s"),
    ("p50 ms", "p50_ms"),
    ("p95 ms", "p95_ms"),
    ("p99 ms", "p99_ms"),
    ("errors", "errors"),
    ("server CPU %", "server_cpu_pct"),
)
HEALTHZ_COLUMNS = (
    ("", "measure"),
    ("p50 ms", "p50_ms"),
    ("p95 ms", "p95_ms"),
    ("max ms", "max_ms"),
    ("errors", "errors"),
)
GRID_COLUMNS = (
    ("batch max", "batch_max"),
    ("wait ms", "batch_wait_ms"),
    *LOAD_COLUMNS,
    ("RSS after MB", "rss_after_mb"),
)


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A title, then columns: the first left-aligned, the others right-aligned."""
    cells = [[cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(header)]

    def line(values: Sequence[str]) -> str:
        padded = [
            v.ljust(w) if i == 0 else v.rjust(w)
            for i, (v, w) in enumerate(zip(values, widths, strict=True))
        ]
        return "  ".join(padded).rstrip()

    return "\n".join([title, line(header), line(["-" * w for w in widths]), *map(line, cells)])


def columns(title: str, spec: Sequence[tuple[str, str]], rows: Sequence[dict[str, Any]]) -> str:
    """A table whose columns are (header, key) pairs read from each row."""
    return table(title, [h for h, _ in spec], [[row.get(key) for _, key in spec] for row in rows])


def cell(value: Any) -> str:
    """None as '-', small numbers to 2 decimals, larger ones to 1."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def in_process(part: dict[str, Any], questions: int, rounds: int) -> str:
    """Part 1: ask() per encoder, then its stages."""
    asks = columns(
        f"1. Pipeline.ask() in-process: {questions} questions x {rounds}, encoders taking turns",
        ASK_COLUMNS,
        [{"encoder": name, **e, **e["ask"]} for name, e in part.items()],
    )
    names = list(part)
    stages = table(
        "   by stage: ms per ask (p50 ms of the stage's calls); retrieve is skipped when screened",
        ["stage", *names],
        [
            [stage, *(stage_cell(part[name]["stages"][stage]) for name in names)]
            for stage in [*STAGES, "outside stages"]
        ],
    )
    return f"{asks}\n\n{stages}"


def stage_cell(figures: dict[str, Any]) -> str:
    """'ms per ask (p50)' of one stage."""
    if "p50_ms" not in figures:
        return cell(figures["ms_per_ask"])
    return f"{cell(figures['ms_per_ask'])} ({cell(figures['p50_ms'])})"


def cold_start(part: dict[str, Any]) -> str:
    """Part 2: time to ready and resident memory."""
    return table(
        "2. Cold start and memory: `ragbot serve --no-build`, one worker",
        ["measure", "value"],
        [
            ["spawn to GET /readyz 200, s", part["ready_s"]],
            ["VmRSS after warm-up, MB", part["rss_after_warm_up_mb"]],
            ["VmRSS after the load levels, MB", part["rss_after_load_mb"]],
        ],
    )


def http_overhead(part: dict[str, Any]) -> str:
    """Part 3: what HTTP adds at concurrency 1."""
    spec = (("measure", "measure"), ("n", "n"), ("p50 ms", "p50_ms"), ("p95 ms", "p95_ms"))
    rows = columns(
        "3. HTTP overhead at c=1",
        (*spec, ("errors", "errors")),
        [
            {"measure": "POST /v1/ask", **part["ask"]},
            {"measure": "GET /healthz", **part["healthz"]},
            {"measure": "ask() in-process (onnx)", "p50_ms": part["in_process_ask_p50_ms"]},
        ],
    )
    ratio = cell(part["ask_minus_healthz_over_in_process"])
    return f"{rows}\n(ask p50 − healthz p50) ÷ in-process ask() p50 = {ratio}"


def load(levels: list[dict[str, Any]], seconds: float) -> str:
    """Part 4: closed-loop load per level, and /healthz sampled during the highest."""
    out = columns(
        f"4. Closed-loop POST /v1/ask, {seconds:g} s a level (server CPU: 100 = one core)",
        LOAD_COLUMNS,
        levels,
    )
    for lv in levels:
        if "healthz" in lv:
            out += "\n\n" + columns(
                f"   GET /healthz, {lv['healthz']['n']} samples during c={lv['concurrency']}",
                HEALTHZ_COLUMNS,
                [{"measure": "GET /healthz", **lv["healthz"]}],
            )
    return out


def batching_grid(rows: list[dict[str, Any]], seconds: float) -> str:
    """Part 5: the load under each batching setting."""
    return columns(
        f"5. Batching settings, {seconds:g} s a level, a fresh server per setting",
        GRID_COLUMNS,
        rows,
    )
