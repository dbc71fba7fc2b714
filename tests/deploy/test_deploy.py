"""`fruits deploy` against moto: real boto3 calls to mocked S3, EMR, KMS and CloudFormation."""

from __future__ import annotations

import argparse
import json
import tarfile
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.emr.models import emr_backends

from fruits_cli import deploy as deploy_command
from fruits_core import contracts
from fruits_core.errors import ConfigError
from operations import deploy
from operations.aws_calls import ApiCall, Boto3Executor
from operations.env_archive import ARCHIVE_NAME, env_spec
from operations.job_package import build_job_package
from streaming_job import uris
from streaming_job.config import StreamConfig
from streaming_job.monitoring.status_log import StatusLog

REGION = "eu-west-3"
BUCKET = "fruits-test-lake"
STAGE = "test"


def fruits_deploy(*argv: str) -> int:
    """Run `fruits deploy ...` through the command's own parser."""
    parser = argparse.ArgumentParser(prog="fruits deploy")
    deploy_command.add_arguments(parser)
    args = parser.parse_args(list(argv))
    args.command = "deploy"
    return deploy_command.run(args)


REPO_ROOT = Path(__file__).resolve().parents[2]


def local_env_version(keras_runtime: bool = False) -> str:
    """The version of the environment `upload` packs from this environment (LiteRT by default)."""
    return env_spec(REPO_ROOT / "pyproject.toml", keras_runtime=keras_runtime).version


@pytest.fixture(autouse=True)
def env_cache(tmp_path: Path, monkeypatch) -> Path:
    """An environment cache holding small stand-in archives of the local versions (LiteRT, and
    Keras for a .keras featurizer): building the real one (tests/deploy/test_env_archive.py) takes
    half a minute and 140 MB. Returns the LiteRT one."""
    cache = tmp_path / "env-cache"
    content = tmp_path / "pyvenv.cfg"
    content.write_text("home = /usr/bin\n")
    for keras_runtime in (True, False):
        archive = cache / local_env_version(keras_runtime) / ARCHIVE_NAME
        archive.parent.mkdir(parents=True)
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(content, arcname="pyvenv.cfg")
    monkeypatch.setenv("FRUITS_ENV_CACHE", str(cache))
    return archive


@pytest.fixture
def aws(mocked_aws, monkeypatch):
    for name in ("FRUITS_LAKE", "FRUITS_STAGE", "FRUITS_STACK_NAME", "FRUITS_REGION"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def s3(aws):
    client = boto3.client("s3", region_name=REGION)
    client.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    return client


@pytest.fixture
def kms_key(aws) -> str:
    return boto3.client("kms", region_name=REGION).create_key(Description="lake key")["KeyMetadata"]["Arn"]


@pytest.fixture
def emr(aws):
    return boto3.client("emr", region_name=REGION)


@pytest.fixture
def cluster_id(emr) -> str:
    return emr.run_job_flow(
        Name="fruits-test",
        ReleaseLabel="emr-7.0.0",
        JobFlowRole="EMR_EC2_DefaultRole",
        ServiceRole="EMR_DefaultRole",
        StepConcurrencyLevel=2,
        Instances={
            "MasterInstanceType": "m7g.xlarge",
            "SlaveInstanceType": "m7g.xlarge",
            "InstanceCount": 3,
            "KeepJobFlowAliveWhenNoSteps": True,
        },
    )["JobFlowId"]


@pytest.fixture
def artifacts(tmp_path: Path) -> tuple[Path, Path]:
    """The default featurizer and a PCA directory as `fruits fit-pca` saves it (Spark ML + sidecar)."""
    from tests.streaming.featurizer_testkit import litert_featurizer

    featurizer_uri, model_version = litert_featurizer()
    featurizer = tmp_path / "featurizer.tflite"
    featurizer.write_bytes(uris.read_bytes(featurizer_uri))
    pca = tmp_path / "pca"
    (pca / "spark_model" / "metadata").mkdir(parents=True)
    (pca / "pca.json").write_text(json.dumps({"k": 8, "model_version": model_version}))
    (pca / "spark_model" / "metadata" / "part-00000").write_text('{"class": "PipelineModel"}')
    (pca / "spark_model" / "metadata" / ".part-00000.crc").write_bytes(b"crc")
    return featurizer, pca


def target_flags(cluster_id: str, kms_key: str) -> list[str]:
    return [
        "--region",
        REGION,
        "--cluster-id",
        cluster_id,
        "--lake",
        f"s3://{BUCKET}",
        "--kms-key-id",
        kms_key,
    ]


def upload_all(cluster_id: str, kms_key: str, artifacts: tuple[Path, Path]) -> int:
    featurizer, pca = artifacts
    return fruits_deploy(
        "upload",
        *target_flags(cluster_id, kms_key),
        "--stage",
        STAGE,
        "--featurizer",
        str(featurizer),
        "--pca",
        str(pca),
    )


def keys(s3) -> set[str]:
    return {item["Key"] for item in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])}


