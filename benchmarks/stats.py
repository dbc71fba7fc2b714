"""Benchmark arithmetic: medians and ratios (steady state: streaming_job.monitoring.status_log)."""

from __future__ import annotations

import statistics


def median_or_none(values: list[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return round(statistics.median(present), 3) if present else None


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if not numerator or not denominator:
        return None
    return round(numerator / denominator, 3)
