"""The stream's alarms, read from infra/emr-cluster.yaml, evaluated on recorded metric series.

Each scenario records what the job would send, minute by minute: the EMF documents that
status_log builds from heartbeat and progress records (the real metric names and fields), turned
into datapoints as CloudWatch would. The alarms are evaluated every minute by cloudwatch_alarms.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from cloudwatch_alarms import ALARM, OK, alarm_from_template

from fruits_core import contracts
from streaming_job.monitoring.failure import CAUSES, Failure, failure_emf
from streaming_job.monitoring.status_log import (
    BatchInFlight,
    BatchStats,
    emf_record,
    heartbeat_record,
    progress_record,
)

START = datetime(2024, 5, 1, tzinfo=UTC)
MINUTE = 60
# The stream has been running for an hour before the observed hour (no start-up transient).
HISTORY_MINUTES = 60
OBSERVED_MINUTES = 90
ALARMS = ("HeartbeatMissingAlarm", "BatchHungAlarm", "BacklogGrowingAlarm", "PredictionDriftAlarm")


def emitted(documents: list[dict]) -> dict[str, list[tuple[float, float]]]:
    """{metric name: [(epoch s, value)]} of EMF documents, as CloudWatch extracts them."""
    samples: dict[str, list[tuple[float, float]]] = {}
    for document in documents:
        moment = document["_aws"]["Timestamp"] / 1000.0
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                samples.setdefault(metric["Name"], []).append((moment, float(document[metric["Name"]])))
    return samples


def record_stream(
    alive_until_minute: int,
    batches: list[tuple[int, int | None]],
    backlog_at: Callable[[int], int],
) -> dict[str, list[tuple[float, float]]]:
    """Heartbeats every minute while the driver lives, a progress record at each batch's end.

    `batches`: (start minute, end minute or None for a batch that never ends), back to back.
    """
    documents = []
    for minute in range(-HISTORY_MINUTES, alive_until_minute):
        now = START + timedelta(minutes=minute)
        running = [
            (batch_id, begin)
            for batch_id, (begin, end) in enumerate(batches)
            if begin <= minute and (end is None or minute < end)
        ]
        in_flight = (
            BatchInFlight(running[0][0], START + timedelta(minutes=running[0][1])) if running else None
        )
        documents.append(
            emf_record(heartbeat_record(now, "run", in_flight, backlog_at(minute)), "Fruits/Stream", "prod")
        )
        for batch_id, (begin, end) in enumerate(batches):
            if end == minute:
                progress = {
                    "batchId": batch_id,
                    "timestamp": contracts.iso_utc(START + timedelta(minutes=begin)),
                    "runId": "run",
                    "durationMs": {"triggerExecution": (end - begin) * MINUTE * 1000},
                    "numInputRows": 8000,
                }
                documents.append(
                    emf_record(progress_record(progress, None, backlog_at(minute)), "Fruits/Stream", "prod")
                )
    return emitted(documents)


def states(emr_template, samples) -> dict[str, list[str]]:
    start = START.timestamp()
    end = start + OBSERVED_MINUTES * MINUTE
    return {
        name: [state for _, state in alarm_from_template(emr_template, name).timeline(samples, start, end)]
        for name in ALARMS
    }


def back_to_back(minutes_each: int, first: int = -HISTORY_MINUTES, last: int = OBSERVED_MINUTES) -> list:
    return [(begin, begin + minutes_each) for begin in range(first, last, minutes_each)]


def test_a_dead_stream_fires_the_heartbeat_alarm(emr_template):
    # GIVEN a stream whose driver dies at minute 20 (kill -9, a lost node): from then on, nothing at all
    samples = record_stream(20, back_to_back(2), backlog_at=lambda minute: 100)
    observed = states(emr_template, samples)
    # THEN the heartbeat alarm is OK while it lives, and fires within 15 minutes of its death
    heartbeat = observed["HeartbeatMissingAlarm"]
    assert set(heartbeat[:20]) == {OK}
    assert ALARM in heartbeat[20:35] and set(heartbeat[35:]) == {ALARM}
    # AND the batch alarm does not pretend to know (missing in-flight age is not breaching)
    assert set(observed["BatchHungAlarm"]) == {OK}


def test_a_hung_batch_fires_the_hung_batch_alarm_while_the_heartbeat_stays_ok(emr_template):
    # GIVEN a driver alive throughout, whose batch started at minute 10 never ends (an image read that hangs),
    # while uploads keep arriving
    batches = [*back_to_back(2, last=10), (10, None)]
    samples = record_stream(
        OBSERVED_MINUTES, batches, backlog_at=lambda minute: 200 + 50 * max(0, minute - 10)
    )
    observed = states(emr_template, samples)
    hung = observed["BatchHungAlarm"]
    # THEN the hung-batch alarm fires once the batch is older than HungBatchMinutes (15), and not before
    first_alarm = hung.index(ALARM)
    assert 25 <= first_alarm <= 31
    assert set(hung[first_alarm:]) == {ALARM}
    # AND the heartbeat alarm stays OK: the driver is alive
    assert set(observed["HeartbeatMissingAlarm"]) == {OK}


def test_a_slow_but_healthy_stream_fires_nothing(emr_template):
    # GIVEN 12-minute batches of 8000 manifests (under HungBatchMinutes), 400 uploads a minute, and a
    # backlog far above BacklogThreshold that each batch draws down (a burst being drained)
    batches = back_to_back(12)

    def backlog(minute: int) -> int:
        done = sum(1 for _, end in batches if end <= minute)
        return max(0, 60_000 + 400 * (minute + HISTORY_MINUTES) - 8000 * done)

    assert backlog(OBSERVED_MINUTES - 1) < backlog(0) and backlog(0) > 5000
    observed = states(emr_template, record_stream(OBSERVED_MINUTES, batches, backlog_at=backlog))
    # THEN no alarm fires
    assert observed == {name: [OK] * (OBSERVED_MINUTES + 1) for name in ALARMS}


def test_a_backlog_that_keeps_growing_fires_the_backlog_alarm_only(emr_template):
    # GIVEN quick batches that take fewer manifests than arrive: above the threshold and growing
    samples = record_stream(OBSERVED_MINUTES, back_to_back(1), backlog_at=lambda minute: 6000 + 30 * minute)
    observed = states(emr_template, samples)
    # THEN the backlog alarm fires, the heartbeat and hung-batch alarms do not
    assert set(observed["BacklogGrowingAlarm"][20:]) == {ALARM}
    assert set(observed["HeartbeatMissingAlarm"]) == set(observed["BatchHungAlarm"]) == {OK}


@pytest.mark.parametrize("name", ALARMS)
def test_each_stream_alarm_reads_a_metric_the_job_emits(emr_template, name):
    # GIVEN the metric names the job's EMF records carry
    emitted_names = {metric for metric, _, _ in contracts.STREAM_METRICS}
    alarm = alarm_from_template(emr_template, name).properties
    metrics = (
        [alarm["MetricName"]]
        if "MetricName" in alarm
        else [
            query["MetricStat"]["Metric"]["MetricName"] for query in alarm["Metrics"] if "MetricStat" in query
        ]
    )
    # THEN the alarm watches only those
    assert metrics and set(metrics) <= emitted_names


def scored_batches(disagreeing_per_batch: int, low_confidence_per_batch: int) -> dict[str, list]:
    """A minute-by-minute stream of 100-manifest batches, each scored by a classifier."""
    documents = []
    for minute in range(-HISTORY_MINUTES, OBSERVED_MINUTES):
        stats = BatchStats(
            manifest_rows=100,
            feature_rows=100,
            error_rows=0,
            latency_p50_ms=900.0,
            latency_p95_ms=1500.0,
            model_builds=0,
            low_confidence_rows=low_confidence_per_batch,
            label_disagreements=disagreeing_per_batch if minute >= 0 else 0,
        )
        progress = {
            "batchId": minute + HISTORY_MINUTES,
            "timestamp": contracts.iso_utc(START + timedelta(minutes=minute)),
            "runId": "run",
            "durationMs": {"triggerExecution": 50_000},
        }
        documents.append(emf_record(progress_record(progress, stats, 0), "Fruits/Stream", "prod"))
    return emitted(documents)


def drift_states(emr_template, samples) -> list[str]:
    start = START.timestamp()
    alarm = alarm_from_template(emr_template, "PredictionDriftAlarm")
    return [state for _, state in alarm.timeline(samples, start, start + OBSERVED_MINUTES * MINUTE)]


def test_labels_that_start_to_disagree_with_the_predictions_fire_the_drift_alarm(emr_template):
    # GIVEN a scored stream whose uploads, from minute 0, disagree with the prediction 15 times in 100
    observed = drift_states(
        emr_template, scored_batches(disagreeing_per_batch=15, low_confidence_per_batch=1)
    )
    # THEN the drift alarm (over 10 % in an hour) fires once a full hour of it is counted, not before
    assert set(observed[:60]) == {OK}
    assert ALARM in observed[60:]


def test_a_few_low_confidence_predictions_fire_nothing(emr_template):
    observed = drift_states(emr_template, scored_batches(disagreeing_per_batch=2, low_confidence_per_batch=3))
    assert set(observed) == {OK}


def test_a_failed_query_fires_the_stream_failed_alarm_and_the_metric_names_its_cause(emr_template):
    # GIVEN a driver that records at minute 20 that its query failed (a catalog outage outlasted the retries)
    failure = Failure("CatalogOrStorageUnavailable", "fruits_lake.commit_retry.RetriesExhausted", None)
    document = failure_emf(failure, START + timedelta(minutes=20), "Fruits/Stream", "prod")
    alarm = alarm_from_template(emr_template, "StreamFailedAlarm")
    start = START.timestamp()
    timeline = alarm.timeline(emitted([document]), start, start + OBSERVED_MINUTES * MINUTE)
    observed = [state for _, state in timeline]
    # THEN the stream-failed alarm is OK before, fires within one period, and clears once nothing more fails
    assert set(observed[:20]) == {OK}
    assert ALARM in observed[20:26]
    assert observed[-1] == OK
    # AND the metric is sent by Stage (what the alarm watches) and by Stage and Cause (why)
    [directive] = document["_aws"]["CloudWatchMetrics"]
    assert directive["Dimensions"] == [["Stage"], ["Stage", "Cause"]]
    assert document["Cause"] == "CatalogOrStorageUnavailable"
    # AND the alarm's description names the dimension and what to do for each cause
    description = alarm.properties["AlarmDescription"]
    assert "Cause" in description
    assert all(cause in description for cause, _ in CAUSES)
