"""Pure arithmetic of the benchmark: medians, spreads, ratios, per-batch rates (steady state:
monitoring/status_log.py)."""

from __future__ import annotations

import itertools
import statistics

from streaming_job.monitoring.status_log import batch_end, busy_batches


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


def batch_rates(records: list[dict]) -> list[float | None]:
    """Images/s of each non-empty micro-batch, by batch id: its rows over the time since the previous one
    ended (gaps count, as in steady_state); the first one over its own duration."""
    ordered = busy_batches(records)
    seconds = [
        batch_end(record) - batch_end(ordered[index - 1]) if index else record["batch_duration_ms"] / 1000.0
        for index, record in enumerate(ordered)
    ]
    return [
        round(record["input_rows"] / span, 2) if span > 0 else None
        for record, span in zip(ordered, seconds, strict=True)
    ]


def scoring_pair_ratios(batches: list[dict]) -> list[float | None]:
    """Scored over unscored images/s of each two adjacent micro-batches of one stream, the first (warm-up)
    left out. Each batch meets the one before and the one after it, so a machine that speeds up or slows
    down during the run weighs on both kinds alike. Only batches of as many rows are paired: a short
    batch (the file source's last one) carries the same fixed per-batch cost over fewer images."""
    ratios = []
    for before, after in itertools.pairwise(batches[1:]):
        if before["scored"] != after["scored"] and before["rows"] == after["rows"]:
            scored, unscored = (before, after) if before["scored"] else (after, before)
            ratios.append(ratio(scored["images_per_s"], unscored["images_per_s"]))
    return ratios
