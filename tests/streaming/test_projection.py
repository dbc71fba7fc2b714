"""The worker-side PCA projection (pure NumPy); its parity with Spark ML is in test_pca.py."""

from __future__ import annotations

import numpy as np
import pytest

from streaming_job.featurizer.projection import PcaProjection


def orthonormal_projection(dimension: int, k: int, seed: int = 0) -> PcaProjection:
    generator = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(generator.normal(size=(dimension, dimension)))
    return PcaProjection(
        mean=generator.normal(size=dimension),
        components=basis[:, :k],
        k=k,
        explained_variance=[0.5] * k,
        model_version="m",
        pca_version="p",
    )


def test_points_in_the_component_span_project_exactly_and_leave_no_residual():
    # GIVEN points built as mean + a combination of the k components
    projection = orthonormal_projection(dimension=32, k=4)
    coefficients = np.random.default_rng(1).normal(size=(10, 4))
    points = projection.mean + coefficients @ projection.components.T
    # WHEN projected
    scores, residual = projection.project(points)
    # THEN the scores are the coefficients and the reconstruction error is zero
    assert scores.shape == (10, 4) and scores.dtype == np.float32
    assert residual.shape == (10,) and residual.dtype == np.float32
    np.testing.assert_allclose(scores, coefficients, atol=1e-5)
    np.testing.assert_allclose(residual, 0.0, atol=1e-5)


def test_residual_is_the_norm_of_the_part_the_components_miss():
    # GIVEN a point = mean + 3 * component_0 + 2 * (a direction orthogonal to all k components)
    projection = orthonormal_projection(dimension=16, k=3)
    full_basis, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(16, 16)))
    outside = full_basis[:, 5]
    point = projection.mean + 3 * projection.components[:, 0] + 2 * outside
    # WHEN projected
    scores, residual = projection.project(point[None, :])
    # THEN the score sees only the in-span part and the residual is the orthogonal part's length
    np.testing.assert_allclose(scores[0], [3, 0, 0], atol=1e-5)
    assert residual[0] == pytest.approx(2.0, abs=1e-5)


def test_wrong_feature_width_is_refused():
    projection = orthonormal_projection(dimension=8, k=2)
    with pytest.raises(ValueError, match=r"expected features \[N, 8\]"):
        projection.project(np.zeros((3, 7), dtype=np.float32))


def test_inconsistent_arrays_are_refused_at_construction():
    with pytest.raises(ValueError, match="inconsistent PCA arrays"):
        PcaProjection(
            mean=np.zeros(8),
            components=np.zeros((8, 3)),
            k=2,
            explained_variance=[],
            model_version="m",
            pca_version="p",
        )
