"""The scoring_paired bench mode on the tiny benchmark lake: one stream, its batches scored in turn."""

from __future__ import annotations

import pytest

from tests.benchmarks.conftest import TINY_N

PAIRED_BATCH = 4


@pytest.mark.parametrize(
    ("modes", "paired_batches", "refused"),
    [
        ("scoring_paired", 2, True),
        ("scoring_paired", TINY_N + 1, True),
        ("scoring_paired", 3, False),
        ("alone,stream", 2, False),
    ],
)
def test_paired_batches_are_checked_only_when_the_paired_mode_runs(modes, paired_batches, refused):
    import argparse

    from benchmarks.bench import add_arguments, validate
    from fruits_core.errors import ConfigError

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--n", str(TINY_N), "--modes", modes, "--paired-batches", str(paired_batches)])
    if refused:
        with pytest.raises(ConfigError, match=r"--paired-batches must be in 3\.\.N"):
            validate(args)
    else:
        assert validate(args)[0] == modes.split(",")


@pytest.mark.spark
@pytest.mark.tf
@pytest.mark.slow
def test_scoring_paired_scores_every_other_micro_batch_and_pairs_the_neighbours(tiny_workload):
    from benchmarks.bench import alternated, render_table, summarize_runtime
    from benchmarks.modes import scoring_paired

    # GIVEN the tiny lake's 16 manifests, 4 per micro-batch, the litert classifier published
    # WHEN the scoring_paired mode runs its one stream (in this interpreter, on the test session)
    run = scoring_paired(
        tiny_workload,
        "litert",
        "local[*]",
        max_files_per_trigger=PAIRED_BATCH,
        trigger_seconds=0.5,
        timeout_seconds=600,
    )

    # THEN all 16 rows are written in 4 batches, scored, not, scored, not
    assert run["complete"] and run["feature_rows"] == TINY_N and run["error_rows"] == 0
    assert run["classifier_version"] == tiny_workload.classifier_pointers["litert"]["version"]
    batches = run["batches"]
    assert [batch["rows"] for batch in batches] == [PAIRED_BATCH] * (TINY_N // PAIRED_BATCH)
    assert [batch["scored"] for batch in batches] == [True, False, True, False]
    # every row of a scored batch carries a prediction (read back from the table), no row of the others
    assert [batch["scored_rows"] for batch in batches] == [PAIRED_BATCH, 0, PAIRED_BATCH, 0]
    assert [batch["feature_rows"] for batch in batches] == [PAIRED_BATCH] * 4
    assert run["scored_rows"] == run["scored_batch_rows"] == TINY_N // 2
    assert run["unscored_batch_rows"] == TINY_N // 2 and run["unscored_batch_predictions"] == 0
    assert alternated(run)
    # the 3 steady batches give 2 adjacent pairs (the warm-up left out), each rated scored / unscored
    assert all(batch["images_per_s"] > 0 for batch in batches)
    rates = [batch["images_per_s"] for batch in batches]
    assert run["pair_ratios"] == [round(rates[2] / rates[1], 3), round(rates[2] / rates[3], 3)]
    by_mode = summarize_runtime({"scoring_paired": [run]})
    summary = by_mode["scoring_paired"]
    assert summary["pairs"] == 2 and summary["alternated"]
    assert summary["pair_ratio_spread"] == [min(run["pair_ratios"]), max(run["pair_ratios"])]
    table = render_table(
        {
            "config": {"n": TINY_N, "distinct_images": 0, "input_size": 96, "repeat": 1},
            "machine": {"cores": 2, "cpu": "-", "load_average_before": None, "load_average_after": None},
            "runtimes": {"litert": by_mode},
            "ratio_litert_stream_vs_keras_stream": None,
        }
    )
    assert (
        f"ratio scored/unscored adjacent batches (litert): {summary['pair_ratio']} (median of 2 pairs"
        in table
    )
