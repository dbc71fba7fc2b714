"""Exactly-once publication of a micro-batch's files (sink.py) on a real file:// lake through Hadoop."""

from __future__ import annotations

import pyarrow.dataset as ds
import pytest

from streaming_job.sink import BatchPublisher, Move, plan_publication, published_name


def test_plan_names_files_by_batch_id_and_ignores_markers_and_checksums():
    # GIVEN what Spark leaves in a staging directory (listed in any order)
    staged = [
        "dt=2024-05-02/part-00001-abc.c000.snappy.parquet",
        "_SUCCESS",
        "dt=2024-05-01/.part-00000-abc.c000.snappy.parquet.crc",
        "dt=2024-05-01/part-00000-abc.c000.snappy.parquet",
    ]
    # WHEN the publication is planned
    moves = plan_publication(42, staged)
    # THEN only the data files move, to names made of the batch id and a sequence number
    assert moves == [
        Move(staged[3], "dt=2024-05-01/part-0000000042-00000.parquet"),
        Move(staged[0], "dt=2024-05-02/part-0000000042-00001.parquet"),
    ]
    assert plan_publication(42, list(reversed(staged))) == moves


def test_plan_refuses_a_file_outside_a_dt_partition():
    # GIVEN a staged data file that is not under dt=<value>/ WHEN planned THEN it is refused, not misplaced
    with pytest.raises(ValueError, match="dt="):
        plan_publication(1, ["part-00000.parquet"])


def _batch(spark, ids: list[str], dt_of=lambda index: "2024-05-01"):
    rows = [(image_id, float(index), dt_of(index)) for index, image_id in enumerate(ids)]
    return spark.createDataFrame(rows, "image_id string, value float, dt string")


def _read_ids(path) -> list[str]:
    return sorted(
        ds.dataset(str(path), format="parquet", partitioning="hive").to_table().column("image_id").to_pylist()
    )


@pytest.mark.spark
def test_a_batch_is_published_under_deterministic_names_and_staging_is_removed(spark, tmp_path):
    # GIVEN a publisher on an empty output and a batch spanning two dt partitions
    publisher = BatchPublisher(spark, (tmp_path / "features").as_uri())
    batch = _batch(spark, ["a", "b", "c", "d"], dt_of=lambda index: f"2024-05-0{1 + index % 2}").coalesce(1)
    # WHEN batch 7 is written
    published = publisher.write(batch, 7)
    # THEN one file per partition, named after the batch, and no staging directory left
    assert published == 2
    assert publisher.published_files(7) == [
        f"dt=2024-05-01/{published_name(7, 0)}",
        f"dt=2024-05-02/{published_name(7, 1)}",
    ]
    assert not (tmp_path / "features" / "_staging" / "batch=7").exists()
    assert _read_ids(tmp_path / "features") == ["a", "b", "c", "d"]


@pytest.mark.spark
def test_republishing_after_a_killed_attempt_leaves_each_row_once(spark, tmp_path):
    # GIVEN batch 3 fully published by an attempt that was killed before Spark logged the commit,
    # an unrelated earlier batch 2, and the leftovers of a half-done staging
    output = tmp_path / "features"
    publisher = BatchPublisher(spark, output.as_uri())
    publisher.write(_batch(spark, ["x1", "x2"]).coalesce(1), 2)
    publisher.write(_batch(spark, ["a", "b", "c"]).repartition(3), 3)
    assert len(publisher.published_files(3)) == 3
    leftover = output / "_staging" / "batch=3" / "dt=2024-05-01"
    leftover.mkdir(parents=True)
    (leftover / "part-00009-stale.parquet").write_bytes(b"half-written")
    # WHEN Spark re-runs batch 3 (same rows; this time in one file) and it is published again
    publisher.write(_batch(spark, ["a", "b", "c"]).coalesce(1), 3)
    # THEN the output holds each row exactly once, for pyarrow and for Spark, and batch 2 is untouched
    assert publisher.published_files(3) == [f"dt=2024-05-01/{published_name(3, 0)}"]
    assert _read_ids(output) == ["a", "b", "c", "x1", "x2"]
    assert sorted(row.image_id for row in spark.read.parquet(output.as_uri()).collect()) == [
        "a",
        "b",
        "c",
        "x1",
        "x2",
    ]


@pytest.mark.spark
def test_an_empty_rerun_removes_what_the_killed_attempt_published(spark, tmp_path):
    # GIVEN batch 5 published once
    publisher = BatchPublisher(spark, (tmp_path / "errors").as_uri())
    publisher.write(_batch(spark, ["e1"]), 5)
    # WHEN its re-run has nothing to write for this output (publish without staging)
    assert publisher.publish(5) == 0
    # THEN nothing of batch 5 remains
    assert publisher.published_files(5) == []
