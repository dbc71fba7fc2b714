"""Every event in events/, run through the ingest handler the way `sam local invoke` runs it.

`sam local invoke IngestFunction -e events/<file> --env-vars events/local-env.json` starts the function
with the template's environment (Globals merged, parameters at their defaults) overridden by the file.
Here the same environment meets moto: a versioned uploads bucket holding the real photos the events
announce, the lake bucket, and the pseudonymisation key as an SSM SecureString. Each event must take
a production path: identity from the `uploads/<sub>/<hex>.jpg` key the upload API issues, a clean image
and a manifest line per accepted upload, a quarantine record with its reason for the cut upload.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import boto3
import pytest
from fruits_ingest.identity import subject_from_key

from fruits_core import contracts
from operations import sample_events
from tests.infra.cfn_template import INGEST_TEMPLATE, function_properties, load_template

from .helpers import EVENTS_DIR, PERSONAL_METADATA, LambdaContext, cold_start, load_event, with_versions

PSEUDONYM_KEY = "5f2b9c0e7d4a1f6b8e3c2a9d0b7f4e1c6a8d3b5f0e2c9a7d4b1f8e6c3a0d5b2f"
DT = "2025-06-14"
ANNOUNCING = {**sample_events.DIRECT_EVENTS, **sample_events.SQS_EVENTS}
EVENT_FILES = [*sorted(ANNOUNCING), sample_events.TEST_EVENT_FILE]


def _local_env() -> dict[str, str]:
    local_env = EVENTS_DIR / sample_events.LOCAL_ENV_FILE
    return json.loads(local_env.read_text(encoding="utf-8"))["IngestFunction"]


def sam_local_environment() -> dict[str, str]:
    """IngestFunction's environment under `sam local invoke --env-vars events/local-env.json`."""
    template = load_template(INGEST_TEMPLATE)
    variables = function_properties(template, "IngestFunction")["Environment"]["Variables"]
    overrides = _local_env()
    environment = {}
    for name, value in variables.items():
        if name in overrides:
            environment[name] = overrides[name]
        elif isinstance(value, str):
            environment[name] = value
        elif isinstance(value, dict) and value.get("Ref") in template["Parameters"]:
            environment[name] = str(template["Parameters"][value["Ref"]]["Default"])
        else:
            raise AssertionError(f"{name} names a stack resource: events/local-env.json must set it")
    return environment


def test_the_committed_events_are_what_the_generator_writes():
    # GIVEN events/ and operations/sample_events.py WHEN compared THEN no file drifted
    assert sample_events.drifted() == [], "run: python -m operations.sample_events --write"


def test_local_env_sets_only_variables_the_function_declares():
    # `sam local invoke` silently ignores an --env-vars entry the template does not declare
    template = load_template(INGEST_TEMPLATE)
    declared = function_properties(template, "IngestFunction")["Environment"]["Variables"]
    assert set(_local_env()) <= set(declared)
    # AND the identity comes from the key, as deployed (the file does not switch it off)
    assert sam_local_environment()["IDENTITY_FROM_KEY"] == "true"


@pytest.mark.parametrize("upload", sample_events.SAMPLE_UPLOADS, ids=lambda u: u.image)
def test_every_announced_key_is_one_the_upload_api_issues(upload):
    # GIVEN a sample upload WHEN its key is read as the ingest reads it THEN it names its subject
    assert subject_from_key(upload.key) == upload.subject
    assert upload.key.startswith(contracts.upload_prefix(upload.subject))