def steps(emr, cluster_id: str) -> list[dict]:
    return emr.list_steps(ClusterId=cluster_id)["Steps"]


def test_upload_puts_code_and_artifacts_encrypted_with_the_lake_key(
    s3, kms_key, cluster_id, artifacts, env_cache
):
    # GIVEN a lake bucket, its KMS key, local artifacts and the packed environment
    version = build_job_package().version
    env_key = f"code/env/{local_env_version()}/fruits-env.tar.gz"
    # WHEN the code and artifacts are uploaded
    assert upload_all(cluster_id, kms_key, artifacts) == 0
    # THEN the versioned code, the bootstrap script and the models are in place (no local checksum files)
    assert keys(s3) == {
        f"code/{version}/fruits_job.zip",
        f"code/{version}/main.py",
        f"code/{version}/fit_pca_main.py",
        f"code/{version}/maintain_main.py",
        "code/bootstrap/check-python.sh",
        env_key,
        contracts.FEATURIZER_KEY,
        f"{contracts.PCA_KEY}/pca.json",
        f"{contracts.PCA_KEY}/spark_model/metadata/part-00000",
    }
    # AND every object is SSE-KMS with the lake's key
    for key in keys(s3):
        head = s3.head_object(Bucket=BUCKET, Key=key)
        assert head["ServerSideEncryption"] == "aws:kms", key
        assert head["SSEKMSKeyId"] == kms_key, key
    # AND the zip is the locally built package, byte for byte
    body = s3.get_object(Bucket=BUCKET, Key=f"code/{version}/fruits_job.zip")["Body"].read()
    assert body == build_job_package().data
    # AND the environment is the archive of the local cache, byte for byte
    assert s3.get_object(Bucket=BUCKET, Key=env_key)["Body"].read() == env_cache.read_bytes()


def test_an_environment_already_in_s3_is_neither_built_nor_put_again(
    s3, kms_key, cluster_id, artifacts, env_cache, capsys
):
    # GIVEN an upload done once, then the local cache emptied (a rebuild would be needed)
    assert upload_all(cluster_id, kms_key, artifacts) == 0
    env_key = f"code/env/{local_env_version()}/fruits-env.tar.gz"
    first_put = s3.head_object(Bucket=BUCKET, Key=env_key)["LastModified"]
    env_cache.unlink()
    capsys.readouterr()
    # WHEN the code is uploaded again
    assert upload_all(cluster_id, kms_key, artifacts) == 0
    # THEN the environment is found in S3 and left as it was
    assert (
        f"environment {local_env_version()} is already in s3://{BUCKET}/{env_key}" in capsys.readouterr().out
    )
    assert s3.head_object(Bucket=BUCKET, Key=env_key)["LastModified"] == first_put
    assert not env_cache.exists()


def test_a_new_pca_replaces_every_file_of_the_old_one(s3, kms_key, cluster_id, artifacts):
    # GIVEN a PCA uploaded earlier whose Spark ML part file has another name than the new one's
    old_part = f"{contracts.PCA_KEY}/spark_model/data/part-00000-old.parquet"
    s3.put_object(Bucket=BUCKET, Key=old_part, Body=b"x")
    # WHEN the new PCA is uploaded
    assert upload_all(cluster_id, kms_key, artifacts) == 0
    # THEN only the new PCA's files remain (Spark ML would read a stale part file with the new ones)
    pca_keys = {key for key in keys(s3) if key.startswith(f"{contracts.PCA_KEY}/")}
    assert pca_keys == {
        f"{contracts.PCA_KEY}/pca.json",
        f"{contracts.PCA_KEY}/spark_model/metadata/part-00000",
    }


def expected_step_args(name: str, version: str, entry: str, *yarn_conf: str) -> list[str]:
    """spark-submit of an uploaded job entry on the packed environment, in cluster mode, up to its --lake:
    the head every step `fruits deploy` adds shares, written out flag by flag (not rebuilt by the code
    under test)."""
    return [
        "spark-submit",
        "--deploy-mode",
        "cluster",
        "--name",
        name,
        "--conf",
        "spark.yarn.submit.waitAppCompletion=true",
        *yarn_conf,
        "--archives",
        f"s3://{BUCKET}/code/env/{local_env_version()}/fruits-env.tar.gz#environment",
        "--conf",
        "spark.pyspark.python=./environment/bin/python",
        "--conf",
        "spark.pyspark.driver.python=./environment/bin/python",
        "--py-files",
        f"s3://{BUCKET}/code/{version}/fruits_job.zip",
        f"s3://{BUCKET}/code/{version}/{entry}",
        "--lake",
        f"s3://{BUCKET}",
    ]


