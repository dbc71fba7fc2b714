"""Applying a fitted PCA in the worker, from plain arrays (pure NumPy: no TF, no Spark).

Projecting next to the forward pass means only k floats per image go back to
the JVM, never the 1280-wide feature vector.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PcaProjection:
    """Mean-centring then projection on `k` principal components, plus the reconstruction error."""

    mean: np.ndarray  # [D]
    components: np.ndarray  # [D, k], one principal component per column
    k: int
    explained_variance: list[float]
    model_version: str
    pca_version: str

    def __post_init__(self):
        if self.mean.ndim != 1 or self.components.shape != (self.mean.shape[0], self.k):
            raise ValueError(
                f"inconsistent PCA arrays: mean {self.mean.shape}, components "
                f"{self.components.shape}, k={self.k}"
            )

    @property
    def feature_dim(self) -> int:
        return int(self.mean.shape[0])

    def project(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[N, D] features -> (scores [N, k] float32, residual [N] float32).

        The residual is the L2 norm of what the k components do not explain:
        ||(x - mean) - P P^T (x - mean)||, large for images unlike the fitting sample.
        """
        if features.ndim != 2 or features.shape[1] != self.feature_dim:
            raise ValueError(f"expected features [N, {self.feature_dim}], got {features.shape}")
        centred = features.astype(np.float64) - self.mean
        scores = centred @ self.components
        residual = np.linalg.norm(centred - scores @ self.components.T, axis=1)
        return scores.astype(np.float32), residual.astype(np.float32)
