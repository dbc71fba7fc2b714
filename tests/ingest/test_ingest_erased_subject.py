"""The Lambda drops the uploads of an erased subject (a live tombstone) on moto S3, and only those."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import boto3
import botocore.exceptions
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from fruits_core import contracts
from fruits_core.tombstones import tombstone_record

from .helpers import (
    LAKE_BUCKET,
    LAKE_URI,
    PERSONAL_METADATA,
    TEST_PSEUDONYM_KEY,
    cold_start,
    failed_ids,
    load_event,
    sqs_event,
)
from .test_ingest_handler import _emf_blobs, _skipped_metrics

LAKE_PREFIX = LAKE_URI.split("/", 3)[3] + "/"


def _tombstone(aws, erased_at: datetime) -> str:
    """What `fruits subject erase` writes for the uploader of the committed events."""
    person = PERSONAL_METADATA[contracts.META_USER_ID]
    pseudonym = hmac.new(TEST_PSEUDONYM_KEY.encode(), person.encode(), hashlib.sha256).hexdigest()
    key = LAKE_PREFIX + contracts.tombstone_key(pseudonym)
    aws.s3.put_object(Bucket=LAKE_BUCKET, Key=key, Body=json.dumps(tombstone_record(erased_at)))
    return key


def test_uploads_of_an_erased_subject_leave_no_record_and_are_counted(
    aws, app, lambda_context, seed_event_uploads, capsys
):
    # GIVEN the uploader of the committed events was erased yesterday
    seed_event_uploads()
    tombstone = _tombstone(aws, datetime.now(UTC) - timedelta(days=1))
    event = load_event("sqs-s3-notification.json")
    capsys.readouterr()
    # WHEN their uploads (still in flight) are handled
    response = app.lambda_handler(event, lambda_context)
    # THEN the messages succeed (no retry), nothing but the tombstone is in the lake, the drops are counted
    assert failed_ids(response) == []
    assert aws.lake_keys() == [tombstone]
    out = capsys.readouterr()
    assert _skipped_metrics(_emf_blobs(out.out)) == [("subject_erased", [1.0])] * len(event["Records"])
    assert PERSONAL_METADATA[contracts.META_USER_ID] not in out.out + out.err


def test_after_the_grace_period_the_subject_uploads_again(aws, app, lambda_context, seed_event_uploads):
    # GIVEN an erasure older than the default grace period
    seed_event_uploads()
    tombstone = _tombstone(aws, datetime.now(UTC) - timedelta(days=contracts.DEFAULT_ERASURE_GRACE_DAYS + 1))
    event = load_event("sqs-s3-notification.json")
    # WHEN the uploads are handled THEN each is accepted (a clean image and a manifest each)
    assert failed_ids(app.lambda_handler(event, lambda_context)) == []
    written = [key for key in aws.lake_keys() if key != tombstone]
    assert len(written) == 2 * len(event["Records"])


def _cold_start(monkeypatch):
    """A container started after the test's hooks were registered (clients made at import see them)."""
    return cold_start({"LAKE_URI": LAKE_URI, "PSEUDONYM_KEY": TEST_PSEUDONYM_KEY}, monkeypatch)


def _lake_versions(aws) -> list[str]:
    """Every stored version and delete marker in the lake (an erasure must leave none behind)."""
    listing = aws.s3.list_object_versions(Bucket=LAKE_BUCKET)
    return sorted(entry["Key"] for entry in [*listing.get("Versions", []), *listing.get("DeleteMarkers", [])])


def _erase_at(aws, operation: str, key_part: str, occurrence: int) -> list[str]:
    """Run `fruits subject erase`'s own code for the uploader once, just before the ingest's
    `occurrence`-th S3 `operation` on a key containing `key_part` (a hook, so the erasure lands
    exactly between two steps of the ingest)."""
    from fruits_privacy.lake_objects import S3LakeObjects
    from fruits_privacy.pseudonyms import HeldKey, pseudonyms_of
    from fruits_privacy.subjects import NoTables, erase_subject

    seen: list[str] = []
    erasures: list[str] = []

    def erase(params, **_) -> None:
        if erasures or key_part not in params.get("Key", ""):
            return
        seen.append(params["Key"])
        if len(seen) < occurrence:
            return
        erasures.append(params["Key"])
        lake = S3LakeObjects(boto3.client("s3"), LAKE_BUCKET, LAKE_PREFIX.rstrip("/"))
        keys = [HeldKey(TEST_PSEUDONYM_KEY.encode(), None)]
        erase_subject(lake, NoTables(), pseudonyms_of(PERSONAL_METADATA["user-id"], keys), "test")

    aws.on_session(f"before-parameter-build.s3.{operation}", erase)
    return erasures