def expected_stream_args(version: str) -> list[str]:
    # Written out flag by flag, not rebuilt with StreamConfig.to_cli_args (the function under test);
    # the timings are StreamConfig's defaults, which the measurements behind them may move.
    default = {field.name: field.default for field in fields(StreamConfig)}
    return [
        *expected_step_args(
            f"fruits-stream-{STAGE}",
            version,
            "main.py",
            # a driver that dies is restarted by YARN (at most 4 attempts within an hour)
            "--conf",
            "spark.yarn.maxAppAttempts=4",
            "--conf",
            "spark.yarn.am.attemptFailuresValidityInterval=1h",
        ),
        "--checkpoint",
        f"s3://{BUCKET}/checkpoints/features",
        "--featurizer",
        f"s3://{BUCKET}/models/featurizer.tflite",
        "--pca",
        f"s3://{BUCKET}/models/pca",
        "--trigger",
        f"{default['trigger_seconds']:g}",
        "--max-files-per-trigger",
        "8000",
        "--clean-source",
        "archive",
        "--inference-batch-size",
        "64",
        "--metrics-namespace",
        "Fruits/Stream",
        "--stage",
        STAGE,
        "--heartbeat",
        f"{default['heartbeat_seconds']:g}",
        "--hung-after",
        f"{default['hung_after_seconds']:g}",
        "--image-read-timeout",
        f"{default['image_read_timeout_seconds']:g}",
        "--checkpoint-epoch-hours",
        f"{default['checkpoint_epoch_hours']:g}",
        "--cloudwatch-log-group",
        f"/fruits/{STAGE}/stream",
    ]


def test_start_adds_a_stream_step_with_the_stream_flags(s3, emr, kms_key, cluster_id, artifacts):
    # GIVEN uploaded code and artifacts, and a stop marker left by an earlier stop
    assert upload_all(cluster_id, kms_key, artifacts) == 0
    s3.put_object(Bucket=BUCKET, Key=contracts.STOP_MARKER_KEY, Body=b"{}")
    # WHEN the stream is started
    assert fruits_deploy("start", *target_flags(cluster_id, kms_key), "--stage", STAGE) == 0
    # THEN one step runs spark-submit with exactly the flags StreamConfig gives `fruits stream`
    [step] = steps(emr, cluster_id)
    assert step["Name"] == f"fruits-stream-{STAGE}"
    assert step["ActionOnFailure"] == "CONTINUE"
    assert step["Config"]["Jar"] == "command-runner.jar"
    assert step["Config"]["Args"] == expected_stream_args(build_job_package().version)
    # AND the stale stop marker is gone, so the new stream does not stop at once
    assert contracts.STOP_MARKER_KEY not in keys(s3)


def test_stream_flags_given_to_start_reach_the_step(s3, emr, kms_key, cluster_id, artifacts):
    # GIVEN uploaded code
    assert upload_all(cluster_id, kms_key, artifacts) == 0
    # WHEN start gets stream flags
    flags = {"--trigger": "30", "--max-files-per-trigger": "2048", "--clean-source": "delete"}
    assert (
        fruits_deploy(
            "start",
            *target_flags(cluster_id, kms_key),
            "--stage",
            STAGE,
            *[item for pair in flags.items() for item in pair],
        )
        == 0
    )
    # THEN they are in the step's arguments
    args = steps(emr, cluster_id)[0]["Config"]["Args"]
    for flag, value in flags.items():
        assert args[args.index(flag) + 1] == value


def test_second_start_is_refused_while_the_stream_runs(s3, emr, kms_key, cluster_id, artifacts, capsys):
    # GIVEN a running stream step
    assert upload_all(cluster_id, kms_key, artifacts) == 0
    assert fruits_deploy("start", *target_flags(cluster_id, kms_key), "--stage", STAGE) == 0
    # WHEN it is started again
    code = fruits_deploy("start", *target_flags(cluster_id, kms_key), "--stage", STAGE)
    # THEN the command fails with a clear message and adds no step
    assert code == 1
    assert "already RUNNING" in capsys.readouterr().err
    assert len(steps(emr, cluster_id)) == 1


