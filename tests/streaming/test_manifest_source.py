"""A manifest that vanishes between the planning of a batch and its read (an erasure) is skipped."""

from __future__ import annotations

from pathlib import Path

import pytest

from streaming_job.query.stream import MANIFEST_SOURCE_OPTIONS


def planned_then_deleted(spark, folder: Path, options: dict[str, str]) -> list[str]:
    """Plan a read of three manifests, delete one (as an erasure does), then read them."""
    for name in ("a", "b", "c"):
        (folder / f"{name}.json").write_text(f'{{"image_id": "{name}"}}')
    planned = spark.read.format("text").options(**options).load(str(folder))
    planned.inputFiles()  # the listing is fixed here, as a micro-batch's offsets are
    (folder / "b.json").unlink()
    return sorted(row.value for row in planned.collect())


@pytest.mark.spark
def test_a_manifest_deleted_after_planning_is_skipped_not_fatal(spark, tmp_path: Path):
    assert planned_then_deleted(spark, tmp_path, MANIFEST_SOURCE_OPTIONS) == [
        '{"image_id": "a"}',
        '{"image_id": "c"}',
    ]


@pytest.mark.spark
def test_without_the_option_the_same_read_fails(spark, tmp_path: Path):
    # The interleaving is real: Spark's own default fails the read (what killed the stream before).
    options = {key: value for key, value in MANIFEST_SOURCE_OPTIONS.items() if key != "ignoreMissingFiles"}
    with pytest.raises(Exception, match=r"FILE_NOT_EXIST|FileNotFound|does not exist"):
        planned_then_deleted(spark, tmp_path, options)
