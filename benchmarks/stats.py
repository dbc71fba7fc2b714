"""Pure arithmetic of the benchmark: medians, spreads and ratios (steady state: monitoring/status_log.py)."""

from __future__ import annotations

import statistics


def median_or_none(values: list[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return round(statistics.median(present), 3) if present else None


def spread(values: list[float | None]) -> list[float] | None:
    """[min, max] of the runs: how far one run can be from the median on this machine."""
    present = [value for value in values if value is not None]
    return [round(min(present), 3), round(max(present), 3)] if present else None


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if not numerator or not denominator:
        return None
    return round(numerator / denominator, 3)


def paired_ratios(numerators: list[float | None], denominators: list[float | None]) -> list[float | None]:
    """The ratio within each repetition: runs interleaved in the same minutes share the machine's load."""
    return [ratio(top, bottom) for top, bottom in zip(numerators, denominators, strict=True)]
