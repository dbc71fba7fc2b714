"""Each bad input of training and of the classifier swap: one clear line, the stream unharmed."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from fruits_classifier.training import MIN_ROWS_PER_CLASS, check_rows
from streaming_job import uris
from streaming_job.scoring.classifier import (
    Classifier,
    ClassifierError,
    artifact_uri,
    from_bytes,
    latest_uri,
    to_bytes,
)
from streaming_job.scoring.classifier_swap import ClassifierSwap

LABELS = {"apple", "lemon"}


def rows(labels: list[str], pca_versions: list[str] | None = None) -> pa.Table:
    count = len(labels)
    return pa.table(
        {
            "image_id": [f"{index:032x}" for index in range(count)],
            "label": labels,
            "features": [[float(index), 1.0] for index in range(count)],
            "pca_version": pca_versions or ["pca-a"] * count,
        }
    )


def enough(label: str) -> list[str]:
    return [label] * MIN_ROWS_PER_CLASS


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (rows([]), "no labelled rows"),
        (
            rows(enough("apple") + enough("lemon"), ["pca-a"] * 8 + ["pca-b"] * 8),
            "mixes PCA versions pca-a, pca-b",
        ),
        (rows(enough("apple") + enough("lemon") + ["durian"]), "unknown label(s) durian"),
        (rows([*enough("apple"), "lemon"]), "too few labelled rows for lemon (1)"),
        (rows(enough("apple")), "only one class"),
    ],
)
def test_training_refuses_bad_tables_in_one_line(table, message):
    with pytest.raises(ClassifierError) as refused:
        check_rows(table, snapshot_id=1, allowed_labels=LABELS)
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_good_rows_pass_with_their_scores():
    checked = check_rows(rows(enough("apple") + enough("lemon")), snapshot_id=7, allowed_labels=LABELS)
    assert checked.scores.shape == (16, 2) and checked.pca_version == "pca-a" and checked.snapshot_id == 7


def classifier(version: str, pca_version: str = "pca-a") -> Classifier:
    generator = np.random.default_rng(len(version))
    weights = (
        generator.normal(size=(2, 3)).astype(np.float32),
        generator.normal(size=(3, 2)).astype(np.float32),
    )
    biases = (np.zeros(3, np.float32), np.zeros(2, np.float32))
    return Classifier(version, pca_version, ("apple", "lemon"), weights, biases)


def publish(lake: str, model: Classifier, data: bytes | None = None) -> None:
    whole = to_bytes(model)
    uris.write_bytes(artifact_uri(lake, model.version), data if data is not None else whole)
    pointer = {"version": model.version, "sha256": hashlib.sha256(whole).hexdigest(), "size": len(whole)}
    uris.write_bytes(latest_uri(lake), json.dumps(pointer).encode())


def test_the_swap_keeps_the_previous_classifier_on_every_bad_publication(tmp_path: Path, caplog):
    lake = tmp_path.as_uri()
    broadcasts: list[str] = []
    swap = ClassifierSwap(lake, "pca-a", lambda model: broadcasts.append(model.version) or model.version)
    # GIVEN no classifier yet: nothing to score with
    assert swap.for_batch() is None
    # WHEN one is published THEN the next batch uses it, broadcast once however many batches follow
    publish(lake, classifier("clf-1"))
    assert swap.for_batch() == "clf-1" and swap.for_batch() == "clf-1" and broadcasts == ["clf-1"]
    # WHEN a truncated file, one for another PCA version, or a broken pointer is published
    whole = to_bytes(classifier("clf-2"))
    publish(lake, classifier("clf-2"), data=whole[: len(whole) // 2])
    assert swap.for_batch() == "clf-1"
    publish(lake, classifier("clf-3", pca_version="pca-b"))
    assert swap.for_batch() == "clf-1"
    uris.write_bytes(latest_uri(lake), b"{not json")
    assert swap.for_batch() == "clf-1"
    # THEN each is one line naming why, and the batches keep scoring with clf-1
    assert "truncated or altered" in swap.refused[0]
    assert "trained on pca-b" in swap.refused[1] and "retrain" in swap.refused[1]
    assert "not a classifier pointer" in swap.refused[2]
    assert all("\n" not in message for message in swap.refused)
    # AND a good publication after them is picked up
    publish(lake, classifier("clf-4"))
    assert swap.for_batch() == "clf-4" and broadcasts == ["clf-1", "clf-4"]


def test_an_artifact_that_is_not_one_is_refused():
    with pytest.raises(ClassifierError, match="is not a classifier artifact"):
        from_bytes(b"PK\x03\x04 not really", "x.npz")


def test_numpy_scoring_is_a_softmax_over_the_dense_layers():
    model = classifier("clf-1")
    scores = np.array([[0.5, -1.0], [2.0, 0.0]], dtype=np.float32)
    hidden = np.maximum(scores @ model.weights[0] + model.biases[0], 0)
    logits = hidden @ model.weights[1] + model.biases[1]
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(model.probabilities(scores), expected, rtol=1e-5)
    labels, confidence = model.predict(scores)
    assert labels == [model.labels[i] for i in expected.argmax(axis=1)]
    np.testing.assert_allclose(confidence, expected.max(axis=1), rtol=1e-5)
