"""The status log and the CloudWatch EMF metrics the listener derives from Spark's progress events."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

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
from streaming_job.monitoring import ProgressListener
from streaming_job.status_log import (
    EMF_METRICS,
    BatchStats,
    BatchStatsBoard,
    EmfPublisher,
    StatusLog,
    emf_record,
    progress_record,
)
from tests.streaming.stream_testkit import stream_config

RUN_ID = "8a8e0c98-82bf-45d7-b596-034d6dca592e"
QUERY_ID = "f72fd25a-a12d-45ff-bbf3-584557de2aca"
ALARM_METRIC_NAMES = [
    "InputRows",
    "RowsPerSecond",
    "BatchDurationMs",
    "LatencyP50Ms",
    "LatencyP95Ms",
    "ErrorRows",
    "BacklogManifests",
    "ModelBuilds",
]


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
    newest_manifest_ms=1714557600000,
    already_in_table=3,
)


def test_a_progress_record_carries_the_batch_figures_and_no_identifiers():
    # GIVEN Spark's progress (which counts every re-read of the source) and what foreachBatch measured
    # WHEN they are turned into a status record
    record = progress_record(spark_progress(4, rows=20), STATS, backlog_manifests=37)
    # THEN rows come from foreachBatch, rows/s from them and the trigger duration, plus latency and backlog
    assert record == {
        "record_version": 1,
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
    }


def test_emf_record_uses_the_alarm_metric_names_the_stage_dimension_and_the_namespace():
    # GIVEN a progress record WHEN rendered as embedded metric format
    document = emf_record(progress_record(spark_progress(4), STATS, 37), "Fruits/Stream", "prod")
    # THEN it declares exactly the metric names the alarms use, with Stage as the only dimension
    directive = document["_aws"]["CloudWatchMetrics"][0]
    assert [metric["Name"] for metric in directive["Metrics"]] == ALARM_METRIC_NAMES
    assert [name for name, _, _ in EMF_METRICS] == ALARM_METRIC_NAMES
    assert directive["Namespace"] == "Fruits/Stream"
    assert directive["Dimensions"] == [["Stage"]]
    assert document["Stage"] == "prod"
    assert document["_aws"]["Timestamp"] == 1714557605000
    assert (document["InputRows"], document["ErrorRows"], document["BacklogManifests"]) == (10, 1, 37)
    assert (document["LatencyP95Ms"], document["ModelBuilds"]) == (4200.0, 2)


def test_emf_leaves_out_metrics_without_a_value():
    # GIVEN a batch with no featurized image (no latency) WHEN rendered
    stats = BatchStats(3, 0, 3, None, None, 0, None)
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
    board = BatchStatsBoard()
    listener = ProgressListener(
        config,
        board,
        backlog_counter=lambda newest_ms: 3,
        emf=EmfPublisher("/fruits/prod/stream", "Fruits/Stream", "prod", client=logs),
    )
    started = QueryStartedEvent.fromJson(
        {
            "id": QUERY_ID,
            "runId": RUN_ID,
            "name": "fruits-features",
            "timestamp": "2024-05-01T10:00:00.000Z",
            "jobTags": [],
        }
    )
    # WHEN the query starts, runs two batches, idles and stops
    timestamps = [recent(20), recent(10)]
    listener.onQueryStarted(started)
    for batch_id in (0, 1):
        board.record(batch_id, STATS)
        listener.onQueryProgress(
            QueryProgressEvent(
                StreamingQueryProgress.fromJson(spark_progress(batch_id, timestamp=timestamps[batch_id]))
            )
        )
    listener.onQueryIdle(
        QueryIdleEvent.fromJson({"id": QUERY_ID, "runId": RUN_ID, "timestamp": "2024-05-01T10:00:09.000Z"})
    )
    listener.onQueryTerminated(
        QueryTerminatedEvent.fromJson(
            {"id": QUERY_ID, "runId": RUN_ID, "exception": None, "errorClassOnException": None}
        )
    )
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
        restarted.onQueryProgress(
            QueryProgressEvent(StreamingQueryProgress.fromJson(spark_progress(batch_id)))
        )
    # THEN the totals carry on from the last run and count each batch once
    assert StatusLog(config.status_uri).read_latest()["totals"]["batches"] == 3


def test_a_failing_status_write_never_reaches_spark(tmp_path, caplog):
    # GIVEN a listener whose status location cannot be written (a file where a directory should be)
    (tmp_path / "lake").mkdir()
    (tmp_path / "lake" / "status").write_text("not a directory")
    config = stream_config(tmp_path / "lake", "file:///m/featurizer.keras", "file:///m/pca")
    listener = ProgressListener(config, BatchStatsBoard())
    # WHEN a progress event arrives THEN the error is logged, not raised into Spark's listener bus
    listener.onQueryProgress(QueryProgressEvent(StreamingQueryProgress.fromJson(spark_progress(0))))
    assert "could not record the query progress event" in caplog.text


def test_the_listener_keeps_a_bounded_history(tmp_path, monkeypatch):
    # GIVEN a listener whose history holds 3 records
    import streaming_job.monitoring as monitoring

    monkeypatch.setattr(monitoring, "HISTORY_RECORDS", 3)
    config = stream_config(tmp_path / "lake", "file:///m/featurizer.keras", "file:///m/pca")
    listener = ProgressListener(config, BatchStatsBoard())
    # WHEN five batches report progress
    for batch_id in range(5):
        listener.onQueryProgress(
            QueryProgressEvent(StreamingQueryProgress.fromJson(spark_progress(batch_id)))
        )
    # THEN only the three newest stay in memory (the status log in the lake keeps them all)
    assert [record["batch_id"] for record in listener.records] == [2, 3, 4]


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
            listener.onQueryProgress(
                QueryProgressEvent(StreamingQueryProgress.fromJson(spark_progress(batch_id)))
            )

    run(QUERY_ID, (0, 1))
    # WHEN the next epoch's query (a new query id) reports its batches 0 and 1
    run("0f0e0d0c-0b0a-4909-8807-060504030201", (0, 1))
    # THEN they count: 4 batches in all, numbered from this query's last one
    totals = StatusLog(config.status_uri).read_latest()["totals"]
    assert (totals["batches"], totals["last_batch_id"]) == (4, 1)
