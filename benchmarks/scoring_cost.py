"""What scoring adds to a worker's per-image time, measured where the stream spends it (one process).

    python -m benchmarks.scoring_cost [--workdir work/bench] [--runtime litert] [--rounds 9] [--json-out F]

On the `fruits bench` workload (built by `fruits bench`; its classifier trained by `fruits classifier
train`), a worker's two steps are timed in turn, round after round, on the same chunk of real
images: `featurize_uris` (read, decode, featurize, PCA projection: what every stream row costs
with or without scoring) and `predict_rows` (the classifier on those rows' PCA scores: what
scoring adds). Timing both in one process, interleaved, keeps the machine's load out of their
ratio, which whole-stream runs on a shared machine cannot do (docs/predictions.md). The driver
adds one read of latest.json per micro-batch, not timed here.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from benchmarks.report import add_json_out_argument, report
from streaming_job.featurizer.model import DEFAULT_RUNTIME, RUNTIMES

CHUNK = 256
DEFAULT_ROUNDS = 9


def measure(workdir: Path, runtime: str, rounds: int) -> dict:
    from benchmarks.workload import load_workload
    from streaming_job.featurizer.featurize import featurize_uris
    from streaming_job.featurizer.image_io import ImageReader
    from streaming_job.featurizer.model import build_featurizer, load_featurizer_spec
    from streaming_job.featurizer.pca import load_pca
    from streaming_job.scoring.classifier import load_published, predict_rows
    from streaming_job.session import command_session

    workload = load_workload(workdir)
    if workload is None or runtime not in workload.classifier_pointers:
        raise SystemExit(
            f"no {runtime} benchmark workload with a classifier in {workdir}: run fruits bench first"
        )
    spec = load_featurizer_spec(workload.featurizer_uri(runtime))
    with command_session("fruits-scoring-cost", master="local[1]") as spark:
        projection = load_pca(spark, workload.pca_uri(runtime), spec.model_version)
    classifier = load_published(
        workload.lake_uri, workload.classifier_pointers[runtime], projection.pca_version
    )
    featurizer = build_featurizer(spec, threads=1)  # one task's core, as a stream worker
    reader = ImageReader(2)
    uris = workload.image_uris()[:CHUNK]
    featurize_uris(uris, featurizer, projection, reader)  # warm-up, not timed
    featurize_ms, scoring_ms = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        result = featurize_uris(uris, featurizer, projection, reader)
        featurized = time.perf_counter()
        labels, _, _ = predict_rows(classifier, result.features)
        scored = time.perf_counter()
        featurize_ms.append((featurized - started) * 1000 / len(uris))
        scoring_ms.append((scored - featurized) * 1000 / len(uris))
    share = statistics.median(s / f for s, f in zip(scoring_ms, featurize_ms, strict=True))
    return {
        "runtime": runtime,
        "images_per_round": len(uris),
        "rounds": rounds,
        "scored_rows": sum(label is not None for label in labels),
        "classifier_version": classifier.version,
        "featurize_ms_per_image": round(statistics.median(featurize_ms), 3),
        "scoring_ms_per_image": round(statistics.median(scoring_ms), 4),
        "scoring_share": round(share, 5),
        "worker_ratio_with_scoring": round(1 / (1 + share), 4),
        "load_average": [round(value, 2) for value in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.scoring_cost", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--workdir", type=Path, default=Path("work") / "bench")
    parser.add_argument("--runtime", choices=RUNTIMES, default=DEFAULT_RUNTIME)
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    add_json_out_argument(parser, "docs/data/scoring_cost.json")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    result = measure(args.workdir.resolve(), args.runtime, args.rounds)
    report(result, args.json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
