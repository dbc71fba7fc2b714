"""`fruits bench`'s report and table for two runtimes, from recorded mode results (pure, fast).

The end-to-end run (test_bench_command.py) measures LiteRT alone; what only a run of both
runtimes prints (each runtime's rows and ratios, the litert/keras speed-up last) is proven here
on the JSON lines its modes print, two interleaved repetitions of each.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from benchmarks import bench
from benchmarks.workload import Workload, WorkloadSpec, reusable

RUNTIMES = ("litert", "keras")
# What a default `fruits bench` runs per runtime (scoring_paired is asked for by name).
RECORDED_MODES = ("alone", *bench.STREAM_MODES)


def stream_run(runtime: str, mode: str, images_per_s: float) -> dict:
    """What `python -m benchmarks.modes <stream mode>` prints (the fields the report reads)."""
    scoring = mode == "stream"
    return {
        "runtime": runtime,
        "available_now": mode == "batch_backfill",
        "images": 16,
        "feature_rows": 16,
        "error_rows": 0,
        "complete": True,
        "scoring": scoring,
        "scored_rows": 16 if scoring else 0,
        "steady": {"images_per_s": images_per_s, "images": 8, "batches": 1, "includes_warmup": False},
        "wall_s": 20.0,
        "wall_images_per_s": 0.8,
        "first_batch_end_s": 15.0,
        "model_builds": 2,
    }


def recorded_runs() -> dict[str, dict[str, list[dict]]]:
    """Two repetitions per mode; keras at half LiteRT's rates, the second repetition 10 % faster."""
    runs: dict[str, dict[str, list[dict]]] = {}
    for runtime, scale in zip(RUNTIMES, (1.0, 0.5), strict=True):
        by_mode: dict[str, list[dict]] = {mode: [] for mode in RECORDED_MODES}
        for speed in (1.0, 1.1):
            rate = round(scale * speed, 3)
            by_mode["alone"].append({"runtime": runtime, "images": 16, "images_per_s": 40.0 * rate})
            by_mode["stream"].append(stream_run(runtime, "stream", 20.0 * rate))
            by_mode["stream_no_scoring"].append(stream_run(runtime, "stream_no_scoring", 25.0 * rate))
            by_mode["batch_backfill"].append(stream_run(runtime, "batch_backfill", 30.0 * rate))
        runs[runtime] = by_mode
    return runs


def workload_result() -> dict:
    """What the prepare mode prints: the lake's artifacts for both runtimes."""
    return {
        "spec": {"images_dir": "/images", "n": 16, "input_size": 96, "k": 4, "runtimes": list(RUNTIMES)},
        "distinct_images": 8,
        "model_versions": {runtime: f"mobilenet-{runtime}-v1" for runtime in RUNTIMES},
        "pca_versions": {runtime: f"pca-{runtime}-v1" for runtime in RUNTIMES},
        "classifier_pointers": {runtime: {"version": f"clf-{runtime}"} for runtime in RUNTIMES},
    }


def build_report() -> dict:
    # the command's own parser, so a flag the bench adds reaches this report too
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    flags = "--n 16 --input-size 96 --k 4 --repeat 2 --max-files-per-trigger 8 --trigger 0.5"
    args = parser.parse_args(flags.split())
    machine = {"cpu": "test cpu", "cores": 2, "load_average_before": [1.0], "load_average_after": None}
    ingest_runs = [
        {"per_image_ms_median": 10.0, "per_image_ms_p95": 14.0, "cold_import_s": 1.5, "backend": "moto"},
        {"per_image_ms_median": 12.0, "per_image_ms_p95": 16.0, "cold_import_s": 1.7, "backend": "moto"},
    ]
    for run_ in ingest_runs:
        run_["images"] = 4
    return bench.build_report(args, machine, workload_result(), recorded_runs(), ingest_runs, None)


