"""The bad-input corpus under the Lambda's exact pins.

Run as `.venv-lambda/bin/python -m tests.ingest.lambda_pins_corpus` (test_ingest_lambda_pins.py).

.venv-lambda (made by `make lambda-venv`) is Python 3.12, the function's runtime, with
lambdas/ingest/requirements.txt as pinned, so the decoder tested is the decoder deployed.
It prints one JSON line (Pillow version, cases run, failures) and exits non-zero on a failure.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback

import boto3
import PIL
from moto import mock_aws

from .bad_inputs import CORPUS
from .corpus_run import run_case
from .helpers import (
    LAKE_BUCKET,
    LAKE_URI,
    REGION,
    REPO_ROOT,
    TEST_PSEUDONYM_KEY,
    UPLOADS_BUCKET,
    Aws,
    LambdaContext,
)

SAMPLE_IMAGES = REPO_ROOT / "data" / "fruits360-sample"


def main() -> int:
    os.environ.update(
        {
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_MAX_ATTEMPTS": "1",
            "LAKE_URI": LAKE_URI,
            "PSEUDONYM_KEY": TEST_PSEUDONYM_KEY,
        }
    )
    photo, other_photo = (path.read_bytes() for path in sorted(SAMPLE_IMAGES.glob("*/*.jpg"))[:2])
    app = importlib.import_module("app")
    failures = {}
    for case in CORPUS:
        with mock_aws():  # fresh buckets for every case
            s3 = boto3.client("s3", region_name=REGION)
            for bucket in (UPLOADS_BUCKET, LAKE_BUCKET):
                s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
            try:
                run_case(Aws(s3=s3, session_events=None), app, LambdaContext(), case, photo, other_photo)
            except Exception:
                failures[case.id] = traceback.format_exc(limit=3)
    print(
        json.dumps(
            {
                "python": ".".join(map(str, sys.version_info[:2])),
                "pillow": PIL.__version__,
                "cases": len(CORPUS),
                "failures": failures,
            }
        )
    )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
