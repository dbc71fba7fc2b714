"""Steady-state arithmetic of the benchmark (pure, fast)."""

from __future__ import annotations

import pytest

from benchmarks.stats import median_or_none, ratio
from streaming_job.monitoring.status_log import steady_state


def record(batch_id: int, start_s: float, duration_s: float, rows: int) -> dict:
    from datetime import UTC, datetime

    stamp = datetime.fromtimestamp(1_750_000_000 + start_s, UTC).isoformat().replace("+00:00", "Z")
    return {
        "batch_id": batch_id,
        "timestamp": stamp,
        "batch_duration_ms": int(duration_s * 1000),
        "input_rows": rows,
    }


def test_steady_state_skips_the_first_batch_and_counts_the_gaps_between_batches():
    # GIVEN a slow first batch (worker start-up), then two batches of 100 rows with a 1 s gap between them
    records = [record(0, 0, 30, 100), record(1, 30, 4, 100), record(2, 35, 5, 100)]

    # WHEN the steady state is computed
    steady = steady_state(records)

    # THEN it is 200 rows over the 10 s from the first batch's end to the last batch's end
    assert steady == {"images_per_s": 20.0, "images": 200, "batches": 2, "includes_warmup": False}


def test_empty_batches_are_ignored_and_order_comes_from_batch_ids():
    records = [record(2, 35, 5, 100), record(0, 0, 30, 100), record(3, 41, 0.1, 0), record(1, 30, 4, 100)]

    assert steady_state(records)["images_per_s"] == 20.0


def test_a_single_batch_gives_a_rate_that_is_marked_as_including_start_up():
    steady = steady_state([record(0, 0, 10, 50)])

    assert steady == {"images_per_s": 5.0, "images": 50, "batches": 1, "includes_warmup": True}


def test_no_batches_give_no_rate():
    assert steady_state([])["images_per_s"] is None


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [(90.0, 100.0, 0.9), (None, 100.0, None), (90.0, None, None), (90.0, 0.0, None)],
)
def test_ratio_is_none_when_a_side_is_missing(numerator, denominator, expected):
    assert ratio(numerator, denominator) == expected


def test_median_skips_missing_values():
    assert median_or_none([3.0, None, 1.0, 2.0]) == 2.0
    assert median_or_none([None]) is None


def test_spread_and_paired_ratios_ignore_missing_runs():
    from benchmarks.stats import paired_ratios, spread

    assert spread([3.0, None, 1.0, 2.0]) == [1.0, 3.0]
    assert spread([None]) is None
    assert paired_ratios([90.0, 99.0, None], [100.0, 100.0, 100.0]) == [0.9, 0.99, None]
    with pytest.raises(ValueError):
        paired_ratios([1.0], [1.0, 2.0])


def test_batch_rates_count_each_batch_from_the_previous_ones_end():
    from benchmarks.stats import batch_rates

    # GIVEN a 30 s first batch, then batches of 100 rows ending 5 s and 4 s after the one before
    records = [record(1, 30, 4, 100), record(0, 0, 30, 90), record(2, 35, 4, 100), record(3, 40, 0.1, 0)]

    # THEN the first is rated over its own duration, the others over the time since the previous end
    assert batch_rates(records) == [3.0, 25.0, 20.0]


def test_scoring_pairs_compare_each_steady_batch_with_its_neighbours_scored_over_unscored():
    from benchmarks.stats import scoring_pair_ratios

    # GIVEN a scored warm-up batch, then unscored, scored, unscored, scored steady batches
    rates = [(True, 10.0), (False, 100.0), (True, 90.0), (False, 120.0), (True, 108.0), (False, 50.0)]
    batches = [{"scored": scored, "images_per_s": rate, "rows": 100} for scored, rate in rates]
    # the last batch is a short one (the source's remainder)
    batches[-1]["rows"] = 40

    # WHEN the adjacent pairs are compared
    ratios = scoring_pair_ratios(batches)

    # THEN the warm-up and the short batch are left out and every ratio is scored / unscored
    assert ratios == [0.9, 0.75, 0.9]
    assert median_or_none(ratios) == 0.9


def test_scoring_pairs_need_two_steady_batches_of_different_kinds():
    from benchmarks.stats import scoring_pair_ratios

    batches = [
        {"scored": True, "images_per_s": 10.0, "rows": 4},
        {"scored": False, "images_per_s": 100.0, "rows": 4},
    ]
    assert scoring_pair_ratios(batches) == []
    same_kind = [*batches, {"scored": False, "images_per_s": 90.0, "rows": 4}]
    assert scoring_pair_ratios(same_kind) == []
    missing_rate = [*batches, {"scored": True, "images_per_s": None, "rows": 4}]
    assert scoring_pair_ratios(missing_rate) == [None]
