"""Operating the stream on Amazon EMR: upload, start, status, stop and fit-pca.

Each operation plans its AWS requests as `ApiCall`s (pure functions below) and
runs them through an executor (`operations.aws_calls`): boto3 for real, or a
printer for `--dry-run`, so a dry run shows exactly what a real run would call.
Reads whose answers drive the next step (the stack outputs, the running steps)
go through the same executor; in a dry run their values are shown as
`<placeholders>`.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from fruits_core import contracts
from fruits_core.clock import utc_now
from fruits_core.errors import ConfigError
from fruits_core.lake_uris import UnsupportedUriError, is_not_found_code, join_uri, s3_uri, split_s3
from operations.aws_calls import ApiCall, Executor, InlineBytes, LocalFile
from operations.env_archive import ARCHIVE_NAME as ENV_ARCHIVE_NAME
from operations.job_package import JobPackage
from streaming_job import uris
from streaming_job.config import StreamConfig, config_from_args

DEFAULT_REGION = "eu-west-3"
# The regions the templates' `EuRegionsOnly` rule accepts (London and Zurich are outside the EU).
EU_REGIONS = ("eu-west-1", "eu-west-3", "eu-central-1", "eu-north-1", "eu-south-1", "eu-south-2")
JOB_PACKAGE_NAME = "fruits_job.zip"
MAIN_SCRIPT_NAME = "main.py"
FIT_PCA_SCRIPT_NAME = "fit_pca_main.py"
# The lake maintenance entry (streaming_job/maintain_main.py) that the EMR stack's daily schedule runs.
MAINTAIN_SCRIPT_NAME = "maintain_main.py"
BOOTSTRAP_SCRIPT_NAME = "check-python.sh"
# The job's packed Python environment (operations/env_archive.py), by its own version: it changes
# far less often than the code.
ENV_PREFIX = f"{contracts.CODE_PREFIX}env/"
# YARN unpacks `--archives <uri>#environment` as ./environment in every container, the driver's
# included in cluster deploy mode: so both run the packed interpreter.
ENV_ALIAS = "environment"
PACKED_PYTHON = f"./{ENV_ALIAS}/bin/python"
BOOTSTRAP_PREFIX = f"{contracts.CODE_PREFIX}bootstrap/"
# infra/emr-cluster.yaml's TlsCertificatesS3Uri: the instance role can read code/ only.
TLS_CERTIFICATES_KEY = f"{contracts.CODE_PREFIX}tls/emr-certs.zip"
STREAM_LOG_GROUP_TEMPLATE = "/fruits/{stage}/stream"
# Validated in place of a dry run's placeholder lake, then swapped back.
DRY_RUN_LAKE = "s3://dry-run-lake"
ACTIVE_STEP_STATES = ("PENDING", "RUNNING")
STOP_POLL_SECONDS = 15.0
# Names in infra/emr-cluster.yaml and template.yaml (the stacks `--stack-name` reads).
CLUSTER_ID_OUTPUT = "ClusterId"
LAKE_BUCKET_OUTPUT = "LakeBucketName"
KMS_KEY_OUTPUT = "LakeKmsKeyArn"
STREAM_LOG_GROUP_OUTPUT = "StreamLogGroupName"
# infra/emr-serverless.yaml's outputs (the EMR Serverless compute mode)
APPLICATION_ID_OUTPUT = "ApplicationId"
JOB_ROLE_OUTPUT = "JobRoleArn"
COMPUTE_MODES = ("ec2", "serverless")
INGEST_STACK_PARAMETER = "IngestStackName"


class DeployError(RuntimeError):
    """An operation cannot go on (missing code, a stream already running, ...); the message says why."""


def require_eu_region(region: str) -> str:
    """Personal data stays in the EU (docs/design.md): refuse any other region before calling AWS."""
    if region not in EU_REGIONS:
        raise ConfigError(
            f"--region must be an EU member-state region ({', '.join(EU_REGIONS)}) so the "
            f"data stays in the EU, got {region!r}"
        )
    return region


# --- Where things are ---------------------------------------------------------


@dataclass(frozen=True)
class Lake:
    """The lake bucket (and optional prefix) that every key below lives in."""

    bucket: str
    prefix: str = ""

    @classmethod
    def from_uri(cls, uri: str) -> Lake:
        try:
            bucket, prefix = split_s3(uri)
        except UnsupportedUriError:
            raise ConfigError(f"--lake must be an s3://bucket[/prefix] URI on AWS, got {uri!r}") from None
        prefix = prefix.strip("/")
        return cls(bucket=bucket, prefix=f"{prefix}/" if prefix else "")

    @property
    def root(self) -> str:
        return s3_uri(self.bucket, self.prefix).rstrip("/")

    def key(self, relative: str) -> str:
        return f"{self.prefix}{relative}"

    def uri(self, relative: str) -> str:
        return join_uri(self.root, relative)


@dataclass(frozen=True)
class Target:
    """What an action works on: the lake, and (for steps) the cluster."""

    lake: Lake
    stage: str
    cluster_id: str | None = None
    kms_key_id: str | None = None
    stream_log_group: str | None = None
    # EMR Serverless compute: the application and the role its job runs assume
    application_id: str | None = None
    job_role_arn: str | None = None

    @property
    def stream_step_name(self) -> str:
        return f"fruits-stream-{self.stage}"

    @property
    def fit_pca_step_name(self) -> str:
        return f"fruits-fit-pca-{self.stage}"

    @property
    def maintain_step_name(self) -> str:
        return f"fruits-lake-maintain-{self.stage}"

    def code_key(self, version: str, name: str) -> str:
        return self.lake.key(f"{contracts.CODE_PREFIX}{version}/{name}")

    def code_uri(self, version: str, name: str) -> str:
        return f"s3://{self.lake.bucket}/{self.code_key(version, name)}"

    def env_key(self, env_version: str) -> str:
        return self.lake.key(f"{ENV_PREFIX}{env_version}/{ENV_ARCHIVE_NAME}")

    def env_uri(self, env_version: str) -> str:
        return f"s3://{self.lake.bucket}/{self.env_key(env_version)}"

    def require_kms_key(self) -> str:
        if not self.kms_key_id:
            raise ConfigError(
                "every put is SSE-KMS encrypted with the lake's key: pass --kms-key-id "
                "or --stack-name (the LakeKmsKeyArn output)"
            )
        return self.kms_key_id


def placeholder(what: str) -> str:
    """How a dry run shows a value it would have read from AWS."""
    return f"<{what}>"


def stack_placeholder(output: str, stack_name: str) -> str:
    return placeholder(f"{output} output of stack {stack_name}")


def read_stack(executor: Executor, stack_name: str) -> dict[str, str] | None:
    """Outputs of a stack, plus those of the ingest stack its `IngestStackName` parameter names."""
    response = executor(ApiCall("cloudformation", "describe_stacks", {"StackName": stack_name}))
    if response is None:
        return None
    stack = response["Stacks"][0]
    outputs = {item["OutputKey"]: item["OutputValue"] for item in stack.get("Outputs", [])}
    parameters = {
        item["ParameterKey"]: item.get("ParameterValue", "") for item in stack.get("Parameters", [])
    }
    ingest_stack = parameters.get(INGEST_STACK_PARAMETER)
    if ingest_stack and not {LAKE_BUCKET_OUTPUT, KMS_KEY_OUTPUT} <= outputs.keys():
        outputs = {**(read_stack(executor, ingest_stack) or {}), **outputs}
    return outputs


def resolve_target(
    executor: Executor,
    *,
    stage: str,
    stack_name: str | None = None,
    cluster_id: str | None = None,
    lake_uri: str | None = None,
    kms_key_id: str | None = None,
    need_cluster: bool = True,
    compute: str = "ec2",
) -> Target:
    """Explicit flags win; the rest comes from the stack's outputs (cloudformation.describe_stacks).

    The EMR stack gives ClusterId, LakeBucketName, LakeKmsKeyArn and StreamLogGroupName; what it
    lacks comes from the ingest stack it names. `upload` runs before the EMR stack exists: the
    ingest stack is enough.
    """
    if not stack_name and not (lake_uri and (cluster_id or not need_cluster)):
        raise ConfigError(
            "pass --stack-name (the EMR stack; the ingest stack is enough for upload), "
            "or --lake and --cluster-id"
        )
    serverless = compute == "serverless" and need_cluster
    if serverless and not stack_name:
        raise ConfigError("the serverless compute mode needs --stack-name (the EMR Serverless stack)")
    outputs: dict[str, str] = {}
    if stack_name and (serverless or not (lake_uri and kms_key_id and (cluster_id or not need_cluster))):
        found = read_stack(executor, stack_name)
        names = ((APPLICATION_ID_OUTPUT, JOB_ROLE_OUTPUT) if serverless else (CLUSTER_ID_OUTPUT,)) + (
            LAKE_BUCKET_OUTPUT,
            KMS_KEY_OUTPUT,
            STREAM_LOG_GROUP_OUTPUT,
        )
        outputs = (
            found if found is not None else {name: stack_placeholder(name, stack_name) for name in names}
        )
    application_id = job_role_arn = None
    if serverless:
        application_id = _required_output(outputs, APPLICATION_ID_OUTPUT, stack_name)
        job_role_arn = _required_output(outputs, JOB_ROLE_OUTPUT, stack_name)
    elif need_cluster:
        cluster_id = cluster_id or _required_output(outputs, CLUSTER_ID_OUTPUT, stack_name)
    lake = (
        Lake.from_uri(lake_uri)
        if lake_uri
        else Lake(bucket=_required_output(outputs, LAKE_BUCKET_OUTPUT, stack_name))
    )
    return Target(
        lake=lake,
        stage=stage,
        cluster_id=cluster_id,
        kms_key_id=kms_key_id or outputs.get(KMS_KEY_OUTPUT),
        stream_log_group=outputs.get(STREAM_LOG_GROUP_OUTPUT),
        application_id=application_id,
        job_role_arn=job_role_arn,
    )


def _required_output(outputs: dict[str, str], name: str, stack_name: str | None) -> str:
    if name not in outputs:
        raise DeployError(f"stack {stack_name} has no output {name!r} (found: {sorted(outputs) or 'none'})")
    return outputs[name]


# --- upload --------------------------------------------------------------------


@dataclass(frozen=True)
class EnvUpload:
    """The packed environment to put under code/env/<version>/ (built before the upload)."""

    archive: Path
    version: str


@dataclass(frozen=True)
class UploadSources:
    """Local files `upload` sends; a None artifact is skipped."""

    package: JobPackage
    main_script: Path
    fit_pca_script: Path
    maintain_script: Path
    bootstrap_script: Path
    env: EnvUpload | None = None
    featurizer: Path | None = None
    pca_dir: Path | None = None
    tls_certificates: Path | None = None


def put_object(target: Target, key: str, body: LocalFile | InlineBytes, content_type: str) -> ApiCall:
    """A PutObject encrypted with the lake's KMS key (bucket keys keep KMS requests few)."""
    return ApiCall(
        "s3",
        "put_object",
        {
            "Bucket": target.lake.bucket,
            "Key": key,
            "Body": body,
            "ContentType": content_type,
            "ServerSideEncryption": "aws:kms",
            "SSEKMSKeyId": target.require_kms_key(),
            "BucketKeyEnabled": True,
        },
    )