def test_start_refuses_code_that_was_not_uploaded(s3, emr, kms_key, cluster_id, capsys):
    # GIVEN an empty lake
    # WHEN the stream is started
    code = fruits_deploy("start", *target_flags(cluster_id, kms_key), "--stage", STAGE)
    # THEN it names what is missing and how to fix it, and adds no step
    assert code == 1
    err = capsys.readouterr().err
    assert "fruits_job.zip" in err and "fruits deploy upload" in err
    assert steps(emr, cluster_id) == []


def test_status_reports_cluster_and_stream_step(s3, emr, kms_key, cluster_id, artifacts, capsys):
    # GIVEN a started stream
    assert upload_all(cluster_id, kms_key, artifacts) == 0
    assert fruits_deploy("start", *target_flags(cluster_id, kms_key), "--stage", STAGE) == 0
    capsys.readouterr()
    # WHEN the status is asked for as JSON
    assert fruits_deploy("status", *target_flags(cluster_id, kms_key), "--stage", STAGE, "--json") == 0
    report = json.loads(capsys.readouterr().out)
    # THEN it shows the cluster's and the step's states
    assert report["cluster_id"] == cluster_id
    assert report["cluster_state"] in ("RUNNING", "WAITING", "STARTING")
    assert report["step_id"] == steps(emr, cluster_id)[0]["Id"]
    assert report["step_state"] == "RUNNING"
    # AND the stream's own health, which needs its status log: none yet
    assert report["stream_health"]["health"] == "never-ran"
    assert "no status yet" in report["stream_health"]["reason"]


def test_status_reads_the_stream_health_from_the_lake(s3, emr, kms_key, cluster_id, capsys):
    # GIVEN a status log the stream's listener wrote a moment ago
    latest = {"state": "running", "updated_at": contracts.iso_utc(datetime.now(UTC)), "trigger_seconds": 10}
    StatusLog(f"s3://{BUCKET}/{contracts.STATUS_PREFIX}").write_latest(latest)
    # WHEN the status is asked for
    assert fruits_deploy("status", *target_flags(cluster_id, kms_key), "--stage", STAGE) == 0
    out = capsys.readouterr().out
    # THEN the table shows the cluster and the stream's health from that log
    assert f"cluster        {cluster_id}" in out
    assert "stream health  HEALTHY" in out


