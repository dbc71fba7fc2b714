"""The stream as an EMR Serverless streaming job run (`--compute serverless`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fruits_core import contracts
from operations.aws_calls import ApiCall, Executor
from operations.deploy.control import clear_stop_marker_call
from operations.deploy.target import (
    ENV_ALIAS,
    JOB_PACKAGE_NAME,
    MAIN_SCRIPT_NAME,
    PACKED_PYTHON,
    DeployError,
    Target,
)
from operations.deploy.upload import require_objects, stream_inputs
from streaming_job.config import StreamConfig

# A job run in these states holds the stream's name: a second one would share its checkpoint.
SERVERLESS_ACTIVE_STATES = ["SUBMITTED", "PENDING", "SCHEDULED", "RUNNING"]
# Job resiliency (streaming mode): a failed driver is restarted from the checkpoint, at most this often.
SERVERLESS_MAX_FAILED_ATTEMPTS_PER_HOUR = 5
# Memory outside the JVM heap of each worker: the LiteRT Python worker peaks at ~134 MiB (performance.md).
WORKER_OVERHEAD_GB = 1.0


@dataclass(frozen=True)
class ServerlessCapacity:
    """The workers of the streaming job run: `fruits cost` prices exactly these (operations/cost.py)."""

    driver_vcpu: float
    driver_gb: float
    executor_vcpu: float
    executor_gb: float
    min_executors: int
    max_executors: int

    def spark_conf(self) -> list[str]:
        """Heap + 1 GB overhead (the Python worker's room) = the worker size `fruits cost` bills."""
        settings = {
            "spark.driver.cores": f"{self.driver_vcpu:g}",
            "spark.driver.memory": f"{self.driver_gb - WORKER_OVERHEAD_GB:g}g",
            "spark.driver.memoryOverhead": f"{WORKER_OVERHEAD_GB:g}g",
            "spark.executor.cores": f"{self.executor_vcpu:g}",
            "spark.executor.memory": f"{self.executor_gb - WORKER_OVERHEAD_GB:g}g",
            "spark.executor.memoryOverhead": f"{WORKER_OVERHEAD_GB:g}g",
            "spark.dynamicAllocation.enabled": "true",
            "spark.dynamicAllocation.minExecutors": str(self.min_executors),
            "spark.dynamicAllocation.maxExecutors": str(self.max_executors),
        }
        return [part for name, value in settings.items() for part in ("--conf", f"{name}={value}")]


def serverless_env_args(env_archive_uri: str) -> list[str]:
    """The packed environment on EMR Serverless: the archive, and its interpreter for driver and executors."""
    settings = {
        "spark.emr-serverless.driverEnv.PYSPARK_DRIVER_PYTHON": PACKED_PYTHON,
        "spark.emr-serverless.driverEnv.PYSPARK_PYTHON": PACKED_PYTHON,
        "spark.executorEnv.PYSPARK_PYTHON": PACKED_PYTHON,
    }
    conf = [part for name, value in settings.items() for part in ("--conf", f"{name}={value}")]
    return ["--archives", f"{env_archive_uri}#{ENV_ALIAS}", *conf]


def serverless_job_run(
    target: Target, config: StreamConfig, version: str, env_version: str, capacity: ServerlessCapacity
) -> dict[str, Any]:
    """emr-serverless.start_job_run's parameters: the stream as a streaming-mode job (release 7.1+)."""
    submit = [
        *serverless_env_args(target.env_uri(env_version)),
        "--py-files",
        target.code_uri(version, JOB_PACKAGE_NAME),
        *capacity.spark_conf(),
    ]
    logs = {"logUri": target.lake.uri(contracts.EMR_LOGS_PREFIX)}
    if target.kms_key_id:
        logs["encryptionKeyArn"] = target.kms_key_id
    return {
        "applicationId": target.application_id,
        "executionRoleArn": target.job_role_arn,
        "name": target.stream_step_name,
        "mode": "STREAMING",
        "retryPolicy": {"maxFailedAttemptsPerHour": SERVERLESS_MAX_FAILED_ATTEMPTS_PER_HOUR},
        "jobDriver": {
            "sparkSubmit": {
                "entryPoint": target.code_uri(version, MAIN_SCRIPT_NAME),
                "entryPointArguments": config.to_cli_args(),
                "sparkSubmitParameters": " ".join(submit),
            }
        },
        "configurationOverrides": {"monitoringConfiguration": {"s3MonitoringConfiguration": logs}},
    }


def plan_start_serverless(
    target: Target, config: StreamConfig, version: str, env_version: str, capacity: ServerlessCapacity
) -> list[ApiCall]:
    """Remove a stale stop marker, then start the streaming job run."""
    return [
        clear_stop_marker_call(target),
        ApiCall(
            "emr-serverless",
            "start_job_run",
            serverless_job_run(target, config, version, env_version, capacity),
        ),
    ]


def start_serverless(
    executor: Executor,
    target: Target,
    config: StreamConfig,
    version: str,
    env_version: str,
    capacity: ServerlessCapacity,
) -> str | None:
    """Start the stream's job run unless one of its name is active; returns its id (None: dry run)."""
    listed = executor(
        ApiCall(
            "emr-serverless",
            "list_job_runs",
            {"applicationId": target.application_id, "states": SERVERLESS_ACTIVE_STATES},
        )
    )
    active = [run for run in (listed or {}).get("jobRuns", []) if run.get("name") == target.stream_step_name]
    if active:
        raise DeployError(
            f"job run {target.stream_step_name} is already {active[0].get('state')} ({active[0].get('id')}) "
            f"on application {target.application_id}: stop it first (`fruits deploy stop`)"
        )
    objects = stream_inputs(target, config, version, env_version)
    require_objects(executor, objects, (config.pca,))
    response = None
    for call in plan_start_serverless(target, config, version, env_version, capacity):
        response = executor(call)
    return response["jobRunId"] if response else None