def pca_files(pca_dir: Path) -> list[Path]:
    """Every file of a saved PCA, without local checksum side files (`.name.crc`)."""
    return sorted(path for path in pca_dir.rglob("*") if path.is_file() and not path.name.startswith("."))


def plan_upload(target: Target, sources: UploadSources) -> list[ApiCall]:
    version = sources.package.version
    calls = [
        put_object(
            target,
            target.code_key(version, JOB_PACKAGE_NAME),
            InlineBytes(sources.package.data, JOB_PACKAGE_NAME),
            "application/zip",
        ),
        put_object(
            target,
            target.code_key(version, MAIN_SCRIPT_NAME),
            LocalFile(sources.main_script),
            "text/x-python",
        ),
        put_object(
            target,
            target.code_key(version, FIT_PCA_SCRIPT_NAME),
            LocalFile(sources.fit_pca_script),
            "text/x-python",
        ),
        put_object(
            target,
            target.code_key(version, MAINTAIN_SCRIPT_NAME),
            LocalFile(sources.maintain_script),
            "text/x-python",
        ),
        put_object(
            target,
            target.lake.key(f"{BOOTSTRAP_PREFIX}{BOOTSTRAP_SCRIPT_NAME}"),
            LocalFile(sources.bootstrap_script),
            "text/x-shellscript",
        ),
    ]
    if sources.env is not None:
        calls.append(
            put_object(
                target,
                target.env_key(sources.env.version),
                LocalFile(sources.env.archive),
                "application/gzip",
            )
        )
    if sources.tls_certificates is not None:
        calls.append(
            put_object(
                target,
                target.lake.key(TLS_CERTIFICATES_KEY),
                LocalFile(sources.tls_certificates),
                "application/zip",
            )
        )
    if sources.featurizer is not None:
        calls.append(
            put_object(
                target,
                target.lake.key(
                    contracts.featurizer_key(contracts.featurizer_runtime(sources.featurizer.name))
                ),
                LocalFile(sources.featurizer),
                "application/octet-stream",
            )
        )
    if sources.pca_dir is not None:
        for path in pca_files(sources.pca_dir):
            relative = path.relative_to(sources.pca_dir).as_posix()
            content_type = "application/json" if path.suffix == ".json" else "application/octet-stream"
            calls.append(
                put_object(
                    target, target.lake.key(f"{contracts.PCA_KEY}/{relative}"), LocalFile(path), content_type
                )
            )
    return calls