class FakeClock:
    """Time that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class CancelRecorder:
    """moto has no EMR CancelSteps: record that call, pass every other one to moto."""

    dry_run = False

    def __init__(self, inner: Boto3Executor) -> None:
        self.inner = inner
        self.cancels: list[ApiCall] = []

    def __call__(self, call: ApiCall):
        if call.operation == "cancel_steps":
            self.cancels.append(call)
            return {"CancelStepsInfoList": [{"StepId": call.params["StepIds"][0], "Status": "SUBMITTED"}]}
        return self.inner(call)

    def note(self, text: str) -> None:
        pass


def started_stream(cluster_id: str, kms_key: str, artifacts) -> deploy.Target:
    assert upload_all(cluster_id, kms_key, artifacts) == 0
    assert fruits_deploy("start", *target_flags(cluster_id, kms_key), "--stage", STAGE) == 0
    return deploy.Target(lake=deploy.Lake(BUCKET), stage=STAGE, cluster_id=cluster_id, kms_key_id=kms_key)


def test_stop_writes_the_marker_and_waits_for_the_stream_to_finish(s3, emr, kms_key, cluster_id, artifacts):
    # GIVEN a running stream that finishes its batch and exits after seeing the marker
    target = started_stream(cluster_id, kms_key, artifacts)
    clock = FakeClock()
    moto_step = emr_backends[DEFAULT_ACCOUNT_ID][REGION].clusters[cluster_id].steps[0]

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if len(clock.sleeps) == 2:
            moto_step.state = "COMPLETED"

    executor = CancelRecorder(Boto3Executor(REGION))
    # WHEN it is stopped
    result = deploy.stop(executor, target, timeout_s=300, poll_s=15, sleep=sleep, clock=clock)
    # THEN the encrypted stop marker was written, the step ended by itself and nothing was cancelled
    head = s3.head_object(Bucket=BUCKET, Key=contracts.STOP_MARKER_KEY)
    assert head["ServerSideEncryption"] == "aws:kms"
    marker = json.loads(s3.get_object(Bucket=BUCKET, Key=contracts.STOP_MARKER_KEY)["Body"].read())
    assert set(marker) == {"requested_at", "requested_by"}
    assert result == deploy.StopResult("stopped", moto_step.id, "COMPLETED")
    assert clock.sleeps == [15, 15]
    assert executor.cancels == []


def test_stop_cancels_the_step_when_it_outlives_the_timeout(s3, emr, kms_key, cluster_id, artifacts):
    # GIVEN a running stream that never stops by itself
    target = started_stream(cluster_id, kms_key, artifacts)
    clock = FakeClock()
    executor = CancelRecorder(Boto3Executor(REGION))
    # WHEN it is stopped with a 60 s timeout
    result = deploy.stop(executor, target, timeout_s=60, poll_s=25, sleep=clock.sleep, clock=clock)
    # THEN it waited exactly the timeout, then sent SEND_INTERRUPT to that step
    step_id = steps(emr, cluster_id)[0]["Id"]
    assert clock.sleeps == [25, 25, 10]
    assert [call.params for call in executor.cancels] == [
        {"ClusterId": cluster_id, "StepIds": [step_id], "StepCancellationOption": "SEND_INTERRUPT"}
    ]
    assert result.outcome == "cancelled"
    assert contracts.STOP_MARKER_KEY in keys(s3)


def test_stop_without_a_running_stream_writes_nothing(s3, kms_key, cluster_id):
    # GIVEN a cluster with no stream step
    target = deploy.Target(lake=deploy.Lake(BUCKET), stage=STAGE, cluster_id=cluster_id, kms_key_id=kms_key)
    # WHEN it is stopped
    result = deploy.stop(Boto3Executor(REGION), target, sleep=pytest.fail)
    # THEN there is nothing to do, and no marker is left to stop a future stream
    assert result.outcome == "not_running"
    assert keys(s3) == set()


def test_fit_pca_adds_a_batch_step_running_the_job_fit_pca_entry(s3, emr, kms_key, cluster_id, artifacts):
    # GIVEN uploaded code and featurizer
    assert upload_all(cluster_id, kms_key, artifacts) == 0
    version = build_job_package().version
    # WHEN a fit is requested with a fixed k
    assert (
        fruits_deploy(
            "fit-pca",
            *target_flags(cluster_id, kms_key),
            "--stage",
            STAGE,
            "--k",
            "16",
            "--sample-size",
            "500",
            "--replace",
        )
        == 0
    )
    # THEN the step runs the job's fit_pca_main.py from the zip (master: spark-submit's), writing models/pca
    [step] = steps(emr, cluster_id)
    assert step["Name"] == f"fruits-fit-pca-{STAGE}"
    assert step["ActionOnFailure"] == "CONTINUE"
    assert step["Config"]["Args"] == [
        *expected_step_args(f"fruits-fit-pca-{STAGE}", version, "fit_pca_main.py"),
        "--featurizer",
        f"s3://{BUCKET}/{contracts.FEATURIZER_KEY}",
        "--out",
        f"s3://{BUCKET}/{contracts.PCA_KEY}",
        "--k",
        "16",
        "--sample-size",
        "500",
        "--replace",  # asked for: the step overwrites the lake's PCA (it refuses otherwise)
    ]


def test_maintain_adds_the_lake_maintenance_step_on_the_packed_environment(
    s3, emr, kms_key, cluster_id, artifacts
):
    # GIVEN uploaded code
    assert upload_all(cluster_id, kms_key, artifacts) == 0
    version = build_job_package().version
    # WHEN maintenance is requested now
    assert fruits_deploy("maintain", *target_flags(cluster_id, kms_key), "--stage", STAGE) == 0
    # THEN the step runs the uploaded maintain_main.py in cluster mode on the packed environment
    [step] = steps(emr, cluster_id)
    assert step["Name"] == f"fruits-lake-maintain-{STAGE}"
    assert step["ActionOnFailure"] == "CONTINUE"
    assert step["Config"]["Args"] == expected_step_args(
        f"fruits-lake-maintain-{STAGE}", version, "maintain_main.py"
    )
    # AND a second request while it runs is refused
    assert fruits_deploy("maintain", *target_flags(cluster_id, kms_key), "--stage", STAGE) == 1
    assert len(steps(emr, cluster_id)) == 1


# The outputs and parameter `fruits deploy` reads from infra/emr-cluster.yaml and template.yaml.
EMR_STACK_TEMPLATE = """
AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  ClusterIdValue: {Type: String}
  IngestStackName: {Type: String}
Resources:
  Placeholder: {Type: "AWS::SQS::Queue"}
Outputs:
  ClusterId: {Value: !Ref ClusterIdValue}
  LakeBucketName: {Value: fruits-test-lake}
  StreamLogGroupName: {Value: /fruits/test/stream-from-stack}
