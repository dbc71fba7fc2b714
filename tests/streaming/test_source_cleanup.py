"""An available-now run cleans its last batch's manifests too, exactly as Spark's cleanSource does."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from fruits_lake.reading import read_features
from streaming_job.checkpoints.source_cleanup import (
    archived_uri,
    batch_files,
    last_committed_batch,
    source_log_name,
    source_log_offset,
)
from streaming_job.query.runner import await_stream, start_stream
from tests.streaming.stream_testkit import every_nth, ingest_images, stream_config

# --- the checkpoint's logs, as Spark 4.0 writes them ------------------------------------------------

SOURCE_LOG_12 = """v1
{"path":"file:///lake/manifests/dt=2024-05-01/aa.json","timestamp":1795907356463,"batchId":12}
{"path":"file:///lake/manifests/dt=2024-05-02/bb.json","timestamp":1795907356464,"batchId":12}
"""
COMPACT_LOG_19 = """v1
{"path":"s3://lake/manifests/dt=2024-05-01/aa.json","timestamp":1,"batchId":18}
{"path":"s3://lake/manifests/dt=2024-05-01/cc.json","timestamp":2,"batchId":19}
"""
OFFSET_LOG = """v1
{"batchWatermarkMs":0,"batchTimestampMs":1795907367604,"conf":{"spark.sql.shuffle.partitions":"2"}}
{"logOffset":12}
"""


def test_the_last_committed_batch_is_the_highest_numbered_commit():
    assert last_committed_batch(["0", "1", "10", "2", ".10.crc"]) == 10
    assert last_committed_batch([]) is None


def test_a_batch_s_source_entry_is_the_log_offset_of_its_offsets_file():
    assert source_log_offset(OFFSET_LOG) == 12


def test_a_compacted_entry_is_read_from_its_compact_file():
    assert source_log_name(19, ["17", "18", "19.compact", "20"]) == "19.compact"
    assert source_log_name(20, ["19.compact", "20"]) == "20"


def test_only_the_files_of_the_entry_are_taken():
    assert batch_files(SOURCE_LOG_12, 12) == [
        "file:///lake/manifests/dt=2024-05-01/aa.json",
        "file:///lake/manifests/dt=2024-05-02/bb.json",
    ]
    # a compact file lists earlier entries too: only the asked one counts; Spark's escapes are decoded
    assert batch_files(SOURCE_LOG_12.replace("/lake/", "/My%20Lake/"), 12)[0] == (
        "file:///My Lake/manifests/dt=2024-05-01/aa.json"
    )
    assert batch_files(COMPACT_LOG_19, 19) == ["s3://lake/manifests/dt=2024-05-01/cc.json"]


def test_the_archive_path_is_spark_s_the_archive_dir_then_the_file_s_path():
    assert (
        archived_uri("file:///lake/archive/manifests/", "file:///lake/manifests/dt=2024-05-01/aa.json")
        == "file:///lake/archive/manifests/lake/manifests/dt=2024-05-01/aa.json"
    )
    assert (
        archived_uri("s3://bucket/pre/archive/manifests", "s3://bucket/pre/manifests/dt=2024-05-01/aa.json")
        == "s3://bucket/pre/archive/manifests/pre/manifests/dt=2024-05-01/aa.json"
    )


# --- real Spark ---------------------------------------------------------------------------------


def manifest_names(directory: Path) -> set[str]:
    return {path.name for path in directory.rglob("*.json")}


def ingested_lake(tmp_path: Path, sample_image_paths: list[Path], images: int) -> Path:
    lake = tmp_path / "lake"
    ingest_images(lake, tmp_path / "uploads", every_nth(sample_image_paths, images))
    return lake


def run_to_the_end(spark, lake: Path, models, clean_source: str) -> None:
    """An --available-now run, one manifest a micro-batch, with this --clean-source, until it ends."""
    config = stream_config(
        lake, *models, "--available-now", "--clean-source", clean_source, "--max-files-per-trigger", "1"
    )
    await_stream(spark, start_stream(spark, config), config, threading.Event())


@pytest.mark.spark
@pytest.mark.slow
def test_an_available_now_run_with_archive_leaves_no_processed_manifest(
    spark, models, sample_image_paths, tmp_path
):
    # GIVEN a lake of 3 ingested images, read one manifest per micro-batch
    lake = ingested_lake(tmp_path, sample_image_paths, 3)
    manifests = lake / "manifests"
    ingested = manifest_names(manifests)
    assert len(ingested) == 3
    # WHEN an available-now run processes them all and ends
    run_to_the_end(spark, lake, models, "archive")
    # THEN manifests/ holds none of them, and archive/ holds all three, where Spark puts them
    # (<archive>/<the manifest's own path>), the last batch's included
    assert manifest_names(manifests) == set()
    archive = lake / "archive" / "manifests"
    assert manifest_names(archive) == ingested
    for path in archive.rglob("*.json"):
        original = Path("/") / path.relative_to(archive)
        assert original.parent.parent == manifests, path
    assert read_features(lake.as_uri()).num_rows == 3
    # AND a second run over the same checkpoint finds nothing to do and writes nothing again
    run_to_the_end(spark, lake, models, "archive")
    assert read_features(lake.as_uri()).num_rows == 3
    assert manifest_names(archive) == ingested


@pytest.mark.spark
@pytest.mark.slow
def test_an_available_now_run_with_delete_removes_every_processed_manifest(
    spark, models, sample_image_paths, tmp_path
):
    # GIVEN 2 ingested images and --clean-source delete
    lake = ingested_lake(tmp_path, sample_image_paths, 2)
    # WHEN the run ends THEN no manifest is left, and nothing was archived
    run_to_the_end(spark, lake, models, "delete")
    assert manifest_names(lake / "manifests") == set()
    assert not (lake / "archive").exists()
    assert read_features(lake.as_uri()).num_rows == 2
