"""The feature-quality measures: the k-fold linear probe and PC1's share (pure NumPy, fast)."""

from __future__ import annotations

import numpy as np
import pytest

from demo.quality import first_component_share, linear_probe_accuracy, stratified_folds


def _blobs(separation: float, rng) -> tuple[np.ndarray, list[str]]:
    centres = rng.normal(size=(4, 50)) * separation
    labels = [f"fruit-{index % 4}" for index in range(80)]
    rows = np.stack([centres[index % 4] + rng.normal(size=50) for index in range(80)])
    return rows, labels


def test_separable_classes_score_one_and_noise_scores_near_chance():
    rng = np.random.default_rng(7)
    separable, labels = _blobs(separation=10.0, rng=rng)
    assert linear_probe_accuracy(separable, labels) == 1.0
    noise = rng.normal(size=(80, 50))
    assert linear_probe_accuracy(noise, labels) < 0.5


def test_more_features_than_rows_still_generalise():
    # the probe's dual form: 1280-d features from 40 rows, as on the bundled sample
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(4, 1280))
    labels = [str(index % 4) for index in range(40)]
    rows = np.stack([centres[index % 4] + 0.5 * rng.normal(size=1280) for index in range(40)])
    assert linear_probe_accuracy(rows, labels) == 1.0


def test_folds_are_stratified_and_deterministic():
    targets = np.array([0] * 10 + [1] * 5)
    folds = stratified_folds(targets, 5, seed=1)
    assert np.array_equal(folds, stratified_folds(targets, 5, seed=1))
    for fold in range(5):
        assert (targets[folds == fold] == 0).sum() == 2 and (targets[folds == fold] == 1).sum() == 1


@pytest.mark.parametrize(
    ("rows", "labels", "message"),
    [
        (np.zeros((4, 2)), ["a", "b", "a"], "one feature row per label"),
        (np.zeros((10, 2)), ["a"] * 10, "at least two labels"),
        (np.zeros((10, 2)), ["a"] * 8 + ["b"] * 2, "too few for 5 folds"),
    ],
)
def test_unusable_inputs_are_refused(rows, labels, message):
    with pytest.raises(ValueError, match=message):
        linear_probe_accuracy(rows, labels)


def test_first_component_share():
    assert first_component_share([0.83, 0.1, 0.02]) == pytest.approx(0.83)
    with pytest.raises(ValueError):
        first_component_share([])
