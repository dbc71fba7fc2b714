"""Checkpoint epochs on the real stream: rotations between micro-batches, and SIGKILLs around them.

The epochs last 1.8 s (`--checkpoint-epoch-hours 0.0005`), so a few seconds of
streaming cross several rotations. What must hold: every accepted image is in
the features table exactly once (what a new epoch re-reads is skipped by the
sink), older epochs are deleted, and the status log goes on across queries.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from pyiceberg.exceptions import NoSuchTableError

from fruits_lake.reading import committed_rows, lake_tables
from streaming_job.query.runner import await_stream, start_stream
from tests.streaming import self_kill
from tests.streaming.stream_testkit import FRUITS, every_nth, ingest_images, stream_args, stream_config

pytestmark = [pytest.mark.slow, pytest.mark.spark, pytest.mark.tf]

EPOCH_HOURS = "0.0005"  # 1.8 s
TIMEOUT = 240.0


def rotating(*flags: str) -> list[str]:
    """`flags` plus what every stream here runs with: 1.8 s epochs, processed manifests archived."""
    return [*flags, "--clean-source", "archive", "--checkpoint-epoch-hours", EPOCH_HOURS]


def epoch_dirs(lake: Path) -> list[str]:
    return sorted(path.name for path in (lake / "checkpoints" / "features").glob("epoch=*"))


def accepted_ids(lake: Path, uploads: Path, images: list[Path]) -> list[str]:
    outcomes = ingest_images(lake, uploads, images)
    accepted = sorted(outcome.image_id for outcome in outcomes if outcome.status == "accepted")
    assert len(accepted) == len(images)
    return accepted


def stop_when_all_rows_are_in(lake: Path, expected: int, stop: threading.Event) -> threading.Thread:
    """Ask the stream to stop once the features table holds `expected` rows (or after TIMEOUT)."""

    def watch() -> None:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            with contextlib.suppress(NoSuchTableError):  # the tables exist from the first batch on
                if committed_rows(lake_tables(lake.as_uri())[0]) >= expected:
                    break
            time.sleep(0.5)
        stop.set()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_the_stream_rotates_epochs_between_batches_without_losing_or_duplicating_a_row(
    spark, models, sample_image_paths, tmp_path
):
    # GIVEN 24 ingested images, 3 manifests per 3 s trigger, 1.8 s epochs, processed manifests archived
    lake = tmp_path / "lake"
    accepted = accepted_ids(lake, tmp_path / "uploads", every_nth(sample_image_paths, 24))
    config = stream_config(
        lake,
        *models,
        # Longer than a batch: the idle gap lets a due rotation stop the query between two batches.
        *rotating("--trigger", "3", "--max-files-per-trigger", "3"),
    )
    # WHEN the stream runs until every image is in the table, then is stopped
    stop = threading.Event()
    watcher = stop_when_all_rows_are_in(lake, len(accepted), stop)
    reason = await_stream(spark, start_stream(spark, config), config, stop, poll_seconds=0.5)
    watcher.join()

    # THEN it rotated (only the newest epoch is left, the older ones deleted) and stopped as asked
    assert reason == "stop requested"
    [current] = epoch_dirs(lake)
    assert int(current.removeprefix("epoch=")) >= 1
    # AND every image is in the table exactly once, and no epoch re-read (re-featurized) a manifest: each
    # rotation archived its last batch's manifests, which Spark archives only when it plans a next batch
    ids = lake_tables(lake.as_uri())[0].scan().to_arrow().column("image_id").to_pylist()
    assert sorted(ids) == accepted
    records = [
        json.loads(line.read_text()) for line in sorted((lake / "status" / "progress").rglob("*.json"))
    ]
    assert sum(record["already_in_table"] for record in records) == 0
    assert sum(record["input_rows"] for record in records) == len(accepted)
    # AND the listener followed every epoch's query: batch 0 more than once, totals carried, clean stop
    assert sum(1 for record in records if record["batch_id"] == 0) >= 2
    latest = json.loads((lake / "status" / "latest.json").read_text())
    assert latest["state"] == "stopped"
    assert latest["totals"]["feature_rows"] == len(accepted)


def run_until_killed(step: str, lake: Path, models, tmp_path: Path, log: Path) -> None:
    """`fruits stream` (4 manifests a batch, short epochs, archived sources) until it kills itself."""
    flags = [
        "--master",
        "local[2]",
        *stream_args(
            lake,
            *models,
            # Twice a batch on a loaded machine (~3 s): the idle gap lets a due rotation stop the query
            # between two batches while manifests still wait, so the next epoch has new ones to append
            # (a rotation archives the last batch's manifests: it re-reads none).
            *rotating("--max-files-per-trigger", "4", "--trigger", "6"),
        ),
    ]
    self_kill.run_until_killed(step, flags, tmp_path, log, TIMEOUT)


def test_sigkills_around_a_rotation_still_give_each_image_exactly_once(models, sample_image_paths, tmp_path):
    # GIVEN 64 ingested images, 4 manifests per batch, 1.8 s epochs, processed manifests archived
    lake = tmp_path / "lake"
    accepted = accepted_ids(lake, tmp_path / "uploads", every_nth(sample_image_paths, 64))
    log = tmp_path / "stream.log"

    # WHEN the stream is SIGKILLed with epoch 0's query stopped and the next epoch not started,
    run_until_killed("before-next-epoch", lake, models, tmp_path, log)
    assert epoch_dirs(lake) == ["epoch=0"]
    # restarted (epoch 0 resumed, then rotated) and SIGKILLed in the next epoch with a batch's features
    # appended, not Spark's commit,
    run_until_killed("new-epoch-between-commits", lake, models, tmp_path, log)
    # restarted (that epoch resumed, the batch replayed) and SIGKILLed with the next epoch's query started
    # and the previous epoch not retired,
    run_until_killed("before-retire", lake, models, tmp_path, log)
    assert len(epoch_dirs(lake)) == 2
    # and finally restarted with --available-now to drain the backlog
    final = subprocess.run(
        [
            FRUITS,
            "stream",
            "--master",
            "local[2]",
            *stream_args(lake, *models, *rotating("--available-now")),
        ],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )

    # THEN the last run exits cleanly with one epoch left, later than the ones the kills interrupted
    assert final.returncode == 0, final.stderr[-3000:]
    [current] = epoch_dirs(lake)
    assert int(current.removeprefix("epoch=")) >= 2
    # AND every image is in the features table exactly once
    ids = lake_tables(lake.as_uri())[0].scan().to_arrow().column("image_id").to_pylist()
    assert sorted(ids) == accepted
    assert not lake_tables(lake.as_uri())[1].scan().to_arrow().num_rows


def test_an_idle_stream_rotates_without_featurizing_its_last_batch_again(
    spark, models, sample_image_paths, tmp_path
):
    # GIVEN 8 ingested images, 4 manifests a batch (two batches), 1.8 s epochs, processed manifests archived
    lake = tmp_path / "lake"
    accepted = accepted_ids(lake, tmp_path / "uploads", every_nth(sample_image_paths, 8))
    config = stream_config(lake, *models, *rotating("--trigger", "1", "--max-files-per-trigger", "4"))
    running = start_stream(spark, config)
    first_query = str(running.query.id)
    # The hook: a trigger of the next epoch's query that found nothing to read (Spark reports it as an
    # idle event, or as a progress event without input rows).
    next_epoch_idle = threading.Event()
    listener = running.listener
    listener_idle, listener_progress = listener.onQueryIdle, listener.onQueryProgress

    def on_idle(event) -> None:
        listener_idle(event)
        if str(event.id) != first_query:
            next_epoch_idle.set()

    def on_progress(event) -> None:
        listener_progress(event)
        if str(event.progress.id) != first_query and event.progress.numInputRows == 0:
            next_epoch_idle.set()

    listener.onQueryIdle, listener.onQueryProgress = on_idle, on_progress
    # WHEN no new manifest arrives once both batches are in, and the due epoch rotates
    stop = threading.Event()
    watcher = stop_when_all_rows_are_in(lake, len(accepted), threading.Event())
    watcher.join()

    def stop_once_the_next_epoch_idles() -> None:
        next_epoch_idle.wait(TIMEOUT)
        stop.set()

    threading.Thread(target=stop_once_the_next_epoch_idles, daemon=True).start()
    await_stream(spark, running, config, stop, poll_seconds=0.5)

    # THEN the stream rotated once, and the next epoch found nothing to read: no manifest featurized twice
    assert next_epoch_idle.is_set()
    [current] = epoch_dirs(lake)
    assert current == "epoch=1"
    records = [
        json.loads(line.read_text()) for line in sorted((lake / "status" / "progress").rglob("*.json"))
    ]
    assert sum(record["input_rows"] for record in records) == len(accepted)
    assert sum(record["already_in_table"] for record in records) == 0
    # AND the last batch's manifests were archived at the rotation, as Spark does for every earlier batch
    assert not list((lake / "manifests").rglob("*.json*"))
    ids = lake_tables(lake.as_uri())[0].scan().to_arrow().column("image_id").to_pylist()
    assert sorted(ids) == accepted
