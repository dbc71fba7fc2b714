"""One scored lake for the classifier tests: streamed, trained on, streamed again with a hot swap.

Built once per session (Spark, TensorFlow): 100 labelled bundled images streamed with no
classifier, a classifier trained on them, then 20 more uploads streamed in two micro-batches
while a second classifier is published during the first (the hot swap).
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from fruits_core import contracts
from tests.streaming.stream_testkit import every_nth, ingest_images, stream_config

SECOND_RUN_IMAGES = 20
SECOND_RUN_BATCH = 10


def publish_copy(lake_uri: str, classifier, version: str):
    """Publish `classifier`'s weights again under another version (what a retraining would do)."""
    import hashlib
    import json
    from dataclasses import replace

    from streaming_job import uris
    from streaming_job.scoring.classifier import artifact_uri, latest_uri, to_bytes

    copy = replace(classifier, version=version)
    data = to_bytes(copy)
    uris.write_bytes(artifact_uri(lake_uri, version), data)
    pointer = {"version": version, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    uris.write_bytes(latest_uri(lake_uri), json.dumps(pointer).encode())
    return copy


@pytest.fixture(scope="session")
def scored_lake(spark, models, sample_image_paths, tmp_path_factory):
    from fruits_classifier.training import train_classifier
    from fruits_lake.reading import read_features
    from streaming_job.query.runner import await_stream, start_stream
    from streaming_job.scoring.classifier_swap import ClassifierSwap

    featurizer_uri, pca_uri = models
    root = tmp_path_factory.mktemp("scored")
    lake = root / "lake"
    (lake / contracts.MODELS_PREFIX).mkdir(parents=True)
    shutil.copy(Path(featurizer_uri.removeprefix("file://")), lake / contracts.FEATURIZER_KEY)
    featurizer = (lake / contracts.FEATURIZER_KEY).as_uri()
    ingest_images(lake, root / "uploads", sample_image_paths)
    config = stream_config(lake, featurizer, pca_uri, "--available-now")
    await_stream(spark, start_stream(spark, config), config, threading.Event())
    first_rows = read_features(lake.as_uri())
    report = train_classifier(lake.as_uri())

    swapped: dict = {}

    class PublishDuringFirstBatch(ClassifierSwap):
        """The hook: a second classifier is published right after the first batch's boundary check."""

        def for_batch(self):
            broadcast = super().for_batch()
            if not swapped:
                swapped["first"] = self.current.version
                swapped["second"] = publish_copy(lake.as_uri(), report.classifier, "clf-test-second").version
            return broadcast

    again = every_nth(sample_image_paths[1:], SECOND_RUN_IMAGES)
    ingest_images(lake, root / "uploads-2", again)
    config = stream_config(
        lake, featurizer, pca_uri, "--available-now", "--max-files-per-trigger", str(SECOND_RUN_BATCH)
    )
    running = start_stream(spark, config, classifier_swap_type=PublishDuringFirstBatch)
    await_stream(spark, running, config, threading.Event())
    return {
        "lake": lake,
        "featurizer": featurizer,
        "pca": pca_uri,
        "first_rows": first_rows,
        "report": report,
        "rows": read_features(lake.as_uri()),
        "swapped": swapped,
    }
