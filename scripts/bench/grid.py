"""Part 5 (--batching-grid): the c=8 and c=32 load under several batching settings."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import serving
from server import serve

# (RAGBOT_BATCH_MAX, RAGBOT_BATCH_WAIT_MS). A batch of 1 never waits, so one wait is enough there.
VARIANTS = ((1, 0.0), (16, 0.0), (16, 1.0), (16, 3.0))
LEVELS = (8, 32)


def measure(
    questions: Sequence[str], seconds: float, env: Mapping[str, str], log_path: Path
) -> list[dict[str, Any]]:
    """One row per variant and level; each variant restarts the server with its settings."""
    rows: list[dict[str, Any]] = []
    for batch_max, wait_ms in VARIANTS:
        print(f"grid: batch max {batch_max}, wait {wait_ms:g} ms", file=sys.stderr)
        settings = {"RAGBOT_BATCH_MAX": str(batch_max), "RAGBOT_BATCH_WAIT_MS": str(wait_ms)}
        with serve({**env, **settings}, log_path) as server:
            serving.warm_up(server, questions)
            levels = [serving.level(server, questions, c, seconds) for c in LEVELS]
            rss = server.rss_mb()
        for figures in levels:
            rows.append(
                {"batch_max": batch_max, "batch_wait_ms": wait_ms, **figures, "rss_after_mb": rss}
            )
    return rows
