"""Durations in, figures out: counts and percentiles in milliseconds, and ratios between them."""

from __future__ import annotations

from collections.abc import Sequence

from ragbot.evaluation.metrics import percentile, ratio

Figures = dict[str, float | int | None]


def summary_ms(seconds: Sequence[float]) -> Figures:
    """n, p50, p95, p99 and max of durations given in seconds, in ms (None when there are none)."""
    ms = [s * 1000.0 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": rounded(percentile(ms, 50)),
        "p95_ms": rounded(percentile(ms, 95)),
        "p99_ms": rounded(percentile(ms, 99)),
        "max_ms": rounded(max(ms)) if ms else None,
    }


def share(numerator: float | int | None, denominator: float | int | None) -> float | None:
    """numerator ÷ denominator to 3 decimals; None when either is missing or the divisor is 0."""
    if numerator is None or denominator is None:
        return None
    return rounded(ratio(numerator, denominator), 3)


def rounded(value: float | None, digits: int = 2) -> float | None:
    """value rounded, None kept as None."""
    return None if value is None else round(value, digits)
