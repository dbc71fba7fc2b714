"""`fruits bench` end to end on a tiny real workload: structure and sanity, never speed."""

from __future__ import annotations

import json

import pytest

from benchmarks import bench
from fruits_cli.main import main as fruits_main
from fruits_core.errors import ConfigError
from streaming_job import uris
from tests.benchmarks.conftest import TINY_INPUT_SIZE, TINY_K, TINY_N


@pytest.mark.spark
@pytest.mark.tf
@pytest.mark.slow
def test_bench_json_reports_every_mode_and_the_ratio_last(tiny_workload, tiny_images, capsys):
    # GIVEN the tiny benchmark lake already built in the bench workdir: the command reuses it (each mode
    # is one interpreter and one JVM; the two-runtime report lines are proven on recorded runs by
    # test_the_report_of_two_runtimes_..., and which lake serves which runtimes by test_bench_report.py)
    featurizer = uris.local_path(tiny_workload.featurizer_uri("litert"))
    written_at = featurizer.stat().st_mtime_ns
    argv = [
        "bench",
        "--runtimes",
        "litert",
        "--images",
        str(tiny_images),
        "--n",
        str(TINY_N),
        "--input-size",
        str(TINY_INPUT_SIZE),
        "--k",
        str(TINY_K),
        "--workdir",
        tiny_workload.workdir,
        "--max-files-per-trigger",
        "8",
        "--trigger",
        "0.5",
        "--ingest-n",
        "4",
        "--json",
    ]

    # WHEN `fruits bench --json` runs every mode
    exit_code = fruits_main(argv)
    lines = capsys.readouterr().out.strip().splitlines()
    report = json.loads(lines[-1])

    # THEN it succeeds, the human table ends with the ratios, and the JSON holds every figure
    assert exit_code == 0
    assert lines[-3].startswith("  ratio stream/alone (litert):")
    assert lines[-2] == "  ratio stream litert/keras: None"
    assert report["config"]["n"] == TINY_N and report["config"]["input_size"] == TINY_INPUT_SIZE
    assert set(report["runtimes"]) == set(report["config"]["model_versions"]) == {"litert"}
    # AND the lake was reused, not rebuilt: the same featurizer file, never written again
    assert report["config"]["model_versions"]["litert"] == tiny_workload.model_versions["litert"]
    assert featurizer.stat().st_mtime_ns == written_at
    for runtime, summary in report["runtimes"].items():
        assert summary["alone"]["runs"][0]["images"] == TINY_N
        assert summary["alone"]["runs"][0]["model_version"] == report["config"]["model_versions"][runtime]
        for mode in ("stream", "stream_no_scoring", "batch_backfill"):
            run = summary[mode]["runs"][0]
            assert run["runtime"] == runtime
            assert run["complete"] and run["feature_rows"] == TINY_N and run["error_rows"] == 0
            assert run["images"] == TINY_N
            assert summary[mode]["steady_images_per_s"] > 0
            assert summary[mode]["wall_s"] >= run["first_batch_end_s"] > 0
            assert run["model_builds"] >= 1
        assert summary["batch_backfill"]["runs"][0]["available_now"] is True
        # the scoring stream scored every row with the runtime's classifier; the other scored none
        scored, unscored = summary["stream"]["runs"][0], summary["stream_no_scoring"]["runs"][0]
        assert scored["scoring"] and scored["scored_rows"] == TINY_N
        assert scored["classifier_version"] == report["config"]["classifier_versions"][runtime]
        assert not unscored["scoring"] and unscored["scored_rows"] == 0
        assert summary["ratio_stream_vs_alone"] > 0 and summary["ratio_backfill_vs_alone"] > 0
        assert summary["ratio_scoring"] > 0
        assert summary["ratio_scoring_runs"] == [summary["ratio_scoring"]]
        assert (
            summary["stream"]["steady_images_per_s_spread"] == [summary["stream"]["steady_images_per_s"]] * 2
        )
    assert report["ratio_litert_stream_vs_keras_stream"] is None
    assert report["ingest"]["per_image_ms_p95"] >= report["ingest"]["per_image_ms_median"] > 0
    assert report["ingest"]["cold_import_s"] > 0
    assert report["machine"]["cores"] >= 1


def test_repetitions_swap_the_scoring_and_unscored_streams_every_other_time():
    modes = ["alone", "stream", "stream_no_scoring", "batch_backfill"]

    orders = [bench.interleaved(modes, repetition) for repetition in range(3)]

    assert orders[0] == orders[2] == modes
    assert orders[1] == ["alone", "stream_no_scoring", "stream", "batch_backfill"]
    assert bench.interleaved(["alone", "stream"], 1) == ["alone", "stream"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--modes", "alone,warp"], "--modes must be"),
        (["--runtimes", "litert,onnx"], "--runtimes must be"),
        (["--n", "1"], "--n must be >= 2"),
        (["--input-size", "8"], "--input-size must be in"),
        (["--repeat", "0"], "--repeat must be >= 1"),
        (["--k", "64"], "--k must be in"),
    ],
)
def test_bad_flags_are_refused_before_anything_runs(flags, message):
    import argparse

    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    with pytest.raises(ConfigError, match=message):
        bench.validate(parser.parse_args(flags))


@pytest.mark.spark
@pytest.mark.tf
@pytest.mark.slow
def test_scoring_cost_times_both_worker_steps_on_the_workload_and_scores_every_row(tiny_workload):
    from pathlib import Path

    from benchmarks.scoring_cost import measure

    # WHEN a worker's featurize and scoring steps are timed on the tiny workload's images
    result = measure(Path(tiny_workload.workdir), "litert", rounds=2)

    # THEN every image was scored by the workload's own classifier, and both steps took time
    assert result["scored_rows"] == result["images_per_round"] == TINY_N
    assert result["classifier_version"] == tiny_workload.classifier_pointers["litert"]["version"]
    assert result["featurize_ms_per_image"] > 0 and result["scoring_ms_per_image"] > 0
    assert 0 < result["worker_ratio_with_scoring"] <= 1
