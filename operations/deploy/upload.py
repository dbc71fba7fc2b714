"""Putting the code and the model artifacts in the lake, and checking a step's inputs are there."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fruits_core import contracts
from fruits_core.lake_uris import is_not_found_code
from operations.aws_calls import ApiCall, Executor, InlineBytes, LocalFile
from operations.deploy.target import (
    BOOTSTRAP_PREFIX,
    BOOTSTRAP_SCRIPT_NAME,
    FIT_PCA_SCRIPT_NAME,
    JOB_PACKAGE_NAME,
    MAIN_SCRIPT_NAME,
    MAINTAIN_SCRIPT_NAME,
    TLS_CERTIFICATES_KEY,
    DeployError,
    Target,
)
from operations.job_package import JobPackage
from streaming_job import uris
from streaming_job.config import StreamConfig


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


def stream_inputs(target: Target, config: StreamConfig, version: str, env_version: str) -> list[str]:
    """The objects the stream needs in S3 before it starts, on either compute (its PCA is a prefix)."""
    return [
        target.code_uri(version, JOB_PACKAGE_NAME),
        target.env_uri(env_version),
        target.code_uri(version, MAIN_SCRIPT_NAME),
        config.featurizer,
    ]