def env_uploaded(executor: Executor, target: Target, env_version: str) -> bool | None:
    """Whether this environment version is already in S3 (None in a dry run): 100+ MB are put once."""
    from botocore.exceptions import ClientError

    try:
        response = executor(
            ApiCall("s3", "head_object", {"Bucket": target.lake.bucket, "Key": target.env_key(env_version)})
        )
    except ClientError as error:
        if is_not_found_code(error.response.get("Error", {}).get("Code")):
            return False
        raise
    return None if response is None else True


def upload(executor: Executor, target: Target, sources: UploadSources) -> list[str]:
    """Put the code and artifacts; returns the S3 URIs written (planned, in a dry run)."""
    written = []
    for call in plan_upload(target, sources):
        executor(call)
        written.append((call.params["Bucket"], call.params["Key"]))
    if sources.pca_dir is not None:
        remove_stale_pca_files(executor, target, {key for _, key in written})
    return [f"s3://{bucket}/{key}" for bucket, key in written]


def remove_stale_pca_files(executor: Executor, target: Target, uploaded: set[str]) -> list[str]:
    """Delete files of an earlier PCA: Spark ML would load its part files together with the new ones."""
    prefix = target.lake.key(f"{contracts.PCA_KEY}/")
    listing = ApiCall("s3", "list_objects_v2", {"Bucket": target.lake.bucket, "Prefix": prefix})
    stale: list[str] = []
    while True:
        response = executor(listing)
        if response is None:
            executor.note(
                f"then deletes the objects under {prefix} that the new PCA does not contain "
                "(s3.delete_objects)"
            )
            return stale
        stale += [item["Key"] for item in response.get("Contents", []) if item["Key"] not in uploaded]
        if not response.get("IsTruncated"):
            break
        listing = ApiCall(
            "s3",
            "list_objects_v2",
            {**listing.params, "ContinuationToken": response["NextContinuationToken"]},
        )
    for start in range(0, len(stale), 1000):  # DeleteObjects takes at most 1,000 keys
        executor(
            ApiCall(
                "s3",
                "delete_objects",
                {
                    "Bucket": target.lake.bucket,
                    "Delete": {
                        "Objects": [{"Key": key} for key in stale[start : start + 1000]],
                        "Quiet": True,
                    },
                },
            )
        )
    return stale


