"""Every bad input ends accepted-and-normalized or quarantined with its reason; none fails the batch."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image, ImageStat

from fruits_core import contracts

from .bad_inputs import CORPUS, Case
from .helpers import LAKE_URI, UPLOADS_BUCKET, failed_ids, sqs_event

LAKE_PREFIX = LAKE_URI.split("/", 3)[3] + "/"


def test_corpus_is_large_and_covers_every_reason_code() -> None:
    # GIVEN the corpus WHEN its expected reasons are collected THEN each reason code appears at least once
    assert len(CORPUS) >= 20
    assert {case.reason for case in CORPUS if case.reason} == set(contracts.QuarantineReason)


@pytest.mark.parametrize("case", CORPUS, ids=lambda case: case.id)
def test_bad_input_is_accepted_or_quarantined_never_crashes(
    case: Case, aws, app, lambda_context, sample_image_paths
):
    # GIVEN an upload built from a real sample image, announced by an SQS message
    data = case.make(sample_image_paths[0].read_bytes())
    etag = aws.upload(case.key, data, case.metadata)
    event = sqs_event([(case.key, etag, len(data))])
    image_id = contracts.image_id(UPLOADS_BUCKET, case.key, etag)

    # WHEN the ingest function handles the batch
    response = app.lambda_handler(event, lambda_context)

    # THEN the message succeeds and exactly one outcome record exists, with the expected content
    assert failed_ids(response) == []
    dt = json.loads(event["Records"][0]["body"])["Records"][0]["eventTime"][:10]
    written = aws.lake_keys()
    if case.reason is None:
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
        assert record["reason"] == case.reason.value
        assert record["detail"]
        assert written == [LAKE_PREFIX + contracts.quarantine_key(dt, image_id)]


def _assert_clean_rgb_jpeg(data: bytes, size: tuple[int, int]) -> None:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG"
        assert image.mode == "RGB"
        assert image.size == size
        assert not image.getexif()
        assert "icc_profile" not in image.info
        assert "comment" not in image.info
    assert b"Exif" not in data and b"ICC_PROFILE" not in data and b"Jane" not in data


def test_transparent_pixels_become_white(aws, app, lambda_context, sample_image_paths):
    # GIVEN a PNG whose left half is fully transparent
    case = next(case for case in CORPUS if case.id == "png-with-alpha")
    data = case.make(sample_image_paths[0].read_bytes())
    etag = aws.upload(case.key, data)
    # WHEN it is ingested
    app.lambda_handler(sqs_event([(case.key, etag, len(data))]), lambda_context)
    # THEN the clean image is white where the upload was transparent
    clean_key = next(key for key in aws.lake_keys() if key.endswith(".jpg"))
    with Image.open(io.BytesIO(aws.lake_object(clean_key))) as clean:
        assert min(clean.getpixel((10, 50))) >= 250


def test_16_bit_png_is_scaled_not_clipped(aws, app, lambda_context, sample_image_paths):
    # GIVEN a 16-bit greyscale PNG made from a real photo
    case = next(case for case in CORPUS if case.id == "16-bit-grey-png")
    real = sample_image_paths[0].read_bytes()
    data = case.make(real)
    etag = aws.upload(case.key, data)
    # WHEN it is ingested
    app.lambda_handler(sqs_event([(case.key, etag, len(data))]), lambda_context)
    # THEN the clean image keeps the photo's tones (a clipped conversion would be almost all white)
    clean_key = next(key for key in aws.lake_keys() if key.endswith(".jpg"))
    with (
        Image.open(io.BytesIO(aws.lake_object(clean_key))) as clean,
        Image.open(io.BytesIO(real)) as original,
    ):
        clean_mean = ImageStat.Stat(clean.convert("L")).mean[0]
        original_mean = ImageStat.Stat(original.convert("L")).mean[0]
    assert abs(clean_mean - original_mean) < 5
