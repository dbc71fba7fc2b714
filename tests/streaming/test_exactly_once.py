"""Exactly once under SIGKILL: the stream killed at every step of a micro-batch's commit, restarted, drained.

Each kill takes the whole process group (driver, JVM, Python workers) at once,
from inside the driver (self_kill.py), at a precise step of the same
micro-batch: before its features append, between its features and errors
appends, and after both (before Spark logs the batch as committed). Each
restart replays that batch with the same offsets; the tables must still hold
every image and every error row exactly once.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from fruits_core import contracts
from fruits_lake.catalog import BATCH_ID_PROPERTY, QUERY_ID_PROPERTY
from fruits_lake.reading import lake_tables
from streaming_job.monitoring.health import lake_health
from tests.streaming import self_kill
from tests.streaming.stream_testkit import FRUITS, every_nth, ingest_images, stream_args, write_manifest

pytestmark = [pytest.mark.slow, pytest.mark.spark, pytest.mark.tf]

MANIFESTS = 64
BAD_MANIFESTS = 2
INGEST_BATCH = 8
START_TIMEOUT = 240.0


def run_until_killed(
    step: str, lake: Path, models, tmp_path: Path, log: Path, master: str = "local[2]"
) -> None:
    """`fruits stream` (6 manifests per batch, 1 s trigger) until it killed itself at `step`."""
    flags = [
        "--master",
        master,
        *stream_args(lake, *models, "--max-files-per-trigger", "6", "--trigger", "1"),
    ]
    self_kill.run_until_killed(step, flags, tmp_path, log, START_TIMEOUT)


def stream_commits(table) -> list[tuple[str, str]]:
    """(query id, batch id) of every stream commit of the table, oldest first."""
    return [
        (snapshot.summary[QUERY_ID_PROPERTY], snapshot.summary[BATCH_ID_PROPERTY])
        for snapshot in table.refresh().metadata.snapshots
    ]


def test_killing_the_stream_at_every_commit_step_still_gives_each_row_exactly_once(
    models, sample_image_paths, tmp_path
):
    # GIVEN 2 unparseable manifests, oldest of all (so batch 0 has error rows), then 64 ingested images
    lake = tmp_path / "lake"
    for index in range(BAD_MANIFESTS):
        bad = write_manifest(lake, f"{index:032x}.json", '{"schema_version": 1, "wid')
        os.utime(bad, (time.time() - 3600, time.time() - 3600))
    # (in the Lambda's batches: 8 manifests a JSON-lines file, so a kill can fall inside a file's rows)
    images = every_nth(sample_image_paths, MANIFESTS)
    outcomes = ingest_images(lake, tmp_path / "uploads", images, batch=INGEST_BATCH)
    assert len(list((lake / contracts.MANIFESTS_PREFIX).rglob("*.jsonl"))) == MANIFESTS // INGEST_BATCH
    accepted = sorted(outcome.image_id for outcome in outcomes if outcome.status == "accepted")
    assert len(accepted) == MANIFESTS
    log = tmp_path / "stream.log"

    # WHEN the stream is SIGKILLed with batch 0 featurized but nothing appended,
    run_until_killed("before-features", lake, models, tmp_path, log)
    features, errors = lake_tables(lake.as_uri())
    assert (stream_commits(features), stream_commits(errors)) == ([], [])
    # restarted (replaying batch 0) and SIGKILLed between its features and errors appends,
    run_until_killed("between-commits", lake, models, tmp_path, log)
    ((query_id, batch_id),) = stream_commits(features)
    assert (batch_id, stream_commits(errors)) == ("0", [])
    # restarted (batch 0 again: features found and skipped) and SIGKILLed after both, before Spark's commit,
    run_until_killed("after-commits", lake, models, tmp_path, log)
    assert stream_commits(features) == stream_commits(errors) == [(query_id, "0")]
    # (`fruits status` says DEAD at once: the driver process latest.json names is gone, no heartbeat wait)
    report = lake_health(lake.as_uri())
    assert (report.health, report.exit_code) == ("dead", 5)
    assert "is gone" in report.reason
    assert not (lake / "checkpoints" / "features" / "epoch=0" / "commits" / "0").exists()
    # and finally restarted with --available-now to drain the backlog (batch 0 once more, then the rest)
    final = subprocess.run(
        [FRUITS, "stream", "--master", "local[2]", *stream_args(lake, *models, "--available-now")],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )

    # THEN the last run exits cleanly, and one checkpoint's query committed each batch once per table
    assert final.returncode == 0, final.stderr[-3000:]
    for table in (features, errors):
        commits = stream_commits(table)
        assert len(commits) == len(set(commits))
        assert {query for query, _ in commits} == {query_id}
    # AND every image is in the features table exactly once, every bad manifest in the errors table once
    feature_ids = features.scan().to_arrow().column("image_id").to_pylist()
    assert sorted(feature_ids) == accepted
    error_rows = errors.scan().to_arrow().to_pylist()
    assert sorted(row["image_id"] for row in error_rows) == [
        f"{index:032x}" for index in range(BAD_MANIFESTS)
    ]
    assert {row["reason"] for row in error_rows} == {"malformed_manifest"}
