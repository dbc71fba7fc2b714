"""The stream's health, from the status log the listener writes (no Spark needed).

Health rule (first match wins):
  stalled  - no status yet; the query is stopped or failed; or no event (progress or idle
             heartbeat) for longer than max(3 x trigger interval, 60 s)
  lagging  - the last batch left more than one batch of manifests waiting
             (backlog > max files per trigger), or its latency p95 exceeds 5 minutes
  healthy  - otherwise
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from fruits_core import contracts
from fruits_core.clock import utc_now
from fruits_core.lake_uris import join_uri
from streaming_job.status_log import StatusLog

MIN_STALL_SECONDS = 60.0
STALL_TRIGGERS = 3
LAG_LATENCY_P95_MS = 5 * 60 * 1000
RECENT_RECORDS = 20


@dataclass(frozen=True)
class StreamHealth:
    health: str
    reason: str
    query_state: str | None
    started_at: str | None
    updated_at: str | None
    seconds_since_update: float | None
    last_batch: dict | None
    recent_rows_per_second: float | None
    recent_batches: int
    totals: dict

    def to_dict(self) -> dict:
        return asdict(self)


def stall_after_seconds(latest: dict) -> float:
    trigger = latest.get("trigger_seconds") or 0.0
    return max(STALL_TRIGGERS * float(trigger), MIN_STALL_SECONDS)


def assess(latest: dict | None, recent: list[dict], now: datetime) -> StreamHealth:
    """Apply the health rule to latest.json and the recent progress records."""
    if not latest:
        return StreamHealth(
            "stalled",
            "no status yet: the stream has never run on this lake",
            None,
            None,
            None,
            None,
            None,
            None,
            0,
            {},
        )
    last = latest.get("last_progress")
    updated_at = latest.get("updated_at")
    since_update = (now - contracts.parse_iso(updated_at)).total_seconds() if updated_at else None
    health, reason = _rule(latest, last, since_update)
    recent_rows = sum(record["input_rows"] for record in recent)
    recent_ms = sum(record["batch_duration_ms"] for record in recent)
    return StreamHealth(
        health=health,
        reason=reason,
        query_state=latest.get("state"),
        started_at=latest.get("started_at"),
        updated_at=latest.get("updated_at"),
        seconds_since_update=round(since_update, 1) if since_update is not None else None,
        last_batch=last,
        recent_rows_per_second=round(recent_rows * 1000.0 / recent_ms, 3) if recent_ms else None,
        recent_batches=len(recent),
        totals=latest.get("totals") or {},
    )


def _rule(latest: dict, last: dict | None, since_update: float | None) -> tuple[str, str]:
    state = latest.get("state")
    if state != "running":
        detail = f" ({latest['error_class']})" if latest.get("error_class") else ""
        return "stalled", f"the query is {state}{detail}"
    limit = stall_after_seconds(latest)
    if since_update is not None and since_update > limit:
        return "stalled", f"no event for {since_update:.0f} s (limit {limit:.0f} s)"
    if last:
        backlog = last.get("backlog_manifests")
        per_batch = latest.get("max_files_per_trigger")
        if backlog is not None and per_batch and backlog > per_batch:
            return "lagging", f"backlog of {backlog} manifests exceeds one batch ({per_batch})"
        p95 = last.get("latency_p95_ms")
        if p95 is not None and p95 > LAG_LATENCY_P95_MS:
            return "lagging", f"latency p95 {p95 / 1000:.0f} s exceeds {LAG_LATENCY_P95_MS / 1000:.0f} s"
    return "healthy", "running, keeping up"


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
    return assess(latest, recent, utc_now())


def _seconds(milliseconds: float | None) -> str:
    return "-" if milliseconds is None else f"{milliseconds / 1000:.2f} s"


def render_table(report: StreamHealth, lake: str) -> str:
    """The human view of `fruits status`."""
    last = report.last_batch or {}
    totals = report.totals
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
        ("backlog", f"{last.get('backlog_manifests')} manifests" if last else "-"),
        ("errors", f"{last.get('error_rows', 0)} last batch, {totals.get('error_rows', 0)} total"),
        (
            "totals",
            f"{totals.get('input_rows', 0)} manifests, {totals.get('feature_rows', 0)} featurized, "
            f"{totals.get('batches', 0)} batches, {totals.get('model_builds', 0)} model builds",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"Fruits stream status - {lake}"]
    lines += [f"  {name.ljust(width)}  {value}" for name, value in rows]
    return "\n".join(lines)
