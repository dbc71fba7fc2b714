"""The featurizer artifact: seeded export, loading into a broadcastable spec, rebuilding, ImageNet offline."""

from __future__ import annotations

import argparse
import os
import pickle
import re
import subprocess
import sys

import numpy as np
import pytest

from fruits_cli import model as model_command
from streaming_job.featurizer.model import (
    FeaturizerError,
    build_model,
    export_featurizer,
    load_featurizer_spec,
)
from streaming_job.featurizer.preprocess import decode_and_resize
from tests.streaming.featurizer_testkit import (
    TEST_INPUT_SIZE,
    seeded_featurizer,
    seeded_model_featurizer,
    seeded_spec,
)

pytestmark = pytest.mark.tf


def test_seeded_export_is_labelled_and_loads_into_a_spec():
    # GIVEN a seeded 96-px export
    version = seeded_featurizer()[1]
    # WHEN the driver loads it
    spec = seeded_spec()
    # THEN its version says what it is and matches the export's, and it outputs MobileNetV2's 1280 features
    assert re.fullmatch(rf"mobilenetv2-seeded-keras-{TEST_INPUT_SIZE}-[0-9a-f]{{12}}", version)
    assert spec.model_version == version
    assert (spec.input_size, spec.feature_dim) == (TEST_INPUT_SIZE, 1280)
    # AND the spec is small enough to broadcast (weights only: no optimizer, no file)
    assert len(pickle.dumps(spec)) < 20_000_000


def test_seeded_export_is_deterministic_through_the_cli(tmp_path, capsys):
    # GIVEN the same seed and size, exported again through `fruits model export`
    parser = argparse.ArgumentParser()
    model_command.add_arguments(parser)
    out = tmp_path / "again" / "featurizer.keras"
    args = parser.parse_args(
        ["export", "--out", out.as_uri(), "--input-size", str(TEST_INPUT_SIZE), "--weights", "seeded"]
    )
    # WHEN it runs
    assert model_command.run(args) == 0
    # THEN it reports, and the artifact carries, the very same model_version
    assert seeded_featurizer()[1] in capsys.readouterr().out
    assert load_featurizer_spec(out.as_uri()).model_version == seeded_featurizer()[1]


def test_rebuilt_model_gives_the_loaded_files_features(sample_image_paths):
    # GIVEN the model rebuilt in a worker from the spec alone, and the artifact loaded by Keras
    import keras

    from streaming_job import uris

    rebuilt = build_model(seeded_spec())
    loaded = keras.saving.load_model(uris.local_path(seeded_featurizer()[0]), compile=False)
    images = np.stack(
        [decode_and_resize(path.read_bytes(), TEST_INPUT_SIZE) for path in sample_image_paths[:8]]
    )
    scaled = images.astype(np.float32) / 127.5 - 1
    # WHEN both featurize the same real images
    # THEN the features are identical
    np.testing.assert_allclose(rebuilt(scaled, training=False), loaded(scaled, training=False), atol=1e-6)


def test_seeded_features_are_informative_on_real_fruit(sample_image_paths):
    # GIVEN the 100 bundled real images of 4 fruit classes
    labels = np.array([path.parent.name for path in sample_image_paths])
    images = np.stack([decode_and_resize(path.read_bytes(), TEST_INPUT_SIZE) for path in sample_image_paths])
    # WHEN featurized by the seeded model
    features = seeded_model_featurizer().features(images)
    # THEN they are not degenerate: non-zero and varying across images
    assert features.shape == (len(images), 1280)
    assert np.abs(features).mean() > 0.01
    assert features.std(axis=0).mean() > 0.01
    # AND they separate the classes: nearest class centroid is right far above chance (25%)
    classes = sorted(set(labels))
    centroids = np.stack([features[labels == name].mean(axis=0) for name in classes])
    distances = ((features[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
    accuracy = (np.array(classes)[distances.argmin(axis=1)] == labels).mean()
    assert accuracy >= 0.8, f"nearest-centroid accuracy {accuracy:.2f}"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"weights": "random"}, "weights must be one of"),
        ({"input_size": 16}, "input size must be in"),
        ({"weights": "imagenet", "input_size": 100}, "ImageNet weights exist only for input sizes"),
    ],
)
def test_invalid_export_requests_fail_clearly(tmp_path, kwargs, message):
    with pytest.raises(FeaturizerError, match=message):
        export_featurizer((tmp_path / "f.keras").as_uri(), **kwargs)


def test_export_refuses_a_name_that_is_not_an_artifact(tmp_path):
    with pytest.raises(FeaturizerError, match=r"a \.tflite or \.keras file"):
        export_featurizer((tmp_path / "featurizer.h5").as_uri())


def test_loading_a_missing_or_broken_artifact_says_what_to_do(tmp_path):
    with pytest.raises(FeaturizerError, match="fruits model export"):
        load_featurizer_spec((tmp_path / "missing.keras").as_uri())
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"not a zip")
    with pytest.raises(FeaturizerError, match="not a loadable Keras model"):
        load_featurizer_spec(broken.as_uri())


def test_imagenet_export_offline_fails_with_a_clear_message_and_no_traceback(tmp_path, repo_root):
    # GIVEN no reachable internet (an unreachable proxy) and an empty Keras cache
    env = {key: value for key, value in os.environ.items() if key.lower() not in ("no_proxy",)}
    env.update(
        {
            "HTTPS_PROXY": "http://127.0.0.1:9",
            "HTTP_PROXY": "http://127.0.0.1:9",
            "https_proxy": "http://127.0.0.1:9",
            "http_proxy": "http://127.0.0.1:9",
            "KERAS_HOME": str(tmp_path / "keras-home"),
            "TF_CPP_MIN_LOG_LEVEL": "3",
        }
    )
    out = tmp_path / "featurizer.keras"
    script = (
        "import argparse, sys\n"
        "from fruits_cli import model\n"
        "parser = argparse.ArgumentParser(); model.add_arguments(parser)\n"
        "sys.exit(model.run(parser.parse_args(sys.argv[1:])))\n"
    )
    # WHEN `fruits model export --weights imagenet` runs
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            "export",
            "--weights",
            "imagenet",
            "--runtime",
            "keras",
            "--input-size",
            "96",
            "--out",
            str(out),
        ],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # THEN it exits 1 with an explanation and the offline alternative, without a stack trace or a file
    assert completed.returncode == 1, completed.stderr
    assert "could not obtain the ImageNet weights" in completed.stderr
    assert "--weights imagenet-int8" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert not out.exists()
