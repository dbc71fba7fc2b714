"""The upload API's GET /model: which object the signed-in app may download, from the lake's pointer.

`fruits classifier export-app` writes `<lake>/models/app/latest.json` (version, model key,
labels key, sha256, size, input spec). This module checks the caller is a verified Cognito
subject and that the pointer names keys under models/app/ only, so a tampered pointer can never
make the API sign a download of any other lake object. The handler (model_app.py) signs the GETs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fruits_core import contracts
from fruits_core.lake_uris import validate_lake_uri
from fruits_ingest.api_answers import Refused
from fruits_ingest.config import ConfigError, int_setting
from fruits_ingest.identity import verified_subject

ENV_LAKE_URI = "LAKE_URI"
ENV_MODEL_URL_EXPIRES_SECONDS = "MODEL_URL_EXPIRES_SECONDS"
DEFAULT_EXPIRES_SECONDS = 300
EXPIRES_CEILING_SECONDS = 3600
_APP_KEY = re.compile(
    rf"^{re.escape(contracts.APP_MODEL_PREFIX)}[A-Za-z0-9_-][A-Za-z0-9._-]*/(fruits\.tflite|labels\.txt)$"
)


class DownloadRefused(Refused):
    """The request gets no download URL."""


@dataclass(frozen=True)
class DownloadConfig:
    bucket: str
    prefix: str  # the lake's key prefix ("" or "team/")
    expires_seconds: int = DEFAULT_EXPIRES_SECONDS

    def key(self, lake_key: str) -> str:
        return f"{self.prefix}{lake_key}"


def load_download_config(environ: Mapping[str, str]) -> DownloadConfig:
    lake = validate_lake_uri(environ.get(ENV_LAKE_URI, "").strip(), ENV_LAKE_URI)
    if not lake.startswith("s3://"):
        raise ConfigError(f"{ENV_LAKE_URI} must be an s3:// lake, got {lake!r}")
    bucket, _, prefix = lake.removeprefix("s3://").partition("/")
    expires = int_setting(environ, ENV_MODEL_URL_EXPIRES_SECONDS, DEFAULT_EXPIRES_SECONDS)
    if not 0 < expires <= EXPIRES_CEILING_SECONDS:
        raise ConfigError(f"{ENV_MODEL_URL_EXPIRES_SECONDS} must be between 1 and {EXPIRES_CEILING_SECONDS}")
    return DownloadConfig(bucket, f"{prefix.strip('/')}/" if prefix.strip("/") else "", expires)


def require_subject(event: Mapping[str, Any]) -> None:
    if verified_subject(event) is None:
        raise DownloadRefused(403, "no verified Cognito subject in the request")


def current_model(pointer_bytes: bytes | None) -> dict:
    """The pointer's fields the app needs, checked (DownloadRefused 404/503 when absent or unusable)."""
    if pointer_bytes is None:
        raise DownloadRefused(404, "no app model is published yet")
    try:
        pointer = json.loads(pointer_bytes)
        model, labels = pointer["model"], pointer["labels"]
        described = {
            "version": str(pointer["version"]),
            "sha256": str(pointer["sha256"]),
            "size": int(pointer["size"]),
            "input": dict(pointer["input"]),
        }
    except (ValueError, KeyError, TypeError):
        raise DownloadRefused(503, "the published app model pointer is unreadable") from None
    if not (
        isinstance(model, str)
        and _APP_KEY.match(model)
        and isinstance(labels, str)
        and _APP_KEY.match(labels)
    ):
        raise DownloadRefused(503, "the published app model pointer names keys outside models/app/")
    return {**described, "model_key": model, "labels_key": labels}
