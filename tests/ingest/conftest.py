"""Fixtures of the ingest tests: moto AWS, a fresh Lambda container per test, real images."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import boto3
import pytest

from .bad_inputs import PIXEL_LIMIT
from .helpers import (
    EVENT_UPLOADS,
    LAKE_BUCKET,
    LAKE_URI,
    PERSONAL_METADATA,
    REGION,
    TEST_PSEUDONYM_KEY,
    UPLOADS_BUCKET,
    Aws,
    LambdaContext,
    cold_start,
    shared_session,
)


@pytest.fixture
def aws(mocked_aws, monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    """moto S3 + SSM with the uploads and lake buckets; botocore gives up after one attempt."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    # One botocore session for all tests (it caches service models); clients made from it,
    # the app's included, see the hooks a test registers through `Aws.on_session`.
    boto3.DEFAULT_SESSION = shared_session()
    s3 = boto3.client("s3")
    for bucket in (UPLOADS_BUCKET, LAKE_BUCKET):
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    world = Aws(s3=s3, session_events=boto3.DEFAULT_SESSION.events)
    try:
        yield world
    finally:
        world.remove_session_hooks()
        boto3.DEFAULT_SESSION = None


@pytest.fixture
def app(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """A cold-started ingest function writing to the moto lake, key from PSEUDONYM_KEY."""
    return cold_start({"LAKE_URI": LAKE_URI, "PSEUDONYM_KEY": TEST_PSEUDONYM_KEY}, monkeypatch)


@pytest.fixture
def pillow_guards() -> None:
    """Pillow's process-wide limits as a container installs them, at the tests' PIXEL_LIMIT."""
    from fruits_ingest.imaging import install_pillow_guards

    install_pillow_guards(PIXEL_LIMIT)


@pytest.fixture
def lambda_context() -> LambdaContext:
    return LambdaContext()


@pytest.fixture
def seed_event_uploads(aws: Aws, sample_images_dir: Path) -> Callable[[], dict[str, bytes]]:
    """Upload the objects the committed events announce, with personal metadata; returns key -> bytes."""

    def seed() -> dict[str, bytes]:
        uploaded = {}
        for upload in EVENT_UPLOADS:
            data = upload.body(sample_images_dir)
            aws.upload(upload.key, data, PERSONAL_METADATA)
            uploaded[upload.key] = data
        return uploaded

    return seed
