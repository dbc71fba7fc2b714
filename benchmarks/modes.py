"""One benchmark measurement per process: `python -m benchmarks.modes <mode> --workdir W [...]`.

`fruits bench` runs every mode in a fresh interpreter, one after the other, so
no mode inherits another's TensorFlow thread pools, JVM or warm caches, and the
stream's wall-clock honestly includes JVM and Python worker start-up. Each
prints its result as one JSON object on the last line of stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.stats import batch_rates, scoring_pair_ratios
from benchmarks.workload import Workload, WorkloadSpec, build_workload, load_workload, reusable, sample_images
from streaming_job.config import StreamConfig
from streaming_job.featurizer.model import DEFAULT_RUNTIME, RUNTIMES
from streaming_job.monitoring.status_log import batch_end, busy_batches, steady_state

MODES = ("prepare", "alone", "stream", "stream_no_scoring", "batch_backfill", "scoring_paired", "ingest")
ALONE_BATCH = 64
STREAM_POLL_SECONDS = 0.2


def prepare(workdir: Path, spec: WorkloadSpec) -> dict:
    """Build the benchmark lake, unless the one in `workdir` was built from the same inputs."""
    existing = load_workload(workdir)
    if reusable(existing, spec, sample_images(Path(spec.images_dir))):
        return {"reused": True, **json.loads(existing.to_json())}
    from streaming_job.session import command_session

    with command_session("fruits-bench-prepare", master="local[*]") as spark:
        workload = build_workload(workdir, spec, spark)
    return {"reused": False, **json.loads(workload.to_json())}


def alone(workload: Workload, runtime: str, batch_size: int = ALONE_BATCH) -> dict:
    """Read + decode + resize + featurize in this one process, the runtime on all cores.

    The limit the stream is compared with: the same images and artifact, decoding
    in a thread pool that overlaps the featurization of the previous chunk, the
    runtime's threads on every core (TensorFlow's default pools; LiteRT's
    interpreter with one thread per core). The build and one warm-up chunk are
    not timed.
    """
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from streaming_job import uris
    from streaming_job.featurizer.model import build_featurizer, load_featurizer_spec
    from streaming_job.featurizer.preprocess import decode_and_resize

    image_uris = workload.image_uris()
    spec = load_featurizer_spec(workload.featurizer_uri(runtime))
    cores = os.cpu_count() or 1
    featurizer = build_featurizer(spec, batch_size=batch_size, threads=cores)
    size = spec.input_size
    decoders = ThreadPoolExecutor(max_workers=cores, thread_name_prefix="decode")

    def load(chunk: list[str]) -> np.ndarray:
        return np.stack(
            list(decoders.map(lambda uri: decode_and_resize(uris.local_path(uri).read_bytes(), size), chunk))
        )

    featurizer.features(load(image_uris[:batch_size]))
    chunks = [image_uris[start : start + batch_size] for start in range(0, len(image_uris), batch_size)]
    produced = 0
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch") as prefetch:
        pending = prefetch.submit(load, chunks[0])
        for position in range(len(chunks)):
            images = pending.result()
            if position + 1 < len(chunks):
                pending = prefetch.submit(load, chunks[position + 1])
            produced += len(featurizer.features(images))
    seconds = time.perf_counter() - started
    decoders.shutdown()
    return {
        "runtime": runtime,
        "model_version": spec.model_version,
        "images": produced,
        "seconds": round(seconds, 3),
        "images_per_s": round(produced / seconds, 2),
        "batch_size": batch_size,
        "threads": cores,
    }


def stream(
    workload: Workload,
    runtime: str,
    master: str,
    available_now: bool,
    max_files_per_trigger: int,
    trigger_seconds: float,
    timeout_seconds: float,
    scoring: bool = True,
) -> dict:
    """The real streaming job (runner.start_stream) over the workload's N manifests.

    With `scoring` (the stream's default) the runtime's classifier is published
    first and every row is scored; without it the job runs with --no-predictions.
    Steady-state images/s comes from the query's progress events (batches after the
    first); wall-clock runs from this function's start (JVM start included) to the
    end of the last micro-batch.
    """
    run = _run_stream(
        workload,
        runtime,
        master,
        timeout_seconds,
        scoring=scoring,
        available_now=available_now,
        max_files_per_trigger=max_files_per_trigger,
        trigger_seconds=trigger_seconds,
    )
    records = run.records
    outputs = _published_rows(workload)
    processed = sum(record["feature_rows"] + record["error_rows"] for record in records)
    wall = batch_end(records[-1]) - run.started_epoch if records else None
    return {
        "runtime": runtime,
        "master": master,
        "cores": run.cores,
        "available_now": available_now,
        "images": processed,
        "feature_rows": outputs["features"],
        "error_rows": outputs["errors"],
        "complete": outputs["features"] + outputs["errors"] == workload.spec.n,
        "scoring": scoring,
        "classifier_version": run.classifier_version,
        "scored_rows": outputs["scored"],
        "max_files_per_trigger": max_files_per_trigger,
        "steady": steady_state(records),
        "wall_s": round(wall, 2) if wall is not None else None,
        "wall_images_per_s": round(processed / wall, 2) if wall else None,
        "first_batch_end_s": round(batch_end(records[0]) - run.started_epoch, 2) if records else None,
        "model_builds": sum(record["model_builds"] for record in records),
        "phase_ms": run.phase_ms,
        "batches": [
            {"rows": record["input_rows"], "duration_ms": record["batch_duration_ms"]} for record in records
        ],
    }


def scoring_paired(
    workload: Workload,
    runtime: str,
    master: str,
    max_files_per_trigger: int,
    trigger_seconds: float,
    timeout_seconds: float,
) -> dict:
    """One real stream whose micro-batches are scored and not in turn (benchmarks/scoring_paired.py).

    Each batch's images/s, whether it was scored, and the rows it wrote with and
    without a prediction (read back from the features table's snapshots).
    """
    from benchmarks.scoring_paired import AlternateScoring
    from fruits_lake.reading import lake_tables, rows_by_batch

    run = _run_stream(
        workload,
        runtime,
        master,
        timeout_seconds,
        scoring=True,
        available_now=False,
        max_files_per_trigger=max_files_per_trigger,
        trigger_seconds=trigger_seconds,
        classifier_swap_type=AlternateScoring,
    )
    records = busy_batches(run.records)
    decided = run.classifier_swap.scored
    if len(decided) != len(records):
        raise RuntimeError(f"{len(decided)} classifier choices for {len(records)} micro-batches")
    written = rows_by_batch(lake_tables(workload.lake_uri)[0])
    batches = [
        {
            "batch_id": record["batch_id"],
            "rows": record["input_rows"],
            "scored": scored,
            "feature_rows": written.get(record["batch_id"], {}).get("rows", 0),
            "scored_rows": written.get(record["batch_id"], {}).get("scored_rows", 0),
            "images_per_s": rate,
        }
        for record, scored, rate in zip(records, decided, batch_rates(records), strict=True)
    ]
    outputs = _published_rows(workload)
    ratios = scoring_pair_ratios(batches)
    return {
        "runtime": runtime,
        "master": master,
        "cores": run.cores,
        "images": sum(record["feature_rows"] + record["error_rows"] for record in records),
        "feature_rows": outputs["features"],
        "error_rows": outputs["errors"],
        "complete": outputs["features"] + outputs["errors"] == workload.spec.n,
        "classifier_version": run.classifier_version,
        "max_files_per_trigger": max_files_per_trigger,
        "batches": batches,
        "pair_ratios": ratios,
        "scored_batch_rows": sum(batch["feature_rows"] for batch in batches if batch["scored"]),
        "scored_rows": sum(batch["scored_rows"] for batch in batches if batch["scored"]),
        "unscored_batch_rows": sum(batch["feature_rows"] for batch in batches if not batch["scored"]),
        "unscored_batch_predictions": sum(batch["scored_rows"] for batch in batches if not batch["scored"]),
    }


@dataclass
class StreamRun:
    """What one benchmark stream left: the listener's records, its classifier swap, the session's cores."""

    records: list[dict]
    classifier_swap: object | None
    classifier_version: str | None
    cores: int
    phase_ms: dict[str, float]
    started_epoch: float


def _run_stream(
    workload: Workload,
    runtime: str,
    master: str,
    timeout_seconds: float,
    scoring: bool,
    classifier_swap_type: type | None = None,
    **options,
) -> StreamRun:
    """Start the job over the workload (its classifier published first when `scoring`), wait for all N
    manifests (or the available-now end), stop it. `options`: the run's stream flags."""
    started_epoch = time.time()
    from streaming_job.query.runner import await_stream, start_stream
    from streaming_job.scoring.classifier_swap import ClassifierSwap
    from streaming_job.session import command_session

    workload.clear_run_outputs()
    classifier_version = workload.publish_classifier(runtime) if scoring else None
    with command_session("fruits-bench-stream", master=master) as spark:
        config = workload.stream_config(runtime, predictions=scoring, **options)
        running = start_stream(spark, config, classifier_swap_type=classifier_swap_type or ClassifierSwap)
        stop = threading.Event()
        if not config.available_now:
            _wait_for_rows(running, workload.spec.n, timeout_seconds)
            stop.set()
        await_stream(spark, running, config, stop)
        busy = [progress for progress in running.query.recentProgress if progress.numInputRows > 0]
        return StreamRun(
            records=sorted(running.listener.records, key=lambda record: record["batch_id"]),
            classifier_swap=running.classifier_swap,
            classifier_version=classifier_version,
            cores=spark.sparkContext.defaultParallelism,
            phase_ms=phase_medians([progress.durationMs for progress in busy][1:]),
            started_epoch=started_epoch,
        )


def phase_medians(durations: list[dict]) -> dict[str, float]:
    """Median time of each phase Spark reports in a progress event (addBatch, queryPlanning, ...)."""
    import statistics

    names = sorted({name for phases in durations for name in phases})
    return {name: statistics.median(phases.get(name, 0) for phases in durations) for name in names}


def _wait_for_rows(running, expected: int, timeout_seconds: float) -> None:
    """Until the stream has processed `expected` manifests; a failed query ends the wait at once."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        records = list(running.listener.records)
        if sum(record["feature_rows"] + record["error_rows"] for record in records) >= expected:
            return
        if not running.query.isActive:
            return  # await_stream re-raises the query's error
        time.sleep(STREAM_POLL_SECONDS)
    raise TimeoutError(f"the stream did not process {expected} images within {timeout_seconds:.0f} s")


def _published_rows(workload: Workload) -> dict[str, int]:
    """Committed feature and error rows, and the feature rows that carry a prediction."""
    from fruits_lake.reading import committed_rows, lake_tables, rows_with_a_prediction

    features, errors = lake_tables(workload.lake_uri)
    return {
        "features": committed_rows(features),
        "errors": committed_rows(errors),
        "scored": rows_with_a_prediction(features)[1],
    }


def ingest(images_dir: Path, n: int) -> dict:
    from benchmarks.ingest_bench import measure_ingest

    return measure_ingest(sample_images(images_dir), n)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.modes", description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=MODES)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--images", type=Path)
    parser.add_argument("--n", type=int)
    parser.add_argument("--input-size", type=int)
    parser.add_argument("--k", type=int)
    parser.add_argument("--runtimes", help="prepare: comma-separated runtimes to build artifacts for")
    parser.add_argument("--runtime", choices=RUNTIMES, default=DEFAULT_RUNTIME)
    parser.add_argument("--master", default="local[*]")
    parser.add_argument("--max-files-per-trigger", type=int, default=StreamConfig.max_files_per_trigger)
    parser.add_argument("--trigger", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--ingest-n", type=int, default=200)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.mode == "prepare":
        spec = WorkloadSpec(
            images_dir=str(args.images.resolve()),
            n=args.n,
            input_size=args.input_size,
            k=args.k,
            runtimes=tuple(args.runtimes.split(",")),
        )
        result = prepare(args.workdir, spec)
    elif args.mode == "ingest":
        result = ingest(args.images, args.ingest_n)
    else:
        workload = load_workload(args.workdir)
        if workload is None:
            print(f"no benchmark workload in {args.workdir}: run the prepare mode first", file=sys.stderr)
            return 2
        if args.runtime not in workload.spec.runtimes:
            print(
                f"the benchmark workload has no {args.runtime} artifacts: prepare it again", file=sys.stderr
            )
            return 2
        if args.mode == "alone":
            result = alone(workload, args.runtime)
        elif args.mode == "scoring_paired":
            result = scoring_paired(
                workload,
                args.runtime,
                args.master,
                max_files_per_trigger=args.max_files_per_trigger,
                trigger_seconds=args.trigger,
                timeout_seconds=args.timeout,
            )
        else:
            result = stream(
                workload,
                args.runtime,
                args.master,
                available_now=args.mode == "batch_backfill",
                max_files_per_trigger=args.max_files_per_trigger,
                trigger_seconds=args.trigger,
                timeout_seconds=args.timeout,
                scoring=args.mode != "stream_no_scoring",
            )
    print(json.dumps(result, sort_keys=True), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
