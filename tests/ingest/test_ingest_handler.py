"""The Lambda handler end to end against moto S3/SSM, driven by the committed events in events/."""

from __future__ import annotations

import hashlib
import hmac
import io
import json

import pytest
from fruits_ingest.config import ConfigError
from PIL import Image

from fruits_core import contracts
from operations import sample_events

from .helpers import (
    LAKE_URI,
    PERSONAL_METADATA,
    TEST_PSEUDONYM_KEY,
    UPLOADS_BUCKET,
    cold_start,
    fail_s3_calls,
    failed_ids,
    heal_s3,
    load_event,
    object_key_of,
    sqs_event,
)

LAKE_PREFIX = LAKE_URI.split("/", 3)[3] + "/"
DT = "2025-06-14"  # the day of the eventTime in events/*.json


def _expected_id(record: dict) -> str:
    notification = json.loads(record["body"])["Records"][0]["s3"]
    return contracts.image_id(UPLOADS_BUCKET, object_key_of(record), notification["object"]["eTag"])


def test_sqs_event_accepts_both_uploads_with_decoded_keys(aws, app, lambda_context, seed_event_uploads):
    # GIVEN the uploads announced by events/sqs-s3-notification.json (keys the upload API issues)
    seed_event_uploads()
    event = aws.event("sqs-s3-notification.json")

    # WHEN the function handles the SQS batch
    response = app.lambda_handler(event, lambda_context)

    # THEN no message failed and each upload has a manifest v1 pointing at an existing clean image
    assert response == {"batchItemFailures": []}
    for record in event["Records"]:
        manifest = aws.manifest(_expected_id(record))
        assert list(manifest) == contracts.field_names(contracts.MANIFEST_FIELDS)
        assert manifest["image_id"] == _expected_id(record)
        clean = aws.lake_object(manifest["image_uri"].split("/", 3)[3])
        assert hashlib.sha256(clean).hexdigest() == manifest["content_sha256"]
        assert manifest["bytes"] == len(clean)
        event_time = json.loads(record["body"])["Records"][0]["eventTime"]
        assert manifest["uploaded_at"] == event_time[:13] + ":00:00.000Z"  # truncated to the hour


def test_direct_s3_put_event_writes_anonymized_manifest(aws, app, lambda_context, seed_event_uploads):
    # GIVEN the upload of events/s3-put.json, with personal metadata
    seed_event_uploads()
    event = aws.event("s3-put.json")
    record = event["Records"][0]["s3"]

    # WHEN the function is invoked directly with the S3 event (as `sam local invoke` does)
    response = app.lambda_handler(event, lambda_context)

    # THEN the manifest holds only the anonymized values DESIGN.md allows
    image_id = contracts.image_id(UPLOADS_BUCKET, sample_events.APPLE.key, record["object"]["eTag"])
    assert response == {"accepted": 1, "quarantined": 0, "skipped": 0, "image_ids": [image_id]}
    manifest = aws.lake_json(LAKE_PREFIX + contracts.manifest_key(DT, image_id))
    expected_subject = hmac.new(
        TEST_PSEUDONYM_KEY.encode(), PERSONAL_METADATA["user-id"].encode(), hashlib.sha256
    ).hexdigest()
    assert manifest["subject_id"] == expected_subject
    assert manifest["region"] == "u09t"  # Paris, geohash precision 4
    assert manifest["captured_hour"] == "2025-06-13T16:00:00.000Z"  # 18:47:53+02:00, truncated
    assert manifest["label"] == "red-apple"
    assert manifest["app_version"] == "2.3.1"
    assert manifest["key_version"] is None  # a key from the environment has no version
    assert manifest["format"] == "jpeg"
    assert (manifest["width"], manifest["height"]) == (100, 100)
    assert manifest["image_uri"] == f"{LAKE_URI}/{contracts.clean_image_key(DT, image_id)}"


