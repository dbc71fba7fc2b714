"""`fruits classifier train`: a Keras classifier of the fruit label, trained on the lake's features table.

The same function serves the CLI and a notebook (`train_classifier(lake_uri)`):

1. the labelled rows of the current features table (rows without a label are not used), checked:
   one PCA version, known labels only, at least MIN_ROWS_PER_CLASS rows per class;
2. a deterministic split by image_id (SHA-256 of the id, one row in HELD_OUT_ONE_IN held out),
   so the same table always gives the same split, whatever the run;
3. a small dense network (standardised k PCA scores -> ReLU layer -> softmax), trained
   deterministically (fixed seed, one thread, op determinism);
4. held-out accuracy, per-class precision/recall and a confusion matrix;
5. the weights exported for NumPy (streaming_job.scoring.classifier), the standardisation folded into
   the first layer, published under `<lake>/models/classifier/<version>/` (never overwritten)
   with latest.json pointing at it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from fruits_core import contracts
from fruits_core.clock import utc_now
from fruits_core.lake_uris import join_uri
from streaming_job import uris
from streaming_job.scoring.classifier import (
    Classifier,
    ClassifierError,
    artifact_uri,
    latest_uri,
    to_bytes,
    weights_digest,
)

log = logging.getLogger(__name__)

SEED = 20240917
HELD_OUT_ONE_IN = 5
MIN_ROWS_PER_CLASS = 8
HIDDEN_UNITS = 64
EPOCHS = 80
BATCH_SIZE = 32
LEARNING_RATE = 3e-3
METRICS_NAME = "metrics.json"
CONFUSION_PLOT_NAME = "confusion_matrix.png"
# The ingest's canonical labels: a row whose label is not one of them did not come through the ingest.
VOCABULARY_FILE = Path(__file__).resolve().parents[1] / "lambdas/ingest/fruits_ingest/label_vocabulary.json"


@dataclass(frozen=True)
class LabelledRows:
    image_ids: list[str]
    labels: list[str]
    scores: np.ndarray  # [N, k] float32
    pca_version: str
    snapshot_id: int


@dataclass(frozen=True)
class TrainingReport:
    classifier: Classifier
    train_rows: int
    held_out_rows: int
    held_out_accuracy: float
    per_class: dict[str, dict[str, float]]  # label -> precision, recall, support
    confusion: list[list[int]]  # rows: true label, columns: predicted (classifier.labels order)
    published: bool  # False: this exact version was already in the lake

    def as_dict(self, lake_uri: str) -> dict:
        version = self.classifier.version
        return {
            "classifier_version": version,
            "pca_version": self.classifier.pca_version,
            "labels": list(self.classifier.labels),
            "train_rows": self.train_rows,
            "held_out_rows": self.held_out_rows,
            "held_out_accuracy": self.held_out_accuracy,
            "per_class": self.per_class,
            "confusion_matrix": self.confusion,
            "artifact": artifact_uri(lake_uri, version),
            "artifact_bytes": len(to_bytes(self.classifier)),
            "confusion_matrix_png": join_uri(lake_uri, "models/classifier", version, CONFUSION_PLOT_NAME),
            "published": self.published,
        }


def known_labels() -> set[str]:
    return set(json.loads(VOCABULARY_FILE.read_text(encoding="utf-8")))


def is_held_out(image_id: str) -> bool:
    """The deterministic split: a fixed share of image ids, by their SHA-256 (never at random per run)."""
    return int(hashlib.sha256(image_id.encode()).hexdigest()[:8], 16) % HELD_OUT_ONE_IN == 0


def labelled_rows(lake_uri: str, allowed_labels: set[str] | None = None) -> LabelledRows:
    """The labelled rows of the current features table, or ClassifierError naming what is wrong."""
    from pyiceberg.exceptions import NoSuchTableError

    from fruits_lake.reading import lake_tables

    if not uris.holds_anything(join_uri(lake_uri, contracts.MODELS_PREFIX)):
        raise ClassifierError(
            f"{lake_uri} has no {contracts.MODELS_PREFIX} (no featurizer, no PCA): "
            "not a lake the stream ran on"
        )
    try:
        features, _ = lake_tables(lake_uri)
    except NoSuchTableError as error:
        raise ClassifierError(f"{lake_uri} has no features table yet: run the stream first") from error
    snapshot = features.current_snapshot()
    table = features.scan(selected_fields=("image_id", "label", "features", "pca_version")).to_arrow()
    table = table.filter(pa.compute.is_valid(table.column("label")))
    return check_rows(table, snapshot.snapshot_id if snapshot else 0, allowed_labels or known_labels())


def check_rows(table: pa.Table, snapshot_id: int, allowed_labels: set[str]) -> LabelledRows:
    if table.num_rows == 0:
        raise ClassifierError("the features table has no labelled rows: nothing to train on")
    versions = sorted(set(table.column("pca_version").to_pylist()))
    if len(versions) > 1:
        raise ClassifierError(f"the features table mixes PCA versions {', '.join(versions)}: train on one")
    labels = table.column("label").to_pylist()
    unknown = sorted(set(labels) - allowed_labels)
    if unknown:
        raise ClassifierError(f"unknown label(s) {', '.join(unknown)}: not in the ingest's label vocabulary")
    counts = {label: labels.count(label) for label in sorted(set(labels))}
    if len(counts) < 2:
        raise ClassifierError(f"only one class ({labels[0]}) is labelled: a classifier needs two or more")
    scarce = {label: count for label, count in counts.items() if count < MIN_ROWS_PER_CLASS}
    if scarce:
        listed = ", ".join(f"{label} ({count})" for label, count in scarce.items())
        raise ClassifierError(f"too few labelled rows for {listed}: at least {MIN_ROWS_PER_CLASS} per class")
    scores = np.asarray(table.column("features").to_pylist(), dtype=np.float32)
    return LabelledRows(table.column("image_id").to_pylist(), labels, scores, versions[0], snapshot_id)


def _deterministic_tensorflow():
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        log.info("TensorFlow already started: its thread pools keep their size (results stay deterministic)")
    tf.config.experimental.enable_op_determinism()
    return tf


def fit(scores: np.ndarray, targets: np.ndarray, classes: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Train the network; return its dense layers with the input standardisation folded into the first."""
    import keras

    _deterministic_tensorflow()
    keras.utils.set_random_seed(SEED)
    mean = scores.mean(axis=0)
    scale = scores.std(axis=0) + 1e-6
    model = keras.Sequential(
        [
            keras.Input((scores.shape[1],)),
            keras.layers.Dense(HIDDEN_UNITS, activation="relu"),
            keras.layers.Dense(classes, activation="softmax"),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss="sparse_categorical_crossentropy")
    model.fit((scores - mean) / scale, targets, epochs=EPOCHS, batch_size=BATCH_SIZE, shuffle=True, verbose=0)
    (w0, b0), (w1, b1) = (layer.get_weights() for layer in model.layers)
    folded_w0 = (w0 / scale[:, None]).astype(np.float32)
    folded_b0 = (b0 - (mean / scale) @ w0).astype(np.float32)
    return [folded_w0, w1.astype(np.float32)], [folded_b0, b1.astype(np.float32)]


def evaluate(classifier: Classifier, scores: np.ndarray, labels: list[str]) -> tuple[float, dict, list]:
    """(accuracy, per-class precision/recall/support, confusion matrix) on held-out rows."""
    predicted, _ = classifier.predict(scores)
    names = list(classifier.labels)
    confusion = np.zeros((len(names), len(names)), dtype=int)
    for truth, guess in zip(labels, predicted, strict=True):
        confusion[names.index(truth), names.index(guess)] += 1
    per_class = {}
    for position, name in enumerate(names):
        predicted_as = confusion[:, position].sum()
        support = confusion[position].sum()
        per_class[name] = {
            "precision": round(float(confusion[position, position] / predicted_as), 4)
            if predicted_as
            else None,
            "recall": round(float(confusion[position, position] / support), 4) if support else None,
            "support": int(support),
        }
    accuracy = float(np.trace(confusion) / max(1, confusion.sum()))
    return round(accuracy, 4), per_class, confusion.tolist()


def train_classifier(lake_uri: str, allowed_labels: set[str] | None = None) -> TrainingReport:
    """Train, evaluate and publish the classifier of the lake's features table (ClassifierError: refused)."""
    rows = labelled_rows(lake_uri, allowed_labels)
    held = np.array([is_held_out(image_id) for image_id in rows.image_ids])
    names = tuple(sorted(set(rows.labels)))
    targets = np.array([names.index(label) for label in rows.labels])
    missing = sorted(set(names) - {names[index] for index in targets[~held]})
    if missing or held.sum() == 0:
        raise ClassifierError(
            f"the split by image_id leaves no training rows for {', '.join(missing)}"
            if missing
            else "the split by image_id holds out no row: label more images"
        )
    weights, biases = fit(rows.scores[~held], targets[~held], len(names))
    digest = weights_digest(tuple(weights), tuple(biases))
    version = f"clf-{rows.snapshot_id}-{rows.pca_version}-{digest}"
    classifier = Classifier(version, rows.pca_version, names, tuple(weights), tuple(biases))
    held_labels = [label for label, out in zip(rows.labels, held, strict=True) if out]
    accuracy, per_class, confusion = evaluate(classifier, rows.scores[held], held_labels)
    report = TrainingReport(
        classifier, int((~held).sum()), int(held.sum()), accuracy, per_class, confusion, False
    )
    published = publish(lake_uri, report)
    return TrainingReport(**{**report.__dict__, "published": published})


def publish(lake_uri: str, report: TrainingReport) -> bool:
    """Write the version's files unless they exist (never overwritten), then point latest.json at it."""
    from fruits_classifier.plots import confusion_matrix_plot

    classifier = report.classifier
    target = artifact_uri(lake_uri, classifier.version)
    data = to_bytes(classifier)
    fresh = not uris.exists(target)
    if fresh:
        folder = join_uri(lake_uri, "models/classifier", classifier.version)
        uris.write_bytes(
            join_uri(folder, METRICS_NAME), json.dumps(report.as_dict(lake_uri), indent=2).encode()
        )
        png = confusion_matrix_plot(report.confusion, list(classifier.labels), classifier.version)
        uris.write_bytes(join_uri(folder, CONFUSION_PLOT_NAME), png)
        uris.write_bytes(target, data)
    else:
        data = uris.read_bytes(target)
    pointer = {
        "version": classifier.version,
        "pca_version": classifier.pca_version,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "published_at": contracts.iso_utc(utc_now()),
    }
    # Written last: a stream that reads it finds the artifact complete.
    uris.write_bytes(latest_uri(lake_uri), json.dumps(pointer, indent=2).encode())
    log.info("classifier %s %s", classifier.version, "published" if fresh else "already in the lake")
    return fresh
