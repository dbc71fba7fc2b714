"""ModelFunction: the upload API's GET /model (HTTP API, Cognito JWT authorizer).

Answers short-lived presigned GETs of the app's current on-device model and its labels, with the
version, SHA-256, size and input spec the app checks before swapping models; see
`fruits_ingest.app_download`. Settings are validated at cold start.
"""

from __future__ import annotations

import os
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config
from botocore.exceptions import ClientError
from fruits_ingest.api_answers import json_response
from fruits_ingest.app_download import DownloadRefused, current_model, load_download_config, require_subject

from fruits_core import contracts

SERVICE = "model-api"
logger = Logger(service=SERVICE)
metrics = Metrics(namespace="Fruits/Ingest", service=SERVICE)

CONFIG = load_download_config(os.environ)
S3_CLIENT = boto3.client("s3", config=Config(signature_version="s3v4", s3={"addressing_style": "virtual"}))


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        require_subject(event)
        model = current_model(_pointer())
    except DownloadRefused as refused:
        metrics.add_metric(name="ModelDownloadsRefused", unit=MetricUnit.Count, value=1)
        logger.info("model download refused", extra={"status": refused.status, "detail": refused.message})
        return json_response(refused.status, {"message": refused.message})
    urls = {
        name: S3_CLIENT.generate_presigned_url(
            "get_object",
            Params={"Bucket": CONFIG.bucket, "Key": CONFIG.key(model.pop(f"{name}_key"))},
            ExpiresIn=CONFIG.expires_seconds,
        )
        for name in ("model", "labels")
    }
    metrics.add_metric(name="ModelDownloadsSigned", unit=MetricUnit.Count, value=1)
    body = {**model, "model_url": urls["model"], "labels_url": urls["labels"]}
    return json_response(200, {**body, "expires_in": CONFIG.expires_seconds})


def _pointer() -> bytes | None:
    try:
        response = S3_CLIENT.get_object(Bucket=CONFIG.bucket, Key=CONFIG.key(contracts.APP_MODEL_LATEST_KEY))
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise
    return response["Body"].read()
