"""Why the stream died: the driver records the cause before it exits; `fruits status` and a metric say it.

The pure part (which cause an error text means, what is masked) runs without Spark; the
end-to-end test fails the real query with an injected fault inside the sink (a catalog
outage that outlasted the commit retries, whose message names an erased subject's tombstone).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import boto3
import pytest
from pyspark.sql.streaming.listener import QueryStartedEvent

from fruits_lake.commit_retry import RetriesExhausted
from fruits_lake.sink import TableSink
from streaming_job.monitoring.failure import OTHER_CAUSE, failure_of
from streaming_job.monitoring.health import DEAD, lake_health, render_table
from streaming_job.monitoring.listener import ProgressListener
from streaming_job.monitoring.status_log import BatchStatsBoard, StatusLog
from streaming_job.query.runner import await_stream, start_stream
from tests.streaming.stream_testkit import manifest_json, stream_config, valid_manifest, write_manifest

PSEUDONYM = "9f" * 32  # what a tombstone's name holds: it must reach no status and no metric
LOG_GROUP = "/fruits/prod/stream"
# Spark's text for a foreachBatch failure: Java wrappers, the Python traceback inside.
SPARK_TEXT = "\n".join(
    (
        "org.apache.spark.sql.streaming.StreamingQueryException: [STREAM_FAILED] Query [id = 1] terminated",
        "=== Streaming Query ===",
        "Caused by: py4j.Py4JException: An exception was raised by the Python Proxy. Return Message: "
        "Traceback (most recent call last):",
        '  File "/x/pyspark/sql/utils.py", line 120, in call',
        "    raise RetriesExhausted(...)",
        "fruits_lake.commit_retry.RetriesExhausted: append of batch 3 to fruits.features: "
        f"reading tombstones/{PSEUDONYM}.json: OSError",
        "\tat py4j.Protocol.getReturnValue(Protocol.java:476)",
    )
)


def test_a_retries_exhausted_text_is_a_catalog_or_storage_cause_with_a_masked_message():
    failure = failure_of(SPARK_TEXT, "STREAM_FAILED")
    assert failure.cause == "CatalogOrStorageUnavailable"
    assert failure.exception == "fruits_lake.commit_retry.RetriesExhausted"
    assert failure.message.startswith("append of batch 3 to fruits.features")
    assert PSEUDONYM not in failure.message and PSEUDONYM[:16] not in failure.message


def test_other_errors_keep_their_class_but_no_message():
    oom = failure_of("java.lang.OutOfMemoryError: Java heap space while reading user alice@example.org")
    assert (oom.cause, oom.exception, oom.message) == ("OutOfMemory", "java.lang.OutOfMemoryError", None)
    unknown = failure_of(
        "org.apache.spark.SparkException: [FAILED_READ_FILE] dt=2024-05-01/x.json", "FAILED_READ"
    )
    assert (unknown.cause, unknown.exception, unknown.message) == (OTHER_CAUSE, "FAILED_READ", None)
    assert failure_of(None).cause == OTHER_CAUSE


def started(run_id: str) -> QueryStartedEvent:
    return QueryStartedEvent.fromJson(
        {
            "id": "f72fd25a-a12d-45ff-bbf3-584557de2aca",
            "runId": run_id,
            "name": "fruits-features",
            "timestamp": "2024-05-01T10:00:00.000Z",
            "jobTags": [],
        }
    )


def test_a_restarted_driver_keeps_the_last_failure_for_status(tmp_path: Path):
    # GIVEN a run whose query failed
    config = stream_config(tmp_path / "lake", "file:///m/f.tflite", "file:///m/pca")
    listener = ProgressListener(config, BatchStatsBoard())
    listener.onQueryStarted(started("8a8e0c98-82bf-45d7-b596-034d6dca5921"))
    listener.record_failure(failure_of(SPARK_TEXT))
    # WHEN YARN restarts the driver and its query starts
    restarted = ProgressListener(config, BatchStatsBoard())
    restarted.onQueryStarted(started("8a8e0c98-82bf-45d7-b596-034d6dca5922"))
    # THEN the running stream's status still says why the previous run died
    latest = StatusLog(config.status_uri).read_latest()
    assert latest["state"] == "running" and "failure" not in latest
    assert latest["last_failure"]["cause"] == "CatalogOrStorageUnavailable"
    assert "last failure" in render_table(lake_health(config.lake), config.lake)


@pytest.mark.spark
@pytest.mark.tf
def test_a_failed_query_records_why_before_the_driver_exits(spark, models, tmp_path, monkeypatch, mocked_aws):
    # GIVEN a lake with one manifest, metrics on, and a sink whose commit fails for good (injected)
    logs = boto3.client("logs", region_name="eu-west-3")
    logs.create_log_group(logGroupName=LOG_GROUP)
    lake = tmp_path / "lake"
    write_manifest(lake, f"{'a' * 32}.json", manifest_json(valid_manifest(lake, "a" * 32)))

    def outage(self, *args, **kwargs):
        raise RetriesExhausted(f"append of batch 0 to fruits.features: reading tombstones/{PSEUDONYM}.json")

    monkeypatch.setattr(TableSink, "write", outage)
    config = stream_config(lake, *models, "--available-now", "--cloudwatch-log-group", LOG_GROUP)
    # WHEN the stream runs: its query fails
    with pytest.raises(RuntimeError, match="streaming query failed"):
        await_stream(spark, start_stream(spark, config), config, threading.Event())

    # THEN latest.json says why: the cause, the exception class and our own message, masked
    latest = StatusLog(config.status_uri).read_latest()
    assert latest["state"] == "failed"
    failure = latest["failure"]
    assert failure["cause"] == "CatalogOrStorageUnavailable"
    assert failure["exception"].endswith("RetriesExhausted")
    assert failure["message"].startswith("append of batch 0 to fruits.features")
    # AND `fruits status` names it
    health = lake_health(config.lake)
    assert health.health == DEAD and "CatalogOrStorageUnavailable" in health.reason
    assert "last failure" in render_table(health, config.lake)
    # AND CloudWatch got StreamFailed by Stage and by Stage and Cause (what the alarm and dashboard read)
    streams = logs.describe_log_streams(logGroupName=LOG_GROUP)["logStreams"]
    documents = [
        json.loads(event["message"])
        for stream in streams
        for event in logs.get_log_events(logGroupName=LOG_GROUP, logStreamName=stream["logStreamName"])[
            "events"
        ]
    ]
    [failed] = [document for document in documents if "StreamFailed" in document]
    assert failed["Cause"] == "CatalogOrStorageUnavailable" and failed["StreamFailed"] == 1
    assert failed["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Stage"], ["Stage", "Cause"]]
    # AND the erased subject's pseudonym reached no status object and no metric
    status_text = "".join(path.read_text() for path in (lake / "status").rglob("*.json"))
    for text in (status_text, json.dumps(documents)):
        assert PSEUDONYM[:16] not in text
