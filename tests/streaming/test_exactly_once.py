"""Exactly once under SIGKILL: `fruits stream` killed mid-stream three times, restarted, then drained.

Each kill takes the whole process group (driver, JVM, Python workers) at a different
moment: when a batch is planned but not run, while a batch is being written, and in
the middle of a trigger after a committed batch. The output must still hold every image exactly once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from streaming_job.health import lake_health
from streaming_job.schemas import features_schema
from tests.streaming.stream_testkit import every_nth, ingest_images, stream_args

pytestmark = [pytest.mark.slow, pytest.mark.spark, pytest.mark.tf]

MANIFESTS = 64
START_TIMEOUT = 240.0
FRUITS = str(Path(sys.executable).with_name("fruits"))


def launch(lake: Path, models: tuple[str, str], log: Path, *extra: str) -> subprocess.Popen:
    command = [
        FRUITS,
        "stream",
        "--master",
        "local[2]",
        *stream_args(lake, *models, "--max-files-per-trigger", "6", *extra),
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    with log.open("ab") as output:
        return subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


def group_alive(group: int) -> bool:
    """Whether any non-zombie process of the group is left."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            return True
    return False


def kill_all(process: subprocess.Popen) -> None:
    """SIGKILL the driver, its JVM and its Python workers at once, and wait until they are gone."""
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    deadline = time.monotonic() + 30
    while group_alive(process.pid) and time.monotonic() < deadline:
        time.sleep(0.1)


def published(lake: Path) -> list[Path]:
    return sorted((lake / "features").glob("dt=*/*.parquet"))


def staging_in_progress(lake: Path) -> bool:
    return any((lake / "features" / "_staging").glob("batch=*/*"))


def progress_records(lake: Path) -> int:
    return len(list((lake / "status" / "progress").rglob("*.json")))


def wait_for(condition, process: subprocess.Popen, log: Path, poll: float = 0.02) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not condition():
        tail = log.read_text()[-3000:]
        assert process.poll() is None, f"the stream exited early ({process.returncode}):\n{tail}"
        assert time.monotonic() < deadline, f"timed out waiting for the stream:\n{tail}"
        time.sleep(poll)


def test_killing_the_stream_three_times_still_gives_each_image_exactly_once(
    spark, models, sample_image_paths, tmp_path
):
    # GIVEN 64 really ingested images: 64 manifests, 6 per micro-batch, a 1 s trigger
    lake = tmp_path / "lake"
    outcomes = ingest_images(lake, tmp_path / "uploads", every_nth(sample_image_paths, MANIFESTS))
    accepted = sorted(outcome.image_id for outcome in outcomes if outcome.status == "accepted")
    assert len(accepted) == MANIFESTS
    log = tmp_path / "stream.log"

    # WHEN the stream is SIGKILLed as soon as it logged the offsets of its first batch (before any output),
    first = launch(lake, models, log, "--trigger", "1")
    wait_for(lambda: (lake / "checkpoints" / "features" / "offsets" / "0").exists(), first, log)
    kill_all(first)
    # restarted and SIGKILLed while that batch is being written (staged, not yet published),
    second = launch(lake, models, log, "--trigger", "1")
    wait_for(lambda: staging_in_progress(lake) or published(lake), second, log, poll=0.005)
    kill_all(second)
    # restarted and SIGKILLed 0.7 s after its next progress event (inside the following trigger),
    seen = progress_records(lake)
    third = launch(lake, models, log, "--trigger", "1")
    wait_for(lambda: progress_records(lake) > seen, third, log)
    time.sleep(0.7)
    kill_all(third)
    partial = len(published(lake))
    # (`fruits status` says DEAD at once: the driver process latest.json names is gone, no heartbeat wait)
    report = lake_health(lake.as_uri())
    assert (report.health, report.exit_code) == ("dead", 5)
    assert "is gone" in report.reason
    # and finally restarted with --available-now to drain the backlog (in bigger batches)
    final = subprocess.run(
        [
            FRUITS,
            "stream",
            "--master",
            "local[2]",
            *stream_args(lake, *models, "--max-files-per-trigger", "32", "--available-now"),
        ],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )

    # THEN the last run exits cleanly, the kills interrupted real work, and nothing errored
    assert final.returncode == 0, final.stderr[-3000:]
    assert 0 < partial < len(published(lake))
    assert not list((lake / "errors").glob("dt=*/*.parquet"))
    # AND every image is in the output exactly once, for pyarrow...
    partitioning = ds.partitioning(pa.schema([("dt", pa.string())]), flavor="hive")
    arrow_ids = (
        ds.dataset(str(lake / "features"), format="parquet", partitioning=partitioning)
        .to_table()
        .column("image_id")
        .to_pylist()
    )
    assert sorted(arrow_ids) == accepted
    # ...and for Spark
    spark_ids = [
        row.image_id
        for row in spark.read.schema(features_schema())
        .parquet((lake / "features").as_uri())
        .select("image_id")
        .collect()
    ]
    assert sorted(spark_ids) == accepted
    assert len(set(spark_ids)) == len(spark_ids) == MANIFESTS