# --- steps ---------------------------------------------------------------------


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


def stream_config(target: Target, stream_args: argparse.Namespace) -> StreamConfig:
    """The `fruits stream` flags given to `deploy start`, pointed at the target's lake and stage."""
    args = argparse.Namespace(**vars(stream_args))
    args.lake = target.lake.root
    args.stage = target.stage
    default_log_group = target.stream_log_group or STREAM_LOG_GROUP_TEMPLATE.format(stage=target.stage)
    args.cloudwatch_log_group = args.cloudwatch_log_group or default_log_group
    if not target.lake.bucket.startswith("<"):
        return config_from_args(args)
    # A dry run without AWS: the bucket is a <placeholder>, which no bucket-name check accepts.
    args.lake = DRY_RUN_LAKE
    config = config_from_args(args)
    uri_fields = ("lake", "checkpoint", "featurizer", "pca")
    return replace(
        config, **{name: getattr(config, name).replace(DRY_RUN_LAKE, target.lake.root) for name in uri_fields}
    )


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
        ApiCall(
            "s3",
            "delete_object",
            {"Bucket": target.lake.bucket, "Key": target.lake.key(contracts.STOP_MARKER_KEY)},
        ),
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


def active_steps(executor: Executor, target: Target, name: str) -> list[dict[str, Any]] | None:
    """PENDING/RUNNING steps with this name (None in a dry run: unknown)."""
    response = executor(
        ApiCall("emr", "list_steps", {"ClusterId": target.cluster_id, "StepStates": list(ACTIVE_STEP_STATES)})
    )
    if response is None:
        return None
    return [step for step in response.get("Steps", []) if step.get("Name") == name]


