"""The stream step's status and its stop: the stop marker, then a cancel at the timeout."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fruits_core import contracts
from fruits_core.clock import utc_now
from operations.aws_calls import ApiCall, Executor, InlineBytes
from operations.deploy.target import DeployError, Target, placeholder
from operations.deploy.upload import put_object

ACTIVE_STEP_STATES = ("PENDING", "RUNNING")
STOP_POLL_SECONDS = 15.0


def active_steps(executor: Executor, target: Target, name: str) -> list[dict[str, Any]] | None:
    """PENDING/RUNNING steps with this name (None in a dry run: unknown)."""
    response = executor(
        ApiCall("emr", "list_steps", {"ClusterId": target.cluster_id, "StepStates": list(ACTIVE_STEP_STATES)})
    )
    if response is None:
        return None
    return [step for step in response.get("Steps", []) if step.get("Name") == name]


@dataclass
class StreamStatus:
    cluster_id: str
    cluster_state: str | None = None
    cluster_state_reason: str | None = None
    step_id: str | None = None
    step_state: str | None = None
    step_state_reason: str | None = None
    stream_health: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {name: value for name, value in vars(self).items() if name != "notes"}


def status(
    executor: Executor, target: Target, health_reader: Callable[[str], dict[str, Any]] | None = None
) -> StreamStatus:
    """Cluster state, the newest stream step, and the stream's own health from its status log."""
    report = StreamStatus(cluster_id=target.cluster_id)
    cluster = executor(ApiCall("emr", "describe_cluster", {"ClusterId": target.cluster_id}))
    if cluster is not None:
        cluster_status = cluster["Cluster"]["Status"]
        report.cluster_state = cluster_status.get("State")
        report.cluster_state_reason = cluster_status.get("StateChangeReason", {}).get("Message")
    steps = executor(ApiCall("emr", "list_steps", {"ClusterId": target.cluster_id}))
    if steps is not None:
        ours = [step for step in steps.get("Steps", []) if step.get("Name") == target.stream_step_name]
        if ours:  # list_steps returns the newest first
            report.step_id = ours[0]["Id"]
            report.step_state = ours[0]["Status"]["State"]
            report.step_state_reason = ours[0]["Status"].get("StateChangeReason", {}).get("Message")
        else:
            report.notes.append(f"no {target.stream_step_name} step on this cluster yet")
    if health_reader is not None:
        if executor.dry_run:
            status_uri = target.lake.uri(contracts.STATUS_PREFIX)
            executor.note(f"then reads the stream's status log under {status_uri}")
        else:
            report.stream_health = health_reader(target.lake.root)
    return report


@dataclass(frozen=True)
class StopResult:
    outcome: str  # "not_running" | "stopped" | "cancelled" | "planned" (dry run)
    step_id: str | None = None
    final_state: str | None = None


def stop_marker_call(target: Target, now: datetime) -> ApiCall:
    body = json.dumps({"requested_at": contracts.iso_utc(now), "requested_by": "fruits deploy stop"})
    return put_object(
        target,
        target.lake.key(contracts.STOP_MARKER_KEY),
        InlineBytes(body.encode("utf-8"), "stop marker"),
        "application/json",
    )


def clear_stop_marker_call(target: Target) -> ApiCall:
    """Remove a stop marker left by an earlier stop: it would stop the stream being started."""
    return ApiCall(
        "s3",
        "delete_object",
        {"Bucket": target.lake.bucket, "Key": target.lake.key(contracts.STOP_MARKER_KEY)},
    )


def stop(
    executor: Executor,
    target: Target,
    timeout_s: float = 300.0,
    poll_s: float = STOP_POLL_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    now: Callable[[], datetime] = utc_now,
) -> StopResult:
    """Ask the stream to stop after its current batch; cancel the step if still running at the timeout."""
    running = active_steps(executor, target, target.stream_step_name)
    if running is not None and not running:
        return StopResult("not_running")
    step_id = running[0]["Id"] if running else placeholder(f"id of the active {target.stream_step_name} step")
    executor(stop_marker_call(target, now()))
    describe = ApiCall("emr", "describe_step", {"ClusterId": target.cluster_id, "StepId": step_id})
    cancel = ApiCall(
        "emr",
        "cancel_steps",
        {"ClusterId": target.cluster_id, "StepIds": [step_id], "StepCancellationOption": "SEND_INTERRUPT"},
    )
    deadline = clock() + timeout_s
    while True:
        response = executor(describe)
        if response is None:
            executor.note(
                f"repeated every {poll_s:g} s until the step leaves RUNNING, for at most "
                f"{timeout_s:g} s; then, only if it is still RUNNING:"
            )
            executor(cancel)
            return StopResult("planned", step_id)
        state = response["Step"]["Status"]["State"]
        if state not in ACTIVE_STEP_STATES:
            return StopResult("stopped", step_id, state)
        remaining = deadline - clock()
        if remaining <= 0:
            break
        executor.note(
            f"step {step_id} is {state}; waiting for the current batch to finish ({remaining:.0f} s left)"
        )
        sleep(min(poll_s, remaining))
    response = executor(cancel)
    for info in response.get("CancelStepsInfoList", []):
        if info.get("Status") == "FAILED":
            raise DeployError(f"cancel_steps failed for {info.get('StepId')}: {info.get('Reason')}")
    return StopResult("cancelled", step_id, "CANCEL_PENDING")
