"""One manifest object per SQS batch, raw uploads deleted once stored, redeliveries skipped (moto S3)."""

from __future__ import annotations

import json

from fruits_core import contracts

from .helpers import LAKE_BUCKET, UPLOADS_BUCKET, fail_s3_calls, failed_ids, heal_s3, sqs_event


def _versioned_uploads(aws, sample_image_paths, count: int) -> list[tuple[str, str]]:
    """`count` uploads in a versioned bucket (as template.yaml's): (key, version id) each."""
    aws.s3.put_bucket_versioning(Bucket=UPLOADS_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    uploads = []
    for index, path in enumerate(sample_image_paths[:count]):
        key = f"uploads/photo-{index}.jpg"
        response = aws.s3.put_object(
            Bucket=UPLOADS_BUCKET, Key=key, Body=path.read_bytes(), Metadata={"user-id": "someone"}
        )
        uploads.append((key, response["VersionId"]))
    return uploads


def _event(uploads: list[tuple[str, str]], receive_count: int = 1) -> dict:
    records = []
    for key, version_id in uploads:
        (record,) = sqs_event([(key, "ignored-etag", 1)], version_id=version_id)["Records"]
        record["attributes"]["ApproximateReceiveCount"] = str(receive_count)
        records.append(record)
    return {"Records": records}


def _upload_versions(aws) -> list[str]:
    return [v["VersionId"] for v in aws.s3.list_object_versions(Bucket=UPLOADS_BUCKET).get("Versions", [])]


def test_a_batch_writes_one_manifest_object_then_deletes_its_uploads(
    aws, app, lambda_context, sample_image_paths
):
    # GIVEN three uploads in a versioned bucket, announced in one SQS batch
    uploads = _versioned_uploads(aws, sample_image_paths, 3)
    # WHEN the batch is handled
    assert failed_ids(app.lambda_handler(_event(uploads), lambda_context)) == []
    # THEN the lake holds three clean images and one JSON-lines object with their three manifests
    (manifest_key,) = aws.manifest_keys()
    assert manifest_key.endswith(contracts.MANIFEST_GROUP_SUFFIX)
    lines = aws.lake_object(manifest_key).decode().splitlines()
    assert len(lines) == len(aws.manifests()) == 3
    assert all(json.loads(line)["schema_version"] == contracts.MANIFEST_SCHEMA_VERSION for line in lines)
    # AND each clean image names that object in its metadata
    for manifest in aws.manifests().values():
        head = aws.s3.head_object(Bucket=LAKE_BUCKET, Key=manifest["image_uri"].split("/", 3)[3])
        assert manifest_key.endswith(head["Metadata"][contracts.MANIFEST_GROUP_METADATA])
    # AND every upload version is gone: no delete marker either, nothing left for the lifecycle rule
    listing = aws.s3.list_object_versions(Bucket=UPLOADS_BUCKET)
    assert listing.get("Versions", []) == [] and listing.get("DeleteMarkers", []) == []


def test_a_failed_message_keeps_its_upload_and_its_redrive_stores_it(
    aws, app, lambda_context, sample_image_paths
):
    # GIVEN a batch of two where every read of the second upload fails
    uploads = _versioned_uploads(aws, sample_image_paths, 2)
    event = _event(uploads)
    fail_s3_calls(app.S3_CLIENT, "GetObject", "photo-1.jpg")
    # WHEN it is handled
    response = app.lambda_handler(event, lambda_context)
    # THEN only that message fails, the first is stored and deleted, the failed one's upload is kept
    assert failed_ids(response) == [event["Records"][1]["messageId"]]
    assert _upload_versions(aws) == [uploads[1][1]]
    assert len(aws.manifests()) == 1
    # WHEN S3 recovers and the message comes back (a retry, or a redrive from the DLQ)
    heal_s3(app.S3_CLIENT, "GetObject")
    retry = app.lambda_handler(_event(uploads[1:], receive_count=2), lambda_context)
    # THEN it is stored and its upload deleted: both images have exactly one manifest line
    assert failed_ids(retry) == []
    assert len(aws.manifests()) == 2
    assert _upload_versions(aws) == []


def test_a_failed_manifest_object_fails_every_message_in_it_and_keeps_the_uploads(
    aws, app, lambda_context, sample_image_paths
):
    # GIVEN a batch of two whose manifest object cannot be written
    uploads = _versioned_uploads(aws, sample_image_paths, 2)
    event = _event(uploads)
    fail_s3_calls(
        app.S3_CLIENT, "PutObject", contracts.MANIFEST_GROUP_SUFFIX, code="InternalError", status=500
    )
    # WHEN it is handled THEN both messages go back to the queue and no upload was deleted
    response = app.lambda_handler(event, lambda_context)
    assert sorted(failed_ids(response)) == sorted(record["messageId"] for record in event["Records"])
    assert sorted(_upload_versions(aws)) == sorted(version for _, version in uploads)
    assert aws.manifest_keys() == []


def test_a_redelivered_upload_already_stored_is_skipped_not_duplicated(
    aws, app, lambda_context, sample_image_paths
):
    # GIVEN a batch of two stored, whose upload deletions failed (as if the attempt had died before them)
    uploads = _versioned_uploads(aws, sample_image_paths, 3)
    fail_s3_calls(app.S3_CLIENT, "DeleteObject", ".jpg", code="InternalError", status=500)
    assert failed_ids(app.lambda_handler(_event(uploads[:2]), lambda_context)) == []
    heal_s3(app.S3_CLIENT, "DeleteObject")
    assert len(_upload_versions(aws)) == 3
    # WHEN SQS redelivers both messages, now batched with a third upload (another batch, another key)
    response = app.lambda_handler(_event(uploads, receive_count=2), lambda_context)
    # THEN nothing fails, the two stored uploads are skipped (their clean images name a stored object),
    # the third is stored in the new object, and every upload is deleted
    assert failed_ids(response) == []
    assert len(aws.manifests()) == 3  # one line per image: aws.manifests() refuses a second
    assert len(aws.manifest_keys()) == 2
    assert _upload_versions(aws) == []