def test_s3_test_event_is_ignored(aws, app, lambda_context):
    # GIVEN the s3:TestEvent S3 sends when the notification is configured
    event = load_event("sqs-s3-test-event.json")
    # WHEN it is handled
    response = app.lambda_handler(event, lambda_context)
    # THEN the message succeeds and nothing is written
    assert response == {"batchItemFailures": []}
    assert aws.lake_keys() == []


def test_redelivered_event_rewrites_the_same_keys(aws, app, lambda_context, seed_event_uploads):
    # GIVEN a batch already processed once
    seed_event_uploads()
    event = aws.event("sqs-s3-notification.json")
    app.lambda_handler(event, lambda_context)
    first_keys = aws.lake_keys()
    first_manifests = aws.manifests()

    # WHEN SQS delivers the same messages again (at-least-once delivery)
    app.lambda_handler(event, lambda_context)

    # THEN the same keys are rewritten with the same content: two clean images, one manifest object
    # for the batch, no duplicate line
    assert aws.lake_keys() == first_keys
    assert len(first_keys) == 3
    assert len(aws.manifest_keys()) == 1
    for image_id, first in first_manifests.items():
        again = aws.manifest(image_id)
        assert {**again, "ingested_at": None} == {**first, "ingested_at": None}


def test_transient_s3_failure_fails_only_that_message(aws, app, lambda_context, seed_event_uploads):
    # GIVEN a batch of two uploads where S3 throttles every read of the lemon
    seed_event_uploads()
    event = aws.event("sqs-s3-notification.json")
    lemon, mango = event["Records"]
    fail_s3_calls(app.S3_CLIENT, "GetObject", sample_events.LEMON.key)

    # WHEN the batch is handled
    response = app.lambda_handler(event, lambda_context)

    # THEN only the lemon's message is reported for retry; the mango is accepted, alone in the
    # batch's manifest object
    assert failed_ids(response) == [lemon["messageId"]]
    mango_id = _expected_id(mango)
    batch_key = contracts.manifest_group_key(DT, [_expected_id(lemon), mango_id])
    assert aws.lake_keys() == sorted(
        [LAKE_PREFIX + contracts.clean_image_key(DT, mango_id), LAKE_PREFIX + batch_key]
    )
    assert list(aws.manifests()) == [mango_id]

    # WHEN S3 recovers and SQS redelivers the failed message
    heal_s3(app.S3_CLIENT, "GetObject")
    retry = app.lambda_handler({"Records": [lemon]}, lambda_context)

    # THEN it is accepted: the upload was never lost
    assert failed_ids(retry) == []
    aws.manifest(_expected_id(lemon))


def test_failed_manifest_write_is_retried_and_no_manifest_is_left(
    aws, app, lambda_context, seed_event_uploads
):
    # GIVEN the lake rejects writes of manifests (HTTP 500)
    seed_event_uploads()
    event = aws.event("s3-put.json")
    fail_s3_calls(app.S3_CLIENT, "PutObject", ".json", code="InternalError", status=500)

    # WHEN the direct S3 event is handled
    # THEN the invocation fails (Lambda retries it) with a message that names no key
    with pytest.raises(Exception, match=r"S3 PutObject failed \(InternalError, HTTP 500\)") as raised:
        app.lambda_handler(event, lambda_context)
    assert "apple" not in str(raised.value)
    assert not any(key.endswith(".json") for key in aws.lake_keys())


def test_poison_message_fails_alone(aws, app, lambda_context, seed_event_uploads):
    # GIVEN a batch with one message that is not an S3 notification
    seed_event_uploads()
    event = aws.event("sqs-s3-notification.json")
    event["Records"][0]["body"] = "{not json"

    # WHEN the batch is handled
    response = app.lambda_handler(event, lambda_context)

    # THEN that message is reported (SQS moves it to the DLQ after maxReceiveCount), the other succeeds
    assert failed_ids(response) == [event["Records"][0]["messageId"]]
    assert len(aws.lake_keys()) == 2


