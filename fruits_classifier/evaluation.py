"""Measuring predictions on images the classifier never saw: shared by `fruits demo` and the benchmark.

`split_unseen` keeps a fixed share of the images (by a hash of their `<label>/<name>`)
out of training; after they are streamed with the classifier published, the
stream's predicted_label is compared with their upload label, and the app model
(LiteRT, one thread, as on a phone) is run on their clean images to measure its
agreement with the stream and its per-image latency.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from fruits_core import contracts
from fruits_core.lake_uris import join_uri
from streaming_job import uris

UNSEEN_ONE_IN = 5


def is_unseen(path: Path) -> bool:
    """Whether an image file is kept out of training (the same answer on every run and machine)."""
    name = f"{path.parent.name}/{path.name}"
    return int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) % UNSEEN_ONE_IN == 0


def split_unseen(images: list[Path]) -> tuple[list[Path], list[Path]]:
    """(training images, never-seen images)."""
    return [path for path in images if not is_unseen(path)], [path for path in images if is_unseen(path)]


def scored_rows(features: pa.Table, classifier_version: str) -> pa.Table:
    """The labelled rows the stream scored with `classifier_version`."""
    versions = features.column("classifier_version").to_pylist()
    labels = features.column("label").to_pylist()
    keep = [
        version == classifier_version and label is not None
        for version, label in zip(versions, labels, strict=True)
    ]
    return features.filter(pa.array(keep))


def prediction_accuracy(rows: pa.Table) -> float | None:
    """Share of rows whose predicted_label is their upload label (None: no row)."""
    if rows.num_rows == 0:
        return None
    hits = sum(
        predicted == label
        for predicted, label in zip(
            rows.column("predicted_label").to_pylist(), rows.column("label").to_pylist(), strict=True
        )
    )
    return round(hits / rows.num_rows, 4)


def app_check(lake_uri: str, app_latest: dict, rows: pa.Table) -> dict:
    """The app model on the rows' clean images: agreement with the stream's label, size and latency."""
    from fruits_classifier.app_model import AppRunner
    from streaming_job.featurizer.preprocess import decode_and_resize

    model = uris.read_bytes(join_uri(lake_uri, app_latest["model"]))
    labels = uris.read_bytes(join_uri(lake_uri, app_latest["labels"])).decode().split()
    runner = AppRunner(model, threads=1)
    size = runner.input_shape[1]
    agree, latencies = 0, []
    for image_id, uploaded_at, predicted in zip(
        rows.column("image_id").to_pylist(),
        rows.column("uploaded_at").to_pylist(),
        rows.column("predicted_label").to_pylist(),
        strict=True,
    ):
        key = contracts.clean_image_key(contracts.partition_date(uploaded_at), image_id)
        image = decode_and_resize(uris.read_bytes(join_uri(lake_uri, key)), size)
        started = time.perf_counter()
        probabilities = runner.probabilities(image)
        latencies.append((time.perf_counter() - started) * 1000.0)
        agree += labels[int(np.argmax(probabilities))] == predicted
    count = rows.num_rows
    return {
        "app_model_bytes": len(model),
        "app_agreement": round(agree / count, 4) if count else None,
        "app_images": count,
        "app_latency_ms_p50": round(float(np.percentile(latencies, 50)), 2) if latencies else None,
        "app_latency_ms_p95": round(float(np.percentile(latencies, 95)), 2) if latencies else None,
        "app_quantisation": app_latest["quantisation"],
    }
