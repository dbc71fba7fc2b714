"""Exactly-once publication of a micro-batch's files (sink.py) on a real file:// lake through Hadoop."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from streaming_job.sink import BatchPublisher, Move, parquet_by_partition, plan_publication, published_name


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


def _batch(ids: list[str], dt_of=lambda index: "2024-05-01") -> pa.Table:
    return pa.table(
        {
            "image_id": ids,
            "value": pa.array([float(index) for index in range(len(ids))], pa.float32()),
            "dt": [dt_of(index) for index in range(len(ids))],
        }
    )


def _read_ids(path) -> list[str]:
    return sorted(
        ds.dataset(str(path), format="parquet", partitioning="hive").to_table().column("image_id").to_pylist()
    )


def test_rows_become_one_parquet_file_per_dt_without_the_dt_column():
    # GIVEN rows of two days, listed out of order
    table = _batch(["a", "b", "c"], dt_of=lambda index: ["2024-05-02", "2024-05-01", "2024-05-02"][index])
    # WHEN encoded
    files = parquet_by_partition(table)
    # THEN one file per day, in Hive layout, each holding that day's rows and no dt column
    assert [path for path, _ in files] == [
        "dt=2024-05-01/part-00000.parquet",
        "dt=2024-05-02/part-00000.parquet",
    ]
    decoded = [pq.read_table(pa.BufferReader(data)) for _, data in files]
    assert [part.column("image_id").to_pylist() for part in decoded] == [["b"], ["a", "c"]]
    assert all(part.column_names == ["image_id", "value"] for part in decoded)
    assert parquet_by_partition(table.slice(0, 0)) == []


@pytest.mark.parametrize("dt", ["../../etc", "2024/05/01", "2024-05-01\n", "", None])
def test_a_dt_that_is_not_a_date_is_refused_rather_than_used_as_a_folder(dt):
    # GIVEN a row whose dt would name a folder outside the output WHEN encoded THEN it is refused
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        parquet_by_partition(pa.table({"image_id": ["a"], "dt": pa.array([dt], pa.string())}))


@pytest.mark.spark
def test_a_batch_is_published_under_deterministic_names_and_staging_is_removed(spark, tmp_path):
    # GIVEN a publisher on an empty output and a batch spanning two dt partitions
    publisher = BatchPublisher(spark, (tmp_path / "features").as_uri())
    batch = _batch(["a", "b", "c", "d"], dt_of=lambda index: f"2024-05-0{1 + index % 2}")
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
    # GIVEN batch 3 fully published by an attempt that was killed before Spark logged the commit
    # (in two files), an unrelated earlier batch 2, and the leftovers of a half-done staging
    output = tmp_path / "features"
    publisher = BatchPublisher(spark, output.as_uri())
    publisher.write(_batch(["x1", "x2"]), 2)
    publisher.write(_batch(["a", "b", "c"]), 3)
    first = output / "dt=2024-05-01" / published_name(3, 0)
    first.with_name(published_name(3, 1)).write_bytes(first.read_bytes())
    leftover = output / "_staging" / "batch=3" / "dt=2024-05-01"
    leftover.mkdir(parents=True)
    (leftover / "part-00009-stale.parquet").write_bytes(b"half-written")
    # WHEN Spark re-runs batch 3 (same rows) and it is published again
    publisher.write(_batch(["a", "b", "c"]), 3)
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
    publisher.write(_batch(["e1"]), 5)
    # WHEN its re-run has nothing to write for this output
    assert publisher.write(_batch([]), 5) == 0
    # THEN nothing of batch 5 remains
    assert publisher.published_files(5) == []
