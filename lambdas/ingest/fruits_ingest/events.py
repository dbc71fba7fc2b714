"""Turn Lambda events (SQS-wrapped S3 notifications, direct S3 events) into object references.

Parsing uses the Powertools parser models. Keys arrive URL-encoded (`+` for a
space, `%xx` for other bytes) and are decoded here, once. Validation errors are
re-raised without the event's content: pydantic messages quote the input,
which holds object keys.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from urllib.parse import unquote_plus

from aws_lambda_powertools.utilities.parser.models import S3Model, S3RecordModel
from pydantic import BaseModel, ValidationError

from fruits_core import contracts
from fruits_core.lake_uris import s3_uri

EventKind = Literal["sqs", "s3"]
OBJECT_CREATED_PREFIX = "ObjectCreated:"


class UnsupportedEvent(ValueError):
    """The Lambda was invoked with an event that is neither SQS nor S3."""


class PoisonMessage(ValueError):
    """An SQS message body is not an S3 notification: retrying cannot help, it belongs in the DLQ."""


class S3TestEventModel(BaseModel):
    """What S3 sends to a queue once, when the notification is configured."""

    Service: str
    Event: Literal["s3:TestEvent"]
    Bucket: str | None = None


@dataclass(frozen=True)
class ObjectRef:
    """One uploaded object version, as announced by an event (key already decoded)."""

    bucket: str
    key: str
    uri: str
    event_time: datetime
    etag: str | None = None
    version_id: str | None = None
    size: int | None = None
    sequencer: str | None = None

    @property
    def version(self) -> str:
        """What identifies this version for `image_id`: the version id if versioned, else the ETag."""
        return self.version_id or self.etag or ""

    @property
    def image_id(self) -> str:
        return contracts.image_id(self.bucket, self.key, self.version)


def classify_event(event: Any) -> EventKind:
    """`sqs` for an SQS batch, `s3` for a direct S3 notification (what `sam local invoke` sends)."""
    records = event.get("Records") if isinstance(event, dict) else None
    if not records or not isinstance(records, list) or not isinstance(records[0], dict):
        raise UnsupportedEvent("event has no Records: expected an SQS batch or an S3 notification")
    source = records[0].get("eventSource")
    if source == "aws:sqs":
        return "sqs"
    if source == "aws:s3":
        return "s3"
    raise UnsupportedEvent(f"unsupported eventSource {str(source)[:40]!r}: expected aws:sqs or aws:s3")


def refs_from_s3_event(event: dict[str, Any]) -> list[ObjectRef]:
    """Object references of the ObjectCreated records of a direct S3 event (other records are ignored)."""
    try:
        model = S3Model.model_validate(event)
    # The Powertools model's own pre-validator trips over some shapes with plain Python errors.
    except (ValidationError, AttributeError, TypeError, KeyError) as error:
        raise PoisonMessage(f"not an S3 event notification ({type(error).__name__})") from None
    return [
        _ref(record)
        for record in model.Records
        if record.eventName.startswith(OBJECT_CREATED_PREFIX) and record.s3.object is not None
    ]


def refs_from_sqs_body(body: str) -> list[ObjectRef]:
    """Object references in one SQS message body; an `s3:TestEvent` yields none."""
    try:
        payload = json.loads(body)
    except (TypeError, ValueError):
        raise PoisonMessage("message body is not JSON") from None
    if is_s3_test_event(payload):
        return []
    return refs_from_s3_event(payload)


def is_s3_test_event(payload: Any) -> bool:
    try:
        S3TestEventModel.model_validate(payload)
    except ValidationError:
        return False
    return True


def _ref(record: S3RecordModel) -> ObjectRef:
    s3_object = record.s3.object
    bucket = record.s3.bucket.name
    key = unquote_plus(s3_object.key)
    return ObjectRef(
        bucket=bucket,
        key=key,
        uri=s3_uri(bucket, key),
        event_time=record.eventTime,
        etag=(s3_object.eTag or "").strip('"') or None,
        version_id=s3_object.versionId or None,
        size=int(s3_object.size) if s3_object.size is not None else None,
        sequencer=s3_object.sequencer,
    )