def _skipped_metrics(blobs: list[dict]) -> list[tuple[str, list[float]]]:
    return [(b["Reason"], b["Skipped"]) for b in blobs if "Reason" in b and "Skipped" in b]


def _emf_blobs(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if '"_aws"' in line]


def test_vanished_upload_is_skipped_and_counted_not_retried(aws, app, lambda_context, capsys):
    # GIVEN a notification for an object that does not exist (deleted or expired before processing)
    event = sqs_event([("uploads/Jane Doe IMG_0001.jpg", "0123456789abcdef0123456789abcdef", 1234)])
    capsys.readouterr()
    # WHEN it is handled
    response = app.lambda_handler(event, lambda_context)
    # THEN the message succeeds (no retry, no DLQ), nothing is written, and the skip is counted
    assert failed_ids(response) == []
    assert aws.lake_keys() == []
    out = capsys.readouterr()
    assert _skipped_metrics(_emf_blobs(out.out)) == [("upload_missing", [1.0])]
    assert "Jane" not in out.out + out.err


def test_delete_marker_means_the_user_deleted_the_photo(aws, app, lambda_context):
    # GIVEN a versioned bucket where the announced version is hidden by a delete marker
    aws.s3.put_bucket_versioning(Bucket=UPLOADS_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    photo = _photo()
    version = aws.s3.put_object(Bucket=UPLOADS_BUCKET, Key="uploads/deleted.jpg", Body=photo)["VersionId"]
    aws.s3.delete_object(Bucket=UPLOADS_BUCKET, Key="uploads/deleted.jpg")
    event = _with_version(sqs_event([("uploads/deleted.jpg", "etag", len(photo))]), [version])
    # WHEN it is handled THEN it is skipped: the photo is not ingested and the message is not retried
    assert failed_ids(app.lambda_handler(event, lambda_context)) == []
    assert aws.lake_keys() == []


def test_overwritten_upload_is_not_stored_twice(aws, app, lambda_context, sample_image_paths):
    # GIVEN an unversioned bucket where one key was uploaded twice, with two notifications
    key = "uploads/overwritten.jpg"
    first, second = (path.read_bytes() for path in sample_image_paths[:2])
    first_etag = aws.upload(key, first)
    second_etag = aws.upload(key, second)
    event = sqs_event([(key, first_etag, len(first)), (key, second_etag, len(second))])
    # WHEN both are handled
    response = app.lambda_handler(event, lambda_context)
    # THEN only the second content is stored, under its own id; the first event is skipped
    assert failed_ids(response) == []
    manifests = [aws.lake_json(k) for k in aws.lake_keys() if k.startswith(f"{LAKE_PREFIX}manifests/")]
    assert [m["image_id"] for m in manifests] == [contracts.image_id(UPLOADS_BUCKET, key, second_etag)]


def test_object_overwritten_between_head_and_get_is_skipped(aws, app, lambda_context, sample_image_paths):
    # GIVEN an upload replaced right after the function's HEAD, before its GET
    key = "uploads/raced.jpg"
    first, second = (path.read_bytes() for path in sample_image_paths[:2])
    etag = aws.upload(key, first)
    app.S3_CLIENT.meta.events.register("after-call.s3.HeadObject", lambda **_: aws.upload(key, second))
    # WHEN the event for the first content is handled
    response = app.lambda_handler(sqs_event([(key, etag, len(first))]), lambda_context)
    # THEN the conditional GET notices the change: skipped, nothing stored, no retry
    assert failed_ids(response) == []
    assert aws.lake_keys() == []


def test_record_is_not_started_without_enough_time_left(aws, app, lambda_context, seed_event_uploads):
    # GIVEN a batch of two uploads and an invocation with time for one record only
    seed_event_uploads()
    event = aws.event("sqs-s3-notification.json")
    first, second = event["Records"]
    remaining = iter([60_000, 10_000])
    lambda_context.get_remaining_time_in_millis = lambda: next(remaining)
    # WHEN the batch is handled
    response = app.lambda_handler(event, lambda_context)
    # THEN the first is accepted and only the second goes back to the queue
    assert failed_ids(response) == [second["messageId"]]
    aws.manifest(_expected_id(first))


def _with_version(event: dict, version_ids: list[str]) -> dict:
    for record, version_id in zip(event["Records"], version_ids, strict=True):
        body = json.loads(record["body"])
        body["Records"][0]["s3"]["object"]["versionId"] = version_id
        record["body"] = json.dumps(body)
    return event


def test_versioned_bucket_uses_version_id_for_identity(aws, app, lambda_context, sample_image_paths):
    # GIVEN a versioned uploads bucket holding two versions of the same key
    aws.s3.put_bucket_versioning(Bucket=UPLOADS_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    key = "uploads/same-name.jpg"
    versions = []
    for path in sample_image_paths[:2]:
        data = path.read_bytes()
        response = aws.s3.put_object(Bucket=UPLOADS_BUCKET, Key=key, Body=data)
        versions.append((response["VersionId"], data))
    event = _with_version(sqs_event([(key, "ignored-etag", 1)] * 2), [v for v, _ in versions])

    # WHEN both notifications are handled
    response = app.lambda_handler(event, lambda_context)

    # THEN each version is read and stored under its own image_id
    assert failed_ids(response) == []
    for version_id, data in versions:
        image_id = contracts.image_id(UPLOADS_BUCKET, key, version_id)
        manifest = aws.manifest(image_id)
        with Image.open(io.BytesIO(data)) as original:
            assert (manifest["width"], manifest["height"]) == original.size
    assert len({manifest["content_sha256"] for manifest in aws.manifests().values()}) == 2


def test_metrics_count_outcomes_by_reason(aws, app, lambda_context, capsys):
    # GIVEN one good and one empty upload
    photo = _photo()
    event = sqs_event(
        [
            ("uploads/good.jpg", aws.upload("uploads/good.jpg", photo), len(photo)),
            ("uploads/empty.jpg", aws.upload("uploads/empty.jpg", b""), 0),
        ]
    )
    capsys.readouterr()

    # WHEN the batch is handled
    app.lambda_handler(event, lambda_context)

    # THEN EMF metrics report one acceptance, one quarantine, and the quarantine by its reason
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    by_reason = [b for b in blobs if "Reason" in b]
    totals = next(b for b in blobs if "Accepted" in b)
    assert totals["Accepted"] == [1.0] and totals["Quarantined"] == [1.0]
    assert totals["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Fruits/Ingest"
    assert [(b["Reason"], b["Quarantined"], b["service"]) for b in by_reason] == [
        ("empty_file", [1.0], "ingest")
    ]
    assert len(totals["ProcessingTime"]) == 2


def _photo() -> bytes:
    image = Image.new("RGB", (64, 64), (200, 30, 40))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG")
    return buffer.getvalue()


def test_pseudonym_key_is_read_from_ssm_once_per_container(
    aws, monkeypatch, lambda_context, seed_event_uploads
):
    # GIVEN the key in an SSM SecureString and a container configured with its name only
    seed_event_uploads()
    ssm_key = "ssm-held-pseudonym-key-abcdefghijklmnop"
    aws.ssm.put_parameter(Name="/fruits/ingest/pseudonym-key", Value=ssm_key, Type="SecureString")
    reads = []
    aws.on_session("before-call.ssm.GetParameterHistory", lambda **_: reads.append(1))
    app = cold_start(
        {"LAKE_URI": LAKE_URI, "PSEUDONYM_KEY_PARAMETER": "/fruits/ingest/pseudonym-key"}, monkeypatch
    )

    # WHEN the container handles two invocations
    app.lambda_handler(aws.event("s3-put.json"), lambda_context)
    app.lambda_handler(aws.event("sqs-s3-notification.json"), lambda_context)

    # THEN SSM was read once, and subject_id is the HMAC under the SSM key
    assert len(reads) == 1
    manifests = list(aws.manifests().values())
    expected = hmac.new(ssm_key.encode(), PERSONAL_METADATA["user-id"].encode(), hashlib.sha256).hexdigest()
    assert len(manifests) == 3
    assert {m["subject_id"] for m in manifests} == {expected}
    assert {m["key_version"] for m in manifests} == {"1"}


def test_missing_ssm_parameter_fails_the_invocation_clearly(
    aws, monkeypatch, lambda_context, seed_event_uploads
):
    # GIVEN a container pointing at an SSM parameter that does not exist
    seed_event_uploads()
    app = cold_start({"LAKE_URI": LAKE_URI, "PSEUDONYM_KEY_PARAMETER": "/fruits/missing"}, monkeypatch)
    # WHEN it is invoked THEN it fails before touching any record, naming the parameter
    with pytest.raises(ConfigError, match=r"/fruits/missing.*ParameterNotFound"):
        app.lambda_handler(aws.event("sqs-s3-notification.json"), lambda_context)
    assert aws.lake_keys() == []


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"PSEUDONYM_KEY": TEST_PSEUDONYM_KEY}, "LAKE_URI is required"),
        ({"LAKE_URI": "https://example.com/lake", "PSEUDONYM_KEY": TEST_PSEUDONYM_KEY}, "LAKE_URI must be"),
        ({"LAKE_URI": LAKE_URI}, "PSEUDONYM_KEY_PARAMETER"),
        ({"LAKE_URI": LAKE_URI, "PSEUDONYM_KEY": "short"}, "at least 16 bytes"),
        (
            {"LAKE_URI": LAKE_URI, "PSEUDONYM_KEY": TEST_PSEUDONYM_KEY, "MAX_UPLOAD_BYTES": "10MB"},
            "whole number",
        ),
        (
            {"LAKE_URI": LAKE_URI, "PSEUDONYM_KEY": TEST_PSEUDONYM_KEY, "MAX_IMAGE_PIXELS": "0"},
            "between 1 and",
        ),
    ],
)
def test_bad_configuration_fails_the_cold_start(aws, monkeypatch, environ, message):
    # GIVEN an invalid environment WHEN a container starts THEN the import fails with a clear message
    with pytest.raises(ConfigError, match=message):
        cold_start(environ, monkeypatch)


