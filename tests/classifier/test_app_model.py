"""The app's one on-device model: exported from the lake, run by LiteRT, agreeing with the stream."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

pytestmark = [pytest.mark.spark, pytest.mark.tf, pytest.mark.slow]


@pytest.fixture(scope="module")
def exported(scored_lake):
    from fruits_classifier.app_model import export_app_model

    lake = scored_lake["lake"].as_uri()
    return export_app_model(lake, scored_lake["featurizer"], scored_lake["pca"])


def test_the_app_model_is_one_tflite_with_its_labels_and_pointer(scored_lake, exported):
    lake = scored_lake["lake"]
    model = (lake / exported["model"]).read_bytes()
    # THEN latest.json names the file by size and SHA-256, and the labels file lists the classes in order
    assert json.loads((lake / "models/app/latest.json").read_text()) == exported
    assert exported["size"] == len(model) and exported["sha256"] == hashlib.sha256(model).hexdigest()
    labels = (lake / exported["labels"]).read_text().split()
    assert labels == list(scored_lake["report"].classifier.labels)
    assert exported["input"]["shape"] == [1, 96, 96, 3] and exported["input"]["dtype"] == "uint8"
    # AND the phone finds it by its one signature, as with a Keras export: `image` in, `output_0` out
    from ai_edge_litert.interpreter import Interpreter

    signatures = Interpreter(model_content=model).get_signature_list()
    assert signatures == {"serving_default": {"inputs": ["image"], "outputs": ["output_0"]}}


def test_the_app_model_agrees_with_the_stream_on_held_out_images(scored_lake, exported):
    from fruits_classifier.app_model import AppRunner, stream_predictions
    from streaming_job.scoring.classifier import load_published, read_pointer

    lake = scored_lake["lake"].as_uri()
    classifier = load_published(lake, read_pointer(lake), exported["pca_version"])
    runner = AppRunner((scored_lake["lake"] / exported["model"]).read_bytes())
    # GIVEN the lake's held-out images, decoded as the stream does, and the stream's label for each
    images, expected = stream_predictions(lake, classifier, 96)
    assert len(images) == exported["agreement_images"] >= 15
    # WHEN the app model runs on each (uint8 RGB in, one probability per label out)
    outputs = np.stack([runner.probabilities(image) for image in images])
    np.testing.assert_allclose(outputs.sum(axis=1), 1.0, rtol=1e-4)
    predicted = [classifier.labels[index] for index in outputs.argmax(axis=1)]
    agreeing = np.mean([label == want for label, want in zip(predicted, expected, strict=True)])
    # THEN it agrees with the stream as often as the export measured, and nearly always
    assert agreeing == pytest.approx(exported["agreement_with_stream"], abs=1e-4)
    assert agreeing >= 0.9