"""
INGEST_STACK_TEMPLATE = """
AWSTemplateFormatVersion: "2010-09-09"
Parameters:
  KeyArn: {Type: String}
Resources:
  LakeBucket:
    Type: AWS::S3::Bucket
    Properties: {BucketName: fruits-test-lake}
Outputs:
  LakeBucketName: {Value: !Ref LakeBucket}
  LakeKmsKeyArn: {Value: !Ref KeyArn}
"""


@pytest.fixture
def stacks(aws, kms_key, cluster_id) -> None:
    """The ingest stack (lake bucket, KMS key) and the EMR stack naming it in IngestStackName."""
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    cloudformation.create_stack(
        StackName="fruits-ingest-test",
        TemplateBody=INGEST_STACK_TEMPLATE,
        Parameters=[{"ParameterKey": "KeyArn", "ParameterValue": kms_key}],
    )
    cloudformation.create_stack(
        StackName="fruits-emr-test",
        TemplateBody=EMR_STACK_TEMPLATE,
        Parameters=[
            {"ParameterKey": "ClusterIdValue", "ParameterValue": cluster_id},
            {"ParameterKey": "IngestStackName", "ParameterValue": "fruits-ingest-test"},
        ],
    )


def test_stack_outputs_give_the_cluster_lake_key_and_log_group(stacks, kms_key, cluster_id):
    # GIVEN the two stacks
    executor = Boto3Executor(REGION)
    # WHEN the target is resolved from the EMR stack's name alone
    target = deploy.resolve_target(executor, stage=STAGE, stack_name="fruits-emr-test")
    # THEN the cluster, lake and log group come from its outputs, the key from the ingest stack's
    assert target == deploy.Target(
        lake=deploy.Lake(BUCKET),
        stage=STAGE,
        cluster_id=cluster_id,
        kms_key_id=kms_key,
        stream_log_group="/fruits/test/stream-from-stack",
    )
    assert [call.params["StackName"] for call in executor.calls] == ["fruits-emr-test", "fruits-ingest-test"]


def test_an_emr_stack_repeating_the_lake_outputs_is_read_alone(aws, kms_key, cluster_id):
    # GIVEN an EMR stack whose outputs repeat the lake bucket and key (as infra/emr-cluster.yaml does)
    template = EMR_STACK_TEMPLATE + "  LakeKmsKeyArn: {Value: !Ref KeyArn}\n"
    template = template.replace(
        "  IngestStackName: {Type: String}\n", "  IngestStackName: {Type: String}\n  KeyArn: {Type: String}\n"
    )
    boto3.client("cloudformation", region_name=REGION).create_stack(
        StackName="fruits-emr-test",
        TemplateBody=template,
        Parameters=[
            {"ParameterKey": "ClusterIdValue", "ParameterValue": cluster_id},
            {"ParameterKey": "IngestStackName", "ParameterValue": "no-such-stack"},
            {"ParameterKey": "KeyArn", "ParameterValue": kms_key},
        ],
    )
    executor = Boto3Executor(REGION)
    # WHEN the target is resolved
    target = deploy.resolve_target(executor, stage=STAGE, stack_name="fruits-emr-test")
    # THEN one describe_stacks call gave everything
    assert (target.cluster_id, target.lake.bucket, target.kms_key_id) == (cluster_id, BUCKET, kms_key)
    assert len(executor.calls) == 1


def test_upload_needs_only_the_ingest_stack(stacks, kms_key):
    # GIVEN the ingest stack (the EMR stack's bootstrap action needs the upload before it exists)
    # WHEN upload is given the ingest stack's name (code only)
    code = fruits_deploy("upload", "--stack-name", "fruits-ingest-test", "--skip-featurizer", "--skip-pca")
    # THEN the code lands, encrypted with the stack's key, in the stack's lake bucket
    s3 = boto3.client("s3", region_name=REGION)
    assert code == 0
    bootstrap_key = "code/bootstrap/check-python.sh"
    assert bootstrap_key in keys(s3)
    assert s3.head_object(Bucket=BUCKET, Key=bootstrap_key)["SSEKMSKeyId"] == kms_key


def test_start_with_the_stack_name_uses_the_stack_log_group(stacks, kms_key, cluster_id, artifacts, emr):
    # GIVEN uploaded code
    assert upload_all(cluster_id, kms_key, artifacts) == 0
    # WHEN the stream is started with only the EMR stack's name
    assert fruits_deploy("start", "--stack-name", "fruits-emr-test", "--stage", STAGE) == 0
    # THEN the step sends its metrics to the stack's log group
    args = steps(emr, cluster_id)[0]["Config"]["Args"]
    assert args[args.index("--cloudwatch-log-group") + 1] == "/fruits/test/stream-from-stack"


def test_dry_run_prints_every_call_and_makes_none(s3, emr, kms_key, cluster_id, artifacts, capsys):
    featurizer, pca = artifacts
    flags = target_flags(cluster_id, kms_key)
    # GIVEN an empty lake and an idle cluster
    # WHEN upload, start, stop and fit-pca run with --dry-run
    assert (
        fruits_deploy("upload", *flags, "--featurizer", str(featurizer), "--pca", str(pca), "--dry-run") == 0
    )
    assert fruits_deploy("start", *flags, "--stage", STAGE, "--dry-run") == 0
    assert fruits_deploy("stop", *flags, "--stage", STAGE, "--dry-run") == 0
    assert fruits_deploy("fit-pca", *flags, "--stage", STAGE, "--dry-run") == 0
    lines = capsys.readouterr().out.splitlines()
    calls = [line for line in lines if not line.startswith("#")]
    # THEN each call is printed as service.operation({...}) with its real parameters
    operations = [line.split("(", 1)[0] for line in calls]
    assert (
        operations.count("s3.put_object") == 9 + 1
    )  # 9 uploads (maintenance entry, environment) + the stop marker
    for operation in (
        "emr.list_steps",
        "s3.head_object",
        "s3.delete_object",
        "emr.add_job_flow_steps",
        "emr.describe_step",
        "emr.cancel_steps",
    ):
        assert operation in operations
    add_step = json.loads(
        next(line for line in calls if line.startswith("emr.add_job_flow_steps"))[
            len("emr.add_job_flow_steps(") : -1
        ]
    )
    assert add_step["Steps"][0]["HadoopJarStep"]["Args"] == expected_stream_args(build_job_package().version)
    assert any('"SSEKMSKeyId": "' + kms_key in line for line in calls)
    # AND nothing was created
    assert keys(s3) == set()
    assert steps(emr, cluster_id) == []


def test_dry_run_with_a_stack_shows_what_it_would_read(aws, capsys):
    # GIVEN no AWS resources at all
    # WHEN start is dry-run with a stack name
    assert fruits_deploy("start", "--stack-name", "fruits-prod-emr", "--stage", "prod", "--dry-run") == 0
    out = capsys.readouterr().out
    # THEN the stack read and the placeholders for its outputs are printed
    assert 'cloudformation.describe_stacks({"StackName": "fruits-prod-emr"})' in out
    assert "<ClusterId output of stack fruits-prod-emr>" in out
    assert "s3://<LakeBucketName output of stack fruits-prod-emr>/code/" in out


def _start_job_run(out: str) -> dict:
    (line,) = [line for line in out.splitlines() if line.startswith("emr-serverless.start_job_run(")]
    return json.loads(line.removeprefix("emr-serverless.start_job_run(").removesuffix(")"))


@pytest.mark.parametrize(("images_per_day", "max_executors"), [(10_000, 1), (100_000_000, 58)])
def test_serverless_start_dry_run_is_the_streaming_job_run_fruits_cost_prices(
    aws, capsys, images_per_day, max_executors
):
    # GIVEN no AWS resources WHEN start is dry-run on EMR Serverless at an expected rate
    argv = ["start", "--stack-name", "fruits-sls", "--stage", "prod", "--dry-run", "--code-version", "c1"]
    argv += ["--env-version", "e1", "--compute", "serverless", "--images-per-day", str(images_per_day)]
    assert fruits_deploy(*argv) == 0
    out = capsys.readouterr().out
    # THEN it lists the active job runs, checks the inputs, removes a stop marker, then starts one job run
    calls = [line.split("(", 1)[0] for line in out.splitlines() if "(" in line and not line.startswith("#")]
    assert calls[:2] == ["cloudformation.describe_stacks", "emr-serverless.list_job_runs"]
    assert calls[-2:] == ["s3.delete_object", "emr-serverless.start_job_run"]
    run = _start_job_run(out)
    # in streaming mode (job resiliency), as the stream's step name, with the stack's application and role
    assert (run["mode"], run["name"]) == ("STREAMING", "fruits-stream-prod")
    assert run["applicationId"] == "<ApplicationId output of stack fruits-sls>"
    assert run["executionRoleArn"] == "<JobRoleArn output of stack fruits-sls>"
    assert run["retryPolicy"]["maxFailedAttemptsPerHour"] >= 1
    submit = run["jobDriver"]["sparkSubmit"]
    assert submit["entryPoint"] == "s3://<LakeBucketName output of stack fruits-sls>/code/c1/main.py"
    assert "--clean-source" in submit["entryPointArguments"]
    # AND its workers are the ones `fruits cost` bills: 1 vCPU, 2 GB driver and 3 GB executors, at most
    # as many executors as the peak of this rate needs
    parameters = submit["sparkSubmitParameters"]
    for setting in (
        "spark.driver.cores=1",
        "spark.driver.memory=1g",
        "spark.driver.memoryOverhead=1g",
        "spark.executor.cores=1",
        "spark.executor.memory=2g",
        "spark.executor.memoryOverhead=1g",
        "spark.dynamicAllocation.minExecutors=1",
        f"spark.dynamicAllocation.maxExecutors={max_executors}",
        "spark.emr-serverless.driverEnv.PYSPARK_PYTHON=./environment/bin/python",
    ):
        assert f"--conf {setting}" in parameters
    assert "code/env/e1/fruits-env.tar.gz#environment" in parameters


def test_auto_compute_picks_what_fruits_cost_finds_cheaper(aws, capsys):
    # GIVEN 10,000 images a day, where `fruits cost` prices EMR Serverless below the always-on cluster
    argv = ["start", "--stack-name", "fruits-sls", "--dry-run", "--code-version", "c1", "--env-version", "e1"]
    assert fruits_deploy(*argv, "--compute", "auto", "--images-per-day", "10000") == 0
    # THEN the serverless job run is planned
    assert "emr-serverless.start_job_run(" in capsys.readouterr().out
    # AND without an expected rate the choice is refused with a clear message
    with pytest.raises(ConfigError, match="--images-per-day"):
        fruits_deploy(*argv, "--compute", "auto")


@pytest.mark.parametrize("region", ["us-east-1", "eu-west-2", "eu-central-2"])
def test_regions_outside_the_eu_are_refused(aws, region):
    # GIVEN a region outside the EU member states (London and Zurich included)
    # WHEN any deploy command targets it
    # THEN it is refused before any call
    with pytest.raises(ConfigError, match="EU"):
        fruits_deploy("status", "--region", region, "--cluster-id", "j-1", "--lake", "s3://b", "--dry-run")


def test_a_target_needs_a_stack_or_explicit_ids(aws):
    with pytest.raises(ConfigError, match="--stack-name"):
        fruits_deploy("status", "--cluster-id", "j-1", "--dry-run")


def test_upload_needs_the_lake_kms_key(s3, cluster_id, artifacts):
    featurizer, pca = artifacts
    with pytest.raises(ConfigError, match="--kms-key-id"):
        fruits_deploy(
            "upload",
            "--cluster-id",
            cluster_id,
            "--lake",
            f"s3://{BUCKET}",
            "--featurizer",
            str(featurizer),
            "--pca",
            str(pca),
        )


@pytest.mark.tf
def test_upload_refuses_random_weights_unless_asked(s3, kms_key, cluster_id, artifacts, tmp_path, capsys):
    # GIVEN a seeded (random-weight) Keras featurizer
    from tests.streaming.featurizer_testkit import seeded_featurizer

    seeded = tmp_path / "featurizer.keras"
    seeded.write_bytes(uris.read_bytes(seeded_featurizer()[0]))
    _, pca = artifacts
    flags = [*target_flags(cluster_id, kms_key), "--featurizer", str(seeded), "--pca", str(pca)]
    # WHEN it is uploaded without --allow-random-weights
    # THEN the command refuses, says why and what to do, and uploads nothing
    with pytest.raises(ConfigError, match=r"random-weight featurizer.*--allow-random-weights"):
        fruits_deploy("upload", *flags)
    assert keys(s3) == set()
    # AND with the flag it goes to the Keras key, with a warning that the PCA belongs to another featurizer
    assert fruits_deploy("upload", *flags, "--allow-random-weights") == 0
    assert contracts.featurizer_key("keras") in keys(s3)
    # AND the environment uploaded with it is the one with TensorFlow (the keras runtime's)
    assert f"code/env/{local_env_version(keras_runtime=True)}/{ARCHIVE_NAME}" in keys(s3)
    assert (
        f"fitted on {json.loads((pca / 'pca.json').read_text())['model_version']}" in capsys.readouterr().err
    )


def test_upload_of_the_matching_featurizer_and_pca_warns_nothing(s3, kms_key, cluster_id, artifacts, capsys):
    assert upload_all(cluster_id, kms_key, artifacts) == 0
    assert "WARNING" not in capsys.readouterr().err
