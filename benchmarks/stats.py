"""Pure arithmetic of the benchmark: steady-state rates from progress records, medians, ratios."""

from __future__ import annotations

import statistics

from fruits_core import contracts

# Micro-batches left out of the steady state: the first pays for Python worker start-up and the model build.
WARMUP_BATCHES = 1


def epoch_seconds(iso_timestamp: str) -> float:
    return contracts.parse_iso(iso_timestamp).timestamp()


def batch_end(record: dict) -> float:
    """When a micro-batch ended (epoch s): its trigger time plus its duration."""
    return epoch_seconds(record["timestamp"]) + record["batch_duration_ms"] / 1000.0


def steady_state(records: list[dict], warmup: int = WARMUP_BATCHES) -> dict:
    """Images/s of the micro-batches after the first `warmup` ones, over the time they span.

    The span runs from the end of the last warm-up batch to the end of the last
    batch, so the gaps between batches (planning, listener, trigger wait) count
    against the stream: this is the throughput an operator would see, not the sum
    of the batches' busy times. With too few batches for a warm-up, the whole run
    is used (its figure then includes start-up and is marked as such).
    """
    ordered = sorted(
        (record for record in records if record["input_rows"] > 0), key=lambda record: record["batch_id"]
    )
    if not ordered:
        return {"images_per_s": None, "images": 0, "batches": 0, "includes_warmup": False}
    if len(ordered) <= warmup:
        rows = sum(record["input_rows"] for record in ordered)
        span = sum(record["batch_duration_ms"] for record in ordered) / 1000.0
        return {
            "images_per_s": _rate(rows, span),
            "images": rows,
            "batches": len(ordered),
            "includes_warmup": True,
        }
    steady = ordered[warmup:]
    rows = sum(record["input_rows"] for record in steady)
    span = (
        batch_end(steady[-1]) - batch_end(ordered[warmup - 1])
        if warmup
        else batch_end(steady[-1]) - epoch_seconds(steady[0]["timestamp"])
    )
    return {
        "images_per_s": _rate(rows, span),
        "images": rows,
        "batches": len(steady),
        "includes_warmup": False,
    }


def _rate(count: int, seconds: float) -> float | None:
    return round(count / seconds, 2) if seconds > 0 else None


def median_or_none(values: list[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return round(statistics.median(present), 3) if present else None


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if not numerator or not denominator:
        return None
    return round(numerator / denominator, 3)
