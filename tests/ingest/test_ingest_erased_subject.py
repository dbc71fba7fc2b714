"""The Lambda drops the uploads of an erased subject (a live tombstone) on moto S3, and only those."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from fruits_core import contracts
from fruits_core.tombstones import tombstone_record

from .helpers import (
    LAKE_BUCKET,
    LAKE_URI,
    PERSONAL_METADATA,
    TEST_PSEUDONYM_KEY,
    cold_start,
    failed_ids,
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
    event = aws.event("sqs-s3-notification.json")
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
    event = aws.event("sqs-s3-notification.json")
    # WHEN the uploads are handled THEN each is accepted (a clean image each, one manifest line each)
    assert failed_ids(app.lambda_handler(event, lambda_context)) == []
    written = [key for key in aws.lake_keys() if key != tombstone]
    assert len(written) == len(event["Records"]) + 1
    assert len(aws.manifests()) == len(event["Records"])


def _cold_start(monkeypatch):
    """A container started after the test's hooks were registered (clients made at import see them)."""
    return cold_start({"LAKE_URI": LAKE_URI, "PSEUDONYM_KEY": TEST_PSEUDONYM_KEY}, monkeypatch)


def _lake_versions(aws) -> list[str]:
    """Every stored version and delete marker in the lake (an erasure must leave none behind)."""
    listing = aws.s3.list_object_versions(Bucket=LAKE_BUCKET)
    return sorted(entry["Key"] for entry in [*listing.get("Versions", []), *listing.get("DeleteMarkers", [])])


def _erase_at(aws, operation: str, key_part: str, occurrence: int) -> list:
    """Run the first pass of `fruits subject erase` (tombstone, then delete what it finds) for the
    uploader once, just before the ingest's `occurrence`-th S3 `operation` on a key containing
    `key_part` (a hook, so the erasure lands exactly between two steps of the ingest). Returns the
    started erasures: the test runs the pass after the settle period once the ingest returned."""
    from fruits_privacy.pseudonyms import HeldKey, pseudonyms_of
    from fruits_privacy.subjects import NoTables, begin_erasure

    seen: list[str] = []
    erasures: list = []

    def erase(params, **_) -> None:
        if erasures or key_part not in params.get("Key", ""):
            return
        seen.append(params["Key"])
        if len(seen) < occurrence:
            return
        erasures.append(None)
        keys = [HeldKey(TEST_PSEUDONYM_KEY.encode(), None)]
        pseudonyms = pseudonyms_of(PERSONAL_METADATA["user-id"], keys)
        erasures[0] = begin_erasure(_lake_objects(), NoTables(), pseudonyms)

    aws.on_session(f"before-parameter-build.s3.{operation}", erase)
    return erasures


def _lake_objects():
    from fruits_privacy.lake_objects import S3LakeObjects

    return S3LakeObjects(boto3.client("s3"), LAKE_BUCKET, LAKE_PREFIX.rstrip("/"))


def _settle_and_finish(erasures: list) -> None:
    """What `fruits subject erase` does after its settle period (the ingest has returned by now)."""
    from fruits_privacy.subjects import NoTables, finish_erasure

    finish_erasure(_lake_objects(), NoTables(), erasures[0], "test")


# The ingest's S3 calls for one upload (uploader from the metadata): HEAD, download, one tombstone
# check, decode, PUT clean image; after the batch: PUT the manifest object (uploads bucket unversioned).
# The erasure's first pass runs before one of these steps; its second pass after the ingest returned.
@pytest.mark.parametrize(
    ("operation", "key_part", "occurrence"),
    [
        ("GetObject", "uploads/", 1),
        ("GetObject", "/tombstones/", 1),
        ("PutObject", "/clean/", 1),
        ("PutObject", "/clean/", 2),
        ("PutObject", "/manifests/", 1),
    ],
    ids=[
        "before-the-download",
        "before-the-check",
        "between-check-and-image",
        "between-the-two-uploads-images",
        "before-the-manifest-object",
    ],
)
def test_an_erasure_landing_mid_upload_wins(
    aws, monkeypatch, lambda_context, seed_event_uploads, operation, key_part, occurrence
):
    # GIVEN the batch's uploads in flight, and an erasure of their uploader whose first pass runs at
    # one step of the ingest
    seed_event_uploads()
    erasures = _erase_at(aws, operation, key_part, occurrence)
    app = _cold_start(monkeypatch)
    # WHEN the uploads are handled, then the erasure's pass after the settle period runs
    response = app.lambda_handler(aws.event("sqs-s3-notification.json"), lambda_context)
    assert erasures and failed_ids(response) == []
    _settle_and_finish(erasures)
    # THEN no version of an image or manifest is left
    left = [key for key in _lake_versions(aws) if "/clean/" in key or "/manifests/" in key]
    assert left == []


def test_the_first_pass_alone_misses_an_upload_past_its_check(
    aws, monkeypatch, lambda_context, seed_event_uploads
):
    # The control: what the second pass is for. The first pass runs between check and image write,
    # and the upload's image and manifest are stored after it.
    seed_event_uploads()
    erasures = _erase_at(aws, "PutObject", "/clean/", 1)
    app = _cold_start(monkeypatch)
    assert failed_ids(app.lambda_handler(aws.event("sqs-s3-notification.json"), lambda_context)) == []
    assert erasures
    assert [key for key in _lake_versions(aws) if "/clean/" in key or "/manifests/" in key]


def test_without_an_erasure_the_hooked_upload_is_stored(aws, monkeypatch, lambda_context, seed_event_uploads):
    # The control: the same hook on another subject's key erases nothing, and the upload is stored
    seed_event_uploads()
    assert _erase_at(aws, "GetObject", "no-such-key", 1) == []
    app = _cold_start(monkeypatch)
    assert failed_ids(app.lambda_handler(aws.event("sqs-s3-notification.json"), lambda_context)) == []
    stored = [key for key in _lake_versions(aws) if "/clean/" in key or "/manifests/" in key]
    # a clean image per upload and the batch's one manifest object
    assert len(stored) == len(aws.event("sqs-s3-notification.json")["Records"]) + 1


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
    response = app.lambda_handler(aws.event("sqs-s3-notification.json"), lambda_context)
    assert failed_ids(response) == []
    assert aws.lake_keys() == [tombstone]


def test_an_erased_subjects_retry_removes_what_an_interrupted_try_left(
    aws, app, lambda_context, seed_event_uploads
):
    # GIVEN an earlier try stored the clean image and died, then the uploader was erased
    seed_event_uploads()
    first = app.lambda_handler(aws.event("sqs-s3-notification.json"), lambda_context)
    assert first and aws.lake_keys()
    manifest = next(key for key in aws.lake_keys() if "/manifests/" in key)
    aws.s3.delete_object(Bucket=LAKE_BUCKET, Key=manifest)  # the erasure's scan found no manifest
    tombstone = _tombstone(aws, datetime.now(UTC))
    # WHEN the message is delivered again THEN it is dropped and the orphan clean image removed
    assert failed_ids(app.lambda_handler(aws.event("sqs-s3-notification.json"), lambda_context)) == []
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
    _settle_and_finish(erasures)
    assert [k for k in _lake_versions(aws) if "/quarantine/" in k] == []
