"""Run the handler as in Lambda with X-Ray active, under moto; the segments go to a local UDP port.

`python -m tests.ingest.xray_capture PORT [--patch-botocore]`: the parent test
listens on PORT (playing the X-Ray daemon) and searches what arrives.
`--patch-botocore` turns the automatic instrumentation back on, to show that
the capture would see a key if one were recorded.
"""

from __future__ import annotations

import io
import os
import sys

import boto3
from moto import mock_aws
from PIL import Image

from .helpers import (
    LAKE_BUCKET,
    LAKE_URI,
    REGION,
    TEST_PSEUDONYM_KEY,
    UPLOADS_BUCKET,
    LambdaContext,
    sqs_event,
)

KEY = "uploads/Jane Doe IMG_20250613_184753.jpg"


def main(port: str, patch_botocore: bool) -> None:
    os.environ.update(
        {
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_LAMBDA_FUNCTION_NAME": "fruits-test-ingest",
            "LAMBDA_TASK_ROOT": os.getcwd(),
            "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
            "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{port}",
            "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
            "LAKE_URI": LAKE_URI,
            "PSEUDONYM_KEY": TEST_PSEUDONYM_KEY,
        }
    )
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        for bucket in (UPLOADS_BUCKET, LAKE_BUCKET):
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        buffer = io.BytesIO()
        Image.new("RGB", (64, 64), (200, 30, 40)).save(buffer, "JPEG")
        etag = s3.put_object(
            Bucket=UPLOADS_BUCKET, Key=KEY, Body=buffer.getvalue(), Metadata={"label": "Jane Doe 0612345678"}
        )["ETag"].strip('"')
        import app  # imported here: the tracer reads the Lambda environment set above

        if patch_botocore:
            from aws_xray_sdk.core import patch

            patch(["botocore"])
        response = app.lambda_handler(sqs_event([(KEY, etag, buffer.tell())]), LambdaContext())
        assert response == {"batchItemFailures": []}, response


if __name__ == "__main__":
    main(sys.argv[1], "--patch-botocore" in sys.argv[2:])
