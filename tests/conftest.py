"""Fixtures shared by every test package: paths to real images, one SparkSession."""

from __future__ import annotations

from pathlib import Path

import pytest

from streaming_job.model import BUNDLED_IMAGES  # the committed subset (25 images per class)

REPO_ROOT = Path(__file__).resolve().parents[1]
# The full sample, when the shared folder sits beside the repository.
SHARED_IMAGES = REPO_ROOT.parent / "shared" / "fruits360-sample"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def sample_images_dir() -> Path:
    """`<label>/<image>.jpg` folders of real Fruits-360 images."""
    return BUNDLED_IMAGES


@pytest.fixture(scope="session")
def sample_image_paths(sample_images_dir: Path) -> list[Path]:
    paths = sorted(sample_images_dir.glob("*/*.jpg"))
    assert len(paths) >= 100, f"bundled sample images missing under {sample_images_dir}"
    return paths


@pytest.fixture(scope="session")
def spark():
    """One local SparkSession for every Spark test (starting one costs seconds)."""
    from streaming_job.session import build_spark_session

    session = build_spark_session("fruits-tests", master="local[2]")
    yield session
    session.stop()
