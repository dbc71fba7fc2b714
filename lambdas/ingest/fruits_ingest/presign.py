"""The upload API's logic: who is calling (from the verified JWT), and what their presigned POST allows.

The HTTP API's JWT authorizer has already verified the Cognito token; this code
only reads its `sub` claim. The POST policy signs in the key (under the caller's
own prefix), the size range and the content type. It allows only the metadata
fields the ingest reads, minus `user-id`: identity comes from the key.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fruits_core import contracts
from fruits_ingest.api_answers import Refused
from fruits_ingest.config import (
    DEFAULT_MAX_UPLOAD_BYTES,
    ENV_MAX_UPLOAD_BYTES,
    ENV_UPLOADS_BUCKET,
    MAX_UPLOAD_BYTES_CEILING,
    ConfigError,
    int_setting,
)
from fruits_ingest.identity import new_upload_key, verified_subject

ENV_PRESIGN_EXPIRES_SECONDS = "PRESIGN_EXPIRES_SECONDS"
ENV_UPLOAD_QUOTA_TABLE = "UPLOAD_QUOTA_TABLE"
ENV_DAILY_UPLOAD_QUOTA = "DAILY_UPLOAD_QUOTA"
DEFAULT_EXPIRES_SECONDS = 300
EXPIRES_CEILING_SECONDS = 3600
# A keen picker photographs a few dozen fruits a day; 200 leaves room and bounds a stolen account.
DEFAULT_DAILY_UPLOAD_QUOTA = 200
DAILY_UPLOAD_QUOTA_CEILING = 100_000
# The metadata an upload may carry (x-amz-meta-*); S3 refuses a POST with any other field.
SIGNED_METADATA_KEYS = (
    contracts.META_CAPTURED_AT,
    contracts.META_LAT,
    contracts.META_LON,
    contracts.META_LABEL,
    contracts.META_APP_VERSION,
)
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


class PresignRefused(Refused):
    """The request cannot get an upload URL."""


@dataclass(frozen=True)
class PresignConfig:
    uploads_bucket: str
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    expires_seconds: int = DEFAULT_EXPIRES_SECONDS
    # The DynamoDB table of per-user daily counters (None: no quota, local and test setups only).
    quota_table: str | None = None
    daily_upload_quota: int = DEFAULT_DAILY_UPLOAD_QUOTA

    def __post_init__(self) -> None:
        if not _BUCKET_NAME.fullmatch(self.uploads_bucket):
            raise ConfigError(f"{ENV_UPLOADS_BUCKET} must be a bucket name, got {self.uploads_bucket!r}")
        if not 0 < self.max_upload_bytes <= MAX_UPLOAD_BYTES_CEILING:
            raise ConfigError(f"{ENV_MAX_UPLOAD_BYTES} must be between 1 and {MAX_UPLOAD_BYTES_CEILING}")
        if not 0 < self.expires_seconds <= EXPIRES_CEILING_SECONDS:
            raise ConfigError(
                f"{ENV_PRESIGN_EXPIRES_SECONDS} must be between 1 and {EXPIRES_CEILING_SECONDS}"
            )
        if not 0 < self.daily_upload_quota <= DAILY_UPLOAD_QUOTA_CEILING:
            raise ConfigError(f"{ENV_DAILY_UPLOAD_QUOTA} must be between 1 and {DAILY_UPLOAD_QUOTA_CEILING}")


def load_presign_config(environ: Mapping[str, str]) -> PresignConfig:
    return PresignConfig(
        uploads_bucket=environ.get(ENV_UPLOADS_BUCKET, "").strip(),
        max_upload_bytes=int_setting(environ, ENV_MAX_UPLOAD_BYTES, DEFAULT_MAX_UPLOAD_BYTES),
        expires_seconds=int_setting(environ, ENV_PRESIGN_EXPIRES_SECONDS, DEFAULT_EXPIRES_SECONDS),
        quota_table=environ.get(ENV_UPLOAD_QUOTA_TABLE, "").strip() or None,
        daily_upload_quota=int_setting(environ, ENV_DAILY_UPLOAD_QUOTA, DEFAULT_DAILY_UPLOAD_QUOTA),
    )


@dataclass(frozen=True)
class UploadGrant:
    """What to presign: the key under the caller's prefix, and the policy's fields and conditions."""

    subject: str
    key: str
    fields: dict[str, str]
    conditions: list[Any]


def grant_for(event: Mapping[str, Any], config: PresignConfig) -> UploadGrant:
    """The upload one API Gateway (HTTP API v2) request may make, or PresignRefused."""
    subject = _subject(event)
    content_type = _requested_content_type(event)
    return UploadGrant(
        subject=subject,
        key=new_upload_key(subject, content_type),
        fields={"Content-Type": content_type},
        conditions=[
            ["content-length-range", 1, config.max_upload_bytes],
            {"Content-Type": content_type},
            *(["starts-with", f"$x-amz-meta-{name}", ""] for name in SIGNED_METADATA_KEYS),
        ],
    )


def _subject(event: Mapping[str, Any]) -> str:
    subject = verified_subject(event)
    if subject is None:
        raise PresignRefused(403, "no verified Cognito subject in the request")
    return subject


def _requested_content_type(event: Mapping[str, Any]) -> str:
    body = event.get("body") or ""
    try:
        text = base64.b64decode(body).decode("utf-8") if event.get("isBase64Encoded") else body
        content_type = json.loads(text).get("content_type")
    except (ValueError, AttributeError, binascii.Error):
        raise PresignRefused(400, 'body must be JSON: {"content_type": "image/jpeg"}') from None
    if not isinstance(content_type, str) or content_type not in contracts.UPLOAD_CONTENT_TYPES:
        allowed = ", ".join(contracts.UPLOAD_CONTENT_TYPES)
        raise PresignRefused(400, f"content_type must be one of {allowed}")
    return content_type
