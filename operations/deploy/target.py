"""Where a deploy action works: the lake, the cluster or application, the code layout under `code/`.

Explicit flags win; what they leave out is read from the stacks' outputs (cloudformation.describe_stacks).
In a dry run, values read from AWS are shown as `<placeholders>`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace

from fruits_core import contracts
from fruits_core.errors import ConfigError
from fruits_core.lake_uris import UnsupportedUriError, join_uri, s3_uri, split_s3
from operations.aws_calls import ApiCall, Executor
from operations.env_archive import ARCHIVE_NAME as ENV_ARCHIVE_NAME
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
