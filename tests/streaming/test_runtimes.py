"""The two runtimes of the bundled ImageNet MobileNetV2: artifacts, parity, quality, no network.

Quality is measured on the 100 bundled real images (4 fruits): the k-fold linear
probe of the label on each runtime's features and on their PCA scores, against
the seeded (random-weight) model's, which is printed for comparison.
"""

from __future__ import annotations

import functools
import json
import pickle
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from demo.quality import first_component_share, linear_probe_accuracy
from streaming_job.featurizer.model import (
    FeaturizerError,
    build_featurizer,
    export_featurizer,
    is_random_weights,
    load_featurizer_spec,
)
from streaming_job.featurizer.pca import principal_components
from streaming_job.featurizer.preprocess import decode_and_resize
from streaming_job.featurizer.runtimes import KerasFeaturizer, LiteRtFeaturizer
from tests.streaming.featurizer_testkit import TEST_INPUT_SIZE, litert_featurizer, litert_spec, seeded_spec

pytestmark = pytest.mark.tf

QUALITY_INPUT_SIZE = 224
MIN_PROBE_ACCURACY = 0.97
MIN_MEDIAN_COSINE = 0.98


@functools.cache
def _features_224(weights: str, runtime: str, images_dir: Path) -> tuple[np.ndarray, list[str]]:
    """Features of every bundled image at 224 px, and their labels, from a fresh export."""
    suffix = ".tflite" if runtime == "litert" else ".keras"
    out = Path(tempfile.mkdtemp(prefix="fruits-test-quality-")) / f"featurizer{suffix}"
    export_featurizer(out.as_uri(), input_size=QUALITY_INPUT_SIZE, weights=weights)
    featurizer = build_featurizer(load_featurizer_spec(out.as_uri()), threads=2)
    paths = sorted(images_dir.glob("*/*.jpg"))
    images = np.stack([decode_and_resize(path.read_bytes(), QUALITY_INPUT_SIZE) for path in paths])
    return featurizer.features(images), [path.parent.name for path in paths]


def _pca_scores(features: np.ndarray, target_variance: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """The project's own PCA maths: (scores on the components reaching the target, variance ratios)."""
    centred = features.astype(np.float64) - features.mean(axis=0)
    components, ratios = principal_components(np.cov(centred, rowvar=False))
    k = int(np.searchsorted(np.cumsum(ratios), target_variance)) + 1
    return centred @ components[:, :k], ratios


def test_the_default_artifact_is_the_imagenet_model_in_litert():
    uri, version = litert_featurizer()
    spec = litert_spec()
    # its version names the weights, the runtime and the input size
    assert re.fullmatch(rf"mobilenetv2-imagenet-int8-litert-{TEST_INPUT_SIZE}-[0-9a-f]{{12}}", version)
    assert spec.model_version == version and uri.endswith(".tflite")
    assert (spec.runtime, spec.input_size, spec.feature_dim) == ("litert", TEST_INPUT_SIZE, 1280)
    assert not is_random_weights(version) and is_random_weights(seeded_spec().model_version)
    # it is small to broadcast (the int8 bytes, without the classifier)
    assert len(pickle.dumps(spec)) < 3_000_000


def test_the_litert_export_is_deterministic(tmp_path):
    again = tmp_path / "featurizer.tflite"
    assert export_featurizer(again.as_uri(), input_size=TEST_INPUT_SIZE) == litert_featurizer()[1]
    assert again.read_bytes() == Path(litert_featurizer()[0].removeprefix("file://")).read_bytes()


@pytest.mark.parametrize(
    ("out", "weights", "message"),
    [
        ("featurizer.tflite", "seeded", "needs --runtime keras"),
        ("featurizer.tflite", "imagenet", "needs --runtime keras"),
        ("featurizer.onnx", "imagenet-int8", r"a \.tflite or \.keras file"),
    ],
)
def test_impossible_exports_are_refused(tmp_path, out, weights, message):
    with pytest.raises(FeaturizerError, match=message):
        export_featurizer((tmp_path / out).as_uri(), weights=weights)
    assert not (tmp_path / out).exists()


def test_a_foreign_or_broken_tflite_file_is_refused(tmp_path):
    from streaming_job.featurizer.model import BUNDLED_MODEL

    foreign = tmp_path / "classifier.tflite"
    foreign.write_bytes(BUNDLED_MODEL.read_bytes())
    with pytest.raises(FeaturizerError, match="not one written by `fruits model export`"):
        load_featurizer_spec(foreign.as_uri())
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"garbage")
    with pytest.raises(FeaturizerError, match="is not a featurizer"):
        load_featurizer_spec(broken.as_uri())


def test_litert_features_do_not_depend_on_batching_or_threads(sample_image_paths):
    images = np.stack(
        [decode_and_resize(path.read_bytes(), TEST_INPUT_SIZE) for path in sample_image_paths[:9]]
    )
    spec = litert_spec()
    one = LiteRtFeaturizer(spec.model_bytes, spec.model_version, TEST_INPUT_SIZE, threads=1)
    four = LiteRtFeaturizer(spec.model_bytes, spec.model_version, TEST_INPUT_SIZE, threads=2, invoke_batch=4)
    reference = one.features(images)
    assert reference.shape == (9, 1280) and reference.dtype == np.float32
    np.testing.assert_allclose(four.features(images), reference, atol=1e-6)
    assert one.features(np.zeros((0, TEST_INPUT_SIZE, TEST_INPUT_SIZE, 3), np.uint8)).shape == (0, 1280)
    with pytest.raises(ValueError, match=r"expected images \[N, 96, 96, 3\]"):
        one.features(images[:, :64, :64])


