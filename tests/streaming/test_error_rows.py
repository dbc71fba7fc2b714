"""Error rows exactly once: 0-byte manifests become rows, and a row without an image id is known by its line.

Real stream, in-process on the shared session. A lake of bad manifests only is
streamed to the end, then re-read by a second query on a new checkpoint (what a
checkpoint reset, a new epoch or a backfill does): no error row may appear twice.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from fruits_core import contracts
from fruits_lake.reading import lake_tables
from streaming_job.query.empty_manifests import EMPTY_DETAIL
from streaming_job.query.runner import await_stream, start_stream
from tests.streaming.stream_testkit import manifest_json, stream_config, valid_manifest, write_manifest

pytestmark = [pytest.mark.spark, pytest.mark.tf]

DT = "2024-05-01"
NAMED_EMPTY_ID = "6" * 32  # a single upload's 0-byte manifest: its name carries the image id
GARBAGE_LINE = "not a manifest {"


def error_table_rows(lake: Path) -> list[dict]:
    return lake_tables(lake.as_uri())[1].refresh().scan().to_arrow().to_pylist()


def stream_once(spark, lake: Path, models, checkpoint: Path) -> None:
    config = stream_config(lake, *models, "--available-now", "--checkpoint", checkpoint.as_uri())
    await_stream(spark, start_stream(spark, config), config, threading.Event())


def test_empty_and_idless_manifests_give_one_error_row_each_across_rereads(spark, models, tmp_path):
    # GIVEN a 0-byte manifest named by its image id, a 0-byte batch manifest (no id in its name), a
    # batch manifest whose second line is garbage (no id to name it), and one valid line beside it
    lake = tmp_path / "lake"
    write_manifest(lake, f"{NAMED_EMPTY_ID}.json", "", dt=DT)
    write_manifest(lake, f"{'a' * 32}.jsonl", "", dt=DT)
    missing = valid_manifest(lake, "b" * 32, dt=DT)  # its clean image does not exist: image_not_found
    write_manifest(lake, f"{'c' * 32}.jsonl", f"{manifest_json(missing)}\n{GARBAGE_LINE}\n", dt=DT)

    # WHEN the stream reads them, then a second query on a new checkpoint reads them all again
    stream_once(spark, lake, models, tmp_path / "checkpoint-1")
    first = error_table_rows(lake)
    stream_once(spark, lake, models, tmp_path / "checkpoint-2")

    # THEN each 0-byte manifest is one malformed_manifest row with its reason, keyed by its path
    rows = error_table_rows(lake)
    assert len(rows) == len(first) == 4
    by_key = {row["error_key"]: row for row in rows}
    assert len(by_key) == 4
    named = by_key[contracts.error_key(f"dt={DT}/{NAMED_EMPTY_ID}.json", "")]
    assert (named["image_id"], named["reason"], named["detail"]) == (
        NAMED_EMPTY_ID,
        "malformed_manifest",
        EMPTY_DETAIL,
    )
    nameless = by_key[contracts.error_key(f"dt={DT}/{'a' * 32}.jsonl", "")]
    assert (nameless["image_id"], nameless["detail"]) == (None, EMPTY_DETAIL)
    # AND the garbage line, with no image id, is known by its file and text (the stream's key is
    # contracts.error_key, computed the same in Spark)
    garbage = by_key[contracts.error_key(f"dt={DT}/{'c' * 32}.jsonl", GARBAGE_LINE)]
    assert (garbage["image_id"], garbage["reason"]) == (None, "malformed_manifest")
    assert by_key[contracts.error_key(f"dt={DT}/{'c' * 32}.jsonl", manifest_json(missing))]["reason"] == (
        "image_not_found"
    )
