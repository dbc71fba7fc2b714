"""Small real featurizers, one of each per test process, shared by the featurization tests.

- `litert_featurizer`: the default, the bundled ImageNet int8 model in LiteRT (input 96).
- `seeded_featurizer`: a float Keras model with random weights (input 96), for the Keras runtime.

Exporting the Keras model costs seconds, so each is exported once (input 96: fast forward passes).
Import as `from tests.streaming.featurizer_testkit import ...`.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

TEST_INPUT_SIZE = 96


def _artifact_dir() -> Path:
    directory = Path(tempfile.mkdtemp(prefix="fruits-test-featurizer-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return directory


@functools.cache
def litert_featurizer() -> tuple[str, str]:
    """(file:// URI of the default LiteRT featurizer at 96 px, its model_version)."""
    from streaming_job.featurizer.model import export_featurizer

    uri = (_artifact_dir() / "featurizer.tflite").as_uri()
    return uri, export_featurizer(uri, input_size=TEST_INPUT_SIZE)


@functools.cache
def litert_spec():
    from streaming_job.featurizer.model import load_featurizer_spec

    return load_featurizer_spec(litert_featurizer()[0])


@functools.cache
def seeded_featurizer() -> tuple[str, str]:
    """(file:// URI of a seeded 96-px featurizer calibrated on the bundled images, its model_version)."""
    from streaming_job.featurizer.model import export_featurizer

    uri = (_artifact_dir() / "featurizer.keras").as_uri()
    return uri, export_featurizer(uri, input_size=TEST_INPUT_SIZE, weights="seeded")


@functools.cache
def seeded_spec():
    from streaming_job.featurizer.model import load_featurizer_spec

    return load_featurizer_spec(seeded_featurizer()[0])


@functools.cache
def seeded_model_featurizer(batch_size: int = 64):
    """A driver-side KerasFeaturizer over the seeded spec (built once per batch size)."""
    from streaming_job.featurizer.model import build_featurizer

    return build_featurizer(seeded_spec(), batch_size=batch_size)