def test_unsupported_event_shape_is_a_clear_error(app, lambda_context):
    # GIVEN an API Gateway-like event WHEN handled THEN the error says what was expected
    with pytest.raises(ValueError, match="expected an SQS batch or an S3 notification"):
        app.lambda_handler({"httpMethod": "GET"}, lambda_context)


def test_s3_uploads_can_feed_a_file_lake(aws, monkeypatch, lambda_context, seed_event_uploads, tmp_path):
    # GIVEN a container whose lake is a local directory (e.g. `sam local invoke` with LAKE_URI=file://...)
    seed_event_uploads()
    app = cold_start({"LAKE_URI": f"file://{tmp_path}", "PSEUDONYM_KEY": TEST_PSEUDONYM_KEY}, monkeypatch)
    # WHEN the direct S3 event is handled
    response = app.lambda_handler(aws.event("s3-put.json"), lambda_context)
    # THEN the upload is read from S3 and the outputs land in the directory, with file:// URIs
    (image_id,) = response["image_ids"]
    manifest = json.loads((tmp_path / contracts.manifest_key(DT, image_id)).read_text())
    assert manifest["image_uri"] == f"file://{tmp_path}/{contracts.clean_image_key(DT, image_id)}"
    assert (tmp_path / contracts.clean_image_key(DT, image_id)).is_file()
    assert aws.lake_keys() == []
