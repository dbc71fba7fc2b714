"""`fruits status`: the states, their exit codes and the output, from status logs like the stream writes."""

from __future__ import annotations

import argparse
import json
import os
import socket
from datetime import UTC, datetime, timedelta

import pytest

from fruits_cli import status as status_command
from fruits_core import contracts
from streaming_job.monitoring import driver_process
from streaming_job.monitoring.health import EXIT_CODES, STATES, assess, backlog_growing, render_table
from streaming_job.monitoring.status_log import StatusLog

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def ago(seconds: float) -> str:
    return contracts.iso_utc(NOW - timedelta(seconds=seconds))


def progress(batch_id: int, seconds_ago: float, backlog: int = 0) -> dict:
    return {
        "record_version": 1,
        "event": "progress",
        "batch_id": batch_id,
        "timestamp": ago(seconds_ago),
        "run_id": "r",
        "input_rows": 40,
        "rows_per_second": 20.0,
        "batch_duration_ms": 2000,
        "latency_p50_ms": 1200.0,
        "latency_p95_ms": 2500.0,
        "feature_rows": 39,
        "error_rows": 1,
        "backlog_manifests": backlog,
        "model_builds": 0,
        "empty_manifests": 0,
    }


def heartbeat(seconds_ago: float, in_flight: tuple[int, float] | None = None, backlog: int = 0) -> dict:
    """A heartbeat record; `in_flight` = (batch id, seconds the batch had been running then)."""
    record = {
        "event": "heartbeat",
        "timestamp": ago(seconds_ago),
        "heartbeat": 1,
        "batch_in_flight_seconds": in_flight[1] if in_flight else 0.0,
        "backlog_manifests": backlog,
    }
    if in_flight:
        record.update(batch_id=in_flight[0], batch_started_at=ago(seconds_ago + in_flight[1]))
    return record


def latest(
    last: dict | None = None,
    beat: dict | None = None,
    updated_seconds_ago: float = 3,
    state: str = "running",
    samples: list[int] = (),
    **extra,
) -> dict:
    document = {
        "record_version": 1,
        "state": state,
        "started_at": "2024-05-01T11:00:00.000Z",
        "updated_at": ago(updated_seconds_ago),
        "last_progress": last,
        "heartbeat": beat,
        "backlog_samples": [[ago(60 * (len(samples) - index)), count] for index, count in enumerate(samples)],
        "totals": {
            "batches": 12,
            "input_rows": 480,
            "feature_rows": 470,
            "error_rows": 10,
            "model_builds": 2,
        },
        "trigger_seconds": 10.0,
        "max_files_per_trigger": 8000,
        "heartbeat_seconds": 60.0,
        "hung_after_seconds": 900.0,
        "stage": "prod",
    }
    document.update(extra)
    return document


@pytest.mark.parametrize(
    ("status", "kwargs", "expected", "why"),
    [
        (None, {"lake_exists": False}, "no-lake", "no lake here"),
        (None, {}, "never-ran", "never run"),
        (latest(progress(11, 30), state="stopped"), {}, "stopped", "clean stop"),
        (latest(progress(11, 30), state="failed", error_class="DISK_FULL"), {}, "dead", "failed (DISK_FULL)"),
        # the driver of this host is gone (kill -9): dead at once, before any heartbeat is late
        (latest(progress(11, 30), heartbeat(20)), {"driver_state": "gone"}, "dead", "driver process"),
        # no heartbeat for 3 x 60 s: dead, wherever the driver runs
        (
            latest(progress(11, 400), heartbeat(400), updated_seconds_ago=400),
            {},
            "dead",
            "no heartbeat for 400 s",
        ),
        # a batch in flight for 100 + 1000 s, longer than --hung-after (900 s)
        (latest(progress(10, 1200), heartbeat(20, in_flight=(11, 1000))), {}, "hung", "in flight for 1020 s"),
        (
            latest(progress(11, 30), heartbeat(20), samples=[100, 150, 150, 210]),
            {},
            "lagging",
            "from 100 to 210",
        ),
        # the legitimate 61 s batch of 6,000 images: busy, not stalled
        (
            latest(progress(10, 90), heartbeat(20, in_flight=(11, 41))),
            {},
            "running-busy",
            "in flight for 61 s",
        ),
        (latest(progress(11, 30), heartbeat(20)), {}, "healthy", "no batch in flight"),
        # idle for 10 minutes, heartbeats recent: quiet is healthy
        (latest(progress(11, 600), heartbeat(5), updated_seconds_ago=5), {}, "healthy", "no batch in flight"),
        # the batch the heartbeat saw in flight has completed since
        (latest(progress(11, 2), heartbeat(20, in_flight=(11, 5000))), {}, "healthy", "no batch in flight"),
        (latest(None, None, updated_seconds_ago=5), {}, "healthy", "running"),
    ],
)
def test_health_rule(status, kwargs, expected, why):
    # GIVEN a status log in some state WHEN assessed THEN the state, reason and exit code follow the rule
    report = assess(status, [], NOW, **kwargs)
    assert report.health == expected
    assert why in report.reason
    assert report.exit_code == EXIT_CODES[expected]


