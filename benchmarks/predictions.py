"""Prediction quality and cost on real images: held-out accuracy, app agreement, size, latency, stream cost.

    python -m benchmarks.predictions [--images DIR] [--workdir DIR] [--json-out docs/data/predictions.json]

On a fresh local lake (default images: ../shared/fruits360-sample beside the repository,
else the bundled sample):

1. the default featurizer (LiteRT int8, 224 px) and a PCA fitted on the training images;
2. the training images (4 in 5, by a hash of their name) uploaded, ingested and streamed, then
   `fruits classifier train` on the lake (its own held-out split by image_id);
3. the never-seen images (1 in 5) uploaded to two lakes with the same models, and streamed
   in both, one-by-one in this process: without scoring (--no-predictions) then with it, the
   steady-state throughput of each (status_log.steady_state, as `fruits bench` and the demo);
4. the stream's predicted_label against the upload labels on the never-seen images;
5. `fruits classifier export-app`, then the app model (LiteRT, one thread) on the same images:
   agreement with the stream, size and per-image latency (decoding excluded).

docs/predictions.md quotes the JSON it writes (tests/benchmarks/test_predictions_doc.py).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import threading
from pathlib import Path

from benchmarks.report import add_json_out_argument, report
from fruits_core import contracts
from fruits_core.lake_uris import join_uri

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_IMAGES = REPO_ROOT.parent / "shared" / "fruits360-sample"
INPUT_SIZE = 224
PCA_IMAGES = 400
BATCH_FILES = 64
PSEUDONYM_KEY = b"benchmark-pseudonym-key-not-for-production"


def say(message: str) -> None:
    print(f"[predictions] {message}", file=sys.stderr, flush=True)


def default_images() -> Path:
    from streaming_job.featurizer.model import BUNDLED_IMAGES

    return SHARED_IMAGES if SHARED_IMAGES.is_dir() else BUNDLED_IMAGES


def stream_config(lake: Path, predictions: bool):
    from streaming_job.config import StreamConfig

    lake_uri = lake.as_uri()
    return StreamConfig(
        lake=lake_uri,
        checkpoint=join_uri(lake_uri, contracts.CHECKPOINTS_PREFIX, "features"),
        featurizer=join_uri(lake_uri, contracts.FEATURIZER_KEY),
        pca=join_uri(lake_uri, contracts.PCA_KEY),
        available_now=True,
        max_files_per_trigger=BATCH_FILES,
        stage="bench",
        predictions=predictions,
    )


def ingest(lake: Path, uploads: Path, images: list[Path]) -> int:
    from fruits_ingest.local import LocalIngest

    from demo.uploads import app_uploads

    local = LocalIngest(uploads, lake.as_uri(), PSEUDONYM_KEY)
    outcomes = [local.process(local.upload(up.data, up.metadata, up.name)) for up in app_uploads(images)]
    return sum(outcome.status == "accepted" for outcome in outcomes)


def stream(spark, lake: Path, predictions: bool) -> dict:
    from streaming_job.monitoring.status_log import steady_state
    from streaming_job.query.runner import await_stream, start_stream

    config = stream_config(lake, predictions)
    running = start_stream(spark, config)
    await_stream(spark, running, config, threading.Event())
    return steady_state(list(running.listener.records))


def run(images_dir: Path, workdir: Path) -> dict:
    from demo.uploads import find_images
    from fruits_classifier.app_model import export_app_model
    from fruits_classifier.evaluation import app_check, prediction_accuracy, scored_rows, split_unseen
    from fruits_classifier.training import train_classifier
    from fruits_lake.reading import read_features
    from streaming_job.featurizer.model import export_featurizer
    from streaming_job.featurizer.pca import fit_pca
    from streaming_job.session import command_session

    images = find_images(images_dir)
    training, unseen = split_unseen(images)
    shutil.rmtree(workdir, ignore_errors=True)
    lake, lake_off = workdir / "lake", workdir / "lake-no-scoring"
    config = stream_config(lake, True)
    say(f"{len(images)} images: {len(training)} to train on, {len(unseen)} never seen")
    export_featurizer(config.featurizer, input_size=INPUT_SIZE)
    with command_session("fruits-predictions-bench", master="local[*]") as spark:
        step = max(1, len(training) // PCA_IMAGES)
        fit_pca(spark, [path.resolve().as_uri() for path in training[::step]], config.featurizer, config.pca)
        say("streaming the training images")
        ingest(lake, workdir / "uploads-train", training)
        stream(spark, lake, predictions=True)
        report = train_classifier(lake.as_uri())
        say(f"classifier {report.classifier.version}: held-out accuracy {report.held_out_accuracy}")
        shutil.copytree(lake / contracts.MODELS_PREFIX, lake_off / contracts.MODELS_PREFIX)
        for target in (lake, lake_off):
            ingest(target, workdir / f"uploads-unseen-{target.name}", unseen)
        say("streaming the never-seen images without, then with scoring")
        without = stream(spark, lake_off, predictions=False)
        with_scoring = stream(spark, lake, predictions=True)
    rows = scored_rows(read_features(lake.as_uri()), report.classifier.version)
    say("exporting the app model")
    app = export_app_model(lake.as_uri(), config.featurizer, config.pca)
    ratio = (
        round(with_scoring["images_per_s"] / without["images_per_s"], 3)
        if with_scoring["images_per_s"] and without["images_per_s"]
        else None
    )
    return {
        "images_dir": images_dir.name,
        "images": len(images),
        "classes": len(report.classifier.labels),
        "train_images": len(training),
        "unseen_images": len(unseen),
        "k": report.classifier.k,
        "classifier_version": report.classifier.version,
        "classifier_bytes": report.as_dict(lake.as_uri())["artifact_bytes"],
        "held_out_rows": report.held_out_rows,
        "held_out_accuracy": report.held_out_accuracy,
        "prediction_accuracy": prediction_accuracy(rows),
        "scored_rows": rows.num_rows,
        **app_check(lake.as_uri(), app, rows),
        "stream_images_per_s_without_scoring": without["images_per_s"],
        "stream_images_per_s_with_scoring": with_scoring["images_per_s"],
        "stream_scoring_ratio": ratio,
        "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.predictions", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--images", type=Path, default=None, help="<label>/<image> folders (default: shared)")
    parser.add_argument("--workdir", type=Path, default=Path("work") / "predictions")
    add_json_out_argument(parser, "docs/data/predictions.json")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    result = run(args.images or default_images(), args.workdir)
    report(result, args.json_out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
