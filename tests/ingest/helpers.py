"""Helpers of the ingest tests: moto handles, Lambda context, events built from events/*.json."""

from __future__ import annotations

import copy
import hashlib
import importlib
import json
import os
import sys
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote_plus, unquote, unquote_plus

import boto3
import pytest
from botocore.awsrequest import AWSResponse

from operations import sample_events

REGION = "eu-west-3"
UPLOADS_BUCKET = sample_events.UPLOADS_BUCKET  # the bucket named in events/*.json
LAKE_BUCKET = "fruits-lake-example"
LAKE_URI = f"s3://{LAKE_BUCKET}/lake"
TEST_PSEUDONYM_KEY = "test-only-pseudonym-key-0123456789"
REPO_ROOT = Path(__file__).resolve().parents[2]
EVENTS_DIR = REPO_ROOT / "events"

# Personal metadata of the uploads named in events/*.json: distinctive values, so a test can
# search every output and log line for them.
PERSONAL_METADATA = {
    "user-id": "jane.doe-4711@example.org",
    "device-id": "SM-G991B-R58N90XYZQ",
    "captured-at": "2025-06-13T18:47:53+02:00",
    "lat": "48.856613",
    "lon": "2.352222",
    "label": "Red Apple",
    "app-version": "2.3.1",
}
# Each upload the events in events/ announce (operations/sample_events.py writes both).
EVENT_UPLOADS = sample_events.SAMPLE_UPLOADS


@dataclass
class LambdaContext:
    """The attributes Powertools reads from a Lambda context."""

    function_name: str = "IngestFunction"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:123456789012:function:IngestFunction"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@lru_cache(maxsize=1)
def shared_session() -> boto3.Session:
    return boto3.Session(region_name=REGION)


@dataclass
class Aws:
    """Handles on the moto world of one test."""

    s3: Any
    session_events: Any
    _hooks: list[tuple[str, str]] = field(default_factory=list)
    # key -> the version id S3 gave the last upload under it (None in an unversioned bucket)
    versions: dict[str, str | None] = field(default_factory=dict)

    @property
    def ssm(self) -> Any:
        return boto3.client("ssm")

    def on_session(self, event_name: str, handler: Callable[..., Any]) -> None:
        """Register a botocore hook for clients created from now on; removed when the test ends."""
        unique_id = f"test-hook-{len(self._hooks)}"
        self.session_events.register(event_name, handler, unique_id=unique_id)
        self._hooks.append((event_name, unique_id))

    def remove_session_hooks(self) -> None:
        for event_name, unique_id in self._hooks:
            self.session_events.unregister(event_name, unique_id=unique_id)
        self._hooks.clear()

    def upload(self, key: str, data: bytes, metadata: Mapping[str, str] | None = None) -> str:
        """PUT like the mobile app; return the ETag the S3 notification would carry."""
        response = self.s3.put_object(
            Bucket=UPLOADS_BUCKET, Key=key, Body=data, Metadata=dict(metadata or {})
        )
        self.versions[key] = response.get("VersionId")
        return response["ETag"].strip('"')

    def event(self, name: str) -> dict[str, Any]:
        """A committed event naming the versions S3 gave this test's uploads, as a real notification
        would (S3 draws version ids; without versioning the notification carries none)."""
        return with_versions(load_event(name), self.versions)

    def lake_keys(self) -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=LAKE_BUCKET)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def lake_object(self, key: str) -> bytes:
        return self.s3.get_object(Bucket=LAKE_BUCKET, Key=key)["Body"].read()

    def lake_json(self, key: str) -> dict[str, Any]:
        return json.loads(self.lake_object(key))

    def manifest_keys(self) -> list[str]:
        return [key for key in self.lake_keys() if "/manifests/" in f"/{key}"]

    def manifests(self) -> dict[str, dict[str, Any]]:
        """Every stored manifest line by image_id, whatever object (single or batch) holds it."""
        lines = [line for key in self.manifest_keys() for line in self.lake_object(key).splitlines()]
        records = [json.loads(line) for line in lines]
        by_id = {record["image_id"]: record for record in records}
        assert len(by_id) == len(records), "an image has two manifest lines"
        return by_id

    def manifest(self, image_id: str) -> dict[str, Any]:
        return self.manifests()[image_id]


