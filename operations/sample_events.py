"""The sample Lambda events in `events/`, written by one script so they keep the production shape.

What the deployed ingest receives: the app POSTs a photo to the presigned URL the upload API issued
for `uploads/<sub>/<32 hex>.<ext>` (so S3 reports `ObjectCreated:Post`), the versioned uploads bucket
notifies the ingest queue, and Lambda's SQS poller hands the function batches of messages whose body
is that notification (with the object's version id, ETag, size and the uploader's IP address, which
the ingest never copies). `sam local invoke -e events/s3-put.json` sends the notification directly.

The uploads are real images of `data/fruits360-sample` (ETag and size computed from their bytes);
tests/ingest/test_ingest_sample_events.py puts them in moto and runs the handler on every event.

    python -m operations.sample_events --write   # rewrite events/*.json
    python -m operations.sample_events --check   # exit 1 if a committed event differs (CI, tests)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

from fruits_core import contracts

REPO_ROOT = Path(__file__).resolve().parents[1]
EVENTS_DIR = REPO_ROOT / "events"
IMAGES_DIR = REPO_ROOT / "data" / "fruits360-sample"

# The dev stack of samconfig.toml (stack fruits-ingest-dev), in a documentation account id.
REGION = "eu-west-3"
ACCOUNT = "123456789012"
UPLOADS_BUCKET = f"fruits-dev-uploads-{ACCOUNT}-{REGION}"
LAKE_BUCKET = f"fruits-dev-lake-{ACCOUNT}-{REGION}"
# CloudFormation names the queue (template.yaml gives it no QueueName).
QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:fruits-ingest-dev-IngestQueue-7kQ2xW9vLm3R"
PSEUDONYM_KEY_PARAMETER = "/fruits/dev/pseudonym-key"
# The upload API's role session signs the POST, so S3 names it as the requester.
UPLOAD_API_PRINCIPAL = "AWS:AROA3XFRBF23EXAMPLE:fruits-dev-upload-api"
# The phone's address (TEST-NET-2, RFC 5737): personal data that must never leave the event.
UPLOADER_IP = "198.51.100.23"
OWNER_ID = "A3NL1KOZZKExample"

# Two app users (Cognito subs), as the JWT authorizer passes them to the upload API.
SUBJECT_A = "3f0c8a52-7d1e-4b6a-9c2f-5e8d1a7b4c90"
SUBJECT_B = "b84e2c17-0a9d-4f35-8e6b-2d7c9f1a3e58"
ACCEPTED = "accepted"


@dataclass(frozen=True)
class SampleUpload:
    """One upload an event announces: where the app put it and what the ingest must make of it."""

    subject: str
    name: str  # the 32 hex digits the upload API drew
    image: str  # a real photo under data/fruits360-sample
    version_id: str
    event_time: str
    sequencer: str
    # Bytes kept of the photo (None: all of it). A cut JPEG is what a phone losing its connection sends.
    keep_bytes: int | None = None
    expected: str = ACCEPTED  # "accepted" or the quarantine reason

    @property
    def key(self) -> str:
        return f"{contracts.upload_prefix(self.subject)}{self.name}.jpg"

    def body(self, images_dir: Path = IMAGES_DIR) -> bytes:
        data = (images_dir / self.image).read_bytes()
        return data if self.keep_bytes is None else data[: self.keep_bytes]


APPLE = SampleUpload(
    SUBJECT_A,
    "9b1f4c3e2a7d4e0f8c6b5a4d3e2f1a0b",
    "apple/0_100.jpg",
    "Wq3.n7xY8zK1dL5mP2rT9vB4cF6hJ0sA",
    "2025-06-14T09:21:37.512Z",
    "0066A8D0E77DE42BC5",
)
LEMON = SampleUpload(
    SUBJECT_A,
    "4d8e2f6a1c3b4a5d9e7f0b2c4d6e8f1a",
    "lemon/0_100.jpg",
    "Hk2uV7pQ0yR4tZ8wN1xM6cL3bG9fD5sE",
    "2025-06-14T09:22:05.031Z",
    "0066A8D0E77DE42BD1",
)
MANGO = SampleUpload(
    SUBJECT_B,
    "e1c7a9b3d5f24e6a8b0c2d4f6a8b0c2e",
    "mango/13_100.jpg",
    "Zt6yQ1wE5rT9uI3oP7aS2dF4gH8jK0lX",
    "2025-06-14T09:22:41.870Z",
    "0066A8D0E77DE42BE7",
)
CUT_RASPBERRY = SampleUpload(
    SUBJECT_B,
    "7a2c4e6f8b0d1a3c5e7f9b1d3f5a7c9e",
    "raspberry/0_100.jpg",
    "Mn8bV2cX6zL0kJ4hG9fD3sA7qW1eR5tY",
    "2025-06-14T09:23:12.204Z",
    "0066A8D0E77DE42C03",
    keep_bytes=1024,
    expected=contracts.QuarantineReason.CORRUPT_IMAGE.value,
)
SAMPLE_UPLOADS = (APPLE, LEMON, MANGO, CUT_RASPBERRY)

# events/<file> -> the uploads it announces (a direct S3 event, or one SQS message each).
DIRECT_EVENTS = {"s3-put.json": (APPLE,)}
SQS_EVENTS = {
    "sqs-s3-notification.json": (LEMON, MANGO),
    "sqs-s3-corrupt-upload.json": (CUT_RASPBERRY,),
}
TEST_EVENT_FILE = "sqs-s3-test-event.json"
LOCAL_ENV_FILE = "local-env.json"


def s3_record(upload: SampleUpload, images_dir: Path = IMAGES_DIR) -> dict[str, Any]:
    """The S3 notification record of one presigned POST to the versioned uploads bucket."""
    body = upload.body(images_dir)
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": REGION,
        "eventTime": upload.event_time,
        "eventName": "ObjectCreated:Post",
        "userIdentity": {"principalId": UPLOAD_API_PRINCIPAL},
        "requestParameters": {"sourceIPAddress": UPLOADER_IP},
        "responseElements": {
            "x-amz-request-id": hashlib.sha256(upload.name.encode()).hexdigest()[:16].upper(),
            "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD",
        },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "ZmRmNmQ0ZjMtNjI4Yy00ZWM4LWIzNDEtYzA0ZDA1ZGY4YzE0",
            "bucket": {
                "name": UPLOADS_BUCKET,
                "ownerIdentity": {"principalId": OWNER_ID},
                "arn": f"arn:aws:s3:::{UPLOADS_BUCKET}",
            },
            "object": {
                "key": quote_plus(upload.key, safe="/"),
                "size": len(body),
                # A single-part upload's ETag is the MD5 of its bytes.
                "eTag": hashlib.md5(body).hexdigest(),  # noqa: S324 (S3's ETag, not a security use)
                "versionId": upload.version_id,
                "sequencer": upload.sequencer,
            },
        },
    }


def sqs_record(message_id: str, body: str, sent_ms: int) -> dict[str, Any]:
    """One SQS message as Lambda's poller passes it to the function."""
    return {
        "messageId": message_id,
        "receiptHandle": f"AQEB{hashlib.sha256(message_id.encode()).hexdigest()}",
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": str(sent_ms),
            "SenderId": "AIDAJHIPRHEMV73VRJEBU",
            "ApproximateFirstReceiveTimestamp": str(sent_ms + 3),
        },
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(body.encode()).hexdigest(),  # noqa: S324 (SQS's own checksum)
        "eventSource": "aws:sqs",
        "eventSourceARN": QUEUE_ARN,
        "awsRegion": REGION,
    }


