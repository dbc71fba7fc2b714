"""One small real featurizer per test process, shared by the featurization tests.

Exporting MobileNetV2 costs seconds, so it happens once (input 96: fast forward passes).
Import as `from tests.streaming.featurizer_testkit import ...`.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

TEST_INPUT_SIZE = 96


@functools.cache
def seeded_featurizer() -> tuple[str, str]:
    """(file:// URI of a seeded 96-px featurizer calibrated on the bundled images, its model_version)."""
    from streaming_job.model import export_featurizer

    directory = Path(tempfile.mkdtemp(prefix="fruits-test-featurizer-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    uri = (directory / "featurizer.keras").as_uri()
    return uri, export_featurizer(uri, input_size=TEST_INPUT_SIZE)


@functools.cache
def seeded_spec():
    from streaming_job.model import load_featurizer_spec

    return load_featurizer_spec(seeded_featurizer()[0])


@functools.cache
def seeded_model_featurizer(batch_size: int = 64):
    """A driver-side Featurizer over the seeded spec (built once per batch size)."""
    from streaming_job.featurize import Featurizer
    from streaming_job.model import build_model

    spec = seeded_spec()
    return Featurizer(build_model(spec), spec.model_version, batch_size=batch_size)
