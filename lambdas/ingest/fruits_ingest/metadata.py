"""Validation of the upload's S3 user metadata (x-amz-meta-*) against the table in DESIGN.md.

A present but malformed field rejects the upload, except the label: free text
that names no fruit of the vocabulary is dropped (null) and the photo kept.
Error details name the field and the rule, never the submitted value: they end
up in quarantine records.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.header import decode_header, make_header
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from fruits_core import contracts
from fruits_ingest.labels import LabelVocabulary

S3_METADATA_PREFIX = "x-amz-meta-"
OPAQUE_ID_MAX_CHARS = 128
EARLIEST_CAPTURE = datetime(2000, 1, 1, tzinfo=UTC)
# Phone clocks drift and time zones are misconfigured: tolerate a day, not more.
CAPTURE_FUTURE_TOLERANCE = timedelta(hours=24)
# ASCII digits only: "\d" also matches other scripts' digits, which would be stored verbatim.
_DECIMAL_DEGREES = re.compile(r"[+-]?[0-9]{1,3}(\.[0-9]{1,12})?")
# Strict semver with release-channel pre-releases only: a free suffix would fit a device model.
_NUMBER = r"(0|[1-9][0-9]{0,5})"
_APP_VERSION = re.compile(rf"{_NUMBER}\.{_NUMBER}\.{_NUMBER}(-(alpha|beta|rc)(\.{_NUMBER})?)?")
_RFC2047_WORD = re.compile(r"=\?[^?]+\?[bBqQ]\?[^?]*\?=")


class UploadMetadata(BaseModel):
    """Validated upload metadata; `label` is a vocabulary label or None (`label_unknown` if dropped)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    user_id: str | None = Field(default=None, alias=contracts.META_USER_ID)
    device_id: str | None = Field(default=None, alias=contracts.META_DEVICE_ID)
    captured_at: datetime | None = Field(default=None, alias=contracts.META_CAPTURED_AT)
    lat: float | None = Field(default=None, alias=contracts.META_LAT)
    lon: float | None = Field(default=None, alias=contracts.META_LON)
    label: str | None = Field(default=None, alias=contracts.META_LABEL)
    app_version: str | None = Field(default=None, alias=contracts.META_APP_VERSION)
    label_unknown: bool = False

    @model_validator(mode="before")
    @classmethod
    def _match_label(cls, data: Any, info: ValidationInfo) -> Any:
        """Swap the free-text label for its vocabulary label; anything else is dropped, not rejected."""
        if not isinstance(data, dict):
            return data
        raw = data.get(contracts.META_LABEL)
        vocabulary: LabelVocabulary = (info.context or {})["vocabulary"]
        label = vocabulary.match(raw) if isinstance(raw, str) else None
        # Always computed here, so no metadata key can set it.
        return {**data, contracts.META_LABEL: label, "label_unknown": raw is not None and label is None}

    @field_validator("user_id", "device_id", mode="before")
    @classmethod
    def _opaque_id(cls, value: Any) -> str:
        text = _require_text(value)
        problem = opaque_id_problem(text)
        if problem is not None:
            raise ValueError(problem)
        return text

    @field_validator("captured_at", mode="before")
    @classmethod
    def _capture_time(cls, value: Any, info: ValidationInfo) -> datetime:
        text = _require_text(value)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError("must be an ISO 8601 timestamp") from None
        if moment.tzinfo is None:
            raise ValueError("must carry a UTC offset (e.g. Z or +02:00)")
        now = (info.context or {}).get("now") or datetime.now(UTC)
        if moment < EARLIEST_CAPTURE:
            raise ValueError("is before 2000-01-01")
        if moment > now + CAPTURE_FUTURE_TOLERANCE:
            raise ValueError("is more than 24 hours in the future")
        return moment

    @field_validator("lat", mode="before")
    @classmethod
    def _latitude(cls, value: Any) -> float:
        return _degrees(value, limit=90.0)

    @field_validator("lon", mode="before")
    @classmethod
    def _longitude(cls, value: Any) -> float:
        return _degrees(value, limit=180.0)

    @field_validator("app_version", mode="before")
    @classmethod
    def _app_version(cls, value: Any) -> str:
        text = _require_text(value)
        if not _APP_VERSION.fullmatch(text):
            raise ValueError(
                "must be MAJOR.MINOR.PATCH, optionally -alpha, -beta or -rc[.N] (e.g. 2.0.0-rc.1)"
            )
        return text

    @model_validator(mode="after")
    def _both_coordinates_or_neither(self) -> UploadMetadata:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("lat and lon must be given together")
        return self


@dataclass(frozen=True)
class InvalidMetadata:
    """Why the metadata was refused: field names and rules only, no submitted values."""

    detail: str


def parse_upload_metadata(
    raw: Mapping[str, Any], now: datetime, vocabulary: LabelVocabulary
) -> UploadMetadata | InvalidMetadata:
    """Validate S3 user metadata (keys with or without the x-amz-meta- prefix, any case)."""
    normalized: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.lower().removeprefix(S3_METADATA_PREFIX)
        if name in normalized:
            return InvalidMetadata(f"{name}: given more than once")
        normalized[name] = _decode_mime_words(value) if isinstance(value, str) else value
    try:
        return UploadMetadata.model_validate(normalized, context={"now": now, "vocabulary": vocabulary})
    except ValidationError as error:
        return InvalidMetadata(_describe(error))


def opaque_id_problem(text: str) -> str | None:
    """Why `text` is no acceptable user-id or device-id (taken verbatim otherwise), or None."""
    if any(unicodedata.category(char) == "Cc" for char in text):
        return "contains control characters"
    if not 1 <= len(text) <= OPAQUE_ID_MAX_CHARS:
        return f"must be 1 to {OPAQUE_ID_MAX_CHARS} characters"
    return None


def _require_text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise ValueError("contains control characters")
    return value


def _degrees(value: Any, limit: float) -> float:
    text = _require_text(value)
    if not _DECIMAL_DEGREES.fullmatch(text):
        raise ValueError("must be decimal degrees (e.g. -12.5)")
    degrees = float(text)
    if not -limit <= degrees <= limit:
        raise ValueError(f"must be between -{limit:g} and {limit:g}")
    return degrees


def _decode_mime_words(value: str) -> str:
    """S3 returns non-ASCII metadata as RFC 2047 encoded words (=?UTF-8?B?...?=): decode them."""
    if not _RFC2047_WORD.search(value):
        return value
    try:
        return str(make_header(decode_header(value)))
    except (LookupError, ValueError, UnicodeDecodeError):
        return value


def _describe(error: ValidationError) -> str:
    """One line per problem, `field: rule`, built from our own messages only (never `input`)."""
    problems = []
    for item in error.errors(include_input=False, include_url=False):
        field = ".".join(str(part) for part in item["loc"]) or "metadata"
        context_error = (item.get("ctx") or {}).get("error")
        message = str(context_error) if context_error is not None else item["msg"]
        problems.append(f"{field}: {message}")
    return "; ".join(sorted(problems))
