"""One corpus case through the real handler: upload, announce, tamper, handle, check the one outcome.

Shared by the pytest corpus (the dev pins) and `lambda_pins_corpus` (the Lambda's own pins), so both
check exactly the same things. Plain asserts: it runs with or without pytest.
"""

from __future__ import annotations

import io
import json
from types import ModuleType
from typing import Any

from PIL import Image

from fruits_core import contracts

from .bad_inputs import Case
from .helpers import LAKE_URI, UPLOADS_BUCKET, Aws, failed_ids, sqs_event

LAKE_PREFIX = LAKE_URI.split("/", 3)[3] + "/"


def run_case(aws: Aws, app: ModuleType, context: Any, case: Case, photo: bytes, other_photo: bytes) -> None:
    """Raise AssertionError unless `case` ends as it expects, with no failed message."""
    data = case.make(photo)
    if case.then == "delete-versioned":
        aws.s3.put_bucket_versioning(Bucket=UPLOADS_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    put = aws.s3.put_object(Bucket=UPLOADS_BUCKET, Key=case.key, Body=data, Metadata=case.metadata)
    etag = put["ETag"].strip('"')
    event = sqs_event([(case.key, etag, len(data))], version_id=put.get("VersionId"))
    image_id = contracts.image_id(UPLOADS_BUCKET, case.key, put.get("VersionId") or etag)
    _tamper(aws, case, other_photo)

    response = app.lambda_handler(event, context)

    assert failed_ids(response) == []
    dt = json.loads(event["Records"][0]["body"])["Records"][0]["eventTime"][:10]
    written = aws.lake_keys()
    if case.skip is not None:
        assert written == []
    elif case.reason is None:
        manifest = aws.lake_json(LAKE_PREFIX + contracts.manifest_key(dt, image_id))
        assert manifest["format"] == case.expected_format
        assert (manifest["width"], manifest["height"]) == case.expected_size
        assert manifest["label"] == case.expected_label
        clean = aws.lake_object(manifest["image_uri"].split("/", 3)[3])
        _assert_clean_rgb_jpeg(clean, case.expected_size)
        assert written == sorted(
            [
                LAKE_PREFIX + contracts.clean_image_key(dt, image_id),
                LAKE_PREFIX + contracts.manifest_key(dt, image_id),
            ]
        )
    else:
        record = aws.lake_json(LAKE_PREFIX + contracts.quarantine_key(dt, image_id))
        assert record["reason"] == case.reason.value, record
        assert record["detail"]
        assert written == [LAKE_PREFIX + contracts.quarantine_key(dt, image_id)]


def _tamper(aws: Aws, case: Case, other_photo: bytes) -> None:
    """What happens to the object between its event and the function's run."""
    if case.then in ("delete", "delete-versioned"):
        aws.s3.delete_object(Bucket=UPLOADS_BUCKET, Key=case.key)
    elif case.then == "overwrite":
        aws.upload(case.key, other_photo)


def _assert_clean_rgb_jpeg(data: bytes, size: tuple[int, int]) -> None:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG"
        assert image.mode == "RGB"
        assert image.size == size
        assert not image.getexif()
        assert "icc_profile" not in image.info
        assert "comment" not in image.info
    assert b"Exif" not in data and b"ICC_PROFILE" not in data and b"Jane" not in data
