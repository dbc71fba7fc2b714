"""A tiny benchmark lake (real images, 96 px featurizer, small k), built once per test session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

TINY_N = 16
TINY_INPUT_SIZE = 96
TINY_K = 4
# Enough for `fruits classifier train` (MIN_ROWS_PER_CLASS) on the seed images of the scoring stream.
IMAGES_PER_CLASS = 10


@pytest.fixture(scope="session")
def tiny_images(sample_images_dir: Path, tmp_path_factory) -> Path:
    """A few real images of each class, in the <label>/<image>.jpg layout."""
    root = tmp_path_factory.mktemp("bench-images")
    for label_dir in sorted(path for path in sample_images_dir.iterdir() if path.is_dir()):
        (root / label_dir.name).mkdir()
        for image in sorted(label_dir.glob("*.jpg"))[:IMAGES_PER_CLASS]:
            shutil.copyfile(image, root / label_dir.name / image.name)
    return root


@pytest.fixture(scope="session")
def tiny_workload(spark, tiny_images: Path, tmp_path_factory):
    """The benchmark lake the bench command would build for --runtimes litert --n 16 --input-size 96 --k 4.

    LiteRT only: the Keras runtime's path through Spark's workers is proven without a lake of its own
    (tests/streaming/test_pca.py fits on workers what NumPy finds in the driver's Keras features;
    test_model.py, that a worker's rebuilt model gives the Keras file's features), and building it
    here cost the bench tests 55 of their 214 CPU-seconds (docs/testing.md).
    """
    from benchmarks.workload import WorkloadSpec, build_workload

    spec = WorkloadSpec(
        images_dir=str(tiny_images.resolve()),
        n=TINY_N,
        input_size=TINY_INPUT_SIZE,
        k=TINY_K,
        runtimes=("litert",),
    )
    return build_workload(tmp_path_factory.mktemp("bench-work"), spec, spark)
