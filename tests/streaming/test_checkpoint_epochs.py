"""The checkpoint epoch planner: which epoch runs, when it rotates, which epochs are retired."""

from __future__ import annotations

import pytest

from fruits_core.errors import ConfigError
from streaming_job.checkpoints.checkpoint_epochs import (
    MILLIS_PER_HOUR,
    EpochLayout,
    epoch_uri,
    layout_of,
    next_layout,
    rotation_due,
)

ROOT = "s3://fruits-dev-lake/checkpoints/features"


def test_an_empty_or_missing_root_starts_at_epoch_zero():
    assert layout_of(ROOT, []) == EpochLayout(current=0, retire=())
    assert epoch_uri(ROOT, 0) == f"{ROOT}/epoch=0"


def test_the_highest_epoch_is_resumed_and_the_lower_ones_are_retired():
    # GIVEN a killed rotation that left epoch 9 beside epoch 10, and names that are no epochs
    names = ["epoch=9", "epoch=10", "epoch=x", "notes.txt", "_SUCCESS"]
    # THEN epoch 10 runs (numeric order, not text order) and only epoch 9 goes
    assert layout_of(ROOT, names) == EpochLayout(current=10, retire=(9,))


@pytest.mark.parametrize("legacy", ["metadata", "offsets", "commits", "sources"])
def test_a_checkpoint_from_before_epochs_is_refused_with_the_way_out(legacy):
    with pytest.raises(ConfigError, match=f"before checkpoint epochs \\({legacy}\\).*{ROOT}/epoch=0"):
        layout_of(ROOT, ["epoch=0", legacy])


@pytest.mark.parametrize(
    ("age_ms", "hours", "batches", "due"),
    [
        (0, 24.0, 100, False),
        (24 * MILLIS_PER_HOUR - 1, 24.0, 100, False),
        (24 * MILLIS_PER_HOUR, 24.0, 100, True),
        (1_800, 0.0005, 2, True),
        (1_799, 0.0005, 2, False),
        # old enough, but one batch only: it re-read the last epoch's last batch and took nothing new yet
        (48 * MILLIS_PER_HOUR, 24.0, 1, False),
        (48 * MILLIS_PER_HOUR, 24.0, 0, False),
    ],
)
def test_an_epoch_rotates_once_it_has_lasted_its_hours_and_two_batches(age_ms, hours, batches, due):
    started = 1_700_000_000_000
    assert rotation_due(started, started + age_ms, hours, batches) is due


def test_a_rotation_runs_the_next_epoch_and_retires_every_earlier_one():
    assert next_layout(EpochLayout(current=3, retire=())) == EpochLayout(current=4, retire=(3,))
    assert next_layout(EpochLayout(current=3, retire=(1, 2))) == EpochLayout(current=4, retire=(1, 2, 3))