def _message_id(seed: str) -> str:
    digest = hashlib.sha256(seed.encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-4{digest[13:16]}-8{digest[17:20]}-{digest[20:32]}"


def _sent_ms(event_time: str) -> int:
    return int(datetime.fromisoformat(event_time.replace("Z", "+00:00")).timestamp() * 1000) + 90


def events(images_dir: Path = IMAGES_DIR) -> dict[str, Any]:
    """Every file of events/ by name, as the generator writes it."""
    written: dict[str, Any] = {
        name: {"Records": [s3_record(upload, images_dir) for upload in uploads]}
        for name, uploads in DIRECT_EVENTS.items()
    }
    for name, uploads in SQS_EVENTS.items():
        written[name] = {
            "Records": [
                sqs_record(
                    _message_id(upload.name),
                    json.dumps({"Records": [s3_record(upload, images_dir)]}, separators=(",", ":")),
                    _sent_ms(upload.event_time),
                )
                for upload in uploads
            ]
        }
    # What S3 sends the queue once, when the notification is configured.
    test_body = {
        "Service": "Amazon S3",
        "Event": "s3:TestEvent",
        "Time": "2025-06-14T09:00:00.000Z",
        "Bucket": UPLOADS_BUCKET,
        "RequestId": "5582815E1AEA5ADF",
        "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE",
    }
    written[TEST_EVENT_FILE] = {
        "Records": [
            sqs_record(
                _message_id("s3:TestEvent"), json.dumps(test_body, separators=(",", ":")), 1749891600000
            )
        ]
    }
    # `sam local invoke --env-vars`: what the template takes from the stack's resources, for the dev stack.
    written[LOCAL_ENV_FILE] = {
        "IngestFunction": {
            "LAKE_URI": f"s3://{LAKE_BUCKET}",
            "UPLOADS_BUCKET": UPLOADS_BUCKET,
            "PSEUDONYM_KEY_PARAMETER": PSEUDONYM_KEY_PARAMETER,
            "POWERTOOLS_LOG_LEVEL": "DEBUG",
        }
    }
    return written


def render(document: Any) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def drifted(events_dir: Path = EVENTS_DIR) -> list[str]:
    """Names of the event files whose committed text differs from what the generator writes."""
    return [
        name
        for name, document in events().items()
        if not (events_dir / name).is_file()
        or (events_dir / name).read_text(encoding="utf-8") != render(document)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m operations.sample_events", description=(__doc__ or "").split("\n")[0]
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="rewrite events/*.json")
    mode.add_argument("--check", action="store_true", help="exit 1 if a committed event differs")
    args = parser.parse_args(argv)
    if args.check:
        stale = drifted()
        for name in stale:
            print(f"events/{name} differs from the generator: run python -m operations.sample_events --write")
        return 1 if stale else 0
    for name, document in events().items():
        (EVENTS_DIR / name).write_text(render(document), encoding="utf-8")
        print(f"wrote events/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