def cold_start(
    environ: Mapping[str, str], monkeypatch: pytest.MonkeyPatch, module: str = "app"
) -> ModuleType:
    """Import a handler module afresh, as a new Lambda container would, with the given environment."""
    for name in (
        "LAKE_URI",
        "PSEUDONYM_KEY",
        "PSEUDONYM_KEY_PARAMETER",
        "MAX_UPLOAD_BYTES",
        "MAX_IMAGE_PIXELS",
        "PSEUDONYM_KEY_TTL_SECONDS",
        "RECORD_TIME_BUDGET_MS",
        "LABEL_VOCABULARY_FILE",
        "IDENTITY_FROM_KEY",
        "UPLOADS_BUCKET",
        "PRESIGN_EXPIRES_SECONDS",
        "UPLOAD_QUOTA_TABLE",
        "DAILY_UPLOAD_QUOTA",
        "MODEL_URL_EXPIRES_SECONDS",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    sys.modules.pop(module, None)
    return importlib.import_module(module)


def module_env(**extra: str) -> dict[str, str]:
    """Environment for `python -m tests.ingest.<module>` in a subprocess: the pytest pythonpath."""
    paths = [str(REPO_ROOT / "lambdas" / "ingest"), str(REPO_ROOT)]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), **extra}


def fail_s3_calls(
    client: Any, operation: str, key_suffix: str, code: str = "SlowDown", status: int = 503
) -> None:
    """Make `client`'s `operation` on keys ending in `key_suffix` fail like a throttled or broken S3."""

    def respond_with_error(params: dict[str, Any], **_: Any) -> Any:
        if not unquote(params["url_path"]).endswith(key_suffix):
            return None
        error = {"Code": code, "Message": "injected transient failure"}
        return AWSResponse(params["url"], status, {}, None), {
            "Error": error,
            "ResponseMetadata": {"HTTPStatusCode": status},
        }

    client.meta.events.register_first(f"before-call.s3.{operation}", respond_with_error, unique_id="fail-s3")


def heal_s3(client: Any, operation: str) -> None:
    client.meta.events.unregister(f"before-call.s3.{operation}", unique_id="fail-s3")


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS_DIR / name).read_text(encoding="utf-8"))


def with_versions(event: dict[str, Any], versions: Mapping[str, str | None]) -> dict[str, Any]:
    """`event` (direct S3 or SQS) with each announced object's versionId set from `versions`."""
    event = copy.deepcopy(event)

    def rewrite(notification: dict[str, Any]) -> None:
        for record in notification["Records"]:
            s3_object = record["s3"]["object"]
            version = versions.get(unquote_plus(s3_object["key"]))
            if version:
                s3_object["versionId"] = version
            else:
                s3_object.pop("versionId", None)

    for record in event["Records"]:
        if record.get("eventSource") == "aws:sqs":
            notification = json.loads(record["body"])
            if "Records" in notification:
                rewrite(notification)
                record["body"] = json.dumps(notification)
                record["md5OfBody"] = hashlib.md5(record["body"].encode()).hexdigest()  # noqa: S324
        else:
            rewrite({"Records": [record]})
    return event


def sqs_event(uploads: list[tuple[str, str, int]], version_id: str | None = None) -> dict[str, Any]:
    """An SQS batch shaped like events/sqs-s3-notification.json, one message per (key, etag, size)."""
    template = load_event("sqs-s3-notification.json")["Records"][0]
    records = []
    for key, etag, size in uploads:
        notification = json.loads(template["body"])
        s3_object = notification["Records"][0]["s3"]["object"]
        s3_object.update({"key": quote_plus(key, safe="/"), "eTag": etag, "size": size})
        if version_id:
            s3_object["versionId"] = version_id
        else:
            s3_object.pop("versionId", None)  # an unversioned bucket's notification
        record = copy.deepcopy(template)
        record["messageId"] = str(uuid.uuid4())
        record["body"] = json.dumps(notification)
        record["md5OfBody"] = hashlib.md5(record["body"].encode()).hexdigest()  # noqa: S324 (SQS uses MD5)
        records.append(record)
    return {"Records": records}


def failed_ids(response: dict[str, Any]) -> list[str]:
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


def object_key_of(record: dict[str, Any]) -> str:
    """Decoded object key announced by one SQS record of an S3 notification."""
    return unquote_plus(json.loads(record["body"])["Records"][0]["s3"]["object"]["key"])
