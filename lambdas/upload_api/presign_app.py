"""PresignFunction: the upload API's handler (HTTP API, Cognito JWT authorizer, POST /uploads).

Answers a presigned POST bound to the caller's `uploads/<sub>/` prefix; see
`fruits_ingest.presign`. Settings are validated at cold start.
"""

from __future__ import annotations

import os
from typing import Any

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config
from fruits_ingest.api_answers import json_response
from fruits_ingest.presign import PresignRefused, grant_for, load_presign_config
from fruits_ingest.quota import UploadQuota

SERVICE = "upload-api"
logger = Logger(service=SERVICE)
metrics = Metrics(namespace="Fruits/Ingest", service=SERVICE)

CONFIG = load_presign_config(os.environ)
QUOTA = (
    UploadQuota(boto3.client("dynamodb"), CONFIG.quota_table, CONFIG.daily_upload_quota)
    if CONFIG.quota_table
    else None
)
# Regional endpoint and SigV4: the URL the app posts to is the bucket's own region.
S3_CLIENT = boto3.client("s3", config=Config(signature_version="s3v4", s3={"addressing_style": "virtual"}))


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        grant = grant_for(event, CONFIG)
    except PresignRefused as refused:
        metrics.add_metric(name="UploadsRefused", unit=MetricUnit.Count, value=1)
        logger.info("upload refused", extra={"status": refused.status, "detail": refused.message})
        return json_response(refused.status, {"message": refused.message})
    if QUOTA is not None and not QUOTA.take(grant.subject):
        metrics.add_metric(name="UploadQuotaReached", unit=MetricUnit.Count, value=1)
        logger.info("upload refused", extra={"status": 429, "detail": "daily upload quota reached"})
        return json_response(429, {"message": f"daily upload quota ({CONFIG.daily_upload_quota}) reached"})
    post = S3_CLIENT.generate_presigned_post(
        Bucket=CONFIG.uploads_bucket,
        Key=grant.key,
        Fields=grant.fields,
        Conditions=grant.conditions,
        ExpiresIn=CONFIG.expires_seconds,
    )
    metrics.add_metric(name="UploadsSigned", unit=MetricUnit.Count, value=1)
    return json_response(200, {**post, "key": grant.key, "expires_in": CONFIG.expires_seconds})
