"""Checkpoint epochs: when the stream moves to a fresh checkpoint, and which old ones go (pure logic).

Spark's file source keeps every manifest it ever read in its checkpoint log and
loads all of it at each start, so one checkpoint kept forever grows with history.
The stream's checkpoint is therefore `<checkpoint>/epoch=<n>/`; once epoch n is
older than `--checkpoint-epoch-hours`, the driver stops the query between two
micro-batches, starts epoch n+1 on a new checkpoint and retires (deletes) every
older epoch. The rotation first archives the stopped query's last batch (Spark
would only when planning a next one), so a new epoch re-reads nothing but a batch
cut short, which the sink's checks skip. The Spark and Hadoop side is `epoch_rotation.py`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fruits_core.errors import ConfigError
from fruits_core.lake_uris import join_uri

EPOCH_DIR = re.compile(r"^epoch=(\d+)$")
# Names Spark writes at the root of a checkpoint: their presence means a checkpoint from before epochs.
SPARK_CHECKPOINT_NAMES = frozenset({"metadata", "offsets", "commits", "sources"})
MILLIS_PER_HOUR = 3_600_000
# Committed batches an epoch needs before it rotates: an epoch that re-read a batch (one cut short, or
# everything under `--clean-source off`) and took nothing new since does not rotate again.
MIN_BATCHES_PER_EPOCH = 2


@dataclass(frozen=True)
class EpochLayout:
    """The epochs found under the checkpoint root: the one to run and the older ones to retire."""

    current: int
    retire: tuple[int, ...]


def epoch_dir_name(epoch: int) -> str:
    return f"epoch={epoch}"


def epoch_uri(root_uri: str, epoch: int) -> str:
    return join_uri(root_uri, epoch_dir_name(epoch))


def layout_of(root_uri: str, names: list[str]) -> EpochLayout:
    """Epoch to resume (the highest; 0 for an empty root) and the lower ones a killed rotation left.

    A lower epoch is never resumed: epoch n+1 exists only after epoch n was stopped.
    A Spark checkpoint written directly at the root (before epochs) is refused rather
    than silently abandoned.
    """
    legacy = SPARK_CHECKPOINT_NAMES.intersection(names)
    if legacy:
        raise ConfigError(
            f"{root_uri} holds a checkpoint written before checkpoint epochs ({', '.join(sorted(legacy))}): "
            f"move it to {epoch_uri(root_uri, 0)} (to resume it) or away (to start over; the sink "
            "skips images already in the table)"
        )
    epochs = sorted(int(match.group(1)) for name in names if (match := EPOCH_DIR.match(name)))
    if not epochs:
        return EpochLayout(current=0, retire=())
    return EpochLayout(current=epochs[-1], retire=tuple(epochs[:-1]))


def rotation_due(epoch_started_ms: int, now_ms: int, epoch_hours: float, batches_done: int) -> bool:
    """Whether an epoch started at `epoch_started_ms` has lasted its `epoch_hours` by `now_ms`.

    `batches_done` counts the epoch's completed micro-batches (MIN_BATCHES_PER_EPOCH).
    """
    lasted = now_ms - epoch_started_ms >= epoch_hours * MILLIS_PER_HOUR
    return lasted and batches_done >= MIN_BATCHES_PER_EPOCH


def next_layout(layout: EpochLayout) -> EpochLayout:
    """After a rotation: the next epoch runs, and every epoch before it is retired."""
    return EpochLayout(current=layout.current + 1, retire=(*layout.retire, layout.current))
