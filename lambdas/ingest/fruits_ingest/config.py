"""Settings of the ingest function, read from the environment and validated once, at cold start.

A bad setting must stop the container at start-up with a message naming the
variable, not fail later on the first upload.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from fruits_core import contracts
from fruits_core.errors import ConfigError
from fruits_core.lake_uris import validate_lake_uri

DEFAULT_MAX_UPLOAD_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_IMAGE_PIXELS = contracts.MAX_IMAGE_PIXELS
# Ceilings that keep a typo (an extra zero) from letting one upload exhaust the function's memory.
MAX_UPLOAD_BYTES_CEILING = 100 * 1024 * 1024
MAX_IMAGE_PIXELS_CEILING = 200_000_000
MIN_PSEUDONYM_KEY_BYTES = 16

ENV_LAKE_URI = "LAKE_URI"
ENV_PSEUDONYM_KEY = "PSEUDONYM_KEY"
ENV_PSEUDONYM_KEY_PARAMETER = "PSEUDONYM_KEY_PARAMETER"
ENV_MAX_UPLOAD_BYTES = "MAX_UPLOAD_BYTES"
ENV_MAX_IMAGE_PIXELS = "MAX_IMAGE_PIXELS"

_SSM_PARAMETER_NAME = re.compile(r"^/?[A-Za-z0-9_.\-/]{1,2048}$")


@dataclass(frozen=True)
class IngestConfig:
    """Validated settings. `pseudonym_key` is the key itself (local mode) or None when read from SSM."""

    lake_uri: str
    pseudonym_key: bytes | None = None
    pseudonym_key_parameter: str | None = None
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS

    def __post_init__(self) -> None:
        object.__setattr__(self, "lake_uri", validate_lake_uri(self.lake_uri, ENV_LAKE_URI))
        if self.pseudonym_key is None and not self.pseudonym_key_parameter:
            raise ConfigError(
                f"set {ENV_PSEUDONYM_KEY_PARAMETER} (name of an SSM SecureString) "
                f"or, in local mode and tests only, {ENV_PSEUDONYM_KEY}"
            )
        if self.pseudonym_key is not None:
            validate_pseudonym_key(self.pseudonym_key, ENV_PSEUDONYM_KEY)
        if self.pseudonym_key_parameter and not _SSM_PARAMETER_NAME.match(self.pseudonym_key_parameter):
            raise ConfigError(f"{ENV_PSEUDONYM_KEY_PARAMETER} is not a valid SSM parameter name")
        _check_range(ENV_MAX_UPLOAD_BYTES, self.max_upload_bytes, MAX_UPLOAD_BYTES_CEILING)
        _check_range(ENV_MAX_IMAGE_PIXELS, self.max_image_pixels, MAX_IMAGE_PIXELS_CEILING)


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
        max_upload_bytes=_int_setting(environ, ENV_MAX_UPLOAD_BYTES, DEFAULT_MAX_UPLOAD_BYTES),
        max_image_pixels=_int_setting(environ, ENV_MAX_IMAGE_PIXELS, DEFAULT_MAX_IMAGE_PIXELS),
    )


def validate_pseudonym_key(key: bytes, source: str) -> bytes:
    """Refuse keys too short to resist a dictionary attack on user ids (the key itself is never printed)."""
    if len(key) < MIN_PSEUDONYM_KEY_BYTES:
        raise ConfigError(f"the pseudonym key from {source} must be at least {MIN_PSEUDONYM_KEY_BYTES} bytes")
    return key


def _int_setting(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None


def _check_range(name: str, value: int, ceiling: int) -> None:
    if not 0 < value <= ceiling:
        raise ConfigError(f"{name} must be between 1 and {ceiling}, got {value}")
