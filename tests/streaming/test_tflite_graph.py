"""Flatbuffer surgery on the bundled int8 MobileNetV2: the cut at the pooled features and the weights."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from streaming_job.featurizer.model import BUNDLED_MODEL
from streaming_job.featurizer.tflite_graph import (
    GraphError,
    cut_at_pooled_features,
    feature_convolutions,
    featurizer_description,
)

# The file's SHA-256, as its attribution README (models/README.md) states it.
BUNDLED_SHA256 = "5d3137241276e79c86d14a74fe43581398ae0e815191d3dba45495b810840e8c"


@pytest.fixture(scope="module")
def bundled() -> bytes:
    return BUNDLED_MODEL.read_bytes()


def test_the_bundled_model_is_the_attributed_file(bundled):
    assert hashlib.sha256(bundled).hexdigest() == BUNDLED_SHA256
    assert (BUNDLED_MODEL.parent / "LICENSE-Apache-2.0.txt").is_file()
    assert "google-coral/test_data" in (BUNDLED_MODEL.parent / "README.md").read_text()


def test_the_cut_model_outputs_the_pooled_features_for_any_batch(bundled):
    from ai_edge_litert.interpreter import Interpreter

    # GIVEN the bundled classifier cut after its global pool, for 96-px inputs
    cut = cut_at_pooled_features(bundled, 96, {"weights": "w", "input_size": 96})
    interpreter = Interpreter(model_content=cut)
    image = interpreter.get_input_details()[0]
    # THEN its input takes any batch, its one output is the 1280 pooled values, and the classifier is gone
    assert list(image["shape_signature"]) == [-1, 96, 96, 3]
    assert list(interpreter.get_output_details()[0]["shape"])[-1] == 1280
    assert len(cut) < len(bundled) - 1_000_000
    # AND a batch of 4 (which the shipped file cannot run) gives each image's batch-of-1 features
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(4, 96, 96, 3), dtype=np.uint8)
    interpreter.resize_tensor_input(image["index"], [4, 96, 96, 3])
    interpreter.allocate_tensors()
    interpreter.set_tensor(image["index"], images)
    interpreter.invoke()
    batched = interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).reshape(4, -1).copy()
    interpreter.resize_tensor_input(image["index"], [1, 96, 96, 3])
    interpreter.allocate_tensors()
    for row, single in enumerate(images):
        interpreter.set_tensor(image["index"], single[None])
        interpreter.invoke()
        np.testing.assert_array_equal(
            interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).reshape(-1), batched[row]
        )


def test_the_cut_is_deterministic_and_tagged(bundled):
    description = {"weights": "mobilenetv2-imagenet-int8", "input_size": 224}
    first = cut_at_pooled_features(bundled, 224, description)
    assert cut_at_pooled_features(bundled, 224, description) == first
    assert featurizer_description(first) == description
    # the shipped file carries no such tag: it is not a featurizer artifact
    assert featurizer_description(bundled) is None
    # and re-cutting a cut model replaces its tag instead of adding one
    again = cut_at_pooled_features(first, 160, {"weights": "x", "input_size": 160})
    assert featurizer_description(again) == {"weights": "x", "input_size": 160}


def test_feature_convolutions_are_mobilenet_v2s_dequantized(bundled):
    convolutions = feature_convolutions(bundled)
    # before the pool: 35 convolutions and 17 depthwise ones (one per inverted-residual block)
    assert len(convolutions) == 52
    assert sum(conv.depthwise for conv in convolutions) == 17
    first, last = convolutions[0], convolutions[-1]
    assert first.kernel.shape == (32, 3, 3, 3) and first.bias.shape == (32,)
    assert last.kernel.shape == (1280, 1, 1, 320) and last.bias.shape == (1280,)
    assert all(conv.kernel.dtype == np.float32 and np.isfinite(conv.kernel).all() for conv in convolutions)
    # per-channel int8 scales: no channel collapsed to zero
    assert all(
        np.abs(conv.kernel).reshape(-1, conv.kernel.shape[-1]).max(axis=0).min() > 0
        for conv in convolutions
        if conv.depthwise
    )


@pytest.mark.parametrize("data", [b"", b"not a flatbuffer at all", b"\x00" * 64])
def test_anything_else_is_refused_clearly(data):
    with pytest.raises(GraphError, match="not a TFLite flatbuffer"):
        feature_convolutions(data)
