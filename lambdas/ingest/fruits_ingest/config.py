"""Settings of the ingest function, read from the environment and validated once, at cold start.

A bad setting must stop the container at start-up with a message naming the
variable, not fail later on the first upload.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fruits_core import contracts
from fruits_core.errors import ConfigError
from fruits_core.lake_uris import validate_lake_uri
from fruits_ingest.labels import LabelVocabulary, VocabularyError, default_vocabulary

DEFAULT_MAX_UPLOAD_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_IMAGE_PIXELS = contracts.MAX_IMAGE_PIXELS
# Ceilings that keep a typo (an extra zero) from letting one upload exhaust the function's memory.
MAX_UPLOAD_BYTES_CEILING = 100 * 1024 * 1024
MAX_IMAGE_PIXELS_CEILING = 200_000_000
MIN_PSEUDONYM_KEY_BYTES = 16
# How long a container keeps the SSM key before reading it again: a rotation reaches every
# container within this delay (docs/ingest-security.md, "Key rotation").
DEFAULT_PSEUDONYM_KEY_TTL_SECONDS = 300
PSEUDONYM_KEY_TTL_CEILING = 3600
# A record is started only if this much invocation time is left: the worst accepted input takes
# about 3 s on one core (docs/ingest-security.md), so a started record never runs into the timeout.
DEFAULT_RECORD_TIME_BUDGET_MS = 15_000
RECORD_TIME_BUDGET_CEILING_MS = 60_000

ENV_LAKE_URI = "LAKE_URI"
ENV_PSEUDONYM_KEY = "PSEUDONYM_KEY"
ENV_PSEUDONYM_KEY_PARAMETER = "PSEUDONYM_KEY_PARAMETER"
ENV_MAX_UPLOAD_BYTES = "MAX_UPLOAD_BYTES"
ENV_MAX_IMAGE_PIXELS = "MAX_IMAGE_PIXELS"
ENV_PSEUDONYM_KEY_TTL_SECONDS = "PSEUDONYM_KEY_TTL_SECONDS"
ENV_RECORD_TIME_BUDGET_MS = "RECORD_TIME_BUDGET_MS"
ENV_LABEL_VOCABULARY_FILE = "LABEL_VOCABULARY_FILE"
ENV_IDENTITY_FROM_KEY = "IDENTITY_FROM_KEY"
ENV_ERASURE_GRACE_DAYS = "ERASURE_GRACE_DAYS"
ENV_UPLOADS_BUCKET = "UPLOADS_BUCKET"
# Ten years: a typo cannot turn a tombstone into a permanent ban beyond any retention period.
ERASURE_GRACE_DAYS_CEILING = 3650

# fullmatch, never match + "$" ("$" also matches before a trailing newline).
_SSM_PARAMETER_NAME = re.compile(r"/?[A-Za-z0-9_.\-/]{1,2048}")


@dataclass(frozen=True)
class IngestConfig:
    """Validated settings. `pseudonym_key` is the key itself (local mode) or None when read from SSM."""

    lake_uri: str
    pseudonym_key: bytes | None = None
    pseudonym_key_parameter: str | None = None
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    pseudonym_key_ttl_seconds: int = DEFAULT_PSEUDONYM_KEY_TTL_SECONDS
    record_time_budget_ms: int = DEFAULT_RECORD_TIME_BUDGET_MS
    label_vocabulary: LabelVocabulary = field(default_factory=default_vocabulary)
    # True behind the upload API: the subject is the key's uploads/<sub>/ prefix, never `user-id`.
    identity_from_key: bool = False
    # Uploads of an erased subject are dropped for this many days after the erasure (tombstones/).
    erasure_grace_days: int = contracts.DEFAULT_ERASURE_GRACE_DAYS
    # The bucket the uploads come from: an event of any other bucket is skipped (None: any bucket).
    uploads_bucket: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "lake_uri", validate_lake_uri(self.lake_uri, ENV_LAKE_URI))
        if self.pseudonym_key is None and not self.pseudonym_key_parameter:
            raise ConfigError(
                f"set {ENV_PSEUDONYM_KEY_PARAMETER} (name of an SSM SecureString) "
                f"or, in local mode and tests only, {ENV_PSEUDONYM_KEY}"
            )
        if self.pseudonym_key is not None:
            validate_pseudonym_key(self.pseudonym_key, ENV_PSEUDONYM_KEY)
        if self.pseudonym_key_parameter and not _SSM_PARAMETER_NAME.fullmatch(self.pseudonym_key_parameter):
            raise ConfigError(f"{ENV_PSEUDONYM_KEY_PARAMETER} is not a valid SSM parameter name")
        _check_range(ENV_MAX_UPLOAD_BYTES, self.max_upload_bytes, MAX_UPLOAD_BYTES_CEILING)
        _check_range(ENV_MAX_IMAGE_PIXELS, self.max_image_pixels, MAX_IMAGE_PIXELS_CEILING)
        _check_range(ENV_PSEUDONYM_KEY_TTL_SECONDS, self.pseudonym_key_ttl_seconds, PSEUDONYM_KEY_TTL_CEILING)
        _check_range(ENV_RECORD_TIME_BUDGET_MS, self.record_time_budget_ms, RECORD_TIME_BUDGET_CEILING_MS)
        _check_range(ENV_ERASURE_GRACE_DAYS, self.erasure_grace_days, ERASURE_GRACE_DAYS_CEILING)


def load_config(environ: Mapping[str, str]) -> IngestConfig:
    """Build the settings from environment variables; `PSEUDONYM_KEY` wins over the SSM parameter."""
    lake_uri = environ.get(ENV_LAKE_URI, "").strip()
    if not lake_uri:
        raise ConfigError(f"{ENV_LAKE_URI} is required: s3://bucket[/prefix] or file:///absolute/path")
    raw_key = environ.get(ENV_PSEUDONYM_KEY)
    return IngestConfig(
        lake_uri=lake_uri,
        pseudonym_key=raw_key.encode("utf-8") if raw_key else None,
        pseudonym_key_parameter=environ.get(ENV_PSEUDONYM_KEY_PARAMETER, "").strip() or None,
        max_upload_bytes=int_setting(environ, ENV_MAX_UPLOAD_BYTES, DEFAULT_MAX_UPLOAD_BYTES),
        max_image_pixels=int_setting(environ, ENV_MAX_IMAGE_PIXELS, DEFAULT_MAX_IMAGE_PIXELS),
        pseudonym_key_ttl_seconds=int_setting(
            environ, ENV_PSEUDONYM_KEY_TTL_SECONDS, DEFAULT_PSEUDONYM_KEY_TTL_SECONDS
        ),
        record_time_budget_ms=int_setting(environ, ENV_RECORD_TIME_BUDGET_MS, DEFAULT_RECORD_TIME_BUDGET_MS),
        label_vocabulary=_vocabulary_setting(environ),
        identity_from_key=_bool_setting(environ, ENV_IDENTITY_FROM_KEY),
        erasure_grace_days=int_setting(environ, ENV_ERASURE_GRACE_DAYS, contracts.DEFAULT_ERASURE_GRACE_DAYS),
        uploads_bucket=environ.get(ENV_UPLOADS_BUCKET, "").strip() or None,
    )


def validate_pseudonym_key(key: bytes, source: str) -> bytes:
    """Refuse keys too short to resist a dictionary attack on user ids (the key itself is never printed)."""
    if len(key) < MIN_PSEUDONYM_KEY_BYTES:
        raise ConfigError(f"the pseudonym key from {source} must be at least {MIN_PSEUDONYM_KEY_BYTES} bytes")
    return key


def int_setting(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isascii():  # int() would read other scripts' digits
        raise ConfigError(f"{name} must be a whole number, got {raw!r}")
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None


def _bool_setting(environ: Mapping[str, str], name: str) -> bool:
    raw = environ.get(name, "").strip().lower()
    if raw not in ("", "true", "false"):
        raise ConfigError(f"{name} must be true or false, got {raw!r}")
    return raw == "true"


def _vocabulary_setting(environ: Mapping[str, str]) -> LabelVocabulary:
    """The bundled vocabulary, or the JSON file LABEL_VOCABULARY_FILE names (same shape)."""
    path = environ.get(ENV_LABEL_VOCABULARY_FILE, "").strip()
    try:
        return LabelVocabulary.from_file(Path(path)) if path else default_vocabulary()
    except VocabularyError as error:
        raise ConfigError(f"{ENV_LABEL_VOCABULARY_FILE}: {error}") from None


def _check_range(name: str, value: int, ceiling: int) -> None:
    if not 0 < value <= ceiling:
        raise ConfigError(f"{name} must be between 1 and {ceiling}, got {value}")
