"""The Lambda drops the uploads of an erased subject (a live tombstone) on moto S3, and only those."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

from fruits_core import contracts
from fruits_core.tombstones import tombstone_record

from .helpers import LAKE_BUCKET, LAKE_URI, PERSONAL_METADATA, TEST_PSEUDONYM_KEY, failed_ids, load_event
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
    # WHEN the uploads are handled THEN each is accepted (a clean image each, one manifest line each)
    assert failed_ids(app.lambda_handler(event, lambda_context)) == []
    written = [key for key in aws.lake_keys() if key != tombstone]
    assert len(written) == len(event["Records"]) + 1
    assert len(aws.manifests()) == len(event["Records"])