# The ingest's S3 calls for one upload (uploader from the metadata): HEAD, download, tombstone check,
# decode, check, PUT clean image, check, PUT manifest, check. The erasure runs before each step
# from the download on (the old ingest, which checked once, kept the upload in the last four).
@pytest.mark.parametrize(
    ("operation", "key_part", "occurrence"),
    [
        ("GetObject", "uploads/", 1),
        ("GetObject", "/tombstones/", 2),
        ("PutObject", "/clean/", 1),
        ("GetObject", "/tombstones/", 3),
        ("PutObject", "/manifests/", 1),
        ("GetObject", "/tombstones/", 4),
    ],
    ids=[
        "before-the-first-check",
        "before-the-check-before-the-image",
        "between-check-and-image",
        "after-the-image",
        "between-check-and-manifest",
        "after-the-manifest",
    ],
)
def test_an_erasure_landing_mid_upload_wins(
    aws, monkeypatch, lambda_context, seed_event_uploads, operation, key_part, occurrence
):
    # GIVEN one upload in flight, and an erasure of its uploader that runs at one step of the ingest
    seed_event_uploads()
    erasures = _erase_at(aws, operation, key_part, occurrence)
    app = _cold_start(monkeypatch)
    # WHEN the upload is handled
    response = app.lambda_handler(load_event("sqs-s3-notification.json"), lambda_context)
    # THEN the erasure ran, the message succeeded, and no version of the image or manifest is left
    assert erasures and failed_ids(response) == []
    left = [key for key in _lake_versions(aws) if "/clean/" in key or "/manifests/" in key]
    assert left == []


def test_without_an_erasure_the_hooked_upload_is_stored(aws, monkeypatch, lambda_context, seed_event_uploads):
    # The control: the same hook on another subject's key erases nothing, and the upload is stored
    seed_event_uploads()
    assert _erase_at(aws, "GetObject", "no-such-key", 1) == []
    app = _cold_start(monkeypatch)
    assert failed_ids(app.lambda_handler(load_event("sqs-s3-notification.json"), lambda_context)) == []
    stored = [key for key in _lake_versions(aws) if "/clean/" in key or "/manifests/" in key]
    assert len(stored) == 2 * len(load_event("sqs-s3-notification.json")["Records"])


def test_a_tombstone_written_before_a_key_rotation_still_refuses(
    aws, monkeypatch, lambda_context, seed_event_uploads
):
    # GIVEN the key in SSM, an erasure under it (version 1), then a rotation (version 2)
    seed_event_uploads()
    parameter = "/fruits/ingest/pseudonym-key"
    aws.ssm.put_parameter(Name=parameter, Value=TEST_PSEUDONYM_KEY, Type="SecureString")
    tombstone = _tombstone(aws, datetime.now(UTC) - timedelta(days=1))
    aws.ssm.put_parameter(
        Name=parameter, Value="rotated-pseudonym-key-0123456789ab", Type="SecureString", Overwrite=True
    )
    app = cold_start({"LAKE_URI": LAKE_URI, "PSEUDONYM_KEY_PARAMETER": parameter}, monkeypatch)
    # WHEN the same person uploads again THEN the upload is dropped: the old tombstone still holds
    response = app.lambda_handler(load_event("sqs-s3-notification.json"), lambda_context)
    assert failed_ids(response) == []
    assert aws.lake_keys() == [tombstone]


def test_a_failed_manifest_write_leaves_no_orphan_clean_image(
    aws, monkeypatch, lambda_context, seed_event_uploads
):
    # GIVEN the manifest write fails (S3 error) after the clean image was stored
    seed_event_uploads()

    def refuse_manifest(params, **_):
        if "/manifests/" in params.get("Key", ""):
            raise botocore.exceptions.EndpointConnectionError(endpoint_url="https://s3")

    aws.on_session("before-parameter-build.s3.PutObject", refuse_manifest)
    app = _cold_start(monkeypatch)
    # WHEN the upload is handled THEN the message is retried and the clean image is gone again
    with pytest.raises(BatchProcessingError, match="All records failed"):
        app.lambda_handler(load_event("sqs-s3-notification.json"), lambda_context)
    assert aws.lake_keys() == []


def test_an_erased_subjects_retry_removes_what_an_interrupted_try_left(
    aws, app, lambda_context, seed_event_uploads
):
    # GIVEN an earlier try stored the clean image and died, then the uploader was erased
    seed_event_uploads()
    first = app.lambda_handler(load_event("sqs-s3-notification.json"), lambda_context)
    assert first and aws.lake_keys()
    manifest = next(key for key in aws.lake_keys() if "/manifests/" in key)
    aws.s3.delete_object(Bucket=LAKE_BUCKET, Key=manifest)  # the erasure's scan found no manifest
    tombstone = _tombstone(aws, datetime.now(UTC))
    # WHEN the message is delivered again THEN it is dropped and the orphan clean image removed
    assert failed_ids(app.lambda_handler(load_event("sqs-s3-notification.json"), lambda_context)) == []
    assert aws.lake_keys() == [tombstone]


def test_an_erasure_landing_before_a_quarantine_record_wins(
    aws, monkeypatch, lambda_context, sample_images_dir
):
    # GIVEN a broken upload of the person, and their erasure running just before its quarantine record
    key = "uploads/broken.jpg"
    broken = next(sample_images_dir.glob("*/*.jpg")).read_bytes()[:400]
    etag = aws.upload(key, broken, PERSONAL_METADATA)
    erasures = _erase_at(aws, "PutObject", "/quarantine/", 1)
    app = _cold_start(monkeypatch)
    # WHEN it is handled THEN no version of a quarantine record (which names her pseudonym) is left
    response = app.lambda_handler(sqs_event([(key, etag, len(broken))]), lambda_context)
    assert erasures and failed_ids(response) == []
    assert [k for k in _lake_versions(aws) if "/quarantine/" in k] == []
