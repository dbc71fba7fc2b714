"""The status log and the CloudWatch EMF metrics the listener derives from Spark's progress events."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import boto3
import pytest
from pyspark.sql.streaming.listener import (
    QueryIdleEvent,
    QueryProgressEvent,
    QueryStartedEvent,
    QueryTerminatedEvent,
    StreamingQueryProgress,
)

from fruits_core import contracts
from streaming_job.monitoring.backlog import ManifestBacklog
from streaming_job.monitoring.heartbeat import Heartbeat
from streaming_job.monitoring.listener import ProgressListener
from streaming_job.monitoring.status_log import (
    EMF_METRICS,
    BatchInFlight,
    BatchStats,
    BatchStatsBoard,
    EmfPublisher,
    StatusLog,
    emf_record,
    heartbeat_record,
    progress_record,
)
from tests.streaming.stream_testkit import stream_config, write_manifest

RUN_ID = "8a8e0c98-82bf-45d7-b596-034d6dca592e"
QUERY_ID = "f72fd25a-a12d-45ff-bbf3-584557de2aca"
PROGRESS_METRIC_NAMES = [
    "InputRows",
    "RowsPerSecond",
    "BatchDurationMs",
    "LatencyP50Ms",
    "LatencyP95Ms",
    "ErrorRows",
    "BacklogManifests",
    "ModelBuilds",
    "EmptyManifests",
]
HEARTBEAT_METRIC_NAMES = ["BacklogManifests", "Heartbeat", "BatchInFlightSeconds"]


def spark_progress(batch_id: int, rows: int = 20, timestamp: str = "2024-05-01T10:00:05.000Z") -> dict:
    """A progress event as Spark 4.0 reports it for the foreachBatch query (the shape of progress.json)."""
    return {
        "id": QUERY_ID,
        "runId": RUN_ID,
        "name": "fruits-features",
        "timestamp": timestamp,
        "batchId": batch_id,
        "batchDuration": 2000,
        "numInputRows": rows,
        "inputRowsPerSecond": 2.75,
        "processedRowsPerSecond": 10.0,
        "durationMs": {
            "addBatch": 1800,
            "getBatch": 7,
            "latestOffset": 33,
            "queryPlanning": 20,
            "triggerExecution": 2000,
            "walCommit": 37,
        },
        "eventTime": {},
        "stateOperators": [],
        "sources": [
            {
                "description": "FileStreamSource[file:/lake/manifests]",
                "startOffset": {"logOffset": 1},
                "endOffset": {"logOffset": 2},
                "latestOffset": None,
                "numInputRows": rows,
                "inputRowsPerSecond": 2.75,
                "processedRowsPerSecond": 10.0,
                "metrics": {},
            }
        ],
        "sink": {"description": "ForeachBatchSink", "numOutputRows": -1, "metrics": {}},
        "observedMetrics": {},
    }


STATS = BatchStats(
    manifest_rows=10,
    feature_rows=9,
    error_rows=1,
    latency_p50_ms=1500.0,
    latency_p95_ms=4200.0,
    model_builds=2,
    already_in_table=3,
    low_confidence_rows=1,
    label_disagreements=2,
)


def started_event(timestamp: str = "2024-05-01T10:00:00.000Z") -> QueryStartedEvent:
    return QueryStartedEvent.fromJson(
        {"id": QUERY_ID, "runId": RUN_ID, "name": "fruits-features", "timestamp": timestamp, "jobTags": []}
    )


def progress_event(batch_id: int, **progress) -> QueryProgressEvent:
    return QueryProgressEvent(StreamingQueryProgress.fromJson(spark_progress(batch_id, **progress)))


def terminated_event() -> QueryTerminatedEvent:
    return QueryTerminatedEvent.fromJson(
        {"id": QUERY_ID, "runId": RUN_ID, "exception": None, "errorClassOnException": None}
    )


def emf_listener(config, logs, lake_dir: Path, waiting: int) -> tuple[ProgressListener, BatchStatsBoard]:
    """A listener sending EMF to moto CloudWatch Logs (the config's log group, namespace and stage), its
    backlog counted on `waiting` manifests written to the lake."""
    for name in range(1, waiting + 1):
        write_manifest(lake_dir, f"{str(name) * 32}.json", "{}")
    board = BatchStatsBoard()
    listener = ProgressListener(
        config,
        board,
        backlog=ManifestBacklog(config.manifests_uri, lambda: config.checkpoint),
        emf=EmfPublisher(config.cloudwatch_log_group, config.metrics_namespace, config.stage, client=logs),
    )
    return listener, board


def test_a_progress_record_carries_the_batch_figures_and_no_identifiers():
    # GIVEN Spark's progress (which counts every re-read of the source) and what foreachBatch measured
    # WHEN they are turned into a status record
    record = progress_record(spark_progress(4, rows=20), STATS, backlog_manifests=37)
    # THEN rows come from foreachBatch, rows/s from them and the trigger duration, plus latency and backlog
    assert record == {
        "record_version": contracts.STATUS_RECORD_VERSION,
        "event": "progress",
        "batch_id": 4,
        "timestamp": "2024-05-01T10:00:05.000Z",
        "run_id": RUN_ID,
        "input_rows": 10,
        "rows_per_second": 5.0,
        "batch_duration_ms": 2000,
        "latency_p50_ms": 1500.0,
        "latency_p95_ms": 4200.0,
        "feature_rows": 9,
        "error_rows": 1,
        "already_in_table": 3,
        "backlog_manifests": 37,
        "model_builds": 2,
        "empty_manifests": 0,
        "low_confidence_rows": 1,
        "label_disagreements": 2,
    }


def test_emf_record_uses_the_alarm_metric_names_the_stage_dimension_and_the_namespace():
    # GIVEN a progress record WHEN rendered as embedded metric format
    document = emf_record(progress_record(spark_progress(4), STATS, 37), "Fruits/Stream", "prod")
    # THEN it declares exactly the metric names the alarms use, with Stage as the only dimension
    directive = document["_aws"]["CloudWatchMetrics"][0]
    predictions = ["LowConfidencePredictions", "LabelDisagreements"]
    assert [metric["Name"] for metric in directive["Metrics"]] == [*PROGRESS_METRIC_NAMES, *predictions]
    assert [name for name, _, _ in EMF_METRICS] == [
        *PROGRESS_METRIC_NAMES,
        "Heartbeat",
        "BatchInFlightSeconds",
        *predictions,
    ]
    assert directive["Namespace"] == "Fruits/Stream"
    assert directive["Dimensions"] == [["Stage"]]
    assert document["Stage"] == "prod"
    assert document["_aws"]["Timestamp"] == 1714557605000
    assert (document["InputRows"], document["ErrorRows"], document["BacklogManifests"]) == (10, 1, 37)
    assert (document["LatencyP95Ms"], document["ModelBuilds"]) == (4200.0, 2)


def test_emf_leaves_out_metrics_without_a_value():
    # GIVEN a batch with no featurized image (no latency) WHEN rendered
    stats = BatchStats(3, 0, 3, None, None, 0)
    document = emf_record(progress_record(spark_progress(5), stats, None), "Fruits/Stream", "dev")
    # THEN latency and backlog are absent rather than a misleading zero
    names = [metric["Name"] for metric in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]]
    assert "LatencyP50Ms" not in names and "BacklogManifests" not in names and "LatencyP50Ms" not in document
    assert document["ErrorRows"] == 3


@pytest.fixture
def logs(mocked_aws):
    client = boto3.client("logs", region_name="eu-west-3")
    client.create_log_group(logGroupName="/fruits/prod/stream")
    return client


def recent(seconds_ago: int) -> str:
    """CloudWatch Logs refuses events older than 14 days: progress events are always recent."""
    return contracts.iso_utc(datetime.now(UTC) - timedelta(seconds=seconds_ago))


def test_emf_records_reach_the_cloudwatch_log_group(logs):
    # GIVEN a publisher on a (moto) CloudWatch Logs group
    publisher = EmfPublisher("/fruits/prod/stream", "Fruits/Stream", "prod", client=logs)
    # WHEN two batches are published
    for batch_id in (1, 2):
        progress = spark_progress(batch_id, timestamp=recent(10 - batch_id))
        publisher.publish(progress_record(progress, STATS, 0))
    # THEN the group holds one EMF JSON event per batch, in the run's log stream, with the metric values
    streams = logs.describe_log_streams(logGroupName="/fruits/prod/stream")["logStreams"]
    assert [stream["logStreamName"] for stream in streams] == [f"prod/stream/{RUN_ID}"]
    events = logs.get_log_events(
        logGroupName="/fruits/prod/stream", logStreamName=f"prod/stream/{RUN_ID}", startFromHead=True
    )["events"]
    documents = [json.loads(event["message"]) for event in events]
    assert [document["BatchId"] for document in documents] == [1, 2]
    namespaces = {document["_aws"]["CloudWatchMetrics"][0]["Namespace"] for document in documents}
    assert namespaces == {"Fruits/Stream"}
    assert documents[0]["RowsPerSecond"] == 5.0 and documents[0]["LatencyP50Ms"] == 1500.0
    assert events[0]["timestamp"] == documents[0]["_aws"]["Timestamp"]


def test_listener_writes_one_object_per_progress_event_and_keeps_totals_across_restarts(tmp_path, logs):
    # GIVEN a listener for a lake, with EMF on, fed with Spark's own event classes
    config = stream_config(
        tmp_path / "lake",
        "file:///m/featurizer.keras",
        "file:///m/pca",
        "--cloudwatch-log-group",
        "/fruits/prod/stream",
        "--stage",
        "prod",
    )
    listener, board = emf_listener(config, logs, tmp_path / "lake", waiting=3)
    started = started_event()
    # WHEN the query starts, runs two batches, idles and stops
    timestamps = [recent(20), recent(10)]
    listener.onQueryStarted(started)
    for batch_id in (0, 1):
        board.record(batch_id, STATS)
        listener.onQueryProgress(progress_event(batch_id, timestamp=timestamps[batch_id]))
    listener.onQueryIdle(
        QueryIdleEvent.fromJson({"id": QUERY_ID, "runId": RUN_ID, "timestamp": "2024-05-01T10:00:09.000Z"})
    )
    listener.onQueryTerminated(terminated_event())
    # THEN each progress event is one small object under status/progress/<date>/<batchId>-<ms>.json
    names = [
        f"{contracts.partition_date(moment)}/{batch_id:010d}-{int(moment.timestamp() * 1000)}.json"
        for batch_id, moment in enumerate(datetime.fromisoformat(stamp) for stamp in timestamps)
    ]
    progress_dir = tmp_path / "lake" / "status" / "progress"
    assert sorted(str(path.relative_to(progress_dir)) for path in progress_dir.rglob("*.json")) == names
    assert json.loads((progress_dir / names[1]).read_text())["backlog_manifests"] == 3
    latest = StatusLog(config.status_uri).read_latest()
    assert latest["state"] == "stopped" and latest["last_progress"]["batch_id"] == 1
    assert latest["totals"] == {
        "batches": 2,
        "input_rows": 20,
        "feature_rows": 18,
        "error_rows": 2,
        "model_builds": 4,
        "empty_manifests": 0,
        "last_batch_id": 1,
    }
    assert listener.terminated.is_set()
    # AND the same figures went to CloudWatch
    assert (
        len(
            logs.get_log_events(logGroupName="/fruits/prod/stream", logStreamName=f"prod/stream/{RUN_ID}")[
                "events"
            ]
        )
        == 2
    )
    # WHEN the stream restarts and batch 1 (already counted) is reported again, then batch 2
    restarted = ProgressListener(config, board)
    restarted.onQueryStarted(started)
    for batch_id in (1, 2):
        board.record(batch_id, STATS)
        restarted.onQueryProgress(progress_event(batch_id))
    # THEN the totals carry on from the last run and count each batch once
    assert StatusLog(config.status_uri).read_latest()["totals"]["batches"] == 3


def test_a_failing_status_write_never_reaches_spark(tmp_path, caplog):
    # GIVEN a listener whose status location cannot be written (a file where a directory should be)
    (tmp_path / "lake").mkdir()
    (tmp_path / "lake" / "status").write_text("not a directory")
    config = stream_config(tmp_path / "lake", "file:///m/featurizer.keras", "file:///m/pca")
    listener = ProgressListener(config, BatchStatsBoard())
    # WHEN a progress event arrives THEN the error is logged, not raised into Spark's listener bus
    listener.onQueryProgress(progress_event(0))
    assert "could not record the query progress event" in caplog.text


def test_the_listener_keeps_a_bounded_history(tmp_path, monkeypatch):
    # GIVEN a listener whose history holds 3 records
    import streaming_job.monitoring.listener as monitoring

    monkeypatch.setattr(monitoring, "HISTORY_RECORDS", 3)
    config = stream_config(tmp_path / "lake", "file:///m/featurizer.keras", "file:///m/pca")
    listener = ProgressListener(config, BatchStatsBoard())
    # WHEN five batches report progress
    for batch_id in range(5):
        listener.onQueryProgress(progress_event(batch_id))
    # THEN only the three newest stay in memory (the status log in the lake keeps them all)
    assert [record["batch_id"] for record in listener.records] == [2, 3, 4]


def test_a_heartbeat_record_carries_the_age_of_the_batch_in_flight():
    now = datetime(2024, 5, 1, 10, 5, tzinfo=UTC)
    in_flight = BatchInFlight(7, now - timedelta(seconds=95))
    # GIVEN a batch in flight for 95 s WHEN a heartbeat is recorded and rendered as EMF
    record = heartbeat_record(now, RUN_ID, in_flight, backlog_manifests=12)
    document = emf_record(record, "Fruits/Stream", "prod")
    # THEN it says alive (1), the batch's age and the backlog, under the names the alarms watch
    names = [metric["Name"] for metric in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]]
    assert names == HEARTBEAT_METRIC_NAMES
    assert (document["Heartbeat"], document["BatchInFlightSeconds"], document["BacklogManifests"]) == (
        1,
        95.0,
        12,
    )
    assert document["BatchId"] == 7 and record["batch_started_at"] == "2024-05-01T10:03:25.000Z"
    # AND when idle the age is 0 (a value, so the hung-batch alarm sees the batch finished) and no batch id
    idle = emf_record(heartbeat_record(now, RUN_ID, None, 0), "Fruits/Stream", "prod")
    assert idle["BatchInFlightSeconds"] == 0.0 and "BatchId" not in idle


def test_the_listener_heartbeat_refreshes_latest_and_sends_the_metrics(tmp_path, logs):
    # GIVEN a started listener, EMF on, 2 manifests waiting, and a batch the writer began
    config = stream_config(
        tmp_path / "lake",
        "file:///m/f.tflite",
        "file:///m/pca",
        "--cloudwatch-log-group",
        "/fruits/prod/stream",
    )
    listener, board = emf_listener(config, logs, tmp_path / "lake", waiting=2)
    listener.onQueryStarted(started_event(recent(30)))
    board.begin(3, datetime.now(UTC) - timedelta(seconds=40))
    # WHEN the heartbeat thread beats
    listener.heartbeat()
    # THEN latest.json holds the heartbeat (in-flight age, backlog), the settings status needs and the driver
    latest = StatusLog(config.status_uri).read_latest()
    assert latest["heartbeat"]["batch_id"] == 3 and latest["heartbeat"]["batch_in_flight_seconds"] >= 40
    assert latest["heartbeat"]["backlog_manifests"] == 2 and latest["backlog_samples"][-1][1] == 2
    assert (latest["heartbeat_seconds"], latest["hung_after_seconds"]) == (60.0, 900.0)
    assert latest["driver"]["pid"] > 0
    # AND CloudWatch received the heartbeat
    events = logs.get_log_events(logGroupName="/fruits/prod/stream", logStreamName=f"local/stream/{RUN_ID}")
    assert json.loads(events["events"][-1]["message"])["Heartbeat"] == 1
    # WHEN the batch completes, the query stops, and a late beat arrives
    board.record(3, STATS)
    listener.heartbeat()
    assert StatusLog(config.status_uri).read_latest()["heartbeat"]["batch_in_flight_seconds"] == 0.0
    listener.onQueryTerminated(terminated_event())
    stopped = StatusLog(config.status_uri).read_latest()
    listener.heartbeat()
    # THEN the stop stays recorded: a beat after the end writes nothing
    assert StatusLog(config.status_uri).read_latest() == stopped


def test_the_heartbeat_thread_beats_on_a_timer_survives_a_failure_and_stops_with_the_query(caplog):
    beats = []
    stopped = threading.Event()

    def beat():
        beats.append(time.monotonic())
        if len(beats) == 2:
            raise OSError("status location unreachable")
        if len(beats) == 4:
            stopped.set()

    # GIVEN a heartbeat every 50 ms whose second beat fails
    heartbeat = Heartbeat(0.05, beat, until=stopped)
    heartbeat.start()
    # WHEN the query ends (the event the listener sets)
    deadline = time.monotonic() + 5
    while heartbeat.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    # THEN it beat at once and then on its interval, logged the failure without dying, and stopped
    assert not heartbeat.is_alive()
    assert len(beats) == 4
    assert all(later - earlier >= 0.04 for earlier, later in pairwise(beats))
    assert "heartbeat: could not report" in caplog.text


def test_a_new_query_numbering_its_batches_from_zero_again_still_adds_to_the_totals(tmp_path):
    # GIVEN a stream whose query (one checkpoint epoch) counted batches 0 and 1
    config = stream_config(tmp_path / "lake", "file:///m/featurizer.keras", "file:///m/pca")
    board = BatchStatsBoard()
    listener = ProgressListener(config, board)

    def run(query_id: str, batch_ids: tuple[int, ...]) -> None:
        listener.onQueryStarted(
            QueryStartedEvent.fromJson(
                {
                    "id": query_id,
                    "runId": RUN_ID,
                    "name": "fruits-features",
                    "timestamp": "2024-05-01T10:00:00.000Z",
                }
            )
        )
        for batch_id in batch_ids:
            board.record(batch_id, STATS)
            listener.onQueryProgress(progress_event(batch_id))

    run(QUERY_ID, (0, 1))
    # WHEN the next epoch's query (a new query id) reports its batches 0 and 1
    run("0f0e0d0c-0b0a-4909-8807-060504030201", (0, 1))
    # THEN they count: 4 batches in all, numbered from this query's last one
    totals = StatusLog(config.status_uri).read_latest()["totals"]
    assert (totals["batches"], totals["last_batch_id"]) == (4, 1)