@pytest.fixture
def dev_stack(mocked_aws) -> dict[str, Any]:
    """The dev stack's buckets and key parameter in moto, with every sample upload put by the app."""
    environment = sam_local_environment()
    s3 = boto3.client("s3")
    lake_bucket = environment["LAKE_URI"].removeprefix("s3://").split("/", 1)[0]
    for bucket in (environment["UPLOADS_BUCKET"], lake_bucket):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-3"})
    s3.put_bucket_versioning(
        Bucket=environment["UPLOADS_BUCKET"], VersioningConfiguration={"Status": "Enabled"}
    )
    boto3.client("ssm").put_parameter(
        Name=environment["PSEUDONYM_KEY_PARAMETER"], Type="SecureString", Value=PSEUDONYM_KEY
    )
    versions = {}
    for upload in sample_events.SAMPLE_UPLOADS:
        response = s3.put_object(
            Bucket=environment["UPLOADS_BUCKET"],
            Key=upload.key,
            Body=upload.body(),
            ContentType="image/jpeg",
            Metadata=PERSONAL_METADATA,
        )
        versions[upload.key] = response["VersionId"]
    return {"environment": environment, "s3": s3, "lake_bucket": lake_bucket, "versions": versions}


def _lake(stack: dict[str, Any]) -> dict[str, bytes]:
    s3, bucket = stack["s3"], stack["lake_bucket"]
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
    return {key: s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}


def _announced(name: str) -> tuple[sample_events.SampleUpload, ...]:
    return ANNOUNCING.get(name, ())


@pytest.mark.parametrize("name", EVENT_FILES)
def test_sam_local_invoke_of_each_event_takes_a_production_path(dev_stack, monkeypatch, name):
    # GIVEN the function cold-started with sam local's environment, and the committed event naming the
    # versions S3 gave the uploads (S3 draws them: the one edit a real `sam local invoke` needs too)
    app = cold_start(dev_stack["environment"], monkeypatch)
    event = with_versions(load_event(name), dev_stack["versions"])

    # WHEN the handler runs on it
    response = app.lambda_handler(event, LambdaContext())

    # THEN no message fails, and each announced upload has the outcome the sample states
    uploads = _announced(name)
    if event["Records"][0]["eventSource"] == "aws:sqs":
        assert response == {"batchItemFailures": []}
    else:
        accepted = sum(u.expected == sample_events.ACCEPTED for u in uploads)
        assert (response["accepted"], response["quarantined"]) == (accepted, len(uploads) - accepted)
    lake = _lake(dev_stack)
    if not uploads:  # the s3:TestEvent: nothing written
        assert lake == {}
        return
    manifest_objects = [body for key, body in lake.items() if key.startswith(contracts.MANIFESTS_PREFIX)]
    lines = [json.loads(line) for body in manifest_objects for line in body.splitlines()]
    manifests = {line["image_id"]: line for line in lines}
    for upload in uploads:
        image_id = contracts.image_id(dev_stack["environment"]["UPLOADS_BUCKET"], upload.key, "")
        pseudonym = hmac.new(PSEUDONYM_KEY.encode(), upload.subject.encode(), hashlib.sha256).hexdigest()
        if upload.expected == sample_events.ACCEPTED:
            manifest = manifests[image_id]
            clean = lake[contracts.clean_image_key(DT, image_id)]
            assert manifest["image_uri"].endswith(contracts.clean_image_key(DT, image_id))
            assert hashlib.sha256(clean).hexdigest() == manifest["content_sha256"]
            assert manifest["subject_id"] == pseudonym  # from the key's subject, not the user-id metadata
        else:
            record = json.loads(lake[contracts.quarantine_key(DT, image_id)])
            assert record["reason"] == upload.expected
            assert record["subject_id"] == pseudonym
            assert image_id not in manifests
    # AND nothing personal of the event or the upload reached the lake: not the uploader's address,
    # not the subject's id, not the identifying metadata the app sent
    personal = ("user-id", "device-id", "captured-at", "lat", "lon")
    secrets = [sample_events.UPLOADER_IP, *(u.subject for u in uploads)]
    secrets += [PERSONAL_METADATA[name] for name in personal]
    for key, body in lake.items():
        for secret in secrets:
            assert secret not in key and secret.encode() not in body, f"{secret!r} in {key}"
