"""Lake URIs: join, validate and split them; S3 "not found" codes; atomic local writes.

Standard library only: the ingest Lambda and the streaming job share these definitions.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path
from urllib.parse import unquote, urlparse

from fruits_core.errors import ConfigError

S3_SCHEME = "s3"
FILE_SCHEME = "file"
# S3 error codes that mean "no such object (version)": HEAD answers a bare 404, GET NoSuchKey.
NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchVersion"})
# S3 general purpose bucket names: 3-63 lowercase letters, digits, dots and dashes.
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def join_uri(base: str, *parts: str) -> str:
    """Join a lake URI and relative keys without doubling or losing slashes."""
    joined = base.rstrip("/")
    for part in parts:
        joined = f"{joined}/{part.strip('/')}"
    return joined


def validate_lake_uri(uri: str, setting: str = "lake URI") -> str:
    """Accept `s3://bucket[/prefix]` or `file:///absolute/path`; return it without a trailing slash.

    `setting` names the flag or variable in the error message (e.g. `--lake`, `LAKE_URI`).
    """
    parsed = urlparse(uri)
    if parsed.scheme == S3_SCHEME and BUCKET_NAME.match(parsed.netloc or ""):
        return uri.rstrip("/")
    # The filesystem root (`file:///`) is no lake, and stripping its slashes would leave `file:`.
    if (
        parsed.scheme == FILE_SCHEME
        and not parsed.netloc
        and parsed.path.startswith("/")
        and parsed.path.strip("/")
    ):
        return uri.rstrip("/")
    raise ConfigError(f"{setting} must be s3://bucket[/prefix] or file:///absolute/path, got {uri!r}")


def lake_uri_from_argument(text: str, setting: str = "--lake") -> str:
    """A command line's lake: a URI as `validate_lake_uri` accepts, or a local folder (relative or
    absolute), resolved to its absolute `file://` URI so every later step sees one form."""
    if text and "://" not in text:
        text = Path(text).expanduser().resolve().as_uri()
    return validate_lake_uri(text, setting)


def split_s3(uri: str) -> tuple[str, str]:
    """`s3://bucket/some/key` -> ("bucket", "some/key") (the key URL-decoded)."""
    parsed = urlparse(uri)
    if parsed.scheme != S3_SCHEME or not parsed.netloc:
        raise ValueError(f"not an s3://bucket/key URI: {uri!r}")
    return parsed.netloc, unquote(parsed.path.lstrip("/"))


def is_not_found_code(code: object) -> bool:
    return str(code) in NOT_FOUND_CODES


def is_missing_object_error(error: BaseException) -> bool:
    """True for a botocore ClientError whose code means "no such object" (checked by duck typing)."""
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return False
    return is_not_found_code(response.get("Error", {}).get("Code", ""))


def write_atomically(path: Path, data: bytes) -> None:
    """Write a file whole: to a hidden temp name (readers skip names starting with '.'), fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