def test_the_report_of_two_runtimes_holds_each_runtimes_ratios_and_the_litert_keras_speed_up():
    # GIVEN two interleaved repetitions of every mode for litert and keras (keras at half the rate)
    # WHEN the report is built
    report = json.loads(json.dumps(build_report()))

    # THEN each runtime has its medians, spreads and ratios of the medians, per repetition beside them
    assert list(report["runtimes"]) == list(RUNTIMES)
    litert, keras = report["runtimes"]["litert"], report["runtimes"]["keras"]
    assert litert["alone"]["images_per_s"] == 42.0 and litert["alone"]["images_per_s_spread"] == [40.0, 44.0]
    assert litert["stream"]["steady_images_per_s"] == 21.0
    assert litert["stream"]["steady_images_per_s_spread"] == [20.0, 22.0]
    assert keras["stream"]["steady_images_per_s"] == 10.5
    for summary in (litert, keras):
        assert summary["ratio_stream_vs_alone"] == 0.5 and summary["ratio_stream_vs_alone_runs"] == [0.5, 0.5]
        assert summary["ratio_backfill_vs_alone"] == 0.75
        assert summary["ratio_scoring"] == 0.8 and summary["ratio_scoring_spread"] == [0.8, 0.8]
        assert summary["stream"]["complete"] and summary["stream"]["images"] == 16
    # AND the config names both runtimes' artifacts, the ingest its medians, and LiteRT is 2x keras
    assert report["config"]["classifier_versions"] == {"litert": "clf-litert", "keras": "clf-keras"}
    assert report["config"]["model_versions"]["keras"] == "mobilenet-keras-v1"
    assert report["ingest"]["per_image_ms_median"] == 11.0 and report["ingest"]["cold_import_s"] == 1.6
    assert report["ratio_litert_stream_vs_keras_stream"] == 2.0


def test_the_table_of_two_runtimes_lists_litert_then_keras_and_ends_with_the_ratios():
    # WHEN the human table of the two-runtime report is rendered
    lines = bench.render_table(build_report()).splitlines()

    # THEN the rows come runtime by runtime, each in mode order, then the ingest, then the ratios
    rows = [line.split()[:2] for line in lines[2:10]]
    assert rows == [[runtime, mode] for runtime in RUNTIMES for mode in RECORDED_MODES]
    assert lines[10].split()[0] == "ingest"
    assert [line.split(":")[0] for line in lines[11:]] == [
        *(
            f"  ratio {label} ({runtime})"
            for runtime in RUNTIMES
            for label in ("batch_backfill/alone", "stream with/without scoring", "stream/alone")
        ),
        "  ratio stream litert/keras",
    ]
    assert lines[-2] == "  ratio stream/alone (keras): 0.5 (per repetition [0.5-0.5])"
    assert lines[-1] == "  ratio stream litert/keras: 2.0"


def spec(runtimes: tuple[str, ...], n: int = 16) -> WorkloadSpec:
    return WorkloadSpec(images_dir="/images", n=n, input_size=96, k=4, runtimes=runtimes)


@pytest.fixture
def images(tmp_path: Path) -> list[Path]:
    paths = [tmp_path / "apple" / "1.jpg", tmp_path / "lemon" / "2.jpg"]
    for path in paths:
        path.parent.mkdir()
        path.write_bytes(b"jpeg")
    return paths


@pytest.mark.parametrize(
    ("asked", "reused"),
    [
        (spec(("litert", "keras")), True),
        (spec(("litert",)), True),  # a lake of both runtimes serves one of them
        (spec(("keras",)), True),
        (spec(("litert",), n=32), False),  # any other input is another lake
    ],
)
def test_a_lake_is_reused_for_the_same_inputs_and_any_of_its_runtimes(images, asked, reused):
    from benchmarks.workload import fingerprint

    built = Workload(
        spec=spec(("litert", "keras")),
        workdir="/work",
        model_versions={},
        pca_versions={},
        distinct_images=2,
        images_fingerprint=fingerprint(images),
    )
    assert reusable(built, asked, images) is reused


def test_a_lake_of_one_runtime_is_rebuilt_for_another(images):
    from benchmarks.workload import fingerprint

    built = Workload(
        spec=spec(("litert",)),
        workdir="/work",
        model_versions={},
        pca_versions={},
        distinct_images=2,
        images_fingerprint=fingerprint(images),
    )
    assert not reusable(built, spec(("litert", "keras")), images)
    assert not reusable(built, spec(("litert",)), images[:1])
