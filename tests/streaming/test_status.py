"""`fruits status`: the health rule and its output, from a status log like the listener writes."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta

import pytest

from fruits_cli import status as status_command
from fruits_core import contracts
from streaming_job.health import assess, render_table
from streaming_job.status_log import StatusLog

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def progress(batch_id: int, seconds_ago: float, backlog: int = 0, p95_ms: float = 2500.0) -> dict:
    return {
        "record_version": 1,
        "event": "progress",
        "batch_id": batch_id,
        "timestamp": contracts.iso_utc(NOW - timedelta(seconds=seconds_ago)),
        "run_id": "r",
        "input_rows": 40,
        "rows_per_second": 20.0,
        "batch_duration_ms": 2000,
        "latency_p50_ms": 1200.0,
        "latency_p95_ms": p95_ms,
        "feature_rows": 39,
        "error_rows": 1,
        "backlog_manifests": backlog,
        "model_builds": 0,
    }


def latest(last: dict | None, updated_seconds_ago: float = 3, state: str = "running") -> dict:
    return {
        "record_version": 1,
        "state": state,
        "started_at": "2024-05-01T11:00:00.000Z",
        "updated_at": contracts.iso_utc(NOW - timedelta(seconds=updated_seconds_ago)),
        "last_progress": last,
        "totals": {
            "batches": 12,
            "input_rows": 480,
            "feature_rows": 470,
            "error_rows": 10,
            "model_builds": 2,
            "last_batch_id": 11,
        },
        "trigger_seconds": 10.0,
        "max_files_per_trigger": 512,
        "stage": "prod",
    }


@pytest.mark.parametrize(
    ("status", "expected", "why"),
    [
        (latest(progress(11, 3)), "healthy", "running"),
        (latest(progress(11, 3, backlog=2000)), "lagging", "backlog of 2000"),
        (latest(progress(11, 3, p95_ms=400_000)), "lagging", "latency p95 400 s"),
        (latest(progress(11, 200), updated_seconds_ago=200), "stalled", "no event for 200 s"),
        (latest(progress(11, 3), state="stopped"), "stalled", "stopped"),
        (latest(None, updated_seconds_ago=5), "healthy", "running"),
        (None, "stalled", "never run"),
    ],
)
def test_health_rule(status, expected, why):
    # GIVEN a status log in some state WHEN assessed THEN the health and its reason follow the documented rule
    report = assess(status, [], NOW)
    assert report.health == expected
    assert why in report.reason


def test_an_idle_stream_is_healthy_while_its_heartbeats_are_recent():
    # GIVEN a last batch 10 minutes ago but an idle heartbeat 5 s ago (no new uploads)
    report = assess(latest(progress(11, 600), updated_seconds_ago=5), [], NOW)
    # THEN the stream is healthy: quiet is not stalled
    assert report.health == "healthy"


def test_table_shows_rates_latency_backlog_errors_and_totals():
    # GIVEN recent batches WHEN the table is rendered
    recent = [progress(batch_id, 30 - batch_id) for batch_id in range(9, 12)]
    text = render_table(assess(latest(recent[-1]), recent, NOW), "s3://lake")
    # THEN every figure an operator needs is there
    assert "HEALTHY" in text
    assert "20.0 last batch, 20.0 over the last 3 batches" in text
    assert "1.20 s / 2.50 s" in text
    assert "0 manifests" in text
    assert "1 last batch, 10 total" in text
    assert "480 manifests, 470 featurized, 12 batches, 2 model builds" in text


def run_status(lake_uri: str, *flags: str) -> int:
    parser = argparse.ArgumentParser()
    status_command.add_arguments(parser)
    return status_command.run(parser.parse_args(["--lake", lake_uri, *flags]))


def test_status_command_reads_the_lake_and_prints_json(tmp_path, capsys):
    # GIVEN a lake whose listener wrote two progress objects and latest.json just now
    status_log = StatusLog((tmp_path / "status").as_uri())
    now = datetime.now(UTC)
    records = [
        dict(progress(batch_id, 0), timestamp=contracts.iso_utc(now - timedelta(seconds=4 - batch_id)))
        for batch_id in (1, 2)
    ]
    for record in records:
        status_log.write_progress(record)
    status_log.write_latest(dict(latest(records[-1]), updated_at=contracts.iso_utc(now)))
    # WHEN `fruits status --json` runs
    code = run_status(tmp_path.as_uri(), "--json")
    # THEN it prints one JSON object with the health, the last batch and the recent rate, exit code 0
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["health"] == "healthy"
    assert report["last_batch"]["batch_id"] == 2
    assert report["recent_batches"] == 2 and report["recent_rows_per_second"] == 20.0


def test_status_command_on_a_lake_without_a_stream_says_so(tmp_path, capsys):
    # GIVEN an empty lake WHEN `fruits status` runs THEN it reports stalled (never ran) with exit code 1
    assert run_status(tmp_path.as_uri()) == 1
    assert "never run" in capsys.readouterr().out