def test_the_two_runtimes_agree_on_real_images(sample_images_dir):
    # GIVEN the same bundled weights, int8 in LiteRT and dequantized to float32 in Keras
    litert, _ = _features_224("imagenet-int8", "litert", sample_images_dir)
    keras, _ = _features_224("imagenet-int8", "keras", sample_images_dir)
    # THEN each image's two feature vectors point the same way
    cosine = (litert * keras).sum(axis=1) / (np.linalg.norm(litert, axis=1) * np.linalg.norm(keras, axis=1))
    print(f"litert vs keras: median cosine {np.median(cosine):.4f}, min {cosine.min():.4f}")
    assert np.median(cosine) >= MIN_MEDIAN_COSINE
    assert isinstance(build_featurizer(seeded_spec()), KerasFeaturizer)


@pytest.mark.parametrize("runtime", ["litert", "keras"])
def test_imagenet_features_separate_the_fruits_better_than_random_weights(sample_images_dir, runtime):
    features, labels = _features_224("imagenet-int8", runtime, sample_images_dir)
    scores, ratios = _pca_scores(features)
    seeded, _ = _features_224("seeded", "keras", sample_images_dir)
    seeded_scores, seeded_ratios = _pca_scores(seeded)
    probe, pca_probe = linear_probe_accuracy(features, labels), linear_probe_accuracy(scores, labels)
    seeded_probe, seeded_pca_probe = (
        linear_probe_accuracy(seeded, labels),
        linear_probe_accuracy(seeded_scores, labels),
    )
    print(
        f"{runtime}: probe {probe:.3f}, on {scores.shape[1]} PCA features {pca_probe:.3f}, "
        f"PC1 {first_component_share(ratios):.2f} | seeded: probe {seeded_probe:.3f}, on "
        f"{seeded_scores.shape[1]} PCA features {seeded_pca_probe:.3f}, "
        f"PC1 {first_component_share(seeded_ratios):.2f}"
    )
    assert probe >= MIN_PROBE_ACCURACY and pca_probe >= MIN_PROBE_ACCURACY
    assert first_component_share(ratios) < 0.5 < first_component_share(seeded_ratios)
    assert pca_probe > seeded_pca_probe


# Runs `fruits model export` once per argument list (argv[1], JSON) in one interpreter: TensorFlow is
# imported once for the three exports (one process each: 26.7 CPU-s, one in all: 22.5).
NO_NETWORK = """
import json, socket, sys
def refuse(*args, **kwargs):
    raise OSError("network access attempted")
socket.socket.connect = refuse
socket.create_connection = refuse
from fruits_cli.main import main
for argv in json.loads(sys.argv[1]):
    code = main(argv)
    if code:
        sys.exit(code)
"""


def test_exports_other_than_imagenet_never_touch_the_network(tmp_path, repo_root):
    # GIVEN a process whose sockets refuse to connect, and no proxy, AWS or Keras home of this machine
    exports = {
        "featurizer.tflite": [],
        "imagenet.keras": ["--runtime", "keras"],
        "seeded.keras": ["--runtime", "keras", "--weights", "seeded"],
    }
    commands = [
        ["model", "export", "--input-size", "96", "--out", str(tmp_path / name), *flags]
        for name, flags in exports.items()
    ]
    # WHEN it exports the LiteRT model, the Keras ImageNet model and the seeded Keras model
    completed = subprocess.run(
        [sys.executable, "-c", NO_NETWORK, json.dumps(commands)],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=300,
        env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    # THEN each is written from the bundled weights and reports its version, with no network attempt
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "network access attempted" not in completed.stderr
    for name in exports:
        assert load_featurizer_spec((tmp_path / name).as_uri()).model_version in completed.stdout


def test_the_ingests_clean_images_probe_as_well_as_the_originals(sample_images_dir, tmp_path):
    # GIVEN the bundled images and what the ingest stores of them (448 px long side, JPEG quality 85)
    from fruits_ingest.imaging import normalize_image

    from fruits_core.contracts import MAX_IMAGE_PIXELS

    clean_dir = tmp_path / "clean"
    for path in sorted(sample_images_dir.glob("*/*.jpg")):
        target = clean_dir / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(normalize_image(path.read_bytes(), MAX_IMAGE_PIXELS).jpeg)
    # WHEN both are featurized by the default LiteRT featurizer and probed
    original, labels = _features_224("imagenet-int8", "litert", sample_images_dir)
    clean, clean_labels = _features_224("imagenet-int8", "litert", clean_dir)
    probe, clean_probe = linear_probe_accuracy(original, labels), linear_probe_accuracy(clean, clean_labels)
    print(f"probe on the bundled images {probe:.3f}, on their clean images {clean_probe:.3f}")
    # THEN the clean images separate the fruits as well (the probe does not drop)
    assert clean_labels == labels
    assert clean_probe >= min(probe, MIN_PROBE_ACCURACY)
