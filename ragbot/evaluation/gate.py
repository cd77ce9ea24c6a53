"""The quality gate: overall metrics against committed minimums and maximums."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ragbot.errors import RagbotError
from ragbot.evaluation.core import METRIC_KEYS, Value

# A rate of exactly 1.0 computed as k/k is exact; the tolerance only absorbs float noise of means.
TOLERANCE = 1e-9


@dataclass(frozen=True)
class Check:
    """One bound of the thresholds file and whether the metric keeps it."""

    metric: str
    bound: str  # "min" | "max"
    limit: float
    value: Value

    @property
    def passed(self) -> bool:
        """Within the bound; a metric that was not measured (n/a) does not pass."""
        if self.value is None:
            return False
        if self.bound == "min":
            return self.value >= self.limit - TOLERANCE
        return self.value <= self.limit + TOLERANCE

    def describe(self) -> str:
        """E.g. `answer_hit_rate 0.812 < min 0.9`."""
        if self.value is None:
            return f"{self.metric} n/a (not measured), {self.bound} {self.limit:g}"
        op = (
            ("<" if self.bound == "min" else ">")
            if not self.passed
            else ("≥" if self.bound == "min" else "≤")
        )
        return f"{self.metric} {self.value:.4g} {op} {self.bound} {self.limit:g}"


def load_thresholds(path: Path) -> dict[str, dict[str, float]]:
    """{"metric": {"min": x} or {"max": y}}, checked against the metric names."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RagbotError(f"cannot read the thresholds file {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise RagbotError(f'{path} must hold a JSON object of metric -> {{"min" or "max": number}}')
    out: dict[str, dict[str, float]] = {}
    for metric, bounds in raw.items():
        if metric not in METRIC_KEYS:
            raise RagbotError(
                f"{path}: unknown metric {metric!r}; known: {', '.join(sorted(METRIC_KEYS))}"
            )
        if (
            not isinstance(bounds, dict)
            or not bounds
            or set(bounds) - {"min", "max"}
            or not all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in bounds.values()
            )
        ):
            raise RagbotError(
                f'{path}: {metric} must be {{"min": number}} and/or {{"max": number}}'
            )
        out[metric] = {k: float(v) for k, v in bounds.items()}
    return out


def check(
    metrics: Mapping[str, Value], thresholds: Mapping[str, Mapping[str, float]]
) -> list[Check]:
    """Every bound of the thresholds, in file order, with the metric's value."""
    return [
        Check(metric, bound, limit, metrics.get(metric))
        for metric, bounds in thresholds.items()
        for bound, limit in bounds.items()
    ]