def test_every_state_has_its_own_exit_code_except_the_two_running_ones():
    codes = [code for _, code, _ in STATES]
    assert EXIT_CODES["healthy"] == EXIT_CODES["running-busy"] == 0
    nonzero = [code for code in codes if code]
    assert len(set(nonzero)) == len(nonzero) == len(STATES) - 2
    assert not {1, 2} & set(codes)  # kept for crashes and bad flags


@pytest.mark.parametrize(
    ("samples", "growing"),
    [
        ([10, 20, 30], True),
        ([10, 10, 11], True),
        ([10, 20], False),  # too few to tell
        ([10, 30, 20], False),  # it went down once: batches take it
        ([10, 10, 10], False),
        ([30, 20, 10], False),
    ],
)
def test_a_backlog_grows_when_it_never_went_down_over_three_heartbeats_and_rose(samples, growing):
    assert backlog_growing([["t", count] for count in samples]) is growing


def test_the_driver_of_this_host_is_seen_alive_or_gone():
    me = driver_process.identity()
    assert driver_process.process_state(me) == driver_process.ALIVE
    # a recycled process id: same pid, another start time
    assert driver_process.process_state(dict(me, start_ticks=me["start_ticks"] + 1)) == driver_process.GONE
    # another host, or no identity recorded (an older stream): only the heartbeat can tell
    assert (
        driver_process.process_state(dict(me, host=socket.gethostname() + "-other")) == driver_process.UNKNOWN
    )
    assert driver_process.process_state(None) == driver_process.UNKNOWN


def test_table_shows_liveness_rates_latency_backlog_errors_and_totals():
    # GIVEN recent batches and a heartbeat that saw a batch in flight WHEN the table is rendered
    recent = [progress(batch_id, 60 - batch_id) for batch_id in range(9, 12)]
    status = latest(recent[-1], heartbeat(10, in_flight=(12, 20), backlog=35))
    text = render_table(assess(status, recent, NOW), "s3://lake")
    # THEN every figure an operator needs is there
    assert "RUNNING-BUSY" in text
    assert "a batch for 30 s" in text
    assert "20.0 last batch, 20.0 over the last 3 batches" in text
    assert "1.20 s / 2.50 s" in text
    assert "35 manifests waiting" in text
    assert "1 last batch, 10 total" in text
    assert "480 manifests, 470 featurized, 12 batches, 2 model builds, 0 empty manifests" in text


def run_status(lake_uri: str, *flags: str) -> int:
    parser = argparse.ArgumentParser()
    status_command.add_arguments(parser)
    return status_command.run(parser.parse_args(["--lake", lake_uri, *flags]))


def test_status_command_reads_the_lake_and_prints_json(tmp_path, capsys):
    # GIVEN a lake whose listener wrote two progress objects, and latest.json refreshed by a heartbeat
    # just now, by a driver that is this (living) process
    status_log = StatusLog((tmp_path / "status").as_uri())
    now = datetime.now(UTC)
    records = [
        dict(progress(batch_id, 0), timestamp=contracts.iso_utc(now - timedelta(seconds=4 - batch_id)))
        for batch_id in (1, 2)
    ]
    for record in records:
        status_log.write_progress(record)
    status_log.write_latest(
        dict(latest(records[-1]), updated_at=contracts.iso_utc(now), driver=driver_process.identity())
    )
    # WHEN `fruits status --json` runs
    code = run_status(tmp_path.as_uri(), "--json")
    # THEN it prints one JSON object with the state, the last batch and the recent rate, exit code 0
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["health"] == "healthy" and report["exit_code"] == 0
    assert report["last_batch"]["batch_id"] == 2
    assert report["recent_batches"] == 2 and report["recent_rows_per_second"] == 20.0


def test_a_driver_recorded_on_this_host_that_is_gone_is_dead(tmp_path, capsys):
    # GIVEN a latest.json refreshed a second ago by a driver process that no longer exists
    status_log = StatusLog((tmp_path / "status").as_uri())
    gone = dict(driver_process.identity(), pid=os.getpid(), start_ticks=0)
    status_log.write_latest(dict(latest(), updated_at=contracts.iso_utc(datetime.now(UTC)), driver=gone))
    # WHEN `fruits status` runs THEN it says DEAD with exit code 5
    assert run_status(tmp_path.as_uri()) == 5
    assert "DEAD" in capsys.readouterr().out


def test_a_path_with_no_lake_gets_one_line_not_a_table(tmp_path, capsys):
    # GIVEN a mistyped lake path WHEN `fruits status` runs THEN one line says so, with exit code 8
    lake = (tmp_path / "no-such-lake").as_uri()
    assert run_status(lake) == 8
    assert capsys.readouterr().out.strip().splitlines() == [
        f"NO-LAKE: {lake}: nothing under this path: no lake here (check --lake)"
    ]


def test_a_lake_where_the_stream_never_ran_says_so(tmp_path, capsys):
    (tmp_path / "manifests").mkdir()
    assert run_status(tmp_path.as_uri()) == 7
    assert "NEVER-RAN" in capsys.readouterr().out


def test_help_lists_every_state_with_its_exit_code():
    parser = argparse.ArgumentParser()
    status_command.add_arguments(parser)
    text = parser.format_help()
    for state, code, _ in STATES:
        assert f"{state.upper():<13} {code}" in text
