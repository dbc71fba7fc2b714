"""The stream's health, from the status log the listener and the heartbeat write (no Spark needed).

The states, their exit codes and their rules are STATES below (first match wins).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from itertools import pairwise

from fruits_core import contracts
from fruits_core.clock import utc_now
from fruits_core.lake_uris import join_uri
from streaming_job import uris
from streaming_job.config import StreamConfig
from streaming_job.monitoring import driver_process
from streaming_job.monitoring.status_log import StatusLog

HEALTHY = "healthy"
RUNNING_BUSY = "running-busy"
LAGGING = "lagging"
HUNG = "hung"
DEAD = "dead"
STOPPED = "stopped"
NEVER_RAN = "never-ran"
NO_LAKE = "no-lake"
# (state, `fruits status` exit code, rule), in the order the rule applies them; 1 and 2 stay for
# unexpected errors and bad flags.
STATES: tuple[tuple[str, int, str], ...] = (
    (NO_LAKE, 8, "nothing under the lake path (a typo, or the lake moved away)"),
    (NEVER_RAN, 7, "a lake, but the stream never wrote its status there"),
    (STOPPED, 6, "the last run recorded a clean stop"),
    (
        DEAD,
        5,
        "the last run recorded a failure; or its driver ran on this host and is gone; "
        "or no heartbeat for 3 x the stream's --heartbeat",
    ),
    (HUNG, 4, "the batch in flight is older than the stream's --hung-after"),
    (LAGGING, 3, "the backlog grew over the last 3 or more heartbeats (never decreasing)"),
    (RUNNING_BUSY, 0, "a batch in flight, younger than --hung-after"),
    (HEALTHY, 0, "running, no batch in flight (idle or caught up)"),
)
EXIT_CODES = {state: code for state, code, _ in STATES}
# Heartbeats that may be missed before the driver counts as dead.
MISSED_HEARTBEATS = 3
LAG_MIN_SAMPLES = 3
RECENT_RECORDS = 20


@dataclass(frozen=True)
class StreamHealth:
    health: str
    reason: str
    exit_code: int
    query_state: str | None = None
    started_at: str | None = None
    updated_at: str | None = None
    seconds_since_update: float | None = None
    batch_in_flight_seconds: float | None = None
    backlog_manifests: int | None = None
    last_batch: dict | None = None
    recent_rows_per_second: float | None = None
    recent_batches: int = 0
    totals: dict | None = None
    # Why the stream died: this run's failure, else the one a restart left (streaming_job.monitoring.failure).
    last_failure: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def verdict(health: str, reason: str, **figures) -> StreamHealth:
    return StreamHealth(health=health, reason=reason, exit_code=EXIT_CODES[health], **figures)


def assess(
    latest: dict | None,
    recent: list[dict],
    now: datetime,
    lake_exists: bool = True,
    driver_state: str = driver_process.UNKNOWN,
) -> StreamHealth:
    """Apply the health rule to latest.json, the recent progress records and what was seen of the driver."""
    if not latest:
        if not lake_exists:
            return verdict(NO_LAKE, "nothing under this path: no lake here (check --lake)")
        return verdict(NEVER_RAN, "no status yet: the stream has never run on this lake")
    updated_at = latest.get("updated_at")
    since_update = (now - contracts.parse_iso(updated_at)).total_seconds() if updated_at else None
    in_flight = in_flight_seconds(latest, now)
    health, reason = _rule(latest, since_update, in_flight, driver_state)
    recent_rows = sum(record["input_rows"] for record in recent)
    recent_ms = sum(record["batch_duration_ms"] for record in recent)
    return verdict(
        health,
        reason,
        query_state=latest.get("state"),
        started_at=latest.get("started_at"),
        updated_at=updated_at,
        seconds_since_update=round(since_update, 1) if since_update is not None else None,
        batch_in_flight_seconds=round(in_flight, 1) if in_flight is not None else None,
        backlog_manifests=current_backlog(latest),
        last_batch=latest.get("last_progress"),
        recent_rows_per_second=round(recent_rows * 1000.0 / recent_ms, 3) if recent_ms else None,
        recent_batches=len(recent),
        totals=latest.get("totals") or {},
        last_failure=latest.get("failure") or latest.get("last_failure"),
    )


def in_flight_seconds(latest: dict, now: datetime) -> float | None:
    """Age now of the batch the last heartbeat saw in flight; None when it saw none."""
    started = (latest.get("heartbeat") or {}).get("batch_started_at")
    if not started:
        return None
    last_batch = (latest.get("last_progress") or {}).get("batch_id", -1)
    if latest["heartbeat"].get("batch_id", -1) <= last_batch:
        return None  # that batch completed after the heartbeat
    return (now - contracts.parse_iso(started)).total_seconds()


def current_backlog(latest: dict) -> int | None:
    """The newest backlog count: the last heartbeat's, or the last batch's when it is newer."""
    candidates = [
        record
        for record in (latest.get("heartbeat"), latest.get("last_progress"))
        if record and record.get("backlog_manifests") is not None
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda record: record["timestamp"])["backlog_manifests"]


def backlog_growing(samples: list[list]) -> bool:
    """The heartbeats' backlog never decreased over at least LAG_MIN_SAMPLES samples, and rose."""
    counts = [count for _, count in samples]
    if len(counts) < LAG_MIN_SAMPLES:
        return False
    return all(later >= earlier for earlier, later in pairwise(counts)) and counts[-1] > counts[0]


