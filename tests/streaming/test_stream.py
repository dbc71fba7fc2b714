"""The streaming query end to end, in-process on the shared session, on really ingested real images."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fruits_core import contracts
from fruits_lake.catalog import K_PROPERTY, PCA_VERSION_PROPERTY
from fruits_lake.reading import lake_tables, read_features
from streaming_job.monitoring.health import lake_health
from streaming_job.query.runner import await_stream, drain_listener, install_stop_signals, start_stream
from streaming_job.query.stream import is_partition_date
from tests.streaming.stream_testkit import (
    PCA_K,
    PERSONAL_STRINGS,
    every_nth,
    ingest_images,
    manifest_json,
    stream_config,
    valid_manifest,
    write_manifest,
)

pytestmark = [pytest.mark.spark, pytest.mark.tf]

IMAGES = 10
MISSING_IMAGE_ID = "a" * 32
BROKEN_ID = "b" * 32
FUTURE_ID = "c" * 32
INCOMPLETE_ID = "d" * 32
BAD_DT_ID = "e" * 32
EMPTY_ID_FILE_ID = "1" * 32  # the manifest's file name; its image_id is ""
NO_SUCH_DAY_ID = "2" * 32
OUTSIDE_ID = "3" * 32
BLANK_ID = "4" * 32  # a manifest file holding only whitespace: no manifest, no row
ARRAY_ID = "5" * 32  # a manifest file holding a JSON array of two manifests
EMPTY_FILE_ID = "6" * 32  # a 0-byte manifest file: Spark's scan skips it, the driver makes it an error row
CLAIMED_ID = "7" * 32  # a manifest whose image_uri is another image of the lake (another person's photo)
FEATURE_NAMES = contracts.field_names(contracts.FEATURES_FIELDS)


@pytest.fixture(scope="module")
def streamed(spark, models, sample_image_paths, tmp_path_factory):
    """A lake with 10 ingested images, a duplicated manifest and 12 bad ones, streamed to the end, twice."""
    root = tmp_path_factory.mktemp("stream")
    lake = root / "lake"
    images = every_nth(sample_image_paths[3:], IMAGES)
    outcomes = ingest_images(lake, root / "uploads", images)
    accepted = [outcome for outcome in outcomes if outcome.status == "accepted"]
    # a manifest copied under another day; both files made the oldest, so one micro-batch reads both
    original = manifest_path(accepted[-1])
    copy = write_manifest(lake, original.name, original.read_text(), dt="2099-01-01")
    oldest = original.stat().st_mtime - 60
    for path in (original, copy):
        os.utime(path, (oldest, oldest))
    write_manifest(lake, f"{MISSING_IMAGE_ID}.json", manifest_json(valid_manifest(lake, MISSING_IMAGE_ID)))
    write_manifest(lake, f"{BROKEN_ID}.json", '{"schema_version": 1, "image_id": "' + BROKEN_ID + '", "wid')
    future = valid_manifest(lake, FUTURE_ID, schema_version=2)
    write_manifest(lake, f"{FUTURE_ID}.json", manifest_json(future))
    incomplete = valid_manifest(lake, INCOMPLETE_ID)
    del incomplete["image_uri"], incomplete["ingested_at"]
    write_manifest(lake, f"{INCOMPLETE_ID}.json", manifest_json(incomplete))
    write_manifest(
        lake, f"{BAD_DT_ID}.json", manifest_json(valid_manifest(lake, BAD_DT_ID, dt="../../escape"))
    )
    empty_id = dict(valid_manifest(lake, EMPTY_ID_FILE_ID), image_id="")
    write_manifest(lake, f"{EMPTY_ID_FILE_ID}.json", manifest_json(empty_id))
    no_such_day = valid_manifest(lake, NO_SUCH_DAY_ID, dt="2024-13-45")
    write_manifest(lake, f"{NO_SUCH_DAY_ID}.json", manifest_json(no_such_day))
    # a readable image outside the lake: a manifest must not make the stream read it
    outside = valid_manifest(lake, OUTSIDE_ID, image_uri=images[0].resolve().as_uri())
    write_manifest(lake, f"{OUTSIDE_ID}.json", manifest_json(outside))
    write_manifest(lake, f"{BLANK_ID}.json", " \n\t \r\n")
    two = [valid_manifest(lake, ARRAY_ID), valid_manifest(lake, MISSING_IMAGE_ID)]
    write_manifest(lake, f"{ARRAY_ID}.json", json.dumps(two))
    write_manifest(lake, f"{EMPTY_FILE_ID}.json", "")
    claimed = valid_manifest(
        lake, CLAIMED_ID, image_uri=json.loads(manifest_path(accepted[1]).read_text())["image_uri"]
    )
    write_manifest(lake, f"{CLAIMED_ID}.json", manifest_json(claimed))
    config = stream_config(lake, *models, "--available-now", "--max-files-per-trigger", "6")
    running = start_stream(spark, config)
    reason = await_stream(spark, running, config, threading.Event())
    # a re-delivered upload rewrites its manifest at the same key; the stream runs again
    first = manifest_path(accepted[0])
    write_manifest(lake, first.name, first.read_text(), dt=first.parent.name.removeprefix("dt="))
    rerun = start_stream(spark, config)
    await_stream(spark, rerun, config, threading.Event())
    return {
        "lake": lake,
        "config": config,
        "accepted": accepted,
        "running": running,
        "reason": reason,
        "uploads": root / "uploads",
    }


def manifest_path(outcome) -> Path:
    return Path(outcome.manifest_uri.removeprefix("file://"))


def error_rows(lake: Path) -> list[dict]:
    _, errors = lake_tables(lake.as_uri())
    return errors.scan().to_arrow().to_pylist()


def data_folder(table) -> Path:
    return Path(table.location().removeprefix("file://")) / "data"


def test_available_now_processes_the_backlog_and_stops_by_itself(streamed):
    assert streamed["reason"] == "finished"
    assert not streamed["running"].query.isActive


def test_each_accepted_upload_is_featurized_exactly_once(streamed):
    # GIVEN 10 accepted uploads, one manifest duplicated in a batch, one re-delivered after its batch
    # WHEN the stream has run (twice)
    table = read_features(streamed["lake"].as_uri())
    ids = table.column("image_id").to_pylist()
    # THEN the features hold each accepted image exactly once
    assert sorted(ids) == sorted(outcome.image_id for outcome in streamed["accepted"])
    assert len(ids) == len(set(ids)) == IMAGES


def test_features_follow_the_contract_schema_and_day_partitioning(streamed):
    features, _ = lake_tables(streamed["lake"].as_uri())
    # THEN the table has exactly the contract's columns, in order, with real UTC timestamps
    assert [field.name for field in features.schema().fields] == FEATURE_NAMES
    table = features.scan().to_arrow()
    assert table.schema.field("uploaded_at").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("features").type.value_type == pa.float32()
    assert table.schema.field("pca_residual").type == pa.float32()
    # AND one data folder per upload day (the hidden day partition), in Parquet files
    accepted_days = sorted({outcome.dt for outcome in streamed["accepted"]})
    assert sorted(path.name for path in data_folder(features).iterdir()) == [
        f"dt={day}" for day in accepted_days
    ]
    files = sorted(data_folder(features).glob("dt=*/*.parquet"))
    assert files
    assert pq.read_schema(files[0]).names == FEATURE_NAMES
    rows = table.to_pylist()
    running = streamed["running"]
    assert all(len(row["features"]) == PCA_K and row["pca_residual"] >= 0 for row in rows)
    assert {(row["model_version"], row["pca_version"]) for row in rows} == {
        (running.model_version, running.pca_version)
    }
    assert {row["label"] for row in rows} <= {"apple", "lemon", "mango", "raspberry"}
    assert all(row["processed_at"] >= row["ingested_at"] >= row["uploaded_at"] for row in rows)
    assert {contracts.partition_date(row["uploaded_at"]) for row in rows} == set(accepted_days)
    # AND the pseudonym and its key version are the manifest's, the upload time its instant
    for row in rows:
        (outcome,) = [outcome for outcome in streamed["accepted"] if outcome.image_id == row["image_id"]]
        manifest = json.loads(manifest_path(outcome).read_text())
        assert (row["subject_id"], row["key_version"]) == (manifest["subject_id"], manifest["key_version"])
        assert row["uploaded_at"] == contracts.parse_iso(manifest["uploaded_at"])
    assert features.properties[PCA_VERSION_PROPERTY] == running.pca_version
    assert features.properties[K_PROPERTY] == str(PCA_K)


def test_bad_manifests_and_missing_images_become_error_rows(spark, streamed):
    # GIVEN a manifest whose image is gone, a broken file, a v2 manifest, one lacking required fields,
    # one whose dt would name a folder outside the output, one with an empty image_id, one dated
    # 2024-13-45, one naming an image outside the lake, one claiming another image of the lake, a
    # manifest duplicated in one batch, a file of whitespace (no manifest line: nothing), a file
    # holding a JSON array of two manifests and a 0-byte file
    _, errors_table = lake_tables(streamed["lake"].as_uri())
    error_rows = errors_table.scan().to_arrow().to_pylist()
    errors = {row["image_id"]: row for row in error_rows}
    duplicated_id = streamed["accepted"][-1].image_id
    # THEN each is an error row with a stable reason, and the stream went on
    assert len(error_rows) == len(errors) == 12
    assert {image_id: row["reason"] for image_id, row in errors.items()} == {
        MISSING_IMAGE_ID: "image_not_found",
        BROKEN_ID: "malformed_manifest",
        FUTURE_ID: "unsupported_schema_version",
        INCOMPLETE_ID: "malformed_manifest",
        BAD_DT_ID: "malformed_manifest",
        EMPTY_ID_FILE_ID: "malformed_manifest",
        NO_SUCH_DAY_ID: "malformed_manifest",
        OUTSIDE_ID: "image_uri_outside_lake",
        duplicated_id: "duplicate_image_id",
        ARRAY_ID: "malformed_manifest",
        CLAIMED_ID: "malformed_manifest",
        EMPTY_FILE_ID: "malformed_manifest",
    }
    # a 0-byte manifest, which Spark's scan skips, is a row too (found by the driver, once)
    assert errors[EMPTY_FILE_ID]["detail"] == "manifest is empty (0 bytes)"
    assert "another image than image_id" in errors[CLAIMED_ID]["detail"]
    # the array is one error row (the file's), not one row per element
    assert errors[ARRAY_ID]["detail"] == "manifest is a JSON array: one JSON object per line"
    assert errors[ARRAY_ID]["image_uri"] is None
    assert "schema_version 2" in errors[FUTURE_ID]["detail"]
    assert errors[INCOMPLETE_ID]["detail"] == "missing required field(s): image_uri, ingested_at"
    assert errors[BAD_DT_ID]["detail"] == "dt is not a YYYY-MM-DD calendar date"
    assert errors[NO_SUCH_DAY_ID]["detail"] == "dt is not a YYYY-MM-DD calendar date"
    assert errors[EMPTY_ID_FILE_ID]["detail"] == "image_id is not 32 lowercase hex digits"
    assert "clean image of the lake" in errors[OUTSIDE_ID]["detail"]
    assert not list(streamed["lake"].parent.rglob("escape"))
    assert errors[MISSING_IMAGE_ID]["image_uri"].endswith(f"{MISSING_IMAGE_ID}.jpg")
    # AND they are partitioned by the day they were processed
    days = {contracts.partition_date(row["processed_at"]) for row in error_rows}
    assert sorted(path.name for path in data_folder(errors_table).iterdir()) == [f"dt={day}" for day in days]


def test_no_personal_data_reaches_any_output(streamed):
    # GIVEN uploads that carried a user id, a device id, GPS, a capture time and a file name
    lake = streamed["lake"]
    upload_names = [
        path.name for path in (streamed["uploads"] / "uploads").iterdir() if not path.name.startswith(".")
    ]
    forbidden = [*PERSONAL_STRINGS, *upload_names, "holiday-"]
    outputs = [
        path
        for area in ("features", "errors", "status", "checkpoints", "catalog")
        for path in (lake / area).rglob("*")
        if path.is_file()
    ]
    assert any(path.suffix == ".parquet" for path in outputs)
    # WHEN every output file is searched, raw and (for Parquet) decoded
    leaks = []
    for path in outputs:
        texts = [path.read_bytes().decode("utf-8", errors="replace")]
        if path.suffix == ".parquet":
            texts.append(json.dumps(pq.read_table(path).to_pylist(), default=str))
        leaks += [(str(path.relative_to(lake)), word) for word in forbidden for text in texts if word in text]
    # THEN none of it is there
    assert leaks == []


def test_the_status_log_records_every_batch(streamed):
    lake = streamed["lake"]
    progress = sorted((lake / "status" / "progress").rglob("*.json"))
    records = [json.loads(path.read_text()) for path in progress]
    latest = json.loads((lake / "status" / "latest.json").read_text())
    # 23 manifest files (10 accepted, 1 duplicate, 12 bad; the 0-byte one and the whitespace-only one
    # hold no manifest line, so no input row; the 0-byte one is an error row all the same), at most 6
    # per batch; the re-delivery is not read again
    assert len(records) >= 4
    assert sum(record["input_rows"] for record in records) == 21
    assert sum(record["feature_rows"] for record in records) == IMAGES
    assert sum(record["error_rows"] for record in records) == 12
    # the 0-byte manifest is counted once, not lost (and not again by the second run)
    assert sum(record["empty_manifests"] for record in records) == 1
    assert latest["totals"]["empty_manifests"] == 1
    assert records[-1]["backlog_manifests"] == 0
    assert latest["state"] == "stopped" and latest["totals"]["feature_rows"] == IMAGES
    # AND `fruits status` says STOPPED: a clean stop was recorded
    assert lake_health(lake.as_uri()).health == "stopped"
    with_features = [record for record in records if record["feature_rows"]]
    assert all(record["latency_p95_ms"] >= record["latency_p50_ms"] > 0 for record in with_features)


@pytest.fixture
def idle_lake(spark, models, tmp_path):
    """A running processing-time query on an empty lake."""
    lake = tmp_path / "lake"
    config = stream_config(lake, *models, "--trigger", "1")
    running = start_stream(spark, config)
    yield lake, config, running
    if running.query.isActive:
        running.query.stop()


def test_the_stop_marker_stops_the_query_cleanly_and_is_removed(spark, idle_lake):
    lake, config, running = idle_lake
    # GIVEN a running stream WHEN `fruits deploy stop` writes the marker
    marker = lake / contracts.STOP_MARKER_KEY
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("stop")
    # THEN the stream stops between batches, reports why, and deletes the marker for the next start
    assert await_stream(spark, running, config, threading.Event(), poll_seconds=0.5) == "stop marker"
    assert not running.query.isActive
    assert not marker.exists()
    assert json.loads((lake / "status" / "latest.json").read_text())["state"] == "stopped"


def test_sigterm_stops_the_query_cleanly(spark, idle_lake):
    _, config, running = idle_lake
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    stop_requested = threading.Event()
    try:
        # GIVEN the stream's signal handlers WHEN the process receives SIGTERM
        install_stop_signals(stop_requested)
        os.kill(os.getpid(), signal.SIGTERM)
        # THEN the query is stopped cleanly instead of the process dying
        assert await_stream(spark, running, config, stop_requested, poll_seconds=0.5) == "stop requested"
        assert not running.query.isActive
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def test_manifests_already_archived_are_not_read_again(spark, models, sample_image_paths, tmp_path):
    # GIVEN a lake streamed once with cleanSource=archive
    lake = tmp_path / "lake"
    ingest_images(lake, tmp_path / "uploads", every_nth(sample_image_paths, 3))
    config = stream_config(
        lake, *models, "--available-now", "--clean-source", "archive", "--max-files-per-trigger", "1"
    )
    await_stream(spark, start_stream(spark, config), config, threading.Event())
    # THEN processed manifests moved out of manifests/, the last batch's too (test_source_cleanup.py)
    archived = list((lake / "archive" / "manifests").rglob("*.json"))
    assert len(archived) == 3
    assert list((lake / "manifests").rglob("*.json")) == []
    assert len(read_features(lake.as_uri())) == 3


def test_only_a_plain_date_is_a_partition_date(spark):
    # GIVEN dt values a manifest could carry, a trailing newline among them (Java's `$` accepts it)
    values = ["2024-05-01", "2024-05-01\n", "../../escape", "2024/05/01", "", None]
    values += ["2024-13-45", "2023-02-29"]  # the right shape, no such day
    frame = spark.createDataFrame([(value,) for value in values], "dt string")
    # WHEN checked by the stream's classification THEN only the plain date passes, as the sink requires
    checked = frame.select(is_partition_date(frame["dt"]).alias("ok")).collect()
    assert [row.ok for row in checked] == [True, False, False, False, False, False, False, False]


HANGING_ID = "7" * 32


def test_a_hanging_image_read_shows_busy_then_hung_then_becomes_an_error_row(spark, models, tmp_path):
    # GIVEN a running stream (heartbeat 1 s, HUNG after 3 s, image reads abandoned after 8 s) and a manifest
    # whose clean image is a FIFO no one writes: reading it blocks, as on a stuck mount
    lake = tmp_path / "lake"
    image = lake / contracts.clean_image_key("2024-05-01", HANGING_ID)
    image.parent.mkdir(parents=True)
    os.mkfifo(image)
    config = stream_config(
        lake, *models, "--trigger", "1", "--heartbeat", "1", "--hung-after", "3", "--image-read-timeout", "8"
    )
    running = start_stream(spark, config)
    try:
        write_manifest(lake, f"{HANGING_ID}.json", manifest_json(valid_manifest(lake, HANGING_ID)))
        # WHEN `fruits status` is asked every 0.2 s until the batch is published
        seen = []
        deadline = time.monotonic() + 120
        while not error_rows(lake) and time.monotonic() < deadline:
            seen.append(lake_health(lake.as_uri()).health)
            time.sleep(0.2)
        # THEN it said RUNNING-BUSY while the batch was young, HUNG once older than --hung-after
        assert "running-busy" in seen and "hung" in seen
        assert seen.index("running-busy") < seen.index("hung")
        assert "dead" not in seen  # the heartbeat kept coming while the batch hung
        # AND the read was abandoned after the timeout: an error row with its own reason
        assert [(row["image_id"], row["reason"]) for row in error_rows(lake)] == [
            (HANGING_ID, "image_read_timeout")
        ]
        # AND once the batch is done, the next heartbeat shows a running stream with no batch in flight
        deadline = time.monotonic() + 30
        while lake_health(lake.as_uri()).health != "healthy" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert lake_health(lake.as_uri()).health == "healthy"
    finally:
        running.query.stop()
        drain_listener(spark, running.listener)
        # the abandoned read is still blocked opening the FIFO in a worker: let it finish
        with contextlib.suppress(OSError):
            os.close(os.open(image, os.O_WRONLY | os.O_NONBLOCK))