def require_objects(executor: Executor, objects: list[str], prefixes: tuple[str, ...] = ()) -> None:
    """Fail early, with the fix, when code or artifacts a step needs are not in S3."""
    from botocore.exceptions import ClientError

    missing = []
    checks = [(uri, False) for uri in objects] + [(uri, True) for uri in prefixes]
    for uri, is_prefix in checks:
        if not uris.is_s3(uri):
            continue
        bucket, key = uris.split_s3(uri)
        if is_prefix:
            call = ApiCall(
                "s3",
                "list_objects_v2",
                {"Bucket": bucket, "Prefix": f"{key.rstrip('/')}/", "MaxKeys": 1},
            )
        else:
            call = ApiCall("s3", "head_object", {"Bucket": bucket, "Key": key})
        try:
            response = executor(call)
        except ClientError as error:
            if not is_not_found_code(error.response.get("Error", {}).get("Code")):
                raise
            missing.append(uri)
            continue
        if is_prefix and response is not None and not response.get("KeyCount"):
            missing.append(uri)
    if missing:
        raise DeployError(
            "not found in S3: "
            + ", ".join(missing)
            + " (run `fruits deploy upload` first, or `fruits deploy fit-pca` for the PCA)"
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
    objects = [
        target.code_uri(version, JOB_PACKAGE_NAME),
        target.env_uri(env_version),
        target.code_uri(version, MAIN_SCRIPT_NAME),
        config.featurizer,
    ]
    return _submit(
        executor,
        target,
        target.stream_step_name,
        plan_start(target, config, version, env_version),
        objects,
        prefixes=(config.pca,),
    )


# --- EMR Serverless ----------------------------------------------------------------

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
        ApiCall(
            "s3",
            "delete_object",
            {"Bucket": target.lake.bucket, "Key": target.lake.key(contracts.STOP_MARKER_KEY)},
        ),
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
    objects = [
        target.code_uri(version, JOB_PACKAGE_NAME),
        target.env_uri(env_version),
        target.code_uri(version, MAIN_SCRIPT_NAME),
        config.featurizer,
    ]
    require_objects(executor, objects, (config.pca,))
    response = None
    for call in plan_start_serverless(target, config, version, env_version, capacity):
        response = executor(call)
    return response["jobRunId"] if response else None


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


# --- status --------------------------------------------------------------------


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


# --- stop ----------------------------------------------------------------------


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
