"""Every bad input ends accepted, quarantined with its reason, or skipped; none fails the batch."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageStat

from fruits_core import contracts

from .bad_inputs import CORPUS, Case
from .corpus_run import run_case
from .helpers import sqs_event


def test_corpus_is_large_and_covers_every_reason_code() -> None:
    # GIVEN the corpus WHEN its expected reasons are collected THEN each reason code appears at least once
    assert len(CORPUS) >= 20
    # no_identity needs IDENTITY_FROM_KEY (the upload API's setting): test_ingest_upload_api.py covers it
    behind_the_upload_api = {contracts.QuarantineReason.NO_IDENTITY}
    assert {case.reason for case in CORPUS if case.reason} == set(
        contracts.QuarantineReason
    ) - behind_the_upload_api
    # subject_erased needs a tombstone (test_ingest_erased_subject.py), upload_reused the upload API
    # (test_ingest_upload_api.py), foreign_bucket UPLOADS_BUCKET (test_ingest_events_config.py),
    # already_ingested a redelivery (test_ingest_manifest_group.py)
    assert {case.skip for case in CORPUS if case.skip} == set(contracts.SkipReason) - {
        contracts.SkipReason.SUBJECT_ERASED,
        contracts.SkipReason.UPLOAD_REUSED,
        contracts.SkipReason.FOREIGN_BUCKET,
        contracts.SkipReason.ALREADY_INGESTED,
    }


@pytest.mark.parametrize("case", CORPUS, ids=lambda case: case.id)
def test_bad_input_is_accepted_or_quarantined_never_crashes(
    case: Case, aws, app, lambda_context, sample_image_paths
):
    # GIVEN an upload built from a real sample image, announced by an SQS message
    # WHEN the ingest function handles the batch
    # THEN the message succeeds and exactly the expected outcome record exists (none when skipped)
    photo, other_photo = (path.read_bytes() for path in sample_image_paths[:2])
    run_case(aws, app, lambda_context, case, photo, other_photo)


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
