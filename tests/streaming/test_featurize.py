"""Batched featurization of real images by URI: features, projection, and error entries per image."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from fruits_core.contracts import FeaturizeErrorReason
from streaming_job.featurizer.featurize import classify_error, featurize_uris
from streaming_job.featurizer.image_io import ImageReader
from streaming_job.featurizer.preprocess import ImageDecodeError, decode_and_resize
from streaming_job.featurizer.projection import PcaProjection
from tests.streaming.featurizer_testkit import TEST_INPUT_SIZE, seeded_model_featurizer

pytestmark = pytest.mark.tf


def decoded(paths) -> np.ndarray:
    return np.stack([decode_and_resize(path.read_bytes(), TEST_INPUT_SIZE) for path in paths])


def test_features_do_not_depend_on_batching_and_the_graph_is_traced_once(sample_image_paths):
    # GIVEN 20 real images and featurizers with forward passes of 64 and of 8 images
    images = decoded(sample_image_paths[::5])
    whole, chunked = seeded_model_featurizer(64), seeded_model_featurizer(8)
    traces_before = chunked.traces
    # WHEN featurized in one pass, in passes of 8 (8, 8, 4), and as 3 and 1 images
    reference = whole.features(images)
    in_chunks = chunked.features(images)
    chunked.features(images[:3])
    chunked.features(images[:1])
    # THEN every image gets the same float32 1280-d vector, and no batch size caused a retrace
    assert reference.shape == (20, 1280) and reference.dtype == np.float32
    np.testing.assert_allclose(in_chunks, reference, atol=1e-4)
    assert chunked.traces - traces_before <= 1 and chunked.traces == 1


def test_empty_and_misshapen_inputs():
    featurizer = seeded_model_featurizer()
    assert featurizer.features(np.zeros((0, 96, 96, 3), dtype=np.uint8)).shape == (0, 1280)
    with pytest.raises(ValueError, match=r"expected images \[N, 96, 96, 3\]"):
        featurizer.features(np.zeros((2, 64, 64, 3), dtype=np.uint8))


def test_unreadable_and_undecodable_images_become_error_entries_not_a_failed_batch(
    sample_image_paths, tmp_path
):
    # GIVEN real images mixed with a missing file, garbage bytes and a truncated JPEG
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"definitely not pixels")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(sample_image_paths[3].read_bytes()[:300])
    good = sample_image_paths[:5]
    image_uris = [
        good[0].as_uri(),
        (tmp_path / "missing.jpg").as_uri(),
        good[1].as_uri(),
        garbage.as_uri(),
        good[2].as_uri(),
        truncated.as_uri(),
        good[3].as_uri(),
        good[4].as_uri(),
    ]
    featurizer = seeded_model_featurizer(4)
    # WHEN the batch is featurized (chunks of 4: reading overlaps the forward passes)
    result = featurize_uris(image_uris, featurizer, None, ImageReader(threads=4))
    # THEN bad entries carry a reason and the good ones their features, in input order
    reasons = [error[0] if error else None for error in result.errors]
    assert reasons == [
        None,
        FeaturizeErrorReason.IMAGE_NOT_FOUND.value,
        None,
        FeaturizeErrorReason.IMAGE_DECODE_FAILED.value,
        None,
        FeaturizeErrorReason.IMAGE_DECODE_FAILED.value,
        None,
        None,
    ]
    assert result.error_count == 3
    assert all(result.features[index] is None for index in (1, 3, 5))
    expected = featurizer.features(decoded(good))
    got = np.stack([result.features[index] for index in (0, 2, 4, 6, 7)])
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert result.residuals == [None] * len(image_uris)
    # AND the rows serialise as Arrow array<float> (what mapInPandas sends back to the JVM)
    column = pa.array(result.features, type=pa.list_(pa.float32()))
    assert column.null_count == 3 and len(column[0]) == 1280


def test_with_a_projection_rows_carry_k_scores_and_a_residual(sample_image_paths):
    # GIVEN a projection on 3 orthonormal directions around the mean of real features
    featurizer = seeded_model_featurizer()
    features = featurizer.features(decoded(sample_image_paths[:12]))
    basis, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(1280, 3)))
    projection = PcaProjection(
        mean=features.mean(axis=0).astype(np.float64),
        components=basis,
        k=3,
        explained_variance=[0.4, 0.2, 0.1],
        model_version=featurizer.model_version,
        pca_version="pca-test",
    )
    # WHEN featurizing by URI with it
    result = featurize_uris(
        [path.as_uri() for path in sample_image_paths[:12]], featurizer, projection, ImageReader(threads=2)
    )
    # THEN each row holds the k scores and the reconstruction error of its image
    scores, residuals = projection.project(features)
    np.testing.assert_allclose(np.stack(result.features), scores, atol=1e-4)
    np.testing.assert_allclose(result.residuals, residuals, rtol=1e-4)
    assert all(isinstance(value, float) for value in result.residuals)


def test_a_projection_of_another_model_version_is_refused(sample_image_paths):
    featurizer = seeded_model_featurizer()
    projection = PcaProjection(
        mean=np.zeros(1280),
        components=np.eye(1280)[:, :2],
        k=2,
        explained_variance=[0.5, 0.5],
        model_version="mobilenetv2-other",
        pca_version="p",
    )
    with pytest.raises(ValueError, match="PCA fitted on mobilenetv2-other"):
        featurize_uris([sample_image_paths[0].as_uri()], featurizer, projection, ImageReader(threads=1))


def test_an_empty_batch_gives_an_empty_result():
    result = featurize_uris([], seeded_model_featurizer(), None, ImageReader(threads=1))
    assert (result.features, result.residuals, result.errors) == ([], [], [])


def test_error_classification_and_detail_length():
    assert classify_error(FileNotFoundError("x"))[0] == "image_not_found"
    assert classify_error(ImageDecodeError("bad"))[0] == "image_decode_failed"
    reason, detail = classify_error(PermissionError("denied " * 100))
    assert reason == "image_read_failed" and detail.startswith("PermissionError: denied")
    assert len(detail) <= 300
