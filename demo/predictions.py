"""The demo's prediction phase: train the classifier on the lake, then score the demo's uploads.

Before the demo's own uploads, the training images (the bundled sample, or
`--train-images DIR`, less the 1 in 5 that `fruits_classifier.evaluation` keeps
unseen) are uploaded and streamed like any upload; `fruits classifier train`
then runs on the lake and publishes, and the running stream picks the classifier
up at its next micro-batch boundary: every demo upload after it is scored.
`prediction_accuracy` compares the stream's predicted_label with the upload label
on the demo images whose `<label>/<name>` was not trained on. A training refusal
(too few labelled images, ...) is reported in the summary, and the demo goes on.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from demo.uploads import app_uploads
from fruits_core import contracts

# Another seed than the demo uploads': other GPS EXIF, hence other bytes and image_ids.
TRAINING_UPLOAD_SEED = 11


@dataclass
class TrainingPhase:
    names: set[str] = field(default_factory=set)  # `<label>/<name>` of the images trained on
    rows: int = 0  # table rows (features + errors) the training uploads produced
    report: object | None = None  # fruits_classifier.training.TrainingReport
    refused: str | None = None


def say(message: str) -> None:
    print(f"[demo] {message}", file=sys.stderr, flush=True)


def image_name(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def reset_classifier(lake: Path, training_uploads: Path) -> None:
    """A re-run starts with no classifier: the one of an earlier run would score the training uploads."""
    shutil.rmtree(training_uploads, ignore_errors=True)
    shutil.rmtree(lake / contracts.MODELS_PREFIX / "classifier", ignore_errors=True)
    shutil.rmtree(lake / contracts.APP_MODEL_PREFIX, ignore_errors=True)


def training_images(train_dir: Path) -> list[Path]:
    from demo.uploads import find_images
    from fruits_classifier.evaluation import split_unseen

    return split_unseen(find_images(train_dir))[0]


def train_phase(
    uploads_dir: Path, lake_uri: str, pseudonym_key: bytes, images: list[Path], timeout_seconds: float
) -> TrainingPhase:
    """Upload and stream the training images, wait for them in the tables, train and publish."""
    from fruits_ingest.local import LocalIngest

    from fruits_classifier.training import train_classifier
    from fruits_lake.reading import committed_rows, lake_tables
    from streaming_job.scoring.classifier import ClassifierError

    phase = TrainingPhase(names={image_name(path) for path in images})
    say(f"uploading {len(images)} training images")
    ingest = LocalIngest(uploads_dir, lake_uri, pseudonym_key)
    outcomes = [
        ingest.process(ingest.upload(upload.data, upload.metadata, f"TRAIN_{upload.name}"))
        for upload in app_uploads(images, seed=TRAINING_UPLOAD_SEED)
    ]
    phase.rows = sum(outcome.status == "accepted" for outcome in outcomes)
    features, errors = lake_tables(lake_uri)
    deadline = time.monotonic() + timeout_seconds
    while committed_rows(features.refresh()) + committed_rows(errors.refresh()) < phase.rows:
        if time.monotonic() > deadline:
            phase.refused = "the training images were not all streamed in time"
            return phase
        time.sleep(0.5)
    try:
        phase.report = train_classifier(lake_uri)
    except ClassifierError as error:
        phase.refused = str(error)
        say(f"no classifier: {error}")
        return phase
    say(
        f"classifier {phase.report.classifier.version} published "
        f"(held-out accuracy {phase.report.held_out_accuracy})"
    )
    return phase


def prediction_summary(
    phase: TrainingPhase, features: pa.Table, scored_images: dict[str, Path], plots_dir: Path, config, spark
) -> tuple[dict, list[Path]]:
    """The summary's prediction figures, the confusion-matrix plot of the stream's predictions, the app model.

    `scored_images`: image_id -> source image of the demo's accepted uploads. The app model is exported
    (`fruits classifier export-app`) and checked against the stream's predictions of those images.
    """
    from fruits_classifier.app_model import export_app_model
    from fruits_classifier.evaluation import app_check, prediction_accuracy
    from fruits_classifier.plots import confusion_matrix_plot
    from streaming_job import uris
    from streaming_job.scoring.classifier import to_bytes

    featurizer_bytes = len(uris.read_bytes(config.featurizer))
    if phase.report is None:
        return {
            "prediction_accuracy": None,
            "predictions_refused": phase.refused,
            "training_uploads": phase.rows,
        }, []
    classifier = phase.report.classifier
    ids = features.column("image_id").to_pylist()
    unseen = [
        image_id in scored_images and image_name(scored_images[image_id]) not in phase.names
        for image_id in ids
    ]
    versions = features.column("classifier_version").to_pylist()
    rows = features.filter(
        pa.array(
            [keep and version == classifier.version for keep, version in zip(unseen, versions, strict=True)]
        )
    )
    labels = list(classifier.labels)
    confusion = [[0] * len(labels) for _ in labels]
    for truth, guess in zip(
        rows.column("label").to_pylist(), rows.column("predicted_label").to_pylist(), strict=True
    ):
        if truth in labels:
            confusion[labels.index(truth)][labels.index(guess)] += 1
    plot = plots_dir / "confusion_matrix.png"
    plot.write_bytes(confusion_matrix_plot(confusion, labels, f"stream predictions, {classifier.version}"))
    say("exporting the app model (featurizer + PCA + classifier in one .tflite)")
    app = app_check(config.lake, export_app_model(config.lake, config.featurizer, config.pca, spark), rows)
    summary = {
        "prediction_accuracy": prediction_accuracy(rows),
        "prediction_images": rows.num_rows,
        "held_out_accuracy": phase.report.held_out_accuracy,
        "trained_on": phase.report.train_rows,
        "training_uploads": phase.rows,
        "classifier_version": classifier.version,
        "model_bytes": {
            "featurizer": featurizer_bytes,
            "classifier": len(to_bytes(classifier)),
            "app_model": app["app_model_bytes"],
        },
        "app_agreement": app["app_agreement"],
        "app_latency_ms_p50": app["app_latency_ms_p50"],
    }
    return summary, [plot]
