"""The stream, fit-pca and maintenance as EMR steps (spark-submit in cluster mode on the packed env)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fruits_core import contracts
from operations.aws_calls import ApiCall, Executor
from operations.deploy.control import active_steps, clear_stop_marker_call
from operations.deploy.target import (
    ENV_ALIAS,
    FIT_PCA_SCRIPT_NAME,
    JOB_PACKAGE_NAME,
    MAIN_SCRIPT_NAME,
    MAINTAIN_SCRIPT_NAME,
    PACKED_PYTHON,
    DeployError,
    Target,
)
from operations.deploy.upload import require_objects, stream_inputs
from streaming_job.config import StreamConfig


def packed_env_args(env_archive_uri: str) -> list[str]:
    """spark-submit options that run the driver and the executors on the packed environment.

    The recipe AWS documents for venv-pack archives (`spark.archives` + `spark.pyspark.python`). In
    cluster deploy mode the driver runs in a YARN container too, so `spark.pyspark.driver.python`
    is the packed interpreter as well; a client-mode driver would need a local one instead.
    """
    return [
        "--archives",
        f"{env_archive_uri}#{ENV_ALIAS}",
        "--conf",
        f"spark.pyspark.python={PACKED_PYTHON}",
        "--conf",
        f"spark.pyspark.driver.python={PACKED_PYTHON}",
    ]


# The stream's driver is restarted by YARN when it dies (a catalog outage longer than the commit
# retries, a lost node): up to this many attempts, counted over the last hour only, so a stream that
# fails now and then keeps coming back and one that fails at once (a config error) soon stays down.
STREAM_RESTART_CONF = (
    "--conf",
    "spark.yarn.maxAppAttempts=4",
    "--conf",
    "spark.yarn.am.attemptFailuresValidityInterval=1h",
)


def spark_submit_step(
    name: str,
    py_files: str,
    env_archive_uri: str,
    entry: str,
    entry_args: list[str],
    extra_conf: tuple[str, ...] = (),
) -> dict[str, Any]:
    """A command-runner step that keeps the cluster up if it fails (ActionOnFailure CONTINUE)."""
    return {
        "Name": name,
        "ActionOnFailure": "CONTINUE",
        "HadoopJarStep": {
            "Jar": "command-runner.jar",
            "Args": [
                "spark-submit",
                "--deploy-mode",
                "cluster",
                "--name",
                name,
                # The step stays RUNNING as long as the YARN application does, so its state is the stream's.
                "--conf",
                "spark.yarn.submit.waitAppCompletion=true",
                *extra_conf,
                *packed_env_args(env_archive_uri),
                "--py-files",
                py_files,
                entry,
                *entry_args,
            ],
        },
    }


def stream_step(target: Target, config: StreamConfig, version: str, env_version: str) -> dict[str, Any]:
    return spark_submit_step(
        target.stream_step_name,
        target.code_uri(version, JOB_PACKAGE_NAME),
        target.env_uri(env_version),
        target.code_uri(version, MAIN_SCRIPT_NAME),
        config.to_cli_args(),
        STREAM_RESTART_CONF,
    )


def add_step(target: Target, step: dict[str, Any]) -> ApiCall:
    return ApiCall("emr", "add_job_flow_steps", {"JobFlowId": target.cluster_id, "Steps": [step]})


def plan_start(target: Target, config: StreamConfig, version: str, env_version: str) -> list[ApiCall]:
    """Remove a stop marker left by an earlier stop (or it would stop the new stream), then add the step."""
    return [
        clear_stop_marker_call(target),
        add_step(target, stream_step(target, config, version, env_version)),
    ]


@dataclass(frozen=True)
class FitPcaOptions:
    """Flags of streaming_job/fit_pca_main.py for the EMR batch step (None: its default)."""

    images: str | None = None
    k: int | None = None
    target_variance: float | None = None
    sample_size: int | None = None
    replace: bool = False


def fit_pca_args(target: Target, options: FitPcaOptions) -> list[str]:
    args = [
        "--lake",
        target.lake.root,
        "--featurizer",
        target.lake.uri(contracts.FEATURIZER_KEY),
        "--out",
        target.lake.uri(contracts.PCA_KEY),
    ]
    if options.images:
        args += ["--images", options.images]
    if options.k is not None:
        args += ["--k", str(options.k)]
    if options.target_variance is not None:
        args += ["--target-variance", str(options.target_variance)]
    if options.sample_size is not None:
        args += ["--sample-size", str(options.sample_size)]
    if options.replace:
        args.append("--replace")
    return args


def fit_pca_step(target: Target, version: str, env_version: str, options: FitPcaOptions) -> dict[str, Any]:
    return spark_submit_step(
        target.fit_pca_step_name,
        target.code_uri(version, JOB_PACKAGE_NAME),
        target.env_uri(env_version),
        target.code_uri(version, FIT_PCA_SCRIPT_NAME),
        fit_pca_args(target, options),
    )


def maintain_step(target: Target, version: str, env_version: str) -> dict[str, Any]:
    """The `fruits lake maintain` step, with the command's defaults (`fruits deploy maintain`).

    infra/emr-cluster.yaml's daily schedule adds it with CloudFormation placeholders for the lake,
    the stage and the versions; tests/infra/test_lake_templates.py checks it equals this one.
    """
    return spark_submit_step(
        target.maintain_step_name,
        target.code_uri(version, JOB_PACKAGE_NAME),
        target.env_uri(env_version),
        target.code_uri(version, MAINTAIN_SCRIPT_NAME),
        ["--lake", target.lake.root],
    )


def _submit(
    executor: Executor,
    target: Target,
    name: str,
    calls: list[ApiCall],
    objects: list[str],
    prefixes: tuple[str, ...] = (),
) -> str | None:
    """Refuse a second PENDING/RUNNING step of this name, check its inputs, then run the calls."""
    running = active_steps(executor, target, name)
    if running:
        step_id, state = running[0].get("Id"), running[0].get("Status", {}).get("State")
        raise DeployError(
            f"step {name} is already {state} ({step_id}) on cluster {target.cluster_id}: "
            "stop it first (`fruits deploy stop`)"
        )
    require_objects(executor, objects, prefixes)
    response = None
    for call in calls:
        response = executor(call)
    return response["StepIds"][0] if response else None


def start(
    executor: Executor, target: Target, config: StreamConfig, version: str, env_version: str
) -> str | None:
    """Add the stream step unless one is already PENDING/RUNNING; returns its step id (None: dry run)."""
    objects = stream_inputs(target, config, version, env_version)
    return _submit(
        executor,
        target,
        target.stream_step_name,
        plan_start(target, config, version, env_version),
        objects,
        prefixes=(config.pca,),
    )


def submit_fit_pca_step(
    executor: Executor, target: Target, version: str, env_version: str, options: FitPcaOptions
) -> str | None:
    """Add the fit-pca batch step; the fitted PCA lands in <lake>/models/pca."""
    objects = [
        target.code_uri(version, JOB_PACKAGE_NAME),
        target.env_uri(env_version),
        target.code_uri(version, FIT_PCA_SCRIPT_NAME),
        target.lake.uri(contracts.FEATURIZER_KEY),
    ]
    return _submit(
        executor,
        target,
        target.fit_pca_step_name,
        [add_step(target, fit_pca_step(target, version, env_version, options))],
        objects,
    )


def submit_maintain_step(executor: Executor, target: Target, version: str, env_version: str) -> str | None:
    """Add the lake maintenance step now, unless one is already PENDING/RUNNING."""
    objects = [
        target.code_uri(version, JOB_PACKAGE_NAME),
        target.env_uri(env_version),
        target.code_uri(version, MAINTAIN_SCRIPT_NAME),
    ]
    return _submit(
        executor,
        target,
        target.maintain_step_name,
        [add_step(target, maintain_step(target, version, env_version))],
        objects,
    )
