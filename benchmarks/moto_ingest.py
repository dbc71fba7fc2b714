"""The ingest Lambda's real handler under moto: the one setup the benchmarks that run it share.

`benchmarks.ingest_bench` times the handler and `benchmarks.unit_costs` counts its S3 calls; both need
the same thing: fake credentials, both buckets in moto, the Lambda's code root on `sys.path`, `app`
imported fresh inside the mock (its module-level clients bind to moto), a Lambda context, S3 events
as S3 sends them, and the handler's JSON logs and EMF lines kept off the benchmark's output.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

REGION = "eu-west-3"
METADATA = {
    "user-id": "bench-user",
    "captured-at": "2025-06-13T18:47:53+02:00",
    "lat": "45.76",
    "lon": "4.84",
}


@dataclass
class LambdaContext:
    """What the handler reads of the Lambda runtime's context object."""

    aws_request_id: str = "bench"
    function_name: str = "IngestFunction"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:123456789012:function:IngestFunction"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@dataclass
class MotoIngest:
    """Inside `moto_ingest`: a boto3 S3 client on moto, and the Lambda module once `load_app` ran."""

    s3: Any

    def load_app(self) -> ModuleType:
        """Import `app` afresh, so its S3 client is made inside the mock."""
        sys.modules.pop("app", None)
        return importlib.import_module("app")


def lambda_source_dir() -> Path:
    """Folder holding app.py (the Lambda's code root), found from the installed fruits_ingest package."""
    import fruits_ingest

    source = Path(fruits_ingest.__file__).resolve().parents[1]
    if not (source / "app.py").is_file():
        raise FileNotFoundError(f"app.py not found next to fruits_ingest in {source}")
    return source


@contextlib.contextmanager
def moto_ingest(
    uploads_bucket: str,
    lake_bucket: str,
    pseudonym_key: str,
    *,
    versioned_uploads: bool = False,
    extra_env: dict[str, str] | None = None,
) -> Iterator[MotoIngest]:
    """Both buckets in moto and the Lambda's environment set; `app` is dropped again on the way out."""
    from moto import mock_aws

    environ = {
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "LAKE_URI": f"s3://{lake_bucket}",
        "PSEUDONYM_KEY": pseudonym_key,
        **(extra_env or {}),
    }
    with mock.patch.dict(os.environ, environ), mock_aws(), quiet_stdout(), _lambda_code_on_path():
        import boto3

        s3 = boto3.client("s3")
        for bucket in (uploads_bucket, lake_bucket):
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        if versioned_uploads:
            s3.put_bucket_versioning(Bucket=uploads_bucket, VersioningConfiguration={"Status": "Enabled"})
        try:
            yield MotoIngest(s3=s3)
        finally:
            sys.modules.pop("app", None)


def s3_event(bucket: str, key: str, etag: str, size: int) -> dict[str, Any]:
    """An S3 ObjectCreated:Put notification for one object, as S3 sends it (key URL-encoded)."""
    from urllib.parse import quote_plus

    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": REGION,
                "eventTime": "2025-06-14T09:21:37.512Z",
                "eventName": "ObjectCreated:Put",
                "userIdentity": {"principalId": "AWS:BENCH"},
                "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                "responseElements": {"x-amz-request-id": uuid.uuid4().hex[:16], "x-amz-id-2": "bench"},
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "bench",
                    "bucket": {
                        "name": bucket,
                        "ownerIdentity": {"principalId": "BENCH"},
                        "arn": f"arn:aws:s3:::{bucket}",
                    },
                    "object": {
                        "key": quote_plus(key, safe="/"),
                        "size": size,
                        "eTag": etag,
                        "sequencer": "01",
                    },
                },
            }
        ]
    }


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """The handler prints JSON logs and EMF metrics; keep them out of the benchmark's own output."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


@contextlib.contextmanager
def _lambda_code_on_path() -> Iterator[None]:
    source = str(lambda_source_dir())
    added = source not in sys.path
    if added:
        sys.path.insert(0, source)
    try:
        yield
    finally:
        if added:
            sys.path.remove(source)
