"""How good are the features? A k-fold linear probe and the PCA's first-component share (pure NumPy).

The product's features feed fruit-recognition models, so the measure that
matters is how well a *linear* classifier separates the labels from them: a
ridge classifier (one-hot least squares, closed form) trained on k-1 folds and
scored on the held-out fold. Random-weight features give a lower score and
put most of the variance on the first principal component; ImageNet features
spread it out.
"""

from __future__ import annotations

import numpy as np

DEFAULT_FOLDS = 5
# Regularisation, relative to the mean squared norm of the centred training rows.
DEFAULT_RIDGE = 1e-3


def linear_probe_accuracy(
    features: np.ndarray,
    labels: list[str],
    folds: int = DEFAULT_FOLDS,
    ridge: float = DEFAULT_RIDGE,
    seed: int = 0,
) -> float:
    """Mean held-out accuracy of a ridge classifier over `folds` stratified folds."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) != len(labels):
        raise ValueError(f"need one feature row per label, got {features.shape} for {len(labels)} labels")
    classes, targets = np.unique(np.asarray(labels), return_inverse=True)
    if len(classes) < 2:
        raise ValueError("a probe needs at least two labels")
    smallest = np.bincount(targets).min()
    if smallest < folds:
        raise ValueError(f"the rarest label has {smallest} rows: too few for {folds} folds")
    fold_of = stratified_folds(targets, folds, seed)
    correct = 0
    for fold in range(folds):
        test = fold_of == fold
        predicted = _ridge_predict(features[~test], targets[~test], features[test], len(classes), ridge)
        correct += int((predicted == targets[test]).sum())
    return correct / len(labels)


def stratified_folds(targets: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """A fold number per row; each label's rows are shuffled and dealt round the folds."""
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(targets), dtype=np.int64)
    for label in np.unique(targets):
        rows = rng.permutation(np.nonzero(targets == label)[0])
        fold_of[rows] = np.arange(len(rows)) % folds
    return fold_of


def first_component_share(explained_variance: list[float] | np.ndarray) -> float:
    """PC1's share of the total feature variance (near 1: the features vary along one axis only)."""
    ratios = np.asarray(explained_variance, dtype=np.float64)
    if ratios.size == 0 or ratios.sum() <= 0:
        raise ValueError("no explained variance")
    return float(ratios[0])


def _ridge_predict(
    train: np.ndarray, train_targets: np.ndarray, test: np.ndarray, classes: int, ridge: float
) -> np.ndarray:
    """Ridge regression onto one-hot targets in its dual form (rows < features here), then argmax."""
    mean = train.mean(axis=0)
    centred = train - mean
    gram = centred @ centred.T
    penalty = ridge * max(float(np.trace(gram)) / len(train), 1e-12)
    one_hot = np.eye(classes)[train_targets]
    coefficients = np.linalg.solve(gram + penalty * np.eye(len(train)), one_hot - one_hot.mean(axis=0))
    scores = (test - mean) @ centred.T @ coefficients
    return scores.argmax(axis=1)