def _rule(
    latest: dict, since_update: float | None, in_flight: float | None, driver_state: str
) -> tuple[str, str]:
    state = latest.get("state")
    if state == "stopped":
        return STOPPED, f"clean stop recorded at {latest.get('updated_at')}"
    if state != "running":
        failure = latest.get("failure")
        if failure:
            return DEAD, f"the query is {state}: {failure['cause']} ({failure['exception']})"
        detail = f" ({latest['error_class']})" if latest.get("error_class") else ""
        return DEAD, f"the query is {state}{detail}"
    driver = latest.get("driver") or {}
    if driver_state == driver_process.GONE:
        return DEAD, f"the driver process {driver.get('pid')} on {driver.get('host')} is gone"
    beat = float(latest.get("heartbeat_seconds") or StreamConfig.heartbeat_seconds)
    dead_after = MISSED_HEARTBEATS * beat
    if since_update is not None and since_update > dead_after:
        return DEAD, f"no heartbeat for {since_update:.0f} s (limit {dead_after:.0f} s)"
    hung_after = float(latest.get("hung_after_seconds") or StreamConfig.hung_after_seconds)
    batch_id = (latest.get("heartbeat") or {}).get("batch_id")
    if in_flight is not None and in_flight > hung_after:
        return HUNG, f"batch #{batch_id} in flight for {in_flight:.0f} s (hung after {hung_after:.0f} s)"
    samples = latest.get("backlog_samples") or []
    if backlog_growing(samples):
        return LAGGING, (
            f"backlog grew from {samples[0][1]} to {samples[-1][1]} manifests over the last "
            f"{len(samples)} heartbeats"
        )
    if in_flight is not None:
        return RUNNING_BUSY, (
            f"batch #{batch_id} in flight for {in_flight:.0f} s (hung after {hung_after:.0f} s)"
        )
    return HEALTHY, "running, no batch in flight"


def load_status(lake: str) -> tuple[dict | None, list[dict]]:
    """(latest.json, the recent progress records of its last batch's day) of a lake."""
    status_log = StatusLog(join_uri(lake, contracts.STATUS_PREFIX))
    latest = status_log.read_latest()
    last = (latest or {}).get("last_progress")
    if not last:
        return latest, []
    day = contracts.partition_date(contracts.parse_iso(last["timestamp"]))
    return latest, status_log.recent_progress(day, RECENT_RECORDS)


def lake_health(lake: str) -> StreamHealth:
    """The health rule applied now to a lake's status log (`fruits status`, `fruits deploy status`)."""
    latest, recent = load_status(lake)
    return assess(
        latest,
        recent,
        utc_now(),
        lake_exists=latest is not None or uris.holds_anything(lake),
        driver_state=driver_process.process_state((latest or {}).get("driver")),
    )


def _seconds(milliseconds: float | None) -> str:
    return "-" if milliseconds is None else f"{milliseconds / 1000:.2f} s"


def render_table(report: StreamHealth, lake: str) -> str:
    """The human view of `fruits status`: one line when there is no lake or no status, else a table."""
    if report.health in (NO_LAKE, NEVER_RAN):
        return f"{report.health.upper()}: {lake}: {report.reason}"
    last = report.last_batch or {}
    totals = report.totals or {}
    rows = [
        ("health", f"{report.health.upper()}  ({report.reason})"),
        ("query", f"{report.query_state or '-'} (started {report.started_at or '-'})"),
        (
            "last event",
            "-"
            if report.seconds_since_update is None
            else f"{report.updated_at} ({report.seconds_since_update:.0f} s ago)",
        ),
        (
            "in flight",
            "no batch"
            if report.batch_in_flight_seconds is None
            else f"a batch for {report.batch_in_flight_seconds:.0f} s",
        ),
        (
            "last batch",
            f"#{last['batch_id']} at {last['timestamp']}, {last['input_rows']} manifests in "
            f"{_seconds(last['batch_duration_ms'])}"
            if last
            else "-",
        ),
        (
            "rows/s",
            f"{last.get('rows_per_second', 0):.1f} last batch, "
            + (
                f"{report.recent_rows_per_second:.1f} over the last {report.recent_batches} batches"
                if report.recent_rows_per_second is not None
                else "-"
            )
            if last
            else "-",
        ),
        (
            "latency p50/p95",
            f"{_seconds(last.get('latency_p50_ms'))} / {_seconds(last.get('latency_p95_ms'))}"
            if last
            else "-",
        ),
        (
            "backlog",
            "-" if report.backlog_manifests is None else f"{report.backlog_manifests} manifests waiting",
        ),
        ("errors", f"{last.get('error_rows', 0)} last batch, {totals.get('error_rows', 0)} total"),
        (
            "totals",
            f"{totals.get('input_rows', 0)} manifests, {totals.get('feature_rows', 0)} featurized, "
            f"{totals.get('batches', 0)} batches, {totals.get('model_builds', 0)} model builds, "
            f"{totals.get('empty_manifests', 0)} empty manifests",
        ),
    ]
    if report.last_failure:
        failure = report.last_failure
        rows.append(
            (
                "last failure",
                f"{failure['cause']} at {failure['at']}: {failure['exception']}"
                + (f": {failure['message']}" if failure.get("message") else ""),
            )
        )
    width = max(len(name) for name, _ in rows)
    lines = [f"Fruits stream status - {lake}"]
    lines += [f"  {name.ljust(width)}  {value}" for name, value in rows]
    return "\n".join(lines)
