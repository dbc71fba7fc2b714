"""The exact backlog: manifests under manifests/ the file source's log does not list, on real checkpoints."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from streaming_job.checkpoints.checkpoint_epochs import epoch_uri
from streaming_job.monitoring.backlog import ManifestBacklog, SourceLog, log_file_id, path_key
from streaming_job.query.runner import await_stream, start_stream
from tests.streaming.stream_testkit import manifest_json, stream_config, valid_manifest, write_manifest


def test_one_file_has_one_key_whatever_the_spelling():
    assert path_key("file:/lake/manifests/dt=2024-05-01/a.json") == "/lake/manifests/dt=2024-05-01/a.json"
    assert path_key("file:///lake/manifests/dt%3D2024-05-01/a.json") == "/lake/manifests/dt=2024-05-01/a.json"
    assert path_key("s3://bucket/manifests/dt=2024-05-01/a.json") == "bucket/manifests/dt=2024-05-01/a.json"


@pytest.mark.parametrize(
    ("name", "expected"), [("12", 12), ("19.compact", 19), (".12.crc", None), ("x", None)]
)
def test_source_log_file_names(name, expected):
    assert log_file_id(f"file:///ck/sources/0/{name}") == expected


def write_log(directory, name: str, entries: list[tuple[str, int]]) -> None:
    """A file source log file as Spark writes it: a version line, then one JSON object per file."""
    lines = ["v1", *(json.dumps({"path": path, "timestamp": 1, "batchId": batch}) for path, batch in entries)]
    (directory / name).write_text("\n".join(lines))


def test_the_source_log_is_read_incrementally_and_from_the_newest_compact_file(tmp_path):
    log_dir = tmp_path / "sources" / "0"
    log_dir.mkdir(parents=True)
    write_log(log_dir, "0", [("file:///m/a.json", 0)])
    write_log(log_dir, "1", [("file:///m/b.json", 1)])
    log = SourceLog(log_dir.as_uri())
    # GIVEN two batch files WHEN read THEN both batches' files
    assert log.new_paths() == {"/m/a.json", "/m/b.json"}
    # WHEN a compact file (all entries up to it) and a batch file follow THEN only the new entries
    write_log(
        log_dir, "2.compact", [("file:///m/a.json", 0), ("file:///m/b.json", 1), ("file:///m/c.json", 2)]
    )
    write_log(log_dir, "3", [("file:///m/d.json", 3)])
    assert log.new_paths() == {"/m/c.json", "/m/d.json"}
    assert log.new_paths() == set()
    # AND a fresh reader, after Spark deleted the files before the compact one, starts at the compact file
    (log_dir / "0").unlink()
    (log_dir / "1").write_text("v1\n{broken")  # not read: the compact file holds its entries
    assert SourceLog(log_dir.as_uri()).new_paths() == {"/m/a.json", "/m/b.json", "/m/c.json", "/m/d.json"}


def missing_image_manifests(lake, first: int, count: int, mtime: float | None = None) -> None:
    """Manifests whose images do not exist: fast error rows, enough for the source's bookkeeping."""
    for number in range(first, first + count):
        image_id = f"{number:032x}"
        path = write_manifest(lake, f"{image_id}.json", manifest_json(valid_manifest(lake, image_id)))
        if mtime is not None:
            os.utime(path, (mtime, mtime))


def drain(spark, config) -> None:
    await_stream(spark, start_stream(spark, config), config, threading.Event())


@pytest.mark.spark
@pytest.mark.tf
@pytest.mark.parametrize("clean_source", ["off", "archive"])
def test_the_backlog_counts_every_manifest_the_source_has_not_taken(spark, models, tmp_path, clean_source):
    # GIVEN a lake with 5 manifests and a 0-byte one, streamed to the end 2 files per batch
    lake = tmp_path / "lake"
    missing_image_manifests(lake, 1, 5)
    write_manifest(lake, f"{'e' * 32}.json", "")
    config = stream_config(
        lake, *models, "--available-now", "--max-files-per-trigger", "2", "--clean-source", clean_source
    )
    counter = ManifestBacklog(config.manifests_uri, lambda: epoch_uri(config.checkpoint, 0))
    drain(spark, config)
    # WHEN 4 manifests arrive whose modification time is older than every processed one (a late upload,
    # a copied file, a skewed clock): a rule on modification times would count none of them
    missing_image_manifests(lake, 100, 4, mtime=time.time() - 86_400)
    # THEN exactly those 4 are waiting, and the 0-byte manifest the stream took was counted
    count = counter.count()
    assert count.waiting == 4
    if clean_source == "off":
        assert count.empty_taken == 1
    # AND a counter made by the next driver agrees, and sees 0 once the stream took them
    assert ManifestBacklog(config.manifests_uri, lambda: epoch_uri(config.checkpoint, 0)).count().waiting == 4
    drain(spark, config)
    assert counter.count().waiting == 0
    assert ManifestBacklog(config.manifests_uri, lambda: epoch_uri(config.checkpoint, 0)).count().waiting == 0


def test_a_manifest_archived_between_the_listing_and_its_size_is_not_counted_and_not_an_error(
    tmp_path, monkeypatch
):
    # GIVEN two manifests and a day folder, of which the source's cleanup archives one manifest and
    # removes the folder right after the listing has named them (the race that cost a progress record)
    from streaming_job import uris

    day = tmp_path / "manifests" / "dt=2024-05-01"
    day.mkdir(parents=True)
    (day / "a.json").write_text("{}")
    (day / "b.json").write_text("{}")
    gone_day = tmp_path / "manifests" / "dt=2024-05-02"
    gone_day.mkdir()
    real_scandir = os.scandir

    class ListedThenCleaned(list):
        """What os.scandir listed, with the cleanup done once the folder was read."""

        def __enter__(self):
            return self

        def __exit__(self, *_):
            return False

    def listing_then_cleanup(path):
        with real_scandir(path) as listing:
            entries = ListedThenCleaned(listing)
        if Path(path) == tmp_path / "manifests":
            gone_day.rmdir()
        elif Path(path) == day:
            (day / "b.json").unlink()
        return entries

    monkeypatch.setattr(uris.os, "scandir", listing_then_cleanup)
    # WHEN the manifests are listed with their sizes THEN the one still there is, and nothing raised
    listed = uris.list_sizes(uris.file_uri(tmp_path / "manifests"), ".json")
    assert listed == {uris.file_uri(day / "a.json"): 2}
